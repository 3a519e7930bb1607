// Copyright 2026 the connctx authors. MIT license.
// The output side of one HTTP/2 connection: the buffer frames are appended
// to, the single writer that flushes it (one socket write per batch,
// coalescing everything produced in the same turn), the metering of those
// writes (writeTimeout, minResponseRate), and the waiters for room in the
// buffer (the socket's back-pressure on response bodies). Also two helpers
// the connection and its streams share: `gone` (an I/O error that only means
// the peer went) and `credit` (bytes that moved without a wait, for a meter).

import type { Core } from "../_exchange/core.ts";
import { peerGone } from "../_exchange/errors.ts";
import { RateMeter } from "../_exchange/exchange.ts";
import { ByteBuf } from "./buf.ts";
// Type-only: the writer calls back into its connection (closed, stopping,
// the deadline, closing), which owns it.
import type { Http2Conn } from "./conn.ts";

/** Output buffered beyond this makes response bodies wait. */
export const OUT_HIGH_WATER = 128 * 1024;
/** Output owed to a peer that doesn't read, beyond which we give up. */
export const OUT_LIMIT = OUT_HIGH_WATER + 256 * 1024;

/** Whether an I/O error only means the peer (or our own close) ended the
 * connection: not worth a log line. */
export function gone(e: unknown): boolean {
  return peerGone(e) || e instanceof Deno.errors.UnexpectedEof ||
    e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted;
}

/** Tells a meter of `n` bytes that moved without a wait. */
export function credit(m: RateMeter, n: number, now: number): void {
  if (n > 0) {
    m.begin(now);
    m.end(now, n);
  }
}

/** The output buffer of one connection and its flusher. */
export class Writer {
  /** Frames not yet written. Swapped on each flush: read it afresh. */
  out = new ByteBuf(1024);
  /** The other buffer, kept while the connection is busy. */
  spare: ByteBuf | null = null;
  writing = false;
  flushQueued = false;
  /** Response writers waiting for room in {@linkcode Writer.out}. */
  spaceWaiters: (() => void)[] = [];
  /** writeTimeout and minResponseRate over the socket writes. */
  wMeter: RateMeter | null = null;
  /** While a socket write is pending: its deadline (0: none); -1: none
   * pending. */
  writeAt = -1;
  readonly #h: Http2Conn;
  readonly #conn: Deno.Conn;
  readonly #core: Core;

  constructor(h: Http2Conn, conn: Deno.Conn, core: Core) {
    this.#h = h;
    this.#conn = conn;
    this.#core = core;
  }

  /** Schedules a flush of the output buffer (coalescing this turn's frames). */
  kick(): void {
    const h = this.#h;
    if (this.writing || this.flushQueued || this.out.len === 0 || h.closed) return;
    this.flushQueued = true;
    queueMicrotask(() => {
      this.flushQueued = false;
      if (!this.writing && this.out.len > 0 && !h.closed) {
        this.#writeLoop().catch((e) => h.failed(e));
      } else if (h.stopping && !this.writing) h.afterStop();
    });
  }

  /** Resolves once the buffer was flushed (or the connection closed). */
  room(): Promise<void> {
    return new Promise<void>((resolve) => this.spaceWaiters.push(resolve));
  }

  /** Wakes everyone waiting for room (the connection closed). */
  wakeAll(): void {
    const ws = this.spaceWaiters;
    this.spaceWaiters = [];
    for (const w of ws) w();
  }

  /** No stream is left: gives large buffers back (an idle connection is
   * small). */
  idle(): void {
    if (this.spare !== null && this.spare.buf.length > 16 * 1024) this.spare = null;
    if (!this.writing && this.out.len === 0 && this.out.buf.length > 16 * 1024) {
      this.out = new ByteBuf(1024);
    }
  }

  async #writeLoop(): Promise<void> {
    const h = this.#h;
    this.writing = true;
    try {
      while (this.out.len > 0 && !h.closed) {
        const b = this.out;
        this.out = this.spare ?? new ByteBuf(1024);
        this.spare = null;
        const v = b.view();
        // Every write waits on the peer: writeTimeout and minResponseRate
        // count it, as for an HTTP/1.1 response.
        const core = this.#core;
        const m = this.wMeter ??= new RateMeter(
          core.minResponseRate,
          core.minRateGrace,
          core.writeTimeout,
        );
        let off = 0;
        while (off < v.byteLength) {
          const at = this.writeAt = m.begin(Date.now());
          if (at > 0) h.tighten(at);
          const w = await this.#conn.write(v.subarray(off));
          m.end(Date.now(), w);
          off += w;
        }
        this.writeAt = -1;
        b.reset();
        // Reused while the connection is busy; an idle one lets it go.
        if (b.buf.length <= 2 * OUT_LIMIT) this.spare = b;
        const ws = this.spaceWaiters;
        if (ws.length > 0) {
          this.spaceWaiters = [];
          for (const w of ws) w();
        }
      }
    } catch (e) {
      this.writeAt = -1;
      if (!gone(e) && !h.closed) this.#core.log("HTTP/2 write failed", e);
      h.close();
    } finally {
      this.writing = false;
    }
    if (h.stopping && !h.closed) h.afterStop();
  }
}
