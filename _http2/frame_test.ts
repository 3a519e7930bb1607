// Copyright 2026 the connctx authors. MIT license.
// Frames (RFC 9113 §4, §6): header layout, the per-type checks with the
// error code and kind (stream or connection) the RFC assigns, padding,
// SETTINGS validation, and the writers.

import assert from "node:assert/strict";
import { ByteBuf } from "./buf.ts";
import {
  applySettings,
  checkFrame,
  checkPriority,
  CONTINUATION,
  DATA,
  errorName,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  type FrameHeader,
  GOAWAY,
  H2Error,
  HEADERS,
  initialSettings,
  PING,
  PRIORITY,
  PROTOCOL_ERROR,
  PUSH_PROMISE,
  putData,
  putGoaway,
  putHeaders,
  putPing,
  putRstStream,
  putSettings,
  putWindowUpdate,
  readFrameHeader,
  readU32,
  RST_STREAM,
  SETTINGS,
  type Span,
  unpad,
  WINDOW_UPDATE,
  windowIncrement,
} from "./frame.ts";

function hdr(length: number, type: number, flags: number, stream: number): FrameHeader {
  return { length, type, flags, stream };
}

/** Asserts `fn` throws an H2Error with `code`, on `stream` (0: connection). */
function throwsH2(fn: () => void, code: number, stream: number, why: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof H2Error, `${why}: ${e}`);
    assert.equal(errorName(e.code), errorName(code), why);
    assert.equal(e.stream, stream, `${why}: stream vs connection error`);
    return true;
  });
}

Deno.test("frame: header round trip, reserved bit cleared", () => {
  const w = new ByteBuf(16);
  putData(w, 0x7fffffff, new Uint8Array([1, 2, 3]), true);
  const h = hdr(0, 0, 0, 0);
  readFrameHeader(w.buf, 0, h);
  assert.deepEqual(h, hdr(3, DATA, FLAG_END_STREAM, 0x7fffffff));
  w.buf[5] |= 0x80;
  readFrameHeader(w.buf, 0, h);
  assert.equal(h.stream, 0x7fffffff);
  const big = new Uint8Array(9);
  big.set([0xff, 0xff, 0xff, 0x01, 0x24, 0, 0, 0, 1]);
  readFrameHeader(big, 0, h);
  assert.deepEqual(h, hdr(0xffffff, HEADERS, 0x24, 1));
});

Deno.test("frame: checkFrame assigns errors as RFC 9113 does", () => {
  const M = 16384;
  const conn: [FrameHeader, number, string][] = [
    [hdr(M + 1, DATA, 0, 1), FRAME_SIZE_ERROR, "any frame over MAX_FRAME_SIZE"],
    [hdr(M + 1, HEADERS, 0, 1), FRAME_SIZE_ERROR, "HEADERS over MAX_FRAME_SIZE"],
    [hdr(1, DATA, 0, 0), PROTOCOL_ERROR, "DATA on 0"],
    [hdr(0, DATA, FLAG_PADDED, 1), FRAME_SIZE_ERROR, "PADDED DATA without Pad Length"],
    [hdr(1, HEADERS, 0, 0), PROTOCOL_ERROR, "HEADERS on 0"],
    [hdr(4, HEADERS, FLAG_PRIORITY, 1), FRAME_SIZE_ERROR, "HEADERS priority too short"],
    [hdr(5, HEADERS, FLAG_PRIORITY | FLAG_PADDED, 1), FRAME_SIZE_ERROR, "padded+priority short"],
    [hdr(5, PRIORITY, 0, 0), PROTOCOL_ERROR, "PRIORITY on 0"],
    [hdr(4, RST_STREAM, 0, 0), PROTOCOL_ERROR, "RST_STREAM on 0"],
    [hdr(5, RST_STREAM, 0, 1), FRAME_SIZE_ERROR, "RST_STREAM length 5"],
    [hdr(6, SETTINGS, 0, 1), PROTOCOL_ERROR, "SETTINGS on a stream"],
    [hdr(6, SETTINGS, FLAG_ACK, 0), FRAME_SIZE_ERROR, "SETTINGS ACK with payload"],
    [hdr(7, SETTINGS, 0, 0), FRAME_SIZE_ERROR, "SETTINGS length 7"],
    [hdr(4, PUSH_PROMISE, FLAG_END_HEADERS, 1), PROTOCOL_ERROR, "PUSH_PROMISE from a client"],
    [hdr(8, PING, 0, 1), PROTOCOL_ERROR, "PING on a stream"],
    [hdr(7, PING, 0, 0), FRAME_SIZE_ERROR, "PING length 7"],
    [hdr(8, GOAWAY, 0, 1), PROTOCOL_ERROR, "GOAWAY on a stream"],
    [hdr(7, GOAWAY, 0, 0), FRAME_SIZE_ERROR, "GOAWAY length 7"],
    [hdr(3, WINDOW_UPDATE, 0, 0), FRAME_SIZE_ERROR, "WINDOW_UPDATE length 3 on 0"],
    [hdr(5, WINDOW_UPDATE, 0, 1), FRAME_SIZE_ERROR, "WINDOW_UPDATE length 5 on a stream"],
    [hdr(1, CONTINUATION, 0, 0), PROTOCOL_ERROR, "CONTINUATION on 0"],
  ];
  for (const [h, code, why] of conn) throwsH2(() => checkFrame(h, M), code, 0, why);
  // PRIORITY of the wrong length is a stream error.
  throwsH2(() => checkFrame(hdr(4, PRIORITY, 0, 3), M), FRAME_SIZE_ERROR, 3, "PRIORITY length 4");
  // Valid frames, unknown types and unknown flags pass.
  for (
    const h of [
      hdr(M, DATA, 0xff, 1),
      hdr(0, HEADERS, 0, 1),
      hdr(5, PRIORITY, 0, 1),
      hdr(0, SETTINGS, FLAG_ACK, 0),
      hdr(12, SETTINGS, 0, 0),
      hdr(8, PING, FLAG_ACK, 0),
      hdr(20, GOAWAY, 0, 0),
      hdr(4, WINDOW_UPDATE, 0, 0),
      hdr(100, 0xfa, 0xff, 77),
    ]
  ) checkFrame(h, M);
});

