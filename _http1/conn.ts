// Copyright 2026 the connctx authors. MIT license.
// Owns: the HTTP/1.1 connection state machine — which phase a connection is
// in, what its deadline means in that phase, keep-alive, and handing the
// connection over (to HTTP/2 on the h2c preface, to an upgrade after a 101).
// Bytes are elsewhere: reads in `_io/reader.ts`, heads in `parser.ts`,
// bodies in `body.ts`, responses in `respond.ts`; the request's life (context,
// `Request`, handler) in `_exchange/exchange.ts`.
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
//
// A little over 500 lines: the read loop, the phases the sweeper reads and
// the handover paths share per-connection state that the hot path touches
// on every request; a fifth of the file is this commentary.
//
// Keep-alive is one state, `keep`: anything that must end the connection
// after the current response lowers it (the client's `Connection: close`,
// shutdown, a body left unread, a body that broke our framing, the
// handler's `Connection: close`, close-delimited framing).

import type { Context } from "../_context.ts";
import type { Connection, Protocol } from "../_exchange/conn.ts";
import type { Core } from "../_exchange/core.ts";
import {
  DISCONNECTED,
  HttpError,
  peerGone,
  REFUSAL_TYPE,
  refusalBody,
  TOO_SLOW_READER,
} from "../_exchange/errors.ts";
import { Exchange, originOf, RateMeter } from "../_exchange/exchange.ts";
import { ReadBuffer } from "../_io/reader.ts";
import { parseProxyHeader } from "../_server/proxy.ts";
import { Http1Body } from "./body.ts";
import { httpDate, release, sendWhole, statusLine, type Write } from "./encode.ts";
import { findHeadEnd, parseHead, type RequestHead, rescanFrom } from "./parser.ts";
import { writeResponse } from "./respond.ts";

// Phases. Timeouts read them.
const IDLE = 0;
const HEAD = 1;
const BODY = 2;
const HANDLER = 3;
const WRITE = 4;
const LINGER = 5;
const CLOSED = 6;

const CONTINUE = new TextEncoder().encode("HTTP/1.1 100 Continue\r\n\r\n");
/** "PRI * HTTP/2.0\r\n": the start of the HTTP/2 connection preface. */
const H2_PREFACE = new TextEncoder().encode("PRI * HTTP/2.0\r\n");

/** One HTTP/1.1 connection. */
export class Http1Conn implements Protocol {
  readonly c: Connection;
  readonly core: Core;
  readonly conn: Deno.Conn;
  readonly rb: ReadBuffer;
  phase = IDLE;
  /** The one keep-alive state (see the top of this file). */
  keep = true;
  #ex: Exchange | null = null;
  #body: Http1Body | null = null;
  #seq = 0;
  #origin = "";
  #originHost: string | null = null;
  #writeFn: Write | null = null;
  #onBgFn: ((n: number | null) => void) | null = null;
  /** Set when the head timed out: the 408 being sent, then lingering. */
  #timedOut: Promise<void> | null = null;
  /** writeTimeout and minResponseRate, per response. */
  readonly #out: RateMeter;
  /** The phase a body wait interrupted. */
  #prev = HANDLER;

  constructor(c: Connection) {
    this.c = c;
    this.core = c.core;
    this.conn = c.conn;
    this.rb = new ReadBuffer(c.conn);
    this.#out = new RateMeter(c.core.minResponseRate, c.core.minRateGrace, c.core.writeTimeout);
    c.proto = this;
  }

  /** Serves a connection from its first byte; never throws. */
  static start(c: Connection): void {
    const h = new Http1Conn(c);
    if (c.core.proxyProtocol) {
      // The PROXY header comes first: its addresses are the connection's
      // before connContext or connState see it.
      h.#readProxyHeader().then((ok) => ok ? h.#begin() : h.#close(), (e) => h.#failed(e));
    } else h.#begin();
  }

  get isClosed(): boolean {
    return this.c.closed;
  }

  /** Writes one of several buffers of a response. Turns Nagle's algorithm
   * off on first use, so a small last write is not held back waiting for an
   * ACK; a response sent in one write (the common case) does not need it. */
  get write(): Write {
    let w = this.#writeFn;
    if (w === null) {
      try {
        (this.conn as Deno.TcpConn).setNoDelay?.(true);
      } catch { /* not TCP, or already closed */ }
      w = this.#writeFn = (b) => this.writeAll(b);
    }
    return w;
  }

