// Copyright 2026 the connctx authors. MIT license.
// HTTP/2 (RFC 9113) and HPACK (RFC 7541) on connctx's engine.
//
// Real peers (each test says so and is skipped with a message when the peer
// is missing): node:http2 (h2c and TLS), Deno's fetch over TLS (ALPN h2),
// curl --http2 --cacert and --http2-prior-knowledge, nghttp, h2load.
//
// Frame-level cases, written from h2spec's published case list with this
// module's own raw framer over Deno.connect (`_http2/_test_harness.ts`):
//
//   3.5      connection preface (valid; invalid → GOAWAY PROTOCOL_ERROR)
//   4.1      frame format: unknown type, unknown flags, reserved bit ignored
//   4.2      frame size: 2^14 DATA accepted; DATA/HEADERS over
//            SETTINGS_MAX_FRAME_SIZE → FRAME_SIZE_ERROR
//   4.3      header compression: invalid block → COMPRESSION_ERROR; PRIORITY
//            or another stream's HEADERS inside a block → PROTOCOL_ERROR
//   5.1      stream states: idle (DATA, RST_STREAM, WINDOW_UPDATE,
//            CONTINUATION), half-closed (remote) (DATA, HEADERS →
//            STREAM_CLOSED), closed (DATA, HEADERS after RST_STREAM and
//            after END_STREAM)
//   5.1.1    even and decreasing stream ids → PROTOCOL_ERROR
//   5.1.2    past MAX_CONCURRENT_STREAMS → REFUSED_STREAM
//   5.3.1    HEADERS/PRIORITY depending on itself → PROTOCOL_ERROR
//   5.4.1    connection error → GOAWAY then close
//   5.5      unknown extension frames: ignored; inside a block → PROTOCOL_ERROR
//   6.1      DATA: stream 0, closed stream, invalid padding
//   6.2      HEADERS: interrupted block, stream 0, invalid padding
//   6.3      PRIORITY: stream 0, length ≠ 5 (stream FRAME_SIZE_ERROR)
//   6.4      RST_STREAM: stream 0, idle stream, length ≠ 4
//   6.5      SETTINGS: ACK with payload, stream ≠ 0, length % 6 ≠ 0;
//   6.5.2    ENABLE_PUSH, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE out of range,
//            unknown setting ignored; 6.5.3 ACK sent
//   6.7      PING: ACK with the same data, ACK not answered, stream ≠ 0,
//            length ≠ 8
//   6.8      GOAWAY on a stream
//   6.9      WINDOW_UPDATE: 0 increment (connection / stream), length ≠ 4;
//   6.9.1    window of 1 → DATA of 1 octet; overflow past 2^31-1
//            (connection / stream) → FLOW_CONTROL_ERROR;
//   6.9.2    INITIAL_WINDOW_SIZE changed after HEADERS, negative windows,
//            over 2^31-1
//   6.10     CONTINUATION: several accepted; after END_HEADERS, without a
//            block, stream 0, another frame between → PROTOCOL_ERROR
//   8.1      second HEADERS without END_STREAM; 8.1.1/8.2/8.3 malformed
//            requests (upper-case names, unknown/response/duplicate/late
//            pseudo-headers, pseudo-headers in trailers, connection-specific
//            fields, TE other than trailers, empty/missing :path, missing
//            :method/:scheme, content-length mismatch) → stream
//            PROTOCOL_ERROR
//   8.4      PUSH_PROMISE from a client → PROTOCOL_ERROR
//   HPACK    (RFC 7541 §2.3.3, §4.2, §5.2, §6.1–6.3) invalid indexes, size
//            update over the limit or after a field, Huffman EOS / long or
//            non-EOS padding → COMPRESSION_ERROR
//
// Beyond h2spec: flow control both ways, response bodies of every kind,
// HEAD, trailers, 100 streams on one connection (request isolation and the
// connection's connContext values), attacks (Rapid Reset, CONTINUATION
// flood, HPACK bomb, SETTINGS/PING flood against a peer that doesn't read,
// zero-window stall, too many streams) each with a bounded cost while
// another client is served, graceful shutdown (GOAWAY 2^31-1, PING, the
// real last stream id), idle and read-header timeouts.
//
// Waits are bounded and event-driven; no sleep is an assertion; loopback only.

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import http2 from "node:http2";
import { background, cause, ContextKey, withTimeout, withValue } from "./context.ts";
import { concat, type Outcome, RawClient, testCerts } from "./_http2/_test_harness.ts";
import { h2serve, type TestServer } from "./_http2/_test_server.ts";
import { exchangeOf } from "./_exchange/exchange.ts";
import { TOO_SLOW_READER } from "./_exchange/errors.ts";
import {
  CANCEL,
  COMPRESSION_ERROR,
  CONTINUATION,
  DATA,
  ENHANCE_YOUR_CALM,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  FRAME_SIZE_ERROR,
  GOAWAY,
  HEADERS,
  NO_ERROR,
  PING,
  PRIORITY,
  PROTOCOL_ERROR,
  PUSH_PROMISE,
  readU31,
  readU32,
  REFUSED_STREAM,
  RST_STREAM,
  SETTINGS,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_HEADER_TABLE_SIZE,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  STREAM_CLOSED,
  WINDOW_UPDATE,
} from "./_http2/frame.ts";

// ------------------------------------------------------------------ helpers

function which(bin: string): boolean {
  try {
    const r = new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null" })
      .outputSync();
    return r.success;
  } catch {
    return false;
  }
}

const HAVE = {
  curl: which("curl"),
  nghttp: which("nghttp"),
  h2load: which("h2load"),
  openssl: which("openssl"),
};

/** A test that needs external programs: skipped, with a message, when one
 * is missing. */
function peerTest(name: string, needs: (keyof typeof HAVE)[], fn: () => Promise<void>): void {
  const missing = needs.filter((n) => !HAVE[n]);
  if (missing.length > 0) {
    Deno.test({ name: `${name} (SKIPPED: ${missing.join(", ")} not installed)`, fn() {} });
    console.log(`SKIP ${name}: ${missing.join(", ")} not installed`);
    return;
  }
  Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });
}

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, sanitizeResources: false, sanitizeOps: false });
}

const te = new TextEncoder();
const td = new TextDecoder();

async function run(cmd: string, args: string[], stdin?: Uint8Array) {
  const p = new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
    stdin: stdin ? "piped" : "null",
  }).spawn();
  if (stdin) {
    const w = p.stdin.getWriter();
    await w.write(stdin);
    await w.close();
  }
  const o = await p.output();
  return { code: o.code, out: td.decode(o.stdout), err: td.decode(o.stderr) };
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
}

function hex(s: string): Uint8Array {
  const c = s.replace(/\s+/g, "");
  return Uint8Array.from(
    { length: c.length / 2 },
    (_, i) => parseInt(c.slice(2 * i, 2 * i + 2), 16),
  );
}

function echo(): (req: Request) => Promise<Response> {
  return async (req) => {
    const body = req.body ? await req.text() : "";
    return new Response(`${req.method} ${new URL(req.url).pathname} ${body.length}`);
  };
}

async function withServer(
  fn: (s: TestServer) => Promise<void>,
  handler: (
    req: Request,
    info: import("./server.ts").ServeHandlerInfo,
  ) => Response | Promise<Response> = echo(),
  options: Parameters<typeof h2serve>[0] = {},
): Promise<void> {
  const s = await h2serve(options, handler);
  try {
    await fn(s);
  } finally {
    s.close();
    await s.finished;
  }
}

/** Asserts the server answered with a connection error `code`. */
function assertGoaway(o: Outcome, code: number, why = ""): void {
  assert.equal(o.kind, "goaway", `${why}: expected GOAWAY, got ${JSON.stringify(o)}`);
  if (o.kind === "goaway") assert.equal(o.code, code, `${why}: GOAWAY code ${JSON.stringify(o)}`);
}

/** Asserts the server answered with a stream error `code` on `stream`. */
function assertRst(o: Outcome, stream: number, code: number, why = ""): void {
  assert.equal(o.kind, "rst", `${why}: expected RST_STREAM, got ${JSON.stringify(o)}`);
  if (o.kind === "rst") {
    assert.equal(o.stream, stream, why);
    assert.equal(o.code, code, `${why}: RST_STREAM code ${JSON.stringify(o)}`);
  }
}

/** The connection still works: a PING is answered with the same data. */
async function assertAlive(c: RawClient, why = ""): Promise<void> {
  const data = te.encode("alive?!!");
  await c.ping(data);
  const f = await c.expect((f) =>
    f.type === PING && (f.flags & FLAG_ACK) !== 0 || f.type === GOAWAY
  );
  assert.ok(f !== null && f.type === PING, `${why}: no PING ACK (${f && f.type})`);
  assert.deepEqual(f!.payload, data);
}

/** One raw-client case on a fresh connection. */
async function rawCase(
  port: number,
  act: (c: RawClient) => Promise<void>,
  check: (o: Outcome, c: RawClient) => void | Promise<void>,
  opts: { settings?: [number, number][] } = {},
): Promise<void> {
  const c = await RawClient.connect(port, { settings: opts.settings ?? [] });
  try {
    await act(c);
    await check(await c.outcome(), c);
  } finally {
    c.close();
  }
}

// ------------------------------------------------------ frame-level cases

/** The handler of the frame-level cases. */
async function frameHandler(req: Request, info: { context: { done: Promise<void> } }) {
  const u = new URL(req.url);
  if (u.pathname === "/wait") {
    await info.context.done.catch(() => {});
    return new Response("late");
  }
  if (u.pathname === "/bytes") return new Response(new Uint8Array(Number(u.searchParams.get("n"))));
  const body = req.body ? await req.text() : "";
  return new Response(`${req.method} ${u.pathname} ${body.length}`);
}

