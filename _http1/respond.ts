// Copyright 2026 the connctx authors. MIT license.
// Owns: writing one HTTP/1.1 response (RFC 9112 §6, §7; RFC 9110 §6.4.1) —
// the head from a `Response`'s parts (framing and hop-by-hop fields are
// ours), then the body: `Content-Length` when its size is known (a string,
// bytes, or a stream that turns out to be complete), chunked for a stream
// to an HTTP/1.1 client, close-delimited for HTTP/1.0; never a body for
// HEAD, 1xx, 204, 304; never more than a declared length.
//
// It reads and lowers the connection's one keep-alive state (`host.keep`):
// a handler's `Connection: close`, close-delimited framing, a truncated or
// failed body all end the connection after this response.

import type { Core } from "../_exchange/core.ts";
import { DISCONNECTED, peerGone } from "../_exchange/errors.ts";
import type { Exchange } from "../_exchange/exchange.ts";
import { type Parts, responseParts } from "../_exchange/response.ts";
import {
  acquire,
  byteLength,
  frameWhole,
  httpDate,
  noBodyStatus,
  putLatin1,
  release,
  sendChunk,
  sendRaw,
  sendSplit,
  statusLine,
  type Write,
} from "./encode.ts";
import { latin1, type RequestHead } from "./parser.ts";

const encoder = new TextEncoder();

/** What the response writer needs from its connection. */
export interface ResponseHost {
  readonly core: Core;
  readonly isClosed: boolean;
  /** The connection's keep-alive state; lowered here when the response
   * ends the connection. */
  keep: boolean;
  /** Writes one buffer (a whole response: Nagle stays on); then gives
   * `pooled` (a buffer from `acquire()`) back, if given. */
  writeAll(b: Uint8Array, pooled?: Uint8Array): Promise<void>;
  /** Writes one of several buffers (Nagle off, so the last is not held). */
  readonly write: Write;
  /** A long response body starts: watch for the client leaving. */
  watch(): void;
}

const PENDING: unique symbol = Symbol("pending");
const SETTLED: Promise<typeof PENDING> = Promise.resolve(PENDING);
const LAST_CHUNK = new TextEncoder().encode("0\r\n\r\n");
const FALLBACK: Parts = { status: 500, statusText: "", headers: [], body: "Internal Server Error" };

/**
 * Frames and writes `res` for the request `head`. Sets `ex.status` and
 * `ex.sentBytes`; lowers `host.keep` when the connection must close after.
 * Throws only when the socket fails.
 */
export function writeResponse(
  host: ResponseHost,
  res: Response,
  ex: Exchange,
  head: RequestHead,
): Promise<void> {
  let parts: Parts;
  try {
    parts = responseParts(res);
  } catch (e) {
    host.core.log("cannot send response", e);
    parts = FALLBACK;
  }
  const status = parts.status;
  // The head is written straight into a pooled buffer, field by field: no
  // intermediate strings on the common path.
  let buf = acquire();
  let p = putLatin1(statusLine(status, parts.statusText), buf, 0);
  let userLength = -1;
  let hasDate = false;
  const upgrade = status === 101 || (ex.takeover !== null && head.method === "CONNECT");
  for (const [k, v] of parts.headers) {
    const n = k.length;
    // Framing and hop-by-hop fields are ours to write.
    if (n === 14 && k.toLowerCase() === "content-length") {
      userLength = parseInt(v, 10);
      continue;
    }
    if (n === 10 && k.toLowerCase() === "connection") {
      if (!upgrade) {
        if (/(^|,)\s*close\s*(,|$)/i.test(v)) host.keep = false;
        continue;
      }
    } else if (n === 17 && k.toLowerCase() === "transfer-encoding") continue;
    else if (n === 10 && k.toLowerCase() === "keep-alive") continue;
    else if (n === 4 && !hasDate && k.toLowerCase() === "date") hasDate = true;
    if (p + n + v.length + 4 > buf.length - TAIL) buf = grow(buf, p, n + v.length + 4);
    p = putLatin1(k, buf, p);
    buf[p++] = 58;
    buf[p++] = 32;
    p = putLatin1(v, buf, p);
    buf[p++] = 13;
    buf[p++] = 10;
  }
  if (!hasDate) p = putLatin1(dateLine(), buf, p);
  ex.status = status;
  if (upgrade) {
    // 101 (or 2xx to CONNECT): the head alone; the bytes after it belong to
    // whoever takes the connection over.
    if (parts.body instanceof ReadableStream) parts.body.cancel().catch(() => {});
    return finish(host, buf, p, null, ex);
  }
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
    if (!noBody) p = putLength(buf, p, isHead && userLength >= 0 ? userLength : len);
    else if (status === 304 && userLength >= 0) p = putLength(buf, p, userLength);
    p = putLatin1(connHeader(host.keep, http10), buf, p);
    return finish(host, buf, p, isHead || noBody ? null : body, ex);
  }

  // A stream: the head goes on as a string (rare enough).
  const h = latin1(buf, 0, p);
  release(buf);
  return writeStream(host, body, ex, h, userLength, http10, isHead);
}

