// Copyright 2026 the connctx authors. MIT license.

/**
 * WebSocket framing (RFC 6455 §5): an incremental header parser that works on
 * a byte buffer the caller owns, in-place unmasking, a header encoder for
 * server frames (never masked) and close-frame payload rules.
 *
 * Every protocol violation is thrown as a {@linkcode WebSocketProtocolError}
 * carrying the close code the connection must fail with (1002, 1007, 1009).
 * The parser never waits for a payload before judging its header: a length
 * over the limit, or one with the most significant bit set (2^63 and up),
 * fails as soon as the header is complete, before a payload byte is buffered.
 *
 * @module
 */

/**
 * Continuation frame.
 *
 * @example
 * ```ts
 * import { OP_CONTINUATION } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_CONTINUATION, 0x0);
 * ```
 */
export const OP_CONTINUATION = 0x0;
/**
 * Text frame.
 *
 * @example
 * ```ts
 * import { OP_TEXT } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_TEXT, 0x1);
 * ```
 */
export const OP_TEXT = 0x1;
/**
 * Binary frame.
 *
 * @example
 * ```ts
 * import { OP_BINARY } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_BINARY, 0x2);
 * ```
 */
export const OP_BINARY = 0x2;
/**
 * Connection close.
 *
 * @example
 * ```ts
 * import { OP_CLOSE } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_CLOSE, 0x8);
 * ```
 */
export const OP_CLOSE = 0x8;
/**
 * Ping.
 *
 * @example
 * ```ts
 * import { OP_PING } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_PING, 0x9);
 * ```
 */
export const OP_PING = 0x9;
/**
 * Pong.
 *
 * @example
 * ```ts
 * import { OP_PONG } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(OP_PONG, 0xa);
 * ```
 */
export const OP_PONG = 0xa;

/**
 * Close codes this module sends or reports: normal closure.
 *
 * @example
 * ```ts
 * import { CLOSE_NORMAL } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_NORMAL, 1000);
 * ```
 */
export const CLOSE_NORMAL = 1000;
/**
 * The endpoint is going away (server shutdown, idle peer).
 *
 * @example
 * ```ts
 * import { CLOSE_GOING_AWAY } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_GOING_AWAY, 1001);
 * ```
 */
export const CLOSE_GOING_AWAY = 1001;
/**
 * Protocol error.
 *
 * @example
 * ```ts
 * import { CLOSE_PROTOCOL_ERROR } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_PROTOCOL_ERROR, 1002);
 * ```
 */
export const CLOSE_PROTOCOL_ERROR = 1002;
/**
 * Reported when a close frame had no status code (never sent).
 *
 * @example
 * ```ts
 * import { CLOSE_NO_STATUS } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_NO_STATUS, 1005);
 * ```
 */
export const CLOSE_NO_STATUS = 1005;
/**
 * Reported when the connection closed without a close frame (never sent).
 *
 * @example
 * ```ts
 * import { CLOSE_ABNORMAL } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_ABNORMAL, 1006);
 * ```
 */
export const CLOSE_ABNORMAL = 1006;
/**
 * Invalid payload data (bad UTF-8, bad compressed data).
 *
 * @example
 * ```ts
 * import { CLOSE_INVALID_DATA } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_INVALID_DATA, 1007);
 * ```
 */
export const CLOSE_INVALID_DATA = 1007;
/**
 * Message too big.
 *
 * @example
 * ```ts
 * import { CLOSE_TOO_BIG } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_TOO_BIG, 1009);
 * ```
 */
export const CLOSE_TOO_BIG = 1009;
/**
 * Unexpected server condition.
 *
 * @example
 * ```ts
 * import { CLOSE_INTERNAL_ERROR } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(CLOSE_INTERNAL_ERROR, 1011);
 * ```
 */
export const CLOSE_INTERNAL_ERROR = 1011;

/**
 * A violation of RFC 6455/7692 by the peer, or a limit it broke. `code` is the
 * status code of the close frame that fails the connection.
 *
 * @example
 * ```ts
 * import { WebSocketProtocolError } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const err = new WebSocketProtocolError(1002, "unmasked client frame");
 * assert.equal(err.code, 1002);
 * ```
 */
