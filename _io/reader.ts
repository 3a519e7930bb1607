// Copyright 2026 the connctx authors. MIT license.
// Owns: a connection's buffered reads — the read buffer (small while idle,
// grown for a large head or a chunked body, pooled), the one read that may be
// outstanding at a time (started early to notice a client leaving), and
// `rest()` for handing the unread bytes to another protocol.
//
// The buffer holds `buf[start, end)` unconsumed; `scan` is where the head
// search resumes. Protocol code reads and moves these indexes directly: this
// is the hot path, and an accessor per byte range would cost more than the
// rest of a small request.

/** An idle connection reads into a buffer this small: most request heads
 * from API clients fit, and 5000 idle connections cost 640 KiB, not 5 MiB. */
export const SMALL_BUF = 128;
/** The buffer a head moves to when it does not fit the small one. */
export const BIG_BUF = 4096;
/** The buffer a chunked body is decoded from. */
export const BODY_BUF = 16 * 1024;

/** Read buffers, reused: allocating an ArrayBuffer costs more than serving
 * a small request. At most 32 KiB + 1 MiB are kept. */
const smallPool: Uint8Array[] = [];
const bigPool: Uint8Array[] = [];
const POOL_MAX = 256;

/** Small buffers are cut from shared slabs: a buffer of its own would cost
 * an ArrayBuffer and a backing store (about 750 bytes) per idle connection
 * on top of its 128 bytes. */
const SLAB = SMALL_BUF * 256;
let slab: Uint8Array | null = null;
let slabAt = 0;

function smallBuffer(): Uint8Array {
  const pooled = smallPool.pop();
  if (pooled !== undefined) return pooled;
  if (slab === null || slabAt + SMALL_BUF > slab.length) {
    slab = new Uint8Array(SLAB);
    slabAt = 0;
  }
  const b = slab.subarray(slabAt, slabAt + SMALL_BUF);
  slabAt += SMALL_BUF;
  return b;
}

function readFailed(): number {
  return -1;
}

/** A connection's read side. */
export class ReadBuffer {
  readonly conn: Deno.Conn;
  readonly #small: Uint8Array = smallBuffer();
  buf: Uint8Array = this.#small;
  start = 0;
  end = 0;
  scan = 0;
  /** A read started early (never rejects: -1 on error). */
  pending: Promise<number | null> | null = null;
  /** The peer closed (or the socket failed). */
  eof = false;
  #released = false;

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Bytes buffered and not consumed. */
  get buffered(): number {
    return this.end - this.start;
  }

  /** Reads more bytes into the buffer; returns how many (0: closed). */
  async fill(): Promise<number> {
    let n: number | null;
    const p = this.pending;
    if (p !== null) {
      n = await p;
      this.pending = null;
    } else {
      try {
        n = await this.conn.read(this.space());
      } catch {
        n = -1;
      }
    }
    if (n === null || n <= 0) {
      this.eof = true;
      return 0;
    }
    this.end += n;
    return n;
  }

  /** Starts a read whose promise may never be awaited (so it never rejects). */
  startRead(): Promise<number | null> {
    const p = this.conn.read(this.space()).catch(readFailed);
    this.pending = p;
    return p;
  }

  /** Reads straight into `chunk` (a body, past the buffer); ≤ 0: closed. */
  readInto(chunk: Uint8Array): Promise<number | null> {
    return this.conn.read(chunk).catch(readFailed);
  }

  /** The free tail of the buffer, compacted or grown when full. */
  space(): Uint8Array {
    if (this.start === this.end) {
      this.start = this.end = this.scan = 0;
    }
    let buf = this.buf;
    if (this.end === buf.length) {
      const used = this.end - this.start;
      if (this.start > 0 && used < buf.length / 2) {
        buf.copyWithin(0, this.start, this.end);
      } else {
        const nb = buf === this.#small
          ? bigPool.pop() ?? new Uint8Array(BIG_BUF)
          : new Uint8Array(buf.length * 2);
        nb.set(buf.subarray(this.start, this.end));
        if (buf.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(buf);
        this.buf = buf = nb;
      }
      this.scan -= this.start;
      this.start = 0;
      this.end = used;
    }
    // An empty buffer is read whole: no view object for an idle connection.
    return this.end === 0 ? buf : buf.subarray(this.end);
  }

  /** Makes room for body reads: a buffer of at least `size` bytes. */
  growTo(size: number): void {
    if (this.start === this.end) this.start = this.end = 0;
    if (this.buf.length >= size) return;
    const nb = new Uint8Array(size);
    nb.set(this.buf.subarray(this.start, this.end));
    this.end -= this.start;
    this.scan -= this.start;
    this.start = 0;
    if (this.buf.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(this.buf);
    this.buf = nb;
  }

  /** Between keep-alive requests: back to the small buffer if what is left
   * fits (no read may be outstanding into the big one). */
  shrink(): void {
    if (this.buf === this.#small || this.pending !== null) return;
    const used = this.end - this.start;
    if (used > SMALL_BUF) return;
    const big = this.buf;
    this.#small.set(big.subarray(this.start, this.end));
    this.buf = this.#small;
    this.scan -= this.start;
    this.start = 0;
    this.end = used;
    if (big.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(big);
  }

  /** The unread bytes (a copy), consumed: for the protocol taking over. */
  rest(): Uint8Array {
    const out = this.buf.slice(this.start, this.end);
    this.start = this.end = this.scan = 0;
    return out;
  }

  /** The connection is closed: give the buffers back, unless a read may
   * still fill them. */
  release(): void {
    if (this.#released || this.pending !== null) return;
    this.#released = true;
    if (this.buf.length === BIG_BUF && bigPool.length < POOL_MAX) bigPool.push(this.buf);
    if (smallPool.length < POOL_MAX) smallPool.push(this.#small);
  }
}
