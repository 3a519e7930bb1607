// Copyright 2026 the connctx authors. MIT license.
// Tests for response framing helpers: status lines, the Date header, Latin-1
// heads, body byte lengths, and the bytes sendWhole/sendChunk/sendRaw put on
// the wire (collected by a fake `Write`).

import assert from "node:assert/strict";
// The brief pins fast-check by specifier (no import map in deno.json).
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3";
import {
  acquire,
  byteLength,
  frameWhole,
  httpDate,
  noBodyStatus,
  putLatin1,
  release,
  sendChunk,
  sendRaw,
  sendWhole,
  statusLine,
  type Write,
} from "./encode.ts";
import { bytes as latin1Bytes, concat } from "../_test_http.ts";

const enc = new TextEncoder();

/** A `Write` that copies what it is given (the writer reuses its buffers). */
function sink(): { write: Write; writes: Uint8Array[]; bytes(): Uint8Array } {
  const writes: Uint8Array[] = [];
  return {
    writes,
    write: (b) => {
      writes.push(b.slice());
      return Promise.resolve();
    },
    bytes: () => concat(writes),
  };
}

/** Byte equality with a short message (no multi-kilobyte diffs). */
function assertBytes(got: Uint8Array, want: Uint8Array, what = "bytes"): void {
  const n = Math.min(got.length, want.length);
  let i = 0;
  while (i < n && got[i] === want[i]) i++;
  if (i === n && got.length === want.length) return;
  const show = (b: Uint8Array) =>
    JSON.stringify(String.fromCharCode(...b.subarray(Math.max(0, i - 8), i + 8)));
  assert.fail(
    `${what}: ${got.length} bytes, want ${want.length}; first difference at ${i}: ` +
      `got ${show(got)}, want ${show(want)}`,
  );
}

function bodyBytes(body: string | Uint8Array | null): Uint8Array {
  if (body === null) return new Uint8Array(0);
  return typeof body === "string" ? enc.encode(body) : body;
}

/** A head of about `n` Latin-1 chars ending with the blank line. */
function headOf(n: number, fill = "v"): string {
  const start = "HTTP/1.1 200 OK\r\nx-pad: ";
  const end = "\r\n\r\n";
  return start + fill.repeat(Math.max(0, n - start.length - end.length)) + end;
}

// ---------------------------------------------------------------------------

Deno.test("writer: statusLine", () => {
  assert.equal(statusLine(200, ""), "HTTP/1.1 200 OK\r\n");
  assert.equal(statusLine(404, ""), "HTTP/1.1 404 Not Found\r\n");
  assert.equal(statusLine(413, ""), "HTTP/1.1 413 Content Too Large\r\n");
  assert.equal(statusLine(431, ""), "HTTP/1.1 431 Request Header Fields Too Large\r\n");
  assert.equal(statusLine(505, ""), "HTTP/1.1 505 HTTP Version Not Supported\r\n");
  // Unknown code: the reason phrase may be empty, the SP may not (RFC 9112 §4).
  assert.equal(statusLine(299, ""), "HTTP/1.1 299 \r\n");
  assert.equal(statusLine(200, "Fine"), "HTTP/1.1 200 Fine\r\n");
  // A reason phrase cannot break the head.
  assert.equal(statusLine(200, "a\r\nSet-Cookie: x\r\n"), "HTTP/1.1 200 aSet-Cookie: x\r\n");
  // Cached: the same string each time.
  assert.equal(statusLine(201, ""), statusLine(201, ""));
  for (let s = 100; s < 600; s++) {
    assert.match(statusLine(s, ""), /^HTTP\/1\.1 \d{3} [\x20-\x7e]*\r\n$/);
  }
});

Deno.test("writer: noBodyStatus", () => {
  for (const s of [100, 101, 102, 103, 199, 204, 304]) assert.equal(noBodyStatus(s), true, `${s}`);
  for (const s of [200, 201, 203, 205, 206, 301, 302, 400, 404, 500]) {
    assert.equal(noBodyStatus(s), false, `${s}`);
  }
});

const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/** Runs `f` with `Date.now` returning what `now()` says. */
function withClock<T>(now: () => number, f: () => T): T {
  const real = Date.now;
  Date.now = now;
  try {
    return f();
  } finally {
    Date.now = real;
  }
}

Deno.test("writer: httpDate is an IMF-fixdate for now", () => {
  const before = Math.floor(Date.now() / 1000) * 1000;
  const d = httpDate();
  const after = Date.now();
  assert.match(d, IMF_FIXDATE);
  const t = Date.parse(d);
  assert.ok(t >= before && t <= after, `${d} within [${before}, ${after}]`);
});