export class WebSocketProtocolError extends Error {
  /** The close code to fail the connection with. */
  readonly code: number;
  /** @param code close code; @param message what went wrong. */
  constructor(code: number, message: string) {
    super(message);
    this.name = "WebSocketProtocolError";
    this.code = code;
  }
}

/** The largest length a JS number holds exactly; the parser refuses more. */
const MAX_SAFE_HI = 0x1fffff; // 2^53 = 0x20_0000 << 32

/**
 * One frame header, parsed incrementally. An instance is reused for every
 * frame of a connection: parsing allocates nothing.
 *
 * @example
 * ```ts
 * import { FrameHeader, OP_TEXT } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const h = new FrameHeader();
 * // FIN + text, masked, 2-byte payload, mask 1 2 3 4
 * const bytes = new Uint8Array([0x81, 0x82, 1, 2, 3, 4, 0x69 ^ 1, 0x69 ^ 2]);
 * assert.equal(h.parse(bytes, 0, 3, { maxPayload: 100, allowRsv1: false }), 0); // incomplete
 * assert.equal(h.parse(bytes, 0, bytes.length, { maxPayload: 100, allowRsv1: false }), 6);
 * assert.equal(h.opcode, OP_TEXT);
 * assert.equal(h.length, 2);
 * ```
 */
export class FrameHeader {
  /** FIN bit. */
  fin = false;
  /** RSV1 (the permessage-deflate "compressed" bit). */
  rsv1 = false;
  /** Opcode. */
  opcode = 0;
  /** Payload length. */
  length = 0;
  /** Whether the frame was masked. */
  masked = false;
  /** Masking key bytes (valid when `masked`). */
  readonly mask: Uint8Array = new Uint8Array(4);

