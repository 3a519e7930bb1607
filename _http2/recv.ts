// Copyright 2026 the connctx authors. MIT license.
// What the client sends on streams: header blocks (HEADERS, then
// CONTINUATION frames, bounded in bytes and frames while they arrive), their
// HPACK decoding, trailers, the admission of a new stream (stream ids,
// MAX_CONCURRENT_STREAMS, GOAWAY, and the requests refused with 431, 413,
// 414 or 501), and DATA (both receive windows, padding, content-length,
// maxBodyBytes) queued for the handler. Called synchronously by the frame
// loop in `conn.ts`, one function call per frame.

import { HttpError } from "../_exchange/errors.ts";
import { ByteBuf } from "./buf.ts";
import { checkTrailers, requestHead } from "./fields.ts";
import {
  COMPRESSION_ERROR,
  connError,
  ENHANCE_YOUR_CALM,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  type FrameHeader,
  PROTOCOL_ERROR,
  readU31,
  REFUSED_STREAM,
  STREAM_CLOSED,
  streamError,
  unpad,
} from "./frame.ts";
import { HpackError } from "./hpack.ts";
import { arm } from "./deadlines.ts";
import { refuse, serve } from "./respond.ts";
import { Stream } from "./stream.ts";
// Type-only: the connection dispatches frames here; these update its state.
import type { Http2Conn } from "./conn.ts";

export function onHeaders(conn: Http2Conn, h: FrameHeader, b: Uint8Array, p: number): void {
  const id = h.stream;
  if ((id & 1) === 0) throw connError(PROTOCOL_ERROR, "even stream id from a client");
  const span = conn.span;
  unpad(h, b, p, span);
  const selfDep = (h.flags & FLAG_PRIORITY) !== 0 &&
    readU31(b, p + (h.flags & FLAG_PADDED ? 1 : 0)) === id;
  if (h.flags & FLAG_END_HEADERS) {
    onBlock(conn, id, h.flags, selfDep, b, span.start, span.end);
    return;
  }
  // The block continues: keep the fragment, bounded.
  const limit = conn.core.limits.maxHeaderBytes;
  if (span.end - span.start > limit) {
    throw connError(ENHANCE_YOUR_CALM, "header block too large");
  }
  const cb = conn.contBuf ??= new ByteBuf(Math.max(1024, span.end - span.start));
  cb.reset();
  cb.bytes(b.subarray(span.start, span.end));
  conn.contStream = id;
  conn.contFlags = h.flags;
  conn.contFrames = 0;
  conn.contSelfDep = selfDep;
  conn.headerSince = Date.now();
  arm(conn);
}

export function onContinuation(conn: Http2Conn, h: FrameHeader, b: Uint8Array, p: number): void {
  const cb = conn.contBuf!;
  const limit = conn.core.limits.maxHeaderBytes;
  if (cb.len + h.length > limit || ++conn.contFrames > Math.max(16, limit >>> 10)) {
    throw connError(ENHANCE_YOUR_CALM, "header block too large");
  }
  cb.bytes(b.subarray(p, p + h.length));
  if ((h.flags & FLAG_END_HEADERS) === 0) return;
  const id = conn.contStream;
  conn.contStream = 0;
  onBlock(conn, id, conn.contFlags, conn.contSelfDep, cb.buf, 0, cb.len);
  // Don't keep a large buffer around.
  if (cb.buf.length > 16 * 1024) conn.contBuf = null;
  arm(conn);
}

