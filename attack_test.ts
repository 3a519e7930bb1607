// Copyright 2026 the connctx authors. MIT license.
// Attack resistance over TCP with raw sockets: request smuggling (CL.TE,
// TE.CL, TE.TE obfuscations, duplicate Content-Length), malformed framing
// (bare LF, obs-fold, NUL, oversize chunk sizes), slowloris, header floods,
// half-closed sockets, and random garbage. Each attack must be refused (an
// error status or a close), must not reach the handler as a smuggled
// request, and must leave the server answering a well-formed request on a
// fresh connection right after.
//
//   deno test -A attack_test.ts
//
// Every wait is bounded (a broken server fails a test, never hangs it), and no
// assertion depends on how long something took.

import assert from "node:assert/strict";
// The brief pins fast-check by specifier (no import map in deno.json).
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3";
import { type ConnInfo, type ConnState, serve, type ServeOptions, type Server } from "./server.ts";
import { bytes, Client, latin1, portOf, WAIT } from "./_test_http.ts";

// ---------------------------------------------------------------------------
// Server helpers

/** A server that records every request it serves (`METHOD path`), reads
 * POST bodies (answering 400 if the body is malformed), and echoes. */
function start(opts: ServeOptions = {}): Server & { seen: string[]; bodyErrors: unknown[] } {
  const seen: string[] = [];
  const bodyErrors: unknown[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onError(e) {
      return new Response(`handler failed: ${e}`, { status: 500 });
    },
    ...opts,
  }, async (req) => {
    const path = new URL(req.url).pathname;
    seen.push(`${req.method} ${path}`);
    if (path === "/ignore-body") return new Response("ignored");
    let body = "";
    if (req.body !== null) {
      try {
        body = await req.text();
      } catch (e) {
        bodyErrors.push(e);
        return new Response("bad body", { status: 400 });
      }
    }
    return new Response(`${req.method} ${path} ${body}`);
  });
  return Object.assign(server, { seen, bodyErrors });
}

/** A good request on a fresh connection is answered correctly. */
async function assertServes(port: number): Promise<void> {
  await using c = await Client.open(port);
  const r = await c.request(
    "POST /fresh HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
  );
  assert.equal(r.status, 200, `a fresh connection got ${r.status} ${r.text}`);
  assert.equal(r.text, "POST /fresh ok");
}

/**
 * Sends `raw` on a new connection; reads what comes back until the server
 * closes. Returns the statuses of the responses received (possibly none).
 */
async function attack(port: number, raw: string | Uint8Array, ms = WAIT): Promise<number[]> {
  await using c = await Client.open(port);
  await c.send(raw);
  const statuses: number[] = [];
  const deadline = Date.now() + ms;
  for (;;) {
    let r;
    try {
      r = await c.response({ ms: Math.max(1, deadline - Date.now()) });
    } catch (e) {
      if (c.eof) break; // closed: no more responses
      throw e;
    }
    statuses.push(r.status);
    if (r.status >= 400) {
      assert.equal(r.get("connection")?.toLowerCase(), "close", "an error response closes");
    }
  }
  assert.ok(c.eof);
  return statuses;
}

const SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

type Attack = [name: string, raw: string, allowed: number[]];

/** Runs each attack on one server: refused, nothing smuggled, server fine. */
async function run(t: Deno.TestContext, attacks: Attack[], opts: ServeOptions = {}) {
  await using server = start(opts);
  const port = portOf(server);
  for (const [name, raw, allowed] of attacks) {
    await t.step(name, async () => {
      const statuses = await attack(port, raw);
      assert.ok(statuses.length <= 1, `one response at most, got ${statuses}`);
      for (const s of statuses) {
        assert.ok(allowed.includes(s), `status ${s}, want one of ${allowed}`);
      }
      assert.ok(!server.seen.includes("GET /smuggled"), "a smuggled request reached the handler");
      await assertServes(port);
    });
  }
}

// ---------------------------------------------------------------------------
// Request smuggling

const POST = "POST /p HTTP/1.1\r\nHost: x\r\n";

