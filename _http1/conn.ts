// Copyright 2026 the connctx authors. MIT license.
// One HTTP/1.1 connection: the read loop, keep-alive, body framing, timeouts
// and back-pressure. The connection is a small state machine:
//
//   IDLE ──first byte──▶ HEAD ──head parsed──▶ HANDLER ──response──▶ WRITE
//    ▲                                            │ body pulled: BODY    │
//    └───────────────── keep-alive ◀──────────────┴──────────────────────┘
//
// Requests on a connection are served one at a time, in order; pipelined
// requests wait in the read buffer, so the pipeline queue is bounded by the
// buffer (and reading stops while a request is being served: back-pressure).
//
// After a head is parsed and the body (if any) is complete, the next read is
// started at once. While the handler runs it doubles as the disconnect
// detector: EOF cancels the request's context. When the handler is done, the
// same read delivers the next request, so detection costs nothing.

import {
  ChunkedDecoder,
  type ChunkLimits,
  findHeadEnd,
  HttpError,
  type Limits,
  parseHead,
  type RequestHead,
  rescanFrom,
} from "./parser.ts";
import { parseProxyHeader } from "./proxy.ts";
import { IncomingRequest, type RequestSource } from "./request.ts";
import { responseParts } from "./response.ts";
import {
  acquire,
  byteLength,
  frameWhole,
  httpDate,
  noBodyStatus,
  release,
  sendChunk,
  sendRaw,
  sendSplit,
  sendWhole,
  statusLine,
  type Write,
} from "./writer.ts";
import {
  type _CancelNode as CancelNode,
  _cancelNode,
  _newCancelNode,
  _newValueNode,
  CanceledError,
  type Context,
  ContextKey,
  isContext,
} from "../_context.ts";

/**
 * A connection's lifecycle state, as reported to `connState`: `new` once,
 * then `active` (a request is being read or served) and `idle` (waiting for
 * the next keep-alive request) in turn, then `closed` once.
 *
 * @example
 * ```ts
 * import { serve, type ConnState } from "../mod.ts";
 *
 * const seen: ConnState[] = [];
 * await using server = serve({
 *   port: 0,
 *   onListen() {},
 *   connState: (_conn, state) => seen.push(state),
 * }, () => new Response("ok"));
 * ```
 */
export type ConnState = "new" | "active" | "idle" | "closed";

/**
 * What a handler (and `connContext`, `connState`) learns about a connection.
 *
 * @example
 * ```ts
 * import { serve, type ConnInfo } from "../mod.ts";
 *
 * const describe = (conn: ConnInfo): string =>
 *   `#${conn.id} from ${JSON.stringify(conn.remoteAddr)}${conn.tls ? " (TLS)" : ""}`;
 * await using server = serve({ port: 0, onListen() {} }, (_req, info) =>
 *   new Response(describe(info.conn)));
 * ```
 */
export interface ConnInfo {
  /** Unique (per process) connection number, starting at 1. */
  readonly id: number;
  /** The server's address for this connection. */
  readonly localAddr: Deno.Addr;
  /** The peer's address (from the PROXY header when `proxyProtocol` is on). */
  readonly remoteAddr: Deno.Addr;
  /** TLS details, for connections accepted by a TLS listener. */
  readonly tls?: { readonly alpnProtocol: string | null };
}

/** The per-request `info` argument of a handler. */
export interface HandlerInfo {
  /** The peer's address. */
  readonly remoteAddr: Deno.Addr;
  /** Settles when the response has been sent (or the connection failed). */
  readonly completed: Promise<void>;
  /** This request's context: derived from its connection's, canceled when
   * the response is finished or the client goes away. */
  readonly context: Context;
  /** The connection the request arrived on. */
  readonly conn: ConnInfo;
}

/** Everything a connection needs from its server. */
export interface Core {
  handler: (req: Request, info: HandlerInfo) => Response | Promise<Response>;
  onError: (err: unknown, req: Request, info: HandlerInfo) => Response | Promise<Response>;
  base: Context;
  connContext: ((ctx: Context, conn: ConnInfo) => Context) | undefined;
  connState: ((conn: ConnInfo, state: ConnState) => void) | undefined;
  limits: Limits;
  chunkLimits: ChunkLimits;
  maxBodyBytes: number;
  /** Largest unread body drained to keep a connection; else it is closed. */
  drainBytes: number;
  readHeaderTimeout: number;
  readTimeout: number;
  writeTimeout: number;
  idleTimeout: number;
  keepAlive: boolean;
  /** Expect a PROXY protocol (v1/v2) header before the first request. */
  proxyProtocol: boolean;
  scheme: string;
  /** Set by shutdown: finish in-flight requests, keep nothing alive. */
  draining: boolean;
  conns: Set<Http1Conn>;
  activeRequests: number;
  /** Called when the last connection of a draining server closes. */
  onIdle: () => void;
  /** Logs an error that has no request to answer. */
  log: (msg: string, err?: unknown) => void;
  unref: boolean;
}

