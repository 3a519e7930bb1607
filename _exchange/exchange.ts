// Copyright 2026 the connctx authors. MIT license.
// Owns: one request's life on any protocol — the protocol-independent
// exchange layer. HTTP/1.1 (`_http1/conn.ts`), HTTP/2 streams (`_http2/`)
// and upgrades (`_ws/`) all serve requests through it.
//
// A protocol plugs in by implementing two things:
//
//   "read the body"       a `BodySource`: the request body as a stream
//                         (created on first use), and `waiting()`, told when
//                         the handler went async (start watching for the
//                         client leaving).
//   "write the response"  take `responseParts(res)` (./response.ts) apart,
//                         frame and send it; set `ex.status` when the head
//                         goes out and add to `ex.sentBytes`; watch
//                         `ex.stopBody` / `ex.gone` while streaming.
//
// and then drives an exchange through its life:
//
//   const ex = new Exchange(connection, connCtx, head, source, seq, version)
//                                  counted in activeRequests; nothing else
//                                  is allocated until a handler asks
//   const req = ex.request(originOf(scheme, host, localAddr))
//   const res = await ex.run(req)  handler → onError → 500, in the server's
//                                  async context, under telemetry when on;
//                                  never throws, always a Response
//   ... write res ...
//   ex.finish()                    completed settles, the request context is
//                                  canceled, telemetry/access log recorded
//
// or, when the client is gone, `ex.disconnected()` (context canceled with
// DISCONNECTED, a streaming body stopped) and `ex.cancel(cause)`.
//
// Handing the connection over (WebSocket, raw upgrade, CONNECT): a handler
// that calls an upgrade API sets `ex.takeover`. After writing the `101` (or
// the `2xx` to CONNECT) the protocol calls `ex.handOver(buffered)` instead of
// `ex.finish()`: the exchange stops counting as active, `completed`
// settles, and the takeover gets the connection with the bytes already
// read; the request context stays alive until the new owner ends it with
// `ex.cancel(cause)`.

import {
  type _CancelNode as CancelNode,
  _cancelNode,
  _newCancelNode,
  _newValueNode,
  type Context,
} from "../_context.ts";
import type { Connection } from "./conn.ts";
import type { SpanHandle } from "../_telemetry.ts";
import type { ConnInfo, Core, HandlerInfo } from "./core.ts";
import {
  DISCONNECTED,
  errorResponseOf,
  HttpError,
  internalError,
  refusalResponse,
} from "./errors.ts";
import { type Head, IncomingRequest, type RequestSource } from "./request.ts";

/** The protocol's side of a request: its body. */
export interface BodySource {
  /** The request's body stream, created on first use; `null` if none. */
  body(): ReadableStream<Uint8Array> | null;
  /** The handler is waiting on something: watch for the client leaving. */
  waiting(): void;
}

/** What a takeover gets: the connection, and the bytes read past the head. */
export interface Takeover {
  readonly connection: Connection;
  readonly exchange: Exchange;
  /** Bytes already read from the socket after the request (a copy). */
  readonly buffered: Uint8Array;
}

const NO_BODY: BodySource = { body: () => null, waiting() {} };

/** The `info` a handler gets: the documented fields, nothing else. */
class Info implements HandlerInfo {
  readonly #ex: Exchange;
  constructor(ex: Exchange) {
    this.#ex = ex;
  }
  get remoteAddr(): Deno.Addr {
    return this.#ex.connection.info.remoteAddr;
  }
  get conn(): ConnInfo {
    return this.#ex.connection.info;
  }
  get context(): Context {
    return this.#ex.context;
  }
  get completed(): Promise<void> {
    return this.#ex.completed;
  }
}

/** One request: its context, `Request`, handler call and completion. */
export class Exchange implements RequestSource {
  readonly connection: Connection;
  readonly core: Core;
  readonly head: Head;
  /** Request number on its connection (HTTP/2: the stream id). */
  readonly seq: number;
  /** HTTP version: "1.0", "1.1" or "2". */
  readonly version: string;
  /** The connection's context, parent of this request's. */
  readonly parent: Context;
  #src: BodySource;
  /** When the head was complete, epoch ms (only kept for the access log). */
  #start = 0;
  #t0 = 0;
  /** This request's context, made on first use: most handlers never ask. */
  #node: CancelNode | null = null;
  /** Whether the request's context is over (and with what cause). */
  #ended = false;
  #endCause: unknown = undefined;
  #completed: Promise<void> | null = null;
  #resolve: (() => void) | null = null;
  #info: Info | null = null;
  #request: Request | null = null;
  #obs: SpanHandle | null = null;
  #error: unknown = undefined;
  finished = false;
  /** Set when the client is known to be gone before the response is done. */
  gone = false;
  /** While a response body stream is being sent: cancels it. */
  stopBody: ((why: unknown) => void) | null = null;
  /** Set by an upgrade API: who takes the connection after the response. */
  takeover: ((t: Takeover) => void) | null = null;
  /** The status sent (0 until the head is written). */
  status = 0;
  /** Response body bytes sent. */
  sentBytes = 0;
  /** Request body bytes received. */
  bodyBytes = 0;

