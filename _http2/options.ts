// Copyright 2026 the connctx authors. MIT license.
// HTTP/2 options: what a server may tune (`Http2Options`), their defaults
// (`HTTP2_DEFAULTS`) and their validation (`resolveHttp2Options`), done once
// when the server starts. Re-exported by `conn.ts`, where callers import them.

import { DEFAULT_WINDOW, MAX_WINDOW, MIN_MAX_FRAME_SIZE } from "./frame.ts";

/**
 * HTTP/2 tuning. Every field has a default that is safe on the internet.
 *
 * @example
 * ```ts
 * import type { Http2Options } from "./options.ts";
 *
 * const options: Http2Options = { maxConcurrentStreams: 250 };
 * ```
 */
export interface Http2Options {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams (and handlers of reset
   * streams still running) at once; more are refused. Default 100. */
  maxConcurrentStreams?: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: request body bytes a stream may have
   * in flight before its handler reads them. Default 256 KiB. */
  initialWindowSize?: number;
  /** The connection's receive window: body bytes all streams together may
   * have in flight. Default 1 MiB. */
  connectionWindowSize?: number;
  /** SETTINGS_MAX_FRAME_SIZE we accept. Default 16 384. */
  maxFrameSize?: number;
  /** Streams the client may reset before their response is done (and
   * streams refused or reset for errors), as a token bucket of this size
   * refilled by {@linkcode Http2Options.resetRefillPerSecond}; empty: the
   * connection is closed with ENHANCE_YOUR_CALM. Default 200. */
  resetBudget?: number;
  /** Tokens the reset budget regains per second. Default 20. */
  resetRefillPerSecond?: number;
}

/** Defaults of {@linkcode Http2Options}. */
export const HTTP2_DEFAULTS: Readonly<Required<Http2Options>> = {
  maxConcurrentStreams: 100,
  initialWindowSize: 256 * 1024,
  connectionWindowSize: 1024 * 1024,
  maxFrameSize: MIN_MAX_FRAME_SIZE,
  resetBudget: 200,
  resetRefillPerSecond: 20,
};

const resolved = new WeakMap<Http2Options, Readonly<Required<Http2Options>>>();

/**
 * Validates {@linkcode Http2Options} and fills in the defaults; call it once
 * when the server starts so that a bad value fails there, not per connection.
 *
 * @param options The options given.
 * @returns Complete options.
 * @throws {TypeError} For a value outside what RFC 9113 allows.
 *
 * @example
 * ```ts
 * import { resolveHttp2Options } from "./options.ts";
 *
 * resolveHttp2Options({ maxConcurrentStreams: 250 }).initialWindowSize; // 262144
 * ```
 */
export function resolveHttp2Options(options: Http2Options = {}): Readonly<Required<Http2Options>> {
  const known = resolved.get(options);
  if (known !== undefined) return known;
  const o = { ...HTTP2_DEFAULTS };
  const int = (k: keyof Http2Options, min: number, max: number) => {
    const v = options[k];
    if (v === undefined) return;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      throw new TypeError(`http2.${k} must be an integer in [${min}, ${max}]`);
    }
    o[k] = v;
  };
  int("maxConcurrentStreams", 1, 0xffffffff);
  int("initialWindowSize", 1024, MAX_WINDOW);
  int("connectionWindowSize", DEFAULT_WINDOW, MAX_WINDOW);
  int("maxFrameSize", MIN_MAX_FRAME_SIZE, 16_777_215);
  int("resetBudget", 1, 0xffffffff);
  if (options.resetRefillPerSecond !== undefined) {
    const v = options.resetRefillPerSecond;
    if (typeof v !== "number" || !(v >= 0) || v === Infinity) {
      throw new TypeError("http2.resetRefillPerSecond must be a finite number ≥ 0");
    }
    o.resetRefillPerSecond = v;
  }
  const r = Object.freeze(o);
  resolved.set(options, r);
  return r;
}