// Phases. Timeouts read them.
const IDLE = 0;
const HEAD = 1;
const BODY = 2;
const HANDLER = 3;
const WRITE = 4;
const LINGER = 5;
const CLOSED = 6;

/** An idle connection reads into a buffer this small: most request heads
 * from API clients fit, and 5000 idle connections cost 640 KiB, not 5 MiB. */
const SMALL_BUF = 128;
/** The buffer a head moves to when it does not fit the small one. */
const BIG_BUF = 4096;
const BODY_CHUNK = 64 * 1024;

/** Key under which a connection's context carries its {@linkcode ConnInfo}. */
export const CONN_INFO_KEY: ContextKey<ConnInfo> = new ContextKey<ConnInfo>("connctx.conn");
/** Key for the local address (Go's `LocalAddrContextKey`). */
export const LOCAL_ADDR_KEY: ContextKey<Deno.Addr> = new ContextKey<Deno.Addr>(
  "connctx.localAddr",
);

const DISCONNECTED = new CanceledError("client disconnected");
const CONN_CLOSED = new CanceledError("connection closed");

let nextId = 1;

/** Read buffers, reused: allocating an ArrayBuffer costs more than serving
 * a small request. At most 128 KiB + 1 MiB are kept. */
const smallPool: Uint8Array[] = [];
const bigPool: Uint8Array[] = [];
const POOL_MAX = 256;

/** Request origins by Host value, so a new connection skips URL parsing. */
const origins = new Map<string, string>();

function readFailed(): number {
  return -1;
}

/** Whether an I/O error means the peer went away: routine, not worth a log line. */
function peerGone(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted;
}

/** The state of one request, shared by its `Request`, `info` and the loop. */
class Exchange implements RequestSource, HandlerInfo {
  readonly c: Http1Conn;
  readonly head: RequestHead;
  /** The connection's context, parent of this request's. */
  readonly parent: Context;
  /** This request's context, made on first use: most handlers never ask. */
  #node: CancelNode | null = null;
  /** Whether the request's context is over (and with what cause). */
  #ended = false;
  #endCause: unknown = undefined;
  /** Body bytes still to come (Content-Length), or -1 when chunked. */
  remaining: number;
  decoder: ChunkedDecoder | null;
  bodyDone: boolean;
  bodyBytes = 0;
  stream: ReadableStream<Uint8Array> | null = null;
  sent100 = false;
  #completed: Promise<void> | null = null;
  #resolve: (() => void) | null = null;
  finished = false;
  /** Set when the client is known to be gone before the response is done. */
  gone = false;
  /** While a response body stream is being sent: cancels it. */
  stopBody: ((why: unknown) => void) | null = null;

  /** The client left: cancel the context and the response body, if any. */
  disconnected(): void {
    if (this.finished || this.gone) return;
    this.gone = true;
    this.cancel(DISCONNECTED);
    this.stopBody?.(DISCONNECTED);
  }