  /**
   * Parses the header at `buf[start..end)`. Returns the header's size, or 0
   * when more bytes are needed. Throws a {@linkcode WebSocketProtocolError}
   * on anything RFC 6455 forbids, and 1009 when the payload length exceeds
   * `limits.maxPayload`; unmasked frames are refused unless
   * `limits.allowUnmasked`.
   */
  parse(
    buf: Uint8Array,
    start: number,
    end: number,
    limits: { maxPayload: number; allowRsv1: boolean; allowUnmasked?: boolean },
  ): number {
    const avail = end - start;
    if (avail < 2) return 0;
    const b0 = buf[start];
    const b1 = buf[start + 1];
    const opcode = b0 & 0x0f;
    const rsv1 = (b0 & 0x40) !== 0;
    if ((b0 & 0x30) !== 0) throw new WebSocketProtocolError(1002, "reserved bits RSV2/RSV3 set");
    if (rsv1 && !limits.allowRsv1) {
      throw new WebSocketProtocolError(1002, "reserved bit RSV1 set without an extension");
    }
    const fin = (b0 & 0x80) !== 0;
    if (opcode >= 8) {
      if (opcode > OP_PONG) throw new WebSocketProtocolError(1002, `reserved opcode ${opcode}`);
      if (!fin) throw new WebSocketProtocolError(1002, "fragmented control frame");
      if (rsv1) throw new WebSocketProtocolError(1002, "RSV1 set on a control frame");
    } else if (opcode > OP_BINARY) {
      throw new WebSocketProtocolError(1002, `reserved opcode ${opcode}`);
    }
    const masked = (b1 & 0x80) !== 0;
    if (!masked && !limits.allowUnmasked) {
      throw new WebSocketProtocolError(1002, "unmasked client frame");
    }
    let len = b1 & 0x7f;
    let size = 2;
    if (len === 126) {
      if (avail < 4) return 0;
      len = (buf[start + 2] << 8) | buf[start + 3];
      if (len < 126) throw new WebSocketProtocolError(1002, "non-minimal payload length");
      size = 4;
    } else if (len === 127) {
      if (avail < 10) return 0;
      const hi = ((buf[start + 2] << 24) | (buf[start + 3] << 16) | (buf[start + 4] << 8) |
        buf[start + 5]) >>> 0;
      const lo = ((buf[start + 6] << 24) | (buf[start + 7] << 16) | (buf[start + 8] << 8) |
        buf[start + 9]) >>> 0;
      if (hi & 0x80000000) {
        throw new WebSocketProtocolError(1002, "payload length with the most significant bit set");
      }
      if (hi > MAX_SAFE_HI) {
        throw new WebSocketProtocolError(1009, "payload length over the message limit");
      }
      len = hi * 0x100000000 + lo;
      if (len < 0x10000) throw new WebSocketProtocolError(1002, "non-minimal payload length");
      size = 10;
    }
    if (opcode >= 8) {
      if (len > 125) throw new WebSocketProtocolError(1002, "control frame payload over 125 bytes");
    } else if (len > limits.maxPayload) {
      throw new WebSocketProtocolError(1009, "payload length over the message limit");
    }
    if (masked) {
      if (avail < size + 4) return 0;
      const m = this.mask;
      m[0] = buf[start + size];
      m[1] = buf[start + size + 1];
      m[2] = buf[start + size + 2];
      m[3] = buf[start + size + 3];
      size += 4;
    }
    this.fin = fin;
    this.rsv1 = rsv1;
    this.opcode = opcode;
    this.length = len;
    this.masked = masked;
    return size;
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
/** Below this many bytes a byte loop beats making a word view. */
const WORD_MIN = 64;

/**
 * Unmasks (or masks: XOR is its own inverse) `buf[start..end)` in place with
 * `mask`, where `phase` is the payload offset of `buf[start]` (the mask
 * repeats every 4 bytes). Works 32 bits at a time on the aligned middle.
 *
 * @example
 * ```ts
 * import { unmask } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const mask = new Uint8Array([1, 2, 3, 4]);
 * const data = new Uint8Array([1, 2, 3, 4, 5]);
 * unmask(data, 0, 5, mask, 0);
 * assert.deepEqual([...data], [0, 0, 0, 0, 4]);
 * unmask(data, 0, 5, mask, 0); // masking twice restores the payload
 * assert.deepEqual([...data], [1, 2, 3, 4, 5]);
 * ```
 */
export function unmask(
  buf: Uint8Array,
  start: number,
  end: number,
  mask: Uint8Array,
  phase: number,
): void {
  let i = start;
  let p = phase & 3;
  if (end - start >= WORD_MIN) {
    // Bytes up to a 4-byte aligned address, then words, then the tail.
    while (((buf.byteOffset + i) & 3) !== 0) {
      buf[i++] ^= mask[p];
      p = (p + 1) & 3;
    }
    const words = (end - i) >>> 2;
    if (words > 0) {
      const m0 = mask[p], m1 = mask[(p + 1) & 3], m2 = mask[(p + 2) & 3], m3 = mask[(p + 3) & 3];
      const word = LITTLE_ENDIAN
        ? (m0 | (m1 << 8) | (m2 << 16) | (m3 << 24))
        : ((m0 << 24) | (m1 << 16) | (m2 << 8) | m3);
      const w = new Int32Array(buf.buffer, buf.byteOffset + i, words);
      for (let k = 0; k < words; k++) w[k] ^= word;
      i += words << 2;
    }
  }
  while (i < end) {
    buf[i++] ^= mask[p];
    p = (p + 1) & 3;
  }
}

/**
 * Size of the header of an unmasked (server) frame with a payload of `len`
 * bytes: 2, 4 or 10.
 *
 * @example
 * ```ts
 * import { headerSize } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([headerSize(125), headerSize(126), headerSize(65536)], [2, 4, 10]);
 * ```
 */
export function headerSize(len: number): number {
  return len < 126 ? 2 : len < 0x10000 ? 4 : 10;
}

/**
 * Writes an unmasked frame header at `out[pos]` (room for
 * {@linkcode headerSize} bytes is the caller's) and returns its size.
 *
 * @example
 * ```ts
 * import { OP_TEXT, writeHeader } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * const out = new Uint8Array(2);
 * assert.equal(writeHeader(out, 0, true, false, OP_TEXT, 5), 2);
 * assert.deepEqual([...out], [0x81, 5]);
 * ```
 */
export function writeHeader(
  out: Uint8Array,
  pos: number,
  fin: boolean,
  rsv1: boolean,
  opcode: number,
  len: number,
): number {
  out[pos] = (fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | opcode;
  if (len < 126) {
    out[pos + 1] = len;
    return 2;
  }
  if (len < 0x10000) {
    out[pos + 1] = 126;
    out[pos + 2] = len >>> 8;
    out[pos + 3] = len & 0xff;
    return 4;
  }
  out[pos + 1] = 127;
  const hi = Math.floor(len / 0x100000000);
  out[pos + 2] = hi >>> 24;
  out[pos + 3] = (hi >>> 16) & 0xff;
  out[pos + 4] = (hi >>> 8) & 0xff;
  out[pos + 5] = hi & 0xff;
  out[pos + 6] = len >>> 24;
  out[pos + 7] = (len >>> 16) & 0xff;
  out[pos + 8] = (len >>> 8) & 0xff;
  out[pos + 9] = len & 0xff;
  return 10;
}

/**
 * A whole unmasked frame: header and a copy of `payload`, in one buffer.
 *
 * @example
 * ```ts
 * import { encodeFrame, OP_PONG } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...encodeFrame(OP_PONG, new Uint8Array([7]))], [0x8a, 1, 7]);
 * ```
 */
export function encodeFrame(
  opcode: number,
  payload: Uint8Array,
  fin = true,
  rsv1 = false,
): Uint8Array {
  const h = headerSize(payload.length);
  const out = new Uint8Array(h + payload.length);
  writeHeader(out, 0, fin, rsv1, opcode, payload.length);
  out.set(payload, h);
  return out;
}

/**
 * Whether `code` may appear in a close frame on the wire (RFC 6455 §7.4 and
 * the IANA registry): 1000–1003, 1007–1014, 3000–4999. 1004 is reserved,
 * 1005/1006/1015 are for reporting only, 1016–2999 are unassigned.
 *
 * @example
 * ```ts
 * import { isValidWireCloseCode } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isValidWireCloseCode(1000), true);
 * assert.equal(isValidWireCloseCode(1005), false);
 * assert.equal(isValidWireCloseCode(4999), true);
 * ```
 */
export function isValidWireCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * Parses a close frame's payload: `{ code: 1005, reason: "" }` when empty,
 * else the status code and the UTF-8 reason. Throws 1002 for a 1-byte payload
 * or a code not allowed on the wire, 1007 for a reason that is not UTF-8.
 *
 * @example
 * ```ts
 * import { parseClosePayload } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseClosePayload(new Uint8Array([3, 232, 0x68, 0x69])), { code: 1000, reason: "hi" });
 * assert.deepEqual(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
 * ```
 */
export function parseClosePayload(payload: Uint8Array): { code: number; reason: string } {
  if (payload.length === 0) return { code: CLOSE_NO_STATUS, reason: "" };
  if (payload.length === 1) throw new WebSocketProtocolError(1002, "1-byte close payload");
  const code = (payload[0] << 8) | payload[1];
  if (!isValidWireCloseCode(code)) {
    throw new WebSocketProtocolError(1002, `invalid close code ${code}`);
  }
  let reason = "";
  if (payload.length > 2) {
    try {
      reason = strictDecoder.decode(payload.subarray(2));
    } catch {
      throw new WebSocketProtocolError(1007, "close reason is not valid UTF-8");
    }
  }
  return { code, reason };
}

/**
 * A close frame's payload: the code (big-endian) and the UTF-8 reason; empty
 * when `code` is undefined.
 *
 * @example
 * ```ts
 * import { closePayload } from "./frame.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual([...closePayload(1000, "ok")], [3, 232, 0x6f, 0x6b]);
 * ```
 */
export function closePayload(
  code: number | undefined,
  reason: Uint8Array | string = "",
): Uint8Array {
  if (code === undefined) return new Uint8Array(0);
  const r = typeof reason === "string" ? new TextEncoder().encode(reason) : reason;
  const out = new Uint8Array(2 + r.length);
  out[0] = code >>> 8;
  out[1] = code & 0xff;
  out.set(r, 2);
  return out;
}
