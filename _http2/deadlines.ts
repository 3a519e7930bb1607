// Copyright 2026 the connctx authors. MIT license.
// The connection's one deadline (`Connection.deadline`): `arm` recomputes
// it from every timer (readHeaderTimeout, idleTimeout, the shutdown PING,
// a pending socket write, the waits for the peer's windows, the handlers'
// waits for request body DATA), and `onDeadline` does whatever is due when
// the server's sweeper finds it passed: a GOAWAY, a stream reset (CANCEL,
// TOO_SLOW_READER), a 408 for a request body too slow, or closing on a
// peer that doesn't read.

import { HttpError, REFUSAL_TYPE, refusalBody, TOO_SLOW_READER } from "../_exchange/errors.ts";
import { CANCEL, connError, NO_ERROR } from "./frame.ts";
import { sendData, sendHead } from "./respond.ts";
import type { Stream } from "./stream.ts";
// Type-only: the connection calls `arm` and `onDeadline`; they read and
// update its timers.
import type { Http2Conn } from "./conn.ts";

/** Wait for the shutdown PING's ACK at most this long. */
export const SHUTDOWN_PING_MS = 1000;

const encoder = new TextEncoder();

/** Recomputes the connection's deadline: the earliest of the
 * connection's timers and of every wait on the peer (streams tighten it
 * themselves when a wait begins; a stale, earlier deadline only makes
 * {@linkcode onDeadline} find nothing due and call this again). */
export function arm(conn: Http2Conn): void {
  if (conn.stopping) return;
  const core = conn.core;
  let d = Infinity;
  if ((!conn.firstHeaders || conn.contStream !== 0) && core.readHeaderTimeout > 0) {
    d = Math.min(d, conn.headerSince + core.readHeaderTimeout);
  } else if (conn.streams.size === 0 && conn.idleSince > 0 && core.idleTimeout > 0) {
    d = Math.min(d, conn.idleSince + core.idleTimeout);
  }
  if (conn.w.writeAt > 0) d = Math.min(d, conn.w.writeAt);
  if (conn.cwAt > 0) d = Math.min(d, conn.cwAt);
  if (conn.pingSince > 0) d = Math.min(d, conn.pingSince + SHUTDOWN_PING_MS);
  for (const st of conn.streams.values()) {
    if (st.outAt > 0) d = Math.min(d, st.outAt);
    if (st.inAt > 0) d = Math.min(d, st.inAt);
  }
  conn.c.deadline = d === Infinity ? 0 : d;
}

/** The connection's deadline passed: whatever is due is done (the timers
 * are those {@linkcode arm} reads). */
export function onDeadline(conn: Http2Conn): void {
  if (conn.closed) return;
  const core = conn.core;
  const now = Date.now();
  if (conn.stopping) {
    // The last frames didn't go out, or the linger is over.
    if (now >= conn.stopAt) return conn.close();
    conn.c.deadline = conn.stopAt;
    return;
  }
  if (conn.w.writeAt > 0 && now >= conn.w.writeAt) {
    const at = conn.w.wMeter!.overdue(now);
    // The socket is blocked: writeTimeout, or below minResponseRate.
    // Nothing can be said to the peer any more (not even RST_STREAM).
    if (at === 0) return cutSlowReader(conn);
    conn.w.writeAt = at;
  }
  if (
    (!conn.firstHeaders || conn.contStream !== 0) && core.readHeaderTimeout > 0 &&
    now >= conn.headerSince + core.readHeaderTimeout
  ) {
    conn.connectionError(connError(NO_ERROR, "read header timeout"));
    return;
  }
  if (
    conn.firstHeaders && conn.streams.size === 0 && conn.idleSince > 0 &&
    core.idleTimeout > 0 && now >= conn.idleSince + core.idleTimeout
  ) {
    conn.connectionError(connError(NO_ERROR, "idle timeout"));
    return;
  }
  if (conn.pingSince > 0 && now >= conn.pingSince + SHUTDOWN_PING_MS) conn.finalGoaway();
  if (conn.cwAt > 0 && now >= conn.cwAt) {
    const at = conn.cwMeter!.overdue(now);
    if (at === 0) {
      // The peer keeps the connection window shut (or opens it too
      // slowly): give up on the streams waiting for it. Closing the last
      // ends the wait.
      for (const st of [...conn.connWaiters]) conn.resetStream(st.id, CANCEL, TOO_SLOW_READER);
    } else conn.cwAt = at;
  }
  for (const st of [...conn.streams.values()]) {
    if (st.outAt > 0 && now >= st.outAt) {
      const at = st.outMeter!.overdue(now);
      // The peer keeps this stream's window shut, or opens it too slowly.
      if (at === 0) conn.resetStream(st.id, CANCEL, TOO_SLOW_READER);
      else st.outAt = at;
    }
    if (!st.closed && st.inAt > 0 && now >= st.inAt) bodyOverdue(conn, st, now);
  }
  conn.w.kick();
  if (!conn.closed) arm(conn);
}

/** A wait for a stream's request body reached its deadline. */
function bodyOverdue(conn: Http2Conn, st: Stream, now: number): void {
  const m = st.inMeter!;
  const core = conn.core;
  // The client may be held back by our own windows (the connection's,
  // filled by other streams whose handlers don't read): that time is not
  // the client's, so the meter starts over.
  const need = Math.max(1, Math.ceil((core.minBodyRate * core.minRateGrace) / 1000));
  if (Math.min(conn.recvWindow, st.recvWindow) < need) {
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
  st.bodyFailed(e);
  const ex = st.ex;
  if (ex !== null && ex.status === 0 && !st.sendClosed) {
    ex.disconnected(e);
    ex.status = e.status;
    const body = encoder.encode(refusalBody(e));
    sendHead(conn, st, e.status, [["content-type", REFUSAL_TYPE]], body.byteLength, false);
    // END_STREAM, then RST_STREAM(NO_ERROR): the rest isn't wanted.
    sendData(conn, st, body, true, ex).catch(() => {});
  } else conn.resetStream(st.id, CANCEL, e);
}

/** The peer doesn't read its socket fast enough: close the connection;
 * every stream's exchange is canceled with TOO_SLOW_READER. */
function cutSlowReader(conn: Http2Conn): void {
  for (const st of [...conn.streams.values()]) conn.closeStream(st, TOO_SLOW_READER);
  conn.close();
}