Deno.test("frame: padding (DATA, HEADERS with priority)", () => {
  const span: Span = { start: 0, end: 0 };
  // DATA: pad length 2, "ab", 2 octets of padding.
  const d = new Uint8Array([2, 97, 98, 0, 0]);
  unpad(hdr(5, DATA, FLAG_PADDED, 1), d, 0, span);
  assert.deepEqual(span, { start: 1, end: 3 });
  // All padding: allowed (the pad length equals what follows it).
  unpad(hdr(3, DATA, FLAG_PADDED, 1), new Uint8Array([2, 0, 0]), 0, span);
  assert.deepEqual(span, { start: 1, end: 1 });
  throwsH2(
    () => unpad(hdr(3, DATA, FLAG_PADDED, 1), new Uint8Array([3, 0, 0]), 0, span),
    PROTOCOL_ERROR,
    0,
    "DATA padding ≥ payload",
  );
  // HEADERS: padded, with priority fields skipped.
  const h = new Uint8Array([1, 0, 0, 0, 3, 16, 0x82, 0]);
  unpad(hdr(8, HEADERS, FLAG_PADDED | FLAG_PRIORITY, 1), h, 0, span);
  assert.deepEqual(span, { start: 6, end: 7 });
  throwsH2(
    () =>
      unpad(
        hdr(8, HEADERS, FLAG_PADDED | FLAG_PRIORITY, 1),
        new Uint8Array([3, 0, 0, 0, 3, 16, 0x82, 0]),
        0,
        span,
      ),
    PROTOCOL_ERROR,
    0,
    "HEADERS padding past the block",
  );
  // Offsets are absolute.
  unpad(hdr(2, DATA, 0, 1), new Uint8Array([9, 9, 5, 6]), 2, span);
  assert.deepEqual(span, { start: 2, end: 4 });
});

Deno.test("frame: PRIORITY, WINDOW_UPDATE payloads", () => {
  throwsH2(
    () => checkPriority(hdr(5, PRIORITY, 0, 5), new Uint8Array([0, 0, 0, 5, 16]), 0),
    PROTOCOL_ERROR,
    5,
    "depends on itself",
  );
  checkPriority(hdr(5, PRIORITY, 0, 5), new Uint8Array([0x80, 0, 0, 3, 16]), 0);
  throwsH2(
    () => windowIncrement(hdr(4, WINDOW_UPDATE, 0, 0), new Uint8Array(4), 0),
    PROTOCOL_ERROR,
    0,
    "0 on the connection",
  );
  throwsH2(
    () => windowIncrement(hdr(4, WINDOW_UPDATE, 0, 7), new Uint8Array(4), 0),
    PROTOCOL_ERROR,
    7,
    "0 on a stream",
  );
  // The reserved bit is ignored.
  assert.equal(
    windowIncrement(hdr(4, WINDOW_UPDATE, 0, 1), new Uint8Array([0xff, 0xff, 0xff, 0xff]), 0),
    0x7fffffff,
  );
});

