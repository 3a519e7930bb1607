// Copyright 2026 the connctx authors. MIT license.
// The response side of one HTTP/2 stream: running its handler (`serve`),
// refusing a request we can't accept (`refuse`), encoding the response head
// into HEADERS (`sendHead`), and framing the body into DATA within the
// peer's windows (the stream's and the connection's) and the output bound,
// waiting for WINDOW_UPDATE (metered: writeTimeout, minResponseRate) or for
// room in the output buffer (`sendData`). Plain functions over the
// connection (`conn.ts`) and the stream (`stream.ts`): no object or async
// layer per frame.

import { CanceledError } from "../_context.ts";
import { type HttpError, REFUSAL_TYPE, refusalBody } from "../_exchange/errors.ts";
import { Exchange, RateMeter } from "../_exchange/exchange.ts";
import { responseParts } from "../_exchange/response.ts";
import { INTERNAL_ERROR, NO_ERROR, putData, putHeaders } from "./frame.ts";
import { credit, gone, OUT_HIGH_WATER } from "./writer.ts";
// Type-only: `recv.ts` and `deadlines.ts` call in here; neither the
// connection nor the stream imports this file.
import type { Http2Conn } from "./conn.ts";
import type { Stream } from "./stream.ts";

const STREAM_CANCELED = new CanceledError("stream canceled");
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
/** Strings up to this many chars are encoded into {@linkcode scratch}. */
const SCRATCH_CHARS = 4096;
const scratch = new Uint8Array(SCRATCH_CHARS * 3);

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

function byteLength(body: string | Uint8Array): number {
  if (typeof body !== "string") return body.byteLength;
  for (let i = 0; i < body.length; i++) {
    if (body.charCodeAt(i) >= 0x80) return encoder.encode(body).byteLength;
  }
  return body.length;
}

/** Runs the handler for a stream and sends its response. */
export async function serve(h: Http2Conn, st: Stream): Promise<void> {
  const ex = new Exchange(h.c, h.ctx, st.head!, st, st.id, "2");
  st.ex = ex;
  try {
    const auth = st.head!.authority;
    if (auth !== h.lastAuthority || h.lastOrigin === "") {
      h.lastOrigin = h.origin(auth);
      h.lastAuthority = auth;
    }
    const req = ex.request(h.lastOrigin);
    const r = ex.run(req);
    const res = r instanceof Response ? r : await r;
    // Gone: reset, or already answered for it (a request body too slow).
    if (st.sendClosed || h.closed || ex.gone) {
      if (res.body !== null && !res.bodyUsed) res.body.cancel(STREAM_CANCELED).catch(() => {});
      return;
    }
    await respond(h, st, ex, res);
  } catch (e) {
    if (!gone(e) && !h.closed) h.core.log("HTTP/2 response failed", e);
    if (!st.sendClosed && !h.closed) h.resetStream(st.id, INTERNAL_ERROR, e);
  } finally {
    ex.finish();
    st.done = true;
    h.release(st);
  }
}

/** Answers a request we could not accept (431, 413, 414, 501). */
export function refuse(h: Http2Conn, st: Stream, e: HttpError): void {
  const body = encoder.encode(refusalBody(e));
  sendHead(h, st, e.status, [["content-type", REFUSAL_TYPE]], body.byteLength, false);
  st.done = true;
  sendData(h, st, body, true, null).catch(() => {});
}

/** Encodes and queues a response head. */
export function sendHead(
  h: Http2Conn,
  st: Stream,
  status: number,
  headers: Iterable<[string, string]>,
  length: number,
  endStream: boolean,
): void {
  const hb = h.hb;
  hb.reset();
  const enc = h.enc;
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
  putHeaders(h.w.out, st.id, hb.view(), endStream, h.peer.maxFrameSize);
  if (hb.buf.length > 16 * 1024) h.hb.buf = new Uint8Array(256);
  if (endStream) sentEnd(h, st);
  h.w.kick();
}

/** Our END_STREAM went out. */
function sentEnd(h: Http2Conn, st: Stream): void {
  st.sendClosed = true;
  // Refund the reset budget a little: a stream served to its end.
  h.tokens = Math.min(h.opt.resetBudget, h.tokens + 1);
  if (st.recvClosed) h.closeStream(st, null);
  else {
    // The response is complete; the rest of the request isn't needed
    // (§8.1): stop it without error.
    h.resetStream(st.id, NO_ERROR, null);
  }
}