function frameTest(name: string, fn: (port: number) => Promise<void>): void {
  test(name, () => withServer((s) => fn(s.port), frameHandler as never));
}

const WAIT: [string, string][] = [[":path", "/wait"]];
const POST: [string, string][] = [[":method", "POST"]];

frameTest("h2spec 3.5: connection preface", async (port) => {
  // Valid: the server's SETTINGS comes first, then it answers.
  const c = await RawClient.connect(port);
  await c.headers(1);
  const r = await c.response(1);
  assert.equal(r?.headers.get(":status"), "200");
  c.close();
  // Invalid preface (it starts like one): GOAWAY PROTOCOL_ERROR.
  const bad = await RawClient.connect(port, { preface: false });
  await bad.write(te.encode("PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n"));
  await bad.settings([]);
  assertGoaway(await bad.outcome(), PROTOCOL_ERROR, "invalid preface");
  bad.close();
  // The first frame must be SETTINGS.
  const noSettings = await RawClient.connect(port, { preface: false });
  await noSettings.write(concat([
    te.encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    RawClient.bytes(PING, 0, 0, new Uint8Array(8)),
  ]));
  assertGoaway(await noSettings.outcome(), PROTOCOL_ERROR, "PING before SETTINGS");
  noSettings.close();
});

frameTest(
  "h2spec 4.1: unknown type, unknown flags and the reserved bit are ignored",
  async (port) => {
    const c = await RawClient.connect(port);
    await c.frame(0x16, 0, 0, new Uint8Array(8));
    await assertAlive(c, "unknown type");
    await c.frame(PING, 0x16 & ~FLAG_ACK, 0, te.encode("flags!!!"));
    const ack = await c.expect((f) => f.type === PING);
    assert.equal(ack?.flags, FLAG_ACK);
    assert.deepEqual(ack?.payload, te.encode("flags!!!"));
    // Stream id with the reserved bit set: the bit is ignored.
    await c.frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 0x80000001, c.block());
    const r = await c.response(1);
    assert.equal(r?.headers.get(":status"), "200");
    c.close();
  },
);

frameTest("h2spec 4.2: frame size", async (port) => {
  // A DATA frame of 2^14 octets is fine.
  const c = await RawClient.connect(port);
  await c.headers(1, POST, { endStream: false });
  await c.data(1, new Uint8Array(16384), true);
  const r = await c.response(1);
  assert.equal(td.decode(r!.body), "POST / 16384");
  c.close();
  await rawCase(port, async (c) => {
    await c.headers(1, POST, { endStream: false });
    await c.data(1, new Uint8Array(16385), true);
  }, (o) => assertGoaway(o, FRAME_SIZE_ERROR, "DATA over MAX_FRAME_SIZE"));
  await rawCase(port, async (c) => {
    await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, new Uint8Array(16385).fill(0x82));
  }, (o) => assertGoaway(o, FRAME_SIZE_ERROR, "HEADERS over MAX_FRAME_SIZE"));
});

frameTest("h2spec 4.3: header compression and blocks", async (port) => {
  await rawCase(
    port,
    (c) => c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, hex("be")),
    (o) => assertGoaway(o, COMPRESSION_ERROR, "invalid block"),
  );
  await rawCase(port, async (c) => {
    const b = c.block();
    await c.frame(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 2));
    await c.frame(PRIORITY, 0, 1, hex("0000000310"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "PRIORITY inside a block"));
  await rawCase(port, async (c) => {
    const b = c.block();
    await c.frame(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 2));
    await c.frame(HEADERS, FLAG_END_STREAM | FLAG_END_HEADERS, 3, hex("828684"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "HEADERS of another stream inside a block"));
});

frameTest("h2spec 5.1: stream states", async (port) => {
  // idle
  await rawCase(
    port,
    (c) => c.data(1, te.encode("x")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "DATA on idle"),
  );
  await rawCase(
    port,
    (c) => c.rst(1, CANCEL),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "RST_STREAM on idle"),
  );
  await rawCase(
    port,
    (c) => c.windowUpdate(1, 100),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "WINDOW_UPDATE on idle"),
  );
  await rawCase(
    port,
    (c) => c.frame(CONTINUATION, FLAG_END_HEADERS, 1, hex("82")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION on idle"),
  );
  // half-closed (remote)
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.data(1, te.encode("x"));
  }, (o) => assertRst(o, 1, STREAM_CLOSED, "DATA on half-closed (remote)"));
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.headers(1, [], { base: false });
  }, (o) => assertRst(o, 1, STREAM_CLOSED, "HEADERS on half-closed (remote)"));
  // closed, by the client's RST_STREAM
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.rst(1, CANCEL);
    await c.data(1, te.encode("x"));
  }, (o) => assertRst(o, 1, STREAM_CLOSED, "DATA after RST_STREAM"));
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.rst(1, CANCEL);
    await c.headers(1);
  }, (o) => assertGoaway(o, STREAM_CLOSED, "HEADERS after RST_STREAM"));
  // closed, both ends ended
  await rawCase(port, async (c) => {
    await c.headers(1);
    await c.response(1);
    await c.data(1, te.encode("x"));
  }, (o) => assertRst(o, 1, STREAM_CLOSED, "DATA on closed"));
  await rawCase(port, async (c) => {
    await c.headers(1);
    await c.response(1);
    await c.headers(1);
  }, (o) => assertGoaway(o, STREAM_CLOSED, "HEADERS on closed"));
});

frameTest("h2spec 5.1.1, 5.1.2: stream identifiers and concurrency", async (port) => {
  await rawCase(port, (c) => c.headers(2), (o) => assertGoaway(o, PROTOCOL_ERROR, "even id"));
  await rawCase(port, async (c) => {
    await c.headers(5);
    await c.response(5);
    await c.headers(3);
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "decreasing id"));
  // SETTINGS_MAX_CONCURRENT_STREAMS is advertised (100) and enforced.
  const c = await RawClient.connect(port, { handshake: false });
  const s = await c.expect((f) => f.type === SETTINGS);
  const entries = new Map<number, number>();
  for (let i = 0; i < s!.payload.length; i += 6) {
    entries.set((s!.payload[i] << 8) | s!.payload[i + 1], readU32(s!.payload, i + 2));
  }
  assert.equal(entries.get(SETTINGS_MAX_CONCURRENT_STREAMS), 100);
  assert.equal(entries.get(SETTINGS_ENABLE_PUSH), 0);
  const batch: Uint8Array[] = [];
  for (let id = 1; id <= 201; id += 2) {
    batch.push(RawClient.bytes(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block(WAIT)));
  }
  await c.write(concat(batch));
  assertRst(await c.outcome(), 201, REFUSED_STREAM, "101st stream");
  await assertAlive(c);
  c.close();
});

frameTest("h2spec 5.3.1, 5.4.1, 5.5: dependencies, connection errors, extensions", async (port) => {
  await rawCase(port, async (c) => {
    const p = concat([hex("00000001 10"), c.block()]);
    await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM | FLAG_PRIORITY, 1, p);
  }, (o) => assertRst(o, 1, PROTOCOL_ERROR, "HEADERS depends on itself"));
  await rawCase(
    port,
    (c) => c.frame(PRIORITY, 0, 1, hex("0000000110")),
    (o) => assertRst(o, 1, PROTOCOL_ERROR, "PRIORITY depends on itself"),
  );
  // A connection error: GOAWAY, then the connection closes.
  const c = await RawClient.connect(port);
  await c.frame(PING, 0, 0, new Uint8Array(6));
  assertGoaway(await c.outcome(), FRAME_SIZE_ERROR, "invalid PING");
  assert.equal(await c.next(), null);
  assert.ok(c.eof, "closed after GOAWAY");
  c.close();
  // Unknown extension frames: ignored, except inside a header block.
  await rawCase(port, async (c) => {
    await c.frame(0xff, 0, 0, te.encode("extension"));
    await assertAlive(c);
    await c.frame(HEADERS, FLAG_END_STREAM, 1, c.block().subarray(0, 2));
    await c.frame(0xff, 0, 1, te.encode("extension"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "extension frame inside a block"));
  // PRIORITY on any stream is accepted and ignored.
  const p = await RawClient.connect(port);
  await p.frame(PRIORITY, 0, 9, hex("0000000310"));
  await p.headers(1);
  assert.equal((await p.response(1))?.headers.get(":status"), "200");
  await assertAlive(p);
  p.close();
});

frameTest("h2spec 6.1, 6.2: DATA and HEADERS", async (port) => {
  await rawCase(
    port,
    (c) => c.data(0, te.encode("x")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "DATA on stream 0"),
  );
  await rawCase(port, async (c) => {
    await c.headers(1, POST, { endStream: false });
    await c.frame(DATA, FLAG_PADDED | FLAG_END_STREAM, 1, hex("06 6161616161"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "DATA padding too long"));
  // Padding is stripped, and counted against flow control.
  const c = await RawClient.connect(port);
  await c.headers(1, POST, { endStream: false });
  await c.frame(DATA, FLAG_PADDED | FLAG_END_STREAM, 1, hex("03 616161 000000"));
  assert.equal(td.decode((await c.response(1))!.body), "POST / 3");
  c.close();
  await rawCase(
    port,
    (c) => c.frame(HEADERS, FLAG_END_HEADERS, 0, hex("828684")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "HEADERS on stream 0"),
  );
  await rawCase(port, async (c) => {
    const b = c.block();
    await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_PADDED, 1, concat([u8(b.length + 1), b]));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "HEADERS padding too long"));
  // Padded HEADERS with priority fields is fine.
  const d = await RawClient.connect(port);
  const b = d.block();
  await d.frame(
    HEADERS,
    FLAG_END_HEADERS | FLAG_END_STREAM | FLAG_PADDED | FLAG_PRIORITY,
    1,
    concat([u8(2), hex("00000000 10"), b, u8(0, 0)]),
  );
  assert.equal((await d.response(1))?.headers.get(":status"), "200");
  d.close();
});

function u8(...xs: number[]): Uint8Array {
  return Uint8Array.from(xs);
}

frameTest("h2spec 6.3, 6.4: PRIORITY and RST_STREAM", async (port) => {
  await rawCase(
    port,
    (c) => c.frame(PRIORITY, 0, 0, hex("0000000110")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "PRIORITY on stream 0"),
  );
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.frame(PRIORITY, 0, 1, hex("00000003"));
  }, (o) => assertRst(o, 1, FRAME_SIZE_ERROR, "PRIORITY length 4"));
  await rawCase(
    port,
    (c) => c.frame(RST_STREAM, 0, 0, u32(CANCEL)),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "RST_STREAM on stream 0"),
  );
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.frame(RST_STREAM, 0, 1, hex("000000"));
  }, (o) => assertGoaway(o, FRAME_SIZE_ERROR, "RST_STREAM length 3"));
});

