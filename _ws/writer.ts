// Copyright 2026 the connctx authors. MIT license.

/**
 * The outgoing side of a WebSocket connection: {@linkcode FrameWriter} owns
 * the frames on their way to the transport and nothing else. Small frames
 * (and short strings, encoded in place) are copied into a double-buffered
 * staging buffer and written as one chunk; large frames, Blobs and
 * compressions wait in an ordered queue, and consecutive ready frames in it
 * are merged into one write. It keeps `bufferedAmount` (payload bytes not
 * yet written) and watches write progress for `writeTimeout`; what to send,
 * and what a failed write means, is the engine's business (engine.ts).
 *
 * @module
 */

import { encodeFrame, headerSize, OP_TEXT, writeHeader } from "./frame.ts";
import type { WebSocketTransport } from "./transport.ts";

/** Queued frames are merged into one write up to this size. */
const COALESCE_MAX = 64 * 1024;
/** Frames up to this size are copied into the staging buffer. */
const STAGE_MAX = 16 * 1024;
/** First size of a staging buffer. */
const OUT_MIN = 1024;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * What waits in the queue: an encoded frame, a frame still being made (a
 * Blob read, a compression; null drops it), or a function to run once
 * everything before it is written.
 */
export type QueueItem = Uint8Array | Promise<Uint8Array | null> | (() => void);

/**
 * The outgoing frame queue of one socket.
 *
 * @example
 * ```ts
 * import { FrameWriter } from "./writer.ts";
 * import { OP_TEXT } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const written: Uint8Array[] = [];
 * const writer = new FrameWriter(30_000, () => {});
 * writer.attach({
 *   read: () => Promise.resolve(null),
 *   write: (bytes) => {
 *     written.push(bytes.slice());
 *     return Promise.resolve(bytes.length);
 *   },
 *   close: () => {},
 * });
 * writer.bufferedAmount += 2;
 * writer.frame(OP_TEXT, new TextEncoder().encode("hi"), true);
 * await new Promise((r) => setTimeout(r, 0));
 * assert.deepEqual(written, [new Uint8Array([0x81, 2, 0x68, 0x69])]);
 * assert.equal(writer.bufferedAmount, 0);
 * ```
 */
export class FrameWriter {
  /**
   * Payload bytes handed to the socket and not yet written. The owner adds
   * what it sends (and what it discards after closing); this takes off what
   * is written, and adds what {@linkcode FrameWriter.stageText} encodes.
   */
  bufferedAmount = 0;

  readonly #writeTimeout: number;
  readonly #onError: (err: unknown) => void;
  #t: WebSocketTransport | null = null;
  #finished = false;

  // Frames are encoded into a staging buffer (`#out`), written as one
  // chunk; while it is out, new frames go to the spare. Items that must
  // wait (a Blob, a compression) and everything after them go to `#queue`,
  // in order, after what is staged.
  #out: Uint8Array | null = null;
  #outLen = 0;
  #outAmount = 0;
  #spare: Uint8Array | null = null;
  #queue: QueueItem[] = [];
  #amounts: number[] = [];
  #writing = false;
  #waiting = false;
  #wBytes: Uint8Array | null = null;
  #wOff = 0;
  #wAmount = 0;
  #wStaging: Uint8Array | null = null;
  /** Counts write starts and completions; the sweeper watches it move. */
  #writeEvents = 0;
  #seenWriteEvents = 0;
  #lastWriteProgress = 0;
  #idleTicks = 0;

  /**
   * @param writeTimeout ms a write may make no progress (0: forever)
   * @param onError called when a write fails (not after {@linkcode FrameWriter.release})
   */
  constructor(writeTimeout: number, onError: (err: unknown) => void) {
    this.#writeTimeout = writeTimeout;
    this.#onError = onError;
  }

  /** Starts writing to `t`: what was queued before goes out now. */
  attach(t: WebSocketTransport): void {
    this.#t = t;
  }

  /** Whether items wait in the queue (a new frame must then queue too). */
  get queued(): boolean {
    return this.#queue.length > 0;
  }