/** Frames a handler's response. */
async function respond(h: Http2Conn, st: Stream, ex: Exchange, res: Response): Promise<void> {
  let parts;
  try {
    parts = responseParts(res);
  } catch (e) {
    h.core.log("cannot send response", e);
    parts = { status: 500, statusText: "", headers: [], body: "Internal Server Error" };
  }
  let status = parts.status;
  if (ex.takeover !== null || status < 200) {
    // An upgrade (101) has no HTTP/2 form (RFC 9113 §8.6); the upgrade's
    // owner sees `completed` settle without a takeover.
    if (parts.body instanceof ReadableStream) parts.body.cancel().catch(() => {});
    h.core.log(`a protocol upgrade (status ${status}) is not possible over HTTP/2; sent 501`);
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
      sendHead(h, st, status, parts.headers, len, true);
      return;
    }
    if (typeof body === "string" && body.length <= SCRATCH_CHARS) {
      // Encoded into a scratch buffer: no allocation when it all goes
      // out at once (the usual case); copied if it must wait.
      const n = encoder.encodeInto(body, scratch).written;
      sendHead(h, st, status, parts.headers, n, n === 0);
      if (n > 0) await sendData(h, st, scratch.subarray(0, n), true, ex, true);
      return;
    }
    const bytes = typeof body === "string" ? encoder.encode(body) : body;
    sendHead(h, st, status, parts.headers, bytes.byteLength, bytes.byteLength === 0);
    if (bytes.byteLength > 0) await sendData(h, st, bytes, true, ex);
    return;
  }
  // A stream.
  const reader = body.getReader();
  ex.stopBody = (why) => void reader.cancel(why).catch(() => {});
  try {
    sendHead(h, st, status, parts.headers, userLength, false);
    let sent = 0;
    for (;;) {
      const r = await reader.read();
      if (st.sendClosed) return;
      if (r.done) {
        if (userLength >= 0 && sent !== userLength) {
          h.core.log("response body shorter than its Content-Length; stream reset");
          h.resetStream(st.id, INTERNAL_ERROR, null);
          return;
        }
        await sendData(h, st, EMPTY, true, ex);
        return;
      }
      let chunk = toBytes(r.value);
      if (userLength >= 0 && sent + chunk.byteLength > userLength) {
        chunk = chunk.subarray(0, userLength - sent);
        await sendData(h, st, chunk, false, ex);
        h.core.log("response body longer than its Content-Length; stream reset");
        if (!st.sendClosed) h.resetStream(st.id, INTERNAL_ERROR, null);
        reader.cancel().catch(() => {});
        return;
      }
      sent += chunk.byteLength;
      if (chunk.byteLength > 0 && !(await sendData(h, st, chunk, false, ex))) return;
    }
  } catch (e) {
    reader.cancel(e).catch(() => {});
    if (!st.sendClosed && !h.closed) {
      h.core.log("response body stream failed", e);
      h.resetStream(st.id, INTERNAL_ERROR, e);
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
function push(
  h: Http2Conn,
  st: Stream,
  data: Uint8Array,
  off: number,
  end: boolean,
  ex: Exchange | null,
): number {
  const n = data.byteLength;
  for (;;) {
    if (st.sendClosed || h.closed) return -1;
    const rem = n - off;
    if (rem === 0 && !end) return n;
    let avail = rem;
    if (avail > st.sendWindow) avail = st.sendWindow;
    if (avail > h.sendWindow) avail = h.sendWindow;
    if (avail > h.peer.maxFrameSize) avail = h.peer.maxFrameSize;
    if ((avail <= 0 && rem > 0) || h.w.out.len >= OUT_HIGH_WATER) return off;
    if (avail < 0) avail = 0;
    const last = end && avail === rem;
    putData(
      h.w.out,
      st.id,
      off === 0 && avail === n ? data : data.subarray(off, off + avail),
      last,
    );
    st.sendWindow -= avail;
    h.sendWindow -= avail;
    st.pushed += avail;
    h.dataOut += avail;
    off += avail;
    if (ex !== null) ex.sentBytes += avail;
    h.w.kick();
    if (last) {
      sentEnd(h, st);
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
export async function sendData(
  h: Http2Conn,
  st: Stream,
  data: Uint8Array,
  end: boolean,
  ex: Exchange | null,
  volatile = false,
): Promise<boolean> {
  const done = end ? data.byteLength + 1 : data.byteLength;
  let off = push(h, st, data, 0, end, ex);
  if (off === done) return true;
  if (volatile && off >= 0) {
    data = data.slice(off);
    off = 0;
  }
  const complete = end ? data.byteLength + 1 : data.byteLength;
  for (;;) {
    if (off < 0) return false;
    if (off === complete) return true;
    if (off < data.byteLength && (st.sendWindow <= 0 || h.sendWindow <= 0)) {
      // Wait for WINDOW_UPDATE. An empty END_STREAM frame needs no
      // window, only room. A shut stream window is this stream's wait
      // (its own meter: writeTimeout, minResponseRate); a shut connection
      // window is the connection's (see `Http2Conn.connWait`).
      const now = Date.now();
      let m: RateMeter | null = null;
      if (st.sendWindow <= 0) {
        const core = h.core;
        m = st.outMeter ??= new RateMeter(
          core.minResponseRate,
          core.minRateGrace,
          core.writeTimeout,
        );
        // What went out since the last wait moved without waiting.
        credit(m, st.pushed - st.outMark, now);
        st.outMark = st.pushed;
        const at = st.outAt = m.begin(now);
        if (at > 0) h.tighten(at);
      }
      if (h.sendWindow <= 0) h.connWait(st, now);
      await new Promise<void>((resolve) => (st.windowWake = resolve));
      if (m !== null) {
        m.end(Date.now(), 0);
        st.outAt = -1;
      }
    } else {
      await h.w.room();
    }
    off = push(h, st, data, off, end, ex);
  }
}