frameTest("h2spec 6.5: SETTINGS", async (port) => {
  await rawCase(
    port,
    (c) => c.frame(SETTINGS, FLAG_ACK, 0, hex("000100001000")),
    (o) => assertGoaway(o, FRAME_SIZE_ERROR, "ACK with payload"),
  );
  await rawCase(
    port,
    (c) => c.frame(SETTINGS, 0, 1, hex("000100001000")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "SETTINGS on a stream"),
  );
  await rawCase(
    port,
    (c) => c.frame(SETTINGS, 0, 0, hex("000100")),
    (o) => assertGoaway(o, FRAME_SIZE_ERROR, "length 3"),
  );
  await rawCase(
    port,
    (c) => c.settings([[SETTINGS_ENABLE_PUSH, 2]]),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "ENABLE_PUSH 2"),
  );
  await rawCase(
    port,
    (c) => c.settings([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31]]),
    (o) => assertGoaway(o, FLOW_CONTROL_ERROR, "INITIAL_WINDOW_SIZE 2^31"),
  );
  await rawCase(
    port,
    (c) => c.settings([[SETTINGS_MAX_FRAME_SIZE, 16383]]),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "MAX_FRAME_SIZE 16383"),
  );
  await rawCase(
    port,
    (c) => c.settings([[SETTINGS_MAX_FRAME_SIZE, 2 ** 24]]),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "MAX_FRAME_SIZE 2^24"),
  );
  // Unknown settings are ignored, and every SETTINGS is acknowledged.
  const c = await RawClient.connect(port);
  await c.settings([[0xff, 1], [SETTINGS_HEADER_TABLE_SIZE, 0]]);
  const ack = await c.expect((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) !== 0);
  assert.equal(ack?.payload.length, 0);
  // With a table size of 0 the server's encoder signals the change and
  // stops indexing: the client's decoder (also at 0) still reads it.
  c.dec.decode(hex("20"));
  await c.headers(1);
  assert.equal((await c.response(1))?.headers.get(":status"), "200");
  await c.headers(3);
  assert.equal((await c.response(3))?.headers.get(":status"), "200");
  await assertAlive(c);
  c.close();
});

frameTest("h2spec 6.7, 6.8: PING and GOAWAY", async (port) => {
  const c = await RawClient.connect(port);
  // An ACK is not answered; the next PING is.
  await c.frame(PING, FLAG_ACK, 0, te.encode("ack-ack!"));
  await assertAlive(c);
  assert.equal(c.frames.filter((f) => f.type === PING).length, 1);
  c.close();
  await rawCase(
    port,
    (c) => c.frame(PING, 0, 1, new Uint8Array(8)),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "PING on a stream"),
  );
  await rawCase(
    port,
    (c) => c.frame(PING, 0, 0, new Uint8Array(9)),
    (o) => assertGoaway(o, FRAME_SIZE_ERROR, "PING length 9"),
  );
  await rawCase(
    port,
    (c) => c.frame(GOAWAY, 0, 1, new Uint8Array(8)),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "GOAWAY on a stream"),
  );
});

frameTest("h2spec 6.9: WINDOW_UPDATE", async (port) => {
  await rawCase(
    port,
    (c) => c.windowUpdate(0, 0),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "0 on the connection"),
  );
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.windowUpdate(1, 0);
  }, (o) => assertRst(o, 1, PROTOCOL_ERROR, "0 on a stream"));
  await rawCase(
    port,
    (c) => c.frame(WINDOW_UPDATE, 0, 0, hex("000001")),
    (o) => assertGoaway(o, FRAME_SIZE_ERROR, "length 3"),
  );
  // 6.9.1: a window of 1 → DATA of 1 octet.
  const w = await RawClient.connect(port, { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 1]] });
  await w.headers(1, [[":path", "/bytes?n=100"]]);
  assert.equal((await w.expect((f) => f.type === DATA))?.payload.length, 1);
  await assertAlive(w);
  assert.equal(w.frames.filter((f) => f.type === DATA).length, 1, "no more than the window");
  w.close();
  await rawCase(port, async (c) => {
    await c.windowUpdate(0, 2 ** 31 - 1);
    await c.windowUpdate(0, 2 ** 31 - 1);
  }, (o) => assertGoaway(o, FLOW_CONTROL_ERROR, "connection window over 2^31-1"));
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.windowUpdate(1, 2 ** 31 - 1);
    await c.windowUpdate(1, 2 ** 31 - 1);
  }, (o) => assertRst(o, 1, FLOW_CONTROL_ERROR, "stream window over 2^31-1"));
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.settings([[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]]);
    await c.windowUpdate(1, 2 ** 31 - 1);
  }, (o) => assertRst(o, 1, FLOW_CONTROL_ERROR, "stream window via SETTINGS"));
});

frameTest("h2spec 6.9.2: initial window changes, negative windows", async (port) => {
  // INITIAL_WINDOW_SIZE changed after HEADERS: the open stream's window moves.
  const c = await RawClient.connect(port, { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 0]] });
  await c.headers(1, [[":path", "/bytes?n=10"]]);
  await c.ping();
  await c.expect((f) => f.type === PING); // nothing before: no window
  assert.equal(c.frames.filter((f) => f.type === DATA).length, 0);
  await c.settings([[SETTINGS_INITIAL_WINDOW_SIZE, 10]]);
  const d = await c.expect((f) => f.type === DATA);
  assert.equal(d?.payload.length, 10);
  c.close();
  // Negative: window 3, 3 octets sent, window lowered to 2 (-1), +2 → 1 octet.
  const n = await RawClient.connect(port, { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 3]] });
  await n.headers(1, [[":path", "/bytes?n=10"]]);
  assert.equal((await n.expect((f) => f.type === DATA))?.payload.length, 3);
  await n.settings([[SETTINGS_INITIAL_WINDOW_SIZE, 2]]);
  await n.expect((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) !== 0);
  await n.windowUpdate(1, 2);
  assert.equal((await n.expect((f) => f.type === DATA))?.payload.length, 1);
  n.close();
});

