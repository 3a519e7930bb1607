// Copyright 2026 the connctx authors. MIT license.
import assert from "node:assert/strict";
import {
  closePayload,
  encodeFrame,
  FrameHeader,
  headerSize,
  isValidWireCloseCode,
  OP_BINARY,
  OP_PING,
  OP_TEXT,
  parseClosePayload,
  unmask,
  WebSocketProtocolError,
  writeHeader,
} from "./frame.ts";
import { RawWsClient } from "./_test_util.ts";

const LIMITS = { maxPayload: 1 << 20, allowRsv1: false };

function parse(bytes: Uint8Array, limits: Parameters<FrameHeader["parse"]>[3] = LIMITS) {
  const h = new FrameHeader();
  const n = h.parse(bytes, 0, bytes.length, limits);
  return { n, h };
}

function code(fn: () => unknown): number {
  try {
    fn();
  } catch (e) {
    if (e instanceof WebSocketProtocolError) return e.code;
    throw e;
  }
  return 0;
}

Deno.test("frame: 7-, 16- and 64-bit lengths parse, byte by byte", () => {
  for (const len of [0, 1, 125, 126, 127, 65535, 65536, 100_000]) {
    const f = RawWsClient.frame(OP_BINARY, new Uint8Array(len));
    const hs = headerSize(len) + 4;
    const h = new FrameHeader();
    // Every prefix shorter than the header is "need more", never an error.
    for (let i = 0; i < hs; i++) {
      assert.equal(h.parse(f, 0, i, LIMITS), 0, `len ${len} prefix ${i}`);
    }
    assert.equal(h.parse(f, 0, hs, LIMITS), hs);
    assert.equal(h.length, len);
    assert.equal(h.opcode, OP_BINARY);
    assert.equal(h.fin, true);
    assert.equal(h.masked, true);
  }
});

Deno.test("frame: a 2^63 length is refused (1002) from the header alone", () => {
  // Header only: no payload follows, and none is needed to judge it.
  const f = RawWsClient.frame(OP_BINARY, new Uint8Array(0), { length: 2n ** 63n });
  assert.equal(code(() => parse(f.subarray(0, 14))), 1002);
  const f2 = RawWsClient.frame(OP_BINARY, new Uint8Array(0), { length: 2n ** 64n - 1n });
  assert.equal(code(() => parse(f2.subarray(0, 14))), 1002);
});

Deno.test("frame: a length over the limit fails with 1009 before any payload", () => {
  for (const len of [1025n, 2n ** 32n, 2n ** 53n, 2n ** 62n]) {
    const f = RawWsClient.frame(OP_TEXT, new Uint8Array(0), { length: len });
    assert.equal(code(() => parse(f, { maxPayload: 1024, allowRsv1: false })), 1009, `${len}`);
  }
  // Exactly the limit is fine.
  const ok = RawWsClient.frame(OP_TEXT, new Uint8Array(0), { length: 1024n });
  assert.equal(parse(ok, { maxPayload: 1024, allowRsv1: false }).h.length, 1024);
});

Deno.test("frame: unmasked client frames are a protocol error (1002)", () => {
  const f = RawWsClient.frame(OP_TEXT, "hi", { mask: false });
  assert.equal(code(() => parse(f)), 1002);
  assert.equal(parse(f, { ...LIMITS, allowUnmasked: true }).h.masked, false);
});

Deno.test("frame: reserved bits without an extension, reserved opcodes (1002)", () => {
  for (const rsv of [1, 2, 3, 4, 5, 6, 7]) {
    assert.equal(code(() => parse(RawWsClient.frame(OP_TEXT, "x", { rsv }))), 1002, `rsv ${rsv}`);
  }
  // RSV1 is permessage-deflate's bit: allowed when negotiated, never on control frames.
  assert.equal(
    parse(RawWsClient.frame(OP_TEXT, "x", { rsv: 4 }), { ...LIMITS, allowRsv1: true }).h.rsv1,
    true,
  );
  assert.equal(
    code(() => parse(RawWsClient.frame(OP_PING, "x", { rsv: 4 }), { ...LIMITS, allowRsv1: true })),
    1002,
  );
  for (const op of [3, 4, 5, 6, 7, 11, 12, 13, 14, 15]) {
    assert.equal(code(() => parse(RawWsClient.frame(op, "x"))), 1002, `opcode ${op}`);
  }
});

