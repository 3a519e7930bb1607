// Copyright 2026 the connctx authors. MIT license.
// One HTTP/2 connection (RFC 9113), served as the `Protocol` of a
// `Connection`. This file owns the connection itself: the preface, the read
// buffer, the frame loop and its dispatch, SETTINGS/PING/GOAWAY/RST_STREAM/
// WINDOW_UPDATE, connection flow control both ways, the stream table (open,
// close, reset, the recently closed ring, the Rapid Reset budget), and
// shutdown and closing. The rest of the HTTP/2 connection lives beside it:
//
//   options.ts    Http2Options, their defaults and validation (re-exported)
//   recv.ts       header blocks, stream admission, DATA (called per frame)
//   stream.ts     one stream's state, its request body and receive window
//   respond.ts    one stream's response: HEADERS, then DATA within windows
//   writer.ts     the output buffer and its single flusher
//   deadlines.ts  the connection's one deadline: arm it, act when it passes
//
// Those modules take the connection as a parameter (plain function calls,
// no object or async layer per frame), so the fields they use are public
// (no `#`); fields private to this file keep `#`. Only `_http2/` modules
// import `Http2Conn`, and they import it type-only: the value imports among
// these files have no cycle.
//
// Why this file is still ~800 lines: what remains is one state machine whose
// parts (frame loop, control frames, stream table, connection window,
// lifecycle) read and write the same connection state in the same
// synchronous turn; cutting it further would only move private state into
// public fields without a seam to show for it.
//
// Reading: one loop reads the socket and processes every complete frame
// synchronously: no frame handler awaits, so frames are handled strictly in
// order and the HPACK decoder sees blocks in order. Writing: frames are
// appended to an output buffer and a single writer flushes it (one write per
// batch, coalescing everything produced in the same turn). Response bodies
// are written by each stream's own loop, which waits for flow-control window
// (the peer's) and for room in the output buffer (the socket's back-pressure).
//
// Stream lifecycle (server side; we never push, so never reserve):
//
//   idle ──HEADERS──▶ open ──END_STREAM recv──▶ half-closed (remote)
//                      │                              │
//                      └─END_STREAM sent─▶ half-closed (local)
//                                                     ▼
//                         both ends, or RST_STREAM ─▶ closed
//
// A stream's exchange has a context derived from the connection's (made once
// by `connContext`), canceled when the client resets the stream, when the
// connection goes (GOAWAY with an error, close), or when the response ends.
//
// Defences, each bounded:
// - Rapid Reset (CVE-2023-44487): streams the client resets before their
//   response is complete draw from a token bucket; so do streams we refuse
//   or reset for errors. Empty: GOAWAY ENHANCE_YOUR_CALM. Handlers of reset
//   streams still count against MAX_CONCURRENT_STREAMS until they return.
// - CONTINUATION flood: a header block is bounded (maxHeaderBytes, and a
//   number of frames) while it arrives, and by readHeaderTimeout.
// - HPACK bomb: the decoded list is bounded (see hpack.ts): 431.
// - SETTINGS/PING floods against a peer that doesn't read: the queue of
//   frames we owe it is bounded; past it, the connection is closed.
// - Slow readers, zero-window stall (minResponseRate, writeTimeout): time
//   spent waiting on the peer is metered (`RateMeter`, as for HTTP/1.1),
//   never the time a handler takes to produce. A stream whose own window
//   stays shut too long or opens too slowly is reset (CANCEL), its context
//   canceled with TOO_SLOW_READER; so are the streams waiting for a
//   connection window that does; a socket that accepts too little closes
//   the connection.
// - Slow request bodies (minBodyRate, readTimeout): only the time a handler
//   waits for DATA counts, and not while our own window holds the client
//   back. Too slow: the handler's read fails, the client gets a 408 (or
//   RST_STREAM CANCEL if the response had started) and the context is
//   canceled. Each wait sets the connection's one deadline; `timeout()`
//   scans the streams.
// - Too many streams: REFUSED_STREAM.
// - A handler that doesn't read its body: the client can send no more than
//   the stream's window; window is granted only as the handler reads.