frameTest("h2spec 6.10: CONTINUATION", async (port) => {
  // Several CONTINUATION frames make one block.
  const c = await RawClient.connect(port);
  const b = c.block([["x-long", "v".repeat(100)]]);
  await c.write(concat([
    RawClient.bytes(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 10)),
    RawClient.bytes(CONTINUATION, 0, 1, b.subarray(10, 20)),
    RawClient.bytes(CONTINUATION, FLAG_END_HEADERS, 1, b.subarray(20)),
  ]));
  assert.equal((await c.response(1))?.headers.get(":status"), "200");
  c.close();
  await rawCase(port, async (c) => {
    const b = c.block();
    await c.frame(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 2));
    await c.frame(CONTINUATION, 0, 1, b.subarray(2, 3));
    await c.data(1, te.encode("x"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION then DATA"));
  await rawCase(port, async (c) => {
    const b = c.block();
    await c.frame(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 2));
    await c.frame(CONTINUATION, FLAG_END_HEADERS, 0, b.subarray(2));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION on stream 0"));
  await rawCase(port, async (c) => {
    await c.headers(1, WAIT);
    await c.frame(CONTINUATION, FLAG_END_HEADERS, 1, hex("82"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION after END_HEADERS"));
  await rawCase(port, async (c) => {
    const b = c.block(WAIT);
    await c.frame(HEADERS, FLAG_END_STREAM, 1, b.subarray(0, 2));
    await c.frame(CONTINUATION, FLAG_END_HEADERS, 1, b.subarray(2));
    await c.frame(CONTINUATION, FLAG_END_HEADERS, 1, hex("82"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION after CONTINUATION with END_HEADERS"));
  await rawCase(port, async (c) => {
    await c.headers(1, POST, { endStream: false });
    await c.data(1, te.encode("x"));
    await c.frame(CONTINUATION, FLAG_END_HEADERS, 1, hex("82"));
  }, (o) => assertGoaway(o, PROTOCOL_ERROR, "CONTINUATION after DATA"));
});

frameTest("h2spec 8.1: malformed requests are stream errors", async (port) => {
  const base: [string, string][] = [
    [":method", "GET"],
    [":scheme", "http"],
    [":path", "/"],
    [":authority", "localhost"],
  ];
  const cases: [string, [string, string][]][] = [
    ["upper-case name", [...base, ["X-Upper", "1"]]],
    ["unknown pseudo-header", [...base, [":foo", "1"]]],
    ["response pseudo-header", [...base, [":status", "200"]]],
    ["duplicate :method", [...base.slice(0, 1), ...base]],
    ["duplicate :path", [...base, [":path", "/"]]],
    ["duplicate :scheme", [[":scheme", "http"], ...base]],
    ["pseudo-header after a field", [...base.slice(0, 3), ["x", "1"], base[3]]],
    ["connection", [...base, ["connection", "keep-alive"]]],
    ["keep-alive", [...base, ["keep-alive", "1"]]],
    ["proxy-connection", [...base, ["proxy-connection", "x"]]],
    ["transfer-encoding", [...base, ["transfer-encoding", "chunked"]]],
    ["upgrade", [...base, ["upgrade", "h2c"]]],
    ["te: gzip", [...base, ["te", "gzip"]]],
    ["empty :path", [base[0], base[1], [":path", ""], base[3]]],
    ["no :method", base.slice(1)],
    ["no :scheme", [base[0], base[2], base[3]]],
    ["no :path", [base[0], base[1], base[3]]],
    ["value with LF", [...base, ["x", "a\nb"]]],
    ["value with leading space", [...base, ["x", " a"]]],
    ["host differs from :authority", [...base, ["host", "elsewhere"]]],
    ["CONNECT with :path", [[":method", "CONNECT"], [":authority", "a:443"], [":path", "/"]]],
  ];
  const c = await RawClient.connect(port);
  let id = 1;
  for (const [why, fields] of cases) {
    await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block(fields, false));
    assertRst(await c.outcome(), id, PROTOCOL_ERROR, why);
    id += 2;
  }
  // te: trailers is fine.
  await c.headers(id, [["te", "trailers"]]);
  assert.equal((await c.response(id))?.headers.get(":status"), "200");
  id += 2;
  // A second HEADERS without END_STREAM.
  await c.headers(id, POST, { endStream: false });
  await c.frame(HEADERS, FLAG_END_HEADERS, id, c.block([["x-trailer", "1"]], false));
  assertRst(await c.outcome(), id, PROTOCOL_ERROR, "trailers without END_STREAM");
  id += 2;
  // Pseudo-headers in trailers.
  await c.headers(id, POST, { endStream: false });
  await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block([[":path", "/"]], false));
  assertRst(await c.outcome(), id, PROTOCOL_ERROR, "pseudo-header in trailers");
  id += 2;
  // Trailers are accepted.
  await c.headers(id, POST, { endStream: false });
  await c.data(id, te.encode("abc"));
  await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block([["x-sum", "1"]], false));
  assert.equal(td.decode((await c.response(id))!.body), "POST / 3");
  id += 2;
  // content-length: more DATA, less DATA, DATA without a body allowed.
  await c.headers(id, [...POST, ["content-length", "1"]], { endStream: false });
  await c.data(id, te.encode("ab"), true);
  assertRst(await c.outcome(), id, PROTOCOL_ERROR, "more DATA than content-length");
  id += 2;
  await c.headers(id, [...POST, ["content-length", "3"]], { endStream: false });
  await c.data(id, te.encode("a"), true);
  assertRst(await c.outcome(), id, PROTOCOL_ERROR, "less DATA than content-length");
  id += 2;
  await c.headers(id, [...POST, ["content-length", "3"]]);
  assertRst(await c.outcome(), id, PROTOCOL_ERROR, "content-length, END_STREAM on HEADERS");
  id += 2;
  await c.headers(id, [...POST, ["content-length", "3"]], { endStream: false });
  await c.data(id, te.encode("abc"), true);
  assert.equal(td.decode((await c.response(id))!.body), "POST / 3");
  await assertAlive(c);
  c.close();
});

frameTest("h2spec 8.4 and HPACK: PUSH_PROMISE, compression errors", async (port) => {
  await rawCase(
    port,
    (c) => c.frame(PUSH_PROMISE, FLAG_END_HEADERS, 1, hex("00000002 82")),
    (o) => assertGoaway(o, PROTOCOL_ERROR, "PUSH_PROMISE from a client"),
  );
  const blocks: [string, string][] = [
    ["828684be", "indexed field past the table"],
    ["8286847e0161", "literal with incremental indexing, name past the table"],
    ["3fe21f828684", "size update over SETTINGS_HEADER_TABLE_SIZE"],
    ["8286843fe11f", "size update after a field"],
    ["82868441" + "8b" + "f1e3c2e5f23a6ba0ab90f4" + "ff", "Huffman padding of 8 bits"],
    ["82868441" + "8c" + "f1e3c2e5f23a6ba0ab90f4" + "fe", "Huffman padding not EOS"],
    ["828684" + "4184ffffffff", "Huffman EOS"],
  ];
  for (const [b, why] of blocks) {
    await rawCase(
      port,
      (c) => c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 1, hex(b)),
      (o) => assertGoaway(o, COMPRESSION_ERROR, why),
    );
  }
});

// ------------------------------------------------------------ real peers

/** node:http2 request helper: status, headers and body. */
function nodeRequest(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Uint8Array | string,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    const chunks: Buffer[] = [];
    let h: http2.IncomingHttpHeaders = {};
    req.on("response", (r) => (h = r));
    req.on("data", (d: Buffer) => chunks.push(d));
    req.on(
      "end",
      () => resolve({ status: Number(h[":status"]), headers: h, body: Buffer.concat(chunks) }),
    );
    req.on("error", reject);
    if (body !== undefined) req.end(body);
    else req.end();
  });
}

function connectNode(url: string, ca?: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(url, ca ? { ca } : {});
    s.once("connect", () => resolve(s));
    s.once("error", reject);
  });
}

function closeNode(s: http2.ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/** A handler that shows what it received. */
const describe = async (req: Request, info: import("./server.ts").ServeHandlerInfo) => {
  const u = new URL(req.url);
  if (u.pathname === "/big") return new Response(new Uint8Array(1 << 20).fill(7));
  if (u.pathname === "/stream") {
    let i = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(c) {
          if (i++ < 5) c.enqueue(te.encode(`chunk${i};`));
          else c.close();
        },
      }),
      { headers: { "x-kind": "stream" } },
    );
  }
  const body = req.body ? new Uint8Array(await req.arrayBuffer()) : null;
  return Response.json({
    method: req.method,
    url: req.url,
    cookie: req.headers.get("cookie"),
    host: req.headers.get("host"),
    bodyLength: body?.length ?? null,
    alpn: info.conn.tls?.alpnProtocol ?? null,
  }, { headers: { "set-cookie": "a=1", "x-multi": "v" } });
};

test("node:http2 h2c (prior knowledge): requests, bodies, streams, cookies", async () => {
  await withServer(async (s) => {
    const session = await connectNode(`http://127.0.0.1:${s.port}`);
    try {
      const get = await nodeRequest(session, { ":path": "/a?b=c", cookie: ["x=1", "y=2"] });
      assert.equal(get.status, 200);
      const j = JSON.parse(get.body.toString());
      assert.equal(j.url, `http://127.0.0.1:${s.port}/a?b=c`);
      assert.equal(j.method, "GET");
      assert.equal(j.cookie, "x=1; y=2");
      assert.equal(j.host, `127.0.0.1:${s.port}`);
      assert.equal(j.bodyLength, null);
      assert.deepEqual(get.headers["set-cookie"], ["a=1"]);
      assert.equal(get.headers["content-type"], "application/json");
      assert.ok(get.headers["date"]);
      const post = await nodeRequest(
        session,
        { ":path": "/p", ":method": "POST" },
        new Uint8Array(300_000),
      );
      assert.equal(JSON.parse(post.body.toString()).bodyLength, 300_000);
      const big = await nodeRequest(session, { ":path": "/big" });
      assert.equal(big.body.length, 1 << 20);
      assert.equal(big.headers["content-length"], String(1 << 20));
      const st = await nodeRequest(session, { ":path": "/stream" });
      assert.equal(st.body.toString(), "chunk1;chunk2;chunk3;chunk4;chunk5;");
      assert.equal(st.headers["content-length"], undefined);
      const head = await nodeRequest(session, { ":path": "/big", ":method": "HEAD" });
      assert.equal(head.body.length, 0);
      assert.equal(head.headers["content-length"], String(1 << 20));
      // Many at once on one connection.
      const all = await Promise.all(
        Array.from({ length: 50 }, (_, i) => nodeRequest(session, { ":path": `/n${i}` })),
      );
      all.forEach((r, i) =>
        assert.equal(JSON.parse(r.body.toString()).url.endsWith(`/n${i}`), true)
      );
    } finally {
      await closeNode(session);
    }
  }, describe);
});

peerTest("node:http2 over TLS (ALPN h2)", ["openssl"], async () => {
  const tls = (await testCerts())!;
  await withServer(
    async (s) => {
      const session = await connectNode(`https://localhost:${s.port}`, tls.ca);
      try {
        assert.equal(session.alpnProtocol, "h2");
        const r = await nodeRequest(session, { ":path": "/x" });
        const j = JSON.parse(r.body.toString());
        assert.equal(j.url, `https://localhost:${s.port}/x`);
        assert.equal(j.alpn, "h2");
        const big = await nodeRequest(session, { ":path": "/big" });
        assert.equal(big.body.length, 1 << 20);
      } finally {
        await closeNode(session);
      }
    },
    describe,
    { cert: tls.cert, key: tls.key },
  );
});

peerTest("Deno fetch over TLS negotiates h2", ["openssl"], async () => {
  const tls = (await testCerts())!;
  await withServer(
    async (s) => {
      const client = Deno.createHttpClient({ caCerts: [tls.ca] });
      try {
        const r = await fetch(`https://localhost:${s.port}/f?q=1`, {
          client,
          method: "POST",
          body: "hello",
        });
        const j = await r.json();
        assert.equal(j.alpn, "h2");
        assert.equal(j.bodyLength, 5);
        assert.equal(j.url, `https://localhost:${s.port}/f?q=1`);
        const big = await fetch(`https://localhost:${s.port}/big`, { client });
        assert.equal((await big.bytes()).length, 1 << 20);
        // A streamed upload.
        const up = await fetch(`https://localhost:${s.port}/up`, {
          client,
          method: "PUT",
          body: new Blob([new Uint8Array(500_000)]).stream(),
        });
        assert.equal((await up.json()).bodyLength, 500_000);
      } finally {
        client.close();
      }
    },
    describe,
    { cert: tls.cert, key: tls.key },
  );
});

peerTest(
  "curl --http2 --cacert (TLS) and --http2-prior-knowledge (h2c)",
  ["curl", "openssl"],
  async () => {
    const tls = (await testCerts())!;
    const dir = await Deno.makeTempDir();
    const ca = `${dir}/ca.pem`;
    await Deno.writeTextFile(ca, tls.ca);
    try {
      await withServer(
        async (s) => {
          const r = await run("curl", [
            "-sS",
            "--http2",
            "--cacert",
            ca,
            "-w",
            "\n%{http_version}",
            "-d",
            "abc",
            `https://localhost:${s.port}/c`,
          ]);
          assert.equal(r.code, 0, r.err);
          const [body, version] = r.out.split("\n");
          assert.equal(version, "2");
          assert.equal(JSON.parse(body).bodyLength, 3);
        },
        describe,
        { cert: tls.cert, key: tls.key },
      );
      await withServer(async (s) => {
        const r = await run("curl", [
          "-sS",
          "--http2-prior-knowledge",
          "-o",
          "/dev/null",
          "-w",
          "%{http_version} %{size_download} %{response_code}",
          `http://127.0.0.1:${s.port}/big`,
        ]);
        assert.equal(r.code, 0, r.err);
        assert.equal(r.out, `2 ${1 << 20} 200`);
        // Upgrade: h2c is not supported: served as HTTP/1.1.
        const u = await run("curl", [
          "-sS",
          "--http2",
          "-w",
          "\n%{http_version}",
          `http://127.0.0.1:${s.port}/u`,
        ]);
        assert.equal(u.code, 0, u.err);
        assert.equal(u.out.split("\n")[1], "1.1");
      }, describe);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);

peerTest("nghttp: h2c and TLS, with small windows", ["nghttp", "openssl"], async () => {
  const tls = (await testCerts())!;
  for (const secure of [false, true]) {
    await withServer(
      async (s) => {
        const url = `${secure ? "https://localhost" : "http://127.0.0.1"}:${s.port}`;
        // -w 16: a 64 KiB stream window: 1 MiB needs 16 WINDOW_UPDATEs.
        const r = await run("nghttp", [
          "-n",
          "-s",
          "-w",
          "16",
          `${url}/big`,
          `${url}/stream`,
          `${url}/x`,
        ]);
        assert.equal(r.code, 0, r.err + r.out);
        assert.match(r.out, /200\s+1M \/big/);
        assert.match(r.out, /200\s+\d+ \/stream/);
        // The frames nghttp saw: our SETTINGS.
        const v = await run("nghttp", ["-v", "-n", `${url}/x`]);
        assert.match(v.out, /recv SETTINGS frame/);
        assert.match(v.out, /SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):100/);
        assert.match(v.out, /SETTINGS_ENABLE_PUSH\(0x02\):0/);
      },
      describe,
      secure ? { cert: tls.cert, key: tls.key } : {},
    );
  }
});

peerTest(
  "h2load smoke: 10 connections × 10 streams, h2c and TLS",
  ["h2load", "openssl"],
  async () => {
    const tls = (await testCerts())!;
    for (const secure of [false, true]) {
      await withServer(
        async (s) => {
          const url = `${secure ? "https://localhost" : "http://127.0.0.1"}:${s.port}/x`;
          const r = await run("h2load", ["-n", "2000", "-c", "10", "-m", "10", url]);
          assert.equal(r.code, 0, r.err);
          assert.match(
            r.out,
            /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed/,
          );
          assert.match(r.out, /status codes: 2000 2xx/);
        },
        () => new Response("hello"),
        secure ? { cert: tls.cert, key: tls.key } : {},
      );
    }
  },
);

// ------------------------------------------------------------ flow control

test("flow control out: a 1 MiB response to a 64 KiB window waits for WINDOW_UPDATE", async () => {
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    await c.headers(1, [[":path", "/bytes?n=1048576"]]);
    let got = 0;
    while (got < 65535) {
      const f = await c.expect((f) => f.type === DATA);
      assert.ok(f !== null, "DATA within the window");
      got += f!.payload.length;
    }
    assert.equal(got, 65535, "exactly the initial window");
    // The server has sent everything it may; a PING round trip shows no more.
    await assertAlive(c);
    assert.equal(
      c.frames.filter((f) => f.type === DATA).reduce((n, f) => n + f.payload.length, 0),
      65535,
    );
    await c.windowUpdate(0, 1 << 20);
    await c.windowUpdate(1, 1 << 20);
    for (;;) {
      const f = await c.expect((f) => f.type === DATA);
      assert.ok(f !== null);
      got += f!.payload.length;
      assert.ok(f!.payload.length <= 16384, "frames within SETTINGS_MAX_FRAME_SIZE");
      if (f!.flags & FLAG_END_STREAM) break;
    }
    assert.equal(got, 1 << 20);
    c.close();
  }, frameHandler as never);
});

