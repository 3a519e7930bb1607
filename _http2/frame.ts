// Copyright 2026 the connctx authors. MIT license.
// HTTP/2 frames (RFC 9113 §4, §6): the frame header, per-type checks that
// need no connection state, payload readers and frame writers.
//
// Error assignment follows RFC 9113 exactly:
//
// | frame         | condition                          | error                      |
// | ------------- | ---------------------------------- | -------------------------- |
// | any           | length > SETTINGS_MAX_FRAME_SIZE   | connection FRAME_SIZE      |
// | DATA          | stream 0                           | connection PROTOCOL        |
// | DATA, HEADERS | PADDED but no Pad Length octet     | connection FRAME_SIZE      |
// | DATA, HEADERS | padding ≥ what follows Pad Length  | connection PROTOCOL        |
// | HEADERS       | stream 0                           | connection PROTOCOL        |
// | HEADERS       | PRIORITY flag, < 5 octets left     | connection FRAME_SIZE      |
// | PRIORITY      | stream 0                           | connection PROTOCOL        |
// | PRIORITY      | length ≠ 5                         | stream FRAME_SIZE          |
// | RST_STREAM    | stream 0                           | connection PROTOCOL        |
// | RST_STREAM    | length ≠ 4                         | connection FRAME_SIZE      |
// | SETTINGS      | stream ≠ 0                         | connection PROTOCOL        |
// | SETTINGS      | ACK with a payload; length % 6 ≠ 0 | connection FRAME_SIZE      |
// | SETTINGS      | ENABLE_PUSH ∉ {0,1}                | connection PROTOCOL        |
// | SETTINGS      | INITIAL_WINDOW_SIZE > 2^31-1       | connection FLOW_CONTROL    |
// | SETTINGS      | MAX_FRAME_SIZE ∉ [2^14, 2^24-1]    | connection PROTOCOL        |
// | PUSH_PROMISE  | sent by a client                   | connection PROTOCOL        |
// | PING          | stream ≠ 0                         | connection PROTOCOL        |
// | PING          | length ≠ 8                         | connection FRAME_SIZE      |
// | GOAWAY        | stream ≠ 0                         | connection PROTOCOL        |
// | GOAWAY        | length < 8                         | connection FRAME_SIZE      |
// | WINDOW_UPDATE | length ≠ 4                         | connection FRAME_SIZE      |
// | WINDOW_UPDATE | increment 0 on a stream / on 0     | stream / connection PROTOCOL |
// | CONTINUATION  | stream 0                           | connection PROTOCOL        |
// | unknown type  | —                                  | ignored (§4.1, §5.5)       |

import type { ByteBuf } from "./buf.ts";

/** Frame types (RFC 9113 §6). */
export const DATA = 0x0;
/** HEADERS frame type. */
export const HEADERS = 0x1;
/** PRIORITY frame type (deprecated; accepted and ignored). */
export const PRIORITY = 0x2;
/** RST_STREAM frame type. */
export const RST_STREAM = 0x3;
/** SETTINGS frame type. */
export const SETTINGS = 0x4;
/** PUSH_PROMISE frame type (never from a client). */
export const PUSH_PROMISE = 0x5;
/** PING frame type. */
export const PING = 0x6;
/** GOAWAY frame type. */
export const GOAWAY = 0x7;
/** WINDOW_UPDATE frame type. */
export const WINDOW_UPDATE = 0x8;
/** CONTINUATION frame type. */
export const CONTINUATION = 0x9;

/** END_STREAM flag (DATA, HEADERS). */
export const FLAG_END_STREAM = 0x1;
/** ACK flag (SETTINGS, PING). */
export const FLAG_ACK = 0x1;
/** END_HEADERS flag (HEADERS, PUSH_PROMISE, CONTINUATION). */
export const FLAG_END_HEADERS = 0x4;
/** PADDED flag (DATA, HEADERS, PUSH_PROMISE). */
export const FLAG_PADDED = 0x8;
/** PRIORITY flag (HEADERS). */
export const FLAG_PRIORITY = 0x20;

