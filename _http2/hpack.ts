// Copyright 2026 the connctx authors. MIT license.
// HPACK: header compression for HTTP/2 (RFC 7541).
//
// The decoder turns a header block into a flat `[name, value, name, value…]`
// array of strings. Field values are octets; they become strings one char
// per octet (Latin-1), which is how `Headers` holds them, so a string's
// length is its size in octets and the table's size accounting (§4.1) is a
// sum of `.length`s.
//
// Bounds: a block is decoded in one pass over its bytes, so the work is
// linear in the block's size (which the connection bounds before it gets
// here). The decoded list is bounded separately: once the sum of
// `name + value + 32` passes `maxHeaderListSize`, nothing more is emitted,
// though the rest of the block is still processed so that the dynamic table
// stays in step with the peer's. An "HPACK bomb" (a small block that refers
// to a large table entry many times) therefore costs a flag, not memory.

import { type ByteBuf, latin1 } from "./buf.ts";
import { huffmanDecode, huffmanEncode, HuffmanError, huffmanLength } from "./huffman.ts";

/**
 * A header block could not be decoded: an HTTP/2 `COMPRESSION_ERROR`
 * (RFC 7541 §2.3.3, §4.2, §5, §6; RFC 9113 §4.3), fatal to the connection.
 */
export class HpackError extends Error {
  /**
   * Makes the error.
   *
   * @param message What was wrong with the block.
   */
  constructor(message: string) {
    super(message);
    this.name = "HpackError";
  }
}

/** The static table (RFC 7541 Appendix A), 1-based: index 0 is unused. */
export const STATIC_TABLE: readonly (readonly [string, string])[] = [
  ["", ""],
  [":authority", ""],
  [":method", "GET"],
  [":method", "POST"],
  [":path", "/"],
  [":path", "/index.html"],
  [":scheme", "http"],
  [":scheme", "https"],
  [":status", "200"],
  [":status", "204"],
  [":status", "206"],
  [":status", "304"],
  [":status", "400"],
  [":status", "404"],
  [":status", "500"],
  ["accept-charset", ""],
  ["accept-encoding", "gzip, deflate"],
  ["accept-language", ""],
  ["accept-ranges", ""],
  ["accept", ""],
  ["access-control-allow-origin", ""],
  ["age", ""],
  ["allow", ""],
  ["authorization", ""],
  ["cache-control", ""],
  ["content-disposition", ""],
  ["content-encoding", ""],
  ["content-language", ""],
  ["content-length", ""],
  ["content-location", ""],
  ["content-range", ""],
  ["content-type", ""],
  ["cookie", ""],
  ["date", ""],
  ["etag", ""],
  ["expect", ""],
  ["expires", ""],
  ["from", ""],
  ["host", ""],
  ["if-match", ""],
  ["if-modified-since", ""],
  ["if-none-match", ""],
  ["if-range", ""],
  ["if-unmodified-since", ""],
  ["last-modified", ""],
  ["link", ""],
  ["location", ""],
  ["max-forwards", ""],
  ["proxy-authenticate", ""],
  ["proxy-authorization", ""],
  ["range", ""],
  ["referer", ""],
  ["refresh", ""],
  ["retry-after", ""],
  ["server", ""],
  ["set-cookie", ""],
  ["strict-transport-security", ""],
  ["transfer-encoding", ""],
  ["user-agent", ""],
  ["vary", ""],
  ["via", ""],
  ["www-authenticate", ""],
];

const STATIC_LEN = 61;
const STATIC_NAMES: string[] = STATIC_TABLE.map((e) => e[0]);
const STATIC_VALUES: string[] = STATIC_TABLE.map((e) => e[1]);

/** Static lookups for the encoder: name → first index, and exact matches. */
interface StaticName {
  index: number;
  values: Map<string, number>;
}
const STATIC_BY_NAME = new Map<string, StaticName>();
for (let i = 1; i <= STATIC_LEN; i++) {
  const [n, v] = STATIC_TABLE[i];
  let e = STATIC_BY_NAME.get(n);
  if (e === undefined) STATIC_BY_NAME.set(n, e = { index: i, values: new Map() });
  if (v !== "") e.values.set(v, i);
}

