// Copyright 2026 the connctx authors. MIT license.

/**
 * The incoming side of a WebSocket connection: {@linkcode FrameReader} owns
 * the read loop and everything between the transport's bytes and whole
 * messages. It parses and unmasks frames in a read buffer that starts small
 * and grows with the traffic (a frame too big for it is read straight into
 * its own buffer), checks each header against the message in progress and
 * the `maxMessageBytes` limit before buffering, validates text as it
 * arrives, reassembles fragments, inflates compressed messages, and after a
 * protocol error lingers briefly for the peer's EOF. What a message or a
 * control frame means, and how the connection ends, is the engine's
 * business (engine.ts), reached through {@linkcode ReaderHost}.
 *
 * @module
 */

import {
  CLOSE_INVALID_DATA,
  FrameHeader,
  OP_CONTINUATION,
  OP_TEXT,
  unmask,
  WebSocketProtocolError,
} from "./frame.ts";
import { Utf8Validator } from "./utf8.ts";
import type { PerMessageDeflate } from "./deflate.ts";
import type { WebSocketTransport } from "./transport.ts";

/** Idle read buffer: small, so idle sockets are cheap (a control frame
 * that does not fit grows it). */
const SMALL_BUF = 256;
/** Largest read buffer; a frame that does not fit is read into its own buffer. */
const MAX_BUF = 64 * 1024;
/** Most bytes read (and discarded) while lingering after a failure. */
const LINGER_BYTES = 64 * 1024;

// Parser states.
const S_HEADER = 0;
const S_PAYLOAD = 1; // payload accumulating in the read buffer
const S_DIRECT = 2; // payload read straight into its own buffer
const S_DONE = 3; // no more parsing (close received, or failed)

const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * What a {@linkcode FrameReader} reports to, and asks of, the connection
 * (the engine implements it).
 *
 * @example
 * ```ts
 * import type { ReaderHost } from "./reader.ts";
 *
 * function stopped(host: ReaderHost): boolean {
 *   return host.finished;
 * }
 * ```
 */
export interface ReaderHost {
  /** Whether the connection is finished (reading stops). */
  readonly finished: boolean;
  /** A whole ping, pong or close frame, unmasked. */
  control(op: number, payload: Uint8Array): void;
  /** A whole text message. */
  text(data: string): void;
  /** A whole binary message, in a buffer of its own. */
  binary(bytes: Uint8Array): void;
  /** The peer broke the protocol: fail the connection (the reader lingers). */
  fail(code: number, message: string): void;
  /** The peer ended its stream. */
  eof(): void;
  /** The transport failed while reading. */
  readFailed(err: unknown): void;
  /** Lingering after a failure is over: close the transport. */
  shutdown(): void;
}

/**
 * The read loop, frame parser and message reassembler of one socket.
 *
 * @example
 * ```ts
 * import { FrameReader, type ReaderHost } from "./reader.ts";
 * import assert from "node:assert/strict";
 *
 * const got: string[] = [];
 * const host: ReaderHost = {
 *   finished: false,
 *   control() {},
 *   text: (data) => void got.push(data),
 *   binary() {},
 *   fail() {},
 *   eof() {},
 *   readFailed() {},
 *   shutdown() {},
 * };
 * const reader = new FrameReader(host, 1024, null, true);
 * reader.start(new Uint8Array([0x81, 2, 0x68, 0x69])); // an unmasked "hi", then EOF
 * await reader.run({
 *   read: () => Promise.resolve(null),
 *   write: (bytes) => Promise.resolve(bytes.length),
 *   close() {},
 * });
 * assert.deepEqual(got, ["hi"]);
 * ```
 */
export class FrameReader {
  readonly #host: ReaderHost;
  readonly #max: number;
  #deflate: PerMessageDeflate | null;
  #t: WebSocketTransport | null = null;
  #buf: Uint8Array = new Uint8Array(0);
  #r = 0;
  #w = 0;
  #state = S_HEADER;
  readonly #hdr = new FrameHeader();
  readonly #limits: { maxPayload: number; allowRsv1: boolean; allowUnmasked: boolean };
  /** Payload bytes of the current frame already unmasked (and validated). */
  #done = 0;
  /** S_DIRECT: the frame's own buffer. */
  #dst: Uint8Array | null = null;
  /** Opcode of the message being assembled (0: none). */
  #msgOp = 0;
  #msgCompressed = false;
  #msgLen = 0;
  #msgChunks: Uint8Array[] = [];
  /** Whether the message's text is being validated incrementally. */
  #msgValidating = false;
  readonly #utf8 = new Utf8Validator();
  #reads = 0;
  /** Size of the last read: a big buffer is dropped only after small reads. */
  #lastRead = 0;

