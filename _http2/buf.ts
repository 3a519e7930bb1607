// Copyright 2026 the connctx authors. MIT license.
// A growable byte buffer that frames and header blocks are written into.

/**
 * An append-only byte buffer: `buf[0..len)` is the content. It grows by
 * doubling; {@linkcode ByteBuf.reset} keeps the memory for reuse.
 */
export class ByteBuf {
  /** The storage; valid bytes are `[0, len)`. */
  buf: Uint8Array;
  /** Bytes written. */
  len = 0;

  /**
   * Makes an empty buffer.
   *
   * @param size Initial capacity in bytes.
   */
  constructor(size = 1024) {
    this.buf = new Uint8Array(size);
  }

  /**
   * Makes room for `n` more bytes.
   *
   * @param n Bytes about to be written.
   */
  ensure(n: number): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
  }

  /**
   * Appends one byte (room must have been ensured).
   *
   * @param b The byte.
   */
  byte(b: number): void {
    this.buf[this.len++] = b;
  }

  /**
   * Appends bytes.
   *
   * @param b The bytes.
   */
  bytes(b: Uint8Array): void {
    this.ensure(b.byteLength);
    this.buf.set(b, this.len);
    this.len += b.byteLength;
  }

  /**
   * Appends a string of octets (char codes 0–255) one byte per char.
   *
   * @param s The string.
   */
  latin1(s: string): void {
    const n = s.length;
    this.ensure(n);
    const buf = this.buf;
    let at = this.len;
    for (let i = 0; i < n; i++) buf[at++] = s.charCodeAt(i);
    this.len = at;
  }

  /** Forgets the content, keeping the memory. */
  reset(): void {
    this.len = 0;
  }

  /** The content, as a view (valid until the next write). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.len);
  }
}

const ascii = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Decodes octets as Latin-1 (one char per byte, as HTTP field values are
 * exposed by `Headers`).
 *
 * @param b Source bytes.
 * @param start First byte.
 * @param end One past the last byte.
 * @returns The string.
 */
export function latin1(b: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 16) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(b[i]);
    return s;
  }
  let high = false;
  for (let i = start; i < end; i++) {
    if (b[i] > 0x7f) {
      high = true;
      break;
    }
  }
  if (!high) return ascii.decode(b.subarray(start, end));
  let s = "";
  for (let i = start; i < end; i += 4096) {
    s += String.fromCharCode.apply(
      null,
      b.subarray(i, Math.min(end, i + 4096)) as unknown as number[],
    );
  }
  return s;
}
