// Copyright 2026 the connctx authors. MIT license.
// HPACK (RFC 7541): the Appendix C examples byte for byte in both
// directions, Huffman round trips, and the decoding errors of §4–§6.

import assert from "node:assert/strict";
import { ByteBuf } from "./buf.ts";
import { Decoder, defaultSensitive, Encoder, type EncoderOptions, HpackError } from "./hpack.ts";
import { huffmanDecode, huffmanEncode, HuffmanError, huffmanLength } from "./huffman.ts";

function hex(s: string): Uint8Array {
  const clean = s.replace(/\s+/g, "");
  const out = new Uint8Array(clean.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(clean.slice(i * 2, i * 2 + 2), 16);
  return out;
}
function toHex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
function flat(fields: [string, string][]): string[] {
  return fields.flat();
}

// RFC 7541 Appendix C.3–C.6: consecutive blocks on one connection, the
// decoded fields, and the table size after each block.
interface Step {
  hex: string;
  fields: [string, string][];
  size: number;
}
const REQ1: [string, string][] = [
  [":method", "GET"],
  [":scheme", "http"],
  [":path", "/"],
  [":authority", "www.example.com"],
];
const REQ2: [string, string][] = [...REQ1, ["cache-control", "no-cache"]];
const REQ3: [string, string][] = [
  [":method", "GET"],
  [":scheme", "https"],
  [":path", "/index.html"],
  [":authority", "www.example.com"],
  ["custom-key", "custom-value"],
];
const RES1: [string, string][] = [
  [":status", "302"],
  ["cache-control", "private"],
  ["date", "Mon, 21 Oct 2013 20:13:21 GMT"],
  ["location", "https://www.example.com"],
];
const RES2: [string, string][] = [[":status", "307"], ...RES1.slice(1)];
const RES3: [string, string][] = [
  [":status", "200"],
  ["cache-control", "private"],
  ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
  ["location", "https://www.example.com"],
  ["content-encoding", "gzip"],
  ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
];

const C3: Step[] = [
  { hex: "828684410f7777772e6578616d706c652e636f6d", fields: REQ1, size: 57 },
  { hex: "828684be58086e6f2d6361636865", fields: REQ2, size: 110 },
  {
    hex: "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565",
    fields: REQ3,
    size: 164,
  },
];
const C4: Step[] = [
  { hex: "828684418cf1e3c2e5f23a6ba0ab90f4ff", fields: REQ1, size: 57 },
  { hex: "828684be5886a8eb10649cbf", fields: REQ2, size: 110 },
  { hex: "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf", fields: REQ3, size: 164 },
];
const C5: Step[] = [
  {
    hex: "4803333032580770726976617465611d4d6f6e2c203231204f637420323031332032303a31333a" +
      "323120474d546e1768747470733a2f2f7777772e6578616d706c652e636f6d",
    fields: RES1,
    size: 222,
  },
  { hex: "4803333037c1c0bf", fields: RES2, size: 222 },
  {
    hex: "88c1611d4d6f6e2c203231204f637420323031332032303a31333a323220474d54c05a04677a6970" +
      "7738666f6f3d4153444a4b48514b425a584f5157454f50495541585157454f49553b206d61782d616765" +
      "3d333630303b2076657273696f6e3d31",
    fields: RES3,
    size: 215,
  },
];
const C6: Step[] = [
  {
    hex: "488264025885aec3771a4b6196d07abe941054d444a8200595040b8166e082a62d1bff6e919d29ad" +
      "171863c78f0b97c8e9ae82ae43d3",
    fields: RES1,
    size: 222,
  },
  { hex: "4883640effc1c0bf", fields: RES2, size: 222 },
  {
    hex: "88c16196d07abe941054d444a8200595040b8166e084a62d1bffc05a839bd9ab77ad94e7821dd7f2e6" +
      "c7b335dfdfcd5b3960d5af27087f3672c1ab270fb5291f9587316065c003ed4ee5b1063d5007",
    fields: RES3,
    size: 215,
  },
];

function runDecode(steps: Step[], maxTableSize: number): void {
  const d = new Decoder({ maxTableSize });
  for (const s of steps) {
    assert.deepEqual(d.decode(hex(s.hex)), flat(s.fields));
    assert.equal(d.overflow, false);
    assert.equal(d.tableSize, s.size);
  }
}

function runEncode(steps: Step[], options: EncoderOptions): void {
  const e = new Encoder({ sensitive: () => false, ...options });
  for (const s of steps) {
    const w = new ByteBuf(16);
    e.startBlock(w);
    for (const [n, v] of s.fields) {
      if (n === ":status") e.status(w, Number(v));
      else e.field(w, n, v);
    }
    assert.equal(toHex(w.view()), s.hex);
    assert.equal(e.tableSize, s.size);
  }
}

Deno.test("hpack: C.2 literal field representations", () => {
  // C.2.1 literal with indexing, new name.
  let d = new Decoder();
  assert.deepEqual(d.decode(hex("400a637573746f6d2d6b65790d637573746f6d2d686561646572")), [
    "custom-key",
    "custom-header",
  ]);
  assert.equal(d.tableSize, 55);
  assert.deepEqual(d.entry(0), ["custom-key", "custom-header"]);
  let w = new ByteBuf();
  new Encoder({ huffman: "never", sensitive: () => false }).field(w, "custom-key", "custom-header");
  assert.equal(toHex(w.view()), "400a637573746f6d2d6b65790d637573746f6d2d686561646572");

  // C.2.2 literal without indexing, indexed name.
  d = new Decoder();
  assert.deepEqual(d.decode(hex("040c2f73616d706c652f70617468")), [":path", "/sample/path"]);
  assert.equal(d.tableSize, 0);
  w = new ByteBuf();
  new Encoder({ huffman: "never", sensitive: () => "plain" }).field(w, ":path", "/sample/path");
  assert.equal(toHex(w.view()), "040c2f73616d706c652f70617468");

  // C.2.3 literal never indexed, new name.
  d = new Decoder();
  assert.deepEqual(d.decode(hex("100870617373776f726406736563726574")), ["password", "secret"]);
  assert.equal(d.tableSize, 0);
  w = new ByteBuf();
  new Encoder({ huffman: "never", sensitive: () => true }).field(w, "password", "secret");
  assert.equal(toHex(w.view()), "100870617373776f726406736563726574");

  // C.2.4 indexed field.
  d = new Decoder();
  assert.deepEqual(d.decode(hex("82")), [":method", "GET"]);
  assert.equal(d.tableSize, 0);
  w = new ByteBuf();
  new Encoder().field(w, ":method", "GET");
  assert.equal(toHex(w.view()), "82");
});

Deno.test("hpack: C.3 requests without Huffman, both directions", () => {
  runDecode(C3, 4096);
  runEncode(C3, { huffman: "never" });
});

Deno.test("hpack: C.4 requests with Huffman, both directions", () => {
  runDecode(C4, 4096);
  runEncode(C4, { huffman: "always" });
  runEncode(C4, { huffman: "shorter" });
});

Deno.test("hpack: C.5 responses without Huffman (table of 256, evictions), both directions", () => {
  runDecode(C5, 256);
  runEncode(C5, { huffman: "never", maxTableSize: 256 });
  // The table after C.5.3, newest first (RFC 7541 C.5.3).
  const d = new Decoder({ maxTableSize: 256 });
  for (const s of C5) d.decode(hex(s.hex));
  assert.deepEqual([0, 1, 2].map((i) => d.entry(i)), [
    ["set-cookie", "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1"],
    ["content-encoding", "gzip"],
    ["date", "Mon, 21 Oct 2013 20:13:22 GMT"],
  ]);
  assert.equal(d.tableLength, 3);
});

Deno.test("hpack: C.6 responses with Huffman, both directions", () => {
  runDecode(C6, 256);
  runEncode(C6, { huffman: "always", maxTableSize: 256 });
});

Deno.test("hpack: Huffman round trip of every octet, and lengths", () => {
  const all = String.fromCharCode(...Array.from({ length: 256 }, (_, i) => i));
  for (const s of ["", "a", "www.example.com", all, all.repeat(3), "\xff\x00\x80"]) {
    const n = huffmanLength(s);
    const out = new Uint8Array(n);
    assert.equal(huffmanEncode(s, out, 0), n);
    const back = huffmanDecode(out, 0, n);
    assert.equal(String.fromCharCode(...back), s);
  }
  assert.equal(huffmanLength("\u0100"), -1);
  // Random strings of random octets.
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
  for (let k = 0; k < 300; k++) {
    let s = "";
    const len = Math.floor(rnd() * 40);
    for (let i = 0; i < len; i++) s += String.fromCharCode(Math.floor(rnd() * 256));
    const out = new Uint8Array(huffmanLength(s));
    huffmanEncode(s, out, 0);
    assert.equal(String.fromCharCode(...huffmanDecode(out, 0, out.length)), s);
  }
});

Deno.test("hpack: Huffman errors (RFC 7541 §5.2)", () => {
  // EOS decoded as a symbol.
  assert.throws(() => huffmanDecode(hex("ffffffff"), 0, 4), HuffmanError);
  // 'a' (00011) then 11 bits of padding: more than 7.
  assert.throws(() => huffmanDecode(hex("1fff"), 0, 2), /padding/);
  // 'a' then padding 000: not the EOS prefix.
  assert.throws(() => huffmanDecode(hex("18"), 0, 1), /padding/);
  // A whole byte of padding after a complete code.
  assert.throws(() => huffmanDecode(hex("1fff"), 0, 2), /padding/);
  // Valid: 'a' + 111.
  assert.deepEqual([...huffmanDecode(hex("1f"), 0, 1)], [0x61]);
  // In a header block, the same errors are compression errors.
  assert.throws(() => new Decoder().decode(hex("4081ff81ff")), HpackError);
  assert.throws(() => new Decoder().decode(hex("0084ffffffff")), HpackError);
});

Deno.test("hpack: decoding errors are HpackError (COMPRESSION_ERROR)", () => {
  const bad: [string, string][] = [
    ["80", "index 0"],
    ["be", "dynamic index past the table"],
    ["bf", "dynamic index past the table"],
    ["ff80808080808001", "integer too long"],
    ["ffffffffff0f", "integer over 2^31"],
    ["ff", "truncated integer"],
    ["400a6375", "string past the end"],
    ["40", "truncated string"],
    ["823fe11f", "size update after a field"],
    ["3fe21f", "size update over SETTINGS_HEADER_TABLE_SIZE"],
    ["7f00", "literal name index past the table"],
    ["0f2f0161", "literal name index past the table"],
  ];
  for (const [h, why] of bad) {
    assert.throws(() => new Decoder().decode(hex(h)), HpackError, why);
  }
  // Size updates at the start are fine (even two), up to the limit.
  const d = new Decoder();
  assert.deepEqual(d.decode(hex("203fe11f82")), [":method", "GET"]);
  d.decode(hex("4001610162"));
  assert.equal(d.tableSize, 34);
  // Shrinking to zero evicts everything.
  d.decode(hex("20"));
  assert.equal(d.tableSize, 0);
  assert.throws(() => d.decode(hex("be")), HpackError);
});

Deno.test("hpack: an entry larger than the table empties it (§4.4)", () => {
  const d = new Decoder({ maxTableSize: 64 });
  d.decode(hex("4001610162"));
  assert.equal(d.tableSize, 34);
  const big = "x".repeat(40);
  const w = new ByteBuf();
  new Encoder({ huffman: "never", sensitive: () => false, maxTableSize: 4096 }).field(w, "y", big);
  assert.deepEqual(d.decode(w.view()), ["y", big]);
  assert.equal(d.tableSize, 0);
  assert.equal(d.tableLength, 0);
});

Deno.test("hpack: an HPACK bomb is cut at the header list limit", () => {
  const d = new Decoder({ maxHeaderListSize: 16 * 1024 });
  // One 3 KB entry, then a block referring to it 16 000 times.
  const w = new ByteBuf();
  new Encoder({ huffman: "never", sensitive: () => false, maxTableSize: 4096 }).field(
    w,
    "b",
    "x".repeat(3000),
  );
  d.decode(w.view());
  assert.equal(d.tableLength, 1);
  const bomb = new Uint8Array(16_000).fill(0xbe);
  const out = d.decode(bomb);
  assert.equal(d.overflow, true);
  // At most the limit is decoded: 5 entries of 3033 octets.
  assert.equal(out.length, 10);
  // The table is still in step: the next block decodes.
  assert.deepEqual(d.decode(hex("82")), [":method", "GET"]);
  assert.equal(d.overflow, false);
  // Literals past the limit are skipped but their table entries still kept.
  const w2 = new ByteBuf();
  const e2 = new Encoder({ huffman: "never", sensitive: () => false });
  for (let i = 0; i < 10; i++) e2.field(w2, `n${i}`, "v".repeat(2000));
  const d2 = new Decoder({ maxHeaderListSize: 4096 });
  const out2 = d2.decode(w2.view());
  assert.equal(d2.overflow, true);
  assert.equal(out2.length, 4);
});

Deno.test("hpack: encoder indexing policy", () => {
  const e = new Encoder();
  const d = new Decoder();
  const block = (fields: [string, string][]) => {
    const w = new ByteBuf();
    e.startBlock(w);
    for (const [n, v] of fields) e.field(w, n, v);
    assert.deepEqual(d.decode(w.view()), flat(fields));
    return w.len;
  };
  const fields: [string, string][] = [
    ["content-type", "text/plain;charset=UTF-8"],
    ["x-custom", "abc"],
    ["set-cookie", "sid=1"],
    ["authorization", "a-long-enough-token-to-be-unguessable-x"],
  ];
  const first = block(fields);
  // Repeats: indexed fields are one octet; sensitive ones are literals again.
  const second = block(fields);
  assert.ok(second < first);
  const w = new ByteBuf();
  e.field(w, "set-cookie", "sid=1");
  assert.equal(w.buf[0] & 0xf0, 0x10, "short set-cookie is never-indexed");
  assert.equal(defaultSensitive("cookie", "x".repeat(30)), "plain");
  assert.equal(defaultSensitive("x-a", "b"), false);
  // A smaller peer limit is signalled at the start of the next block.
  e.setPeerLimit(0);
  const w2 = new ByteBuf();
  e.startBlock(w2);
  e.field(w2, "x-custom", "abc");
  assert.equal(w2.buf[0], 0x20);
  assert.deepEqual(d.decode(w2.view()), ["x-custom", "abc"]);
  assert.equal(d.tableSize, 0);
  // Shrink then grow between blocks: both updates, smallest first.
  const e3 = new Encoder();
  e3.setPeerLimit(100);
  e3.setPeerLimit(8192);
  const w3 = new ByteBuf();
  e3.startBlock(w3);
  assert.equal(toHex(w3.view()), "3f453fe11f");
});