Deno.test("attack: CL.TE and TE.CL", async (t) => {
  await run(t, [
    [
      "CL.TE",
      `${POST}Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG${SMUGGLED}`,
      [400],
    ],
    [
      "TE.CL",
      `${POST}Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n${SMUGGLED}0\r\n\r\n`,
      [400],
    ],
    [
      "CL.TE, TE last in a list",
      `${POST}Content-Length: 4\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      [400, 501],
    ],
    [
      "CL 0 with TE",
      `${POST}Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n${
        SMUGGLED.length.toString(16)
      }\r\n${SMUGGLED}\r\n0\r\n\r\n`,
      [400],
    ],
    [
      "TE in HTTP/1.0",
      `POST /p HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n${SMUGGLED}`,
      [400],
    ],
  ]);
});

Deno.test("attack: TE.TE obfuscations", async (t) => {
  const te = (field: string) => `${POST}${field}\r\nContent-Length: 4\r\n\r\n0\r\n\r\n${SMUGGLED}`;
  const teOnly = (field: string) => `${POST}${field}\r\n\r\n0\r\n\r\n${SMUGGLED}`;
  const cases: [string, string][] = [
    ["xchunked", "Transfer-Encoding: xchunked"],
    ["chunkedx", "Transfer-Encoding: chunkedx"],
    ["space before colon", "Transfer-Encoding : chunked"],
    ["tab before colon", "Transfer-Encoding\t: chunked"],
    ["chunked, identity", "Transfer-Encoding: chunked, identity"],
    ["identity, chunked", "Transfer-Encoding: identity, chunked"],
    ["space-prefixed line", "X: y\r\n Transfer-Encoding: chunked"],
    ["tab-prefixed line", "X: y\r\n\tTransfer-Encoding: chunked"],
    ["folded value", "Transfer-Encoding:\r\n chunked"],
    ["VT before value", "Transfer-Encoding:\x0bchunked"],
    ["FF before value", "Transfer-Encoding:\x0cchunked"],
    ["CR before value", "Transfer-Encoding:\rchunked"],
    ["NBSP after value", "Transfer-Encoding: chunked\xa0"],
    ["NBSP before value", "Transfer-Encoding: \xa0chunked"],
    ["quoted", 'Transfer-Encoding: "chunked"'],
    ["with parameter", "Transfer-Encoding: chunked;x=1"],
    ["doubled", "Transfer-Encoding: chunked, chunked"],
    ["empty element", "Transfer-Encoding: ,chunked"],
    ["duplicate, bogus second", "Transfer-Encoding: chunked\r\nTransfer-Encoding: x"],
    ["duplicate, bogus first", "Transfer-Encoding: x\r\nTransfer-Encoding: chunked"],
    ["duplicate, empty second", "Transfer-Encoding: chunked\r\nTransfer-Encoding:"],
    ["duplicate chunked", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"],
    ["name with NUL", "Transfer-Encoding\x00: chunked"],
    ["bare LF in the field", "Transfer-Encoding: chunked\nX: y"],
  ];
  await run(
    t,
    cases.flatMap(([name, field]): Attack[] => [
      [`${name} (with CL)`, te(field), [400, 501]],
      [`${name} (TE only)`, teOnly(field), [400, 501]],
    ]),
  );
});

Deno.test("attack: a header that only looks like Transfer-Encoding is just a header", async () => {
  // Consistent with every RFC parser: this is an unknown field, the body is
  // framed by Content-Length, and the "chunked" bytes are body data.
  await using server = start();
  await using c = await Client.open(portOf(server));
  const r = await c.request(
    `${POST}Transfer_Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`,
  );
  assert.equal(r.text, "POST /p 0\r\n\r\n");
});

Deno.test("attack: Content-Length confusion", async (t) => {
  const cl = (v: string) => `${POST}Content-Length: ${v}\r\n\r\nhello${SMUGGLED}`;
  await run(t, [
    [
      "differing duplicates",
      `${POST}Content-Length: 5\r\nContent-Length: 0\r\n\r\nhello${SMUGGLED}`,
      [400],
    ],
    [
      "differing duplicates, 0 first",
      `${POST}Content-Length: 0\r\nContent-Length: 5\r\n\r\nhello${SMUGGLED}`,
      [400],
    ],
    ["list", cl("5, 0"), [400]],
    ["list of identical values", cl("5, 5"), [400]],
    ["plus sign", cl("+5"), [400]],
    ["minus", cl("-5"), [400]],
    ["hex", cl("0x5"), [400]],
    ["inner space", cl("5 0"), [400]],
    ["NBSP", cl("5\xa0"), [400]],
    ["trailing junk", cl("5x"), [400]],
    ["empty", cl(""), [400]],
    ["huge", cl("99999999999999999999"), [400]],
    ["space before colon", `${POST}Content-Length : 5\r\n\r\nhello${SMUGGLED}`, [400]],
  ]);
  // Identical duplicates are one length: accepted, body framed by it.
  await using server = start();
  await using c = await Client.open(portOf(server));
  const r = await c.request(`${POST}Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello`);
  assert.equal(r.text, "POST /p hello");
});

// ---------------------------------------------------------------------------
// Malformed heads and bodies

Deno.test("attack: malformed heads", async (t) => {
  await run(t, [
    ["bare LF line ends", `GET / HTTP/1.1\nHost: x\n\n${SMUGGLED}`, [400]],
    ["bare LF after the request line", `GET / HTTP/1.1\nHost: x\r\n\r\n${SMUGGLED}`, [400]],
    ["bare CR", `GET / HTTP/1.1\rHost: x\r\n\r\n${SMUGGLED}`, [400]],
    ["obs-fold", `GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n${SMUGGLED}`, [400]],
    ["NUL in a value", `GET / HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n${SMUGGLED}`, [400]],
    ["NUL in the target", `GET /a\x00b HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}`, [400]],
    ["NUL in the method", `G\x00ET / HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}`, [400]],
    ["fragment in the target", `GET /admin#/../public HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}`, [
      400,
    ]],
    ["two Hosts", `GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n${SMUGGLED}`, [400]],
    ["Host with userinfo", `GET / HTTP/1.1\r\nHost: evil@x\r\n\r\n${SMUGGLED}`, [400]],
    ["no Host", `GET / HTTP/1.1\r\n\r\n${SMUGGLED}`, [400]],
    ["HTTP/2 preface", `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n${SMUGGLED}`, [400, 505]],
    ["HTTP/0.9 request", `GET /\r\n\r\n${SMUGGLED}`, [400]],
    ["two leading empty lines", `\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n${SMUGGLED}`, [400]],
    ["TLS hello", "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", [400]],
  ]);
});