import type { Context } from "../_context.ts";
import type { Connection, Protocol } from "../_exchange/conn.ts";
import type { Core } from "../_exchange/core.ts";
import { CONN_CLOSED } from "../_exchange/errors.ts";
import { originOf, RateMeter } from "../_exchange/exchange.ts";
import { CanceledError } from "../_context.ts";
import { ByteBuf } from "./buf.ts";
import {
  applySettings,
  CANCEL,
  checkFrame,
  checkPriority,
  connError,
  CONTINUATION,
  DATA,
  DEFAULT_WINDOW,
  ENHANCE_YOUR_CALM,
  FLAG_ACK,
  FLOW_CONTROL_ERROR,
  FRAME_HEADER_SIZE,
  FRAME_SIZE_ERROR,
  type FrameHeader,
  GOAWAY,
  H2Error,
  HEADERS,
  initialSettings,
  MAX_WINDOW,
  NO_ERROR,
  PING,
  PREFACE,
  PRIORITY,
  PROTOCOL_ERROR,
  putGoaway,
  putHeader,
  putPing,
  putRstStream,
  putSettings,
  putWindowUpdate,
  readFrameHeader,
  readU32,
  RST_STREAM,
  SETTINGS,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  type Span,
  streamError,
  WINDOW_UPDATE,
  windowIncrement,
} from "./frame.ts";
import { Decoder, Encoder } from "./hpack.ts";
import { type Http2Options, resolveHttp2Options } from "./options.ts";
import type { Stream } from "./stream.ts";
import { arm, onDeadline, SHUTDOWN_PING_MS } from "./deadlines.ts";
import { onContinuation, onData, onHeaders } from "./recv.ts";
import { credit, gone, OUT_LIMIT, Writer } from "./writer.ts";

export { HTTP2_DEFAULTS, type Http2Options, resolveHttp2Options } from "./options.ts";

/** Closed streams remembered (to tell "closed" from "never opened"). */
const RECENT_MAX = 256;
/** Buffer an idle connection reads into. */
const SMALL_READ = 256;
/** Buffer a busy connection reads into. */
const BIG_READ = 32 * 1024;
/** Linger after a GOAWAY for an error, so the peer can read it. */
const LINGER_MS = 1000;
const SHUTDOWN_PING = new Uint8Array([0x63, 0x74, 0x78, 0x2d, 0x62, 0x79, 0x65, 0x21]);

const bigPool: Uint8Array[] = [];
const POOL_MAX = 64;

const RESET_BY_CLIENT = new CanceledError("stream reset by the client");
const CLIENT_GOAWAY = new CanceledError("client sent GOAWAY");

/**
 * Serves a connection that speaks HTTP/2 from here on: after TLS with ALPN
 * `h2`, or a cleartext connection that opened with the HTTP/2 preface
 * (prior-knowledge h2c). `Upgrade: h2c` is not supported: such a request is
 * served as HTTP/1.1 and the upgrade ignored, as RFC 9113 §3.1 allows.
 *
 * @param c The connection, already opened (its context made).
 * @param ctx The connection's context (from `connContext`).
 * @param buffered Bytes already read from the connection: the start of the
 *   client preface for h2c, or nothing.
 * @param options HTTP/2 tuning (see {@linkcode resolveHttp2Options}).
 *
 * @example
 * ```ts ignore
 * import { serveHttp2 } from "./conn.ts";
 *
 * // In the server's core: `http2: (c, ctx, buffered) => serveHttp2(c, ctx, buffered)`.
 * ```
 */
export function serveHttp2(
  c: Connection,
  ctx: Context,
  buffered: Uint8Array,
  options: Http2Options = {},
): void {
  const h = new Http2Conn(c, ctx, buffered, options);
  c.proto = h;
  h.start();
}

/** The HTTP/2 protocol of one connection. */
export class Http2Conn implements Protocol {
  readonly c: Connection;
  readonly core: Core;
  readonly #conn: Deno.Conn;
  readonly ctx: Context;
  readonly opt: Readonly<Required<Http2Options>>;
  readonly dec: Decoder;
  readonly enc = new Encoder();
  readonly peer = initialSettings();
  readonly streams = new Map<number, Stream>();
  /** The last closed stream ids (a ring), and whether we reset each (its
   * late frames are then ignored). Looked up only for frames on streams
   * that are not open, which is rare; added to on every close. */
  readonly #recentIds = new Int32Array(RECENT_MAX);
  readonly #recentByUs = new Uint8Array(RECENT_MAX);
  #recentAt = 0;
  readonly #hdr: FrameHeader = { length: 0, type: 0, flags: 0, stream: 0 };
  readonly span: Span = { start: 0, end: 0 };
  readonly origin: (host: string) => string;
  lastAuthority = "";
  lastOrigin = "";