  constructor(
    connection: Connection,
    parent: Context,
    head: Head,
    src: BodySource,
    seq: number,
    version: string,
  ) {
    this.connection = connection;
    this.core = connection.core;
    this.parent = parent;
    this.head = head;
    this.#src = src;
    this.seq = seq;
    this.version = version;
    if (this.core.accessLog !== null) {
      this.#start = Date.now();
      this.#t0 = performance.now();
    }
    this.core.activeRequests++;
  }

  /** The handler's `info`. */
  get info(): HandlerInfo {
    return this.#info ??= new Info(this);
  }

  /** The request's context. */
  get context(): Context {
    return this.node;
  }

  /** The request's cancel node, made on first use. */
  get node(): CancelNode {
    let n = this.#node;
    if (n === null) {
      const obs = this.#obs;
      const parent = obs !== null && obs.key !== null
        ? _newValueNode(this.parent, obs.key, obs.value)
        : this.parent;
      n = this.#node = _newCancelNode(parent);
      if (this.#ended) _cancelNode(n, this.#endCause);
    }
    return n;
  }

  get completed(): Promise<void> {
    let p = this.#completed;
    if (p === null) {
      p = this.#completed = new Promise<void>((r) => (this.#resolve = r));
      if (this.finished) this.#resolve!();
    }
    return p;
  }

  /** The request's cancellation signal (for the `Request`). */
  signal(): AbortSignal {
    return this.node.signal;
  }

  /** The request's body (for the `Request`). */
  body(): ReadableStream<Uint8Array> | null {
    return this.#src.body();
  }

  /** The `Request` the handler gets, made once. `origin` is
   * `scheme://authority` as the URL parser spells it. */
  request(origin: string): Request {
    return this.#request ??= new IncomingRequest(this.head, origin, this) as unknown as Request;
  }

  /** Ends the request's context (first cause wins), now or when made. */
  cancel(cause?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endCause = cause;
    if (this.#node !== null) _cancelNode(this.#node, cause);
  }

  /** The client left: cancel the context and the response body, if any. */
  disconnected(cause: unknown = DISCONNECTED): void {
    if (this.finished || this.gone) return;
    this.gone = true;
    this.cancel(cause);
    this.stopBody?.(cause);
  }

  /**
   * Runs the handler (then `onError`, then a plain 500) in the server's
   * async context. Never throws. Synchronous when the handler is.
   *
   * @param req The request, from {@linkcode request}.
   */
  run(req: Request): Response | Promise<Response> {
    const core = this.core;
    const info = this.info;
    let r: Response | Promise<Response>;
    try {
      const obsv = core.observer;
      if (obsv !== null) {
        const obs = this.#obs = obsv.start(req, info, this.version);
        r = core.isolate(() => obs.run(() => core.handler(req, info)));
      } else {
        r = core.isolate(() => core.handler(req, info));
      }
    } catch (e) {
      return this.#recover(e, req);
    }
    if (r instanceof Response) return r;
    this.#src.waiting();
    return this.#settle(r, req);
  }

  async #settle(r: Promise<Response>, req: Request): Promise<Response> {
    try {
      const res = await r;
      if (!(res instanceof Response)) throw new TypeError("handler must return a Response");
      return res;
    } catch (e) {
      return await this.#recover(e, req);
    }
  }

  async #recover(e: unknown, req: Request): Promise<Response> {
    this.#error = e;
    // The request body failed our own framing or limits (a chunked body past
    // maxBodyBytes: 413) and the handler let it through: answer with that
    // status, not a 500 from onError.
    if (e instanceof HttpError) return refusalResponse(e);
    const own = errorResponseOf(e);
    if (own !== null) return own;
    const core = this.core;
    try {
      const res = await core.isolate(() => core.onError(e, req, this.info));
      if (!(res instanceof Response)) throw new TypeError("onError must return a Response");
      return res;
    } catch (e2) {
      core.log("onError failed", e2);
      return internalError();
    }
  }

  /** The response is finished (or abandoned): settle everything. */
  finish(): void {
    if (this.finished) return;
    this.#done();
    this.cancel();
  }

  /** The connection goes to `takeover` (see the top of this file). */
  handOver(buffered: Uint8Array): void {
    const t = this.takeover;
    // The protocol that read the request is done: do not keep it alive.
    this.#src = NO_BODY;
    this.#done();
    if (t !== null) t({ connection: this.connection, exchange: this, buffered });
  }