/** Error codes (RFC 9113 §7). */
export const NO_ERROR = 0x0;
/** PROTOCOL_ERROR. */
export const PROTOCOL_ERROR = 0x1;
/** INTERNAL_ERROR. */
export const INTERNAL_ERROR = 0x2;
/** FLOW_CONTROL_ERROR. */
export const FLOW_CONTROL_ERROR = 0x3;
/** SETTINGS_TIMEOUT. */
export const SETTINGS_TIMEOUT = 0x4;
/** STREAM_CLOSED. */
export const STREAM_CLOSED = 0x5;
/** FRAME_SIZE_ERROR. */
export const FRAME_SIZE_ERROR = 0x6;
/** REFUSED_STREAM. */
export const REFUSED_STREAM = 0x7;
/** CANCEL. */
export const CANCEL = 0x8;
/** COMPRESSION_ERROR. */
export const COMPRESSION_ERROR = 0x9;
/** CONNECT_ERROR. */
export const CONNECT_ERROR = 0xa;
/** ENHANCE_YOUR_CALM. */
export const ENHANCE_YOUR_CALM = 0xb;
/** INADEQUATE_SECURITY. */
export const INADEQUATE_SECURITY = 0xc;
/** HTTP_1_1_REQUIRED. */
export const HTTP_1_1_REQUIRED = 0xd;

/** SETTINGS identifiers (RFC 9113 §6.5.2). */
export const SETTINGS_HEADER_TABLE_SIZE = 0x1;
/** SETTINGS_ENABLE_PUSH. */
export const SETTINGS_ENABLE_PUSH = 0x2;
/** SETTINGS_MAX_CONCURRENT_STREAMS. */
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
/** SETTINGS_INITIAL_WINDOW_SIZE. */
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
/** SETTINGS_MAX_FRAME_SIZE. */
export const SETTINGS_MAX_FRAME_SIZE = 0x5;
/** SETTINGS_MAX_HEADER_LIST_SIZE. */
export const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** Size of a frame header. */
export const FRAME_HEADER_SIZE = 9;
/** The smallest SETTINGS_MAX_FRAME_SIZE, and its initial value. */
export const MIN_MAX_FRAME_SIZE = 16_384;
/** The largest SETTINGS_MAX_FRAME_SIZE. */
export const MAX_MAX_FRAME_SIZE = 16_777_215;
/** The largest flow-control window. */
export const MAX_WINDOW = 0x7fffffff;
/** The initial flow-control window (RFC 9113 §6.9.2). */
export const DEFAULT_WINDOW = 65_535;

/** The client connection preface (RFC 9113 §3.4). */
export const PREFACE: Uint8Array = new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

const CODE_NAMES = [
  "NO_ERROR",
  "PROTOCOL_ERROR",
  "INTERNAL_ERROR",
  "FLOW_CONTROL_ERROR",
  "SETTINGS_TIMEOUT",
  "STREAM_CLOSED",
  "FRAME_SIZE_ERROR",
  "REFUSED_STREAM",
  "CANCEL",
  "COMPRESSION_ERROR",
  "CONNECT_ERROR",
  "ENHANCE_YOUR_CALM",
  "INADEQUATE_SECURITY",
  "HTTP_1_1_REQUIRED",
];

/**
 * The name of an error code, e.g. `PROTOCOL_ERROR`.
 *
 * @param code The code.
 * @returns Its name, or `0x…` for an unknown code.
 */
export function errorName(code: number): string {
  return CODE_NAMES[code] ?? `0x${code.toString(16)}`;
}

/**
 * An HTTP/2 error: a connection error (`stream === 0`: GOAWAY and close) or
 * a stream error (RST_STREAM on `stream`), RFC 9113 §5.4.
 */
export class H2Error extends Error {
  /** The error code (RFC 9113 §7). */
  readonly code: number;
  /** The stream in error, or 0 for a connection error. */
  readonly stream: number;