test("flow control in: window is granted only as the handler reads its body", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let read = 0;
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port, { handshake: false });
    const settings = await c.expect((f) => f.type === SETTINGS);
    let window = 0;
    for (let i = 0; i < settings!.payload.length; i += 6) {
      if (
        ((settings!.payload[i] << 8) | settings!.payload[i + 1]) === SETTINGS_INITIAL_WINDOW_SIZE
      ) {
        window = readU32(settings!.payload, i + 2);
      }
    }
    assert.equal(window, 256 * 1024, "advertised INITIAL_WINDOW_SIZE");
    await c.frame(SETTINGS, FLAG_ACK, 0, new Uint8Array(0));
    await c.headers(1, [...POST, [":path", "/slow"]], { endStream: false });
    // Fill the stream's window exactly: the handler reads nothing yet.
    for (let sent = 0; sent < window; sent += 16384) await c.data(1, new Uint8Array(16384));
    await assertAlive(c);
    const updates = () => c.frames.filter((f) => f.type === WINDOW_UPDATE && f.stream === 1);
    assert.equal(updates().length, 0, "no stream window while the handler doesn't read");
    // One octet more is a flow-control error on the stream.
    const d = await RawClient.connect(s.port);
    await d.headers(1, [...POST, [":path", "/slow"]], { endStream: false });
    const batch: Uint8Array[] = [];
    for (let sent = 0; sent <= window; sent += 16384) {
      batch.push(
        RawClient.bytes(
          DATA,
          0,
          1,
          new Uint8Array(sent + 16384 > window ? 1 + window - sent : 16384),
        ),
      );
    }
    await d.write(concat(batch));
    assertRst(await d.outcome(), 1, FLOW_CONTROL_ERROR, "past the stream window");
    d.close();
    // The handler reads: window comes back, the rest of the body flows.
    release();
    await c.expect((f) => f.type === WINDOW_UPDATE && f.stream === 1);
    await c.data(1, new Uint8Array(1000), true);
    const r = await c.response(1);
    assert.equal(td.decode(r!.body), String(window + 1000));
    c.close();
  }, async (req) => {
    await gate;
    const reader = req.body!.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      read += r.value.length;
    }
    return new Response(String(read));
  });
});

test("maxBodyBytes: content-length over it is 413 before the handler; a longer body is 413", async () => {
  let calls = 0;
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    await c.headers(1, [...POST, ["content-length", "2000"]], { endStream: false });
    const r = await c.response(1);
    assert.equal(r?.headers.get(":status"), "413");
    assert.equal(calls, 0);
    await c.headers(3, POST, { endStream: false });
    await c.data(3, new Uint8Array(1500), true);
    const r3 = await c.response(3);
    assert.equal(r3?.headers.get(":status"), "413");
    await assertAlive(c);
    c.close();
  }, async (req) => {
    calls++;
    await req.arrayBuffer();
    return new Response("read");
  }, { maxBodyBytes: 1000 });
});

// ------------------------------------------------------ responses, context

