// Copyright 2026 the connctx authors. MIT license.
// One HTTP/2 connection (RFC 9113): the frame loop, stream states, flow
// control both ways, and each stream served as an exchange of the
// protocol-independent layer (`_exchange/`).
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
import {
  CONN_CLOSED,
  HttpError,
  peerGone,
  REFUSAL_TYPE,
  refusalBody,
  TOO_SLOW_READER,
} from "../_exchange/errors.ts";
import { type BodySource, Exchange, originOf, RateMeter } from "../_exchange/exchange.ts";
import { responseParts } from "../_exchange/response.ts";
import { CanceledError } from "../_context.ts";
import { ByteBuf } from "./buf.ts";
import { checkTrailers, requestHead } from "./fields.ts";
import {
  applySettings,
  CANCEL,
  checkFrame,
  checkPriority,
  COMPRESSION_ERROR,
  connError,
  CONTINUATION,
  DATA,
  DEFAULT_WINDOW,
  ENHANCE_YOUR_CALM,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  FRAME_HEADER_SIZE,
  FRAME_SIZE_ERROR,
  type FrameHeader,
  GOAWAY,
  H2Error,
  HEADERS,
  initialSettings,
  INTERNAL_ERROR,
  MAX_WINDOW,
  MIN_MAX_FRAME_SIZE,
  NO_ERROR,
  PING,
  PREFACE,
  PRIORITY,
  PROTOCOL_ERROR,
  putData,
  putGoaway,
  putHeader,
  putHeaders,
  putPing,
  putRstStream,
  putSettings,
  putWindowUpdate,
  readFrameHeader,
  readU31,
  readU32,
  REFUSED_STREAM,
  RST_STREAM,
  SETTINGS,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  type Span,
  STREAM_CLOSED,
  streamError,
  unpad,
  WINDOW_UPDATE,
  windowIncrement,
} from "./frame.ts";
import { Decoder, Encoder, HpackError } from "./hpack.ts";

/**
 * HTTP/2 tuning. Every field has a default that is safe on the internet.
 *
 * @example
 * ```ts
 * import type { Http2Options } from "./conn.ts";
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
 * import { resolveHttp2Options } from "./conn.ts";
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

/** Output buffered beyond this makes response bodies wait. */
const OUT_HIGH_WATER = 128 * 1024;
/** Output owed to a peer that doesn't read, beyond which we give up. */
const OUT_LIMIT = OUT_HIGH_WATER + 256 * 1024;
/** Closed streams remembered (to tell "closed" from "never opened"). */
const RECENT_MAX = 256;
/** Buffer an idle connection reads into. */
const SMALL_READ = 256;
/** Buffer a busy connection reads into. */
const BIG_READ = 32 * 1024;
/** Linger after a GOAWAY for an error, so the peer can read it. */
const LINGER_MS = 1000;
/** Wait for the shutdown PING's ACK at most this long. */
const SHUTDOWN_PING_MS = 1000;
const SHUTDOWN_PING = new Uint8Array([0x63, 0x74, 0x78, 0x2d, 0x62, 0x79, 0x65, 0x21]);

const bigPool: Uint8Array[] = [];
const POOL_MAX = 64;

const RESET_BY_CLIENT = new CanceledError("stream reset by the client");
const CLIENT_GOAWAY = new CanceledError("client sent GOAWAY");
const STREAM_CANCELED = new CanceledError("stream canceled");
const encoder = new TextEncoder();