  /** Ends the request's context (first cause wins), now or when made. */
  cancel(cause?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#endCause = cause;
    if (this.#node !== null) _cancelNode(this.#node, cause);
  }

  get node(): CancelNode {
    let n = this.#node;
    if (n === null) {
      n = this.#node = _newCancelNode(this.parent);
      if (this.#ended) _cancelNode(n, this.#endCause);
    }
    return n;
  }

  constructor(c: Http1Conn, head: RequestHead, parent: Context) {
    this.c = c;
    this.head = head;
    this.parent = parent;
    if (head.chunked) {
      this.remaining = -1;
      this.decoder = new ChunkedDecoder(c.core.chunkLimits);
      this.bodyDone = false;
    } else {
      this.remaining = head.contentLength > 0 ? head.contentLength : 0;
      this.decoder = null;
      this.bodyDone = this.remaining === 0;
    }
  }

  get remoteAddr(): Deno.Addr {
    return this.c.info.remoteAddr;
  }
  get conn(): ConnInfo {
    return this.c.info;
  }
  get context(): Context {
    return this.node;
  }
  get completed(): Promise<void> {
    let p = this.#completed;
    if (p === null) {
      p = this.#completed = new Promise<void>((r) => (this.#resolve = r));
      if (this.finished) this.#resolve!();
    }
    return p;
  }
  finish(): void {
    this.finished = true;
    if (this.#resolve !== null) this.#resolve();
  }

  signal(): AbortSignal {
    return this.node.signal;
  }

  body(): ReadableStream<Uint8Array> | null {
    if (this.bodyDone && this.bodyBytes === 0 && this.stream === null) {
      if (!this.head.chunked && this.head.contentLength <= 0) return null;
    }
    if (this.stream === null) {
      this.stream = new ReadableStream<Uint8Array>({
        pull: (ctrl) => this.c.pullBody(this, ctrl),
        cancel: () => {
          // The handler lost interest; what's left is drained or the
          // connection closed after the response.
        },
      }, { highWaterMark: 0 });
    }
    return this.stream;
  }
}

/** One accepted connection. */
export class Http1Conn {
  readonly core: Core;
  readonly conn: Deno.Conn;
  readonly info: ConnInfo;
  phase = IDLE;
  /** Epoch ms when the current phase times out; 0: never. */
  deadline = 0;
  readonly #small: Uint8Array = smallPool.pop() ?? new Uint8Array(SMALL_BUF);
  #buf: Uint8Array = this.#small;
  #start = 0;
  #end = 0;
  #scan = 0;
  #pending: Promise<number | null> | null = null;
  #eof = false;
  #closed = false;
  #node: CancelNode | null = null;
  #ex: Exchange | null = null;
  #lastHost = "";
  /** The request body broke our framing or limits: close after responding. */
  #closeAfterResponse = false;
  #lastBase = "";
  #writeFn: Write | null = null;
  #onBgFn: ((n: number | null) => void) | null = null;

  constructor(core: Core, conn: Deno.Conn, info: ConnInfo) {
    this.core = core;
    this.conn = conn;
    this.info = info;
  }

  /** `#writeAll` as a function, for responses sent in several writes: a
   * stream, or a head and a large body (made on first use). Such responses
   * turn Nagle's algorithm off, so a small last write is not held back
   * waiting for an ACK. A response sent in one write (the common case)
   * does not need it, and skipping the syscall helps short connections. */
  get #write(): Write {
    let w = this.#writeFn;
    if (w === null) {
      try {
        (this.conn as Deno.TcpConn).setNoDelay?.(true);
      } catch { /* not TCP, or already closed */ }
      w = this.#writeFn = (b) => this.#writeAll(b);
    }
    return w;
  }

  /** Cancels the request in flight when the background read sees EOF. */
  get #onBg(): (n: number | null) => void {
    return this.#onBgFn ??= (n) => {
      if ((n === null || n < 0) && this.#ex !== null) this.#ex.disconnected();
    };
  }

  /** Creates and serves a connection; never throws. */
  static serve(core: Core, conn: Deno.Conn, remoteAddr?: Deno.Addr, tls?: ConnInfo["tls"]): void {
    const info: ConnInfo = tls === undefined
      ? { id: nextId++, localAddr: conn.localAddr, remoteAddr: remoteAddr ?? conn.remoteAddr }
      : { id: nextId++, localAddr: conn.localAddr, remoteAddr: remoteAddr ?? conn.remoteAddr, tls };
    const c = new Http1Conn(core, conn, info);
    core.conns.add(c);
    if (core.proxyProtocol) {
      // The PROXY header comes first: its addresses are the connection's
      // before connContext or connState see it.
      c.#readProxyHeader().then((ok) => ok ? c.#begin() : c.#close(), (e) => c.#failed(e));
    } else c.#begin();
  }

  /** Sets the connection up and runs its request loop. */
  #begin(): void {
    const ctx = this.#setup();
    if (ctx === null) this.#close();
    else {
      this.#serveRequests(ctx).then(() => this.#close(), (e) => this.#failed(e));
    }
  }

