// Copyright 2026 the connctx authors. MIT license.
// Table-driven tests for the PROXY protocol parser.

import assert from "node:assert/strict";
import {
  parseProxyHeader,
  PROXY_V1_MAX_BYTES,
  PROXY_V2_MAX_PAYLOAD,
  type ProxyHeader,
  ProxyHeaderError,
} from "./proxy.ts";

const enc = new TextEncoder();
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];

function tcp(hostname: string, port: number, transport: "tcp" | "udp" = "tcp"): Deno.NetAddr {
  return { transport, hostname, port };
}

/** A v2 header: `verCmd` (0x21 PROXY, 0x20 LOCAL), `fam`, then `payload`. */
function v2(verCmd: number, fam: number, payload: number[], declared = payload.length): Uint8Array {
  return new Uint8Array([
    ...V2_SIG,
    verCmd,
    fam,
    declared >> 8,
    declared & 0xff,
    ...payload,
  ]);
}

const be16 = (n: number) => [n >> 8, n & 0xff];
const ipv4 = (s: string) => s.split(".").map(Number);
function ipv6(groups: number[]): number[] {
  return groups.flatMap(be16);
}

function concat(...parts: (Uint8Array | string)[]): Uint8Array {
  const bs = parts.map((p) => typeof p === "string" ? enc.encode(p) : p);
  const out = new Uint8Array(bs.reduce((n, b) => n + b.length, 0));
  let o = 0;
  for (const b of bs) {
    out.set(b, o);
    o += b.length;
  }
  return out;
}

/** Parses `bytes` placed at an offset inside a larger buffer (with junk
 * around it) to prove the parser honors `start`/`end`. */
function parseAt(bytes: Uint8Array, offset = 7): ProxyHeader | null {
  const buf = new Uint8Array(offset + bytes.length + 5).fill(0xee);
  buf.set(bytes, offset);
  const r = parseProxyHeader(buf, offset, offset + bytes.length);
  if (r !== null) r.end -= offset;
  return r;
}

interface Valid {
  name: string;
  /** The header. */
  header: Uint8Array | string;
  /** The client's data after it. */
  rest?: string;
  remote?: Deno.NetAddr;
  local?: Deno.NetAddr;
}

const GET = "GET / HTTP/1.1\r\nhost: x\r\n\r\n";