test("responses: HEAD, 204, 304, streams, whole bodies, header hygiene, duplex, upgrades", async () => {
  let tookOver = false;
  await withServer(async (s) => {
    const session = await connectNode(`http://127.0.0.1:${s.port}`);
    try {
      const head = await nodeRequest(session, { ":path": "/text", ":method": "HEAD" });
      assert.equal(head.body.length, 0);
      assert.equal(head.headers["content-length"], "5");
      const headStream = await nodeRequest(session, { ":path": "/stream", ":method": "HEAD" });
      assert.equal(headStream.body.length, 0);
      assert.equal(headStream.headers["content-length"], undefined);
      const nc = await nodeRequest(session, { ":path": "/204" });
      assert.equal(nc.status, 204);
      assert.equal(nc.headers["content-length"], undefined);
      const nm = await nodeRequest(session, { ":path": "/304" });
      assert.equal(nm.status, 304);
      assert.equal(nm.body.length, 0);
      const hop = await nodeRequest(session, { ":path": "/hop" });
      assert.equal(hop.headers["connection"], undefined);
      assert.equal(hop.headers["keep-alive"], undefined);
      assert.equal(hop.headers["transfer-encoding"], undefined);
      assert.equal(hop.headers["x-kept"], "yes");
      assert.equal(hop.body.toString(), "hop");
      const empty = await nodeRequest(session, { ":path": "/empty" });
      assert.equal(empty.headers["content-length"], "0");
      const bytes = await nodeRequest(session, { ":path": "/bytes" });
      assert.deepEqual([...bytes.body], [1, 2, 3]);
      const utf = await nodeRequest(session, { ":path": "/utf8" });
      assert.equal(utf.body.toString(), "héllo ✓");
      assert.equal(utf.headers["content-length"], String(te.encode("héllo ✓").length));
      const err = await nodeRequest(session, { ":path": "/throw" });
      assert.equal(err.status, 500);
      const st = await nodeRequest(session, { ":path": "/stream" });
      assert.equal(st.body.toString(), "abc");
      // Full duplex: the request body is the response body.
      const big = new Uint8Array(3 << 20).map((_, i) => i % 251);
      const echoed = await nodeRequest(session, { ":path": "/echo", ":method": "POST" }, big);
      assert.equal(echoed.body.length, big.length);
      assert.ok(echoed.body.equals(Buffer.from(big)), "echoed bytes");
      // An upgrade has no HTTP/2 form: 501, and the takeover never runs.
      const up = await nodeRequest(session, { ":path": "/upgrade" });
      assert.equal(up.status, 501);
      assert.equal(tookOver, false);
    } finally {
      await closeNode(session);
    }
  }, (req) => {
    const p = new URL(req.url).pathname;
    switch (p) {
      case "/text":
        return new Response("hello");
      case "/204":
        return new Response(null, { status: 204 });
      case "/304":
        return new Response(null, { status: 304 });
      case "/hop":
        return new Response("hop", {
          headers: {
            connection: "close",
            "keep-alive": "5",
            "transfer-encoding": "x",
            "x-kept": "yes",
          },
        });
      case "/empty":
        return new Response("");
      case "/bytes":
        return new Response(new Uint8Array([1, 2, 3]));
      case "/utf8":
        return new Response("héllo ✓");
      case "/throw":
        throw new Error("handler failure (expected by the test)");
      case "/echo":
        return new Response(req.body);
      case "/upgrade":
        exchangeOf(req)!.takeover = () => (tookOver = true);
        return new Response(null);
      default:
        return new Response(
          new ReadableStream({
            start(c) {
              c.enqueue(te.encode("a"));
              c.enqueue(te.encode("bc"));
              c.close();
            },
          }),
        );
    }
  }, { onError: () => new Response("oops", { status: 500 }) });
  assert.equal(tookOver, false);
});

test("100 streams on one connection: own request values, the connection's connContext values", async () => {
  const CONN = new ContextKey<string>("conn tag");
  let connContextCalls = 0;
  const contexts: import("./context.ts").Context[] = [];
  const states: string[] = [];
  await withServer(async (s) => {
    const session = await connectNode(`http://127.0.0.1:${s.port}`);
    const rs = await Promise.all(
      Array.from(
        { length: 100 },
        (_, i) =>
          nodeRequest(
            session,
            { ":path": `/r/${i}`, "x-i": String(i), ":method": "POST" },
            "b".repeat(i),
          ),
      ),
    );
    rs.forEach((r, i) => {
      const j = JSON.parse(r.body.toString());
      assert.equal(j.path, `/r/${i}`);
      assert.equal(j.xi, String(i));
      assert.equal(j.body, i);
      assert.equal(j.tag, "conn-1");
      assert.equal(j.stream, true);
    });
    assert.equal(connContextCalls, 1, "connContext runs once per connection");
    // Every request context ended with its response; the connection's lives on.
    assert.equal(contexts.length, 100);
    await Promise.all(contexts.map((c) => c.done));
    const connCtx = contexts.map((c) => c.value(CONN));
    assert.ok(connCtx.every((v) => v === "conn-1"));
    await closeNode(session);
  }, async (req, info) => {
    contexts.push(info.context);
    const body = await req.text();
    // The request context is not the connection's, nor another stream's.
    return Response.json({
      path: new URL(req.url).pathname,
      xi: req.headers.get("x-i"),
      body: body.length,
      tag: info.context.value(CONN),
      stream: info.context.err === undefined,
    });
  }, {
    connContext: (ctx) => withValue(ctx, CONN, `conn-${++connContextCalls}`),
    connState: (_c, st) => states.push(st),
  });
  assert.equal(states[0], "new");
  assert.ok(states.includes("active"));
  assert.equal(states.at(-1), "closed");
});

test("a stream's context is canceled by RST_STREAM; others go on", async () => {
  let canceled!: (why: unknown) => void;
  const seen = new Promise<unknown>((r) => (canceled = r));
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    await c.headers(1, [[":path", "/hang"]]);
    await c.headers(3, [[":path", "/quick"]]);
    assert.equal(td.decode((await c.response(3))!.body), "quick");
    await c.rst(1, CANCEL);
    const why = await seen;
    assert.match(String(why), /reset by the client/);
    await c.headers(5, [[":path", "/quick"]]);
    assert.equal(td.decode((await c.response(5))!.body), "quick");
    c.close();
  }, async (req, info) => {
    if (new URL(req.url).pathname === "/hang") {
      await info.context.done;
      canceled(cause(info.context));
      return new Response("never sent");
    }
    return new Response("quick");
  });
});

// ------------------------------------------------------------------ attacks

/** Counts handlers in flight; `idle()` settles when none is. */
class Gauge {
  n = 0;
  max = 0;
  total = 0;
  #waiters: (() => void)[] = [];
  enter(): void {
    this.n++;
    this.total++;
    if (this.n > this.max) this.max = this.n;
  }
  leave(): void {
    if (--this.n === 0) { for (const w of this.#waiters.splice(0)) w(); }
  }
  idle(): Promise<void> {
    return this.n === 0 ? Promise.resolve() : new Promise((r) => this.#waiters.push(r));
  }
}

/** A handler that holds each request until its context ends, except
 * `/ok`, which answers at once. */
function holding(g: Gauge) {
  return async (req: Request, info: import("./server.ts").ServeHandlerInfo) => {
    if (new URL(req.url).pathname === "/ok") return new Response("ok");
    g.enter();
    try {
      await info.context.done;
      return new Response("late");
    } finally {
      g.leave();
    }
  };
}

/** Another client, on its own connection, is served. */
async function otherClientServed(port: number): Promise<void> {
  const session = await connectNode(`http://127.0.0.1:${port}`);
  try {
    const r = await nodeRequest(session, { ":path": "/ok" });
    assert.equal(r.status, 200);
    assert.ok(r.body.length === 2 && r.body.toString() === "ok", "the other client's answer");
  } finally {
    await closeNode(session);
  }
}

/** Settles when the server reports a connection closed. */
function closedWatcher() {
  let wake: (() => void) | null = null;
  let closed = 0;
  return {
    connState: (_c: unknown, st: string) => {
      if (st === "closed") {
        closed++;
        wake?.();
      }
    },
    async until(n: number): Promise<void> {
      while (closed < n) await new Promise<void>((r) => (wake = r));
    },
  };
}

test("attack: Rapid Reset (CVE-2023-44487) → GOAWAY ENHANCE_YOUR_CALM, bounded handlers", async () => {
  const g = new Gauge();
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    const frames: Uint8Array[] = [];
    for (let id = 1; id < 2 * 5000; id += 2) {
      frames.push(RawClient.bytes(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block()));
      frames.push(RawClient.bytes(RST_STREAM, 0, id, u32(CANCEL)));
    }
    const attack = c.write(concat(frames)).catch(() => {});
    await otherClientServed(s.port);
    // Streams past the handlers still running are refused; then the budget ends.
    let o = await c.outcome();
    while (o.kind === "rst") {
      assert.equal(o.code, REFUSED_STREAM);
      o = await c.outcome();
    }
    assertGoaway(o, ENHANCE_YOUR_CALM, "rapid reset");
    await attack;
    c.close();
    await g.idle();
    // The budget (200, refilled at 20/s) bounds the handlers started.
    assert.ok(g.total <= 300, `handlers started: ${g.total}`);
    assert.ok(g.max <= 100, `handlers at once: ${g.max}`);
    assert.equal(s.activeRequests, 0);
    await otherClientServed(s.port);
  }, holding(g));
});

test("attack: too many streams → REFUSED_STREAM; handlers bounded by MAX_CONCURRENT_STREAMS", async () => {
  const g = new Gauge();
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    const frames: Uint8Array[] = [];
    for (let id = 1; id < 2 * 500; id += 2) {
      frames.push(RawClient.bytes(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, id, c.block()));
    }
    await c.write(concat(frames));
    const refused: number[] = [];
    let goaway: Outcome | null = null;
    for (;;) {
      const o = await c.outcome();
      if (o.kind === "rst") {
        assert.equal(o.code, REFUSED_STREAM);
        refused.push(o.stream);
      } else {
        goaway = o;
        break;
      }
    }
    assert.equal(refused[0], 201, "the 101st stream is the first refused");
    assert.equal(g.max, 100);
    // Refusals draw from the same budget: an endless stream of them ends.
    assertGoaway(goaway, ENHANCE_YOUR_CALM, "after the refusal budget");
    await otherClientServed(s.port);
    c.close();
    await g.idle();
    assert.equal(s.activeRequests, 0);
  }, holding(g));
});

