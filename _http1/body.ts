// Copyright 2026 the connctx authors. MIT license.
// Owns: an HTTP/1.1 request body (RFC 9112 §6) — its framing state
// (Content-Length countdown or chunked decoder), the stream the handler
// reads, `100 Continue` on the first pull, `maxBodyBytes`, draining what the
// handler left unread, and the minimum body rate: the time it spends
// waiting for the client's bytes is what the rate is measured over.

import type { Core } from "../_exchange/core.ts";
import { HttpError } from "../_exchange/errors.ts";
import { type BodySource, type Exchange, RateMeter } from "../_exchange/exchange.ts";
import { BODY_BUF, type ReadBuffer } from "../_io/reader.ts";
import { ChunkedDecoder } from "./chunked.ts";
import type { RequestHead } from "./parser.ts";

/** Largest read of a Content-Length body, straight into its own chunk. */
const BODY_CHUNK = 64 * 1024;

/** What a body needs from its connection. */
export interface BodyHost {
  readonly core: Core;
  readonly rb: ReadBuffer;
  /** Whether the connection is closed. */
  readonly isClosed: boolean;
  /** A wait for body bytes starts (`at`: its deadline, epoch ms; 0: none)
   * or ends (`at < 0`). */
  bodyWait(at: number): void;
  /** The body is complete: the connection may read ahead. */
  bodyComplete(): void;
  /** Sends `100 Continue`. */
  sendContinue(): Promise<void>;
  /** The body broke our framing or limits: close after the response. */
  bodyBroken(): void;
  /** The handler went async: watch for the client leaving. */
  waiting(): void;
}

/** A request body on an HTTP/1.1 connection. */
export class Http1Body implements BodySource {
  readonly #host: BodyHost;
  readonly head: RequestHead;
  /** Set once the exchange exists (the two refer to each other). */
  ex!: Exchange;
  /** Content-Length bytes still to come (unused when chunked). */
  #remaining: number;
  readonly #decoder: ChunkedDecoder | null;
  /** The whole body has been read. */
  done: boolean;
  stream: ReadableStream<Uint8Array> | null = null;
  /** `100 Continue` was sent (or is not needed any more). */
  sent100 = false;
  /** readTimeout and minBodyRate, made on the first wait. */
  #meter: RateMeter | null = null;

  constructor(host: BodyHost, head: RequestHead) {
    this.#host = host;
    this.head = head;
    if (head.chunked) {
      this.#remaining = 0;
      this.#decoder = new ChunkedDecoder(host.core.chunkLimits);
      this.done = false;
    } else {
      this.#remaining = head.contentLength > 0 ? head.contentLength : 0;
      this.#decoder = null;
      this.done = this.#remaining === 0;
    }
  }

  /** Content-Length bytes still to come (0 for chunked bodies). */
  get remaining(): number {
    return this.#remaining;
  }

  /** Whether this is a chunked body. */
  get chunked(): boolean {
    return this.#decoder !== null;
  }

  body(): ReadableStream<Uint8Array> | null {
    if (this.stream === null) {
      if (this.done && this.ex.bodyBytes === 0 && !this.head.chunked) return null;
      this.stream = new ReadableStream<Uint8Array>({
        pull: (ctrl) => this.#pull(ctrl),
        cancel: () => {
          // The handler lost interest; what's left is drained or the
          // connection closed after the response.
        },
      }, { highWaterMark: 0 });
    }
    return this.stream;
  }

  waiting(): void {
    this.#host.waiting();
  }

  /** Whether the handler holds the body stream (it may still be reading). */
  get locked(): boolean {
    return this.stream !== null && this.stream.locked;
  }

  async #pull(ctrl: ReadableStreamDefaultController<Uint8Array>): Promise<void> {
    try {
      if (this.head.expectContinue && !this.sent100 && !this.done) {
        this.sent100 = true;
        if (this.#host.rb.buffered === 0) await this.#host.sendContinue();
      }
      const chunk = await this.read();
      if (chunk === null) {
        if (this.done) ctrl.close();
        else ctrl.error(new Error("connection closed before the request body was complete"));
        return;
      }
      ctrl.enqueue(chunk);
      if (this.done) ctrl.close();
    } catch (e) {
      ctrl.error(e);
      if (e instanceof HttpError) this.#host.bodyBroken();
    }
  }

  /** Reads and discards at most `limit` bytes of what the handler left;
   * whether the body ended within it (the connection may be kept). */
  async drain(limit: number): Promise<boolean> {
    let seen = 0;
    try {
      while (!this.done) {
        const r = await this.read();
        // null: the end of a chunked body (done), or the peer is gone.
        if (r === null) return this.done;
        seen += r.byteLength;
        if (seen > limit) return false;
      }
    } catch (e) {
      // A malformed or oversized body nobody reads: just close.
      if (e instanceof HttpError) return false;
      throw e;
    }
    return true;
  }

  /** Next piece of the body; `null` at its end or when the peer is gone. */
  async read(): Promise<Uint8Array | null> {
    const host = this.#host;
    const rb = host.rb;
    for (;;) {
      if (this.done || host.isClosed) return null;
      const dec = this.#decoder;
      if (dec === null) {
        // Content-Length.
        const avail = rb.end - rb.start;
        if (avail > 0) {
          const n = Math.min(avail, this.#remaining);
          const out = rb.buf.slice(rb.start, rb.start + n);
          rb.start += n;
          this.#took(n);
          return out;
        }
        if (rb.eof) return null;
        const chunk = new Uint8Array(Math.min(this.#remaining, BODY_CHUNK));
        const n = await this.#wait(rb.readInto(chunk));
        if (n === null || n <= 0) {
          rb.eof = true;
          return null;
        }
        this.#took(n);
        return chunk.subarray(0, n);
      }
      // Chunked: decode what is buffered, read more when needed.
      if (rb.end > rb.start) {
        const [p, n] = dec.next(rb.buf, rb.start, rb.end);
        rb.start = p + n;
        if (n > 0) {
          const bytes = this.ex.bodyBytes += n;
          if (bytes > host.core.maxBodyBytes) throw new HttpError(413, "request body too large");
        }
        if (dec.done) this.#complete();
        if (n > 0) return rb.buf.slice(p, p + n);
        if (dec.done) return null;
      }
      if (rb.eof) return null;
      rb.growTo(BODY_BUF);
      if ((await this.#wait(rb.fill())) === 0) return null;
    }
  }

  /** Waits for the client's bytes under readTimeout and the minimum rate. */
  async #wait(p: Promise<number | null>): Promise<number | null> {
    const core = this.#host.core;
    const m = this.#meter ??= new RateMeter(core.minBodyRate, core.minRateGrace, core.readTimeout);
    this.#host.bodyWait(m.begin(Date.now()));
    let n: number | null = null;
    try {
      return n = await p;
    } finally {
      m.end(Date.now(), n !== null && n > 0 ? n : 0);
      this.#host.bodyWait(-1);
    }
  }

  /** The body wait's deadline passed: 0 to give up on the client (stalled
   * or below minBodyRate), else the next deadline. */
  overdue(now: number): number {
    return this.#meter === null ? 0 : this.#meter.overdue(now);
  }

  #took(n: number): void {
    this.#remaining -= n;
    this.ex.bodyBytes += n;
    if (this.#remaining === 0) this.#complete();
  }

  #complete(): void {
    this.done = true;
    const rb = this.#host.rb;
    rb.scan = rb.start;
    this.#host.bodyComplete();
  }
}