Deno.test("writer: httpDate is cached within a second and exact across them", () => {
  // Far from the current cache window, so the first call recomputes.
  const base = Date.UTC(2031, 0, 2, 3, 4, 5);
  let now = base + 100;
  withClock(() => now, () => {
    const a = httpDate();
    assert.equal(a, "Thu, 02 Jan 2031 03:04:05 GMT");
    now = base + 999;
    assert.equal(httpDate(), a); // same second: the cached string
    assert.ok(Object.is(httpDate(), a));
    now = base + 1000;
    assert.equal(httpDate(), "Thu, 02 Jan 2031 03:04:06 GMT");
    now = base + 61_000;
    assert.equal(httpDate(), "Thu, 02 Jan 2031 03:05:06 GMT");
  });
  // Property: for any non-decreasing clock, the value is the clock's second.
  let t = Date.UTC(2032, 0, 1);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 1e9 }),
      fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 30 }),
      (jump, steps) => {
        t += jump;
        withClock(() => t, () => {
          for (const s of steps) {
            t += s;
            assert.equal(httpDate(), new Date(t).toUTCString());
          }
        });
      },
    ),
    { numRuns: 50 },
  );
});

Deno.test("writer: httpDate follows a clock that is stepped back", () => {
  // NTP (or an operator) can step the clock back; the Date header must not
  // stay in the future until the clock catches up.
  let now = Date.UTC(2095, 5, 6, 7, 8, 9);
  withClock(() => now, () => {
    assert.equal(httpDate(), "Mon, 06 Jun 2095 07:08:09 GMT");
    now = Date.UTC(2033, 5, 6, 7, 8, 9);
    assert.equal(httpDate(), "Mon, 06 Jun 2033 07:08:09 GMT");
  });
});

Deno.test("writer: putLatin1", () => {
  const buf = new Uint8Array(16).fill(0xee);
  assert.equal(putLatin1("ab\xe9\xff", buf, 3), 7);
  assert.deepEqual([...buf.subarray(2, 8)], [0xee, 97, 98, 0xe9, 0xff, 0xee]);
  assert.equal(putLatin1("", buf, 5), 5);
  fc.assert(
    fc.property(
      fc.string({ unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)) }),
      fc.nat(20),
      (s, at) => {
        const b = new Uint8Array(at + s.length + 3);
        assert.equal(putLatin1(s, b, at), at + s.length);
        assert.deepEqual(b.subarray(at, at + s.length), latin1Bytes(s));
      },
    ),
  );
});

/** UTF-16 strings with lone and paired surrogates, ASCII and the rest. */
const utf16Arb = fc.array(
  fc.oneof(
    fc.integer({ min: 0, max: 0x7f }),
    fc.integer({ min: 0x80, max: 0x7ff }),
    fc.integer({ min: 0x800, max: 0xffff }),
    fc.integer({ min: 0xd800, max: 0xdfff }),
    fc.integer({ min: 0x10000, max: 0x10ffff }),
  ),
  { maxLength: 40 },
).map((cps) => cps.map((c) => c > 0xffff ? String.fromCodePoint(c) : String.fromCharCode(c)))
  .map((parts) => parts.join(""));

Deno.test("writer: byteLength equals TextEncoder's output length", () => {
  for (
    const s of ["", "a", "é", "€", "😀", "\ud800", "\udc00", "a\ud800", "\ud800a", "\udc00\ud800"]
  ) {
    assert.equal(byteLength(s), enc.encode(s).length, JSON.stringify(s));
  }
  fc.assert(fc.property(utf16Arb, (s) => byteLength(s) === enc.encode(s).length), {
    numRuns: 1000,
  });
  const u = new Uint8Array(7);
  assert.equal(byteLength(u), 7);
});

Deno.test("writer: acquire/release hands out 16 KiB buffers", () => {
  const a = acquire();
  assert.equal(a.length, 16 * 1024);
  release(a);
  assert.equal(acquire(), a);
  release(a);
});

// ---------------------------------------------------------------------------
// Framing

/** Bodies around the writer's thresholds (2 KiB reserve, 16 KiB buffer). */
const SIZES = [0, 1, 100, 14 * 1024 - 1, 14 * 1024, 14 * 1024 + 1, 16 * 1024, 40_000];
/** Heads around the same thresholds. */
const HEADS = [40, 2047, 2048, 2049, 5000, 16 * 1024, 16 * 1024 + 1, 20_000];

function pattern(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 7 + 3) & 0xff;
  return b;
}