  // Reading.
  #rbuf: Uint8Array;
  #rstart = 0;
  #rend = 0;
  #prefaceDone = false;
  #gotSettings = false;
  /** Highest client stream id seen. */
  lastStream = 0;
  /** Header block in progress (CONTINUATION expected), or 0. */
  contStream = 0;
  contFlags = 0;
  contFrames = 0;
  contSelfDep = false;
  contBuf: ByteBuf | null = null;

  // Writing.
  /** The output buffer and its flusher. */
  readonly w: Writer;
  /** Where a response head is encoded. */
  readonly hb = new ByteBuf(256);
  /** Streams waiting for connection-level window. */
  readonly connWaiters = new Set<Stream>();
  /** writeTimeout and minResponseRate over the time streams wait for the
   * connection's window (the peer's), made on the first such wait. */
  cwMeter: RateMeter | null = null;
  /** While streams wait for connection window: the deadline (0: none);
   * -1: nobody waits. */
  cwAt = -1;
  /** DATA bytes queued on all streams, and how many `cwMeter` knows of. */
  dataOut = 0;
  #cwMark = 0;

  // Flow control.
  sendWindow = DEFAULT_WINDOW;
  recvWindow: number;
  #connCredit = 0;

  // Streams.
  /** Streams in the table plus reset streams whose handler still runs. */
  busy = 0;
  tokens: number;
  #tokensAt = Date.now();

  // Lifecycle.
  closed = false;
  /** A connection error or the end: no more frames are processed. */
  stopping = false;
  /** Shutdown began: GOAWAY(2^31-1) sent, waiting for the PING ACK. */
  #draining = false;
  /** The final GOAWAY went out: streams above this id are ignored. */
  goawayLast = -1;
  peerGoaway = false;
  firstHeaders = false;
  headerSince: number;
  idleSince = 0;
  pingSince = 0;
  /** While stopping: when the connection is closed regardless. */
  stopAt = 0;

  constructor(c: Connection, ctx: Context, buffered: Uint8Array, options: Http2Options) {
    this.c = c;
    this.core = c.core;
    this.#conn = c.conn;
    this.w = new Writer(this, c.conn, c.core);
    this.ctx = ctx;
    this.opt = resolveHttp2Options(options);
    this.dec = new Decoder({ maxHeaderListSize: this.core.limits.maxHeaderBytes });
    this.recvWindow = this.opt.connectionWindowSize;
    this.tokens = this.opt.resetBudget;
    const n = buffered.byteLength;
    this.#rbuf = n === 0 ? new Uint8Array(SMALL_READ) : new Uint8Array(Math.max(n, SMALL_READ));
    this.#rbuf.set(buffered);
    this.#rend = n;
    this.headerSince = Date.now();
    const core = this.core;
    const local = c.info.localAddr;
    this.origin = (host) => originOf(core.scheme, host, local);
  }

