// Copyright 2026 the connctx authors. MIT license.
// Tests for the HTTP/1.1 request parser (RFC 9112): raw bytes in, head fields
// or a specific HttpError status out. Table-driven cases first, then
// property tests (fast-check) for incremental scanning, chunked decoding split
// at arbitrary boundaries, and robustness against mutated input.

import assert from "node:assert/strict";
// The brief pins fast-check by specifier (no import map in deno.json).
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3";
import { ChunkedDecoder, type ChunkLimits, DEFAULT_CHUNK_LIMITS } from "./chunked.ts";
import {
  DEFAULT_LIMITS,
  findHeadEnd,
  HttpError,
  latin1,
  type Limits,
  parseHead,
  parseLength,
  type RequestHead,
  rescanFrom,
} from "./parser.ts";
import { concat } from "../_test_http.ts";

// ---------------------------------------------------------------------------
// Helpers

/** Latin-1 bytes of `s` (one byte per char, so "\xA0" is one byte). */
function bytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error(`not latin-1: ${s}`);
    b[i] = c;
  }
  return b;
}

/**
 * Finds and parses the head of `raw`, placed at an offset inside a larger
 * buffer whose other bytes are line breaks: a parser that reads outside
 * `[start, headEnd)` would trip on them.
 */
function parseAt(raw: Uint8Array, limits: Partial<Limits> = {}, offset = 5): RequestHead {
  const buf = new Uint8Array(offset + raw.length + 8).fill(10);
  buf.set(raw, offset);
  const end = findHeadEnd(buf, offset, offset + raw.length);
  if (end === -1) throw new Error("test bug: head is incomplete");
  const head = parseHead(buf, offset, end, { ...DEFAULT_LIMITS, ...limits });
  head.end -= offset;
  return head;
}

function parse(raw: string, limits: Partial<Limits> = {}): RequestHead {
  return parseAt(bytes(raw), limits);
}