  /** The connection's work threw: close it, and log unless the peer left. */
  #failed(e: unknown): void {
    this.#close();
    if (!peerGone(e)) this.core.log("connection failed", e);
  }

  /** Reads and consumes the PROXY protocol header; the bytes after it stay
   * buffered for HTTP, and `info` takes the addresses it names. `false`
   * (close the connection) on EOF, an invalid header, or the header timeout
   * (the sweeper closes an IDLE connection). A connection that never gets
   * past its header is not reported to connState at all. */
  async #readProxyHeader(): Promise<boolean> {
    this.#setPhase(IDLE, this.core.readHeaderTimeout);
    for (;;) {
      let h;
      try {
        h = parseProxyHeader(this.#buf, this.#start, this.#end);
      } catch (e) {
        this.core.log(`closing connection ${this.info.id}`, e);
        return false;
      }
      if (h !== null) {
        this.#start = this.#scan = h.end;
        const info = this.info as { remoteAddr: Deno.Addr; localAddr: Deno.Addr };
        if (h.remoteAddr !== undefined) info.remoteAddr = h.remoteAddr;
        if (h.localAddr !== undefined) info.localAddr = h.localAddr;
        return true;
      }
      if (this.#eof || this.#closed || (await this.#fill()) === 0) return false;
    }
  }

  /** Derives the connection's context; `null` closes the connection. */
  #setup(): Context | null {
    const core = this.core;
    if (core.unref) this.conn.unref();
    // Context flow: derived from the base in a local, never stored back.
    const node = _newCancelNode(
      _newValueNode(
        _newValueNode(core.base, LOCAL_ADDR_KEY, this.info.localAddr),
        CONN_INFO_KEY,
        this.info,
      ),
    );
    this.#node = node;
    let ctx: Context = node;
    if (core.connContext !== undefined) {
      try {
        ctx = core.connContext(node, this.info);
      } catch (e) {
        core.log(`connContext threw; closing connection ${this.info.id}`, e);
        return null;
      }
      if (!derivesFrom(ctx, node)) {
        core.log(
          `connContext must return a context derived from the one it was given; ` +
            `closing connection ${this.info.id}`,
          new TypeError(isContext(ctx) ? "context not derived from ctx" : "not a Context"),
        );
        return null;
      }
    }
    core.connState?.(this.info, "new");
    this.#setPhase(IDLE, core.readHeaderTimeout);
    return ctx;
  }

  #setPhase(phase: number, timeout: number): void {
    this.phase = phase;
    this.deadline = timeout > 0 ? Date.now() + timeout : 0;
  }

  /** Called by the server's sweeper when `deadline` passes. */
  timeout(): void {
    if (this.phase === HEAD && this.#end > this.#start) {
      // The read loop is still waiting for the head; it must not serve what
      // arrives now, so it stops on #timedOut once its read returns.
      this.#timedOut = this.#fail(new HttpError(408, "request header timeout")).catch(() => {});
      this.phase = LINGER;
      this.deadline = Date.now() + 1000;
      return;
    }
    this.#close();
  }

  /** Set when the head timed out: the 408 being sent, then lingering. */
  #timedOut: Promise<void> | null = null;

  /** Closes now if no request is being served (for shutdown). */
  closeIfIdle(): boolean {
    if (this.phase === IDLE && this.#end === this.#start) {
      this.#close();
      return true;
    }
    return false;
  }

  /** Closes the connection, canceling its context with `cause`. */
  abort(cause: unknown): void {
    if (this.#ex !== null && !this.#ex.finished) this.#ex.cancel(cause);
    if (this.#node !== null) _cancelNode(this.#node, cause);
    this.#close();
  }

  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.phase = CLOSED;
    this.deadline = 0;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    // A buffer a read may still fill is not reused.
    if (this.#pending === null) {
      if (this.#buf.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(this.#buf);
      if (smallPool.length < POOL_MAX) smallPool.push(this.#small);
    }
    const ex = this.#ex;
    if (ex !== null && !ex.finished) {
      ex.disconnected();
      ex.finish();
    }
    if (this.#node !== null) _cancelNode(this.#node, CONN_CLOSED);
    const core = this.core;
    if (core.conns.delete(this)) {
      if (this.#node !== null) core.connState?.(this.info, "closed");
      if (core.draining && core.conns.size === 0) core.onIdle();
    }
  }

  /** Reads more bytes into the buffer; returns how many (≤ 0: closed). */
  async #fill(): Promise<number> {
    let n: number | null;
    const p = this.#pending;
    if (p !== null) {
      n = await p;
      this.#pending = null;
    } else {
      try {
        n = await this.conn.read(this.#readSpace());
      } catch {
        n = -1;
      }
    }
    if (n === null || n <= 0) {
      this.#eof = true;
      return 0;
    }
    this.#end += n;
    return n;
  }

  /** Starts a read whose promise may never be awaited (so it never rejects). */
  #startRead(): Promise<number | null> {
    const p = this.conn.read(this.#readSpace()).catch(readFailed);
    this.#pending = p;
    return p;
  }

  /** The free tail of the buffer, compacted or grown when full. */
  #readSpace(): Uint8Array {
    if (this.#start === this.#end) {
      this.#start = this.#end = this.#scan = 0;
    }
    let buf = this.#buf;
    if (this.#end === buf.length) {
      const used = this.#end - this.#start;
      if (this.#start > 0 && used < buf.length / 2) {
        buf.copyWithin(0, this.#start, this.#end);
      } else {
        const nb = buf === this.#small
          ? bigPool.pop() ?? new Uint8Array(BIG_BUF)
          : new Uint8Array(buf.length * 2);
        nb.set(buf.subarray(this.#start, this.#end));
        if (buf.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(buf);
        this.#buf = buf = nb;
      }
      this.#scan -= this.#start;
      this.#start = 0;
      this.#end = used;
    }
    // An empty buffer is read whole: no view object for an idle connection.
    return this.#end === 0 ? buf : buf.subarray(this.#end);
  }

  async #serveRequests(ctx: Context): Promise<void> {
    const core = this.core;
    const limits = core.limits;
    for (;;) {
      // 1. A complete head.
      let headEnd = -1;
      let active = false;
      for (;;) {
        if (this.#end > this.#start) {
          if (!active) {
            active = true;
            if (this.phase === IDLE) {
              if (core.draining) return;
              this.#setPhase(HEAD, core.readHeaderTimeout);
              core.connState?.(this.info, "active");
            }
          }
          headEnd = findHeadEnd(this.#buf, this.#scan, this.#end);
          if (headEnd !== -1) break;
          this.#scan = rescanFrom(this.#end, this.#start);
          const size = this.#end - this.#start;
          if (size > limits.maxHeaderBytes) {
            const lf = this.#buf.indexOf(10, this.#start);
            if ((lf === -1 || lf >= this.#end) && size > limits.maxUriBytes + 64) {
              return await this.#fail(new HttpError(414, "URI too long"));
            }
            return await this.#fail(new HttpError(431, "request header fields too large"));
          }
        }
        if (this.#eof) return;
        // Inlined #fill: an idle connection then waits in this one frame.
        let n: number | null;
        const p = this.#pending;
        if (p !== null) {
          n = await p;
          this.#pending = null;
        } else {
          try {
            n = await this.conn.read(this.#readSpace());
          } catch {
            n = -1;
          }
        }
        if (this.#timedOut !== null) return await this.#timedOut;
        if (n === null || n <= 0) {
          this.#eof = true;
          return;
        }
        this.#end += n;
      }

      // 2. Parse it.
      let head: RequestHead;
      try {
        head = parseHead(this.#buf, this.#start, headEnd, limits);
      } catch (e) {
        if (e instanceof HttpError) return await this.#fail(e);
        throw e;
      }
      this.#start = headEnd;
      this.#scan = headEnd;
      if (head.method === "CONNECT") {
        return await this.#fail(new HttpError(501, "CONNECT is not supported"));
      }
      if (head.contentLength > core.maxBodyBytes) {
        return await this.#fail(new HttpError(413, "request body too large"));
      }

      // 3. Serve it.
      const ex = new Exchange(this, head, ctx);
      this.#ex = ex;
      this.#setPhase(HANDLER, 0);
      core.activeRequests++;
      let keep: boolean;
      try {
        keep = await this.#exchange(ex);
      } finally {
        core.activeRequests--;
        ex.finish();
        ex.cancel();
        this.#ex = null;
      }
      if (!keep || this.#closed) return this.#close();

      // 4. Keep-alive: go back to the small buffer, wait for more.
      if (this.#buf !== this.#small && this.#pending === null) {
        const used = this.#end - this.#start;
        if (used <= SMALL_BUF) {
          const big = this.#buf;
          this.#small.set(big.subarray(this.#start, this.#end));
          this.#buf = this.#small;
          this.#scan -= this.#start;
          this.#start = 0;
          this.#end = used;
          if (big.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(big);
        }
      }
      if (core.draining) return;
      this.#setPhase(IDLE, core.idleTimeout);
      core.connState?.(this.info, "idle");
    }
  }

  /** Runs the handler and writes its response. Returns whether to keep going. */
  async #exchange(ex: Exchange): Promise<boolean> {
    const core = this.core;
    const head = ex.head;
    const host = head.host;
    let base = this.#lastBase;
    if (host !== this.#lastHost || base === "") {
      base = `${core.scheme}://${host === "" ? addrHost(this.info.localAddr) : host}`;
      const known = origins.get(base);
      if (known !== undefined) base = known;
      else {
        const raw = base;
        try {
          // The origin as the URL parser spells it (lower case, default port
          // dropped), so request.url can be a plain concatenation.
          base = new URL(base).origin;
        } catch {
          base = `${core.scheme}://${addrHost(this.info.localAddr)}`;
        }
        if (origins.size >= 256) origins.clear();
        origins.set(raw, base);
      }
      this.#lastHost = host;
      this.#lastBase = base;
    }
    const req = new IncomingRequest(head, base, ex) as unknown as Request;
    let res: Response;
    try {
      const r = core.handler(req, ex);
      if (r instanceof Response) res = r;
      else {
        // The handler is waiting on something: watch for the client leaving.
        if (ex.bodyDone && !this.#eof && this.#pending === null) this.#startRead();
        if (this.#pending !== null) this.#pending.then(this.#onBg);
        res = await r;
        if (!(res instanceof Response)) {
          throw new TypeError("handler must return a Response");
        }
      }
    } catch (e) {
      try {
        // The request body failed our own framing or limits (a chunked body
        // past maxBodyBytes: 413) and the handler let it through: answer
        // with that status, not a 500 from onError.
        res = e instanceof HttpError
          ? new Response(`${e.message}\n`, {
            status: e.status,
            headers: { "content-type": "text/plain; charset=utf-8", connection: "close" },
          })
          : await core.onError(e, req, ex);
        if (!(res instanceof Response)) throw new TypeError("onError must return a Response");
      } catch (e2) {
        core.log("onError failed", e2);
        res = new Response("Internal Server Error", { status: 500 });
      }
    }
    if (this.#closed) {
      // Nobody is left to read the response; tell its body, if it has one.
      if (res.body !== null && !res.bodyUsed) res.body.cancel(DISCONNECTED).catch(() => {});
      return false;
    }
    this.#setPhase(WRITE, 0);
    let keep = core.keepAlive && head.keepAlive && !core.draining;
    // A body that will not be read to its end means closing: say so in the
    // response (RFC 9110 §10.1.1) rather than closing unannounced.
    if (
      keep && !ex.bodyDone &&
      ((head.expectContinue && !ex.sent100) || (ex.stream !== null && ex.stream.locked) ||
        (ex.decoder === null && ex.remaining > core.drainBytes))
    ) keep = false;
    keep = await this.#respond(res, ex, keep);
    if (!keep || this.#closed) return false;
    // The rest of an unread body: drain a little, or give up the connection.
    if (!ex.bodyDone) {
      if (head.expectContinue && !ex.sent100) return false;
      if (ex.stream !== null && ex.stream.locked) return false;
      return await this.#drain(ex);
    }
    return true;
  }

  async #drain(ex: Exchange): Promise<boolean> {
    const limit = this.core.drainBytes;
    let seen = 0;
    try {
      while (!ex.bodyDone) {
        const r = await this.#readBody(ex);
        // null: the end of a chunked body (bodyDone), or the peer is gone.
        if (r === null) return ex.bodyDone;
        seen += r.byteLength;
        if (seen > limit) return false;
      }
    } catch (e) {
      // A malformed or oversized body nobody reads: just close.
      if (e instanceof HttpError) return false;
      throw e;
    }
    return true;
  }

  /** The body stream's pull. */
  async pullBody(ex: Exchange, ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      if (ex.head.expectContinue && !ex.sent100 && !ex.bodyDone) {
        ex.sent100 = true;
        if (this.#end === this.#start) await this.#write(CONTINUE);
      }
      const chunk = await this.#readBody(ex);
      if (chunk === null) {
        if (ex.bodyDone) ctrl.close();
        else ctrl.error(new Error("connection closed before the request body was complete"));
        return;
      }
      ctrl.enqueue(chunk);
      if (ex.bodyDone) ctrl.close();
    } catch (e) {
      ctrl.error(e);
      if (e instanceof HttpError) this.#closeAfterResponse = true;
    }
  }

  /** Next piece of the body; `null` at its end or when the peer is gone. */
  async #readBody(ex: Exchange): Promise<Uint8Array | null> {
    const core = this.core;
    for (;;) {
      if (ex.bodyDone) return null;
      if (this.#closed) return null;
      if (ex.decoder === null) {
        // Content-Length.
        const avail = this.#end - this.#start;
        if (avail > 0) {
          const n = Math.min(avail, ex.remaining);
          const out = this.#buf.slice(this.#start, this.#start + n);
          this.#start += n;
          this.#bodyTook(ex, n);
          return out;
        }
        if (this.#eof) return null;
        const chunk = new Uint8Array(Math.min(ex.remaining, BODY_CHUNK));
        this.#setPhase(BODY, core.readTimeout);
        const n = await this.conn.read(chunk).catch(readFailed);
        this.#setPhase(HANDLER, 0);
        if (n === null || n <= 0) {
          this.#eof = true;
          return null;
        }
        this.#bodyTook(ex, n);
        return chunk.subarray(0, n);
      }
      // Chunked: decode what is buffered, read more when needed.
      if (this.#end > this.#start) {
        const [p, n] = ex.decoder.next(this.#buf, this.#start, this.#end);
        this.#start = p + n;
        if (ex.decoder.done) {
          this.#bodyTook(ex, 0);
          this.#scan = this.#start;
          if (n === 0) return null;
        }
        if (n > 0) {
          ex.bodyBytes += n;
          if (ex.bodyBytes > core.maxBodyBytes) {
            throw new HttpError(413, "request body too large");
          }
          return this.#buf.slice(p, p + n);
        }
        if (ex.decoder.done) return null;
      }
      if (this.#eof) return null;
      if (this.#start === this.#end) this.#start = this.#end = 0;
      if (this.#buf.length < BODY_CHUNK / 4) {
        const nb = new Uint8Array(BODY_CHUNK / 4);
        nb.set(this.#buf.subarray(this.#start, this.#end));
        this.#end -= this.#start;
        this.#start = 0;
        this.#buf = nb;
      }
      this.#setPhase(BODY, core.readTimeout);
      const got = await this.#fill();
      this.#setPhase(HANDLER, 0);
      if (got === 0) return null;
    }
  }

  #bodyTook(ex: Exchange, n: number): void {
    if (ex.decoder === null) {
      ex.remaining -= n;
      ex.bodyBytes += n;
      if (ex.remaining === 0) ex.bodyDone = true;
    } else ex.bodyDone = true;
    if (ex.bodyDone) {
      this.#scan = this.#start;
      // The body is complete: watch for the peer going away, and be ready
      // for the next request.
      if (!this.#eof && this.#pending === null && this.phase !== WRITE) {
        const p = this.#startRead();
        if (!ex.finished) p.then(this.#onBg);
      }
    }
  }

  async #writeAll(b: Uint8Array): Promise<void> {
    const wt = this.core.writeTimeout;
    const prev = this.phase;
    const prevDeadline = this.deadline;
    if (wt > 0) {
      this.phase = WRITE;
      this.deadline = Date.now() + wt;
    }
    const n = b.byteLength;
    let off = await this.conn.write(b);
    while (off < n) off += await this.conn.write(b.subarray(off));
    if (wt > 0) {
      this.phase = prev;
      this.deadline = prevDeadline;
    }
  }

  /** Frames and writes a response. Returns whether the connection may stay. */
  async #respond(res: Response, ex: Exchange, keep: boolean): Promise<boolean> {
    const head = ex.head;
    let parts;
    try {
      parts = responseParts(res);
    } catch (e) {
      this.core.log("cannot send response", e);
      parts = { status: 500, statusText: "", headers: [], body: "Internal Server Error" };
    }
    const status = parts.status;
    let h = statusLine(status, parts.statusText);
    let userLength = -1;
    let hasDate = false;
    for (const [k, v] of parts.headers) {
      const n = k.length;
      // Framing and hop-by-hop fields are ours to write.
      if (n === 14 && k.toLowerCase() === "content-length") {
        userLength = parseInt(v, 10);
        continue;
      }
      if (n === 10 && k.toLowerCase() === "connection") {
        if (/(^|,)\s*close\s*(,|$)/i.test(v)) keep = false;
        continue;
      }
      if (n === 17 && k.toLowerCase() === "transfer-encoding") continue;
      if (n === 10 && k.toLowerCase() === "keep-alive") continue;
      if (n === 4 && !hasDate && k.toLowerCase() === "date") hasDate = true;
      h += `${k}: ${v}\r\n`;
    }
    if (this.#closeAfterResponse) keep = false;
    if (!hasDate) h += `date: ${httpDate()}\r\n`;
    const isHead = head.method === "HEAD";
    const noBody = noBodyStatus(status);
    const http10 = head.minor === 0;
    let body = parts.body;
    if (noBody && body instanceof ReadableStream) {
      body.cancel().catch(() => {});
      body = null;
    }

    if (!(body instanceof ReadableStream)) {
      const len = body === null ? 0 : byteLength(body);
      if (!noBody) h += `content-length: ${isHead && userLength >= 0 ? userLength : len}\r\n`;
      else if (status === 304 && userLength >= 0) h += `content-length: ${userLength}\r\n`;
      h += connHeader(keep, http10);
      await this.#send(h, isHead || noBody ? null : body);
      return keep;
    }

    // A stream. HEAD: send the head only.
    if (isHead) {
      body.cancel().catch(() => {});
      if (userLength >= 0) h += `content-length: ${userLength}\r\n`;
      h += connHeader(keep, http10);
      await this.#send(h, null);
      return keep;
    }
    // A stream may take long (server-sent events): watch for the client
    // leaving so the request's context is canceled promptly.
    if (ex.bodyDone && !this.#eof && this.#pending === null) this.#startRead().then(this.#onBg);
    const reader = body.getReader();
    // If the client leaves while we wait on the body, cancel it: its cancel()
    // runs (as with Deno.serve) and the wait below ends.
    ex.stopBody = (why) => void reader.cancel(why).catch(() => {});
    if (ex.gone) ex.stopBody(DISCONNECTED);
    try {
      const first = await reader.read();
      if (ex.gone) return false;
      // A body that is already complete (a string or bytes wrapped in a
      // stream) gets a Content-Length, like a plain body: if the next read
      // has already settled, we know the whole body without waiting.
      let next: Promise<ReadableStreamReadResult<Uint8Array>> | null = null;
      let second: ReadableStreamReadResult<Uint8Array> | typeof PENDING = PENDING;
      if (!first.done) {
        next = reader.read();
        second = await Promise.race([next, SETTLED]);
      }
      if (first.done || (second !== PENDING && second.done)) {
        const chunk = first.done ? null : toBytes(first.value);
        h += `content-length: ${chunk === null ? 0 : chunk.byteLength}\r\n`;
        h += connHeader(keep, http10);
        await this.#send(h, chunk);
        return keep;
      }
      // Streaming. Identity framing if the handler set a length, chunked for
      // HTTP/1.1, close-delimited for HTTP/1.0.
      let chunked = false;
      if (userLength >= 0) {
        h += `content-length: ${userLength}\r\n`;
      } else if (!http10) {
        h += "transfer-encoding: chunked\r\n";
        chunked = true;
      } else keep = false;
      h += connHeader(keep, http10);
      let prefix = h + "\r\n";
      let sent = 0;
      let chunk: Uint8Array | null = toBytes(first.value);
      while (chunk !== null) {
        // Never more than the declared length: the excess would be read as
        // the next response. Send what fits, then stop and close.
        const over = userLength >= 0 && sent + chunk.byteLength > userLength;
        if (over) chunk = chunk.subarray(0, userLength - sent);
        if (chunk.byteLength > 0 || prefix !== "") {
          if (chunked && chunk.byteLength > 0) await sendChunk(this.#write, prefix, chunk);
          else await sendRaw(this.#write, prefix, chunk);
          prefix = "";
          sent += chunk.byteLength;
        }
        if (over) {
          reader.cancel().catch(() => {});
          this.core.log("response body longer than its Content-Length; truncated");
          return false;
        }
        const r: ReadableStreamReadResult<Uint8Array> = await (next ?? reader.read());
        next = null;
        chunk = r.done ? null : toBytes(r.value);
        if (ex.gone) return false;
        if (this.#closed) throw new Error("connection closed");
      }
      if (chunked) await this.#writeAll(LAST_CHUNK);
      if (userLength >= 0 && sent !== userLength) keep = false;
      return keep;
    } catch (e) {
      reader.cancel(e).catch(() => {});
      if (peerGone(e)) ex.disconnected();
      else if (!this.#closed && !ex.gone) this.core.log("response body stream failed", e);
      return false;
    } finally {
      ex.stopBody = null;
    }
  }

  async #send(head: string, body: string | Uint8Array | null): Promise<void> {
    const buf = acquire();
    try {
      const h = head + "\r\n";
      const frame = frameWhole(buf, h, body);
      // One write (no TCP_NODELAY needed), or the multi-write path.
      if (frame !== null) await this.#writeAll(frame);
      else await sendSplit(this.#write, buf, h, body);
    } finally {
      release(buf);
    }
  }

  /** Answers a request we could not accept, then closes. */
  async #fail(e: HttpError): Promise<void> {
    const msg = `${e.message}\n`;
    const head = `${statusLine(e.status, "")}content-type: text/plain; charset=utf-8\r\n` +
      `content-length: ${msg.length}\r\nconnection: close\r\ndate: ${httpDate()}\r\n\r\n`;
    this.phase = LINGER;
    this.deadline = Date.now() + 1000;
    try {
      await sendWhole(this.#write, head, msg);
      // Stop sending, then read what the client still sends (bounded) so
      // that closing does not reset the connection under our response.
      (this.conn as Deno.TcpConn).closeWrite?.();
      if (this.#pending !== null) await this.#pending;
      this.#pending = null;
      const sink = new Uint8Array(4096);
      for (let seen = 0; seen < 64 * 1024 && !this.#closed;) {
        const n = await this.conn.read(sink).catch(readFailed);
        if (n === null || n <= 0) break;
        seen += n;
      }
    } catch {
      // The peer is gone; nothing more to say.
    }
  }
}

const PENDING: unique symbol = Symbol("pending");
const SETTLED: Promise<typeof PENDING> = Promise.resolve(PENDING);

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return new TextEncoder().encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new TypeError("response body chunks must be Uint8Array");
}

function connHeader(keep: boolean, http10: boolean): string {
  if (!keep) return "connection: close\r\n";
  return http10 ? "connection: keep-alive\r\n" : "";
}

function addrHost(a: Deno.Addr): string {
  if (a.transport === "tcp" || a.transport === "udp") {
    return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
  }
  return "localhost";
}

/** Whether `ctx` is `root` or derives from it (bounded walk). */
function derivesFrom(ctx: unknown, root: Context): boolean {
  if (!isContext(ctx)) return false;
  // deno-lint-ignore no-explicit-any
  let c: any = ctx;
  for (let i = 0; i < 10_000 && c !== null && c !== undefined; i++) {
    if (c === root) return true;
    c = c._parent;
  }
  return false;
}