  start(): void {
    try {
      (this.#conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* not TCP */ }
    // Server preface: our SETTINGS, and the connection window.
    const o = this.opt;
    putSettings(this.w.out, [
      [SETTINGS_MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SETTINGS_INITIAL_WINDOW_SIZE, o.initialWindowSize],
      [SETTINGS_MAX_FRAME_SIZE, o.maxFrameSize],
      [SETTINGS_MAX_HEADER_LIST_SIZE, this.core.limits.maxHeaderBytes],
      [SETTINGS_ENABLE_PUSH, 0],
    ], false);
    if (o.connectionWindowSize > DEFAULT_WINDOW) {
      putWindowUpdate(this.w.out, 0, o.connectionWindowSize - DEFAULT_WINDOW);
    }
    this.w.kick();
    arm(this);
    if (this.core.draining) this.closeIfIdle();
    this.#readLoop().catch((e) => this.failed(e));
  }

  // ---------------------------------------------------------------- reading

  async #readLoop(): Promise<void> {
    let lingered = 0;
    for (;;) {
      if (this.stopping) {
        // After a GOAWAY: what the peer still sends is read and dropped
        // (bounded), so that closing doesn't reset the connection under
        // the GOAWAY.
        lingered += this.#rend - this.#rstart;
        this.#rstart = this.#rend = 0;
        if (lingered > 256 * 1024) return this.close();
      } else if (this.#rend > this.#rstart) {
        this.#process();
        this.w.kick();
        if (this.stopping) continue;
      }
      if (this.closed) return;
      let n: number | null;
      try {
        n = await this.#conn.read(this.#readSpace());
      } catch (e) {
        if (!gone(e) && !this.closed) this.core.log("HTTP/2 read failed", e);
        n = null;
      }
      if (n === null || n <= 0) {
        this.#peerClosed();
        return;
      }
      this.#rend += n;
    }
  }

  /** Where the next read goes: compacts, grows or shrinks the buffer. */
  #readSpace(): Uint8Array {
    if (this.#rstart === this.#rend) {
      this.#rstart = this.#rend = 0;
      // Idle and empty: read into a small buffer.
      if (this.#rbuf.length !== SMALL_READ && this.streams.size === 0) {
        if (this.#rbuf.length === BIG_READ && bigPool.length < POOL_MAX) bigPool.push(this.#rbuf);
        this.#rbuf = new Uint8Array(SMALL_READ);
      }
    }
    let buf = this.#rbuf;
    // Room for the frame being read, if its header is here.
    let need = this.#rend - this.#rstart + 1;
    if (this.#rend - this.#rstart >= FRAME_HEADER_SIZE) {
      const b = buf;
      const s = this.#rstart;
      need = Math.max(need, FRAME_HEADER_SIZE + ((b[s] << 16) | (b[s + 1] << 8) | b[s + 2]));
    }
    if (buf.length - this.#rstart < need || this.#rend === buf.length) {
      const used = this.#rend - this.#rstart;
      const want = Math.max(need, BIG_READ);
      if (buf.length >= want && this.#rstart > 0) {
        buf.copyWithin(0, this.#rstart, this.#rend);
      } else {
        const nb = want === BIG_READ
          ? bigPool.pop() ?? new Uint8Array(BIG_READ)
          : new Uint8Array(want);
        nb.set(buf.subarray(this.#rstart, this.#rend));
        if (buf.length === BIG_READ && bigPool.length < POOL_MAX) bigPool.push(buf);
        this.#rbuf = buf = nb;
      }
      this.#rstart = 0;
      this.#rend = used;
    }
    return this.#rend === 0 ? buf : buf.subarray(this.#rend);
  }

  /** Processes every complete frame in the buffer. */
  #process(): void {
    const b = this.#rbuf;
    if (!this.#prefaceDone) {
      const have = this.#rend - this.#rstart;
      const n = Math.min(have, PREFACE.length);
      for (let i = 0; i < n; i++) {
        if (b[this.#rstart + i] !== PREFACE[i]) {
          this.connectionError(connError(PROTOCOL_ERROR, "invalid connection preface"));
          return;
        }
      }
      if (have < PREFACE.length) return;
      this.#rstart += PREFACE.length;
      this.#prefaceDone = true;
    }
    const h = this.#hdr;
    const max = this.opt.maxFrameSize;
    while (!this.stopping && this.#rend - this.#rstart >= FRAME_HEADER_SIZE) {
      const at = this.#rstart;
      readFrameHeader(b, at, h);
      // A frame too long for us is a connection error before it arrives.
      if (h.length > max) {
        return this.connectionError(
          connError(FRAME_SIZE_ERROR, `frame of ${h.length} octets exceeds ${max}`),
        );
      }
      if (this.#rend - at < FRAME_HEADER_SIZE + h.length) return;
      this.#rstart = at + FRAME_HEADER_SIZE + h.length;
      try {
        checkFrame(h, max);
        this.#frame(h, b, at + FRAME_HEADER_SIZE);
      } catch (e) {
        if (!(e instanceof H2Error)) throw e;
        if (e.stream === 0) return this.connectionError(e);
        this.#streamError(e);
      }
    }
  }

  #frame(h: FrameHeader, b: Uint8Array, p: number): void {
    if (this.contStream !== 0) {
      if (h.type !== CONTINUATION || h.stream !== this.contStream) {
        throw connError(PROTOCOL_ERROR, "header block interrupted");
      }
      return onContinuation(this, h, b, p);
    }
    if (!this.#gotSettings) {
      if (h.type !== SETTINGS || (h.flags & FLAG_ACK) !== 0) {
        throw connError(PROTOCOL_ERROR, "first frame is not SETTINGS");
      }
      this.#gotSettings = true;
    }
    switch (h.type) {
      case DATA:
        return onData(this, h, b, p);
      case HEADERS:
        return onHeaders(this, h, b, p);
      case PRIORITY:
        // Deprecated (RFC 9113 §5.3.2): validated, then ignored.
        return checkPriority(h, b, p);
      case RST_STREAM:
        return this.#onRstStream(h);
      case SETTINGS:
        return this.#onSettings(h, b, p);
      case PING:
        return this.#onPing(h, b, p);
      case GOAWAY:
        return this.#onGoaway(b, p);
      case WINDOW_UPDATE:
        return this.#onWindowUpdate(h, b, p);
      case CONTINUATION:
        throw connError(PROTOCOL_ERROR, "CONTINUATION without a header block");
    }
    // Unknown frame types are ignored (§5.5).
  }

  /** Whether a client stream id was never opened (RFC 9113 §5.1 idle). */
  idle(id: number): boolean {
    return id > this.lastStream || (id & 1) === 0;
  }

  #onRstStream(h: FrameHeader): void {
    const id = h.stream;
    if (this.idle(id)) throw connError(PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const st = this.streams.get(id);
    if (st === undefined) return;
    // Reset before its response was complete: that costs (Rapid Reset).
    if (!st.sendClosed) this.#spend();
    st.sendClosed = true;
    this.closeStream(st, RESET_BY_CLIENT);
  }

  #onSettings(h: FrameHeader, b: Uint8Array, p: number): void {
    if (h.flags & FLAG_ACK) return;
    const peer = this.peer;
    const oldWindow = peer.initialWindowSize;
    applySettings(b, p, h.length, peer);
    const delta = peer.initialWindowSize - oldWindow;
    if (delta !== 0) {
      for (const st of this.streams.values()) {
        st.sendWindow += delta;
        if (st.sendWindow > MAX_WINDOW) {
          throw connError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window");
        }
        if (delta > 0) st.wakeWindow();
      }
    }
    this.enc.setPeerLimit(peer.headerTableSize);
    this.#control();
    putSettings(this.w.out, [], true);
  }

  #onPing(h: FrameHeader, b: Uint8Array, p: number): void {
    if (h.flags & FLAG_ACK) {
      if (this.pingSince !== 0 && equal8(b, p, SHUTDOWN_PING)) this.finalGoaway();
      return;
    }
    this.#control();
    putPing(this.w.out, true, b, p);
  }

  #onGoaway(b: Uint8Array, p: number): void {
    const code = readU32(b, p + 4);
    this.peerGoaway = true;
    if (code !== NO_ERROR) {
      // The client is closing on an error: nothing more will be read.
      for (const st of [...this.streams.values()]) this.closeStream(st, CLIENT_GOAWAY);
    }
    this.#maybeFinish();
  }

  #onWindowUpdate(h: FrameHeader, b: Uint8Array, p: number): void {
    const inc = windowIncrement(h, b, p);
    const id = h.stream;
    if (id === 0) {
      this.sendWindow += inc;
      if (this.sendWindow > MAX_WINDOW) {
        throw connError(FLOW_CONTROL_ERROR, "connection window over 2^31-1");
      }
      if (this.connWaiters.size > 0) {
        const ws = [...this.connWaiters];
        this.connWaiters.clear();
        this.#connWaitEnd();
        for (const st of ws) st.wakeWindow();
      }
      return;
    }
    if (this.idle(id)) throw connError(PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
    const st = this.streams.get(id);
    if (st === undefined) return;
    st.sendWindow += inc;
    if (st.sendWindow > MAX_WINDOW) {
      throw streamError(FLOW_CONTROL_ERROR, id, "stream window over 2^31-1");
    }
    st.wakeWindow();
  }

  /** Before queueing a frame we owe the peer: a peer that makes us owe
   * too much without reading is cut off. */
  #control(): void {
    if (this.w.out.len > OUT_LIMIT) {
      // A GOAWAY would queue behind what it doesn't read: just close.
      this.close();
      throw connError(ENHANCE_YOUR_CALM, "peer does not read what it asks for");
    }
  }