/** The status `parse` fails with, or 0 if it succeeds. */
function statusOf(raw: string, limits: Partial<Limits> = {}): number {
  try {
    parse(raw, limits);
    return 0;
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

const H = "Host: example.com\r\n";
const req = (line: string, fields = H) => `${line}\r\n${fields}\r\n`;

type Case = [name: string, raw: string, want: number | Partial<RequestHead>];

async function table(t: Deno.TestContext, cases: Case[], limits: Partial<Limits> = {}) {
  for (const [name, raw, want] of cases) {
    await t.step(name, () => {
      if (typeof want === "number") {
        assert.equal(statusOf(raw, limits), want, JSON.stringify(raw));
        return;
      }
      const head = parse(raw, limits);
      for (const [k, v] of Object.entries(want)) {
        assert.deepEqual(head[k as keyof RequestHead], v, `${k} of ${JSON.stringify(raw)}`);
      }
    });
  }
}

// ---------------------------------------------------------------------------
// Request line (RFC 9112 §3)

Deno.test("parser: request line", async (t) => {
  await table(t, [
    ["simple GET", req("GET / HTTP/1.1"), {
      method: "GET",
      target: "/",
      minor: 1,
      form: 0,
      host: "example.com",
      contentLength: -1,
      chunked: false,
      keepAlive: true,
      expectContinue: false,
      headers: ["host", "example.com"],
    }],
    ["POST", req("POST /a HTTP/1.1"), { method: "POST" }],
    ["HEAD", req("HEAD /a HTTP/1.1"), { method: "HEAD" }],
    ["extension method", req("PURGE /cache HTTP/1.1"), { method: "PURGE" }],
    ["methods are case-sensitive tokens", req("get / HTTP/1.1"), { method: "get" }],
    ["every tchar in a method", req("!#$%&'*+-.^_`|~09az / HTTP/1.1"), {
      method: "!#$%&'*+-.^_`|~09az",
    }],
    ["non-token method", req("GE(T / HTTP/1.1"), 400],
    ["non-ASCII method", req("G\xc9T / HTTP/1.1"), 400],
    ["empty method", req(" / HTTP/1.1"), 400],
    ["origin-form with query", req("GET /a/b?c=d&e HTTP/1.1"), { target: "/a/b?c=d&e", form: 0 }],
    ["origin-form with //", req("GET //x/y HTTP/1.1"), { target: "//x/y", form: 0 }],
    ["fragment in target", req("GET /admin#/../x HTTP/1.1"), 400],
    ["non-ASCII byte in target", req("GET /caf\xe9 HTTP/1.1"), 400],
    ["control byte in target", req("GET /a\x01b HTTP/1.1"), 400],
    ["DEL in target", req("GET /a\x7fb HTTP/1.1"), 400],
    ["absolute-form", req("GET http://example.com/x?y HTTP/1.1"), {
      target: "http://example.com/x?y",
      form: 1,
    }],
    ["absolute-form https, upper case", req("GET HTTPS://EXAMPLE.COM HTTP/1.1"), { form: 1 }],
    ["absolute-form with port", req("GET http://example.com:8080/ HTTP/1.1"), { form: 1 }],
    ["absolute-form with userinfo", req("GET http://u@example.com/ HTTP/1.1"), 400],
    ["absolute-form with userinfo and port", req("GET http://u:p@example.com:80/ HTTP/1.1"), 400],
    ["absolute-form IPv6", req("GET http://[::1]:8080/x HTTP/1.1"), { form: 1 }],
    ["absolute-form, query right after host", req("GET http://example.com?x HTTP/1.1"), {
      form: 1,
    }],
    ["absolute-form, bad port", req("GET http://example.com:8x/ HTTP/1.1"), 400],
    ["absolute-form, bad host", req("GET http://exa<mple.com/ HTTP/1.1"), 400],
    ["absolute-form, empty authority", req("GET http:///x HTTP/1.1"), 400],
    ["absolute-form, other scheme", req("GET ftp://example.com/ HTTP/1.1"), 400],
    ["no scheme, no slash", req("GET example.com/x HTTP/1.1"), 400],
    ["urn-ish target", req("GET mailto:a@b HTTP/1.1"), 400],
    ["asterisk-form", req("OPTIONS * HTTP/1.1"), { form: 2, target: "*", method: "OPTIONS" }],
    ["asterisk-form for GET", req("GET * HTTP/1.1"), 400],
    ["asterisk-form for CONNECT", req("CONNECT * HTTP/1.1"), 400],
    ["star then more", req("OPTIONS *x HTTP/1.1"), 400],
    ["OPTIONS origin-form", req("OPTIONS /x HTTP/1.1"), { form: 0 }],
    ["authority-form", req("CONNECT example.com:443 HTTP/1.1"), {
      form: 3,
      target: "example.com:443",
    }],
    ["authority-form IPv6", req("CONNECT [::1]:443 HTTP/1.1"), { form: 3 }],
    ["authority-form without port", req("CONNECT example.com HTTP/1.1"), 400],
    ["authority-form with path", req("CONNECT example.com:443/x HTTP/1.1"), 400],
    ["authority-form with userinfo", req("CONNECT u@example.com:443 HTTP/1.1"), 400],
    ["CONNECT origin-form", req("CONNECT / HTTP/1.1"), 400],
    ["CONNECT absolute-form", req("CONNECT http://example.com:80/ HTTP/1.1"), 400],
    ["authority-form for GET", req("GET example.com:443 HTTP/1.1"), 400],
    ["two spaces after method", req("GET  / HTTP/1.1"), 400],
    ["two spaces after target", req("GET /  HTTP/1.1"), 400],
    ["trailing space", req("GET / HTTP/1.1 "), 400],
    ["tabs as separators", req("GET\t/\tHTTP/1.1"), 400],
    ["no version (HTTP/0.9 simple request)", req("GET /"), 400],
    ["HTTP/1.0", req("GET / HTTP/1.0", ""), { minor: 0, keepAlive: false, host: "" }],
    ["HTTP/1.1", req("GET / HTTP/1.1"), { minor: 1 }],
    ["HTTP/2.0", req("GET / HTTP/2.0"), 505],
    ["HTTP/1.2", req("GET / HTTP/1.2"), 505],
    ["HTTP/0.9", req("GET / HTTP/0.9"), 505],
    ["HTTP/3.0", req("GET / HTTP/3.0"), 505],
    ["HTTP/x.y", req("GET / HTTP/x.y"), 400],
    ["HTTP/1.x", req("GET / HTTP/1.x"), 400],
    ["HTTP/1.10", req("GET / HTTP/1.10"), 400],
    ["HTTP/11", req("GET / HTTP/11"), 400],
    ["HTTP/1", req("GET / HTTP/1"), 400],
    ["lower-case http", req("GET / http/1.1"), 400],
    ["HTTPS/1.1", req("GET / HTTPS/1.1"), 400],
    ["bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400],
    ["bare LF everywhere", "GET / HTTP/1.1\nHost: a\n\n", 400],
    ["bare CR after request line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400],
    ["one empty line before the request line", "\r\n" + req("GET / HTTP/1.1"), {
      method: "GET",
    }],
    // RFC 9112 §2.2 asks for at least one; a second one ends the "head" early.
    ["two empty lines before the request line", "\r\n\r\n" + req("GET / HTTP/1.1"), 400],
    ["garbage", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400],
    ["TLS to a plain port, NUL bytes", "\x16\x03\x01\x00\x00\n\n", 400],
  ]);
});

Deno.test("parser: request target length", async (t) => {
  const lim = { maxUriBytes: 100 };
  await table(t, [
    ["at the limit", req(`GET /${"a".repeat(99)} HTTP/1.1`), { form: 0 }],
    ["one over", req(`GET /${"a".repeat(100)} HTTP/1.1`), 414],
    ["absolute-form over", req(`GET http://a/${"a".repeat(100)} HTTP/1.1`), 414],
  ], lim);
  // Large targets with the defaults (8 KiB).
  assert.equal(statusOf(req(`GET /${"x".repeat(8 * 1024)} HTTP/1.1`)), 414);
  assert.equal(parse(req(`GET /${"x".repeat(8 * 1024 - 1)} HTTP/1.1`)).target.length, 8 * 1024);
});

// ---------------------------------------------------------------------------
// Header fields (RFC 9112 §5, RFC 9110 §5)

Deno.test("parser: header fields", async (t) => {
  const line = "GET / HTTP/1.1\r\n";
  const h = (fields: string) => `${line}${H}${fields}\r\n`;
  await table(t, [
    ["names are lower-cased, order kept", h("X-A: 1\r\nx-b: 2\r\nX-A: 3\r\n"), {
      headers: ["host", "example.com", "x-a", "1", "x-b", "2", "x-a", "3"],
    }],
    ["every tchar in a name", h("!#$%&'*+-.^_`|~09Az: v\r\n"), {
      headers: ["host", "example.com", "!#$%&'*+-.^_`|~09az", "v"],
    }],
    ["OWS trimmed", h("X:  \t a \t b \t \r\n"), {
      headers: ["host", "example.com", "x", "a \t b"],
    }],
    ["no OWS", h("X:a\r\n"), { headers: ["host", "example.com", "x", "a"] }],
    ["empty value", h("X:\r\n"), { headers: ["host", "example.com", "x", ""] }],
    ["only OWS", h("X: \t \r\n"), { headers: ["host", "example.com", "x", ""] }],
    ["obs-text kept as latin-1", h("X: caf\xe9 \xff\r\n"), {
      headers: ["host", "example.com", "x", "caf\xe9 \xff"],
    }],
    ["colon in value", h("X: a:b: c\r\n"), { headers: ["host", "example.com", "x", "a:b: c"] }],
    ["space before colon", h("X : a\r\n"), 400],
    ["tab before colon", h("X\t: a\r\n"), 400],
    ["space inside name", h("X Y: a\r\n"), 400],
    ["non-token name", h("X(Y): a\r\n"), 400],
    ["non-ASCII name", h("X\xe9: a\r\n"), 400],
    ["empty name", h(": a\r\n"), 400],
    ["no colon", h("X\r\n"), 400],
    ["obs-fold with space", h("X: a\r\n b\r\n"), 400],
    ["obs-fold with tab", h("X: a\r\n\tb\r\n"), 400],
    ["leading space on the first field", `${line} Host: a\r\n\r\n`, 400],
    ["bare CR in value", h("X: a\rb\r\n"), 400],
    ["CR CR LF", h("X: a\r\r\n"), 400],
    ["bare LF between fields", h("X: a\nY: b\r\n"), 400],
    ["bare LF ends the head", `${line}${H}X: a\n\n`, 400],
    ["CR LF LF ends the head", `${line}${H}X: a\r\n\n`, 400],
    ["NUL in value", h("X: a\x00b\r\n"), 400],
    ["CTL in value", h("X: a\x01b\r\n"), 400],
    ["VT in value", h("X: \x0bb\r\n"), 400],
    ["ESC in value", h("X: \x1b[31m\r\n"), 400],
    ["DEL in value", h("X: a\x7f\r\n"), 400],
    ["NUL in name", h("X\x00: a\r\n"), 400],
    ["Host missing in HTTP/1.1", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400],
    ["Host missing, absolute-form", "GET http://a/ HTTP/1.1\r\n\r\n", 400],
    ["Host repeated", h("Host: example.com\r\n"), 400],
    ["Host repeated, different case", h("HOST: other\r\n"), 400],
    ["Host repeated in HTTP/1.0", `GET / HTTP/1.0\r\n${H}${H}\r\n`, 400],
    ["Host missing in HTTP/1.0", "GET / HTTP/1.0\r\n\r\n", { host: "" }],
    ["empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", { host: "" }],
    ["Host with port", "GET / HTTP/1.1\r\nHost: a.b:8080\r\n\r\n", { host: "a.b:8080" }],
    ["Host IPv4", "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", { host: "127.0.0.1:80" }],
    ["Host IPv6", "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", { host: "[::1]:8080" }],
    ["Host IPv6, no port", "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", {
      host: "[fe80::1%25eth0]",
    }],
    ["Host sub-delims", "GET / HTTP/1.1\r\nHost: a-b_c~d!$&'()*+,;=\r\n\r\n", {
      host: "a-b_c~d!$&'()*+,;=",
    }],
    ["Host with userinfo", "GET / HTTP/1.1\r\nHost: evil@good\r\n\r\n", 400],
    ["Host with path", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400],
    ["Host with space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400],
    ["Host with bad port", "GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400],
    ["Host with two colons", "GET / HTTP/1.1\r\nHost: a:1:2\r\n\r\n", 400],
    ["Host unclosed IPv6", "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400],
    ["Host empty IPv6", "GET / HTTP/1.1\r\nHost: []\r\n\r\n", 400],
    ["Host with junk after IPv6", "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400],
    ["Host non-ASCII", "GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", 400],
    ["Connection: close", h("Connection: close\r\n"), { keepAlive: false }],
    ["Connection: Close, upgrade", h("Connection: upgrade, Close\r\n"), { keepAlive: false }],
    ["Connection split over fields", h("Connection: upgrade\r\nConnection: close\r\n"), {
      keepAlive: false,
    }],
    ["Connection: keep-alive in 1.1", h("Connection: keep-alive\r\n"), { keepAlive: true }],
    ["HTTP/1.0 default", "GET / HTTP/1.0\r\n\r\n", { keepAlive: false }],
    ["HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", {
      keepAlive: true,
    }],
    ["HTTP/1.0 keep-alive then close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", {
      keepAlive: false,
    }],
    ["close with NBSP is not close", h("Connection: close\xa0\r\n"), { keepAlive: true }],
    ["Expect: 100-continue", h("Expect: 100-Continue\r\n"), { expectContinue: true }],
    ["Expect in HTTP/1.0 is ignored", "GET / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n", {
      expectContinue: false,
    }],
    ["unknown expectation", h("Expect: the-unexpected\r\n"), 417],
    ["unknown expectation in a second field", h("Expect: 100-continue\r\nExpect: x\r\n"), 417],
    ["unknown expectation in a list", h("Expect: 100-continue, x\r\n"), 417],
  ]);
});

Deno.test("parser: header limits", async (t) => {
  const fields = (n: number) => {
    let s = H;
    for (let i = 1; i < n; i++) s += `X-${i}: ${i}\r\n`;
    return req("GET / HTTP/1.1", s);
  };
  await table(t, [
    ["count at the limit", fields(10), { host: "example.com" }],
    ["count over the limit", fields(11), 431],
    ["count way over", fields(1000), 431],
  ], { maxHeaderCount: 10 });
  const head = (n: number) => {
    const base = `GET / HTTP/1.1\r\n${H}X: \r\n\r\n`;
    return `GET / HTTP/1.1\r\n${H}X: ${"v".repeat(n - base.length)}\r\n\r\n`;
  };
  assert.equal(head(200).length, 200);
  await table(t, [
    ["bytes at the limit", head(200), { host: "example.com" }],
    ["bytes over the limit", head(201), 431],
  ], { maxHeaderBytes: 200 });
  assert.equal(statusOf(fields(DEFAULT_LIMITS.maxHeaderCount + 1)), 431);
  assert.equal(statusOf(fields(DEFAULT_LIMITS.maxHeaderCount)), 0);
  assert.equal(statusOf(head(DEFAULT_LIMITS.maxHeaderBytes + 1)), 431);
});

// ---------------------------------------------------------------------------
// Message body framing (RFC 9112 §6)

Deno.test("parser: Content-Length and Transfer-Encoding", async (t) => {
  const h = (fields: string, v = "1.1") => `POST / HTTP/${v}\r\n${H}${fields}\r\n`;
  await table(t, [
    ["Content-Length", h("Content-Length: 5\r\n"), { contentLength: 5, chunked: false }],
    ["Content-Length: 0", h("Content-Length: 0\r\n"), { contentLength: 0 }],
    ["leading zeros", h("Content-Length: 0005\r\n"), { contentLength: 5 }],
    ["15 digits", h("Content-Length: 999999999999999\r\n"), { contentLength: 999999999999999 }],
    ["16 digits", h("Content-Length: 1000000000000000\r\n"), 400],
    // OWS around a field value is not part of it (RFC 9112 §5.1).
    ["trailing OWS", h("Content-Length: 5 \t\r\n"), { contentLength: 5 }],
    ["plus sign", h("Content-Length: +5\r\n"), 400],
    ["minus sign", h("Content-Length: -1\r\n"), 400],
    ["hex", h("Content-Length: 0x5\r\n"), 400],
    ["inner space", h("Content-Length: 5 5\r\n"), 400],
    ["exponent", h("Content-Length: 1e3\r\n"), 400],
    ["decimal point", h("Content-Length: 5.0\r\n"), 400],
    ["empty", h("Content-Length:\r\n"), 400],
    // RFC 9110 §8.6 lets a recipient accept "1,1"; we do not (documented).
    ["list of identical values", h("Content-Length: 1,1\r\n"), 400],
    ["list of values", h("Content-Length: 1, 2\r\n"), 400],
    ["NBSP after digits", h("Content-Length: 5\xa0\r\n"), 400],
    ["full-width digit", h("Content-Length: \xb9\r\n"), 400],
    ["identical duplicate", h("Content-Length: 5\r\nContent-Length: 5\r\n"), {
      contentLength: 5,
    }],
    ["identical duplicate, leading zero", h("Content-Length: 5\r\nContent-Length: 05\r\n"), {
      contentLength: 5,
    }],
    ["differing duplicate", h("Content-Length: 5\r\nContent-Length: 6\r\n"), 400],
    ["differing duplicate, zero", h("Content-Length: 0\r\ncontent-length: 6\r\n"), 400],
    ["chunked", h("Transfer-Encoding: chunked\r\n"), { chunked: true, contentLength: -1 }],
    ["Chunked, any case", h("Transfer-Encoding: ChUnKeD\r\n"), { chunked: true }],
    ["chunked with OWS", h("Transfer-Encoding: \t chunked \t\r\n"), { chunked: true }],
    ["gzip, chunked", h("Transfer-Encoding: gzip, chunked\r\n"), 501],
    [
      "gzip then chunked in two fields",
      h("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n"),
      501,
    ],
    ["chunked, gzip", h("Transfer-Encoding: chunked, gzip\r\n"), 400],
    ["gzip alone", h("Transfer-Encoding: gzip\r\n"), 400],
    ["identity", h("Transfer-Encoding: identity\r\n"), 400],
    ["xchunked", h("Transfer-Encoding: xchunked\r\n"), 400],
    ["chunkedx", h("Transfer-Encoding: chunkedx\r\n"), 400],
    ["chunked, identity", h("Transfer-Encoding: chunked, identity\r\n"), 400],
    ["chunked twice", h("Transfer-Encoding: chunked, chunked\r\n"), 400],
    [
      "chunked in two fields",
      h("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
      400,
    ],
    ["chunked then bogus field", h("Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"), 400],
    ["bogus then chunked field", h("Transfer-Encoding: x\r\nTransfer-Encoding: chunked\r\n"), 501],
    ["chunked with parameter", h("Transfer-Encoding: chunked;q=1\r\n"), 400],
    ["empty", h("Transfer-Encoding:\r\n"), 400],
    ["empty element", h("Transfer-Encoding: , chunked\r\n"), 400],
    ["quoted", h('Transfer-Encoding: "chunked"\r\n'), 400],
    ["chunked + NBSP", h("Transfer-Encoding: chunked\xa0\r\n"), 400],
    ["NBSP + chunked", h("Transfer-Encoding: \xa0chunked\r\n"), 400],
    ["non-token coding before chunked", h("Transfer-Encoding: g(z), chunked\r\n"), 400],
    ["VT before chunked", h("Transfer-Encoding: \x0bchunked\r\n"), 400],
    ["space before colon", h("Transfer-Encoding : chunked\r\n"), 400],
    ["folded", h("Transfer-Encoding:\r\n chunked\r\n"), 400],
    ["TE then CL", h("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n"), 400],
    ["CL then TE", h("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), 400],
    ["CL 0 and TE", h("Content-Length: 0\r\nTransfer-Encoding: chunked\r\n"), 400],
    ["TE in HTTP/1.0", h("Transfer-Encoding: chunked\r\n", "1.0"), 400],
    ["CL in HTTP/1.0", h("Content-Length: 3\r\n", "1.0"), { contentLength: 3, minor: 0 }],
  ]);
});

Deno.test("parser: parseLength and latin1", () => {
  assert.equal(parseLength("0"), 0);
  assert.equal(parseLength("123456789012345"), 123456789012345);
  for (const bad of ["", " 1", "1 ", "+1", "-1", "1_0", "１", "0x1", "1234567890123456"]) {
    assert.throws(() => parseLength(bad), (e) => e instanceof HttpError && e.status === 400, bad);
  }
  const b = new Uint8Array(20_000);
  for (let i = 0; i < b.length; i++) b[i] = i % 256;
  for (const [s, e] of [[0, 0], [3, 10], [0, 127], [0, 128], [1, 9000], [0, 20_000]]) {
    let want = "";
    for (let i = s; i < e; i++) want += String.fromCharCode(b[i]);
    assert.equal(latin1(b, s, e), want);
  }
});

Deno.test("parser: findHeadEnd", () => {
  const cases: [string, number][] = [
    ["", -1],
    ["GET / HTTP/1.1\r\n", -1],
    ["GET / HTTP/1.1\r\nHost: a\r\n", -1],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r", -1],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\n", 27],
    ["GET / HTTP/1.1\r\nHost: a\r\n\r\nXXXX", 27],
    // A bare-LF blank line ends the head too, so the parser can reject it
    // at once rather than waiting for a timeout.
    ["GET / HTTP/1.1\nHost: a\n\n", 24],
    ["GET / HTTP/1.1\r\nHost: a\n\n", 25],
    ["GET / HTTP/1.1\r\nHost: a\n\r\n", 26],
    ["\r\n\r\n", 4],
    ["\n\n", 2],
    ["\r\r\r\r", -1],
  ];
  for (const [s, want] of cases) {
    const b = bytes(s);
    assert.equal(findHeadEnd(b, 0, b.length), want, JSON.stringify(s));
  }
  // `end` bounds the scan even when the buffer holds more.
  const b = bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  for (let end = 0; end < b.length; end++) assert.equal(findHeadEnd(b, 0, end), -1);
  assert.equal(rescanFrom(10, 0), 7);
  assert.equal(rescanFrom(2, 0), 0);
  assert.equal(rescanFrom(12, 11), 11);
});

// ---------------------------------------------------------------------------
// Chunked transfer coding (RFC 9112 §7.1)

type Decoded = { data: string; consumed: number; done: boolean };

/** Feeds `pieces` (consecutive parts of one input) to a fresh decoder. */
function decode(pieces: Uint8Array[], limits: Partial<ChunkLimits> = {}): Decoded {
  const d = new ChunkedDecoder({ ...DEFAULT_CHUNK_LIMITS, ...limits });
  const out: Uint8Array[] = [];
  let consumed = 0;
  for (const piece of pieces) {
    // Junk around the piece: the decoder must honor `p` and `end`.
    const buf = new Uint8Array(piece.length + 6).fill(10);
    buf.set(piece, 3);
    let p = 3;
    const end = 3 + piece.length;
    while (!d.done) {
      const [at, n] = d.next(buf, p, end);
      assert.ok(at >= p && at + n <= end, "range inside the input");
      if (n > 0) out.push(buf.slice(at, at + n));
      p = at + n;
      if (n === 0 && !d.done) {
        assert.equal(p, end, "n = 0 means the input is used up");
        break;
      }
    }
    consumed += p - 3;
    if (d.done) break;
  }
  return {
    data: latin1(concat(out), 0, out.reduce((n, b) => n + b.length, 0)),
    consumed,
    done: d.done,
  };
}

function decodeStatus(s: string, limits: Partial<ChunkLimits> = {}): number {
  try {
    decode([bytes(s)], limits);
    return 0;
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
}

/** Every way to split `s` in two, and byte by byte. */
function splits(s: string): Uint8Array[][] {
  const b = bytes(s);
  const out: Uint8Array[][] = [[b]];
  for (let i = 0; i <= b.length; i++) out.push([b.subarray(0, i), b.subarray(i)]);
  out.push([...b].map((x) => new Uint8Array([x])));
  return out;
}

const CHUNKED_OK: [string, string, string][] = [
  ["empty body", "0\r\n\r\n", ""],
  ["one chunk", "5\r\nhello\r\n0\r\n\r\n", "hello"],
  ["two chunks", "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", "hello world"],
  ["hex upper", "A\r\n0123456789\r\n0\r\n\r\n", "0123456789"],
  ["hex lower", "a\r\n0123456789\r\n0\r\n\r\n", "0123456789"],
  ["leading zeros", "0005\r\nhello\r\n0000\r\n\r\n", "hello"],
  ["many leading zeros", `${"0".repeat(20)}5\r\nhello\r\n0\r\n\r\n`, "hello"],
  ["CRLF in data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", "\r\n\r\n"],
  ["binary data", "3\r\n\x00\xff\n\r\n0\r\n\r\n", "\x00\xff\n"],
  ["extension", "5;name=value\r\nhello\r\n0;last\r\n\r\n", "hello"],
  ["extensions with BWS", '5 \t; a = "b c" ;d\r\nhello\r\n0\r\n\r\n', "hello"],
  ["extension with obs-text", "5;x=\xe9\r\nhello\r\n0\r\n\r\n", "hello"],
  ["trailers", "5\r\nhello\r\n0\r\nX-Sum: abc\r\nY:\r\n\r\n", "hello"],
  ["trailer with OWS and obs-text", "0\r\nX: \t a \xe9 \r\n\r\n", ""],
];

Deno.test("chunked: valid framing, split at every byte boundary", async (t) => {
  for (const [name, s, want] of CHUNKED_OK) {
    await t.step(name, () => {
      const after = "GET / HTTP/1.1\r\n";
      for (const pieces of splits(s + after)) {
        const r = decode(pieces);
        assert.equal(r.data, want);
        assert.ok(r.done);
        assert.equal(r.consumed, s.length, "stops right after the body");
      }
    });
  }
});

Deno.test("chunked: incomplete input is not done", () => {
  for (const [, s] of CHUNKED_OK) {
    for (let i = 0; i < s.length; i++) {
      const r = decode([bytes(s.slice(0, i))]);
      assert.equal(r.done, false, JSON.stringify(s.slice(0, i)));
      assert.equal(r.consumed, i);
    }
  }
});

Deno.test("chunked: malformed framing", async (t) => {
  const cases: [string, string, number, Partial<ChunkLimits>?][] = [
    ["no size", "\r\nhello\r\n0\r\n\r\n", 400],
    ["not hex", "g\r\n", 400],
    ["0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 400],
    ["plus sign", "+5\r\nhello\r\n", 400],
    ["minus sign", "-5\r\nhello\r\n", 400],
    ["leading space", " 5\r\nhello\r\n", 400],
    ["trailing space, no extension", "5 \r\nhello\r\n", 400],
    ["space then junk", "5 5\r\nhello\r\n", 400],
    ["junk after size", "5x\r\nhello\r\n", 400],
    ["bare LF after size", "5\nhello\r\n0\r\n\r\n", 400],
    ["bare CR after size", "5\rhello\r\n0\r\n\r\n", 400],
    ["LF in extension", "5;a\nhello\r\n0\r\n\r\n", 400],
    ["bare CR in extension", "5;a\rb\r\nhello\r\n0\r\n\r\n", 400],
    ["NUL in extension", "5;a\x00\r\nhello\r\n", 400],
    ["DEL in extension", "5;a\x7f\r\nhello\r\n", 400],
    ["data longer than size", "5\r\nhelloX\r\n0\r\n\r\n", 400],
    ["data shorter than size", "5\r\nhell\r\n0\r\n\r\n", 400],
    ["LF only after data", "5\r\nhello\n0\r\n\r\n", 400],
    ["CR only after data", "5\r\nhello\r0\r\n\r\n", 400],
    ["size overflow (2^48)", "1000000000000\r\n", 400],
    ["size overflow (64-bit)", "ffffffffffffffff\r\n", 400],
    ["size overflow, huge", `${"f".repeat(100)}\r\n`, 400],
    ["size line too long (zeros)", `${"0".repeat(5000)}5\r\n`, 400],
    ["extension too long", `5;${"a".repeat(5000)}\r\n`, 400],
    ["extension over a small limit", "5;abcdefgh\r\nhello\r\n0\r\n\r\n", 400, {
      maxChunkLineBytes: 8,
    }],
    ["bare CR after last chunk", "0\r\n\rX", 400],
    ["bare LF ends the body", "0\r\n\n", 400],
    ["trailer obs-fold", "0\r\nX: a\r\n b\r\n\r\n", 400],
    ["trailer starting with space", "0\r\n X: a\r\n\r\n", 400],
    ["trailer space before colon", "0\r\nX : a\r\n\r\n", 400],
    ["trailer without colon", "0\r\nX\r\n\r\n", 400],
    ["trailer empty name", "0\r\n: a\r\n\r\n", 400],
    ["trailer NUL", "0\r\nX: a\x00\r\n\r\n", 400],
    ["trailer bare LF", "0\r\nX: a\n\r\n", 400],
    ["trailer bare CR", "0\r\nX: a\rb\r\n\r\n", 400],
    ["trailers too large", `0\r\n${"X: aaaaaaaaaa\r\n".repeat(2000)}\r\n`, 431],
    ["trailers over a small limit", "0\r\nX: 0123456789\r\n\r\n", 431, { maxTrailerBytes: 8 }],
  ];
  for (const [name, s, want, limits] of cases) {
    await t.step(name, () => {
      assert.equal(decodeStatus(s, limits), want);
      // Split anywhere, the same verdict.
      if (s.length < 200) {
        for (const pieces of splits(s)) {
          assert.throws(
            () => decode(pieces, limits),
            (e) => e instanceof HttpError && e.status === want,
          );
        }
      }
    });
  }
  // The largest accepted size: 12 hex digits.
  const d = new ChunkedDecoder();
  const b = bytes("ffffffffffff\r\nab");
  assert.deepEqual(d.next(b, 0, b.length), [14, 2]);
  assert.equal(d.done, false);
});

Deno.test("chunked: a done decoder consumes nothing more", () => {
  const d = new ChunkedDecoder();
  const b = bytes("0\r\n\r\nGET");
  assert.deepEqual(d.next(b, 0, b.length), [5, 0]);
  assert.ok(d.done);
  assert.deepEqual(d.next(b, 5, b.length), [5, 0]);
});

// ---------------------------------------------------------------------------
// Properties

const TCHAR = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const tokenArb = (max = 12) =>
  fc.string({ unit: fc.constantFrom(...TCHAR), minLength: 1, maxLength: max });
const PATH = [...Array(0x7f - 0x21).keys()].map((i) => String.fromCharCode(i + 0x21))
  .filter((c) => c !== "#");
const VCHARS = [...Array(0x7f - 0x21).keys()].map((i) => String.fromCharCode(i + 0x21))
  .concat(["\x80", "\xa0", "\xe9", "\xff"]);
/** A field value without leading or trailing OWS. */
const valueArb = fc.oneof(
  fc.constant(""),
  fc.tuple(
    fc.string({ unit: fc.constantFrom(...VCHARS), minLength: 1, maxLength: 20 }),
    fc.string({ unit: fc.constantFrom(...VCHARS, " ", "\t"), maxLength: 20 }),
    fc.string({ unit: fc.constantFrom(...VCHARS), minLength: 1, maxLength: 5 }),
  ).map(([a, b, c]) => a + b + c),
);
const owsArb = fc.constantFrom("", " ", "\t", "  \t ");
const SPECIAL = new Set(["host", "content-length", "transfer-encoding", "connection", "expect"]);
const bodyArb = fc.uint8Array({ maxLength: 300 });

/** Cuts `body` into chunks and frames them, with random extensions, case,
 * leading zeros and trailers. */
const chunkedArb = (body: Uint8Array) =>
  fc.record({
    cuts: fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, body.length - 1) }), {
      maxLength: 6,
    }),
    upper: fc.boolean(),
    zeros: fc.nat(3),
    ext: fc.constantFrom("", ";a", ";a=b", ' ; x = "y z"', "\t;q"),
    trailers: fc.array(fc.tuple(tokenArb(), valueArb), { maxLength: 3 }),
  }).map(({ cuts, upper, zeros, ext, trailers }) => {
    const points = [0, ...cuts.filter((c) => c < body.length).sort((a, b) => a - b), body.length];
    const parts: Uint8Array[] = [];
    for (let i = 0; i + 1 < points.length; i++) {
      const piece = body.subarray(points[i], points[i + 1]);
      if (piece.length === 0) continue;
      let size = piece.length.toString(16);
      if (upper) size = size.toUpperCase();
      parts.push(bytes(`${"0".repeat(zeros)}${size}${ext}\r\n`), piece, bytes("\r\n"));
    }
    parts.push(bytes(`0${ext}\r\n`));
    for (const [k, v] of trailers) parts.push(bytes(`${k}: ${v}\r\n`));
    parts.push(bytes("\r\n"));
    return concat(parts);
  });

interface Model {
  raw: Uint8Array;
  headLen: number;
  method: string;
  target: string;
  headers: string[];
  body: Uint8Array;
  bodyLen: number;
  chunked: boolean;
}

const requestArb: fc.Arbitrary<Model> = fc.record({
  method: fc.oneof(fc.constantFrom("GET", "POST", "HEAD", "PUT", "DELETE"), tokenArb()),
  path: fc.string({ unit: fc.constantFrom(...PATH), maxLength: 40 }),
  fields: fc.array(
    fc.tuple(tokenArb(16), owsArb, valueArb, owsArb).filter(([n]) => !SPECIAL.has(n.toLowerCase())),
    { maxLength: 12 },
  ),
  hostAt: fc.nat(),
  hostCase: fc.constantFrom("Host", "host", "HOST"),
  framing: fc.constantFrom("none", "length", "chunked"),
  body: bodyArb,
  leadingCRLF: fc.boolean(),
}).chain((r) =>
  (r.framing === "chunked" ? chunkedArb(r.body) : fc.constant(r.body)).map((encoded) => {
    const fields = r.fields.map(([n, a, v, b]) => [n, `${a}${v}${b}`, v]);
    fields.splice(r.hostAt % (fields.length + 1), 0, [r.hostCase, "example.com", "example.com"]);
    if (r.framing === "length") {
      fields.push(["Content-Length", String(r.body.length), String(r.body.length)]);
    }
    if (r.framing === "chunked") fields.push(["Transfer-Encoding", "chunked", "chunked"]);
    const target = `/${r.path}`;
    let head = `${r.leadingCRLF ? "\r\n" : ""}${r.method} ${target} HTTP/1.1\r\n`;
    for (const [n, v] of fields) head += `${n}:${v}\r\n`;
    head += "\r\n";
    const hb = bytes(head);
    const body = r.framing === "none" ? new Uint8Array(0) : r.body;
    const wire = r.framing === "none" ? new Uint8Array(0) : encoded;
    return {
      raw: concat([hb, wire]),
      headLen: hb.length,
      method: r.method,
      target,
      headers: fields.flatMap(([n, , v]) => [n.toLowerCase(), v]),
      body,
      bodyLen: wire.length,
      chunked: r.framing === "chunked",
    };
  })
);

/** Sorted distinct cut points in `[1, len)`. */
const cutsArb = (len: number) =>
  fc.uniqueArray(fc.integer({ min: 1, max: Math.max(1, len - 1) }), { maxLength: 12 })
    .map((c) => c.filter((x) => x < len).sort((a, b) => a - b));

/**
 * What the connection does: bytes arrive in pieces ending at `ends`; after
 * each, scan from where the last scan stopped. The buffer past the bytes
 * received holds line breaks, as a reused buffer might.
 */
function incrementalHeadEnd(raw: Uint8Array, ends: number[]): number {
  const buf = new Uint8Array(raw.length + 4).fill(10);
  let scan = 0;
  for (const end of [...ends, raw.length]) {
    buf.set(raw.subarray(scan, end), scan);
    const r = findHeadEnd(buf, scan, end);
    if (r !== -1) return r;
    scan = rescanFrom(end, 0);
  }
  return -1;
}

Deno.test("property: random valid requests, split anywhere, parse like whole ones", () => {
  fc.assert(
    fc.property(
      requestArb.chain((m) => fc.tuple(fc.constant(m), cutsArb(m.raw.length))),
      ([m, cuts]) => {
        const whole = findHeadEnd(m.raw, 0, m.raw.length);
        assert.equal(whole, m.headLen);
        assert.equal(incrementalHeadEnd(m.raw, cuts), m.headLen);
        const head = parseAt(m.raw.subarray(0, m.headLen), {}, 3);
        assert.equal(head.method, m.method);
        assert.equal(head.target, m.target);
        assert.deepEqual(head.headers, m.headers);
        assert.equal(head.host, "example.com");
        assert.equal(head.chunked, m.chunked);
        assert.equal(head.end, m.headLen);
        if (!m.chunked) {
          assert.equal(
            head.contentLength,
            m.bodyLen === 0 && !m.headers.includes("content-length") ? -1 : m.bodyLen,
          );
          return;
        }
        // The body, fed in the same pieces the network delivered.
        const points = [m.headLen, ...cuts.filter((c) => c > m.headLen), m.raw.length];
        const pieces = [];
        for (let i = 0; i + 1 < points.length; i++) {
          pieces.push(m.raw.subarray(points[i], points[i + 1]));
        }
        const r = decode(pieces);
        assert.ok(r.done);
        assert.equal(r.consumed, m.bodyLen);
        assert.equal(r.data, latin1(m.body, 0, m.body.length));
      },
    ),
    { numRuns: 300 },
  );
});

const scanAlphabet = fc.constantFrom(13, 10, 10, 13, 65, 32);
Deno.test("property: incremental findHeadEnd equals one scan over any bytes", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 60 }).chain((junk) =>
        fc.array(scanAlphabet, { maxLength: 40 }).chain((tail) => {
          const raw = concat([junk, new Uint8Array(tail)]);
          return fc.tuple(fc.constant(raw), cutsArb(raw.length));
        })
      ),
      ([raw, cuts]) => {
        assert.equal(incrementalHeadEnd(raw, cuts), findHeadEnd(raw, 0, raw.length));
      },
    ),
    { numRuns: 500 },
  );
});

const INTERESTING = [0, 9, 10, 13, 32, 44, 58, 59, 0x7f, 0x80, 0xa0, 0xff, 48, 57, 97, 65];
const mutationArb = fc.oneof(
  fc.record({
    kind: fc.constant("set" as const),
    at: fc.nat(),
    byte: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })),
  }),
  fc.record({
    kind: fc.constant("insert" as const),
    at: fc.nat(),
    byte: fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })),
  }),
  fc.record({ kind: fc.constant("delete" as const), at: fc.nat(), byte: fc.constant(0) }),
);