const VALID: Valid[] = [
  {
    name: "v1 TCP4",
    header: "PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n",
    rest: GET,
    remote: tcp("192.0.2.1", 56324),
    local: tcp("198.51.100.7", 443),
  },
  {
    name: "v1 TCP4, extremes",
    header: "PROXY TCP4 255.255.255.255 0.0.0.0 65535 0\r\n",
    remote: tcp("255.255.255.255", 65535),
    local: tcp("0.0.0.0", 0),
  },
  {
    name: "v1 TCP6, compressed",
    header: "PROXY TCP6 2001:db8::1 ::1 1234 80\r\n",
    rest: GET,
    remote: tcp("2001:db8::1", 1234),
    local: tcp("::1", 80),
  },
  {
    name: "v1 TCP6, full form is canonicalized (RFC 5952)",
    header: "PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 0:0:0:0:0:0:0:0 1 2\r\n",
    remote: tcp("2001:db8::1", 1),
    local: tcp("::", 2),
  },
  {
    name: "v1 TCP6, IPv4-mapped",
    header: "PROXY TCP6 ::ffff:10.1.2.3 ::FFFF:0a01:0204 5 6\r\n",
    remote: tcp("::ffff:10.1.2.3", 5),
    local: tcp("::ffff:10.1.2.4", 6),
  },
  {
    name: "v1 TCP6, longest zero run compressed, first on a tie",
    header: "PROXY TCP6 1:0:0:2:0:0:0:3 1:0:0:2:0:0:3:4 7 8\r\n",
    remote: tcp("1:0:0:2::3", 7),
    local: tcp("1::2:0:0:3:4", 8),
  },
  {
    name: "v1 TCP6, the longest possible header (104 bytes)",
    header: `PROXY TCP6 ${"ffff:".repeat(7)}ffff ${"ffff:".repeat(7)}ffff 65535 65535\r\n`,
    rest: GET,
    remote: tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
    local: tcp("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535),
  },
  { name: "v1 UNKNOWN, bare", header: "PROXY UNKNOWN\r\n", rest: GET },
  {
    name: "v1 UNKNOWN, with ignored fields",
    header: "PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n",
    rest: GET,
  },
  {
    name: "v1 UNKNOWN, 107 bytes (the limit)",
    header: `PROXY UNKNOWN ${"x".repeat(107 - 16)}\r\n`,
    rest: GET,
  },
  {
    name: "v2 PROXY TCP over IPv4",
    header: v2(0x21, 0x11, [
      ...ipv4("192.0.2.1"),
      ...ipv4("198.51.100.7"),
      ...be16(56324),
      ...be16(443),
    ]),
    rest: GET,
    remote: tcp("192.0.2.1", 56324),
    local: tcp("198.51.100.7", 443),
  },
  {
    name: "v2 PROXY UDP over IPv4",
    header: v2(0x21, 0x12, [...ipv4("10.0.0.1"), ...ipv4("10.0.0.2"), ...be16(53), ...be16(5353)]),
    remote: tcp("10.0.0.1", 53, "udp"),
    local: tcp("10.0.0.2", 5353, "udp"),
  },
  {
    name: "v2 PROXY TCP over IPv6",
    header: v2(0x21, 0x21, [
      ...ipv6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
      ...ipv6([0, 0, 0, 0, 0, 0, 0, 1]),
      ...be16(40000),
      ...be16(8443),
    ]),
    rest: GET,
    remote: tcp("2001:db8::1", 40000),
    local: tcp("::1", 8443),
  },
  {
    name: "v2 PROXY TCP over IPv6, IPv4-mapped",
    header: v2(0x21, 0x21, [
      ...ipv6([0, 0, 0, 0, 0, 0xffff, 0x7f00, 0x0001]),
      ...ipv6([0xfe80, 0, 0, 0, 0x1, 0, 0, 0]),
      ...be16(1),
      ...be16(2),
    ]),
    remote: tcp("::ffff:127.0.0.1", 1),
    local: tcp("fe80::1:0:0:0", 2),
  },
  {
    name: "v2 PROXY IPv4 with TLVs (ignored)",
    header: v2(0x21, 0x11, [
      ...ipv4("1.2.3.4"),
      ...ipv4("5.6.7.8"),
      ...be16(1000),
      ...be16(2000),
      // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP
      0x01,
      ...be16(2),
      ...enc.encode("h2"),
      0x02,
      ...be16(11),
      ...enc.encode("example.com"),
      0x04,
      ...be16(3),
      0,
      0,
      0,
    ]),
    rest: GET,
    remote: tcp("1.2.3.4", 1000),
    local: tcp("5.6.7.8", 2000),
  },
  {
    name: "v2 LOCAL (health check): no addresses",
    header: v2(0x20, 0x00, []),
    rest: GET,
  },
  {
    name: "v2 LOCAL with a payload and an undefined family: skipped",
    header: v2(0x20, 0xff, [1, 2, 3, 4, 5]),
    rest: GET,
  },
  { name: "v2 PROXY AF_UNSPEC: no addresses", header: v2(0x21, 0x00, []), rest: GET },
  {
    name: "v2 PROXY AF_UNIX stream: no network addresses",
    header: v2(0x21, 0x31, new Array(216).fill(0x41)),
    rest: GET,
  },
  {
    name: "v2 at the payload limit",
    header: v2(0x21, 0x11, [
      ...ipv4("1.2.3.4"),
      ...ipv4("5.6.7.8"),
      ...be16(1),
      ...be16(2),
      ...new Array(PROXY_V2_MAX_PAYLOAD - 12).fill(0),
    ]),
    remote: tcp("1.2.3.4", 1),
    local: tcp("5.6.7.8", 2),
  },
];

function headerBytes(t: Valid): Uint8Array {
  return typeof t.header === "string" ? enc.encode(t.header) : t.header;
}

for (const t of VALID) {
  Deno.test(`proxy: valid: ${t.name}`, () => {
    const header = headerBytes(t);
    const input = concat(header, t.rest ?? "");
    const r = parseAt(input);
    assert.ok(r !== null, "complete header reported as incomplete");
    assert.equal(r.end, header.length);
    assert.deepEqual(r.remoteAddr, t.remote);
    assert.deepEqual(r.localAddr, t.local);
    // Every strict prefix of the header needs more bytes (and never throws).
    for (let n = 0; n < header.length; n++) {
      assert.equal(parseAt(input.subarray(0, n)), null, `prefix of ${n} bytes`);
    }
  });
}

interface Invalid {
  name: string;
  input: Uint8Array | string;
  /** Part of the error message. */
  error: RegExp;
}

const INVALID: Invalid[] = [
  { name: "plain HTTP", input: GET, error: /no PROXY signature/ },
  { name: "TLS ClientHello", input: new Uint8Array([0x16, 0x03, 0x01, 0x02]), error: /signature/ },
  { name: "lowercase proxy", input: "proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", error: /signature/ },
  { name: "PROXY without its space", input: "PROXYTCP4", error: /bad v1 signature/ },
  { name: "PRO then garbage", input: "PROX\r", error: /bad v1 signature/ },
  {
    name: "v1 without CRLF within 107 bytes",
    input: "PROXY UNKNOWN " + "x".repeat(PROXY_V1_MAX_BYTES),
    error: /longer than 107/,
  },
  {
    name: "v1 of exactly 108 bytes",
    input: "PROXY UNKNOWN " + "x".repeat(108 - 16) + "\r\n",
    error: /longer than 107/,
  },
  { name: "v1 bare LF", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", error: /CRLF/ },
  { name: "v1 stray CR", input: "PROXY TCP4 1.2.3.4\r5.6.7.8 1 2\r\n", error: /stray CR/ },
  { name: "v1 NUL byte", input: "PROXY TCP4 1.2.3.4\x005", error: /bad byte/ },
  { name: "v1 UTF-8 byte", input: "PROXY TCP4 \u00e9", error: /bad byte/ },
  { name: "v1 unknown protocol", input: "PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", error: /protocol/ },
  { name: "v1 empty protocol", input: "PROXY \r\n", error: /protocol/ },
  { name: "v1 double space", input: "PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n", error: /protocol/ },
  { name: "v1 missing port", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", error: /4 fields/ },
  { name: "v1 extra field", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", error: /4 fields/ },
  { name: "v1 trailing space", input: "PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", error: /4 fields/ },
  { name: "v1 octet > 255", input: "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", error: /IPv4/ },
  { name: "v1 leading zero", input: "PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n", error: /IPv4/ },
  { name: "v1 three octets", input: "PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", error: /IPv4/ },
  { name: "v1 IPv6 in TCP4", input: "PROXY TCP4 ::1 5.6.7.8 1 2\r\n", error: /IPv4/ },
  { name: "v1 IPv4 in TCP6", input: "PROXY TCP6 1.2.3.4 ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 two ::", input: "PROXY TCP6 1::2::3 ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 nine groups", input: "PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 :: for no group", input: "PROXY TCP6 1:2:3:4::5:6:7:8 ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 5-digit group", input: "PROXY TCP6 12345:: ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 zone id", input: "PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 brackets", input: "PROXY TCP6 [::1] ::1 1 2\r\n", error: /IPv6/ },
  { name: "v1 port > 65535", input: "PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", error: /port/ },
  { name: "v1 port leading zero", input: "PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n", error: /port/ },
  { name: "v1 negative port", input: "PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", error: /port/ },
  { name: "v1 empty port", input: "PROXY TCP4 1.2.3.4 5.6.7.8  2\r\n", error: /port/ },
  {
    name: "v2 bad signature byte",
    input: new Uint8Array([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x55]),
    error: /bad v2 signature/,
  },
  { name: "v2 version 1", input: v2(0x11, 0x11, new Array(12).fill(0)), error: /version 1/ },
  { name: "v2 version 3", input: v2(0x31, 0x11, new Array(12).fill(0)), error: /version 3/ },
  { name: "v2 command 2", input: v2(0x22, 0x11, new Array(12).fill(0)), error: /command 2/ },
  { name: "v2 family 0x41", input: v2(0x21, 0x41, new Array(12).fill(0)), error: /family/ },
  { name: "v2 INET, UNSPEC proto", input: v2(0x21, 0x10, new Array(12).fill(0)), error: /family/ },
  {
    name: "v2 IPv4, payload too short",
    input: v2(0x21, 0x11, new Array(11).fill(0)),
    error: /short/,
  },
  {
    name: "v2 IPv6, payload too short",
    input: v2(0x21, 0x21, new Array(12).fill(0)),
    error: /short/,
  },
  {
    name: "v2 UNIX, payload too short",
    input: v2(0x21, 0x31, new Array(12).fill(0)),
    error: /short/,
  },
  {
    // Rejected from the 16-byte head alone, before the payload arrives.
    name: "v2 payload over the limit",
    input: v2(0x21, 0x11, [], PROXY_V2_MAX_PAYLOAD + 1),
    error: /exceeds 4096/,
  },
  { name: "v2 maximal wire length", input: v2(0x20, 0x00, [], 0xffff), error: /exceeds/ },
];

for (const t of INVALID) {
  Deno.test(`proxy: invalid: ${t.name}`, () => {
    const bytes = typeof t.input === "string" ? enc.encode(t.input) : t.input;
    assert.throws(() => parseAt(bytes), (e: unknown) => {
      assert.ok(e instanceof ProxyHeaderError, `not a ProxyHeaderError: ${e}`);
      assert.match(e.message, t.error);
      return true;
    });
  });
}

Deno.test("proxy: incomplete input needs more, even when it could still become invalid", () => {
  assert.equal(parseProxyHeader(new Uint8Array(0), 0, 0), null);
  assert.equal(parseAt(enc.encode("P")), null);
  assert.equal(parseAt(enc.encode("PROXY TCP4 1.2.3.4")), null);
  assert.equal(parseAt(new Uint8Array(V2_SIG.slice(0, 5))), null);
  // The 16-byte head of a v2 header whose payload is still to come.
  assert.equal(parseAt(v2(0x21, 0x11, [], 12)), null);
  // start === end inside a non-empty buffer.
  assert.equal(parseProxyHeader(enc.encode("PROXY UNKNOWN\r\n"), 15, 15), null);
});

Deno.test("proxy: byte-at-a-time feeding reaches the same result as one read", () => {
  for (const t of VALID) {
    const header = headerBytes(t);
    const input = concat(header, t.rest ?? "");
    const whole = parseAt(input);
    let got: ProxyHeader | null = null;
    for (let n = 1; n <= input.length && got === null; n++) {
      got = parseAt(input.subarray(0, n));
      if (got !== null) assert.equal(n, header.length, t.name);
    }
    assert.deepEqual(got, whole, t.name);
  }
});

Deno.test("proxy: never reads outside [start, end)", () => {
  // The bytes just past `end` would complete the header; they must be ignored.
  const line = enc.encode("PROXY UNKNOWN\r\n");
  assert.equal(parseProxyHeader(line, 0, line.length - 1), null);
  // A header preceded by bytes that are not one.
  const buf = concat("junk", line);
  assert.equal(parseProxyHeader(buf, 4, buf.length)?.end, buf.length);
});