  /**
   * Makes the error.
   *
   * @param code Error code.
   * @param stream Stream id, or 0 for a connection error.
   * @param message Detail (sent as GOAWAY debug data for connection errors).
   */
  constructor(code: number, stream: number, message: string) {
    super(`${errorName(code)}: ${message}`);
    this.name = "H2Error";
    this.code = code;
    this.stream = stream;
  }
}

/**
 * A connection error (RFC 9113 §5.4.1).
 *
 * @param code Error code.
 * @param message Detail.
 * @returns The error.
 */
export function connError(code: number, message: string): H2Error {
  return new H2Error(code, 0, message);
}

/**
 * A stream error (RFC 9113 §5.4.2).
 *
 * @param code Error code.
 * @param stream The stream.
 * @param message Detail.
 * @returns The error.
 */
export function streamError(code: number, stream: number, message: string): H2Error {
  return new H2Error(code, stream, message);
}

/** A parsed frame header. */
export interface FrameHeader {
  /** Payload length. */
  length: number;
  /** Frame type. */
  type: number;
  /** Flags. */
  flags: number;
  /** Stream id (the reserved bit cleared). */
  stream: number;
}

/**
 * Reads a frame header (RFC 9113 §4.1) into `out` (no allocation).
 *
 * @param b Bytes.
 * @param at Offset of the header; 9 bytes must be there.
 * @param out Receives the fields.
 */
export function readFrameHeader(b: Uint8Array, at: number, out: FrameHeader): void {
  out.length = (b[at] << 16) | (b[at + 1] << 8) | b[at + 2];
  out.type = b[at + 3];
  out.flags = b[at + 4];
  out.stream = ((b[at + 5] & 0x7f) << 24 | (b[at + 6] << 16) | (b[at + 7] << 8) | b[at + 8]) >>> 0;
}

/**
 * Writes a frame header.
 *
 * @param b Destination.
 * @param at Offset; 9 bytes of room.
 * @param length Payload length.
 * @param type Frame type.
 * @param flags Flags.
 * @param stream Stream id.
 */
export function writeFrameHeader(
  b: Uint8Array,
  at: number,
  length: number,
  type: number,
  flags: number,
  stream: number,
): void {
  b[at] = length >>> 16;
  b[at + 1] = length >>> 8;
  b[at + 2] = length;
  b[at + 3] = type;
  b[at + 4] = flags;
  b[at + 5] = (stream >>> 24) & 0x7f;
  b[at + 6] = stream >>> 16;
  b[at + 7] = stream >>> 8;
  b[at + 8] = stream;
}

/**
 * The checks on a frame header that need no connection state (the table
 * at the top of this file), for a frame a server receives.
 *
 * @param h The header.
 * @param maxFrameSize Our SETTINGS_MAX_FRAME_SIZE.
 * @throws {H2Error} The connection or stream error the frame causes.
 */
