// Copyright 2026 the connctx authors. MIT license.
// One HTTP/2 stream's state (the server side of RFC 9113 §5.1: what was
// received and sent, whether it is out of the connection's table), the
// source of its request body (chunks queued as DATA arrives, pulled by the
// handler, with readTimeout and minBodyRate metered over the handler's
// waits) and our receive window for it (given back as the handler reads).
// Its response is written by `respond.ts`; the connection (`conn.ts`) owns
// the stream table and dispatches frames to streams.

import { type BodySource, type Exchange, RateMeter } from "../_exchange/exchange.ts";
import type { H2Head } from "./fields.ts";
import { putWindowUpdate } from "./frame.ts";
import { credit } from "./writer.ts";
// Type-only: a stream calls back into its connection (window, deadline).
import type { Http2Conn } from "./conn.ts";

/** Per-stream state; also the request body source of its exchange. */
export class Stream implements BodySource {
  readonly id: number;
  readonly conn: Http2Conn;
  head: H2Head | null = null;
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
      pull: (ctrl) => this.pullBody(ctrl),
      cancel: () => this.bodyCanceled(),
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

  /** Bytes the handler consumed: our window for them is given back (in
   * batches of a quarter of the initial window). */
  creditStream(n: number): void {
    if (this.recvClosed || this.closed) return;
    this.credit += n;
    if (this.credit >= this.conn.opt.initialWindowSize >>> 2) {
      putWindowUpdate(this.conn.w.out, this.id, this.credit);
      this.recvWindow += this.credit;
      this.credit = 0;
      this.conn.w.kick();
    }
  }

  /** The body stream's pull. */
  pullBody(ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> | void {
    if (this.chunks.length > 0) {
      const chunk = this.chunks.shift()!;
      this.queued -= chunk.byteLength;
      ctrl.enqueue(chunk);
      this.conn.creditConn(chunk.byteLength);
      this.creditStream(chunk.byteLength);
      if (this.chunks.length === 0 && this.recvClosed && this.bodyError === null) ctrl.close();
      return;
    }
    if (this.bodyError !== null) {
      ctrl.error(this.bodyError);
      return;
    }
    if (this.recvClosed) {
      ctrl.close();
      return;
    }
    // The handler waits for the client: readTimeout and minBodyRate count
    // this time (and only this time), as for an HTTP/1.1 body.
    const core = this.conn.core;
    const m = this.inMeter ??= new RateMeter(core.minBodyRate, core.minRateGrace, core.readTimeout);
    return new Promise<void>((resolve) => {
      this.pullWake = resolve;
      const now = Date.now();
      // What arrived since the last wait moved without waiting: it counts.
      credit(m, this.received - this.inMark, now);
      this.inMark = this.received;
      const at = this.inAt = m.begin(now);
      if (at > 0) this.conn.tighten(at);
    }).then(() => {
      m.end(Date.now(), this.received - this.inMark);
      this.inMark = this.received;
      this.inAt = -1;
      try {
        return this.pullBody(ctrl);
      } catch { /* the body was canceled meanwhile */ }
    });
  }

  /** The handler canceled its body: what comes is dropped. */
  bodyCanceled(): void {
    this.discard = true;
    this.dropBody();
  }

  /** Drops what the handler won't read; the connection window comes back. */
  dropBody(): void {
    if (this.queued > 0) {
      this.conn.creditConn(this.queued);
      this.queued = 0;
      this.chunks.length = 0;
    }
  }

  /** The body ends with `e` for the handler; what was queued is dropped. */
  bodyFailed(e: unknown): void {
    if (this.bodyError === null) this.bodyError = e;
    this.dropBody();
    this.wakePull();
  }
}