function text(n: number, unit = "abcdefghij"): string {
  return unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

async function checkWhole(head: string, body: string | Uint8Array | null): Promise<number> {
  const s = sink();
  await sendWhole(s.write, head, body);
  const want = concat([latin1Bytes(head), bodyBytes(body)]);
  assertBytes(s.bytes(), want, `head ${head.length}, body ${bodyBytes(body).length}`);
  return s.writes.length;
}

Deno.test("writer: sendWhole, small head, every body size", async () => {
  const head = headOf(40);
  for (const n of SIZES) {
    assert.equal(
      await checkWhole(head, pattern(n)),
      n <= 14 * 1024 ? 1 : n <= 16 * 1024 - 40 ? 1 : 2,
    );
    await checkWhole(head, text(n));
    await checkWhole(head, text(n, "é€😀"));
  }
  assert.equal(await checkWhole(head, null), 1);
  assert.equal(await checkWhole(head, ""), 1);
});

Deno.test("writer: sendWhole, large heads with small bodies", async (t) => {
  // Heads past the 2 KiB reserve, with bodies that fit the pooled buffer.
  for (const hn of HEADS) {
    await t.step(`head of ${hn} bytes`, async () => {
      const head = headOf(hn, "h");
      for (const body of [null, "", "hello", pattern(1), pattern(100), text(3000)]) {
        await checkWhole(head, body);
      }
    });
  }
});

Deno.test("writer: sendWhole, any head and body (property)", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 20, max: 20_000 }),
      fc.oneof(
        fc.constant(null),
        fc.integer({ min: 0, max: 20_000 }).map(pattern),
        fc.integer({ min: 0, max: 20_000 }).map((n) => text(n)),
        utf16Arb,
      ),
      async (hn, body) => {
        await checkWhole(headOf(hn), body);
      },
    ),
    { numRuns: 150 },
  );
});

Deno.test("writer: frameWhole frames in place or declines", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 20, max: 4000 }),
      fc.oneof(
        fc.constant(null),
        fc.integer({ min: 0, max: 17_000 }).map(pattern),
        fc.integer({ min: 0, max: 17_000 }).map((n) => text(n)),
        utf16Arb,
      ),
      (hn, body) => {
        const buf = new Uint8Array(16 * 1024).fill(0xee);
        const head = headOf(hn);
        const frame = frameWhole(buf, head, body);
        const want = concat([latin1Bytes(head), bodyBytes(body)]);
        if (frame === null) {
          // Declines only what does not fit.
          assert.ok(head.length > 2048 || want.length - head.length > 16 * 1024 - 2048);
          return;
        }
        assert.equal(frame.buffer, buf.buffer, "framed in the given buffer");
        assertBytes(frame, want);
      },
    ),
    { numRuns: 200 },
  );
});

/** Decodes a chunked stream strictly; returns the data and what follows. */
function dechunk(b: Uint8Array): { data: Uint8Array; rest: Uint8Array } {
  const out: Uint8Array[] = [];
  let p = 0;
  for (;;) {
    const lf = b.indexOf(10, p);
    assert.ok(lf > p && b[lf - 1] === 13, "size line ends with CRLF");
    const size = String.fromCharCode(...b.subarray(p, lf - 1));
    assert.match(size, /^[0-9a-f]+$/);
    const n = parseInt(size, 16);
    p = lf + 1;
    if (n === 0) return { data: concat(out), rest: b.subarray(p) };
    out.push(b.subarray(p, p + n));
    p += n;
    assert.deepEqual([b[p], b[p + 1]], [13, 10], "CRLF after data");
    p += 2;
  }
}

Deno.test("writer: sendChunk framing", async () => {
  for (const prefix of ["", headOf(40), headOf(3000)]) {
    const s = sink();
    const chunks = [
      pattern(1),
      pattern(15),
      pattern(16),
      pattern(255),
      pattern(16 * 1024),
      pattern(70_000),
    ];
    for (let i = 0; i < chunks.length; i++) {
      await sendChunk(s.write, i === 0 ? prefix : "", chunks[i]);
    }
    await s.write(latin1Bytes("0\r\n\r\n"));
    const got = s.bytes();
    assertBytes(got.subarray(0, prefix.length), latin1Bytes(prefix));
    const { data, rest } = dechunk(got.subarray(prefix.length));
    assertBytes(data, concat(chunks));
    assert.deepEqual(rest, latin1Bytes("\r\n"));
  }
  // One write when it fits the pooled buffer.
  const s = sink();
  await sendChunk(s.write, headOf(100), pattern(1000));
  assert.equal(s.writes.length, 1);
  assertBytes(
    s.bytes(),
    concat([latin1Bytes(headOf(100) + "3e8\r\n"), pattern(1000), latin1Bytes("\r\n")]),
  );
});

Deno.test("writer: sendRaw framing", async () => {
  for (const prefix of ["", headOf(40), headOf(5000), headOf(20_000)]) {
    for (const n of [0, 10, 20_000]) {
      const s = sink();
      await sendRaw(s.write, prefix, pattern(n));
      assertBytes(s.bytes(), concat([latin1Bytes(prefix), pattern(n)]), `prefix ${prefix.length}`);
    }
  }
});

Deno.test("writer: a failing write propagates and the buffer goes back to the pool", async () => {
  const boom: Write = () => Promise.reject(new Error("boom"));
  await assert.rejects(sendWhole(boom, headOf(40), "x"), /boom/);
  await assert.rejects(sendChunk(boom, "", pattern(10)), /boom/);
  // The pool still hands out clean, full-size buffers.
  const b = acquire();
  assert.equal(b.length, 16 * 1024);
  release(b);
});