export function checkFrame(h: FrameHeader, maxFrameSize: number): void {
  const len = h.length;
  if (len > maxFrameSize) {
    throw connError(FRAME_SIZE_ERROR, `frame of ${len} octets exceeds ${maxFrameSize}`);
  }
  switch (h.type) {
    case DATA:
      if (h.stream === 0) throw connError(PROTOCOL_ERROR, "DATA on stream 0");
      if ((h.flags & FLAG_PADDED) && len < 1) throw connError(FRAME_SIZE_ERROR, "DATA too short");
      return;
    case HEADERS: {
      if (h.stream === 0) throw connError(PROTOCOL_ERROR, "HEADERS on stream 0");
      const need = (h.flags & FLAG_PADDED ? 1 : 0) + (h.flags & FLAG_PRIORITY ? 5 : 0);
      if (len < need) throw connError(FRAME_SIZE_ERROR, "HEADERS too short");
      return;
    }
    case PRIORITY:
      if (h.stream === 0) throw connError(PROTOCOL_ERROR, "PRIORITY on stream 0");
      if (len !== 5) throw streamError(FRAME_SIZE_ERROR, h.stream, "PRIORITY length not 5");
      return;
    case RST_STREAM:
      if (h.stream === 0) throw connError(PROTOCOL_ERROR, "RST_STREAM on stream 0");
      if (len !== 4) throw connError(FRAME_SIZE_ERROR, "RST_STREAM length not 4");
      return;
    case SETTINGS:
      if (h.stream !== 0) throw connError(PROTOCOL_ERROR, "SETTINGS on a stream");
      if ((h.flags & FLAG_ACK) && len !== 0) {
        throw connError(FRAME_SIZE_ERROR, "SETTINGS ACK with a payload");
      }
      if (len % 6 !== 0) throw connError(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6");
      return;
    case PUSH_PROMISE:
      throw connError(PROTOCOL_ERROR, "PUSH_PROMISE from a client");
    case PING:
      if (h.stream !== 0) throw connError(PROTOCOL_ERROR, "PING on a stream");
      if (len !== 8) throw connError(FRAME_SIZE_ERROR, "PING length not 8");
      return;
    case GOAWAY:
      if (h.stream !== 0) throw connError(PROTOCOL_ERROR, "GOAWAY on a stream");
      if (len < 8) throw connError(FRAME_SIZE_ERROR, "GOAWAY too short");
      return;
    case WINDOW_UPDATE:
      if (len !== 4) throw connError(FRAME_SIZE_ERROR, "WINDOW_UPDATE length not 4");
      return;
    case CONTINUATION:
      if (h.stream === 0) throw connError(PROTOCOL_ERROR, "CONTINUATION on stream 0");
      return;
  }
}

/** Where a padded frame's content lies within its payload. */
export interface Span {
  /** First content byte. */
  start: number;
  /** One past the last content byte. */
  end: number;
}

/**
 * Locates the data of a DATA frame, or the field block fragment of a
 * HEADERS frame, inside padding (and HEADERS' priority fields), into `out`.
 * `checkFrame` has run.
 *
 * @param h The header.
 * @param b Bytes.
 * @param at Offset of the payload.
 * @param out Receives the content span (absolute offsets).
 * @throws {H2Error} Connection PROTOCOL_ERROR if the padding is too long.
 */
export function unpad(h: FrameHeader, b: Uint8Array, at: number, out: Span): void {
  let start = at;
  let end = at + h.length;
  if (h.flags & FLAG_PADDED) {
    const pad = b[start++];
    const avail = end - start - (h.type === HEADERS && h.flags & FLAG_PRIORITY ? 5 : 0);
    if (pad > avail) throw connError(PROTOCOL_ERROR, "padding exceeds the payload");
    end -= pad;
  }
  // HEADERS' priority fields (deprecated, §5.3.2) are skipped; the
  // connection checks the self-dependency after decoding the block.
  if (h.type === HEADERS && h.flags & FLAG_PRIORITY) start += 5;
  out.start = start;
  out.end = end;
}

/**
 * A 31-bit big-endian number (the reserved bit cleared).
 *
 * @param b Bytes.
 * @param at Offset.
 * @returns The number.
 */
export function readU31(b: Uint8Array, at: number): number {
  return ((b[at] & 0x7f) << 24 | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/**
 * A 32-bit big-endian number.
 *
 * @param b Bytes.
 * @param at Offset.
 * @returns The number.
 */
export function readU32(b: Uint8Array, at: number): number {
  return ((b[at] << 24) | (b[at + 1] << 16) | (b[at + 2] << 8) | b[at + 3]) >>> 0;
}

/**
 * Validates a PRIORITY frame's payload (`checkFrame` has run).
 *
 * @param h The header.
 * @param b Bytes.
 * @param at Offset of the payload.
 * @throws {H2Error} Stream PROTOCOL_ERROR if the stream depends on itself.
 */
export function checkPriority(h: FrameHeader, b: Uint8Array, at: number): void {
  if (readU31(b, at) === h.stream) {
    throw streamError(PROTOCOL_ERROR, h.stream, "stream depends on itself");
  }
}

/**
 * Reads a WINDOW_UPDATE increment (`checkFrame` has run).
 *
 * @param h The header.
 * @param b Bytes.
 * @param at Offset of the payload.
 * @returns The increment, 1..2^31-1.
 * @throws {H2Error} PROTOCOL_ERROR for 0: a stream error on a stream, a
 *   connection error on stream 0.
 */
export function windowIncrement(h: FrameHeader, b: Uint8Array, at: number): number {
  const inc = readU31(b, at);
  if (inc === 0) {
    if (h.stream === 0) throw connError(PROTOCOL_ERROR, "WINDOW_UPDATE of 0");
    throw streamError(PROTOCOL_ERROR, h.stream, "WINDOW_UPDATE of 0");
  }
  return inc;
}

/** A peer's settings, with the protocol's initial values. */
export interface PeerSettings {
  /** SETTINGS_HEADER_TABLE_SIZE. */
  headerTableSize: number;
  /** SETTINGS_ENABLE_PUSH. */
  enablePush: number;
  /** SETTINGS_MAX_CONCURRENT_STREAMS. */
  maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE. */
  initialWindowSize: number;
  /** SETTINGS_MAX_FRAME_SIZE. */
  maxFrameSize: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE. */
  maxHeaderListSize: number;
}

/**
 * The settings a peer has until it says otherwise (RFC 9113 §6.5.2).
 *
 * @returns A fresh settings object.
 */
export function initialSettings(): PeerSettings {
  return {
    headerTableSize: 4096,
    enablePush: 1,
    maxConcurrentStreams: Infinity,
    initialWindowSize: DEFAULT_WINDOW,
    maxFrameSize: MIN_MAX_FRAME_SIZE,
    maxHeaderListSize: Infinity,
  };
}

/**
 * Applies a SETTINGS frame's payload to `s` (`checkFrame` has run; not an
 * ACK). Unknown identifiers are ignored (§6.5.2).
 *
 * @param b Bytes.
 * @param at Offset of the payload.
 * @param len Payload length.
 * @param s The settings to update.
 * @throws {H2Error} The connection errors of §6.5.2.
 */
export function applySettings(b: Uint8Array, at: number, len: number, s: PeerSettings): void {
  for (let p = at; p < at + len; p += 6) {
    const id = (b[p] << 8) | b[p + 1];
    const v = readU32(b, p + 2);
    switch (id) {
      case SETTINGS_HEADER_TABLE_SIZE:
        s.headerTableSize = v;
        break;
      case SETTINGS_ENABLE_PUSH:
        if (v > 1) throw connError(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH not 0 or 1");
        s.enablePush = v;
        break;
      case SETTINGS_MAX_CONCURRENT_STREAMS:
        s.maxConcurrentStreams = v;
        break;
      case SETTINGS_INITIAL_WINDOW_SIZE:
        if (v > MAX_WINDOW) {
          throw connError(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE over 2^31-1");
        }
        s.initialWindowSize = v;
        break;
      case SETTINGS_MAX_FRAME_SIZE:
        if (v < MIN_MAX_FRAME_SIZE || v > MAX_MAX_FRAME_SIZE) {
          throw connError(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range");
        }
        s.maxFrameSize = v;
        break;
      case SETTINGS_MAX_HEADER_LIST_SIZE:
        s.maxHeaderListSize = v;
        break;
    }
  }
}

/**
 * Appends a frame header to `w` (room is made).
 *
 * @param w The buffer.
 * @param length Payload length.
 * @param type Frame type.
 * @param flags Flags.
 * @param stream Stream id.
 */
export function putHeader(
  w: ByteBuf,
  length: number,
  type: number,
  flags: number,
  stream: number,
): void {
  w.ensure(FRAME_HEADER_SIZE + length);
  writeFrameHeader(w.buf, w.len, length, type, flags, stream);
  w.len += FRAME_HEADER_SIZE;
}

function putU32(w: ByteBuf, v: number): void {
  const b = w.buf;
  const at = w.len;
  b[at] = v >>> 24;
  b[at + 1] = v >>> 16;
  b[at + 2] = v >>> 8;
  b[at + 3] = v;
  w.len = at + 4;
}

/**
 * Appends a SETTINGS frame.
 *
 * @param w The buffer.
 * @param entries `[identifier, value]` pairs; empty with `ack`.
 * @param ack Whether this acknowledges the peer's SETTINGS.
 */
export function putSettings(
  w: ByteBuf,
  entries: readonly (readonly [number, number])[],
  ack: boolean,
): void {
  putHeader(w, entries.length * 6, SETTINGS, ack ? FLAG_ACK : 0, 0);
  for (const [id, v] of entries) {
    w.byte(id >>> 8);
    w.byte(id & 0xff);
    putU32(w, v);
  }
}

/**
 * Appends a PING frame.
 *
 * @param w The buffer.
 * @param ack Whether this answers a PING.
 * @param data The 8 opaque octets (from `b[at..at+8)`).
 * @param at Offset of the data in `data`.
 */
export function putPing(w: ByteBuf, ack: boolean, data: Uint8Array, at = 0): void {
  putHeader(w, 8, PING, ack ? FLAG_ACK : 0, 0);
  w.buf.set(data.subarray(at, at + 8), w.len);
  w.len += 8;
}

/**
 * Appends a GOAWAY frame.
 *
 * @param w The buffer.
 * @param lastStream The last stream id that was or might be processed.
 * @param code Error code.
 * @param debug Debug data (ASCII), possibly empty.
 */
export function putGoaway(w: ByteBuf, lastStream: number, code: number, debug = ""): void {
  const d = debug.length > 256 ? debug.slice(0, 256) : debug;
  putHeader(w, 8 + d.length, GOAWAY, 0, 0);
  putU32(w, lastStream & 0x7fffffff);
  putU32(w, code);
  for (let i = 0; i < d.length; i++) w.byte(d.charCodeAt(i) & 0x7f);
}

/**
 * Appends a RST_STREAM frame.
 *
 * @param w The buffer.
 * @param stream The stream.
 * @param code Error code.
 */
export function putRstStream(w: ByteBuf, stream: number, code: number): void {
  putHeader(w, 4, RST_STREAM, 0, stream);
  putU32(w, code);
}

/**
 * Appends a WINDOW_UPDATE frame.
 *
 * @param w The buffer.
 * @param stream The stream, or 0 for the connection.
 * @param increment 1..2^31-1.
 */
export function putWindowUpdate(w: ByteBuf, stream: number, increment: number): void {
  putHeader(w, 4, WINDOW_UPDATE, 0, stream);
  putU32(w, increment);
}

/**
 * Appends a DATA frame.
 *
 * @param w The buffer.
 * @param stream The stream.
 * @param data The payload (at most the peer's SETTINGS_MAX_FRAME_SIZE).
 * @param endStream Whether this ends the stream.
 */
export function putData(w: ByteBuf, stream: number, data: Uint8Array, endStream: boolean): void {
  putHeader(w, data.byteLength, DATA, endStream ? FLAG_END_STREAM : 0, stream);
  w.buf.set(data, w.len);
  w.len += data.byteLength;
}

/**
 * Appends a field block as a HEADERS frame and as many CONTINUATION frames
 * as `maxFrameSize` requires.
 *
 * @param w The buffer.
 * @param stream The stream.
 * @param block The encoded field block.
 * @param endStream Whether the HEADERS frame ends the stream.
 * @param maxFrameSize The peer's SETTINGS_MAX_FRAME_SIZE.
 */
export function putHeaders(
  w: ByteBuf,
  stream: number,
  block: Uint8Array,
  endStream: boolean,
  maxFrameSize: number,
): void {
  const n = block.byteLength;
  let first = Math.min(n, maxFrameSize);
  const es = endStream ? FLAG_END_STREAM : 0;
  putHeader(w, first, HEADERS, es | (first === n ? FLAG_END_HEADERS : 0), stream);
  w.buf.set(block.subarray(0, first), w.len);
  w.len += first;
  while (first < n) {
    const size = Math.min(n - first, maxFrameSize);
    const end = first + size;
    putHeader(w, size, CONTINUATION, end === n ? FLAG_END_HEADERS : 0, stream);
    w.buf.set(block.subarray(first, end), w.len);
    w.len += size;
    first = end;
  }
}