test("attack: CONTINUATION flood is cut at maxHeaderBytes; empty ones at a frame count", async () => {
  const g = new Gauge();
  await withServer(
    async (s) => {
      for (const size of [16384, 0]) {
        const c = await RawClient.connect(s.port);
        await c.frame(HEADERS, FLAG_END_STREAM, 1, c.block().subarray(0, 2));
        const cont = RawClient.bytes(CONTINUATION, 0, 1, new Uint8Array(size).fill(0x41));
        const batch = concat(Array.from({ length: size > 0 ? 8 : 512 }, () => cont));
        let written = 0;
        const flood = (async () => {
          // Up to 64 MiB: the server must have cut it off long before.
          while (written < 64 << 20) {
            await c.write(batch);
            written += batch.length;
          }
        })().catch(() => {});
        assertGoaway(await c.outcome(), ENHANCE_YOUR_CALM, `CONTINUATION flood (${size})`);
        await otherClientServed(s.port);
        c.close();
        await flood;
        assert.ok(written < 64 << 20, "the flood was cut");
      }
      assert.equal(g.total, 0, "no handler ran");
    },
    holding(g),
    { maxHeaderBytes: 64 * 1024 },
  );
});

test("attack: HPACK bomb → 431, the connection and its table stay usable", async () => {
  let calls = 0;
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    await c.headers(1, [["x-big", "x".repeat(3000)]]);
    assert.equal((await c.response(1))?.headers.get(":status"), "200");
    // 16 000 one-octet references to the 3 KB entry: 48 MB if decoded.
    const block = concat([c.block(), new Uint8Array(16_000).fill(0xbe)]);
    const t0 = performance.now();
    await c.frame(HEADERS, FLAG_END_HEADERS | FLAG_END_STREAM, 3, block);
    const r = await c.response(3);
    assert.equal(r?.headers.get(":status"), "431");
    assert.ok(performance.now() - t0 < 2000);
    await c.headers(5);
    assert.equal((await c.response(5))?.headers.get(":status"), "200");
    await otherClientServed(s.port);
    c.close();
  }, (req) => {
    if (new URL(req.url).pathname !== "/ok") calls++;
    return new Response("ok");
  });
  assert.equal(calls, 2, "the bomb never reached the handler");
});

for (const kind of ["PING", "SETTINGS"] as const) {
  test(`attack: ${kind} flood from a peer that doesn't read → closed, queue bounded`, async () => {
    const w = closedWatcher();
    await withServer(
      async (s) => {
        const c = await RawClient.connect(s.port);
        const one = kind === "PING"
          ? RawClient.bytes(PING, 0, 0, new Uint8Array(8))
          : RawClient.bytes(SETTINGS, 0, 0, new Uint8Array(0));
        const batch = concat(Array.from({ length: 4096 }, () => one));
        let written = 0;
        let failed = false;
        const flood = (async () => {
          try {
            // Never reads. Up to 512 MiB: the server must have given up long before.
            while (written < 512 << 20) {
              await c.write(batch);
              written += batch.length;
            }
          } catch {
            failed = true;
          }
        })();
        await otherClientServed(s.port);
        await w.until(2);
        await flood;
        assert.ok(failed, "the server closed the connection");
        c.close();
      },
      () => new Response("ok"),
      { connState: w.connState },
    );
  });
}

test("attack: zero-window stall → the stream is reset after writeTimeout; its context canceled", async () => {
  let why: unknown;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port, { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 0]] });
    await c.headers(1, [[":path", "/bytes"]]);
    const o = await c.outcome(5000);
    assertRst(o, 1, CANCEL, "stalled stream");
    await finished;
    assert.match(String(why), /slow|reads/i);
    await assertAlive(c, "the connection lives on");
    await otherClientServed(s.port);
    c.close();
  }, (req, info) => {
    if (new URL(req.url).pathname === "/ok") return new Response("ok");
    info.context.done.then(() => {
      why = cause(info.context);
      done();
    });
    return new Response(new Uint8Array(1000));
  }, { writeTimeout: 300 });
});

test("attack: a peer that stops reading its socket is cut off by writeTimeout", async () => {
  const w = closedWatcher();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port, {
        settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]],
      });
      await c.windowUpdate(0, 2 ** 31 - 1 - 65535);
      await c.headers(1, [[":path", "/huge"]]);
      // Never read again.
      await w.until(1);
      await otherClientServed(s.port);
      c.close();
    },
    (req) => new Response(new URL(req.url).pathname === "/ok" ? "ok" : new Uint8Array(256 << 20)),
    {
      writeTimeout: 300,
      connState: w.connState,
    },
  );
});

// ------------------------------------------------------------ minimum rates
//
// minBodyRate / minResponseRate per stream (as rate_test.ts does for
// HTTP/1.1): only time spent waiting on the client counts, so a trickling
// body and a peer that keeps a window (or its socket) shut are cut, while an
// honest upload, a handler that reads slowly and a slow producer are not.

/** `p`, or a failure naming `what` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Sends one octet of DATA on `stream` every 250 ms (4 B/s) until stopped. */
function trickle(c: RawClient, stream: number): { stop(): Promise<void> } {
  let stopped = false;
  let wake: (() => void) | null = null;
  const done = (async () => {
    for (let i = 0; i < 200 && !stopped; i++) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, 250);
      });
      if (stopped) return;
      try {
        await c.data(stream, te.encode("a"));
      } catch {
        return;
      }
    }
  })();
  return {
    async stop() {
      stopped = true;
      (wake as (() => void) | null)?.();
      await done;
    },
  };
}

/** A handler for the rate cases: `/ok` answers at once; anything else
 * reports its context's cause (and its body read's error) through `seen`. */
function rateHandler(seen: PromiseWithResolvers<{ cause: unknown; readError: unknown }>) {
  return async (req: Request, info: import("./server.ts").ServeHandlerInfo) => {
    const path = new URL(req.url).pathname;
    if (path === "/ok") return new Response("ok");
    const report = (readError: unknown) =>
      info.context.done.then(() => seen.resolve({ cause: cause(info.context), readError }));
    if (path === "/big") return report(null), new Response(new Uint8Array(1 << 20));
    if (path === "/huge") return report(null), new Response(new Uint8Array(256 << 20));
    if (path === "/duplex") return report(null), new Response(req.body);
    try {
      await req.arrayBuffer();
      report(null);
    } catch (e) {
      report(e);
    }
    return new Response("read it all");
  };
}

test("minBodyRate: a body trickling at 4 B/s → 408 after the grace period, context canceled; others served", async () => {
  const seen = Promise.withResolvers<{ cause: unknown; readError: unknown }>();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port);
      const t0 = Date.now();
      await c.headers(1, [...POST, [":path", "/upload"]], { endStream: false });
      const t = trickle(c, 1);
      try {
        // Another client is served while the slow one is being cut.
        await otherClientServed(s.port);
        const r = await c.response(1, 8000);
        const ms = Date.now() - t0;
        assert.equal(r?.headers.get(":status"), "408", JSON.stringify(r && [...r.headers]));
        assert.equal(td.decode(r!.body), "request body too slow\n");
        assert.ok(ms < 500 + 3000, `cut after ${ms} ms`);
        // The rest of the request is not wanted: RST_STREAM(NO_ERROR) (§8.1).
        const rst = await c.expect((f) => f.type === RST_STREAM && f.stream === 1);
        assert.equal(rst && readU32(rst.payload, 0), NO_ERROR);
        const { cause: why, readError } = await bounded(seen.promise, 3000, "context canceled");
        assert.match(String(why), /too slow/);
        assert.equal((why as { status?: number }).status, 408);
        assert.equal(readError, why, "the handler's read failed with the same error");
      } finally {
        await t.stop();
      }
      await assertAlive(c, "the connection lives on");
      c.close();
    },
    rateHandler(seen),
    { minBodyRate: 240, minRateGracePeriod: 500 },
  );
});

test("minBodyRate: a response already started → RST_STREAM CANCEL instead of 408", async () => {
  const seen = Promise.withResolvers<{ cause: unknown; readError: unknown }>();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port);
      await c.headers(1, [...POST, [":path", "/duplex"]], { endStream: false });
      await c.data(1, te.encode("hello"));
      const t = trickle(c, 1);
      try {
        const head = await c.expect((f) => f.type === HEADERS && f.stream === 1);
        assert.ok(head !== null, "the response started");
        assertRst(await c.outcome(5000), 1, CANCEL, "body too slow mid-response");
        const { cause: why } = await bounded(seen.promise, 3000, "context canceled");
        assert.equal((why as { status?: number }).status, 408);
      } finally {
        await t.stop();
      }
      await assertAlive(c);
      c.close();
    },
    rateHandler(seen),
    { minBodyRate: 240, minRateGracePeriod: 500 },
  );
});

test("readTimeout: a body that stalls → 408", async () => {
  const seen = Promise.withResolvers<{ cause: unknown; readError: unknown }>();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port);
      await c.headers(1, [...POST, [":path", "/upload"]], { endStream: false });
      await c.data(1, te.encode("part"));
      const r = await c.response(1, 5000);
      assert.equal(r?.headers.get(":status"), "408");
      const { readError } = await bounded(seen.promise, 3000, "context canceled");
      assert.equal((readError as { status?: number }).status, 408);
      await assertAlive(c);
      c.close();
    },
    rateHandler(seen),
    { readTimeout: 300, minBodyRate: 0 },
  );
});

test("minBodyRate: a 20 MiB upload at full speed passes", async () => {
  const size = 20 << 20;
  await withServer(async (s) => {
    const session = await connectNode(`http://127.0.0.1:${s.port}`);
    try {
      const r = await nodeRequest(
        session,
        { ":path": "/up", ":method": "POST" },
        new Uint8Array(size),
      );
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), String(size));
    } finally {
      await closeNode(session);
    }
  }, async (req) => {
    let n = 0;
    for await (const chunk of req.body!) n += chunk.byteLength;
    return new Response(String(n));
  }, { minBodyRate: 240, minRateGracePeriod: 200 });
});