  /**
   * @param host the connection
   * @param max largest message, in bytes (after decompression)
   * @param deflate the permessage-deflate context, when negotiated
   * @param allowUnmasked accept unmasked frames (tests only)
   */
  constructor(
    host: ReaderHost,
    max: number,
    deflate: PerMessageDeflate | null,
    allowUnmasked: boolean,
  ) {
    this.#host = host;
    this.#max = max;
    this.#deflate = deflate;
    this.#limits = { maxPayload: max, allowRsv1: deflate !== null, allowUnmasked };
  }

  /** How many reads completed; the sweeper watches it move. */
  get reads(): number {
    return this.#reads;
  }

  /** Sets up the read buffer, with `buffered`: bytes read past the HTTP head. */
  start(buffered: Uint8Array | null): void {
    this.#buf = new Uint8Array(
      buffered && buffered.length > SMALL_BUF
        ? Math.min(MAX_BUF, pow2(buffered.length))
        : SMALL_BUF,
    );
    if (buffered && buffered.length > 0) {
      if (buffered.length > this.#buf.length) {
        // Rare: more pipelined bytes than a buffer; keep them all.
        this.#buf = buffered.slice();
      } else this.#buf.set(buffered);
      this.#w = buffered.length;
    }
  }

  /** Parses no more (a close was received, or the connection failed). */
  stop(): void {
    this.#state = S_DONE;
  }

  /** The connection is finished: stops and drops the buffers. */
  release(): void {
    this.#state = S_DONE;
    this.#deflate = null;
    this.#buf = new Uint8Array(0);
    this.#msgChunks = [];
    this.#dst = null;
  }

  /** The read loop: reads `t` until the end of the stream or {@linkcode FrameReader.stop}. */
  async run(t: WebSocketTransport): Promise<void> {
    this.#t = t;
    try {
      while (this.#state !== S_DONE) {
        if (this.#state === S_DIRECT) {
          const dst = this.#dst!;
          const n = await t.read(dst.subarray(this.#done));
          if (n === null) return this.#eof();
          this.#reads++;
          const p = this.#directData(n);
          if (p) await p;
          if (this.#stopped()) return;
          continue;
        }
        if (this.#w > this.#r) {
          const p = this.#process();
          if (p) {
            await p;
            continue;
          }
          if (this.#state === S_DONE) return;
          if (this.#state === S_DIRECT) continue;
        }
        this.#makeRoom();
        const buf = this.#buf;
        const n = await t.read(this.#w === 0 ? buf : buf.subarray(this.#w));
        if (n === null) return this.#eof();
        this.#reads++;
        this.#lastRead = n;
        this.#w += n;
        if (this.#w === this.#buf.length && this.#buf.length < MAX_BUF && this.#r === 0) {
          // A full read: probably more waiting; read bigger next time.
          this.#grow(this.#buf.length * 2);
        }
      }
    } catch (err) {
      if (err instanceof WebSocketProtocolError) {
        this.#host.fail(err.code, err.message);
        this.#linger();
      } else if (!this.#host.finished) {
        // The transport failed (reset, closed under us).
        this.#host.readFailed(err);
      }
    }
  }

  #stopped(): boolean {
    return this.#state === S_DONE;
  }

  /** After failing: discard input until EOF or the close timeout. */
  async #linger(): Promise<void> {
    const t = this.#t;
    if (!t || this.#host.finished) return;
    this.#state = S_DONE;
    const sink = this.#buf.length > 0 ? this.#buf : new Uint8Array(SMALL_BUF);
    let budget = LINGER_BYTES;
    try {
      // A peer that keeps sending (the rest of an oversized message) is not
      // read to its end: past the budget, the connection is simply closed.
      while (!this.#host.finished && budget > 0) {
        const n = await t.read(sink);
        if (n === null) break;
        budget -= n;
      }
    } catch { /* closed by the deadline or reset */ }
    this.#host.shutdown();
  }

  /** Ensures the read buffer has free space after `#w`. */
  #makeRoom(): void {
    if (this.#r === this.#w) {
      this.#r = this.#w = 0;
      // An emptied big buffer is dropped, so a quiet socket stays small.
      if (
        this.#buf.length > SMALL_BUF && this.#state === S_HEADER && this.#lastRead < SMALL_BUF / 2
      ) {
        this.#buf = new Uint8Array(SMALL_BUF);
      }
      return;
    }
    if (this.#w < this.#buf.length) return;
    if (this.#r > 0) {
      this.#buf.copyWithin(0, this.#r, this.#w);
      this.#w -= this.#r;
      this.#r = 0;
    } else this.#grow(this.#buf.length * 2);
  }

  #grow(size: number): void {
    const nb = new Uint8Array(Math.max(size, SMALL_BUF));
    nb.set(this.#buf.subarray(this.#r, this.#w));
    this.#w -= this.#r;
    this.#r = 0;
    this.#buf = nb;
  }

  #eof(): void {
    if (this.#host.finished) return;
    this.#state = S_DONE;
    this.#host.eof();
  }

  /**
   * Parses what the read buffer holds. Returns a promise when a message must
   * be decompressed first (the caller awaits it and calls again).
   */
  #process(): Promise<void> | undefined {
    while (this.#state !== S_DONE) {
      const buf = this.#buf;
      if (this.#state === S_HEADER) {
        this.#limits.maxPayload = this.#max - this.#msgLen;
        const hs = this.#hdr.parse(buf, this.#r, this.#w, this.#limits);
        if (hs === 0) return;
        this.#r += hs;
        this.#onHeader();
        this.#done = 0;
        const len = this.#hdr.length;
        if (len + hs > MAX_BUF) {
          // Big frame: its own buffer, filled by reads straight into it.
          const dst = new Uint8Array(len);
          const have = Math.min(len, this.#w - this.#r);
          dst.set(buf.subarray(this.#r, this.#r + have));
          this.#r += have;
          this.#dst = dst;
          this.#state = S_DIRECT;
          const p = this.#directData(have);
          if (p) return p;
          if (this.#state === S_DIRECT) return;
          continue;
        }
        this.#state = S_PAYLOAD;
      }
      if (this.#state !== S_PAYLOAD) return;
      const len = this.#hdr.length;
      const avail = this.#w - this.#r;
      const r = this.#r;
      if (avail < len) {
        // Partial payload: unmask and validate what came, then wait.
        if (avail > this.#done && this.#textFrame()) {
          const from = r + this.#done;
          unmask(buf, from, r + avail, this.#hdr.mask, this.#done);
          this.#done = avail;
          this.#validate(buf, from, r + avail, false);
        }
        if (r + len > buf.length) {
          // Room for the whole frame; #done counts from #r, so moving is safe.
          if (len <= buf.length) {
            buf.copyWithin(0, r, this.#w);
            this.#w -= r;
            this.#r = 0;
          } else this.#grow(pow2(len));
        }
        return;
      }
      if (this.#hdr.masked) unmask(buf, r + this.#done, r + len, this.#hdr.mask, this.#done);
      this.#r = r + len;
      this.#state = S_HEADER;
      const p = this.#onFrame(buf.subarray(r, r + len), false);
      if (p) return p;
    }
  }

  /** S_DIRECT: `n` more bytes arrived in the frame's own buffer. */
  #directData(n: number): Promise<void> | undefined {
    const dst = this.#dst!;
    const from = this.#done;
    const to = from + n;
    if (this.#hdr.masked && n > 0) unmask(dst, from, to, this.#hdr.mask, from);
    if (n > 0 && this.#textFrame()) this.#validate(dst, from, to, false);
    this.#done = to;
    if (to < dst.length) return;
    this.#dst = null;
    this.#state = S_HEADER;
    return this.#onFrame(dst, true);
  }

  /** Whether the current frame's payload is text to validate as it arrives. */
  #textFrame(): boolean {
    const op = this.#hdr.opcode;
    return (op === OP_TEXT || (op === OP_CONTINUATION && this.#msgOp === OP_TEXT)) &&
      !this.#msgCompressed;
  }

  #validate(buf: Uint8Array, from: number, to: number, end: boolean): void {
    if (!this.#msgValidating) {
      this.#msgValidating = true;
      this.#utf8.reset();
    }
    if (!this.#utf8.push(buf, from, to) || (end && !this.#utf8.complete)) {
      throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
    }
  }

  /** Checks a frame header against the message in progress. */
  #onHeader(): void {
    const h = this.#hdr;
    const op = h.opcode;
    if (op >= 8) return;
    if (op === OP_CONTINUATION) {
      if (this.#msgOp === 0) {
        throw new WebSocketProtocolError(1002, "continuation frame without a message");
      }
      if (h.rsv1) throw new WebSocketProtocolError(1002, "RSV1 set on a continuation frame");
    } else {
      if (this.#msgOp !== 0) {
        throw new WebSocketProtocolError(1002, "new message inside a fragmented message");
      }
      this.#msgOp = op;
      this.#msgCompressed = h.rsv1;
      this.#msgLen = 0;
      this.#msgValidating = false;
    }
    this.#msgLen += h.length;
  }

  /**
   * A whole frame's unmasked payload. `owned`: the payload is its own buffer
   * (else a view of the read buffer, reused after this returns).
   */
  #onFrame(payload: Uint8Array, owned: boolean): Promise<void> | undefined {
    const h = this.#hdr;
    const op = h.opcode;
    if (op >= 8) {
      this.#host.control(op, payload);
      return;
    }
    if (
      (this.#msgValidating || !h.fin || op === OP_CONTINUATION) && this.#textFrame()
    ) {
      // Part of a fragmented (or trickling) text message: validate as it comes.
      const from = this.#done < payload.length ? this.#done : payload.length;
      this.#validate(payload, from, payload.length, h.fin);
    }
    if (!h.fin) {
      this.#msgChunks.push(owned ? payload : payload.slice());
      return;
    }
    const msgOp = this.#msgOp;
    const compressed = this.#msgCompressed;
    const chunks = this.#msgChunks;
    this.#msgOp = 0;
    this.#msgLen = 0;
    if (chunks.length > 0) this.#msgChunks = [];
    if (compressed) {
      // A fresh list: the socket's own one stays empty for the next message.
      return this.#inflate(msgOp, chunks.length > 0 ? [...chunks, payload] : [payload]);
    }
    if (msgOp === OP_TEXT) {
      let text: string;
      if (this.#msgValidating) {
        // Validated as it came: decode without checking again.
        this.#msgValidating = false;
        text = lenientDecoder.decode(chunks.length > 0 ? concat(chunks, payload) : payload);
      } else {
        try {
          text = strictDecoder.decode(chunks.length > 0 ? concat(chunks, payload) : payload);
        } catch {
          throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
        }
      }
      this.#host.text(text);
      return;
    }
    let bytes: Uint8Array;
    if (chunks.length > 0) bytes = concat(chunks, payload);
    else bytes = owned ? payload : payload.slice();
    this.#host.binary(bytes);
  }

  async #inflate(op: number, chunks: Uint8Array[]): Promise<void> {
    // Compressed payloads in the read buffer must be copied before awaiting.
    const last = chunks[chunks.length - 1];
    if (last.buffer === this.#buf.buffer) chunks[chunks.length - 1] = last.slice();
    const data = await this.#deflate!.decompress(chunks, this.#max);
    if (this.#host.finished) return;
    if (op === OP_TEXT) {
      let text: string;
      try {
        text = strictDecoder.decode(data);
      } catch {
        throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
      }
      this.#host.text(text);
    } else {
      this.#host.binary(
        data.byteOffset === 0 && data.length === data.buffer.byteLength ? data : data.slice(),
      );
    }
  }
}

function pow2(n: number): number {
  let p = SMALL_BUF;
  while (p < n) p *= 2;
  return p;
}

function concat(chunks: Uint8Array[], last: Uint8Array): Uint8Array {
  let total = last.length;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  out.set(last, o);
  return out;
}