/** A complete header block for stream `id`. */
function onBlock(
  conn: Http2Conn,
  id: number,
  flags: number,
  selfDep: boolean,
  b: Uint8Array,
  start: number,
  end: number,
): void {
  let fields: string[];
  try {
    fields = conn.dec.decode(b, start, end);
  } catch (e) {
    if (e instanceof HpackError) throw connError(COMPRESSION_ERROR, e.message);
    throw e;
  }
  const overflow = conn.dec.overflow;
  const endStream = (flags & FLAG_END_STREAM) !== 0;
  const st = conn.streams.get(id);
  if (st !== undefined) {
    // Trailers.
    if (st.recvClosed) throw streamError(STREAM_CLOSED, id, "HEADERS after END_STREAM");
    if (!endStream) throw streamError(PROTOCOL_ERROR, id, "trailers without END_STREAM");
    if (overflow) throw streamError(PROTOCOL_ERROR, id, "trailers too large");
    checkTrailers(fields, id);
    endOfBody(conn, st);
    return;
  }
  if (id <= conn.lastStream) {
    const recent = conn.recent(id);
    // A stream we reset: the peer may not know yet; ignore (§5.1 closed).
    if (recent === 1) return;
    if (recent === 0) throw connError(STREAM_CLOSED, `HEADERS on closed stream ${id}`);
    throw connError(PROTOCOL_ERROR, `stream id ${id} lower than ${conn.lastStream}`);
  }
  conn.lastStream = id;
  // After the final GOAWAY, new streams are ignored (§6.8).
  if (conn.goawayLast >= 0 || conn.peerGoaway) return;
  if (selfDep) throw streamError(PROTOCOL_ERROR, id, "stream depends on itself");
  if (conn.busy >= conn.opt.maxConcurrentStreams) {
    throw streamError(REFUSED_STREAM, id, "too many concurrent streams");
  }
  const core = conn.core;
  // Pseudo-headers (at most 4 valid ones) don't count as header fields.
  const tooLarge = overflow || fields.length > (core.limits.maxHeaderCount + 4) * 2;
  const head = tooLarge ? null : requestHead(fields, id);
  if (head !== null && endStream && head.contentLength > 0) {
    throw streamError(PROTOCOL_ERROR, id, "content-length without DATA");
  }
  if (!conn.firstHeaders) {
    conn.firstHeaders = true;
    arm(conn);
  }
  const s = new Stream(conn, id, conn.peer.initialWindowSize, conn.opt.initialWindowSize);
  s.recvClosed = endStream;
  conn.open(s);
  if (head === null) {
    refuse(conn, s, new HttpError(431, "request header fields too large"));
    return;
  }
  s.head = head;
  s.contentLength = head.contentLength;
  if (head.method === "CONNECT") {
    refuse(conn, s, new HttpError(501, "CONNECT is not supported"));
  } else if (head.target.length > core.limits.maxUriBytes) {
    refuse(conn, s, new HttpError(414, "URI too long"));
  } else if (head.contentLength > core.maxBodyBytes) {
    refuse(conn, s, new HttpError(413, "request body too large"));
  } else {
    serve(conn, s).catch((e) => conn.failed(e));
  }
}

export function onData(conn: Http2Conn, h: FrameHeader, b: Uint8Array, p: number): void {
  const id = h.stream;
  const len = h.length;
  if (len > conn.recvWindow) throw connError(FLOW_CONTROL_ERROR, "connection window exceeded");
  conn.recvWindow -= len;
  const st = conn.streams.get(id);
  if (st === undefined || st.recvClosed) {
    // Not for anyone: the connection window comes back at once.
    conn.creditConn(len);
    if (st === undefined) {
      if (conn.idle(id)) throw connError(PROTOCOL_ERROR, `DATA on idle stream ${id}`);
      if (conn.recent(id) === 1) return;
    }
    throw streamError(STREAM_CLOSED, id, "DATA on a closed stream");
  }
  if (len > st.recvWindow) {
    conn.creditConn(len);
    throw streamError(FLOW_CONTROL_ERROR, id, "stream window exceeded");
  }
  st.recvWindow -= len;
  const span = conn.span;
  unpad(h, b, p, span);
  const n = span.end - span.start;
  // Padding is consumed on arrival.
  if (len > n) {
    conn.creditConn(len - n);
    st.creditStream(len - n);
  }
  st.received += n;
  if (st.ex !== null) st.ex.bodyBytes += n;
  if (st.contentLength >= 0 && st.received > st.contentLength) {
    conn.creditConn(n);
    throw streamError(PROTOCOL_ERROR, id, "more DATA than content-length");
  }
  if (n > 0) {
    if (st.discard || st.head === null) conn.creditConn(n);
    else if (st.received > conn.core.maxBodyBytes) {
      st.discard = true;
      conn.creditConn(n);
      st.bodyFailed(new HttpError(413, "request body too large"));
    } else {
      st.chunks.push(b.slice(span.start, span.end));
      st.queued += n;
      st.wakePull();
    }
  }
  if (h.flags & FLAG_END_STREAM) endOfBody(conn, st);
}

/** END_STREAM from the client. */
function endOfBody(conn: Http2Conn, st: Stream): void {
  if (st.contentLength >= 0 && st.received !== st.contentLength) {
    throw streamError(PROTOCOL_ERROR, st.id, "DATA shorter than content-length");
  }
  st.recvClosed = true;
  st.wakePull();
  if (st.sendClosed) conn.closeStream(st, null);
}