test("minBodyRate: a handler that reads its body slowly is not cut for it", async () => {
  // The client sends everything at once (within the stream's window); the
  // handler pauses between reads. Only time it waits on the client counts,
  // so a rate no client could meet over wall time is still met.
  await withServer(async (s) => {
    const c = await RawClient.connect(s.port);
    await c.headers(1, POST, { endStream: false });
    const frames: Uint8Array[] = [];
    for (let i = 0; i < 12; i++) frames.push(RawClient.bytes(DATA, 0, 1, new Uint8Array(16384)));
    frames.push(RawClient.bytes(DATA, FLAG_END_STREAM, 1, new Uint8Array(1000)));
    await c.write(concat(frames));
    const r = await c.response(1, 10_000);
    assert.equal(r?.headers.get(":status"), "200");
    assert.equal(td.decode(r!.body), String(12 * 16384 + 1000));
    c.close();
  }, async (req) => {
    let n = 0;
    const reader = req.body!.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.byteLength;
      await new Promise((r) => setTimeout(r, 30));
    }
    return new Response(String(n));
  }, { minBodyRate: 1e9, minRateGracePeriod: 50 });
});

test("minResponseRate: a peer that never opens a stream's window → RST_STREAM CANCEL, TOO_SLOW_READER; others served", async () => {
  const seen = Promise.withResolvers<{ cause: unknown; readError: unknown }>();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port, { settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 0]] });
      const t0 = Date.now();
      await c.headers(1, [[":path", "/big"]]);
      await otherClientServed(s.port);
      assertRst(await c.outcome(8000), 1, CANCEL, "stream window never opened");
      const ms = Date.now() - t0;
      assert.ok(ms < 500 + 3000, `cut after ${ms} ms`);
      const { cause: why } = await bounded(seen.promise, 3000, "context canceled");
      assert.equal(why, TOO_SLOW_READER);
      await assertAlive(c, "the connection lives on");
      c.close();
    },
    rateHandler(seen),
    { minResponseRate: 240, minRateGracePeriod: 500, writeTimeout: 0 },
  );
});

test("minResponseRate: a peer that never opens the connection window → its waiting streams are reset", async () => {
  const causes: unknown[] = [];
  await withServer(async (s) => {
    // Stream windows wide open; the connection window stays at 65 535.
    const c = await RawClient.connect(s.port, {
      settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]],
    });
    await c.headers(1, [[":path", "/big"]]);
    await c.headers(3, [[":path", "/big"]]);
    const reset = new Set<number>();
    while (reset.size < 2) {
      const o = await c.outcome(8000);
      assert.equal(o.kind, "rst", JSON.stringify(o));
      if (o.kind === "rst") {
        assert.equal(o.code, CANCEL);
        reset.add(o.stream);
      }
    }
    assert.deepEqual([...reset].sort(), [1, 3]);
    const got = c.frames.filter((f) => f.type === DATA).reduce((n, f) => n + f.payload.length, 0);
    assert.equal(got, 65535, "exactly the connection window");
    await otherClientServed(s.port);
    await assertAlive(c);
    c.close();
  }, (req, info) => {
    if (new URL(req.url).pathname === "/ok") return new Response("ok");
    info.context.done.then(() => causes.push(cause(info.context)));
    return new Response(new Uint8Array(1 << 20));
  }, { minResponseRate: 240, minRateGracePeriod: 500, writeTimeout: 0 });
  assert.deepEqual(causes, [TOO_SLOW_READER, TOO_SLOW_READER]);
});

test("minResponseRate: a peer that stops reading its socket → the connection is closed", async () => {
  const seen = Promise.withResolvers<{ cause: unknown; readError: unknown }>();
  const w = closedWatcher();
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port, {
        settings: [[SETTINGS_INITIAL_WINDOW_SIZE, 2 ** 31 - 1]],
      });
      await c.windowUpdate(0, 2 ** 31 - 1 - 65535);
      await c.headers(1, [[":path", "/huge"]]);
      // Never read again.
      await bounded(w.until(1), 10_000, "the connection closed");
      const { cause: why } = await bounded(seen.promise, 3000, "context canceled");
      assert.equal(why, TOO_SLOW_READER);
      await otherClientServed(s.port);
      c.close();
    },
    rateHandler(seen),
    { minResponseRate: 240, minRateGracePeriod: 500, writeTimeout: 0, connState: w.connState },
  );
});

test("minResponseRate: a slow producer (server-sent events) is never cut", async () => {
  // A rate no client could meet over wall time: only time spent waiting for
  // the client counts, and this client reads at once.
  await withServer(async (s) => {
    const session = await connectNode(`http://127.0.0.1:${s.port}`);
    try {
      const r = await nodeRequest(session, { ":path": "/events" });
      assert.equal(r.status, 200);
      assert.equal(r.body.toString().split("\n\n").filter(Boolean).length, 8);
    } finally {
      await closeNode(session);
    }
  }, () => {
    let i = 0;
    return new Response(
      new ReadableStream({
        async pull(ctrl) {
          await new Promise((r) => setTimeout(r, 100));
          if (i++ === 8) ctrl.close();
          else ctrl.enqueue(te.encode(`data: ${i}\n\n`));
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  }, { minResponseRate: 1e9, minRateGracePeriod: 50 });
});

// ---------------------------------------------------------------- lifecycle

test("graceful shutdown: GOAWAY 2^31-1, PING, then the last stream id; open streams finish", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const s = await h2serve({}, async (req) => {
    if (new URL(req.url).pathname === "/hold") await gate;
    return new Response("done");
  });
  const c = await RawClient.connect(s.port);
  await c.headers(1, [[":path", "/hold"]]);
  await assertAlive(c);
  const shut = s.shutdown();
  const g1 = await c.expect((f) => f.type === GOAWAY);
  assert.equal(readU31(g1!.payload, 0), 2 ** 31 - 1);
  assert.equal(readU32(g1!.payload, 4), NO_ERROR);
  const ping = await c.expect((f) => f.type === PING && (f.flags & FLAG_ACK) === 0);
  await c.frame(PING, FLAG_ACK, 0, ping!.payload);
  const g2 = await c.expect((f) => f.type === GOAWAY);
  assert.equal(readU31(g2!.payload, 0), 1, "the real last stream id");
  // A new stream now is ignored.
  await c.headers(3);
  await assertAlive(c);
  release();
  const r = await c.response(1);
  assert.equal(td.decode(r!.body), "done");
  assert.ok(!c.frames.some((f) => f.stream === 3), "stream 3 was not served");
  assert.equal(await c.next(), null);
  assert.ok(c.eof, "closed once the last stream finished");
  await shut;
  c.close();
});

test("shutdown with a deadline: streams still open are canceled with its cause", async () => {
  let why: unknown;
  const s = await h2serve({}, async (_req, info) => {
    await info.context.done;
    why = cause(info.context);
    return new Response("late");
  });
  const c = await RawClient.connect(s.port);
  await c.headers(1);
  await assertAlive(c);
  await s.shutdown(withTimeout(background(), 200).ctx);
  assert.match(String(why), /server shutdown/);
  while (await c.next() !== null);
  assert.ok(c.eof, "the connection was closed");
  const first = c.frames.find((f) => f.type === GOAWAY);
  assert.equal(readU31(first!.payload, 0), 2 ** 31 - 1, "shutdown began gracefully");
  c.close();
});

test("timeouts: read-header (no HEADERS; a block left open) and idle", async () => {
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port);
      const o = await c.outcome(3000);
      assertGoaway(o, NO_ERROR, "no HEADERS within readHeaderTimeout");
      assert.match((o as { debug: string }).debug, /read header timeout/);
      assert.equal(await c.next(), null);
      c.close();
      const d = await RawClient.connect(s.port);
      await d.headers(1);
      assert.equal((await d.response(1))?.headers.get(":status"), "200");
      await d.frame(HEADERS, FLAG_END_STREAM, 3, d.block().subarray(0, 2));
      assertGoaway(await d.outcome(3000), NO_ERROR, "a block left open");
      d.close();
    },
    () => new Response("ok"),
    { readHeaderTimeout: 200, idleTimeout: 60_000 },
  );
  await withServer(
    async (s) => {
      const c = await RawClient.connect(s.port);
      await c.headers(1);
      assert.equal((await c.response(1))?.headers.get(":status"), "200");
      const o = await c.outcome(3000);
      assertGoaway(o, NO_ERROR, "idle");
      assert.match((o as { debug: string }).debug, /idle/);
      assert.equal(await c.next(), null);
      c.close();
    },
    () => new Response("ok"),
    { idleTimeout: 200 },
  );
});

// ------------------------------------------------------------ http2: false

Deno.test("http2: false — TLS offers http/1.1 only; the h2c preface is answered as HTTP/1.1", async () => {
  const { serve } = await import("./server.ts");
  const certs = await testCerts();
  // Cleartext: the preface is not a valid HTTP/1.1 request.
  {
    await using server = serve(
      { port: 0, hostname: "127.0.0.1", onListen() {}, http2: false },
      () => new Response("ok"),
    );
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    try {
      await conn.write(new TextEncoder().encode("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      const buf = new Uint8Array(256);
      const n = await conn.read(buf);
      assert.ok(n !== null);
      assert.match(new TextDecoder().decode(buf.subarray(0, n)), /^HTTP\/1\.1 [45]\d\d /);
    } finally {
      conn.close();
    }
  }
  if (certs === null) {
    console.log("skip: openssl missing; TLS half of the http2: false test not run");
    return;
  }
  await using server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    cert: certs.cert,
    key: certs.key,
    http2: false,
  }, (_req, info) => new Response(String(info.conn.tls?.alpnProtocol)));
  const client = Deno.createHttpClient({ caCerts: [certs.ca] });
  try {
    const res = await fetch(`https://localhost:${(server.addr as Deno.NetAddr).port}/`, { client });
    assert.equal(await res.text(), "http/1.1");
  } finally {
    client.close();
  }
});