Deno.test("frame: control frames are at most 125 bytes and never fragmented (1002)", () => {
  assert.equal(parse(RawWsClient.frame(OP_PING, new Uint8Array(125))).h.length, 125);
  assert.equal(code(() => parse(RawWsClient.frame(OP_PING, new Uint8Array(126)))), 1002);
  assert.equal(code(() => parse(RawWsClient.frame(OP_PING, "x", { fin: false }))), 1002);
  assert.equal(code(() => parse(RawWsClient.frame(0x8, "x", { fin: false }))), 1002);
  // A control frame inside a message is not limited by the message budget.
  assert.equal(
    parse(RawWsClient.frame(OP_PING, new Uint8Array(100)), { maxPayload: 0, allowRsv1: false }).h
      .length,
    100,
  );
});

Deno.test("frame: non-minimal length encodings are refused (RFC 6455 §5.2)", () => {
  const f = new Uint8Array([0x82, 0x80 | 126, 0, 5, 1, 2, 3, 4]);
  assert.equal(code(() => parse(f)), 1002);
  const g = new Uint8Array([0x82, 0x80 | 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, 4]);
  assert.equal(code(() => parse(g)), 1002);
});

Deno.test("frame: unmask by words equals a byte loop, at every alignment and phase", () => {
  const mask = new Uint8Array([0x12, 0x34, 0x56, 0x78]);
  const backing = crypto.getRandomValues(new Uint8Array(600));
  for (let off = 0; off < 8; off++) {
    for (const len of [0, 1, 3, 63, 64, 65, 67, 130, 511]) {
      for (let phase = 0; phase < 4; phase++) {
        const a = backing.slice();
        const expect = a.slice();
        for (let i = 0; i < len; i++) expect[off + i] ^= mask[(phase + i) & 3];
        unmask(a, off, off + len, mask, phase);
        assert.deepEqual(a, expect, `off ${off} len ${len} phase ${phase}`);
      }
    }
  }
  // A view with an odd byteOffset.
  const buf = new Uint8Array(300);
  const view = buf.subarray(3);
  const expect = view.slice();
  for (let i = 0; i < 200; i++) expect[i] ^= mask[i & 3];
  unmask(view, 0, 200, mask, 0);
  assert.deepEqual(view, expect);
});

Deno.test("frame: encoder writes minimal unmasked headers", () => {
  for (const len of [0, 125, 126, 65535, 65536, 70_000]) {
    const f = encodeFrame(OP_BINARY, new Uint8Array(len).fill(7));
    const h = new FrameHeader();
    const hs = h.parse(f, 0, f.length, {
      maxPayload: 1 << 20,
      allowRsv1: true,
      allowUnmasked: true,
    });
    assert.equal(hs, headerSize(len));
    assert.equal(h.length, len);
    assert.equal(h.masked, false);
    assert.equal(f.length, hs + len);
  }
  const out = new Uint8Array(10);
  assert.equal(writeHeader(out, 0, false, true, OP_TEXT, 2 ** 40), 10);
  assert.equal(out[0], 0x41);
  assert.deepEqual([...out.subarray(2)], [0, 0, 1, 0, 0, 0, 0, 0]);
});

Deno.test("frame: close payloads — empty, 1 byte, codes, UTF-8 reasons", () => {
  assert.deepEqual(parseClosePayload(new Uint8Array(0)), { code: 1005, reason: "" });
  assert.equal(code(() => parseClosePayload(new Uint8Array([3]))), 1002);
  assert.equal(code(() => parseClosePayload(new Uint8Array([3, 232, 0xff]))), 1007);
  assert.deepEqual(parseClosePayload(closePayload(4000, "κόσμε")), { code: 4000, reason: "κόσμε" });
  const valid = [
    1000,
    1001,
    1002,
    1003,
    1007,
    1008,
    1009,
    1010,
    1011,
    1012,
    1013,
    1014,
    3000,
    3999,
    4000,
    4999,
  ];
  const invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
  for (const c of valid) assert.equal(isValidWireCloseCode(c), true, `${c}`);
  for (const c of invalid) {
    assert.equal(isValidWireCloseCode(c), false, `${c}`);
    assert.equal(code(() => parseClosePayload(new Uint8Array([c >> 8, c & 255]))), 1002, `${c}`);
  }
});