  // ------------------------------------------------------ flow control (in)

  creditConn(n: number): void {
    if (n <= 0 || this.closed) return;
    this.#connCredit += n;
    if (this.#connCredit >= this.opt.connectionWindowSize >>> 2) {
      putWindowUpdate(this.w.out, 0, this.#connCredit);
      this.recvWindow += this.#connCredit;
      this.#connCredit = 0;
      this.w.kick();
    }
  }

  // ---------------------------------------------------------------- streams

  open(st: Stream): void {
    const first = this.streams.size === 0;
    this.streams.set(st.id, st);
    this.busy++;
    if (first) {
      this.idleSince = 0;
      this.c.state("active");
      arm(this);
    }
  }

  /** Takes a stream out of the table. `cause`: the exchange is cut short.
   * `byUs`: we sent RST_STREAM, so late frames from the peer are ignored. */
  closeStream(st: Stream, cause: unknown, byUs = false): void {
    if (st.closed) return;
    st.closed = true;
    st.sendClosed = true;
    this.streams.delete(st.id);
    this.#remember(st.id, byUs);
    if (this.connWaiters.delete(st) && this.connWaiters.size === 0) this.#connWaitEnd();
    // A body cut short (not all received, or reset with some unread) errors;
    // a complete one that nobody read is dropped.
    if (!st.recvClosed || (cause !== null && st.queued > 0)) {
      st.bodyFailed(cause ?? new Error("stream closed before the request body ended"));
    } else st.dropBody();
    st.wakeWindow();
    if (cause !== null && st.ex !== null) st.ex.disconnected(cause);
    this.release(st);
    if (this.streams.size === 0) {
      this.w.idle();
      this.idleSince = Date.now();
      if (!this.closed) this.c.state("idle");
      arm(this);
      this.#maybeFinish();
    }
  }

  /** A stream is out of the table and its handler is done. */
  release(st: Stream): void {
    if (st.closed && st.done) {
      st.done = false; // count once
      st.ex = null;
      this.busy--;
      this.#maybeFinish();
    }
  }

  /** Sends RST_STREAM and closes the stream (a stream error). */
  #streamError(e: H2Error): void {
    if (this.stopping) return;
    if (e.code !== NO_ERROR && e.code !== CANCEL) {
      try {
        this.#spend();
      } catch (ce) {
        return this.connectionError(ce as H2Error);
      }
    }
    this.resetStream(e.stream, e.code, new CanceledError(`HTTP/2 stream error: ${e.message}`));
  }