/** Per-entry overhead in the table size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;

/** Options for a {@linkcode Decoder}. */
export interface DecoderOptions {
  /** Largest dynamic table the peer may use: our
   * `SETTINGS_HEADER_TABLE_SIZE`. Default 4096. */
  maxTableSize?: number;
  /** Largest decoded header list, counted as RFC 9113 §6.5.2 counts
   * `SETTINGS_MAX_HEADER_LIST_SIZE`. Default 64 KiB. */
  maxHeaderListSize?: number;
}

/**
 * Decodes header blocks (RFC 7541 §3), keeping the dynamic table across
 * blocks. One per connection, fed blocks in the order they arrive.
 *
 * @example
 * ```ts
 * import { Decoder } from "./hpack.ts";
 *
 * const d = new Decoder();
 * d.decode(new Uint8Array([0x82, 0x84])); // [":method", "GET", ":path", "/"]
 * ```
 */
export class Decoder {
  /** Set by {@linkcode Decoder.decode} when the decoded list passed
   * `maxHeaderListSize` and was cut short. */
  overflow = false;
  /** The header list limit; may be changed between blocks. */
  maxHeaderListSize: number;
  /** Upper bound for size updates (our SETTINGS_HEADER_TABLE_SIZE). */
  #limit: number;
  /** Current table capacity (from the last size update). */
  #max: number;
  #size = 0;
  #names: (string | undefined)[] = new Array(16);
  #values: (string | undefined)[] = new Array(16);
  #mask = 15;
  /** Slot of the newest entry. */
  #newest = 15;
  #count = 0;
  /** Parse position within the block being decoded. */
  #p = 0;

  /**
   * Makes a decoder with an empty dynamic table.
   *
   * @param options Table and list limits.
   */
  constructor(options: DecoderOptions = {}) {
    this.#limit = this.#max = options.maxTableSize ?? 4096;
    this.maxHeaderListSize = options.maxHeaderListSize ?? 64 * 1024;
  }

  /** The dynamic table's size in octets (RFC 7541 §4.1). */
  get tableSize(): number {
    return this.#size;
  }

  /** Entries in the dynamic table. */
  get tableLength(): number {
    return this.#count;
  }

