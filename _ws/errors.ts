// Copyright 2026 the connctx authors. MIT license.

/**
 * The error a refused WebSocket handshake throws. Kept in a module of its
 * own, without dependencies, so the engine can recognise it cheaply.
 *
 * @module
 */

import { ERROR_RESPONSE } from "../_exchange/errors.ts";

/**
 * A refused handshake: `status` and `headers` make the response to send. A
 * `TypeError`, as `Deno.upgradeWebSocket` throws for a request it cannot
 * upgrade; a connctx server answers it with {@linkcode response} when the
 * handler lets it through (Deno's becomes a 500).
 *
 * @example
 * ```ts
 * import { WebSocketHandshakeError } from "./errors.ts";
 * import assert from "node:assert/strict";
 *
 * const err = new WebSocketHandshakeError(426, "unsupported version", { "sec-websocket-version": "13" });
 * assert.ok(err instanceof TypeError);
 * const res = err.response();
 * assert.equal(res.status, 426);
 * assert.equal(res.headers.get("sec-websocket-version"), "13");
 * ```
 */
export class WebSocketHandshakeError extends TypeError {
  /** The engine answers with {@linkcode response} (see `ERROR_RESPONSE`). */
  [ERROR_RESPONSE](): Response {
    return this.response();
  }

  /** HTTP status of the refusal (400 or 426). */
  readonly status: number;
  /** Extra response header fields (`sec-websocket-version: 13` with a 426). */
  readonly headers: Readonly<Record<string, string>>;

  /**
   * Creates the error.
   *
   * @param status HTTP status of the refusal.
   * @param message Why, for logs and the response body.
   * @param headers Extra response header fields.
   */
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = "WebSocketHandshakeError";
    this.status = status;
    this.headers = headers;
  }

  /** The refusal as a response: the status, the headers, the reason as text. */
  response(): Response {
    return new Response(`${this.message}\n`, {
      status: this.status,
      headers: { "content-type": "text/plain; charset=utf-8", ...this.headers },
    });
  }
}