  /** Cancels the request in flight when the background read sees EOF. */
  get #onBg(): (n: number | null) => void {
    return this.#onBgFn ??= (n) => {
      if ((n === null || n < 0) && this.#ex !== null) this.#ex.disconnected();
    };
  }

  #begin(): void {
    const ctx = this.c.open();
    if (ctx === null) return this.#close();
    this.#idle(this.core.readHeaderTimeout);
    this.#serve(ctx).then(() => this.#close(), (e) => this.#failed(e));
  }

  /** The connection's work threw: close it, and log unless the peer left. */
  #failed(e: unknown): void {
    this.#close();
    if (!peerGone(e)) this.core.log("connection failed", e);
  }

  /** Reads and consumes the PROXY protocol header; the bytes after it stay
   * buffered for HTTP. `false` (close) on EOF, an invalid header, or the
   * header timeout. A connection that never gets past its header is not
   * reported to connState at all. */
  async #readProxyHeader(): Promise<boolean> {
    this.#idle(this.core.readHeaderTimeout);
    const rb = this.rb;
    for (;;) {
      let h;
      try {
        h = parseProxyHeader(rb.buf, rb.start, rb.end);
      } catch (e) {
        this.core.log(`closing connection ${this.c.info.id}`, e);
        return false;
      }
      if (h !== null) {
        rb.start = rb.scan = h.end;
        this.c.setAddrs(h.remoteAddr, h.localAddr);
        return true;
      }
      if (rb.eof || this.c.closed || (await rb.fill()) === 0) return false;
    }
  }

  #idle(timeout: number): void {
    this.phase = IDLE;
    this.c.expireIn(timeout);
  }

  /** Called by the server's sweeper when the deadline passes. */
  timeout(): void {
    const phase = this.phase;
    if (phase === HEAD && this.rb.end > this.rb.start) {
      // The read loop is still waiting for the head; it must not serve what
      // arrives now, so it stops on #timedOut once its read returns.
      this.#timedOut = this.#fail(new HttpError(408, "request header timeout")).catch(() => {});
      return;
    }
    if (phase === BODY) {
      const at = this.#body?.overdue(Date.now()) ?? 0;
      if (at !== 0) return void (this.c.deadline = at);
      // A body stalled (readTimeout) or below minBodyRate. The handler is
      // waiting for it, so no response has started: answer 408, then close.
      const slow = new HttpError(408, "request body too slow");
      this.#ex?.cancel(slow);
      this.phase = LINGER;
      this.c.expireIn(1000);
      this.#refuse(slow).finally(() => this.#close());
      return;
    }
    if (phase === WRITE) {
      const at = this.#out.overdue(Date.now());
      if (at !== 0) return void (this.c.deadline = at);
      this.#ex?.disconnected(TOO_SLOW_READER);
    }
    this.#close();
  }

  /** Closes now if no request is being served (for shutdown). */
  closeIfIdle(): void {
    if (this.phase === IDLE && this.rb.end === this.rb.start) this.#close();
  }

  /** Closes the connection, canceling its context with `cause`. */
  abort(cause: unknown): void {
    const ex = this.#ex;
    if (ex !== null && !ex.finished) ex.cancel(cause);
    this.c.cancel(cause);
    this.#close();
  }

  #close(): void {
    if (this.phase === CLOSED || this.c.proto !== this) return;
    this.phase = CLOSED;
    const ex = this.#ex;
    if (ex !== null && !ex.finished) {
      ex.disconnected();
      ex.finish();
    }
    this.c.close();
    this.rb.release();
  }

  async #serve(ctx: Context): Promise<void> {
    const core = this.core;
    const limits = core.limits;
    const rb = this.rb;
    for (;;) {
      // 1. A complete head.
      let headEnd = -1;
      let active = false;
      for (;;) {
        if (rb.end > rb.start) {
          if (!active) {
            active = true;
            if (this.phase === IDLE) {
              if (core.draining) return;
              this.phase = HEAD;
              this.c.expireIn(core.readHeaderTimeout);
              this.c.state("active");
            }
          }
          headEnd = findHeadEnd(rb.buf, rb.scan, rb.end);
          if (headEnd !== -1) break;
          rb.scan = rescanFrom(rb.end, rb.start);
          const size = rb.end - rb.start;
          if (size > limits.maxHeaderBytes) {
            const lf = rb.buf.indexOf(10, rb.start);
            if ((lf === -1 || lf >= rb.end) && size > limits.maxUriBytes + 64) {
              return await this.#fail(new HttpError(414, "URI too long"));
            }
            return await this.#fail(new HttpError(431, "request header fields too large"));
          }
        }
        if (rb.eof) return;
        // Inlined fill: an idle connection then waits in this one frame.
        let n: number | null;
        const p = rb.pending;
        if (p !== null) {
          n = await p;
          rb.pending = null;
        } else {
          try {
            n = await this.conn.read(rb.space());
          } catch {
            n = -1;
          }
        }
        if (this.#timedOut !== null) return await this.#timedOut;
        if (n === null || n <= 0) {
          rb.eof = true;
          return;
        }
        rb.end += n;
      }

      // 2. Parse it (or hand an HTTP/2 connection over).
      if (this.#seq === 0 && core.http2 !== null && startsWith(rb, H2_PREFACE)) {
        return this.#handOverH2(ctx);
      }
      const refused = this.#open(ctx, headEnd);
      if (refused !== null) return await this.#fail(refused);

      // 3. Serve it. (This frame holds no per-request object while the
      // connection then sits idle: they live in #ex and #body only.)
      let handedOver = false;
      try {
        handedOver = await this.#exchange();
      } finally {
        this.#ex!.finish();
        this.#ex = null;
        this.#body = null;
      }
      if (handedOver) return;
      if (!this.keep || this.c.closed) return;

      // 4. Keep-alive: go back to the small buffer, wait for more.
      rb.shrink();
      if (core.draining) return;
      this.#idle(core.idleTimeout);
      this.c.state("idle");
    }
  }

  /** Parses the head in `buf[start, headEnd)` and sets up its exchange;
   * returns the refusal to send instead, if any. */
  #open(ctx: Context, headEnd: number): HttpError | null {
    const core = this.core;
    const rb = this.rb;
    let head: RequestHead;
    try {
      head = parseHead(rb.buf, rb.start, headEnd, core.limits);
    } catch (e) {
      if (e instanceof HttpError) return e;
      throw e;
    }
    rb.start = rb.scan = headEnd;
    if (head.contentLength > core.maxBodyBytes) {
      return new HttpError(413, "request body too large");
    }
    this.phase = HANDLER;
    this.c.deadline = 0;
    const body = new Http1Body(this, head);
    const ex = new Exchange(this.c, ctx, head, body, ++this.#seq, head.minor === 0 ? "1.0" : "1.1");
    body.ex = ex;
    this.#ex = ex;
    this.#body = body;
    this.keep = core.keepAlive && head.keepAlive && !core.draining;
    return null;
  }

  /** Runs the handler and writes its response; lowers `keep` when the
   * connection must close. Returns whether the connection was handed over. */
  async #exchange(): Promise<boolean> {
    const core = this.core;
    const ex = this.#ex!;
    const body = this.#body!;
    const head = body.head;
    if (head.method === "CONNECT") {
      // Only a handler that takes the tunnel over (upgrade()) may answer it.
      return await this.#connect(ex, head);
    }
    const r = ex.run(ex.request(this.#originFor(head.host)));
    const res = r instanceof Response ? r : await r;
    if (this.c.closed) {
      // Nobody is left to read the response; tell its body, if it has one.
      if (res.body !== null && !res.bodyUsed) res.body.cancel(DISCONNECTED).catch(() => {});
      return false;
    }
    if (core.draining) this.keep = false;
    this.phase = WRITE;
    this.c.deadline = 0;
    this.#out.reset();
    // A body that will not be read to its end means closing: say so in the
    // response (RFC 9110 §10.1.1) rather than closing unannounced.
    if (
      this.keep && !body.done &&
      ((head.expectContinue && !body.sent100) || body.locked ||
        (!body.chunked && body.remaining > core.drainBytes))
    ) this.keep = false;
    await writeResponse(this, res, ex, head);
    if (ex.takeover !== null && (ex.status === 101 || head.method === "CONNECT")) {
      ex.handOver(this.#release());
      return true;
    }
    if (ex.status === 101) this.keep = false; // nobody took the connection
    if (!this.keep || this.c.closed) return false;
    // The rest of an unread body: drain a little, or give up the connection.
    if (!body.done) {
      if ((head.expectContinue && !body.sent100) || body.locked) this.keep = false;
      else if (!(await body.drain(core.drainBytes))) this.keep = false;
    }
    return false;
  }

  async #connect(ex: Exchange, head: RequestHead): Promise<boolean> {
    const r = ex.run(ex.request(this.#originFor(head.host)));
    const res = r instanceof Response ? r : await r;
    if (ex.takeover === null) {
      res.body?.cancel().catch(() => {});
      await this.#fail(new HttpError(501, "CONNECT is not supported"));
      return false;
    }
    if (this.c.closed) return false;
    this.phase = WRITE;
    this.keep = false;
    await writeResponse(this, res, ex, head);
    if (ex.takeover !== null && res.status >= 200 && res.status <= 299 && !this.c.closed) {
      ex.handOver(this.#release());
      return true;
    }
    return false;
  }

  /** This protocol lets go of the connection: the bytes it read past the
   * current request go to the new owner. */
  #release(): Uint8Array {
    const rest = this.rb.rest();
    this.rb.release();
    this.phase = CLOSED;
    this.c.deadline = 0;
    return rest;
  }

  #handOverH2(ctx: Context): void {
    const rest = this.#release();
    this.core.http2!(this.c, ctx, rest);
  }

  /** `scheme://authority` for this connection's requests (cached per Host). */
  #originFor(host: string): string {
    if (host !== this.#originHost) {
      this.#origin = originOf(this.core.scheme, host, this.c.info.localAddr);
      this.#originHost = host;
    }
    return this.#origin;
  }

  // BodyHost

  bodyWait(at: number): void {
    if (at >= 0) {
      this.#prev = this.phase;
      this.phase = BODY;
      this.c.deadline = at;
    } else {
      this.phase = this.#prev;
      this.c.deadline = 0;
    }
  }

  bodyComplete(): void {
    // The body is complete: watch for the peer going away, and be ready for
    // the next request.
    const rb = this.rb;
    const ex = this.#ex;
    if (!rb.eof && rb.pending === null && this.phase !== WRITE && !this.#upgrading()) {
      const p = rb.startRead();
      if (ex !== null && !ex.finished) p.then(this.#onBg);
    }
  }

  async sendContinue(): Promise<void> {
    await this.write(CONTINUE);
  }

  bodyBroken(): void {
    this.keep = false;
  }

  waiting(): void {
    const rb = this.rb;
    const body = this.#body;
    if (body !== null && body.done && !rb.eof && rb.pending === null && !this.#upgrading()) {
      rb.startRead();
    }
    if (rb.pending !== null) rb.pending.then(this.#onBg);
  }

  /** Whether the request may be taken over: then no read may run ahead,
   * the bytes after the head belong to the new protocol. */
  #upgrading(): boolean {
    const b = this.#body;
    return b !== null && (b.head.upgrade !== "" || b.head.method === "CONNECT");
  }

  // ResponseHost

  watch(): void {
    const rb = this.rb;
    const body = this.#body;
    if (body !== null && body.done && !rb.eof && rb.pending === null) {
      rb.startRead().then(this.#onBg);
    }
  }

  /** Writes all of `b` under writeTimeout and minResponseRate. */
  async writeAll(b: Uint8Array, pooled?: Uint8Array): Promise<void> {
    const n = b.byteLength;
    const prev = this.phase;
    const prevDeadline = this.c.deadline;
    const m = this.#out;
    this.phase = WRITE;
    let off = 0;
    while (off < n) {
      this.c.deadline = m.begin(Date.now());
      const w = await this.conn.write(off === 0 ? b : b.subarray(off));
      m.end(Date.now(), w);
      off += w;
    }
    this.phase = prev;
    this.c.deadline = prevDeadline;
    if (pooled !== undefined) release(pooled);
  }

  /** Answers a request we could not accept, then closes. */
  async #fail(e: HttpError): Promise<void> {
    this.phase = LINGER;
    this.c.expireIn(1000);
    try {
      await this.#refuse(e);
      // Stop sending, then read what the client still sends (bounded) so
      // that closing does not reset the connection under our response.
      (this.conn as Deno.TcpConn).closeWrite?.();
      const rb = this.rb;
      if (rb.pending !== null) await rb.pending;
      rb.pending = null;
      const sink = new Uint8Array(4096);
      for (let seen = 0; seen < 64 * 1024 && !this.c.closed;) {
        const n = await rb.readInto(sink);
        if (n === null || n <= 0) break;
        seen += n;
      }
    } catch {
      // The peer is gone; nothing more to say.
    }
  }

  /** Writes a refusal (the status an HttpError names), closing. */
  async #refuse(e: HttpError): Promise<void> {
    const msg = refusalBody(e);
    const head = `${statusLine(e.status, "")}content-type: ${REFUSAL_TYPE}\r\n` +
      `content-length: ${msg.length}\r\nconnection: close\r\ndate: ${httpDate()}\r\n\r\n`;
    try {
      await sendWhole(this.write, head, msg);
    } catch {
      // The peer is gone.
    }
  }
}

function startsWith(rb: ReadBuffer, sig: Uint8Array): boolean {
  if (rb.end - rb.start < sig.length) return false;
  for (let i = 0; i < sig.length; i++) if (rb.buf[rb.start + i] !== sig[i]) return false;
  return true;
}