/** Room kept at the end of the head buffer for the fields we add. */
const TAIL = 128;

/** A bigger (unpooled) copy of a head buffer that ran out of room. */
function grow(buf: Uint8Array, used: number, need: number): Uint8Array {
  const nb = new Uint8Array(Math.max(buf.length * 2, used + need + TAIL * 2));
  nb.set(buf.subarray(0, used));
  release(buf);
  return nb;
}

/** `content-length: <n>\r\n` at `p`. */
function putLength(buf: Uint8Array, p: number, n: number): number {
  p = putLatin1("content-length: ", buf, p);
  p = putLatin1(String(n), buf, p);
  buf[p++] = 13;
  buf[p++] = 10;
  return p;
}

let dateStr = "";
let dateLineStr = "";
/** `date: <now>\r\n`, remade when the second changes. */
function dateLine(): string {
  const d = httpDate();
  if (d !== dateStr) {
    dateStr = d;
    dateLineStr = `date: ${d}\r\n`;
  }
  return dateLineStr;
}

/** Ends the head in `buf[0, p)` and writes it with a whole body: one write
 * when both fit the buffer. */
function finish(
  host: ResponseHost,
  buf: Uint8Array,
  p: number,
  body: string | Uint8Array | null,
  ex: Exchange,
): Promise<void> {
  buf[p++] = 13;
  buf[p++] = 10;
  let end = p;
  if (body !== null) {
    if (typeof body === "string") {
      if (body.length <= buf.length - p) {
        const r = encoder.encodeInto(body, buf.subarray(p));
        if (r.read === body.length) end = p + r.written;
        else return split(host, buf, p, body, ex);
      } else return split(host, buf, p, body, ex);
    } else if (body.byteLength <= buf.length - p) {
      buf.set(body, p);
      end = p + body.byteLength;
    } else return split(host, buf, p, body, ex);
    ex.sentBytes += end - p;
  }
  return host.writeAll(buf.subarray(0, end), buf);
}

/** A head and a body that do not fit one buffer: two writes. */
async function split(
  host: ResponseHost,
  buf: Uint8Array,
  p: number,
  body: string | Uint8Array,
  ex: Exchange,
): Promise<void> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  await host.write(buf.subarray(0, p));
  release(buf);
  await host.write(bytes);
  ex.sentBytes += bytes.byteLength;
}