  #done(): void {
    this.finished = true;
    this.core.activeRequests--;
    if (this.#resolve !== null) this.#resolve();
    const obs = this.#obs;
    if (obs !== null) {
      try {
        obs.end(this.status, this.#error, this.bodyBytes, this.sentBytes);
      } catch (e) {
        this.core.log("telemetry failed", e);
      }
    }
    const log = this.core.accessLog;
    if (log !== null) {
      const h = this.head;
      let referer: string | null = null;
      let ua: string | null = null;
      for (let i = 0; i < h.headers.length; i += 2) {
        if (h.headers[i] === "referer") referer = h.headers[i + 1];
        else if (h.headers[i] === "user-agent") ua = h.headers[i + 1];
      }
      try {
        log({
          start: this.#start,
          duration: performance.now() - this.#t0,
          conn: this.connection.info,
          seq: this.seq,
          method: h.method,
          target: h.target,
          protocol: `HTTP/${this.version === "2" ? "2.0" : this.version}`,
          status: this.status,
          bytes: this.sentBytes,
          referer,
          userAgent: ua,
        });
      } catch (e) {
        this.core.log("access log failed", e);
      }
    }
  }
}

/**
 * The exchange behind a `Request` this server handed to a handler, or
 * `undefined` (a request from elsewhere, or one rebuilt with `new Request`).
 */
export function exchangeOf(req: unknown): Exchange | undefined {
  const s = IncomingRequest.sourceOf(req);
  return s instanceof Exchange ? s : undefined;
}

/** Request origins by `scheme://host`, so a new connection skips URL parsing. */
const origins = new Map<string, string>();

/**
 * `scheme://authority` for a request's `Host` (or `:authority`), as the URL
 * parser spells it (lower case, default port dropped), so `request.url` is
 * a plain concatenation. An empty or unparsable host falls back to the
 * connection's local address.
 */
export function originOf(scheme: string, host: string, local: Deno.Addr): string {
  const raw = `${scheme}://${host === "" ? addrHost(local) : host}`;
  let base = origins.get(raw);
  if (base === undefined) {
    try {
      base = new URL(raw).origin;
    } catch {
      base = `${scheme}://${addrHost(local)}`;
    }
    if (origins.size >= 256) origins.clear();
    origins.set(raw, base);
  }
  return base;
}

function addrHost(a: Deno.Addr): string {
  if (a.transport === "tcp" || a.transport === "udp") {
    return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
  }
  return "localhost";
}

/**
 * A minimum data rate over the time spent waiting on the peer, checked in
 * windows: in every `window` ms of waiting, at least `rate × window` bytes
 * must move (the first window is the grace period). Time the peer is not
 * waited on (a handler producing or consuming slowly) does not count. With
 * a stall timeout beside it, the earlier of the two ends a wait.
 */
export class RateMeter {
  readonly #rate: number;
  readonly #window: number;
  readonly #stall: number;
  #waited = 0;
  #bytes = 0;
  #winWaited = 0;
  #winBytes = 0;
  #t0 = 0;
  #stallAt = 0;

  /**
   * @param rate Minimum bytes per second; 0 disables.
   * @param window Grace period and window length, ms.
   * @param stall Longest single wait, ms (readTimeout/writeTimeout); 0: none.
   */
  constructor(rate: number, window: number, stall: number) {
    this.#rate = rate > 0 && window > 0 ? rate : 0;
    this.#window = window;
    this.#stall = stall;
  }

  /** Starts over, for the next transfer. */
  reset(): void {
    this.#waited =
      this.#bytes =
      this.#winWaited =
      this.#winBytes =
        0;
  }

  /** A wait starts; returns its deadline (epoch ms), 0 for none. */
  begin(now: number): number {
    this.#t0 = now;
    this.#stallAt = this.#stall > 0 ? now + this.#stall : 0;
    if (this.#rate === 0) return this.#stallAt;
    const at = now + Math.max(1, this.#window - (this.#waited - this.#winWaited));
    return this.#stallAt === 0 ? at : Math.min(at, this.#stallAt);
  }

  /** The wait ended having moved `n` bytes. */
  end(now: number, n: number): void {
    this.#waited += now - this.#t0;
    this.#bytes += n;
  }

  /** Bytes moved so far. */
  get bytes(): number {
    return this.#bytes;
  }

  /**
   * The deadline from {@linkcode begin} passed during a wait. Returns 0 to
   * cut the transfer (stalled, or below the rate over the window), or the
   * next deadline (epoch ms) when it keeps up.
   */
  overdue(now: number): number {
    if (this.#stallAt !== 0 && now >= this.#stallAt) return 0;
    if (this.#rate === 0) return this.#stallAt;
    const waited = this.#waited + (now - this.#t0);
    let left = this.#window - (waited - this.#winWaited);
    if (left <= 0) {
      if (this.#bytes - this.#winBytes < (this.#rate * this.#window) / 1000) return 0;
      this.#winWaited = waited;
      this.#winBytes = this.#bytes;
      left = this.#window;
    }
    const at = now + Math.max(1, left);
    return this.#stallAt === 0 ? at : Math.min(at, this.#stallAt);
  }
}