function mutate(raw: Uint8Array, ms: { kind: string; at: number; byte: number }[]): Uint8Array {
  const a = [...raw];
  for (const m of ms) {
    const at = a.length === 0 ? 0 : m.at % (a.length + (m.kind === "insert" ? 1 : 0));
    if (m.kind === "set" && a.length > 0) a[at] = m.byte;
    else if (m.kind === "insert") a.splice(at, 0, m.byte);
    else if (a.length > 0) a.splice(at, 1);
  }
  return new Uint8Array(a);
}

const STATUSES = new Set([400, 414, 417, 431, 501, 505]);
function onlyHttpErrors(f: () => void): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof HttpError)) throw e;
    assert.ok(STATUSES.has(e.status), `unexpected status ${e.status}`);
  }
}

/** Invariants of any head the parser accepts. */
function checkHead(head: RequestHead): void {
  assert.match(head.method, /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/);
  assert.match(head.target, /^[\x21-\x22\x24-\x7e]+$/);
  assert.ok(head.minor === 0 || head.minor === 1);
  assert.equal(head.headers.length % 2, 0);
  for (let i = 0; i < head.headers.length; i += 2) {
    assert.match(head.headers[i], /^[!#$%&'*+.^_`|~0-9a-z-]+$/);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(head.headers[i + 1], /[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$/);
  }
  assert.ok(!(head.chunked && head.contentLength !== -1));
}

Deno.test("property: mutated requests only ever fail with an HttpError", () => {
  fc.assert(
    fc.property(requestArb, fc.array(mutationArb, { minLength: 1, maxLength: 6 }), (m, muts) => {
      const raw = mutate(m.raw, muts);
      const end = findHeadEnd(raw, 0, raw.length);
      if (end !== -1) {
        onlyHttpErrors(() => checkHead(parseAt(raw.subarray(0, end), {}, 2)));
        onlyHttpErrors(() =>
          checkHead(parseAt(raw.subarray(0, end), { maxHeaderCount: 3, maxUriBytes: 5 }, 0))
        );
      }
      if (m.chunked) onlyHttpErrors(() => decode([raw.subarray(m.headLen)]));
    }),
    { numRuns: 500 },
  );
});

Deno.test("property: random bytes only ever fail with an HttpError", () => {
  const byteArb = fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 }));
  fc.assert(
    fc.property(fc.array(byteArb, { maxLength: 200 }), (a) => {
      const raw = concat([bytes("GET / HTTP/1.1\r\n"), new Uint8Array(a), bytes("\r\n\r\n")]);
      const end = findHeadEnd(raw, 0, raw.length);
      assert.notEqual(end, -1);
      onlyHttpErrors(() => checkHead(parseAt(raw.subarray(0, end))));
      const r = new Uint8Array(a);
      const e2 = findHeadEnd(r, 0, r.length);
      if (e2 !== -1) onlyHttpErrors(() => checkHead(parseAt(r.subarray(0, e2))));
      onlyHttpErrors(() => decode([r]));
      onlyHttpErrors(() => decode([r], { maxChunkLineBytes: 4, maxTrailerBytes: 4 }));
    }),
    { numRuns: 500 },
  );
});