  /**
   * A dynamic table entry, 0 being the newest (HPACK index 62).
   *
   * @param i Position from the newest.
   * @returns `[name, value]`.
   */
  entry(i: number): [string, string] {
    const s = (this.#newest - i) & this.#mask;
    return [this.#names[s]!, this.#values[s]!];
  }

  /**
   * Changes the bound on size updates, after our SETTINGS_HEADER_TABLE_SIZE
   * changed and the peer acknowledged it.
   *
   * @param n The new bound.
   */
  setLimit(n: number): void {
    this.#limit = n;
  }

  /**
   * Decodes one complete header block.
   *
   * @param block The bytes.
   * @param start Offset of the block.
   * @param end Offset after the block.
   * @returns `[name, value, …]`; cut short if {@linkcode Decoder.overflow}.
   * @throws {HpackError} On any decoding error (a connection error).
   */
  decode(block: Uint8Array, start = 0, end: number = block.length): string[] {
    const out: string[] = [];
    let list = 0;
    const maxList = this.maxHeaderListSize;
    let over = false;
    let fields = false;
    this.#p = start;
    while (this.#p < end) {
      const b = block[this.#p];
      let name: string;
      let value: string;
      if (b & 0x80) {
        // Indexed field (§6.1).
        const idx = this.#int(block, end, 7);
        if (idx === 0) throw new HpackError("index 0");
        if (idx <= STATIC_LEN) {
          name = STATIC_NAMES[idx];
          value = STATIC_VALUES[idx];
        } else {
          const i = idx - STATIC_LEN - 1;
          if (i >= this.#count) throw new HpackError(`index ${idx} out of range`);
          const s = (this.#newest - i) & this.#mask;
          name = this.#names[s]!;
          value = this.#values[s]!;
        }
      } else if (b & 0x40) {
        // Literal with incremental indexing (§6.2.1).
        const idx = this.#int(block, end, 6);
        name = idx === 0 ? this.#string(block, end, false)! : this.#name(idx);
        value = this.#string(block, end, false)!;
        this.#insert(name, value);
      } else if (b & 0x20) {
        // Dynamic table size update (§6.3): only before the first field.
        if (fields) throw new HpackError("table size update after a field");
        const n = this.#int(block, end, 5);
        if (n > this.#limit) throw new HpackError(`table size ${n} over the limit`);
        this.#max = n;
        this.#evict(0);
        continue;
      } else {
        // Literal without indexing (§6.2.2) or never indexed (§6.2.3). Once
        // the list is over its limit, the strings are only skipped.
        const idx = this.#int(block, end, 4);
        if (over) {
          if (idx === 0) this.#string(block, end, true);
          else if (idx > STATIC_LEN + this.#count) {
            throw new HpackError(`index ${idx} out of range`);
          }
          this.#string(block, end, true);
          fields = true;
          continue;
        }
        name = idx === 0 ? this.#string(block, end, false)! : this.#name(idx);
        value = this.#string(block, end, false)!;
      }
      fields = true;
      if (over) continue;
      list += name.length + value.length + ENTRY_OVERHEAD;
      if (list > maxList) {
        over = true;
        continue;
      }
      out.push(name, value);
    }
    this.overflow = over;
    return out;
  }

  /** A prefixed integer (§5.1) at #p. */
  #int(block: Uint8Array, end: number, prefix: number): number {
    const max = (1 << prefix) - 1;
    let v = block[this.#p++] & max;
    if (v < max) return v;
    let shift = 0;
    for (;;) {
      if (this.#p >= end) throw new HpackError("truncated integer");
      const b = block[this.#p++];
      v += (b & 0x7f) * 2 ** shift;
      if ((b & 0x80) === 0) break;
      shift += 7;
      // Nothing in a block needs more than 2^31; longer encodings (even
      // with zero padding) are refused.
      if (shift > 28) throw new HpackError("integer overflow");
    }
    if (v > 0x7fffffff) throw new HpackError("integer overflow");
    return v;
  }

  /** A name by index (static or dynamic). */
  #name(idx: number): string {
    if (idx <= STATIC_LEN) return STATIC_NAMES[idx];
    const i = idx - STATIC_LEN - 1;
    if (i >= this.#count) throw new HpackError(`index ${idx} out of range`);
    return this.#names[(this.#newest - i) & this.#mask]!;
  }

  /** A string literal (§5.2) at #p; `skip` validates only its length. */
  #string(block: Uint8Array, end: number, skip: boolean): string | null {
    if (this.#p >= end) throw new HpackError("truncated string");
    const huff = (block[this.#p] & 0x80) !== 0;
    const len = this.#int(block, end, 7);
    const s = this.#p;
    const e = s + len;
    if (e > end) throw new HpackError("string past the end of the block");
    this.#p = e;
    if (skip) return null;
    if (!huff) return latin1(block, s, e);
    let d: Uint8Array;
    try {
      d = huffmanDecode(block, s, e);
    } catch (err) {
      if (err instanceof HuffmanError) throw new HpackError(err.message);
      throw err;
    }
    return latin1(d, 0, d.length);
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (size > this.#max) {
      // §4.4: an entry larger than the table empties it.
      this.#evict(this.#max + 1);
      return;
    }
    this.#evict(size);
    if (this.#count === this.#mask + 1) this.#grow();
    const slot = this.#newest = (this.#newest + 1) & this.#mask;
    this.#names[slot] = name;
    this.#values[slot] = value;
    this.#count++;
    this.#size += size;
  }

  /** Evicts the oldest entries until `room` more octets fit. */
  #evict(room: number): void {
    while (this.#count > 0 && this.#size + room > this.#max) {
      const slot = (this.#newest - this.#count + 1) & this.#mask;
      this.#size -= this.#names[slot]!.length + this.#values[slot]!.length + ENTRY_OVERHEAD;
      this.#names[slot] = this.#values[slot] = undefined;
      this.#count--;
    }
  }

  #grow(): void {
    const cap = (this.#mask + 1) * 2;
    const names: (string | undefined)[] = new Array(cap);
    const values: (string | undefined)[] = new Array(cap);
    // Oldest first, so the newest ends at count - 1.
    for (let i = this.#count - 1, j = 0; i >= 0; i--, j++) {
      const s = (this.#newest - i) & this.#mask;
      names[j] = this.#names[s];
      values[j] = this.#values[s];
    }
    this.#names = names;
    this.#values = values;
    this.#mask = cap - 1;
    this.#newest = this.#count - 1;
  }
}

/** Options for an {@linkcode Encoder}. */
export interface EncoderOptions {
  /** The most table the encoder will use, whatever the peer allows.
   * Default 4096 (the protocol's initial size). */
  maxTableSize?: number;
  /** When to Huffman-code strings: when `shorter` (default), `always` or
   * `never`. */
  huffman?: "shorter" | "always" | "never";
  /** Which fields never enter the table and are marked never-indexed
   * (§6.2.3), so intermediaries don't index them either. Default: short
   * values (under 20 octets, guessable) of `authorization`, `cookie`,
   * `proxy-authorization` and `set-cookie`. Return `"plain"` to send a
   * literal without indexing (§6.2.2), `true` for never-indexed, `false`
   * to let the encoder decide. */
  sensitive?: (name: string, value: string) => boolean | "plain";
}

const SENSITIVE = new Set(["authorization", "cookie", "proxy-authorization", "set-cookie"]);

/**
 * The default {@linkcode EncoderOptions.sensitive} policy.
 *
 * @param name Lower-case field name.
 * @param value Field value.
 * @returns Never-index short secrets; send longer ones unindexed.
 */
export function defaultSensitive(name: string, value: string): boolean | "plain" {
  if (!SENSITIVE.has(name)) return false;
  return value.length < 20 ? true : "plain";
}

interface DynName {
  /** Insertion number of the newest entry with this name. */
  seq: number;
  /** Value → insertion number of its newest entry. */
  values: Map<string, number>;
}

/**
 * Encodes header blocks (RFC 7541 §3), keeping its dynamic table across
 * blocks. Exact matches become one index; other fields are literals with an
 * indexed name where possible, added to the table unless they are sensitive
 * or too large; strings are Huffman-coded when that is shorter.
 *
 * @example
 * ```ts
 * import { ByteBuf } from "./buf.ts";
 * import { Encoder } from "./hpack.ts";
 *
 * const e = new Encoder();
 * const w = new ByteBuf();
 * e.startBlock(w);
 * e.status(w, 200);
 * e.field(w, "content-type", "text/plain");
 * ```
 */
export class Encoder {
  readonly #cap: number;
  readonly #huffman: 0 | 1 | 2;
  readonly #sensitive: (name: string, value: string) => boolean | "plain";
  #max: number;
  #size = 0;
  /** Entries, oldest first from #head; seq of entry k is #base + k. */
  #names: string[] = [];
  #values: string[] = [];
  #head = 0;
  /** Insertion number of the oldest entry still in the table. */
  #oldest = 0;
  /** Insertions so far (the next entry's number). */
  #next = 0;
  #byName = new Map<string, DynName>();
  /** Smallest size since the last block (-1: no change to signal). */
  #pendingMin = -1;

  /**
   * Makes an encoder with an empty dynamic table.
   *
   * @param options Table size, Huffman and indexing policy.
   */
  constructor(options: EncoderOptions = {}) {
    this.#cap = this.#max = options.maxTableSize ?? 4096;
    const h = options.huffman ?? "shorter";
    this.#huffman = h === "never" ? 0 : h === "shorter" ? 1 : 2;
    this.#sensitive = options.sensitive ?? defaultSensitive;
  }

  /** The dynamic table's size in octets. */
  get tableSize(): number {
    return this.#size;
  }

  /**
   * Applies the peer's SETTINGS_HEADER_TABLE_SIZE: the table shrinks to it
   * if needed, and the change is signalled at the start of the next block.
   *
   * @param n The peer's limit.
   */
  setPeerLimit(n: number): void {
    const size = Math.min(n, this.#cap);
    if (size === this.#max) return;
    this.#max = size;
    this.#pendingMin = this.#pendingMin === -1 ? size : Math.min(this.#pendingMin, size);
    this.#evict(0);
  }

  /**
   * Starts a header block: writes any pending table size update (§4.2).
   *
   * @param w The buffer the block is written to.
   */
  startBlock(w: ByteBuf): void {
    if (this.#pendingMin === -1) return;
    if (this.#pendingMin < this.#max) writeInt(w, 5, 0x20, this.#pendingMin);
    writeInt(w, 5, 0x20, this.#max);
    this.#pendingMin = -1;
  }

  /**
   * Writes a `:status` field.
   *
   * @param w The buffer.
   * @param status The status code.
   */
  status(w: ByteBuf, status: number): void {
    let idx = 0;
    switch (status) {
      case 200:
        idx = 8;
        break;
      case 204:
        idx = 9;
        break;
      case 206:
        idx = 10;
        break;
      case 304:
        idx = 11;
        break;
      case 400:
        idx = 12;
        break;
      case 404:
        idx = 13;
        break;
      case 500:
        idx = 14;
        break;
    }
    if (idx !== 0) {
      w.ensure(1);
      w.byte(0x80 | idx);
    } else this.field(w, ":status", String(status));
  }

  /**
   * Writes one field.
   *
   * @param w The buffer.
   * @param name Lower-case field name.
   * @param value Field value (octets as chars 0–255).
   */
  field(w: ByteBuf, name: string, value: string): void {
    const st = STATIC_BY_NAME.get(name);
    if (st !== undefined) {
      const i = st.values.get(value);
      if (i !== undefined) {
        w.ensure(1);
        w.byte(0x80 | i);
        return;
      }
    }
    const dn = this.#byName.get(name);
    if (dn !== undefined) {
      const s = dn.values.get(value);
      if (s !== undefined) {
        writeInt(w, 7, 0x80, this.#index(s));
        return;
      }
    }
    const nameIdx = st !== undefined ? st.index : dn !== undefined ? this.#index(dn.seq) : 0;
    const sens = this.#sensitive(name, value);
    const size = name.length + value.length + ENTRY_OVERHEAD;
    if (sens === false && size <= (this.#max * 3) >>> 2) {
      writeInt(w, 6, 0x40, nameIdx);
      if (nameIdx === 0) this.#string(w, name);
      this.#string(w, value);
      this.#insert(name, value, size);
      return;
    }
    writeInt(w, 4, sens === true ? 0x10 : 0, nameIdx);
    if (nameIdx === 0) this.#string(w, name);
    this.#string(w, value);
  }

  #index(seq: number): number {
    return STATIC_LEN + this.#next - seq;
  }

  #string(w: ByteBuf, s: string): void {
    if (this.#huffman !== 0) {
      const hl = huffmanLength(s);
      if (hl >= 0 && (this.#huffman === 2 || hl < s.length)) {
        writeInt(w, 7, 0x80, hl);
        w.ensure(hl);
        w.len = huffmanEncode(s, w.buf, w.len);
        return;
      }
    }
    writeInt(w, 7, 0, s.length);
    w.latin1(s);
  }

  #insert(name: string, value: string, size: number): void {
    this.#evict(size);
    const seq = this.#next++;
    this.#names.push(name);
    this.#values.push(value);
    this.#size += size;
    let dn = this.#byName.get(name);
    if (dn === undefined) this.#byName.set(name, dn = { seq, values: new Map() });
    dn.seq = seq;
    dn.values.set(value, seq);
  }

  #evict(room: number): void {
    while (this.#oldest < this.#next && this.#size + room > this.#max) {
      const seq = this.#oldest++;
      const name = this.#names[this.#head];
      const value = this.#values[this.#head];
      this.#head++;
      this.#size -= name.length + value.length + ENTRY_OVERHEAD;
      const dn = this.#byName.get(name)!;
      // FIFO: if this was the newest entry with its name, it was the last.
      if (dn.seq === seq) this.#byName.delete(name);
      else if (dn.values.get(value) === seq) dn.values.delete(value);
    }
    // Drop evicted slots now and then, not on every eviction.
    if (this.#head > 64 && this.#head * 2 > this.#names.length) {
      this.#names = this.#names.slice(this.#head);
      this.#values = this.#values.slice(this.#head);
      this.#head = 0;
    }
  }
}

/**
 * Writes a prefixed integer (RFC 7541 §5.1).
 *
 * @param w The buffer.
 * @param prefix Prefix size in bits (1–8).
 * @param flags The bits above the prefix in the first octet.
 * @param v The value (non-negative).
 */
export function writeInt(w: ByteBuf, prefix: number, flags: number, v: number): void {
  const max = (1 << prefix) - 1;
  w.ensure(6);
  if (v < max) {
    w.byte(flags | v);
    return;
  }
  w.byte(flags | max);
  v -= max;
  while (v >= 128) {
    w.byte((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  w.byte(v);
}
