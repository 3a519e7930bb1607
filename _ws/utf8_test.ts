// Copyright 2026 the connctx authors. MIT license.
import assert from "node:assert/strict";
import { isValidUtf8, Utf8Validator } from "./utf8.ts";

const fatal = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
function reference(b: Uint8Array): boolean {
  try {
    fatal.decode(b);
    return true;
  } catch {
    return false;
  }
}

const h = (s: string) => new Uint8Array(s.split(/\s+/).filter(Boolean).map((x) => parseInt(x, 16)));

// Sequences from the well-formedness table and the classic stress cases.
const CASES: [string, boolean][] = [
  ["", true],
  ["41 42 43", true],
  ["c2 80", true],
  ["df bf", true],
  ["e0 a0 80", true],
  ["ed 9f bf", true],
  ["ee 80 80", true],
  ["f0 90 80 80", true],
  ["f4 8f bf bf", true],
  ["ce ba e1 bd b9 cf 83 ce bc ce b5", true], // κόσμε
  ["c0 80", false], // overlong NUL
  ["c1 bf", false],
  ["e0 80 80", false], // overlong
  ["e0 9f bf", false],
  ["ed a0 80", false], // surrogate U+D800
  ["ed bf bf", false], // surrogate U+DFFF
  ["f0 80 80 80", false],
  ["f0 8f bf bf", false],
  ["f4 90 80 80", false], // > U+10FFFF
  ["f5 80 80 80", false],
  ["ff", false],
  ["fe", false],
  ["80", false], // lone continuation
  ["c2", false], // truncated
  ["e1 80", false],
  ["f1 80 80", false],
  ["ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64", false], // Autobahn 6.4.1-style
];

Deno.test("utf8: agrees with TextDecoder(fatal) on the reference cases", () => {
  for (const [hex, ok] of CASES) {
    const b = h(hex);
    assert.equal(reference(b), ok, `reference ${hex}`);
    assert.equal(isValidUtf8(b), ok, hex);
  }
});

Deno.test("utf8: every split into two chunks gives the same verdict", () => {
  for (const [hex, ok] of CASES) {
    const b = h(hex);
    for (let cut = 0; cut <= b.length; cut++) {
      const v = new Utf8Validator();
      const r = v.push(b.subarray(0, cut)) && v.push(b.subarray(cut)) && v.complete;
      assert.equal(r, ok, `${hex} cut at ${cut}`);
    }
  }
});

Deno.test("utf8: fails fast, at the first byte that cannot continue", () => {
  const v = new Utf8Validator();
  // A valid prefix, then a surrogate lead: ED A0 fails at A0, not at the end.
  assert.equal(v.push(new TextEncoder().encode("hello ")), true);
  assert.equal(v.push(new Uint8Array([0xed])), true);
  assert.equal(v.push(new Uint8Array([0xa0])), false);
  assert.equal(v.push(new Uint8Array([0x41])), false, "stays failed");
  v.reset();
  assert.equal(v.push(new Uint8Array([0x41])), true);
});

Deno.test("utf8: random bytes agree with TextDecoder(fatal)", () => {
  for (let i = 0; i < 5000; i++) {
    const len = 1 + (i % 12);
    const b = crypto.getRandomValues(new Uint8Array(len));
    // Bias toward multi-byte structure.
    if (i % 2) { for (let k = 1; k < len; k++) b[k] = 0x80 | (b[k] & 0x3f); }
    assert.equal(isValidUtf8(b), reference(b), [...b].map((x) => x.toString(16)).join(" "));
  }
  // All code points round-trip.
  let s = "";
  for (let cp = 0; cp <= 0x10ffff; cp += 97) {
    if (cp < 0xd800 || cp > 0xdfff) s += String.fromCodePoint(cp);
  }
  assert.equal(isValidUtf8(new TextEncoder().encode(s)), true);
});