  /** Queues an item after everything staged and queued before it. */
  enqueue(item: QueueItem, amount: number): void {
    this.#queue.push(item);
    this.#amounts.push(amount);
    if (!this.#writing) this.#kick();
  }

  /** Queues `fn` to run once everything before it is written. */
  after(fn: () => void): void {
    this.enqueue(fn, 0);
  }

  /**
   * A data frame of `bytes` (already counted in `bufferedAmount`); `owned`:
   * the bytes are the socket's (no copy needed).
   */
  frame(op: number, bytes: Uint8Array, owned: boolean): void {
    const amount = bytes.length;
    if (amount <= STAGE_MAX && this.#queue.length === 0) {
      this.stage(op, bytes, amount);
      return;
    }
    // Large (or behind a pending Blob): bytes we own go out as they are,
    // after their header; others are copied once, with the header.
    if (owned) {
      const h = new Uint8Array(headerSize(amount));
      writeHeader(h, 0, true, false, op, amount);
      this.enqueue(h, 0);
      this.enqueue(bytes, amount);
    } else this.enqueue(encodeFrame(op, bytes), amount);
  }

  /** Room for `n` more bytes in the staging buffer. */
  #room(n: number): Uint8Array {
    let out = this.#out;
    const need = this.#outLen + n;
    if (out === null || out.length < need) {
      let size = out === null ? OUT_MIN : out.length * 2;
      while (size < need) size *= 2;
      const nb = this.#spare !== null && this.#spare.length >= need
        ? this.#spare
        : new Uint8Array(size);
      if (nb === this.#spare) this.#spare = null;
      if (out !== null && this.#outLen > 0) nb.set(out.subarray(0, this.#outLen));
      out = this.#out = nb;
    }
    return out;
  }

  /** A frame copied into the staging buffer (written with what is staged). */
  stage(op: number, payload: Uint8Array, amount: number): void {
    const len = payload.length;
    const out = this.#room(10 + len);
    const pos = this.#outLen;
    const hs = writeHeader(out, pos, true, false, op, len);
    out.set(payload, pos + hs);
    this.#outLen = pos + hs + len;
    this.#outAmount += amount;
    if (!this.#writing) this.#kick();
  }

  /**
   * A short string as a text frame, UTF-8 encoded straight into the staging
   * buffer (its encoded size is added to `bufferedAmount` here).
   */
  stageText(data: string): void {
    const n = data.length;
    const out = this.#room(4 + n * 3);
    const pos = this.#outLen;
    // ASCII (the common case) is encoded here; its length is known up front.
    let hs = n < 126 ? 2 : 4;
    let i = 0;
    const base = pos + hs;
    for (; i < n; i++) {
      const c = data.charCodeAt(i);
      if (c > 0x7f) break;
      out[base + i] = c;
    }
    let len = n;
    if (i < n) {
      // Not ASCII: the encoder does the rest, after the maximum header.
      const maxHs = n * 3 < 126 ? 2 : 4;
      const at = pos + maxHs;
      if (maxHs !== hs) out.copyWithin(at, base, base + i);
      const { written } = encoder.encodeInto(data.slice(i), out.subarray(at + i));
      len = i + written;
      hs = len < 126 ? 2 : 4;
      if (hs !== maxHs) out.copyWithin(pos + hs, at, at + len);
    }
    writeHeader(out, pos, true, false, OP_TEXT, len);
    this.#outLen = pos + hs + len;
    this.#outAmount += len;
    this.bufferedAmount += len;
    if (!this.#writing) this.#kick();
  }

  /** A control frame, staged (it goes out after what is already queued). */
  control(op: number, payload: Uint8Array): void {
    if (this.#queue.length === 0) this.stage(op, payload, 0);
    else this.enqueue(encodeFrame(op, payload), 0);
  }

  /** Drops the frames not yet handed to the transport (failing the connection). */
  drop(): void {
    this.#queue.length = 0;
    this.#amounts.length = 0;
    this.#outLen = this.#outAmount = 0;
  }

  /** The connection is finished: drops everything and writes no more. */
  release(): void {
    this.#finished = true;
    this.#queue.length = 0;
    this.#amounts.length = 0;
    this.#out = this.#spare = null;
    this.#outLen = this.#outAmount = 0;
  }

  /**
   * Sweeper tick: true when a write has made no progress for
   * `writeTimeout` (the peer stopped reading). An idle writer drops its
   * staging buffers.
   */
  stalled(now: number): boolean {
    if (this.#writeEvents !== this.#seenWriteEvents) {
      this.#seenWriteEvents = this.#writeEvents;
      this.#lastWriteProgress = now;
      this.#idleTicks = 0;
    } else if (this.#writing) {
      if (this.#writeTimeout > 0 && now - this.#lastWriteProgress >= this.#writeTimeout) {
        return true;
      }
    } else if (++this.#idleTicks >= 2 && this.#outLen === 0) {
      // Nothing written for a while: an idle socket keeps no write buffers.
      this.#out = this.#spare = null;
    }
    return false;
  }

  /** Starts the next write, if any: staged bytes first, then the queue. */
  #kick(): void {
    if (this.#writing || this.#waiting) return;
    const t = this.#t;
    if (t === null) return;
    if (this.#finished) {
      this.#outLen = this.#outAmount = 0;
      return;
    }
    if (this.#outLen > 0) {
      const out = this.#out!;
      const bytes = out.subarray(0, this.#outLen);
      const amount = this.#outAmount;
      // Double buffering: new frames go to the spare while this one is out.
      this.#out = this.#spare;
      this.#spare = null;
      this.#outLen = this.#outAmount = 0;
      this.#write(t, bytes, amount, out);
      return;
    }
    const q = this.#queue;
    while (q.length > 0) {
      const head = q[0];
      if (typeof head === "function") {
        q.shift();
        this.#amounts.shift();
        head();
        if (this.#writing || this.#waiting || this.#outLen > 0) {
          if (!this.#writing && !this.#waiting) this.#kick();
          return;
        }
        continue;
      }
      if (!(head instanceof Uint8Array)) {
        this.#waiting = true;
        head.then((b) => {
          this.#waiting = false;
          // The queue may have been emptied meanwhile (failure, close).
          if (this.#queue[0] === head) this.#queue[0] = b ?? EMPTY;
          this.#kick();
        });
        return;
      }
      // Merge consecutive ready frames into one write.
      let n = 1, total = head.length;
      while (
        n < q.length && q[n] instanceof Uint8Array &&
        total + (q[n] as Uint8Array).length <= COALESCE_MAX
      ) total += (q[n++] as Uint8Array).length;
      let bytes: Uint8Array, amount = 0;
      if (n === 1) {
        bytes = head;
        amount = this.#amounts[0];
      } else {
        bytes = new Uint8Array(total);
        let o = 0;
        for (let i = 0; i < n; i++) {
          const b = q[i] as Uint8Array;
          bytes.set(b, o);
          o += b.length;
          amount += this.#amounts[i];
        }
      }
      q.splice(0, n);
      this.#amounts.splice(0, n);
      if (bytes.length === 0) {
        this.bufferedAmount -= amount;
        continue;
      }
      this.#write(t, bytes, amount, null);
      return;
    }
  }

  /** Writes `bytes` (all of it, in as many writes as it takes). */
  #write(t: WebSocketTransport, bytes: Uint8Array, amount: number, staging: Uint8Array | null) {
    this.#writing = true;
    this.#wBytes = bytes;
    this.#wOff = 0;
    this.#wAmount = amount;
    this.#wStaging = staging;
    this.#writeEvents++;
    t.write(bytes).then(this.#onWrote, this.#onWriteError);
  }

  readonly #onWrote = (n: number): void => {
    this.#writeEvents++;
    const bytes = this.#wBytes!;
    this.#wOff += n;
    if (this.#wOff < bytes.length && !this.#finished) {
      this.#t!.write(bytes.subarray(this.#wOff)).then(this.#onWrote, this.#onWriteError);
      return;
    }
    this.bufferedAmount -= this.#wAmount;
    if (this.#wStaging !== null && this.#spare === null && this.#out !== this.#wStaging) {
      this.#spare = this.#wStaging; // reuse it for the frames after the next
    }
    this.#wBytes = this.#wStaging = null;
    this.#writing = false;
    this.#kick();
  };

  readonly #onWriteError = (err: unknown): void => {
    this.#writing = false;
    this.#wBytes = this.#wStaging = null;
    if (!this.#finished) this.#onError(err);
  };
}