Deno.test("attack: malformed chunked bodies", async (t) => {
  const body = (b: string) => `${POST}Transfer-Encoding: chunked\r\n\r\n${b}`;
  const attacks: Attack[] = [
    ["size overflow (2^64)", body(`ffffffffffffffff\r\n${SMUGGLED}`), [400]],
    ["size overflow (2^48)", body(`1000000000000\r\n${SMUGGLED}`), [400]],
    ["negative size", body(`-1\r\n${SMUGGLED}`), [400]],
    ["0x size", body(`0x5\r\nhello\r\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["bare LF after size", body(`5\nhello\r\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["LF in extension", body(`2;\nxx\r\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["bare CR in extension", body(`2;a\rxx\r\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["data longer than size", body(`2\r\nxxx\r\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["bare LF after data", body(`2\r\nxx\n0\r\n\r\n${SMUGGLED}`), [400]],
    ["trailer obs-fold", body(`0\r\nX: a\r\n b\r\n\r\n${SMUGGLED}`), [400]],
    ["trailer bare LF", body(`0\r\nX: a\n\r\n${SMUGGLED}`), [400]],
    ["endless chunk extension", body(`5;${"a".repeat(10_000)}\r\n`), [400]],
    ["endless leading zeros", body(`${"0".repeat(10_000)}\r\n`), [400]],
    ["endless trailers", body(`0\r\n${"X: yyyyyyyy\r\n".repeat(2_000)}\r\n`), [400, 431]],
  ];
  await run(t, attacks);
});

Deno.test("attack: a malformed chunked body the handler ignores is not served as a request", async () => {
  await using server = start();
  const port = portOf(server);
  const logged: unknown[][] = [];
  const realError = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    for (const b of [`ffffffffffffffff\r\n${SMUGGLED}`, `2;\nxx\r\n0\r\n\r\n${SMUGGLED}`]) {
      const statuses = await attack(
        port,
        `POST /ignore-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${b}`,
      );
      assert.ok(
        statuses.length <= 1 && statuses.every((s) => s === 200 || s === 400),
        `${statuses}`,
      );
      assert.ok(!server.seen.includes("GET /smuggled"));
      await assertServes(port);
    }
  } finally {
    console.error = realError;
  }
  // A bad body is the client's fault, not a server failure to log.
  assert.deepEqual(logged.map((a) => String(a[0])), []);
});

// ---------------------------------------------------------------------------
// Resource exhaustion

Deno.test("attack: header floods", async (t) => {
  const many = (n: number) => {
    let s = "GET / HTTP/1.1\r\nHost: x\r\n";
    for (let i = 0; i < n; i++) s += `X-${i}: y\r\n`;
    return s + "\r\n";
  };
  await run(t, [
    ["many headers", many(1_000), [431]],
    ["10 000 tiny headers", many(10_000), [431]],
    ["one huge header", `GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(70 * 1024)}\r\n\r\n`, [431]],
    ["huge header, never ends", `GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(100 * 1024)}`, [431]],
    ["huge request line", `GET /${"a".repeat(100 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, [414, 431]],
    ["long target", `GET /${"a".repeat(9 * 1024)} HTTP/1.1\r\nHost: x\r\n\r\n`, [414]],
    ["huge Content-Length", `${POST}Content-Length: 100000\r\n\r\n`, [413]],
  ], { maxBodyBytes: 1000 });
  // Smaller limits are honored too.
  await run(t, [
    ["over maxHeaderCount", many(5), [431]],
    ["over maxHeaderBytes", `GET / HTTP/1.1\r\nHost: x\r\nX: ${"a".repeat(300)}\r\n\r\n`, [431]],
    ["over maxUriBytes", `GET /${"a".repeat(100)} HTTP/1.1\r\nHost: x\r\n\r\n`, [414]],
    [
      "over maxChunkLineBytes",
      `${POST}Transfer-Encoding: chunked\r\n\r\n5;${"e".repeat(100)}\r\nhello\r\n0\r\n\r\n`,
      [400],
    ],
    [
      "over maxTrailerBytes",
      `${POST}Transfer-Encoding: chunked\r\n\r\n0\r\nX: ${"t".repeat(100)}\r\n\r\n`,
      [400, 431],
    ],
  ], {
    maxHeaderCount: 5,
    maxHeaderBytes: 256,
    maxUriBytes: 64,
    maxChunkLineBytes: 64,
    maxTrailerBytes: 64,
  });
});

Deno.test("attack: slowloris connections get 408 or a close; others are served", async () => {
  await using server = start({ readHeaderTimeout: 300 });
  const port = portOf(server);
  const N = 20;
  const clients = await Promise.all(Array.from({ length: N }, () => Client.open(port)));
  let stop = false;
  const trickles = clients.map(async (c, k) => {
    // Some say nothing, the others trickle a head that never ends.
    if (k % 4 === 0) return;
    if (!await c.send("GET / HTTP/1.1\r\n")) return;
    for (let i = 0; !stop && i < 500; i++) {
      await new Promise((r) => setTimeout(r, 25));
      if (!await c.send(`X-${i}: ${"z".repeat(k)}\r\n`)) return;
    }
  });
  try {
    await assertServes(port);
    const outcomes = await Promise.all(clients.map(async (c) => {
      try {
        return (await c.response()).status;
      } catch (e) {
        if (c.eof) return "closed";
        throw e;
      }
    }));
    for (const o of outcomes) assert.ok(o === 408 || o === "closed", `${o}`);
    await Promise.all(clients.map((c) => c.closed()));
    assert.deepEqual(server.seen, ["POST /fresh"]);
  } finally {
    stop = true;
    await Promise.all(trickles);
    await Promise.all(clients.map((c) => c[Symbol.asyncDispose]()));
  }
  await assertServes(port);
});

Deno.test("attack: completing a head after its 408 does not run the handler", async () => {
  await using server = start({ readHeaderTimeout: 200 });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send("GET /late HTTP/1.1\r\nHost: x\r\n");
  const r = await c.response();
  assert.equal(r.status, 408);
  // The server lingers reading (so its close does not reset the 408); what
  // arrives now must not be served.
  await c.send(`\r\n${SMUGGLED}`);
  await c.closed();
  await assertServes(port);
  assert.deepEqual(server.seen, ["POST /fresh"]);
});

Deno.test("attack: half-closed sockets", async (t) => {
  await using server = start({ readHeaderTimeout: 5_000 });
  const port = portOf(server);
  const halfClose = async (raw: string) => {
    await using c = await Client.open(port);
    await c.send(raw);
    await c.closeWrite();
    const statuses: number[] = [];
    for (;;) {
      try {
        statuses.push((await c.response()).status);
      } catch (e) {
        if (c.eof) break;
        throw e;
      }
    }
    return statuses;
  };
  await t.step("nothing sent", async () => {
    assert.deepEqual(await halfClose(""), []);
  });
  await t.step("partial request line", async () => {
    assert.deepEqual(await halfClose("GET / HT"), []);
  });
  await t.step("partial head", async () => {
    assert.deepEqual(await halfClose("GET / HTTP/1.1\r\nHost: x\r\n"), []);
  });
  await t.step("partial Content-Length body", async () => {
    const before = server.bodyErrors.length;
    const s = await halfClose(`${POST}Content-Length: 10\r\n\r\nabc`);
    assert.ok(s.length === 0 || (s.length === 1 && s[0] === 400), `${s}`);
    assert.equal(server.bodyErrors.length, before + 1, "the handler saw the body fail");
  });
  await t.step("partial chunked body", async () => {
    const before = server.bodyErrors.length;
    const s = await halfClose(`${POST}Transfer-Encoding: chunked\r\n\r\n5\r\nab`);
    assert.ok(s.length === 0 || (s.length === 1 && s[0] === 400), `${s}`);
    assert.equal(server.bodyErrors.length, before + 1, "the handler saw the body fail");
  });
  await t.step("a complete request, then half-close: still answered", async () => {
    assert.deepEqual(await halfClose(`GET /a HTTP/1.1\r\nHost: x\r\n\r\n`), [200]);
    assert.deepEqual(await halfClose(`${POST}Content-Length: 2\r\n\r\nhi`), [200]);
  });
  await t.step("pipelined complete requests, then half-close: all answered", async () => {
    assert.deepEqual(
      await halfClose(`GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\n`),
      [200, 200],
    );
  });
  await assertServes(port);
});

// ---------------------------------------------------------------------------
// Random garbage

const GOOD = "POST /g HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
  "GET /h HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n";
const INTERESTING = [0, 9, 10, 13, 32, 44, 58, 59, 0x7f, 0x80, 0xa0, 0xff, 48, 97];

const garbageArb = fc.oneof(
  // Random bytes.
  fc.uint8Array({ maxLength: 300 }),
  // A good pipeline with a few mutations.
  fc.array(
    fc.tuple(
      fc.nat(),
      fc.oneof(fc.constantFrom(...INTERESTING), fc.integer({ min: 0, max: 255 })),
      fc.constantFrom("set", "insert", "delete"),
    ),
    { minLength: 1, maxLength: 5 },
  ).map((muts) => {
    const a = [...bytes(GOOD)];
    for (const [at, b, kind] of muts) {
      const i = at % a.length;
      if (kind === "set") a[i] = b;
      else if (kind === "insert") a.splice(i, 0, b);
      else a.splice(i, 1);
    }
    return new Uint8Array(a);
  }),
);

Deno.test("attack: random garbage gets a response or a close, then the server serves", async () => {
  const closedConns = { n: 0 };
  await using server = start({
    readHeaderTimeout: 300,
    readTimeout: 300,
    idleTimeout: 300,
    connState: (_c: ConnInfo, s: ConnState) => {
      if (s === "closed") closedConns.n++;
    },
  });
  const port = portOf(server);
  // A new seed each run (printed on failure): fuzzing, not a fixed table.
  const seed = Date.now() | 0;
  const inputs = fc.sample(
    fc.tuple(garbageArb, fc.constantFrom("end", "halfclose", "wait")),
    { numRuns: 60, seed },
  );
  // All at once: the slow ones (waiting for a timeout) overlap.
  await Promise.all(inputs.map(async ([g, how]) => {
    await using c = await Client.open(port);
    await c.send(how === "end" ? new Uint8Array([...g, 13, 10, 13, 10]) : g);
    if (how === "halfclose") await c.closeWrite();
    for (;;) {
      let r;
      try {
        r = await c.response();
      } catch (e) {
        if (c.eof) break;
        throw new Error(`${e} for ${JSON.stringify(latin1(g))} (${how}, seed ${seed})`);
      }
      assert.ok(
        [200, 400, 408, 413, 414, 417, 431, 501, 505].includes(r.status),
        `status ${r.status} for ${JSON.stringify(latin1(g))} (seed ${seed})`,
      );
      if (r.status >= 400) break;
    }
  }));
  await assertServes(port);
});