let dateStr = "";
let dateUntil = 0;
function httpDate(): string {
  const now = Date.now();
  if (now >= dateUntil || now < dateUntil - 1000) {
    dateStr = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateStr;
}

/** Whether an I/O error only means the peer (or our own close) ended the
 * connection: not worth a log line. */
function gone(e: unknown): boolean {
  return peerGone(e) || e instanceof Deno.errors.UnexpectedEof ||
    e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}

function noBodyStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

function toBytes(v: unknown): Uint8Array {
  if (v instanceof Uint8Array) return v;
  if (typeof v === "string") return encoder.encode(v);
  if (ArrayBuffer.isView(v)) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  if (v instanceof ArrayBuffer) return new Uint8Array(v);
  throw new TypeError("response body chunks must be Uint8Array");
}

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

/** Per-stream state; also the request body source of its exchange. */
class Stream implements BodySource {
  readonly id: number;
  readonly conn: Http2Conn;
  head: import("./fields.ts").H2Head | null = null;
  ex: Exchange | null = null;
  /** END_STREAM received. */
  recvClosed = false;
  /** END_STREAM sent (or the stream reset). */
  sendClosed = false;
  /** Out of the stream table. */
  closed = false;
  /** The handler (or refusal) is done with the stream. */
  done = false;
  /** Peer's window for our DATA. */
  sendWindow: number;
  /** Our window: DATA the peer may still send. */
  recvWindow: number;
  /** Bytes consumed but not yet returned with WINDOW_UPDATE. */
  credit = 0;
  /** Request body chunks not yet read by the handler. */
  chunks: Uint8Array[] = [];
  queued = 0;
  received = 0;
  contentLength = -1;
  /** Over maxBodyBytes: further DATA is dropped. */
  discard = false;
  bodyError: unknown = null;
  stream: ReadableStream<Uint8Array> | null = null;
  /** Wakes a pending body pull. */
  pullWake: (() => void) | null = null;
  /** readTimeout and minBodyRate over the handler's waits for DATA; made
   * on the first wait. */
  inMeter: RateMeter | null = null;
  /** While a body pull waits: its deadline (epoch ms; 0: none); -1: not
   * waiting. */
  inAt = -1;
  /** `received` when the current body wait began. */
  inMark = 0;
  /** Wakes the response writer waiting for window. */
  windowWake: (() => void) | null = null;
  /** writeTimeout and minResponseRate over the writer's waits for window;
   * made on the first wait. */
  outMeter: RateMeter | null = null;
  /** While the response writer waits for window: its deadline (epoch ms;
   * 0: none); -1: not waiting. */
  outAt = -1;
  /** DATA bytes queued on this stream, and how many of them `outMeter`
   * has been told of. */
  pushed = 0;
  outMark = 0;

  constructor(conn: Http2Conn, id: number, sendWindow: number, recvWindow: number) {
    this.conn = conn;
    this.id = id;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  body(): ReadableStream<Uint8Array> | null {
    if (this.stream !== null) return this.stream;
    if (this.recvClosed && this.received === 0 && this.bodyError === null) return null;
    this.stream = new ReadableStream<Uint8Array>({
      pull: (ctrl) => this.conn.pullBody(this, ctrl),
      cancel: () => this.conn.bodyCanceled(this),
    }, { highWaterMark: 0 });
    return this.stream;
  }

  waiting(): void {
    // The read loop always runs: a reset or a closed connection is seen
    // without anything more.
  }

  wakePull(): void {
    const w = this.pullWake;
    if (w !== null) {
      this.pullWake = null;
      w();
    }
  }

  wakeWindow(): void {
    const w = this.windowWake;
    if (w !== null) {
      this.windowWake = null;
      w();
    }
  }
}

/** The HTTP/2 protocol of one connection. */
class Http2Conn implements Protocol {
  readonly #c: Connection;
  readonly #core: Core;
  readonly #conn: Deno.Conn;
  readonly #ctx: Context;
  readonly #opt: Readonly<Required<Http2Options>>;
  readonly #dec: Decoder;
  readonly #enc = new Encoder();
  readonly #peer = initialSettings();
  readonly #streams = new Map<number, Stream>();
  /** The last closed stream ids (a ring), and whether we reset each (its
   * late frames are then ignored). Looked up only for frames on streams
   * that are not open, which is rare; added to on every close. */
  readonly #recentIds = new Int32Array(RECENT_MAX);
  readonly #recentByUs = new Uint8Array(RECENT_MAX);
  #recentAt = 0;
  readonly #hdr: FrameHeader = { length: 0, type: 0, flags: 0, stream: 0 };
  readonly #span: Span = { start: 0, end: 0 };
  readonly #origin: (host: string) => string;
  #lastAuthority = "";
  #lastOrigin = "";

  // Reading.
  #rbuf: Uint8Array;
  #rstart = 0;
  #rend = 0;
  #prefaceDone = false;
  #gotSettings = false;
  /** Highest client stream id seen. */
  #lastStream = 0;
  /** Header block in progress (CONTINUATION expected), or 0. */
  #contStream = 0;
  #contFlags = 0;
  #contFrames = 0;
  #contSelfDep = false;
  #contBuf: ByteBuf | null = null;

  // Writing.
  #out = new ByteBuf(1024);
  #spare: ByteBuf | null = null;
  #writing = false;
  #flushQueued = false;
  #spaceWaiters: (() => void)[] = [];
  readonly #hb = new ByteBuf(256);
  /** Streams waiting for connection-level window. */
  readonly #connWaiters = new Set<Stream>();
  /** writeTimeout and minResponseRate over the socket writes. */
  #wMeter: RateMeter | null = null;
  /** While a socket write is pending: its deadline (0: none); -1: none
   * pending. */
  #writeAt = -1;
  /** writeTimeout and minResponseRate over the time streams wait for the
   * connection's window (the peer's), made on the first such wait. */
  #cwMeter: RateMeter | null = null;
  /** While streams wait for connection window: the deadline (0: none);
   * -1: nobody waits. */
  #cwAt = -1;
  /** DATA bytes queued on all streams, and how many `#cwMeter` knows of. */
  #dataOut = 0;
  #cwMark = 0;

  // Flow control.
  #sendWindow = DEFAULT_WINDOW;
  #recvWindow: number;
  #connCredit = 0;

  // Streams.
  /** Streams in the table plus reset streams whose handler still runs. */
  #busy = 0;
  #tokens: number;
  #tokensAt = Date.now();

  // Lifecycle.
  #closed = false;
  /** A connection error or the end: no more frames are processed. */
  #stopping = false;
  /** Shutdown began: GOAWAY(2^31-1) sent, waiting for the PING ACK. */
  #draining = false;
  /** The final GOAWAY went out: streams above this id are ignored. */
  #goawayLast = -1;
  #peerGoaway = false;
  #firstHeaders = false;
  #headerSince: number;
  #idleSince = 0;
  #pingSince = 0;
  /** While stopping: when the connection is closed regardless. */
  #stopAt = 0;

  constructor(c: Connection, ctx: Context, buffered: Uint8Array, options: Http2Options) {
    this.#c = c;
    this.#core = c.core;
    this.#conn = c.conn;
    this.#ctx = ctx;
    this.#opt = resolveHttp2Options(options);
    this.#dec = new Decoder({ maxHeaderListSize: this.#core.limits.maxHeaderBytes });
    this.#recvWindow = this.#opt.connectionWindowSize;
    this.#tokens = this.#opt.resetBudget;
    const n = buffered.byteLength;
    this.#rbuf = n === 0 ? new Uint8Array(SMALL_READ) : new Uint8Array(Math.max(n, SMALL_READ));
    this.#rbuf.set(buffered);
    this.#rend = n;
    this.#headerSince = Date.now();
    const core = this.#core;
    const local = c.info.localAddr;
    this.#origin = (host) => originOf(core.scheme, host, local);
  }

  start(): void {
    try {
      (this.#conn as Deno.TcpConn).setNoDelay?.(true);
    } catch { /* not TCP */ }
    // Server preface: our SETTINGS, and the connection window.
    const o = this.#opt;
    putSettings(this.#out, [
      [SETTINGS_MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SETTINGS_INITIAL_WINDOW_SIZE, o.initialWindowSize],
      [SETTINGS_MAX_FRAME_SIZE, o.maxFrameSize],
      [SETTINGS_MAX_HEADER_LIST_SIZE, this.#core.limits.maxHeaderBytes],
      [SETTINGS_ENABLE_PUSH, 0],
    ], false);
    if (o.connectionWindowSize > DEFAULT_WINDOW) {
      putWindowUpdate(this.#out, 0, o.connectionWindowSize - DEFAULT_WINDOW);
    }
    this.#kick();
    this.#arm();
    if (this.#core.draining) this.closeIfIdle();
    this.#readLoop().catch((e) => this.#failed(e));
  }

  // ---------------------------------------------------------------- reading

  async #readLoop(): Promise<void> {
    let lingered = 0;
    for (;;) {
      if (this.#stopping) {
        // After a GOAWAY: what the peer still sends is read and dropped
        // (bounded), so that closing doesn't reset the connection under
        // the GOAWAY.
        lingered += this.#rend - this.#rstart;
        this.#rstart = this.#rend = 0;
        if (lingered > 256 * 1024) return this.#close();
      } else if (this.#rend > this.#rstart) {
        this.#process();
        this.#kick();
        if (this.#stopping) continue;
      }
      if (this.#closed) return;
      let n: number | null;
      try {
        n = await this.#conn.read(this.#readSpace());
      } catch (e) {
        if (!gone(e) && !this.#closed) this.#core.log("HTTP/2 read failed", e);
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
      if (this.#rbuf.length !== SMALL_READ && this.#streams.size === 0) {
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
          this.#connectionError(connError(PROTOCOL_ERROR, "invalid connection preface"));
          return;
        }
      }
      if (have < PREFACE.length) return;
      this.#rstart += PREFACE.length;
      this.#prefaceDone = true;
    }
    const h = this.#hdr;
    const max = this.#opt.maxFrameSize;
    while (!this.#stopping && this.#rend - this.#rstart >= FRAME_HEADER_SIZE) {
      const at = this.#rstart;
      readFrameHeader(b, at, h);
      // A frame too long for us is a connection error before it arrives.
      if (h.length > max) {
        return this.#connectionError(
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
        if (e.stream === 0) return this.#connectionError(e);
        this.#streamError(e);
      }
    }
  }

  #frame(h: FrameHeader, b: Uint8Array, p: number): void {
    if (this.#contStream !== 0) {
      if (h.type !== CONTINUATION || h.stream !== this.#contStream) {
        throw connError(PROTOCOL_ERROR, "header block interrupted");
      }
      return this.#onContinuation(h, b, p);
    }
    if (!this.#gotSettings) {
      if (h.type !== SETTINGS || (h.flags & FLAG_ACK) !== 0) {
        throw connError(PROTOCOL_ERROR, "first frame is not SETTINGS");
      }
      this.#gotSettings = true;
    }
    switch (h.type) {
      case DATA:
        return this.#onData(h, b, p);
      case HEADERS:
        return this.#onHeaders(h, b, p);
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
  #idle(id: number): boolean {
    return id > this.#lastStream || (id & 1) === 0;
  }

  #onHeaders(h: FrameHeader, b: Uint8Array, p: number): void {
    const id = h.stream;
    if ((id & 1) === 0) throw connError(PROTOCOL_ERROR, "even stream id from a client");
    const span = this.#span;
    unpad(h, b, p, span);
    const selfDep = (h.flags & FLAG_PRIORITY) !== 0 &&
      readU31(b, p + (h.flags & FLAG_PADDED ? 1 : 0)) === id;
    if (h.flags & FLAG_END_HEADERS) {
      this.#onBlock(id, h.flags, selfDep, b, span.start, span.end);
      return;
    }
    // The block continues: keep the fragment, bounded.
    const limit = this.#core.limits.maxHeaderBytes;
    if (span.end - span.start > limit) {
      throw connError(ENHANCE_YOUR_CALM, "header block too large");
    }
    const cb = this.#contBuf ??= new ByteBuf(Math.max(1024, span.end - span.start));
    cb.reset();
    cb.bytes(b.subarray(span.start, span.end));
    this.#contStream = id;
    this.#contFlags = h.flags;
    this.#contFrames = 0;
    this.#contSelfDep = selfDep;
    this.#headerSince = Date.now();
    this.#arm();
  }

  #onContinuation(h: FrameHeader, b: Uint8Array, p: number): void {
    const cb = this.#contBuf!;
    const limit = this.#core.limits.maxHeaderBytes;
    if (cb.len + h.length > limit || ++this.#contFrames > Math.max(16, limit >>> 10)) {
      throw connError(ENHANCE_YOUR_CALM, "header block too large");
    }
    cb.bytes(b.subarray(p, p + h.length));
    if ((h.flags & FLAG_END_HEADERS) === 0) return;
    const id = this.#contStream;
    this.#contStream = 0;
    this.#onBlock(id, this.#contFlags, this.#contSelfDep, cb.buf, 0, cb.len);
    // Don't keep a large buffer around.
    if (cb.buf.length > 16 * 1024) this.#contBuf = null;
    this.#arm();
  }

  /** A complete header block for stream `id`. */
  #onBlock(
    id: number,
    flags: number,
    selfDep: boolean,
    b: Uint8Array,
    start: number,
    end: number,
  ): void {
    let fields: string[];
    try {
      fields = this.#dec.decode(b, start, end);
    } catch (e) {
      if (e instanceof HpackError) throw connError(COMPRESSION_ERROR, e.message);
      throw e;
    }
    const overflow = this.#dec.overflow;
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    const st = this.#streams.get(id);
    if (st !== undefined) {
      // Trailers.
      if (st.recvClosed) throw streamError(STREAM_CLOSED, id, "HEADERS after END_STREAM");
      if (!endStream) throw streamError(PROTOCOL_ERROR, id, "trailers without END_STREAM");
      if (overflow) throw streamError(PROTOCOL_ERROR, id, "trailers too large");
      checkTrailers(fields, id);
      this.#endOfBody(st);
      return;
    }
    if (id <= this.#lastStream) {
      const recent = this.#recent(id);
      // A stream we reset: the peer may not know yet; ignore (§5.1 closed).
      if (recent === 1) return;
      if (recent === 0) throw connError(STREAM_CLOSED, `HEADERS on closed stream ${id}`);
      throw connError(PROTOCOL_ERROR, `stream id ${id} lower than ${this.#lastStream}`);
    }
    this.#lastStream = id;
    // After the final GOAWAY, new streams are ignored (§6.8).
    if (this.#goawayLast >= 0 || this.#peerGoaway) return;
    if (selfDep) throw streamError(PROTOCOL_ERROR, id, "stream depends on itself");
    if (this.#busy >= this.#opt.maxConcurrentStreams) {
      throw streamError(REFUSED_STREAM, id, "too many concurrent streams");
    }
    const core = this.#core;
    // Pseudo-headers (at most 4 valid ones) don't count as header fields.
    const tooLarge = overflow || fields.length > (core.limits.maxHeaderCount + 4) * 2;
    const head = tooLarge ? null : requestHead(fields, id);
    if (head !== null && endStream && head.contentLength > 0) {
      throw streamError(PROTOCOL_ERROR, id, "content-length without DATA");
    }
    if (!this.#firstHeaders) {
      this.#firstHeaders = true;
      this.#arm();
    }
    const s = new Stream(this, id, this.#peer.initialWindowSize, this.#opt.initialWindowSize);
    s.recvClosed = endStream;
    this.#open(s);
    if (head === null) {
      this.#refuse(s, new HttpError(431, "request header fields too large"));
      return;
    }
    s.head = head;
    s.contentLength = head.contentLength;
    if (head.method === "CONNECT") {
      this.#refuse(s, new HttpError(501, "CONNECT is not supported"));
    } else if (head.target.length > core.limits.maxUriBytes) {
      this.#refuse(s, new HttpError(414, "URI too long"));
    } else if (head.contentLength > core.maxBodyBytes) {
      this.#refuse(s, new HttpError(413, "request body too large"));
    } else {
      this.#serve(s).catch((e) => this.#failed(e));
    }
  }

  #onData(h: FrameHeader, b: Uint8Array, p: number): void {
    const id = h.stream;
    const len = h.length;
    if (len > this.#recvWindow) throw connError(FLOW_CONTROL_ERROR, "connection window exceeded");
    this.#recvWindow -= len;
    const st = this.#streams.get(id);
    if (st === undefined || st.recvClosed) {
      // Not for anyone: the connection window comes back at once.
      this.#creditConn(len);
      if (st === undefined) {
        if (this.#idle(id)) throw connError(PROTOCOL_ERROR, `DATA on idle stream ${id}`);
        if (this.#recent(id) === 1) return;
      }
      throw streamError(STREAM_CLOSED, id, "DATA on a closed stream");
    }
    if (len > st.recvWindow) {
      this.#creditConn(len);
      throw streamError(FLOW_CONTROL_ERROR, id, "stream window exceeded");
    }
    st.recvWindow -= len;
    const span = this.#span;
    unpad(h, b, p, span);
    const n = span.end - span.start;
    // Padding is consumed on arrival.
    if (len > n) {
      this.#creditConn(len - n);
      this.#creditStream(st, len - n);
    }
    st.received += n;
    if (st.ex !== null) st.ex.bodyBytes += n;
    if (st.contentLength >= 0 && st.received > st.contentLength) {
      this.#creditConn(n);
      throw streamError(PROTOCOL_ERROR, id, "more DATA than content-length");
    }
    if (n > 0) {
      if (st.discard || st.head === null) this.#creditConn(n);
      else if (st.received > this.#core.maxBodyBytes) {
        st.discard = true;
        this.#creditConn(n);
        this.#bodyFailed(st, new HttpError(413, "request body too large"));
      } else {
        st.chunks.push(b.slice(span.start, span.end));
        st.queued += n;
        st.wakePull();
      }
    }
    if (h.flags & FLAG_END_STREAM) this.#endOfBody(st);
  }

  /** END_STREAM from the client. */
  #endOfBody(st: Stream): void {
    if (st.contentLength >= 0 && st.received !== st.contentLength) {
      throw streamError(PROTOCOL_ERROR, st.id, "DATA shorter than content-length");
    }
    st.recvClosed = true;
    st.wakePull();
    if (st.sendClosed) this.#closeStream(st, null);
  }

  #onRstStream(h: FrameHeader): void {
    const id = h.stream;
    if (this.#idle(id)) throw connError(PROTOCOL_ERROR, `RST_STREAM on idle stream ${id}`);
    const st = this.#streams.get(id);
    if (st === undefined) return;
    // Reset before its response was complete: that costs (Rapid Reset).
    if (!st.sendClosed) this.#spend();
    st.sendClosed = true;
    this.#closeStream(st, RESET_BY_CLIENT);
  }

  #onSettings(h: FrameHeader, b: Uint8Array, p: number): void {
    if (h.flags & FLAG_ACK) return;
    const peer = this.#peer;
    const oldWindow = peer.initialWindowSize;
    applySettings(b, p, h.length, peer);
    const delta = peer.initialWindowSize - oldWindow;
    if (delta !== 0) {
      for (const st of this.#streams.values()) {
        st.sendWindow += delta;
        if (st.sendWindow > MAX_WINDOW) {
          throw connError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE overflows a window");
        }
        if (delta > 0) st.wakeWindow();
      }
    }
    this.#enc.setPeerLimit(peer.headerTableSize);
    this.#control();
    putSettings(this.#out, [], true);
  }

  #onPing(h: FrameHeader, b: Uint8Array, p: number): void {
    if (h.flags & FLAG_ACK) {
      if (this.#pingSince !== 0 && equal8(b, p, SHUTDOWN_PING)) this.#finalGoaway();
      return;
    }
    this.#control();
    putPing(this.#out, true, b, p);
  }

  #onGoaway(b: Uint8Array, p: number): void {
    const code = readU32(b, p + 4);
    this.#peerGoaway = true;
    if (code !== NO_ERROR) {
      // The client is closing on an error: nothing more will be read.
      for (const st of [...this.#streams.values()]) this.#closeStream(st, CLIENT_GOAWAY);
    }
    this.#maybeFinish();
  }

  #onWindowUpdate(h: FrameHeader, b: Uint8Array, p: number): void {
    const inc = windowIncrement(h, b, p);
    const id = h.stream;
    if (id === 0) {
      this.#sendWindow += inc;
      if (this.#sendWindow > MAX_WINDOW) {
        throw connError(FLOW_CONTROL_ERROR, "connection window over 2^31-1");
      }
      if (this.#connWaiters.size > 0) {
        const ws = [...this.#connWaiters];
        this.#connWaiters.clear();
        this.#connWaitEnd();
        for (const st of ws) st.wakeWindow();
      }
      return;
    }
    if (this.#idle(id)) throw connError(PROTOCOL_ERROR, `WINDOW_UPDATE on idle stream ${id}`);
    const st = this.#streams.get(id);
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
    if (this.#out.len > OUT_LIMIT) {
      // A GOAWAY would queue behind what it doesn't read: just close.
      this.#close();
      throw connError(ENHANCE_YOUR_CALM, "peer does not read what it asks for");
    }
  }

  // ------------------------------------------------------ flow control (in)

  #creditConn(n: number): void {
    if (n <= 0 || this.#closed) return;
    this.#connCredit += n;
    if (this.#connCredit >= this.#opt.connectionWindowSize >>> 2) {
      putWindowUpdate(this.#out, 0, this.#connCredit);
      this.#recvWindow += this.#connCredit;
      this.#connCredit = 0;
      this.#kick();
    }
  }

  #creditStream(st: Stream, n: number): void {
    if (st.recvClosed || st.closed) return;
    st.credit += n;
    if (st.credit >= this.#opt.initialWindowSize >>> 2) {
      putWindowUpdate(this.#out, st.id, st.credit);
      st.recvWindow += st.credit;
      st.credit = 0;
      this.#kick();
    }
  }

  /** The body stream's pull. */
  pullBody(st: Stream, ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> | void {
    if (st.chunks.length > 0) {
      const chunk = st.chunks.shift()!;
      st.queued -= chunk.byteLength;
      ctrl.enqueue(chunk);
      this.#creditConn(chunk.byteLength);
      this.#creditStream(st, chunk.byteLength);
      if (st.chunks.length === 0 && st.recvClosed && st.bodyError === null) ctrl.close();
      return;
    }
    if (st.bodyError !== null) {
      ctrl.error(st.bodyError);
      return;
    }
    if (st.recvClosed) {
      ctrl.close();
      return;
    }
    // The handler waits for the client: readTimeout and minBodyRate count
    // this time (and only this time), as for an HTTP/1.1 body.
    const core = this.#core;
    const m = st.inMeter ??= new RateMeter(core.minBodyRate, core.minRateGrace, core.readTimeout);
    return new Promise<void>((resolve) => {
      st.pullWake = resolve;
      const now = Date.now();
      // What arrived since the last wait moved without waiting: it counts.
      credit(m, st.received - st.inMark, now);
      st.inMark = st.received;
      const at = st.inAt = m.begin(now);
      if (at > 0) this.#tighten(at);
    }).then(() => {
      m.end(Date.now(), st.received - st.inMark);
      st.inMark = st.received;
      st.inAt = -1;
      try {
        return this.pullBody(st, ctrl);
      } catch { /* the body was canceled meanwhile */ }
    });
  }

  /** The handler canceled its body: what comes is dropped. */
  bodyCanceled(st: Stream): void {
    st.discard = true;
    this.#dropBody(st);
  }

  #dropBody(st: Stream): void {
    if (st.queued > 0) {
      this.#creditConn(st.queued);
      st.queued = 0;
      st.chunks.length = 0;
    }
  }

  #bodyFailed(st: Stream, e: unknown): void {
    if (st.bodyError === null) st.bodyError = e;
    this.#dropBody(st);
    st.wakePull();
  }

  // ---------------------------------------------------------------- streams

  #open(st: Stream): void {
    const first = this.#streams.size === 0;
    this.#streams.set(st.id, st);
    this.#busy++;
    if (first) {
      this.#idleSince = 0;
      this.#c.state("active");
      this.#arm();
    }
  }

  /** Takes a stream out of the table. `cause`: the exchange is cut short.
   * `byUs`: we sent RST_STREAM, so late frames from the peer are ignored. */
  #closeStream(st: Stream, cause: unknown, byUs = false): void {
    if (st.closed) return;
    st.closed = true;
    st.sendClosed = true;
    this.#streams.delete(st.id);
    this.#remember(st.id, byUs);
    if (this.#connWaiters.delete(st) && this.#connWaiters.size === 0) this.#connWaitEnd();
    // A body cut short (not all received, or reset with some unread) errors;
    // a complete one that nobody read is dropped.
    if (!st.recvClosed || (cause !== null && st.queued > 0)) {
      this.#bodyFailed(st, cause ?? new Error("stream closed before the request body ended"));
    } else this.#dropBody(st);
    st.wakeWindow();
    if (cause !== null && st.ex !== null) st.ex.disconnected(cause);
    this.#release(st);
    if (this.#streams.size === 0) {
      // Idle: give large output buffers back (an idle connection is small).
      if (this.#spare !== null && this.#spare.buf.length > 16 * 1024) this.#spare = null;
      if (!this.#writing && this.#out.len === 0 && this.#out.buf.length > 16 * 1024) {
        this.#out = new ByteBuf(1024);
      }
      this.#idleSince = Date.now();
      if (!this.#closed) this.#c.state("idle");
      this.#arm();
      this.#maybeFinish();
    }
  }

  /** A stream is out of the table and its handler is done. */
  #release(st: Stream): void {
    if (st.closed && st.done) {
      st.done = false; // count once
      st.ex = null;
      this.#busy--;
      this.#maybeFinish();
    }
  }

  /** Sends RST_STREAM and closes the stream (a stream error). */
  #streamError(e: H2Error): void {
    if (this.#stopping) return;
    if (e.code !== NO_ERROR && e.code !== CANCEL) {
      try {
        this.#spend();
      } catch (ce) {
        return this.#connectionError(ce as H2Error);
      }
    }
    this.#resetStream(e.stream, e.code, new CanceledError(`HTTP/2 stream error: ${e.message}`));
  }

  #resetStream(id: number, code: number, cause: unknown): void {
    putRstStream(this.#out, id, code);
    this.#kick();
    const st = this.#streams.get(id);
    if (st !== undefined) this.#closeStream(st, cause, true);
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
  #recent(id: number): number {
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
    const o = this.#opt;
    this.#tokens = Math.min(
      o.resetBudget,
      this.#tokens + ((now - this.#tokensAt) * o.resetRefillPerSecond) / 1000,
    );
    this.#tokensAt = now;
    this.#tokens -= 1;
    if (this.#tokens < 0) throw connError(ENHANCE_YOUR_CALM, "too many streams reset");
  }

  /** Runs the handler for a stream and sends its response. */
  async #serve(st: Stream): Promise<void> {
    const ex = new Exchange(this.#c, this.#ctx, st.head!, st, st.id, "2");
    st.ex = ex;
    try {
      const auth = st.head!.authority;
      if (auth !== this.#lastAuthority || this.#lastOrigin === "") {
        this.#lastOrigin = this.#origin(auth);
        this.#lastAuthority = auth;
      }
      const req = ex.request(this.#lastOrigin);
      const r = ex.run(req);
      const res = r instanceof Response ? r : await r;
      // Gone: reset, or already answered for it (a request body too slow).
      if (st.sendClosed || this.#closed || ex.gone) {
        if (res.body !== null && !res.bodyUsed) res.body.cancel(STREAM_CANCELED).catch(() => {});
        return;
      }
      await this.#respond(st, ex, res);
    } catch (e) {
      if (!gone(e) && !this.#closed) this.#core.log("HTTP/2 response failed", e);
      if (!st.sendClosed && !this.#closed) this.#resetStream(st.id, INTERNAL_ERROR, e);
    } finally {
      ex.finish();
      st.done = true;
      this.#release(st);
    }
  }

  /** Answers a request we could not accept (431, 413, 414, 501). */
  #refuse(st: Stream, e: HttpError): void {
    const body = encoder.encode(refusalBody(e));
    this.#sendHead(st, e.status, [["content-type", REFUSAL_TYPE]], body.byteLength, false);
    st.done = true;
    this.#sendData(st, body, true, null).catch(() => {});
  }

  /** Encodes and queues a response head. */
  #sendHead(
    st: Stream,
    status: number,
    headers: Iterable<[string, string]>,
    length: number,
    endStream: boolean,
  ): void {
    const hb = this.#hb;
    hb.reset();
    const enc = this.#enc;
    enc.startBlock(hb);
    enc.status(hb, status);
    let hasDate = false;
    for (const [k, v] of headers) {
      const name = k.toLowerCase();
      switch (name.length) {
        case 4:
          if (name === "date") hasDate = true;
          break;
        case 7:
          if (name === "upgrade") continue;
          break;
        case 10:
          if (name === "connection" || name === "keep-alive") continue;
          break;
        case 14:
          if (name === "content-length") continue;
          break;
        case 16:
          if (name === "proxy-connection") continue;
          break;
        case 17:
          if (name === "transfer-encoding") continue;
          break;
      }
      enc.field(hb, name, v);
    }
    if (length >= 0) enc.field(hb, "content-length", String(length));
    if (!hasDate) enc.field(hb, "date", httpDate());
    putHeaders(this.#out, st.id, hb.view(), endStream, this.#peer.maxFrameSize);
    if (hb.buf.length > 16 * 1024) this.#hb.buf = new Uint8Array(256);
    if (endStream) this.#sentEnd(st);
    this.#kick();
  }

  /** Our END_STREAM went out. */
  #sentEnd(st: Stream): void {
    st.sendClosed = true;
    // Refund the reset budget a little: a stream served to its end.
    this.#tokens = Math.min(this.#opt.resetBudget, this.#tokens + 1);
    if (st.recvClosed) this.#closeStream(st, null);
    else {
      // The response is complete; the rest of the request isn't needed
      // (§8.1): stop it without error.
      this.#resetStream(st.id, NO_ERROR, null);
    }
  }

  /** Frames a handler's response. */
  async #respond(st: Stream, ex: Exchange, res: Response): Promise<void> {
    let parts;
    try {
      parts = responseParts(res);
    } catch (e) {
      this.#core.log("cannot send response", e);
      parts = { status: 500, statusText: "", headers: [], body: "Internal Server Error" };
    }
    let status = parts.status;
    if (ex.takeover !== null || status < 200) {
      // An upgrade (101) has no HTTP/2 form (RFC 9113 §8.6); the upgrade's
      // owner sees `completed` settle without a takeover.
      if (parts.body instanceof ReadableStream) parts.body.cancel().catch(() => {});
      this.#core.log(`a protocol upgrade (status ${status}) is not possible over HTTP/2; sent 501`);
      parts = {
        status: 501,
        statusText: "",
        headers: [["content-type", REFUSAL_TYPE]] as [string, string][],
        body: "protocol upgrade is not supported over HTTP/2\n",
      };
      status = 501;
    }
    let userLength = -1;
    for (const [k, v] of parts.headers) {
      if (k.length === 14 && k.toLowerCase() === "content-length") userLength = parseInt(v, 10);
    }
    if (!(userLength >= 0)) userLength = -1;
    const isHead = st.head!.method === "HEAD";
    const noBody = noBodyStatus(status);
    let body = parts.body;
    ex.status = status;
    let streamed = false;
    if ((noBody || isHead) && body instanceof ReadableStream) {
      body.cancel().catch(() => {});
      body = null;
      streamed = true;
    }
    if (!(body instanceof ReadableStream)) {
      if (body === null || noBody || isHead) {
        let len = -1;
        if (isHead && !noBody) {
          len = userLength >= 0 || streamed ? userLength : body === null ? 0 : byteLength(body);
        } else if (status === 304 && userLength >= 0) len = userLength;
        else if (!noBody) len = 0;
        this.#sendHead(st, status, parts.headers, len, true);
        return;
      }
      if (typeof body === "string" && body.length <= SCRATCH_CHARS) {
        // Encoded into a scratch buffer: no allocation when it all goes
        // out at once (the usual case); copied if it must wait.
        const n = encoder.encodeInto(body, scratch).written;
        this.#sendHead(st, status, parts.headers, n, n === 0);
        if (n > 0) await this.#sendData(st, scratch.subarray(0, n), true, ex, true);
        return;
      }
      const bytes = typeof body === "string" ? encoder.encode(body) : body;
      this.#sendHead(st, status, parts.headers, bytes.byteLength, bytes.byteLength === 0);
      if (bytes.byteLength > 0) await this.#sendData(st, bytes, true, ex);
      return;
    }
    // A stream.
    const reader = body.getReader();
    ex.stopBody = (why) => void reader.cancel(why).catch(() => {});
    try {
      this.#sendHead(st, status, parts.headers, userLength, false);
      let sent = 0;
      for (;;) {
        const r = await reader.read();
        if (st.sendClosed) return;
        if (r.done) {
          if (userLength >= 0 && sent !== userLength) {
            this.#core.log("response body shorter than its Content-Length; stream reset");
            this.#resetStream(st.id, INTERNAL_ERROR, null);
            return;
          }
          await this.#sendData(st, EMPTY, true, ex);
          return;
        }
        let chunk = toBytes(r.value);
        if (userLength >= 0 && sent + chunk.byteLength > userLength) {
          chunk = chunk.subarray(0, userLength - sent);
          await this.#sendData(st, chunk, false, ex);
          this.#core.log("response body longer than its Content-Length; stream reset");
          if (!st.sendClosed) this.#resetStream(st.id, INTERNAL_ERROR, null);
          reader.cancel().catch(() => {});
          return;
        }
        sent += chunk.byteLength;
        if (chunk.byteLength > 0 && !(await this.#sendData(st, chunk, false, ex))) return;
      }
    } catch (e) {
      reader.cancel(e).catch(() => {});
      if (!st.sendClosed && !this.#closed) {
        this.#core.log("response body stream failed", e);
        this.#resetStream(st.id, INTERNAL_ERROR, e);
      }
    } finally {
      ex.stopBody = null;
    }
  }

  /**
   * Queues as much of `data[off..]` as the windows and the output bound
   * allow, now. Returns the new offset; `data.length + 1` once END_STREAM
   * went out (with `end`); -1 if the stream or connection is gone.
   */
  #push(st: Stream, data: Uint8Array, off: number, end: boolean, ex: Exchange | null): number {
    const n = data.byteLength;
    for (;;) {
      if (st.sendClosed || this.#closed) return -1;
      const rem = n - off;
      if (rem === 0 && !end) return n;
      let avail = rem;
      if (avail > st.sendWindow) avail = st.sendWindow;
      if (avail > this.#sendWindow) avail = this.#sendWindow;
      if (avail > this.#peer.maxFrameSize) avail = this.#peer.maxFrameSize;
      if ((avail <= 0 && rem > 0) || this.#out.len >= OUT_HIGH_WATER) return off;
      if (avail < 0) avail = 0;
      const last = end && avail === rem;
      putData(
        this.#out,
        st.id,
        off === 0 && avail === n ? data : data.subarray(off, off + avail),
        last,
      );
      st.sendWindow -= avail;
      this.#sendWindow -= avail;
      st.pushed += avail;
      this.#dataOut += avail;
      off += avail;
      if (ex !== null) ex.sentBytes += avail;
      this.#kick();
      if (last) {
        this.#sentEnd(st);
        return n + 1;
      }
    }
  }

  /**
   * Sends `data` on a stream as DATA frames within the peer's windows and
   * our output bound, waiting as needed. `false` when the stream or
   * connection went away. `volatile`: `data` is a scratch buffer, copied if
   * it can't all be queued at once.
   */
  async #sendData(
    st: Stream,
    data: Uint8Array,
    end: boolean,
    ex: Exchange | null,
    volatile = false,
  ): Promise<boolean> {
    const done = end ? data.byteLength + 1 : data.byteLength;
    let off = this.#push(st, data, 0, end, ex);
    if (off === done) return true;
    if (volatile && off >= 0) {
      data = data.slice(off);
      off = 0;
    }
    const complete = end ? data.byteLength + 1 : data.byteLength;
    for (;;) {
      if (off < 0) return false;
      if (off === complete) return true;
      if (off < data.byteLength && (st.sendWindow <= 0 || this.#sendWindow <= 0)) {
        // Wait for WINDOW_UPDATE. An empty END_STREAM frame needs no
        // window, only room. A shut stream window is this stream's wait
        // (its own meter: writeTimeout, minResponseRate); a shut connection
        // window is the connection's (see #connWait).
        const now = Date.now();
        let m: RateMeter | null = null;
        if (st.sendWindow <= 0) {
          const core = this.#core;
          m = st.outMeter ??= new RateMeter(
            core.minResponseRate,
            core.minRateGrace,
            core.writeTimeout,
          );
          // What went out since the last wait moved without waiting.
          credit(m, st.pushed - st.outMark, now);
          st.outMark = st.pushed;
          const at = st.outAt = m.begin(now);
          if (at > 0) this.#tighten(at);
        }
        if (this.#sendWindow <= 0) this.#connWait(st, now);
        await new Promise<void>((resolve) => (st.windowWake = resolve));
        if (m !== null) {
          m.end(Date.now(), 0);
          st.outAt = -1;
        }
      } else {
        await new Promise<void>((resolve) => this.#spaceWaiters.push(resolve));
      }
      off = this.#push(st, data, off, end, ex);
    }
  }

  // ---------------------------------------------------------------- writing

  /** Schedules a flush of the output buffer (coalescing this turn's frames). */
  #kick(): void {
    if (this.#writing || this.#flushQueued || this.#out.len === 0 || this.#closed) return;
    this.#flushQueued = true;
    queueMicrotask(() => {
      this.#flushQueued = false;
      if (!this.#writing && this.#out.len > 0 && !this.#closed) {
        this.#writeLoop().catch((e) => this.#failed(e));
      } else if (this.#stopping && !this.#writing) this.#afterStop();
    });
  }

  async #writeLoop(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#out.len > 0 && !this.#closed) {
        const b = this.#out;
        this.#out = this.#spare ?? new ByteBuf(1024);
        this.#spare = null;
        const v = b.view();
        // Every write waits on the peer: writeTimeout and minResponseRate
        // count it, as for an HTTP/1.1 response.
        const core = this.#core;
        const m = this.#wMeter ??= new RateMeter(
          core.minResponseRate,
          core.minRateGrace,
          core.writeTimeout,
        );
        let off = 0;
        while (off < v.byteLength) {
          const at = this.#writeAt = m.begin(Date.now());
          if (at > 0) this.#tighten(at);
          const w = await this.#conn.write(v.subarray(off));
          m.end(Date.now(), w);
          off += w;
        }
        this.#writeAt = -1;
        b.reset();
        // Reused while the connection is busy; an idle one lets it go.
        if (b.buf.length <= 2 * OUT_LIMIT) this.#spare = b;
        const ws = this.#spaceWaiters;
        if (ws.length > 0) {
          this.#spaceWaiters = [];
          for (const w of ws) w();
        }
      }
    } catch (e) {
      this.#writeAt = -1;
      if (!gone(e) && !this.#closed) this.#core.log("HTTP/2 write failed", e);
      this.#close();
    } finally {
      this.#writing = false;
    }
    if (this.#stopping && !this.#closed) this.#afterStop();
  }

  // -------------------------------------------------------------- lifecycle

  /** A connection error: GOAWAY with its code, then close (§5.4.1). */
  #connectionError(e: H2Error): void {
    if (this.#stopping) return;
    const msg = e.message.length > 200 ? e.message.slice(0, 200) : e.message;
    putGoaway(this.#out, this.#lastStream, e.code, msg);
    this.#stop(true);
  }

  /** Stops processing frames; closes once the output is written: at once
   * (`linger` false), or after half-closing and reading what the peer
   * still sends for a moment (after a GOAWAY for an error). */
  #stop(linger: boolean): void {
    if (this.#stopping) return;
    this.#stopping = true;
    this.#linger = linger;
    for (const st of [...this.#streams.values()]) this.#closeStream(st, CONN_CLOSED);
    // Bounded: a peer that doesn't read the last frames is cut off.
    this.#c.deadline = this.#stopAt = Date.now() + Math.max(this.#core.writeTimeout, LINGER_MS);
    this.#kick();
    if (!this.#writing && this.#out.len === 0 && !this.#flushQueued) this.#afterStop();
  }

  #linger = false;
  #lingering = false;

  /** The last frames are out. */
  #afterStop(): void {
    if (this.#lingering || this.#closed) return;
    this.#lingering = true;
    if (!this.#linger) return this.#close();
    try {
      this.#conn.closeWrite();
    } catch { /* not supported, or closed */ }
    // The read loop drains until EOF, its bound, or this deadline.
    this.#c.deadline = this.#stopAt = Date.now() + LINGER_MS;
  }

  /** The peer closed its side. */
  #peerClosed(): void {
    for (const st of [...this.#streams.values()]) this.#closeStream(st, CONN_CLOSED);
    this.#close();
  }

  /** Closes the socket and everything on it. */
  #close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping = true;
    for (const st of [...this.#streams.values()]) this.#closeStream(st, CONN_CLOSED);
    this.#c.close();
    const ws = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const w of ws) w();
  }

  #failed(e: unknown): void {
    if (!gone(e) && !this.#closed) this.#core.log("HTTP/2 connection failed", e);
    this.#close();
  }

  /** When the connection may end: after a GOAWAY, once no stream is left. */
  #maybeFinish(): void {
    if (this.#stopping || this.#busy > 0 || this.#streams.size > 0) return;
    if (this.#goawayLast >= 0 || this.#peerGoaway) this.#stop(false);
  }

  /** Shutdown's second GOAWAY: the real last stream id. */
  #finalGoaway(): void {
    this.#pingSince = 0;
    if (this.#goawayLast >= 0 || this.#stopping) return;
    this.#goawayLast = this.#lastStream;
    putGoaway(this.#out, this.#lastStream, NO_ERROR);
    this.#kick();
    this.#maybeFinish();
  }

  // ------------------------------------------------------------- deadlines

  /** Moves the connection's deadline earlier, to `t`. */
  #tighten(t: number): void {
    const d = this.#c.deadline;
    if (d === 0 || t < d) this.#c.deadline = t;
  }

  /** Recomputes the connection's deadline: the earliest of the
   * connection's timers and of every wait on the peer (streams tighten it
   * themselves when a wait begins; a stale, earlier deadline only makes
   * {@linkcode timeout} find nothing due and call this again). */
  #arm(): void {
    if (this.#stopping) return;
    const core = this.#core;
    let d = Infinity;
    if ((!this.#firstHeaders || this.#contStream !== 0) && core.readHeaderTimeout > 0) {
      d = Math.min(d, this.#headerSince + core.readHeaderTimeout);
    } else if (this.#streams.size === 0 && this.#idleSince > 0 && core.idleTimeout > 0) {
      d = Math.min(d, this.#idleSince + core.idleTimeout);
    }
    if (this.#writeAt > 0) d = Math.min(d, this.#writeAt);
    if (this.#cwAt > 0) d = Math.min(d, this.#cwAt);
    if (this.#pingSince > 0) d = Math.min(d, this.#pingSince + SHUTDOWN_PING_MS);
    for (const st of this.#streams.values()) {
      if (st.outAt > 0) d = Math.min(d, st.outAt);
      if (st.inAt > 0) d = Math.min(d, st.inAt);
    }
    this.#c.deadline = d === Infinity ? 0 : d;
  }

  /** Called by the server's sweeper when the deadline passed. */
  timeout(): void {
    if (this.#closed) return;
    const core = this.#core;
    const now = Date.now();
    if (this.#stopping) {
      // The last frames didn't go out, or the linger is over.
      if (now >= this.#stopAt) return this.#close();
      this.#c.deadline = this.#stopAt;
      return;
    }
    if (this.#writeAt > 0 && now >= this.#writeAt) {
      const at = this.#wMeter!.overdue(now);
      // The socket is blocked: writeTimeout, or below minResponseRate.
      // Nothing can be said to the peer any more (not even RST_STREAM).
      if (at === 0) return this.#cutSlowReader();
      this.#writeAt = at;
    }
    if (
      (!this.#firstHeaders || this.#contStream !== 0) && core.readHeaderTimeout > 0 &&
      now >= this.#headerSince + core.readHeaderTimeout
    ) {
      this.#connectionError(connError(NO_ERROR, "read header timeout"));
      return;
    }
    if (
      this.#firstHeaders && this.#streams.size === 0 && this.#idleSince > 0 &&
      core.idleTimeout > 0 && now >= this.#idleSince + core.idleTimeout
    ) {
      this.#connectionError(connError(NO_ERROR, "idle timeout"));
      return;
    }
    if (this.#pingSince > 0 && now >= this.#pingSince + SHUTDOWN_PING_MS) this.#finalGoaway();
    if (this.#cwAt > 0 && now >= this.#cwAt) {
      const at = this.#cwMeter!.overdue(now);
      if (at === 0) {
        // The peer keeps the connection window shut (or opens it too
        // slowly): give up on the streams waiting for it. Closing the last
        // ends the wait.
        for (const st of [...this.#connWaiters]) this.#resetStream(st.id, CANCEL, TOO_SLOW_READER);
      } else this.#cwAt = at;
    }
    for (const st of [...this.#streams.values()]) {
      if (st.outAt > 0 && now >= st.outAt) {
        const at = st.outMeter!.overdue(now);
        // The peer keeps this stream's window shut, or opens it too slowly.
        if (at === 0) this.#resetStream(st.id, CANCEL, TOO_SLOW_READER);
        else st.outAt = at;
      }
      if (!st.closed && st.inAt > 0 && now >= st.inAt) this.#bodyOverdue(st, now);
    }
    this.#kick();
    if (!this.#closed) this.#arm();
  }

  /** A wait for a stream's request body reached its deadline. */
  #bodyOverdue(st: Stream, now: number): void {
    const m = st.inMeter!;
    const core = this.#core;
    // The client may be held back by our own windows (the connection's,
    // filled by other streams whose handlers don't read): that time is not
    // the client's, so the meter starts over.
    const need = Math.max(1, Math.ceil((core.minBodyRate * core.minRateGrace) / 1000));
    if (Math.min(this.#recvWindow, st.recvWindow) < need) {
      m.reset();
      st.inMark = st.received;
      st.inAt = m.begin(now);
      return;
    }
    const at = m.overdue(now);
    if (at !== 0) {
      st.inAt = at;
      return;
    }
    // Stalled (readTimeout) or below minBodyRate while the handler waited.
    // The handler's read fails with a 408; the client gets that 408 if no
    // response started, else the stream is reset.
    const e = new HttpError(408, "request body too slow");
    this.#bodyFailed(st, e);
    const ex = st.ex;
    if (ex !== null && ex.status === 0 && !st.sendClosed) {
      ex.disconnected(e);
      ex.status = e.status;
      const body = encoder.encode(refusalBody(e));
      this.#sendHead(st, e.status, [["content-type", REFUSAL_TYPE]], body.byteLength, false);
      // END_STREAM, then RST_STREAM(NO_ERROR): the rest isn't wanted.
      this.#sendData(st, body, true, ex).catch(() => {});
    } else this.#resetStream(st.id, CANCEL, e);
  }

  /** The peer doesn't read its socket fast enough: close the connection;
   * every stream's exchange is canceled with TOO_SLOW_READER. */
  #cutSlowReader(): void {
    for (const st of [...this.#streams.values()]) this.#closeStream(st, TOO_SLOW_READER);
    this.#close();
  }

  /** A stream starts waiting for the connection's window. */
  #connWait(st: Stream, now: number): void {
    if (this.#connWaiters.size === 0) {
      const core = this.#core;
      const m = this.#cwMeter ??= new RateMeter(
        core.minResponseRate,
        core.minRateGrace,
        core.writeTimeout,
      );
      credit(m, this.#dataOut - this.#cwMark, now);
      this.#cwMark = this.#dataOut;
      const at = this.#cwAt = m.begin(now);
      if (at > 0) this.#tighten(at);
    }
    this.#connWaiters.add(st);
  }

  /** No stream waits for the connection's window any more. */
  #connWaitEnd(): void {
    if (this.#cwAt === -1) return;
    this.#cwMeter!.end(Date.now(), 0);
    this.#cwAt = -1;
  }

  /** Shutdown: GOAWAY(2^31-1) and a PING; on its ACK, the real GOAWAY;
   * streams then finish, and the connection closes when none is left. */
  closeIfIdle(): void {
    if (this.#draining || this.#stopping) return;
    this.#draining = true;
    putGoaway(this.#out, 0x7fffffff, NO_ERROR);
    putPing(this.#out, false, SHUTDOWN_PING);
    this.#pingSince = Date.now();
    this.#tighten(this.#pingSince + SHUTDOWN_PING_MS);
    this.#kick();
  }

  /** Cut now: every stream's exchange is canceled with `cause`. */
  abort(cause: unknown): void {
    for (const st of [...this.#streams.values()]) this.#closeStream(st, cause);
    this.#c.cancel(cause);
    this.#close();
  }
}

const EMPTY = new Uint8Array(0);
/** Strings up to this many chars are encoded into {@linkcode scratch}. */
const SCRATCH_CHARS = 4096;
const scratch = new Uint8Array(SCRATCH_CHARS * 3);

/** Tells a meter of `n` bytes that moved without a wait. */
function credit(m: RateMeter, n: number, now: number): void {
  if (n > 0) {
    m.begin(now);
    m.end(now, n);
  }
}

function byteLength(body: string | Uint8Array): number {
  if (typeof body !== "string") return body.byteLength;
  for (let i = 0; i < body.length; i++) {
    if (body.charCodeAt(i) >= 0x80) return encoder.encode(body).byteLength;
  }
  return body.length;
}

function equal8(b: Uint8Array, p: number, x: Uint8Array): boolean {
  for (let i = 0; i < 8; i++) if (b[p + i] !== x[i]) return false;
  return true;
}

/** For tests: the frame header layout. */
export { putHeader as _putHeader };