async function writeStream(
  host: ResponseHost,
  body: ReadableStream<Uint8Array>,
  ex: Exchange,
  h: string,
  userLength: number,
  http10: boolean,
  isHead: boolean,
): Promise<void> {
  // HEAD: the head only, with the length the GET would have when the body
  // turns out to be complete already.
  if (isHead) {
    if (userLength < 0) {
      const reader = body.getReader();
      const len = await wholeLength(reader);
      if (len >= 0) userLength = len;
      reader.cancel().catch(() => {});
    } else body.cancel().catch(() => {});
    if (userLength >= 0) h += `content-length: ${userLength}\r\n`;
    h += connHeader(host.keep, http10);
    await send(host, h, null);
    return;
  }
  // A stream may take long (server-sent events): watch for the client
  // leaving so the request's context is canceled promptly.
  host.watch();
  const reader = body.getReader();
  // If the client leaves while we wait on the body, cancel it: its cancel()
  // runs (as with Deno.serve) and the wait below ends.
  ex.stopBody = (why) => void reader.cancel(why).catch(() => {});
  if (ex.gone) ex.stopBody(DISCONNECTED);
  try {
    const first = await reader.read();
    if (ex.gone) return void (host.keep = false);
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
      h += connHeader(host.keep, http10);
      await send(host, h, chunk);
      if (chunk !== null) ex.sentBytes += chunk.byteLength;
      return;
    }
    // Streaming. Identity framing if the handler set a length, chunked for
    // HTTP/1.1, close-delimited for HTTP/1.0.
    let chunked = false;
    if (userLength >= 0) {
      h += `content-length: ${userLength}\r\n`;
    } else if (!http10) {
      h += "transfer-encoding: chunked\r\n";
      chunked = true;
    } else host.keep = false;
    h += connHeader(host.keep, http10);
    let prefix = h + "\r\n";
    let sent = 0;
    let chunk: Uint8Array | null = toBytes(first.value);
    while (chunk !== null) {
      // Never more than the declared length: the excess would be read as
      // the next response. Send what fits, then stop and close.
      const over = userLength >= 0 && sent + chunk.byteLength > userLength;
      if (over) chunk = chunk.subarray(0, userLength - sent);
      if (chunk.byteLength > 0 || prefix !== "") {
        if (chunked && chunk.byteLength > 0) await sendChunk(host.write, prefix, chunk);
        else await sendRaw(host.write, prefix, chunk);
        prefix = "";
        sent += chunk.byteLength;
        ex.sentBytes += chunk.byteLength;
      }
      if (over) {
        reader.cancel().catch(() => {});
        host.core.log("response body longer than its Content-Length; truncated");
        return void (host.keep = false);
      }
      const r: ReadableStreamReadResult<Uint8Array> = await (next ?? reader.read());
      next = null;
      chunk = r.done ? null : toBytes(r.value);
      if (ex.gone) return void (host.keep = false);
      if (host.isClosed) throw new Error("connection closed");
    }
    if (chunked) await host.writeAll(LAST_CHUNK);
    if (userLength >= 0 && sent !== userLength) host.keep = false;
  } catch (e) {
    host.keep = false;
    reader.cancel(e).catch(() => {});
    if (peerGone(e)) ex.disconnected();
    else if (!host.isClosed && !ex.gone) host.core.log("response body stream failed", e);
  } finally {
    ex.stopBody = null;
  }
}

/** Sends a head and a whole body: one write when both fit a pooled buffer. */
async function send(host: ResponseHost, head: string, body: string | Uint8Array | null) {
  const buf = acquire();
  try {
    const h = head + "\r\n";
    const frame = frameWhole(buf, h, body);
    // One write (no TCP_NODELAY needed), or the multi-write path.
    if (frame !== null) await host.writeAll(frame);
    else await sendSplit(host.write, buf, h, body);
  } finally {
    release(buf);
  }
}

/** The length of a body that is already complete (read without waiting
 * past the first chunk), or -1. */
async function wholeLength(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<number> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    // The first chunk of a whole body settles within a turn of the event
    // loop; a live stream (events) would not, and HEAD must not wait for it.
    const turn = new Promise<typeof PENDING>((r) => (timer = setTimeout(() => r(PENDING), 0)));
    const first = await Promise.race([reader.read(), turn]);
    clearTimeout(timer);
    if (first === PENDING) return -1;
    if (first.done) return 0;
    const second = await Promise.race([reader.read(), SETTLED]);
    if (second === PENDING || !second.done) return -1;
    return toBytes(first.value).byteLength;
  } catch {
    clearTimeout(timer);
    return -1;
  }
}

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