  resetStream(id: number, code: number, cause: unknown): void {
    putRstStream(this.w.out, id, code);
    this.w.kick();
    const st = this.streams.get(id);
    if (st !== undefined) this.closeStream(st, cause, true);
    else this.#remember(id, true);
  }

  /** Remembers a closed stream (a bounded number of them). */
  #remember(id: number, byUs: boolean): void {
    const at = this.#recentAt;
    this.#recentIds[at] = id;
    this.#recentByUs[at] = byUs ? 1 : 0;
    this.#recentAt = at + 1 === RECENT_MAX ? 0 : at + 1;
  }

  /** 1: we reset the stream; 0: it closed otherwise; -1: not remembered. */
  recent(id: number): number {
    const ids = this.#recentIds;
    // Newest first: a stream closed twice (reset after END_STREAM) counts
    // as its last closing.
    for (let k = 0, i = this.#recentAt; k < RECENT_MAX; k++) {
      i = i === 0 ? RECENT_MAX - 1 : i - 1;
      if (ids[i] === id) return this.#recentByUs[i];
    }
    return -1;
  }

  /** Takes a token from the reset budget; none left: ENHANCE_YOUR_CALM. */
  #spend(): void {
    const now = Date.now();
    const o = this.opt;
    this.tokens = Math.min(
      o.resetBudget,
      this.tokens + ((now - this.#tokensAt) * o.resetRefillPerSecond) / 1000,
    );
    this.#tokensAt = now;
    this.tokens -= 1;
    if (this.tokens < 0) throw connError(ENHANCE_YOUR_CALM, "too many streams reset");
  }

  // -------------------------------------------------------------- lifecycle

  /** A connection error: GOAWAY with its code, then close (§5.4.1). */
  connectionError(e: H2Error): void {
    if (this.stopping) return;
    const msg = e.message.length > 200 ? e.message.slice(0, 200) : e.message;
    putGoaway(this.w.out, this.lastStream, e.code, msg);
    this.#stop(true);
  }

  /** Stops processing frames; closes once the output is written: at once
   * (`linger` false), or after half-closing and reading what the peer
   * still sends for a moment (after a GOAWAY for an error). */
  #stop(linger: boolean): void {
    if (this.stopping) return;
    this.stopping = true;
    this.#linger = linger;
    for (const st of [...this.streams.values()]) this.closeStream(st, CONN_CLOSED);
    // Bounded: a peer that doesn't read the last frames is cut off.
    this.c.deadline = this.stopAt = Date.now() + Math.max(this.core.writeTimeout, LINGER_MS);
    this.w.kick();
    if (!this.w.writing && this.w.out.len === 0 && !this.w.flushQueued) this.afterStop();
  }

  #linger = false;
  #lingering = false;

  /** The last frames are out. */
  afterStop(): void {
    if (this.#lingering || this.closed) return;
    this.#lingering = true;
    if (!this.#linger) return this.close();
    try {
      this.#conn.closeWrite();
    } catch { /* not supported, or closed */ }
    // The read loop drains until EOF, its bound, or this deadline.
    this.c.deadline = this.stopAt = Date.now() + LINGER_MS;
  }

  /** The peer closed its side. */
  #peerClosed(): void {
    for (const st of [...this.streams.values()]) this.closeStream(st, CONN_CLOSED);
    this.close();
  }

  /** Closes the socket and everything on it. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.stopping = true;
    for (const st of [...this.streams.values()]) this.closeStream(st, CONN_CLOSED);
    this.c.close();
    this.w.wakeAll();
  }

  failed(e: unknown): void {
    if (!gone(e) && !this.closed) this.core.log("HTTP/2 connection failed", e);
    this.close();
  }

  /** When the connection may end: after a GOAWAY, once no stream is left. */
  #maybeFinish(): void {
    if (this.stopping || this.busy > 0 || this.streams.size > 0) return;
    if (this.goawayLast >= 0 || this.peerGoaway) this.#stop(false);
  }

  /** Shutdown's second GOAWAY: the real last stream id. */
  finalGoaway(): void {
    this.pingSince = 0;
    if (this.goawayLast >= 0 || this.stopping) return;
    this.goawayLast = this.lastStream;
    putGoaway(this.w.out, this.lastStream, NO_ERROR);
    this.w.kick();
    this.#maybeFinish();
  }

  // ------------------------------------------------------------- deadlines

  /** Moves the connection's deadline earlier, to `t`. */
  tighten(t: number): void {
    const d = this.c.deadline;
    if (d === 0 || t < d) this.c.deadline = t;
  }

  /** Called by the server's sweeper when the deadline passed. */
  timeout(): void {
    onDeadline(this);
  }

  /** A stream starts waiting for the connection's window. */
  connWait(st: Stream, now: number): void {
    if (this.connWaiters.size === 0) {
      const core = this.core;
      const m = this.cwMeter ??= new RateMeter(
        core.minResponseRate,
        core.minRateGrace,
        core.writeTimeout,
      );
      credit(m, this.dataOut - this.#cwMark, now);
      this.#cwMark = this.dataOut;
      const at = this.cwAt = m.begin(now);
      if (at > 0) this.tighten(at);
    }
    this.connWaiters.add(st);
  }

  /** No stream waits for the connection's window any more. */
  #connWaitEnd(): void {
    if (this.cwAt === -1) return;
    this.cwMeter!.end(Date.now(), 0);
    this.cwAt = -1;
  }

  /** Shutdown: GOAWAY(2^31-1) and a PING; on its ACK, the real GOAWAY;
   * streams then finish, and the connection closes when none is left. */
  closeIfIdle(): void {
    if (this.#draining || this.stopping) return;
    this.#draining = true;
    putGoaway(this.w.out, 0x7fffffff, NO_ERROR);
    putPing(this.w.out, false, SHUTDOWN_PING);
    this.pingSince = Date.now();
    this.tighten(this.pingSince + SHUTDOWN_PING_MS);
    this.w.kick();
  }

  /** Cut now: every stream's exchange is canceled with `cause`. */
  abort(cause: unknown): void {
    for (const st of [...this.streams.values()]) this.closeStream(st, cause);
    this.c.cancel(cause);
    this.close();
  }
}

function equal8(b: Uint8Array, p: number, x: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) if (b[p + i] !== x[i]) return false;
  return true;
}

/** For tests: the frame header layout. */
export { putHeader as _putHeader };
