// Copyright 2026 the connctx authors. MIT license.
// The Huffman code of HPACK (RFC 7541 §5.2, Appendix B).
//
// The code is canonical: codes are assigned in order of length, and within a
// length in order of symbol. So the table is stored as nothing more than the
// code length of each of the 257 symbols (256 octets and EOS), and the codes
// are rebuilt from the lengths at load time.
//
// Decoding reads 9 bits at a time through a 512-entry table, which resolves
// every code of up to 9 bits (all of a-z, 0-9 and the common punctuation) in
// one lookup. Longer codes fall back to the canonical-code walk: for each
// length L, the codes of length L are one contiguous range, and any L-bit
// prefix of a longer code is above that range.

/** Code length in bits of each symbol 0..256 (256 is EOS), RFC 7541 Appendix B. */
// deno-fmt-ignore
const LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6,
  5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7,
  7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23,
  24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22, 22, 23, 23, 21,
  23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24,
  21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23,
  26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const EOS = 256;
const MAX_LEN = 30;
const PEEK = 9;

/** Code of each symbol, right-aligned. */
const CODES = new Uint32Array(257);
/** Length of each symbol's code, as a typed array for the encoder. */
const LENS = new Uint8Array(LENGTHS);
/** Symbols in canonical order (by length, then value). */
const SORTED = new Uint16Array(257);
/** Per length: first code, and one past the last code. */
const FIRST = new Uint32Array(MAX_LEN + 1);
const LIMIT = new Uint32Array(MAX_LEN + 1);
/** Per length: index in SORTED of the first symbol of that length. */
const OFFSET = new Uint16Array(MAX_LEN + 1);
/** 9-bit lookup: `(length << 9) | symbol` for codes of at most 9 bits, else 0. */
const FAST = new Uint16Array(1 << PEEK);

{
  const order = Array.from({ length: 257 }, (_, i) => i).sort((a, b) =>
    LENGTHS[a] - LENGTHS[b] || a - b
  );
  let code = 0;
  let prevLen = LENGTHS[order[0]];
  for (let i = 0; i < 257; i++) {
    const s = order[i];
    const len = LENGTHS[s];
    if (i > 0) code = (code + 1) * 2 ** (len - prevLen);
    if (len !== prevLen || i === 0) {
      FIRST[len] = code;
      OFFSET[len] = i;
    }
    prevLen = len;
    CODES[s] = code;
    SORTED[i] = s;
    LIMIT[len] = code + 1;
    if (len <= PEEK) {
      const span = 1 << (PEEK - len);
      const from = code << (PEEK - len);
      for (let j = 0; j < span; j++) FAST[from + j] = (len << 9) | s;
    }
  }
}

/** The Huffman code could not be decoded (RFC 7541 §5.2): a compression error. */
export class HuffmanError extends Error {
  /**
   * Makes the error.
   *
   * @param message What was wrong with the code.
   */
  constructor(message: string) {
    super(message);
    this.name = "HuffmanError";
  }
}

let scratch = new Uint8Array(256);

/**
 * Decodes a Huffman-coded string.
 *
 * Rejects (RFC 7541 §5.2) the EOS symbol, padding longer than 7 bits, and
 * padding that is not the most significant bits of EOS (all ones).
 *
 * @param src The encoded octets.
 * @param start Offset of the first encoded octet.
 * @param end Offset after the last encoded octet.
 * @returns The decoded octets, in a scratch buffer valid until the next call.
 * @throws {HuffmanError} When the code is invalid.
 */
export function huffmanDecode(src: Uint8Array, start: number, end: number): Uint8Array {
  // The shortest code is 5 bits: at most 8/5 of the input.
  const max = (((end - start) * 8) / 5) | 0;
  if (scratch.length < max) scratch = new Uint8Array(Math.max(max, scratch.length * 2));
  const out = scratch;
  let o = 0;
  let acc = 0; // the low `bits` bits are unread input
  let bits = 0;
  let i = start;
  for (;;) {
    while (bits <= 24 && i < end) {
      acc = ((acc << 8) | src[i++]) >>> 0;
      bits += 8;
    }
    if (bits === 0) break;
    // The next 9 bits, padded with ones past the end (as EOS pads).
    const peek = bits >= PEEK
      ? (acc >>> (bits - PEEK)) & 0x1ff
      : ((acc << (PEEK - bits)) | ((1 << (PEEK - bits)) - 1)) & 0x1ff;
    const e = FAST[peek];
    let len: number;
    let sym: number;
    if (e !== 0) {
      len = e >>> 9;
      sym = e & 0x1ff;
    } else {
      // 30 bits: the buffered ones, then (the refill leaves at least 25
      // buffered while input remains) the top of the next octet, or ones
      // past the end.
      let w: number;
      if (bits >= MAX_LEN) w = acc >>> (bits - MAX_LEN);
      else {
        const need = MAX_LEN - bits;
        const low = i < end ? src[i] >>> (8 - need) : (1 << need) - 1;
        w = ((acc << need) | low) >>> 0;
      }
      len = PEEK + 1;
      for (; len <= MAX_LEN; len++) {
        const c = w >>> (MAX_LEN - len);
        if (c < LIMIT[len]) break;
      }
      sym = SORTED[OFFSET[len] + (w >>> (MAX_LEN - len)) - FIRST[len]];
    }
    if (len > bits && i < end) {
      // The code ends inside the next octet.
      if (sym === EOS) throw new HuffmanError("EOS in Huffman-coded string");
      out[o++] = sym;
      bits = 8 - (len - bits);
      acc = src[i++] & ((1 << bits) - 1);
      continue;
    }
    if (len > bits) {
      // Only padding is left: fewer than 8 bits, all ones.
      if (bits > 7 || acc !== (1 << bits) - 1) throw new HuffmanError("invalid Huffman padding");
      break;
    }
    if (sym === EOS) throw new HuffmanError("EOS in Huffman-coded string");
    out[o++] = sym;
    bits -= len;
    acc = (acc & ((1 << bits) - 1)) >>> 0;
  }
  return out.subarray(0, o);
}

/**
 * The length in octets of a string's Huffman code.
 *
 * @param s A string of octets (char codes 0–255).
 * @returns The encoded length, or -1 if `s` has a char code above 255.
 */
export function huffmanLength(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 255) return -1;
    n += LENS[c];
  }
  return (n + 7) >>> 3;
}

/**
 * Huffman-codes a string of octets into `dst`.
 *
 * @param s The string; every char code must be at most 255
 *   ({@linkcode huffmanLength} says).
 * @param dst Where to write; must have room for `huffmanLength(s)` octets.
 * @param at Offset in `dst`.
 * @returns The offset after the last octet written.
 */
export function huffmanEncode(s: string, dst: Uint8Array, at: number): number {
  let acc = 0; // fewer than 8 pending bits between symbols
  let bits = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    let code = CODES[c];
    let len = LENS[c];
    if (len > 24) {
      // Keep every shift within 32 bits: the high part first.
      const hi = len - 16;
      acc = (acc << hi) | (code >>> 16);
      bits += hi;
      while (bits >= 8) {
        bits -= 8;
        dst[at++] = acc >>> bits;
      }
      acc &= (1 << bits) - 1;
      code &= 0xffff;
      len = 16;
    }
    acc = (acc << len) | code;
    bits += len;
    while (bits >= 8) {
      bits -= 8;
      dst[at++] = acc >>> bits;
    }
    acc &= (1 << bits) - 1;
  }
  if (bits > 0) dst[at++] = (acc << (8 - bits)) | ((1 << (8 - bits)) - 1);
  return at;
}
