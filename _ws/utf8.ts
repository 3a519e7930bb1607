// Copyright 2026 the connctx authors. MIT license.

/**
 * Incremental UTF-8 validation for WebSocket text messages (RFC 6455 §8.1):
 * a text message must be valid UTF-8 as a whole, but a code point may be
 * split across frames and across reads. {@linkcode Utf8Validator} keeps the
 * state of a partial sequence between chunks and rejects a byte as soon as no
 * valid continuation exists, so a bad message fails at the first bad byte
 * that arrives (Autobahn 6.x "fail fast"), not at the end of its frame.
 *
 * The accepted sequences are exactly the well-formed ones of the Unicode
 * Standard (Table 3-7): no overlong forms, no surrogates (U+D800–U+DFFF), no
 * code point above U+10FFFF.
 *
 * @module
 */

/**
 * Validates UTF-8 chunk by chunk.
 *
 * @example
 * ```ts
 * import { Utf8Validator } from "./utf8.ts";
 * import assert from "node:assert/strict";
 *
 * const v = new Utf8Validator();
 * // "€" is E2 82 AC, split across two chunks
 * assert.equal(v.push(new Uint8Array([0x61, 0xe2])), true);
 * assert.equal(v.complete, false);
 * assert.equal(v.push(new Uint8Array([0x82, 0xac])), true);
 * assert.equal(v.complete, true);
 * assert.equal(v.push(new Uint8Array([0xed, 0xa0])), false); // a surrogate: fails at once
 * ```
 */
export class Utf8Validator {
  /** Continuation bytes still expected. */
  #need = 0;
  /** Allowed range of the next continuation byte. */
  #lo = 0x80;
  #hi = 0xbf;
  #failed = false;

  /** True when no sequence is left open (a message may end here). */
  get complete(): boolean {
    return this.#need === 0 && !this.#failed;
  }

  /** Forgets all state, for the next message. */
  reset(): void {
    this.#need = 0;
    this.#lo = 0x80;
    this.#hi = 0xbf;
    this.#failed = false;
  }

  /**
   * Feeds `bytes[start..end)`; false as soon as a byte makes the message
   * invalid (the validator stays failed until {@linkcode reset}).
   */
  push(bytes: Uint8Array, start = 0, end: number = bytes.length): boolean {
    if (this.#failed) return false;
    let need = this.#need, lo = this.#lo, hi = this.#hi;
    let i = start;
    while (i < end) {
      const b = bytes[i++];
      if (need === 0) {
        if (b < 0x80) {
          // ASCII run: the common case, a tight loop.
          while (i < end && bytes[i] < 0x80) i++;
          continue;
        }
        lo = 0x80;
        hi = 0xbf;
        if (b >= 0xc2 && b <= 0xdf) need = 1;
        else if (b >= 0xe0 && b <= 0xef) {
          need = 2;
          if (b === 0xe0) lo = 0xa0; // no overlong 3-byte forms
          else if (b === 0xed) hi = 0x9f; // no surrogates
        } else if (b >= 0xf0 && b <= 0xf4) {
          need = 3;
          if (b === 0xf0) lo = 0x90; // no overlong 4-byte forms
          else if (b === 0xf4) hi = 0x8f; // nothing above U+10FFFF
        } else {
          this.#failed = true;
          return false;
        }
      } else {
        if (b < lo || b > hi) {
          this.#failed = true;
          return false;
        }
        need--;
        lo = 0x80;
        hi = 0xbf;
      }
    }
    this.#need = need;
    this.#lo = lo;
    this.#hi = hi;
    return true;
  }
}

/**
 * Whether `bytes` is complete, well-formed UTF-8.
 *
 * @example
 * ```ts
 * import { isValidUtf8 } from "./utf8.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isValidUtf8(new TextEncoder().encode("κόσμε")), true);
 * assert.equal(isValidUtf8(new Uint8Array([0xc0, 0x80])), false); // overlong NUL
 * ```
 */
export function isValidUtf8(bytes: Uint8Array): boolean {
  const v = new Utf8Validator();
  return v.push(bytes) && v.complete;
}