Deno.test("frame: SETTINGS validation (§6.5.2)", () => {
  const enc = (pairs: [number, number][]) => {
    const w = new ByteBuf();
    putSettings(w, pairs, false);
    return w.view().subarray(9);
  };
  const s = initialSettings();
  const p = enc([[1, 0], [2, 0], [3, 10], [4, 1000], [5, 20000], [6, 500], [0x99, 7]]);
  applySettings(p, 0, p.length, s);
  assert.deepEqual(s, {
    headerTableSize: 0,
    enablePush: 0,
    maxConcurrentStreams: 10,
    initialWindowSize: 1000,
    maxFrameSize: 20000,
    maxHeaderListSize: 500,
  });
  const bad: [[number, number], number, string][] = [
    [[2, 2], PROTOCOL_ERROR, "ENABLE_PUSH 2"],
    [[4, 2 ** 31], FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE 2^31"],
    [[5, 16383], PROTOCOL_ERROR, "MAX_FRAME_SIZE below 2^14"],
    [[5, 2 ** 24], PROTOCOL_ERROR, "MAX_FRAME_SIZE above 2^24-1"],
  ];
  for (const [pair, code, why] of bad) {
    const b = enc([pair]);
    throwsH2(() => applySettings(b, 0, b.length, initialSettings()), code, 0, why);
  }
});

Deno.test("frame: writers", () => {
  const w = new ByteBuf(8);
  const h = hdr(0, 0, 0, 0);
  putPing(w, true, new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]));
  readFrameHeader(w.buf, 0, h);
  assert.deepEqual(h, hdr(8, PING, FLAG_ACK, 0));
  w.reset();
  putGoaway(w, 0xffffffff, 0xb, "calm");
  readFrameHeader(w.buf, 0, h);
  assert.deepEqual(h, hdr(12, GOAWAY, 0, 0));
  assert.equal(readU32(w.buf, 9), 0x7fffffff);
  assert.equal(readU32(w.buf, 13), 0xb);
  assert.equal(new TextDecoder().decode(w.buf.subarray(17, 21)), "calm");
  w.reset();
  putRstStream(w, 3, 8);
  putWindowUpdate(w, 0, 1000);
  readFrameHeader(w.buf, 0, h);
  assert.deepEqual(h, hdr(4, RST_STREAM, 0, 3));
  readFrameHeader(w.buf, 13, h);
  assert.deepEqual(h, hdr(4, WINDOW_UPDATE, 0, 0));
  assert.equal(readU32(w.buf, 22), 1000);
  // A block larger than the peer's frame size: HEADERS + CONTINUATIONs.
  w.reset();
  const block = new Uint8Array(40_000).map((_, i) => i);
  putHeaders(w, 5, block, true, 16384);
  const frames: FrameHeader[] = [];
  const parts: Uint8Array[] = [];
  for (let at = 0; at < w.len;) {
    const f = hdr(0, 0, 0, 0);
    readFrameHeader(w.buf, at, f);
    frames.push(f);
    parts.push(w.buf.slice(at + 9, at + 9 + f.length));
    at += 9 + f.length;
  }
  assert.deepEqual(frames, [
    hdr(16384, HEADERS, FLAG_END_STREAM, 5),
    hdr(16384, CONTINUATION, 0, 5),
    hdr(40_000 - 32768, CONTINUATION, FLAG_END_HEADERS, 5),
  ]);
  const joined = new Uint8Array(40_000);
  let o = 0;
  for (const p of parts) {
    joined.set(p, o);
    o += p.length;
  }
  assert.deepEqual(joined, block);
  // A small block is one HEADERS frame with END_HEADERS.
  w.reset();
  putHeaders(w, 7, new Uint8Array([0x88]), false, 16384);
  readFrameHeader(w.buf, 0, h);
  assert.deepEqual(h, hdr(1, HEADERS, FLAG_END_HEADERS, 7));
});
