// Copyright 2026 the connctx authors. MIT license.
// Owns: the `Transfer-Encoding: chunked` request-body decoder (RFC 9112 §7.1),
// a pure byte-level state machine with its limits. No I/O: the body reader
// (`body.ts`) feeds it bytes from the connection's read buffer.

import { HttpError } from "../_exchange/errors.ts";
import { T } from "./parser.ts";

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** Limits for chunked bodies. */
export interface ChunkLimits {
  /** Longest chunk-size line including extensions, bytes. */
  maxChunkLineBytes: number;
  /** Largest trailer section, bytes. */
  maxTrailerBytes: number;
}

/** Default chunk limits. */
export const DEFAULT_CHUNK_LIMITS: ChunkLimits = {
  maxChunkLineBytes: 4096,
  maxTrailerBytes: 16 * 1024,
};

const S_SIZE = 0;
const S_SIZE_WS = 1; // BWS after the size: only ";" may follow
const S_EXT = 2;
const S_SIZE_LF = 3;
const S_DATA = 4;
const S_DATA_CR = 5;
const S_DATA_LF = 6;
const S_TRAILER = 7; // at start of a trailer line
const S_TRAILER_NAME = 8;
const S_TRAILER_VALUE = 9;
const S_TRAILER_LF = 10;
const S_END_LF = 11;
const S_DONE = 12;

/** Largest chunk size accepted: 12 hex digits' worth (256 TiB). */
const MAX_CHUNK_SIZE = 2 ** 48 - 1;

/**
 * An incremental decoder for `Transfer-Encoding: chunked` (RFC 9112 §7.1).
 * Feed it bytes; it reports which ranges are body data. Trailers are parsed
 * and validated, then dropped. Chunk sizes are hex with an overflow guard.
 *
 * Strictness: the size line is `1*HEXDIG *(BWS ";" ext) CRLF` and at most
 * `maxChunkLineBytes` long (leading zeros included); bare CR or LF, control
 * bytes in extensions, whitespace not followed by `;`, a trailer line that is
 * not `token ":" value` (including obs-fold) and a trailer section over
 * `maxTrailerBytes` are errors.
 */
export class ChunkedDecoder {
  #state = S_SIZE;
  #size = 0;
  #digits = 0;
  #line = 0;
  #trailer = 0;
  readonly #limits: ChunkLimits;

  constructor(limits: ChunkLimits = DEFAULT_CHUNK_LIMITS) {
    this.#limits = limits;
  }

  /** True once the last chunk and trailers have been read. */
  get done(): boolean {
    return this.#state === S_DONE;
  }

  /**
   * Consumes framing bytes from `buf[p, end)` until the next data byte, and
   * returns `[p, n]`: the index of the first data byte and how many data bytes
   * (`n`) are available from there. The caller takes the data and calls again
   * from `p + n`. Returns `n = 0` with `p === end` when more input is needed,
   * and `n = 0` with {@linkcode done} set at the end of the body.
   */
  next(buf: Uint8Array, p: number, end: number): [number, number] {
    const L = this.#limits;
    while (p < end) {
      const c = buf[p];
      switch (this.#state) {
        case S_SIZE: {
          if (++this.#line > L.maxChunkLineBytes) {
            throw new HttpError(400, "chunk size line too long");
          }
          const h = hex(c);
          if (h >= 0) {
            this.#digits++;
            this.#size = this.#size * 16 + h;
            if (this.#size > MAX_CHUNK_SIZE) throw new HttpError(400, "chunk size too large");
            p++;
            break;
          }
          if (this.#digits === 0) throw new HttpError(400, "invalid chunk size");
          p++;
          if (c === CR) this.#state = S_SIZE_LF;
          else if (c === 59) this.#state = S_EXT;
          else if (c === SP || c === HTAB) this.#state = S_SIZE_WS;
          else throw new HttpError(400, "invalid chunk size");
          break;
        }
        case S_SIZE_WS:
          if (++this.#line > L.maxChunkLineBytes) {
            throw new HttpError(400, "chunk size line too long");
          }
          if (c === 59) this.#state = S_EXT;
          else if (c !== SP && c !== HTAB) throw new HttpError(400, "invalid chunk size");
          p++;
          break;
        case S_EXT:
          // chunk-ext after the first ";": bounded, no control bytes.
          if (c === CR) {
            this.#state = S_SIZE_LF;
          } else if (c === LF || (c < 0x20 && c !== HTAB) || c === 0x7f) {
            throw new HttpError(400, "invalid chunk extension");
          }
          if (++this.#line > L.maxChunkLineBytes) {
            throw new HttpError(400, "chunk extension too long");
          }
          p++;
          break;
        case S_SIZE_LF:
          if (c !== LF) throw new HttpError(400, "bare CR in chunk size line");
          p++;
          this.#digits = 0;
          this.#line = 0;
          if (this.#size === 0) this.#state = S_TRAILER;
          else this.#state = S_DATA;
          break;
        case S_DATA: {
          const n = Math.min(this.#size, end - p);
          this.#size -= n;
          if (this.#size === 0) this.#state = S_DATA_CR;
          return [p, n];
        }
        case S_DATA_CR:
          if (c !== CR) throw new HttpError(400, "missing CRLF after chunk data");
          this.#state = S_DATA_LF;
          p++;
          break;
        case S_DATA_LF:
          if (c !== LF) throw new HttpError(400, "missing CRLF after chunk data");
          this.#state = S_SIZE;
          p++;
          break;
        case S_TRAILER:
          if (c === CR) {
            this.#state = S_END_LF;
            p++;
            break;
          }
          if (!(T[c] & 1)) throw new HttpError(400, "invalid trailer field");
          this.#state = S_TRAILER_NAME;
          break;
        case S_TRAILER_NAME:
          if (++this.#trailer > L.maxTrailerBytes) {
            throw new HttpError(431, "trailer section too large");
          }
          if (c === 58) this.#state = S_TRAILER_VALUE;
          else if (!(T[c] & 1)) throw new HttpError(400, "invalid trailer field name");
          p++;
          break;
        case S_TRAILER_VALUE:
          if (++this.#trailer > L.maxTrailerBytes) {
            throw new HttpError(431, "trailer section too large");
          }
          if (c === CR) this.#state = S_TRAILER_LF;
          else if (!(T[c] & 2)) throw new HttpError(400, "invalid trailer field value");
          p++;
          break;
        case S_TRAILER_LF:
          if (c !== LF) throw new HttpError(400, "bare CR in trailer");
          this.#state = S_TRAILER;
          p++;
          break;
        case S_END_LF:
          if (c !== LF) throw new HttpError(400, "bare CR after trailers");
          this.#state = S_DONE;
          return [p + 1, 0];
        case S_DONE:
          return [p, 0];
      }
    }
    return [p, 0];
  }
}

function hex(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  if (c >= 65 && c <= 70) return c - 55;
  return -1;
}
