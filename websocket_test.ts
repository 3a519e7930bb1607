// Copyright 2026 the connctx authors. MIT license.
//
// WebSockets on connctx `serve`, over TCP on loopback.
//
// 1. RFC 6455 / 7692 conformance, case by case after the Autobahn
//    testsuite's published case list (categories 1 framing, 2 pings/pongs,
//    3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 close handling,
//    9 limits (scaled down), 10 autofragmentation, 12/13 permessage-deflate),
//    written with our own raw client (exact frames, any bits, any chopping).
//    Autobahn's verdicts: "echo" cases must echo, "fail" cases must get a
//    close frame with the expected code, then the end of the connection.
// 2. Where we are stricter than Deno.serve (unmasked frames, versions, keys,
//    message limits).
// 3. The same handler on Deno.serve and on connctx, event for event.
// 4. Real peers: Deno's WebSocket, npm:ws, Python websockets, headless
//    Chromium (skipped with a message when missing), and Hono's
//    upgradeWebSocket unchanged.
// 5. Lifecycle: contexts, connState, openConnections, shutdown, raw
//    upgrade and CONNECT.
//
// Waits are bounded and event-driven; a delay is only ever a way of sending
// (Autobahn's "chopped" and "frame-wise" cases), never an assertion.

import { testCerts } from "./_test_http.ts";
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { serve, type ServeOptions, type Server } from "./server.ts";
import {
  installDenoUpgradeWebSocket,
  uninstallDenoUpgradeWebSocket,
  upgrade,
  upgradeWebSocket,
  type UpgradeWebSocketOptions,
  WebSocketClosedError,
} from "./websocket.ts";
import { cause, ContextKey, withValue } from "./context.ts";
import { rawConnect, type RawFrame, RawWsClient, record, within } from "./_ws/_test_util.ts";

installDenoUpgradeWebSocket();

const enc = new TextEncoder();
const dec = new TextDecoder();
const OP = { cont: 0, text: 1, binary: 2, close: 8, ping: 9, pong: 10 } as const;
const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------ helpers

interface EchoServer {
  server: Server;
  port: number;
  /** Events of every socket, in order of creation. */
  logs: string[][];
  closed: Promise<CloseEvent>[];
}

/** A connctx server echoing every message, recording each socket's events. */
function echoServer(
  ws: UpgradeWebSocketOptions = {},
  opts: Partial<ServeOptions> = {},
): EchoServer {
  const logs: string[][] = [];
  const closed: Promise<CloseEvent>[] = [];
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {}, ...opts }, (req) => {
    const { socket, response } = upgradeWebSocket(req, ws);
    const r = record(socket);
    logs.push(r.events);
    closed.push(r.closed);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  return { server, port: (server.addr as Deno.NetAddr).port, logs, closed };
}

async function connect(port: number, extra = "") {
  const { client, head } = await rawConnect(port, extra);
  assert.match(head, /^HTTP\/1\.1 101 /, head);
  return client;
}

/** Sends bytes in pieces of `size`, `pause` ms apart (Autobahn's "chops"). */
async function chopped(client: RawWsClient, bytes: Uint8Array, size: number, pause = 1) {
  for (let o = 0; o < bytes.length; o += size) {
    await client.send(bytes.subarray(o, o + size));
    if (pause > 0) await delay(pause);
  }
}

function closeCode(f: RawFrame): number {
  return f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
}

/** Autobahn "fail": frames before, then a close with `code`, then EOF. */
async function expectFail(client: RawWsClient, code: number, before: string[] = []) {
  const got: string[] = [];
  while (true) {
    const f = await client.read(3000);
    assert.ok(f, `connection ended without a close frame (wanted ${code})`);
    if (f.opcode === OP.close) {
      assert.equal(closeCode(f), code, `close code (after ${JSON.stringify(got)})`);
      break;
    }
    got.push(describe(f));
  }
  assert.deepEqual(got, before);
  // Reply as a client would; the server ends the connection.
  await client.sendFrame(OP.close, new Uint8Array([code >> 8, code & 255])).catch(() => {});
  await client.eof(3000);
  client.t.close();
}

/** Autobahn "clean close": our close, its echo (same code), EOF. */
async function closeClean(client: RawWsClient, code = 1000) {
  await client.sendFrame(OP.close, new Uint8Array([code >> 8, code & 255]));
  const r = await client.readClose(3000);
  assert.ok(r, "no close frame");
  assert.equal(r.code, code);
  await client.eof(3000);
  client.t.close();
  return r.before.map(describe);
}

function describe(f: RawFrame): string {
  const name = ["cont", "text", "binary", "", "", "", "", "", "close", "ping", "pong"][f.opcode];
  if (f.opcode === OP.text) {
    const t = dec.decode(f.payload);
    return `text:${t.length > 20 ? `${t.slice(0, 20)}…(${f.payload.length}B)` : t}`;
  }
  return `${name}:${f.payload.length}`;
}

async function readMessage(client: RawWsClient): Promise<{ opcode: number; payload: Uint8Array }> {
  // Reassembles a (possibly fragmented) message from the server.
  const parts: Uint8Array[] = [];
  let opcode = -1;
  while (true) {
    const f = await client.read(5000);
    assert.ok(f, "EOF while waiting for a message");
    if (f.opcode >= 8) continue;
    if (opcode === -1) opcode = f.opcode;
    parts.push(f.payload);
    if (f.fin) break;
  }
  const total = parts.reduce((n, p) => n + p.length, 0);
  const payload = new Uint8Array(total);
  let o = 0;
  for (const p of parts) payload.set(p, o), o += p.length;
  return { opcode, payload };
}

function bytes(n: number, seed = 1): Uint8Array {
  const b = new Uint8Array(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

const hex = (s: string) =>
  new Uint8Array(s.split(/\s+/).filter(Boolean).map((x) => parseInt(x, 16)));

// -------------------------------------------------- Autobahn 1: framing

Deno.test("autobahn 1.1.1–1.1.8, 1.2.1–1.2.8: text and binary at every length boundary", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    for (const op of [OP.text, OP.binary]) {
      for (const len of [0, 125, 126, 127, 128, 65535, 65536]) {
        const payload = op === OP.text ? enc.encode("*".repeat(len)) : bytes(len, len);
        await client.sendFrame(op, payload);
        const m = await readMessage(client);
        assert.equal(m.opcode, op);
        assert.deepEqual(m.payload, payload, `opcode ${op} length ${len}`);
      }
      // 1.1.8 / 1.2.8: 65536 bytes sent in chops of 997 octets.
      const payload = op === OP.text ? enc.encode("*".repeat(65536)) : bytes(65536, 8);
      await chopped(client, RawWsClient.frame(op, payload), 997, 0);
      assert.deepEqual((await readMessage(client)).payload, payload);
    }
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 2: pings and pongs

Deno.test("autobahn 2.1–2.4, 2.6: pings are answered with the same payload", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    const cases: Uint8Array[] = [
      new Uint8Array(0), // 2.1
      enc.encode("Hello, world!"), // 2.2
      new Uint8Array([0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff]), // 2.3
      bytes(125), // 2.4
    ];
    for (const p of cases) {
      await client.sendFrame(OP.ping, p);
      const f = (await client.read())!;
      assert.equal(f.opcode, OP.pong);
      assert.deepEqual(f.payload, p);
    }
    // 2.6: a 125-byte ping sent in 1-byte chops.
    const p = bytes(125, 6);
    await chopped(client, RawWsClient.frame(OP.ping, p), 1, 0);
    const f = (await client.read())!;
    assert.equal(f.opcode, OP.pong);
    assert.deepEqual(f.payload, p);
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 2.5: a ping with a 126-byte payload fails the connection (1002)", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    await client.sendFrame(OP.ping, bytes(126));
    await expectFail(client, 1002);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 2.7–2.11: unsolicited pongs are ignored; ten pings get ten pongs", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    await client.sendFrame(OP.pong); // 2.7
    await client.sendFrame(OP.pong, "unsolicited pong payload"); // 2.8
    await client.sendFrame(OP.pong, "unsolicited pong payload"); // 2.9: then a ping
    await client.sendFrame(OP.ping, "ping payload");
    let f = (await client.read())!;
    assert.deepEqual([f.opcode, dec.decode(f.payload)], [OP.pong, "ping payload"]);
    // 2.10: ten pings, back to back.
    for (let i = 0; i < 10; i++) await client.sendFrame(OP.ping, `payload-${i}`);
    for (let i = 0; i < 10; i++) {
      f = (await client.read())!;
      assert.deepEqual([f.opcode, dec.decode(f.payload)], [OP.pong, `payload-${i}`]);
    }
    // 2.11: ten pings, sent in 1-byte chops.
    const all = new Uint8Array(
      [...Array(10)].flatMap((_, i) => [...RawWsClient.frame(OP.ping, `chop-${i}`)]),
    );
    await chopped(client, all, 1, 0);
    for (let i = 0; i < 10; i++) {
      f = (await client.read())!;
      assert.deepEqual([f.opcode, dec.decode(f.payload)], [OP.pong, `chop-${i}`]);
    }
    assert.deepEqual(await closeClean(client), []);
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 3: reserved bits

Deno.test("autobahn 3.1–3.7: reserved bits fail the connection (1002), after echoing what came before", async () => {
  const s = echoServer({ compression: false });
  try {
    const cases: [string, number, number, "whole" | "framewise" | "chops"][] = [
      ["3.1", OP.text, 1, "whole"],
      ["3.2", OP.text, 2, "whole"],
      ["3.3", OP.text, 3, "framewise"],
      ["3.4", OP.text, 4, "chops"],
      ["3.5", OP.binary, 5, "whole"],
      ["3.6", OP.ping, 6, "whole"],
      ["3.7", OP.close, 7, "whole"],
    ];
    for (const [name, op, rsv, how] of cases) {
      const client = await connect(s.port);
      const before = name === "3.1" ? [] : ["text:Hello, world!"];
      const frames = [
        ...(name === "3.1" ? [] : [RawWsClient.frame(OP.text, "Hello, world!")]),
        RawWsClient.frame(
          op,
          op === OP.close ? new Uint8Array([3, 232]) : enc.encode("Hello, world!"),
          { rsv },
        ),
        RawWsClient.frame(OP.ping, "Hello, world!"), // must not be answered
      ];
      for (const f of frames) {
        if (how === "chops") await chopped(client, f, 1, 0);
        else await client.send(f);
        if (how === "framewise") await delay(5);
      }
      await expectFail(client, 1002, before).catch((e) => {
        throw new Error(`autobahn ${name}: ${e.message}`);
      });
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 4: opcodes

Deno.test("autobahn 4.1.1–4.2.5: reserved opcodes fail the connection (1002)", async () => {
  const s = echoServer();
  try {
    const cases: [string, number, boolean][] = [
      ["4.1.1", 3, false],
      ["4.1.2", 4, true],
      ["4.1.3", 5, false],
      ["4.1.4", 6, true],
      ["4.1.5", 7, true],
      ["4.2.1", 11, false],
      ["4.2.2", 12, true],
      ["4.2.3", 13, false],
      ["4.2.4", 14, true],
      ["4.2.5", 15, true],
    ];
    for (const [name, op, echoFirst] of cases) {
      const client = await connect(s.port);
      if (echoFirst) await client.sendFrame(OP.text, "Hello, world!");
      await client.sendFrame(
        op,
        name.endsWith("1") || name.endsWith("3")
          ? new Uint8Array(0)
          : enc.encode("reserved opcode payload"),
      );
      await client.sendFrame(OP.ping, "Hello, world!");
      await expectFail(client, 1002, echoFirst ? ["text:Hello, world!"] : []).catch((e) => {
        throw new Error(`autobahn ${name}: ${e.message}`);
      });
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 5: fragmentation

Deno.test("autobahn 5.1, 5.2: fragmented control frames fail (1002)", async () => {
  const s = echoServer();
  try {
    for (const op of [OP.ping, OP.pong]) {
      const client = await connect(s.port);
      await client.sendFrame(op, "fragment1", { fin: false });
      await client.sendFrame(OP.cont, "fragment2");
      await expectFail(client, 1002);
    }
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 5.3–5.8: fragmented text, whole, chopped and frame-wise, with and without a ping between", async () => {
  const s = echoServer();
  try {
    for (const withPing of [false, true]) {
      for (const how of ["whole", "chops", "framewise"] as const) {
        const client = await connect(s.port);
        const frames = [
          RawWsClient.frame(OP.text, "fragment1", { fin: false }),
          ...(withPing ? [RawWsClient.frame(OP.ping, "ping payload")] : []),
          RawWsClient.frame(OP.cont, "fragment2"),
        ];
        for (const f of frames) {
          if (how === "chops") await chopped(client, f, 1, 0);
          else await client.send(f);
          if (how === "framewise") await delay(5);
        }
        const got = await closeClean(client);
        assert.deepEqual(
          got,
          [...(withPing ? ["pong:12"] : []), "text:fragment1fragment2"],
          `ping ${withPing} ${how}`,
        );
      }
    }
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 5.9–5.17: continuations without a message fail (1002)", async () => {
  const s = echoServer();
  try {
    const variants: [string, Uint8Array[]][] = [
      ["5.9 (fin)", [
        RawWsClient.frame(OP.cont, "non-continuation payload"),
        RawWsClient.frame(OP.text, "Hello, world!"),
      ]],
      ["5.12 (no fin)", [
        RawWsClient.frame(OP.cont, "non-continuation payload", { fin: false }),
        RawWsClient.frame(OP.text, "Hello, world!"),
      ]],
      ["5.15", [
        RawWsClient.frame(OP.text, "fragment1", { fin: false }),
        RawWsClient.frame(OP.cont, "fragment2"),
        RawWsClient.frame(OP.cont, "fragment3", { fin: false }),
        RawWsClient.frame(OP.text, "fragment4"),
      ]],
      ["5.16", [
        RawWsClient.frame(OP.cont, "fragment1", { fin: false }),
        RawWsClient.frame(OP.text, "fragment2", { fin: false }),
        RawWsClient.frame(OP.cont, "fragment3"),
      ]],
      ["5.17", [
        RawWsClient.frame(OP.cont, "fragment1"),
        RawWsClient.frame(OP.text, "fragment2", { fin: false }),
        RawWsClient.frame(OP.cont, "fragment3"),
      ]],
    ];
    for (const [name, frames] of variants) {
      for (const how of ["whole", "chops", "framewise"] as const) {
        const client = await connect(s.port);
        for (const f of frames) {
          if (how === "chops") await chopped(client, f, 1, 0);
          else await client.send(f);
          if (how === "framewise") await delay(2);
        }
        await expectFail(client, 1002, name === "5.15" ? ["text:fragment1fragment2"] : []).catch(
          (e) => {
            throw new Error(`autobahn ${name} ${how}: ${e.message}`);
          },
        );
      }
    }
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 5.18: a second text frame inside a fragmented message fails (1002)", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    await client.sendFrame(OP.text, "fragment1", { fin: false });
    await client.sendFrame(OP.text, "fragment2");
    await expectFail(client, 1002);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 5.19, 5.20: five fragments with pings between, delayed — pongs first, then the message", async () => {
  const s = echoServer();
  try {
    for (const chops of [false, true]) {
      const client = await connect(s.port);
      const send = (f: Uint8Array) => chops ? chopped(client, f, 1, 0) : client.send(f);
      await send(RawWsClient.frame(OP.text, "fragment1", { fin: false }));
      await send(RawWsClient.frame(OP.cont, "fragment2", { fin: false }));
      await send(RawWsClient.frame(OP.ping, "pongme 1!"));
      let f = (await client.read())!; // the pong comes while the message is open
      assert.deepEqual([f.opcode, dec.decode(f.payload)], [OP.pong, "pongme 1!"]);
      await delay(20);
      await send(RawWsClient.frame(OP.cont, "fragment3", { fin: false }));
      await send(RawWsClient.frame(OP.cont, "fragment4", { fin: false }));
      await send(RawWsClient.frame(OP.ping, "pongme 2!"));
      f = (await client.read())!;
      assert.deepEqual([f.opcode, dec.decode(f.payload)], [OP.pong, "pongme 2!"]);
      await send(RawWsClient.frame(OP.cont, "fragment5"));
      assert.deepEqual(await closeClean(client), ["text:fragment1fragment2fr…(45B)"]);
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 6: UTF-8

// κόσμε, then each code point's first and last valid forms, the boundary
// conditions, noncharacters (valid UTF-8) and U+FFFD (Autobahn 6.2, 6.5–6.9,
// 6.11, 6.22, 6.23).
const VALID_UTF8 = [
  "ce ba e1 bd b9 cf 83 ce bc ce b5",
  "00",
  "c2 80",
  "e0 a0 80",
  "f0 90 80 80",
  "7f",
  "df bf",
  "ef bf bf",
  "f4 8f bf bf",
  "ed 9f bf",
  "ee 80 80",
  "ef bf bd",
  "ef bf be",
  "f0 9f bf be",
  "f4 8f bf be",
  "ef b7 90",
];

// 6.3 (κόσμε with a surrogate), 6.8/6.10 (5- and 6-byte forms), 6.12
// (unexpected continuations), 6.13 (lonely starts), 6.14/6.15 (missing
// continuations), 6.16 (FE, FF), 6.17–6.19 (overlong), 6.20/6.21 (UTF-16
// surrogates, single and paired).
const INVALID_UTF8 = [
  "ce ba e1 bd b9 cf 83 ce bc ce b5 ed a0 80 65 64 69 74 65 64",
  "f8 88 80 80 80",
  "fc 84 80 80 80 80",
  "f7 bf bf bf",
  "fb bf bf bf bf",
  "80",
  "bf",
  "80 bf 80 bf",
  "c0 20",
  "e0 20",
  "c0",
  "e0 80",
  "f0 80 80",
  "df",
  "ef bf",
  "f7 bf bf",
  "c0 e0 80 f0 80 80 f8 88 80 80",
  "fe",
  "ff",
  "fe fe ff ff",
  "c0 af",
  "e0 80 af",
  "f0 80 80 af",
  "c1 bf",
  "e0 9f bf",
  "f0 8f bf bf",
  "c0 80",
  "e0 80 80",
  "ed a0 80",
  "ed af bf",
  "ed bf bf",
  "ed a0 80 ed b0 80",
  "ed af bf ed bf bf",
  "f4 90 80 80",
];

Deno.test("autobahn 6.1: empty text messages, whole and fragmented", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    await client.sendFrame(OP.text, ""); // 6.1.1
    await client.sendFrame(OP.text, "", { fin: false }); // 6.1.2
    await client.sendFrame(OP.cont, "", { fin: false });
    await client.sendFrame(OP.cont, "");
    await client.sendFrame(OP.text, "", { fin: false }); // 6.1.3
    await client.sendFrame(OP.cont, "middle", { fin: false });
    await client.sendFrame(OP.cont, "");
    assert.deepEqual(await closeClean(client), ["text:", "text:", "text:middle"]);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 6.2, 6.5–6.9, 6.11, 6.22, 6.23: valid UTF-8 echoes, whole and in 1-byte fragments", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    for (const h of VALID_UTF8) {
      const b = hex(h);
      await client.sendFrame(OP.text, b);
      assert.deepEqual((await readMessage(client)).payload, b, h);
      // 6.2.3/6.2.4: fragments of one octet, ending inside code points.
      for (let i = 0; i < b.length; i++) {
        await client.sendFrame(i === 0 ? OP.text : OP.cont, b.subarray(i, i + 1), {
          fin: i === b.length - 1,
        });
      }
      assert.deepEqual((await readMessage(client)).payload, b, `${h} in 1-byte fragments`);
    }
    // 6.2.2: split on a code point boundary.
    const k = hex(VALID_UTF8[0]);
    await client.sendFrame(OP.text, k.subarray(0, 5), { fin: false });
    await client.sendFrame(OP.cont, k.subarray(5));
    assert.deepEqual((await readMessage(client)).payload, k);
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 6.3, 6.8, 6.10, 6.12–6.21: invalid UTF-8 fails (1007), whole and in 1-byte fragments", async () => {
  const s = echoServer();
  try {
    for (const h of INVALID_UTF8) {
      for (const fragmented of [false, true]) {
        const b = hex(h);
        const client = await connect(s.port);
        if (!fragmented) await client.sendFrame(OP.text, b);
        else {
          for (let i = 0; i < b.length; i++) {
            await client.sendFrame(i === 0 ? OP.text : OP.cont, b.subarray(i, i + 1), {
              fin: i === b.length - 1,
            });
          }
        }
        await expectFail(client, 1007).catch((e) => {
          throw new Error(`${h} fragmented=${fragmented}: ${e.message}`);
        });
      }
    }
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 6.4.1–6.4.4: invalid UTF-8 fails fast, before the rest of the message is sent", async () => {
  const s = echoServer();
  try {
    const valid = hex("ce ba e1 bd b9 cf 83 ce bc ce b5");
    const invalid = hex("f4 90 80 80");
    const rest = enc.encode("edited");
    // 6.4.1: three fragments; the 2nd is invalid; the 3rd is never sent.
    let client = await connect(s.port);
    await client.sendFrame(OP.text, valid, { fin: false });
    await client.sendFrame(OP.cont, invalid, { fin: false });
    await expectFail(client, 1007);
    // 6.4.2: the invalid sequence split across two fragments.
    client = await connect(s.port);
    await client.sendFrame(OP.text, new Uint8Array([...valid, 0xf4]), { fin: false });
    await client.sendFrame(OP.cont, hex("90"), { fin: false });
    await expectFail(client, 1007);
    // 6.4.3 / 6.4.4: ONE frame; only its head and the invalid bytes are sent.
    for (const cut of [valid.length + 4, valid.length + 2]) {
      client = await connect(s.port);
      const frame = RawWsClient.frame(OP.text, new Uint8Array([...valid, ...invalid, ...rest]));
      await client.send(frame.subarray(0, 6 + cut));
      await expectFail(client, 1007);
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 7: close handling

Deno.test("autobahn 7.1.1–7.1.6: the close handshake and what comes after it", async () => {
  const s = echoServer();
  try {
    // 7.1.1: a message, then close.
    let client = await connect(s.port);
    await client.sendFrame(OP.text, "Hello World!");
    assert.deepEqual(await closeClean(client), ["text:Hello World!"]);
    // 7.1.2–7.1.4: after our close, a second close, a ping and a message
    // get nothing: the server answers the first close only, then ends.
    for (const after of [OP.close, OP.ping, OP.text]) {
      client = await connect(s.port);
      await client.sendFrame(OP.close, new Uint8Array([3, 232]));
      await client.sendFrame(
        after,
        after === OP.close ? new Uint8Array([3, 232]) : enc.encode("after close"),
      );
      const r = await client.readClose(3000);
      assert.deepEqual([r?.code, r?.before.length], [1000, 0]);
      await client.eof(3000);
    }
    // 7.1.5: a fragmented message interrupted by close.
    client = await connect(s.port);
    await client.sendFrame(OP.text, "fragment1", { fin: false });
    assert.deepEqual(await closeClean(client), []);
    // 7.1.6: a big message, a ping, then close: all answered in order.
    client = await connect(s.port);
    const big = "BAsd7&jh23".repeat(26214);
    await client.sendFrame(OP.text, big);
    await client.sendFrame(OP.ping, "ping");
    const got = await closeClean(client);
    assert.deepEqual(got, [`text:${big.slice(0, 20)}…(${big.length}B)`, "pong:4"]);
    for (const log of s.logs.slice(-1)) assert.equal(log.at(-1), "close:1000::true");
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 7.3.1–7.3.6, 7.5.1: close payloads — empty, 1 byte, reasons, too long, invalid UTF-8", async () => {
  const s = echoServer();
  try {
    // 7.3.1: empty close: echoed empty.
    let client = await connect(s.port);
    await client.sendFrame(OP.close);
    let f = (await client.read())!;
    assert.deepEqual([f.opcode, f.payload.length], [OP.close, 0]);
    await client.eof();
    // 7.3.2: 1-byte payload.
    client = await connect(s.port);
    await client.sendFrame(OP.close, new Uint8Array([0x03]));
    await expectFail(client, 1002);
    // 7.3.3–7.3.5: code, code + reason, code + 123-byte reason: code echoed.
    for (const reason of ["", "Hello World!", "*".repeat(123)]) {
      client = await connect(s.port);
      await client.sendFrame(OP.close, new Uint8Array([3, 232, ...enc.encode(reason)]));
      f = (await client.read())!;
      assert.equal(closeCode(f), 1000);
      await client.eof();
    }
    const reasons = await Promise.all(s.closed.slice(-3));
    assert.deepEqual(reasons.map((e) => e.reason.length), [0, 12, 123]);
    // 7.3.6: a 124-byte reason makes a 126-byte control frame.
    client = await connect(s.port);
    await client.sendFrame(OP.close, new Uint8Array([3, 232, ...enc.encode("*".repeat(124))]));
    await expectFail(client, 1002);
    // 7.5.1: a reason that is not UTF-8.
    client = await connect(s.port);
    await client.sendFrame(OP.close, new Uint8Array([3, 232, ...hex(INVALID_UTF8[0])]));
    await expectFail(client, 1007);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 7.7.1–7.7.13, 7.9.1–7.9.9, 7.13.1–7.13.2: close codes on the wire", async () => {
  const s = echoServer();
  try {
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
    for (const code of valid) {
      const client = await connect(s.port);
      await client.sendFrame(OP.close, new Uint8Array([code >> 8, code & 255]));
      const f = (await client.read())!;
      assert.equal(closeCode(f), code, `echo of ${code}`);
      await client.eof();
    }
    const events = await Promise.all(s.closed);
    assert.deepEqual(events.map((e) => e.code), valid);
    const invalid = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535];
    for (const code of invalid) {
      const client = await connect(s.port);
      await client.sendFrame(OP.close, new Uint8Array([code >> 8, code & 255]));
      await expectFail(client, 1002).catch((e) => {
        throw new Error(`code ${code}: ${e.message}`);
      });
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 9: limits (scaled down)

Deno.test("autobahn 9.1, 9.2 (scaled): big text and binary messages echo byte for byte", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    for (const size of [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024]) {
      const text = enc.encode("Hello, world! ".repeat(Math.ceil(size / 14)).slice(0, size));
      await client.sendFrame(OP.text, text);
      assert.deepEqual((await readMessage(client)).payload, text, `text ${size}`);
      const bin = bytes(size, size);
      await client.sendFrame(OP.binary, bin);
      assert.deepEqual((await readMessage(client)).payload, bin, `binary ${size}`);
    }
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 9.3, 9.4 (scaled): 1 MiB in fragments of 64 B to 1 MiB", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    const msg = bytes(1 << 20, 3);
    for (const frag of [64, 256, 1024, 4096, 16384, 65536, 262144, 1 << 20]) {
      const frames: Uint8Array[] = [];
      for (let o = 0; o < msg.length; o += frag) {
        frames.push(RawWsClient.frame(o === 0 ? OP.binary : OP.cont, msg.subarray(o, o + frag), {
          fin: o + frag >= msg.length,
        }));
      }
      const all = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
      let o = 0;
      for (const f of frames) all.set(f, o), o += f.length;
      await client.send(all);
      assert.deepEqual((await readMessage(client)).payload, msg, `fragments of ${frag}`);
    }
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 9.5, 9.6 (scaled): a 256 KiB message sent in chops of 64 B to 8 KiB", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    const msg = enc.encode("*".repeat(256 * 1024));
    for (const chop of [64, 128, 256, 1024, 4096, 8192]) {
      await chopped(client, RawWsClient.frame(OP.text, msg), chop, 0);
      assert.deepEqual((await readMessage(client)).payload, msg, `chops of ${chop}`);
    }
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 9.7, 9.8 (scaled): 1000 round trips of small text and binary messages", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    for (const op of [OP.text, OP.binary]) {
      for (let i = 0; i < 1000; i++) {
        const p = op === OP.text ? enc.encode(`message ${i}`) : bytes(16, i);
        await client.sendFrame(op, p);
        assert.deepEqual((await readMessage(client)).payload, p);
      }
    }
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 10: autofragmentation

Deno.test("autobahn 10.1.1: 65536 bytes of text in 1300-byte fragments echo as one message", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    const msg = enc.encode("*".repeat(65536));
    for (let o = 0; o < msg.length; o += 1300) {
      await client.sendFrame(o === 0 ? OP.text : OP.cont, msg.subarray(o, o + 1300), {
        fin: o + 1300 >= msg.length,
      });
    }
    assert.deepEqual((await readMessage(client)).payload, msg);
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- stricter than Deno.serve

Deno.test("strict: unmasked client frames fail with 1002 (Deno.serve accepts them)", async () => {
  const s = echoServer();
  try {
    const client = await connect(s.port);
    await client.sendFrame(OP.text, "hi", { mask: false });
    await expectFail(client, 1002);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("strict: 80 MiB in 1 MiB fragments fails with 1009 once past maxMessageBytes", async () => {
  const s = echoServer({ maxMessageBytes: 4 << 20 });
  try {
    const client = await connect(s.port);
    const chunk = new Uint8Array(1 << 20);
    let sent = 0;
    const writer = (async () => {
      try {
        for (let i = 0; i < 80; i++) {
          await client.sendFrame(i === 0 ? OP.binary : OP.cont, chunk, { fin: i === 79 });
          sent++;
        }
      } catch { /* the server ended the connection */ }
    })();
    const close = await client.readClose(5000);
    assert.equal(close?.code, 1009);
    await writer;
    assert.ok(sent < 80, `the server read all ${sent} fragments`);
    await within(s.closed[0], 3000, "server close event");
  } finally {
    await s.server.shutdown();
  }
});

async function handshakeStatus(
  port: number,
  request: string,
): Promise<{ status: number; head: string }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(request));
    const buf = new Uint8Array(4096);
    let got = "";
    while (!got.includes("\r\n\r\n")) {
      const n = await within(conn.read(buf), 3000, "handshake response");
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    return { status: Number(got.slice(9, 12)), head: got.slice(0, got.indexOf("\r\n\r\n")) };
  } finally {
    conn.close();
  }
}

Deno.test("strict: handshake refusals — 400, 426 with Sec-WebSocket-Version: 13", async () => {
  const s = echoServer({ protocol: "chat" });
  try {
    const key = "dGhlIHNhbXBsZSBub25jZQ==";
    const base = (h: Record<string, string>, method = "GET") =>
      `${method} / HTTP/1.1\r\nHost: x\r\n` +
      Object.entries({
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "chat",
        ...h,
      }).filter(([, v]) => v !== "").map(([k, v]) => `${k}: ${v}\r\n`).join("") +
      (method === "POST" ? "Content-Length: 0\r\n" : "") + "\r\n";
    const cases: [string, string, number][] = [
      ["ok", base({}), 101],
      ["POST", base({}, "POST"), 400],
      ["no Upgrade", base({ Upgrade: "" }), 400],
      ["Upgrade: h2c", base({ Upgrade: "h2c" }), 400],
      ["no Connection: upgrade", base({ Connection: "keep-alive" }), 400],
      ["version 8", base({ "Sec-WebSocket-Version": "8" }), 426],
      ["no version", base({ "Sec-WebSocket-Version": "" }), 400],
      ["no key", base({ "Sec-WebSocket-Key": "" }), 400],
      ["10-byte key", base({ "Sec-WebSocket-Key": "AAAAAAAAAAAAAA==" }), 400],
      ["key not base64", base({ "Sec-WebSocket-Key": "!!!!!!!!!!!!!!!!!!!!!!==" }), 400],
      ["protocol not offered", base({ "Sec-WebSocket-Protocol": "other" }), 400],
      [
        "tokens in lists, any case",
        base({ Connection: "keep-alive, UPGRADE", Upgrade: "WebSocket" }),
        101,
      ],
    ];
    for (const [name, req, want] of cases) {
      const { status, head } = await handshakeStatus(s.port, req);
      assert.equal(status, want, `${name}: ${head}`);
      if (want === 426) assert.match(head, /\r\nsec-websocket-version: 13\r\n/i);
      if (want === 101) {
        assert.match(head, /\r\nupgrade: websocket\r\n/i);
        assert.match(head, /\r\nconnection: Upgrade\r\n/i);
        assert.match(head, /\r\nsec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
        assert.match(head, /\r\nsec-websocket-protocol: chat\r\n/i);
      }
    }
  } finally {
    await s.server.shutdown();
  }
});

// -------------------------------------------------- Autobahn 12/13: permessage-deflate

/** A client side of permessage-deflate, with context takeover both ways. */
class DeflateClient {
  #d: zlib.DeflateRaw;
  #i: zlib.InflateRaw;
  #dout: Uint8Array[] = [];
  #iout: Uint8Array[] = [];
  constructor(clientBits = 15, readonly noContext = false) {
    this.#d = zlib.createDeflateRaw({ windowBits: Math.max(9, clientBits) });
    this.#i = zlib.createInflateRaw({ windowBits: 15 });
    this.#d.on("data", (c: Uint8Array) => this.#dout.push(c));
    this.#i.on("data", (c: Uint8Array) => this.#iout.push(c));
  }
  #join(parts: Uint8Array[]): Uint8Array {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let o = 0;
    for (const p of parts.splice(0)) out.set(p, o), o += p.length;
    return out;
  }
  compress(data: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve) => {
      this.#d.write(data);
      this.#d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        const all = this.#join(this.#dout);
        if (this.noContext) this.#d.reset();
        resolve(all.subarray(0, all.length - 4));
      });
    });
  }
  inflate(data: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve) => {
      this.#i.write(data);
      this.#i.write(new Uint8Array([0, 0, 0xff, 0xff]));
      this.#i.flush(zlib.constants.Z_SYNC_FLUSH, () => resolve(this.#join(this.#iout)));
    });
  }
  close() {
    this.#d.close();
    this.#i.close();
  }
}

Deno.test("autobahn 12.1–12.5 (scaled): compressed echo of text and binary, 16 B to 128 KiB, with context takeover", async () => {
  const s = echoServer();
  try {
    const { client, head } = await rawConnect(
      s.port,
      "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
    );
    assert.match(
      head,
      /sec-websocket-extensions: permessage-deflate; server_no_context_takeover\r\n/i,
    );
    const z = new DeflateClient();
    const sizes = [16, 64, 256, 1024, 4096, 8192, 16384, 32768, 65536, 131072];
    for (const op of [OP.text, OP.binary]) {
      for (const size of sizes) {
        for (let rep = 0; rep < 3; rep++) {
          const payload = op === OP.text
            ? enc.encode(
              JSON.stringify({ n: rep, text: "Hello, world! ".repeat(size / 14 + 1) }).slice(
                0,
                size,
              ),
            )
            : bytes(size, rep + 1).map((b) => b & 0x0f); // compressible binary
          await client.sendFrame(op, await z.compress(payload), { rsv: 4 });
          const f = (await client.read(5000))!;
          assert.equal(f.opcode, op);
          const got = f.rsv1 ? await z.inflate(f.payload) : f.payload;
          assert.equal(f.rsv1, size >= 64, `compressed reply for ${size} bytes (threshold 64)`);
          assert.deepEqual(got, payload, `op ${op} size ${size} rep ${rep}`);
        }
      }
    }
    // A compressed message split over fragments (RSV1 on the first only).
    const msg = enc.encode("fragmented and compressed ".repeat(100));
    const c = await z.compress(msg);
    await client.sendFrame(OP.text, c.subarray(0, 10), { rsv: 4, fin: false });
    await client.sendFrame(OP.cont, c.subarray(10));
    const f = (await client.read())!;
    assert.deepEqual(await z.inflate(f.payload), msg);
    z.close();
    await closeClean(client);
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("autobahn 13.1–13.7: permessage-deflate parameter combinations", async () => {
  const s = echoServer();
  try {
    const offers: [string, string, string, number, boolean][] = [
      // [case, offer, expected response, client window bits, client no context]
      ["13.1", "permessage-deflate", "permessage-deflate; server_no_context_takeover", 15, false],
      [
        "13.2",
        "permessage-deflate; client_no_context_takeover",
        "permessage-deflate; server_no_context_takeover",
        15,
        true,
      ],
      [
        "13.3",
        "permessage-deflate; server_max_window_bits=8; client_max_window_bits",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
        15,
        false,
      ],
      [
        "13.4",
        "permessage-deflate; server_max_window_bits=15; client_max_window_bits=15",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15; client_max_window_bits=15",
        15,
        false,
      ],
      [
        "13.5",
        "permessage-deflate; server_no_context_takeover; client_no_context_takeover; client_max_window_bits=8",
        "permessage-deflate; server_no_context_takeover; client_max_window_bits=8",
        8,
        true,
      ],
      [
        "13.6",
        "permessage-deflate; client_no_context_takeover; server_max_window_bits=15",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=15",
        15,
        true,
      ],
      [
        "13.7",
        "permessage-deflate; foo=1, permessage-deflate; server_max_window_bits=9; client_max_window_bits=9, permessage-deflate",
        "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_max_window_bits=9",
        9,
        false,
      ],
    ];
    for (const [name, offer, want, bits, noCtx] of offers) {
      const { client, head } = await rawConnect(s.port, `Sec-WebSocket-Extensions: ${offer}\r\n`);
      const got = head.match(/sec-websocket-extensions: (.*)/i)?.[1]?.trim();
      assert.equal(got, want, name);
      const z = new DeflateClient(bits, noCtx);
      for (let i = 0; i < 20; i++) {
        const payload = enc.encode(`${name} message ${i}: ${"abcdefgh".repeat(40 + i)}`);
        await client.sendFrame(OP.text, await z.compress(payload), { rsv: 4 });
        const f = (await client.read(5000))!;
        assert.deepEqual(f.rsv1 ? await z.inflate(f.payload) : f.payload, payload, `${name} #${i}`);
      }
      z.close();
      await closeClean(client);
    }
  } finally {
    await s.server.shutdown();
  }
});

Deno.test("permessage-deflate: RSV1 without negotiation fails (1002); bad data (1007); a bomb (1009)", async () => {
  const s = echoServer({ maxMessageBytes: 1 << 20 });
  try {
    let client = await connect(s.port);
    await client.sendFrame(OP.text, "x", { rsv: 4 });
    await expectFail(client, 1002);
    ({ client } = await rawConnect(s.port, "Sec-WebSocket-Extensions: permessage-deflate\r\n"));
    await client.sendFrame(OP.text, new Uint8Array([0xff, 0xff, 0xff]), { rsv: 4 });
    await expectFail(client, 1007);
    ({ client } = await rawConnect(s.port, "Sec-WebSocket-Extensions: permessage-deflate\r\n"));
    const bomb = zlib.deflateRawSync(new Uint8Array(256 << 20), {
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    assert.ok(bomb.length < 300_000);
    await client.sendFrame(OP.binary, bomb.subarray(0, bomb.length - 4), { rsv: 4 });
    await expectFail(client, 1009);
    // RSV1 on a continuation frame.
    ({ client } = await rawConnect(s.port, "Sec-WebSocket-Extensions: permessage-deflate\r\n"));
    await client.sendFrame(OP.text, "a", { fin: false });
    await client.sendFrame(OP.cont, "b", { rsv: 4 });
    await expectFail(client, 1002);
    // compression: false declines the extension.
  } finally {
    await s.server.shutdown();
  }
  const off = echoServer({ compression: false });
  try {
    const { head } = await rawConnect(off.port, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    assert.doesNotMatch(head, /sec-websocket-extensions/i);
  } finally {
    await off.server.shutdown();
  }
});

// -------------------------------------------------- Deno.serve vs connctx, event for event

/** A handler that records what a socket does, as text. */
function recordingHandler(log: string[][], upgradeFn: typeof Deno.upgradeWebSocket) {
  return (req: Request) => {
    const events: string[] = [];
    log.push(events);
    const { socket, response } = upgradeFn(req);
    events.push(`upgraded rs=${socket.readyState}`);
    try {
      socket.send("too early");
    } catch (e) {
      events.push(`send-early:${(e as DOMException).name}`);
    }
    socket.onopen = () => events.push(`open rs=${socket.readyState} bt=${socket.binaryType}`);
    socket.onmessage = (e) => {
      const d = e.data;
      events.push(
        `message:${
          typeof d === "string" ? `text:${d}` : `${d.constructor.name}:${d.byteLength ?? d.size}`
        }`,
      );
      if (d === "close-me") socket.close(4001, "bye");
      else if (d === "close-empty") socket.close();
      else socket.send(d);
    };
    socket.onerror = () => events.push("error");
    socket.onclose = (e) =>
      events.push(`close:${e.code}:${e.reason}:${e.wasClean} rs=${socket.readyState}`);
    return response;
  };
}

type Script = (c: RawWsClient) => Promise<void>;

const SCRIPTS: Record<string, Script> = {
  "echo, then the client closes with a code and reason": async (c) => {
    await c.sendFrame(OP.text, "hello");
    await c.sendFrame(OP.binary, new Uint8Array([1, 2, 3]));
    await c.read();
    await c.read();
    await c.sendFrame(OP.close, new Uint8Array([0x0b, 0xb8, ...enc.encode("done")])); // 3000
    await c.readClose();
    await c.eof();
  },
  "fragments and pings": async (c) => {
    await c.sendFrame(OP.text, "frag", { fin: false });
    await c.sendFrame(OP.ping, "p");
    await c.sendFrame(OP.cont, "ment");
    await c.read(); // pong
    await c.read(); // echo
    await c.sendFrame(OP.close, new Uint8Array([3, 232]));
    await c.readClose();
    await c.eof();
  },
  "the server closes with 4001": async (c) => {
    await c.sendFrame(OP.text, "close-me");
    const r = await c.readClose();
    assert.equal(r?.code, 4001);
    await c.sendFrame(OP.close, new Uint8Array([0x0f, 0xa1]));
    await c.eof();
  },
  "the server closes without a code": async (c) => {
    await c.sendFrame(OP.text, "close-empty");
    const r = await c.readClose();
    assert.equal(r?.code, 1005);
    await c.sendFrame(OP.close);
    await c.eof();
  },
  "the client closes without a code": async (c) => {
    await c.sendFrame(OP.close);
    await c.readClose();
    await c.eof();
  },
  "the client drops the connection": async (c) => {
    await c.sendFrame(OP.text, "bye");
    await c.read();
    c.t.close();
  },
};

Deno.test("Deno.serve vs connctx: the same handler, the same events", async (t) => {
  const denoLog: string[][] = [];
  const ourLog: string[][] = [];
  const deno = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    recordingHandler(denoLog, Deno.upgradeWebSocket),
  );
  const ours = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {} },
    recordingHandler(ourLog, Deno.upgradeWebSocket), // the global wrapper, as an unchanged handler
  );
  try {
    for (const [name, script] of Object.entries(SCRIPTS)) {
      await t.step(name, async () => {
        for (
          const [port, log] of [[deno.addr.port, denoLog], [
            (ours.addr as Deno.NetAddr).port,
            ourLog,
          ]] as const
        ) {
          const { client } = await rawConnect(port);
          await script(client);
          // Bounded wait for the server side to report the close.
          const until = Date.now() + 3000;
          while (!log.at(-1)?.some((e) => e.startsWith("close:")) && Date.now() < until) {
            await delay(5);
          }
        }
        const theirs = denoLog.at(-1)!;
        const mine = ourLog.at(-1)!;
        if (name === "the client drops the connection") {
          // Deno reports code 0 for a dropped connection; the WHATWG spec
          // (and connctx) say 1006.
          assert.deepEqual(theirs.at(-1), "close:0::false rs=3");
          assert.deepEqual(mine.slice(0, -1), theirs.slice(0, -1));
          assert.deepEqual(mine.at(-1), "close:1006::false rs=3");
        } else {
          assert.deepEqual(mine, theirs);
        }
      });
    }
  } finally {
    await deno.shutdown();
    await ours.shutdown();
  }
});

// -------------------------------------------------- real peers

function echoWith(opts: UpgradeWebSocketOptions = {}, page?: string) {
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    if (req.headers.get("upgrade") !== "websocket") {
      return new Response(page ?? "not a websocket", {
        headers: { "content-type": "text/html; charset=utf-8" },
      });
    }
    const { socket, response } = upgradeWebSocket(req, opts);
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  return { server, port: (server.addr as Deno.NetAddr).port };
}

Deno.test("peer: Deno's WebSocket client — subprotocol, text, binary, close code and reason", async () => {
  const { server, port } = echoWith({ protocol: "chat.v2" });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/room?x=1`, ["chat.v1", "chat.v2"]);
    ws.binaryType = "arraybuffer";
    const got: unknown[] = [];
    await within(new Promise((r) => (ws.onopen = r)), 3000, "open");
    assert.equal(ws.protocol, "chat.v2");
    const done = new Promise<void>((r) => {
      ws.onmessage = (e) => {
        got.push(e.data);
        if (got.length === 3) r();
      };
    });
    ws.send("héllo");
    ws.send(new Uint8Array([1, 2, 3]));
    ws.send("x".repeat(200_000));
    await within(done, 5000, "echoes");
    assert.equal(got[0], "héllo");
    assert.deepEqual([...new Uint8Array(got[1] as ArrayBuffer)], [1, 2, 3]);
    assert.equal((got[2] as string).length, 200_000);
    const closed = new Promise<CloseEvent>((r) => (ws.onclose = r));
    ws.close(3456, "see you");
    const ev = await within(closed, 3000, "close");
    assert.deepEqual([ev.code, ev.wasClean], [3456, true]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("peer: npm:ws client — permessage-deflate both ways, ping/pong, close", async () => {
  let WS: typeof import("npm:ws@8").WebSocket;
  try {
    // deno-lint-ignore no-import-prefix
    WS = (await import("npm:ws@8")).WebSocket;
  } catch (e) {
    console.log(`skipped: npm:ws unavailable (${(e as Error).message})`);
    return;
  }
  const { server, port } = echoWith();
  try {
    const ws = new WS(`ws://127.0.0.1:${port}/`, { perMessageDeflate: { threshold: 0 } });
    await within(new Promise((r, j) => (ws.once("open", r), ws.once("error", j))), 3000, "open");
    assert.match(ws.extensions, /permessage-deflate/);
    const messages: { data: Buffer; binary: boolean }[] = [];
    ws.on("message", (data: Buffer, binary: boolean) => messages.push({ data, binary }));
    const big = "compress me please ".repeat(10_000);
    ws.send(big);
    ws.send(new Uint8Array(5000).fill(7));
    ws.send("tiny");
    const pong = new Promise<Buffer>((r) => ws.once("pong", r));
    ws.ping("are you there");
    assert.equal((await within(pong, 3000, "pong")).toString(), "are you there");
    const until = Date.now() + 5000;
    while (messages.length < 3 && Date.now() < until) await delay(5);
    assert.equal(messages.length, 3);
    assert.equal(messages[0].data.toString(), big);
    assert.equal(messages[0].binary, false);
    assert.equal(messages[1].data.length, 5000);
    assert.equal(messages[1].binary, true);
    assert.equal(messages[2].data.toString(), "tiny");
    const closed = new Promise<[number, string]>((r) =>
      ws.once("close", (c: number, reason: Buffer) => r([c, reason.toString()]))
    );
    ws.close(4000, "bye");
    assert.deepEqual(await within(closed, 3000, "close"), [4000, ""]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("peer: Python websockets client (with permessage-deflate)", async () => {
  const py = "/usr/bin/python3";
  const check = await new Deno.Command(py, {
    args: ["-c", "import websockets"],
    stderr: "null",
    stdout: "null",
  })
    .output().catch(() => null);
  if (!check?.success) {
    console.log("skipped: /usr/bin/python3 with the websockets package is not installed");
    return;
  }
  const { server, port } = echoWith();
  try {
    const script = `
import asyncio, json, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:${port}/py", max_size=None) as ws:
        out = {"extensions": [e.name for e in ws.extensions]}
        await ws.send("héllo")
        out["text"] = await ws.recv()
        await ws.send(bytes(range(256)) * 100)
        b = await ws.recv()
        out["binary"] = len(b) == 25600 and b[:3] == bytes([0, 1, 2])
        await ws.send("z" * 300000)
        out["big"] = len(await ws.recv())
        pong = await ws.ping(b"py")
        await asyncio.wait_for(pong, 3)
        out["pong"] = True
        await ws.close(code=1000, reason="done")
        out["close"] = [ws.close_code, ws.close_reason]
    print(json.dumps(out))
asyncio.run(main())
`;
    const out = await within(
      new Deno.Command(py, { args: ["-c", script], stdout: "piped", stderr: "piped" }).output(),
      20_000,
      "python client",
    );
    assert.ok(out.success, dec.decode(out.stderr));
    const r = JSON.parse(dec.decode(out.stdout));
    assert.deepEqual(r, {
      extensions: ["permessage-deflate"],
      text: "héllo",
      binary: true,
      big: 300000,
      pong: true,
      close: [1000, ""],
    });
  } finally {
    await server.shutdown();
  }
});

Deno.test("peer: headless Chromium opens a page served by connctx that talks over WebSocket", async () => {
  const chromium = "/usr/bin/chromium";
  try {
    await Deno.stat(chromium);
  } catch {
    console.log(`skipped: ${chromium} is not installed`);
    return;
  }
  // The few puppeteer calls used here (its own typings are not needed).
  interface Tab {
    goto(url: string): Promise<unknown>;
    evaluate<T>(fn: () => T): Promise<Awaited<T>>;
  }
  interface Browser {
    newPage(): Promise<Tab>;
    close(): Promise<void>;
  }
  let puppeteer: {
    launch(o: { executablePath: string; headless: boolean; args: string[] }): Promise<Browser>;
  };
  try {
    puppeteer =
      // deno-lint-ignore no-import-prefix
      ((await import("npm:puppeteer-core@23")) as unknown as { default: typeof puppeteer }).default;
  } catch (e) {
    console.log(`skipped: npm:puppeteer-core unavailable (${(e as Error).message})`);
    return;
  }
  const page = `<!doctype html><title>ws</title><script>
    window.result = new Promise((resolve) => {
      const ws = new WebSocket("ws://" + location.host + "/ws", ["chat"]);
      ws.binaryType = "arraybuffer";
      const got = [];
      ws.onopen = () => { ws.send("héllo"); ws.send(new Uint8Array([9, 8, 7])); ws.send("y".repeat(100000)); };
      ws.onmessage = (e) => {
        got.push(typeof e.data === "string" ? e.data.length + ":" + e.data.slice(0, 5) : "bin:" + new Uint8Array(e.data).join(","));
        if (got.length === 3) ws.close(1000, "done");
      };
      ws.onclose = (e) => resolve({ got, code: e.code, clean: e.wasClean, protocol: ws.protocol, extensions: ws.extensions });
    });
  </script>`;
  const { server, port } = echoWith({ protocol: "chat" }, page);
  const profile = await Deno.makeTempDir({ prefix: "connctx-chromium-" });
  const browser = await puppeteer.launch({
    executablePath: chromium,
    headless: true,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      `--user-data-dir=${profile}`,
    ],
  });
  try {
    const tab = await browser.newPage();
    await tab.goto(`http://127.0.0.1:${port}/`);
    const r = await within(
      tab.evaluate(() => (globalThis as unknown as { result: Promise<unknown> }).result),
      15_000,
      "page result",
    );
    assert.deepEqual(r, {
      got: ["5:héllo", "bin:9,8,7", "100000:yyyyy"],
      code: 1000,
      clean: true,
      protocol: "chat",
      // Chromium offers "permessage-deflate; client_max_window_bits".
      extensions: "permessage-deflate; server_no_context_takeover",
    });
  } finally {
    await browser.close();
    await server.shutdown();
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  }
});

Deno.test("peer: Hono's upgradeWebSocket from hono/deno runs unchanged", async () => {
  let Hono: typeof import("npm:hono@4").Hono;
  let honoUpgrade: typeof import("npm:hono@4/deno").upgradeWebSocket;
  try {
    // deno-lint-ignore no-import-prefix
    Hono = (await import("npm:hono@4")).Hono;
    // deno-lint-ignore no-import-prefix
    honoUpgrade = (await import("npm:hono@4/deno")).upgradeWebSocket;
  } catch (e) {
    console.log(`skipped: npm:hono unavailable (${(e as Error).message})`);
    return;
  }
  const seen: string[] = [];
  const app = new Hono();
  app.get(
    "/ws",
    honoUpgrade(() => ({
      onOpen: () => seen.push("open"),
      onMessage: (evt, ws) => {
        seen.push(`message:${evt.data}`);
        ws.send(`hono says ${evt.data}`);
      },
      onClose: (evt) => seen.push(`close:${(evt as CloseEvent).code}`),
    })),
  );
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, app.fetch);
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${(server.addr as Deno.NetAddr).port}/ws`);
    const reply = await within(
      new Promise<string>((r) => {
        ws.onopen = () => ws.send("hi");
        ws.onmessage = (e) => r(e.data);
      }),
      3000,
      "reply",
    );
    assert.equal(reply, "hono says hi");
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close(1000);
    await within(closed, 3000, "close");
    const until = Date.now() + 3000;
    while (!seen.includes("close:1000") && Date.now() < until) await delay(5);
    assert.deepEqual(seen, ["open", "message:hi", "close:1000"]);
  } finally {
    await server.shutdown();
  }
});

// -------------------------------------------------- lifecycle

Deno.test("lifecycle: the socket keeps its request context until it closes, canceled with a WebSocketClosedError", async () => {
  const TENANT = new ContextKey<string>("tenant");
  const states: string[] = [];
  let during: unknown = "unset";
  let value: string | undefined;
  let after: unknown;
  let afterErr: unknown;
  let openConns = -1;
  const server: Server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    connContext: (ctx) => withValue(ctx, TENANT, "acme"),
    connState: (_c, s) => states.push(s),
  }, (req, info) => {
    const { socket, response } = upgradeWebSocket(req);
    socket.onmessage = (e) => {
      during = info.context.err;
      value = info.context.value(TENANT);
      openConns = server.openConnections;
      socket.send(e.data);
    };
    socket.onclose = () => {
      after = cause(info.context);
      afterErr = info.context.err;
    };
    return response;
  });
  try {
    const ws = new WebSocket(`ws://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`);
    await within(
      new Promise((r) => {
        ws.onopen = () => ws.send("x");
        ws.onmessage = r;
      }),
      3000,
      "echo",
    );
    assert.equal(during, undefined, "alive while open");
    assert.equal(value, "acme", "connContext values visible");
    assert.equal(openConns, 1);
    assert.deepEqual(states, ["new", "active", "hijacked"]);
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close(4100, "later");
    await within(closed, 3000, "close");
    const until = Date.now() + 3000;
    while (after === undefined && Date.now() < until) await delay(5);
    assert.ok(after instanceof WebSocketClosedError, String(after));
    assert.equal((after as WebSocketClosedError).code, 4100);
    assert.equal((after as WebSocketClosedError).reason, "later");
    assert.equal((after as WebSocketClosedError).wasClean, true);
    assert.ok(afterErr !== undefined, "info.context.err is set");
    while (states.at(-1) !== "closed" && Date.now() < until) await delay(5);
    assert.deepEqual(states, ["new", "active", "hijacked", "closed"]);
    assert.equal(server.openConnections, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("lifecycle: shutdown(ctx) sends 1001 to every socket, waits for the handshakes, then cuts the rest", async () => {
  const events: string[] = [];
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = upgradeWebSocket(req);
    const id = new URL(req.url).pathname;
    socket.onclose = (e) => events.push(`${id}:${e.code}:${e.wasClean}`);
    return response;
  });
  const port = (server.addr as Deno.NetAddr).port;
  const polite = new WebSocket(`ws://127.0.0.1:${port}/polite`);
  await within(new Promise((r) => (polite.onopen = r)), 3000, "open");
  const politeClosed = new Promise<CloseEvent>((r) => (polite.onclose = r));
  const { client: deaf } = await rawConnect(port, "", "/deaf"); // never answers a close
  const { withTimeout } = await import("./context.ts");
  using scope = withTimeout((await import("./context.ts")).background(), 700);
  const t0 = Date.now();
  await within(server.shutdown(scope.ctx), 5000, "shutdown");
  const took = Date.now() - t0;
  const ev = await within(politeClosed, 3000, "client close");
  assert.equal(ev.code, 1001, "the client was told the server is going away");
  const f = (await deaf.read(3000))!;
  assert.deepEqual([f.opcode, closeCode(f)], [OP.close, 1001]);
  assert.ok(took >= 500, `shutdown waited for the deaf socket (${took} ms)`);
  assert.deepEqual(events.sort(), ["/deaf:1006:false", "/polite:1001:true"]);
  assert.equal(server.openConnections, 0);
  deaf.t.close();
});

Deno.test("lifecycle: a handler that does not return the 101 — the socket errors and never opens", async () => {
  let events: string[] = [];
  let done!: Promise<CloseEvent>;
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket } = upgradeWebSocket(req);
    const r = record(socket);
    events = r.events;
    done = r.closed;
    return new Response("changed my mind", { status: 403 });
  });
  try {
    const { status } = await handshakeStatus(
      (server.addr as Deno.NetAddr).port,
      "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    assert.equal(status, 403);
    await within(done, 3000, "close event");
    assert.deepEqual(events, ["error", "close:1006::false"]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("Deno.upgradeWebSocket: connctx requests go to connctx, Deno.serve's stay native; uninstall restores", async () => {
  let kind = "";
  const ours = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    kind = socket.constructor.name;
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  let nativeKind = "";
  const native = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = Deno.upgradeWebSocket(req);
    nativeKind = socket.constructor.name;
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  const roundTrip = async (port: number) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`);
    const got = await within(
      new Promise<string>((r) => {
        ws.onopen = () => ws.send("ping?");
        ws.onmessage = (e) => r(e.data);
      }),
      3000,
      "echo",
    );
    const closed = new Promise((r) => (ws.onclose = r));
    ws.close();
    await closed;
    return got;
  };
  try {
    assert.equal(await roundTrip((ours.addr as Deno.NetAddr).port), "ping?");
    assert.equal(await roundTrip(native.addr.port), "ping?");
    assert.equal(kind, "ConnctxWebSocket");
    assert.equal(nativeKind, "WebSocket");
    uninstallDenoUpgradeWebSocket();
    assert.notEqual(Deno.upgradeWebSocket.name, "denoUpgradeWebSocket");
    installDenoUpgradeWebSocket();
    assert.equal(Deno.upgradeWebSocket.name, "denoUpgradeWebSocket");
  } finally {
    installDenoUpgradeWebSocket();
    await ours.shutdown();
    await native.shutdown();
  }
});

// -------------------------------------------------- raw upgrade and CONNECT

Deno.test("upgrade(): a custom protocol after a 101 — bytes pipelined after the head come first", async () => {
  let target = "";
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    upgrade(req).then(async (up) => {
      target = up.target;
      // Echo, upper-cased, until the peer half-closes.
      await up.readable
        .pipeThrough(
          new TransformStream<Uint8Array, Uint8Array>({
            transform: (c, ctl) => ctl.enqueue(enc.encode(dec.decode(c).toUpperCase())),
          }),
        )
        .pipeTo(up.writable);
    });
    return new Response(null, {
      status: 101,
      headers: { upgrade: "shout/1", connection: "Upgrade" },
    });
  });
  const states: string[] = [];
  try {
    const conn = await Deno.connect({
      hostname: "127.0.0.1",
      port: (server.addr as Deno.NetAddr).port,
    });
    // The request and the first bytes of the new protocol in one write.
    await conn.write(enc.encode(
      "GET /shout HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: shout/1\r\n\r\nearly bytes;",
    ));
    let got = "";
    const buf = new Uint8Array(1024);
    while (!got.includes("EARLY BYTES;")) {
      const n = await within(conn.read(buf), 3000, "upgraded reply");
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    assert.match(got, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
    assert.match(got, /\r\nupgrade: shout\/1\r\n/i);
    await conn.write(enc.encode("and more"));
    got = "";
    while (!got.includes("AND MORE")) {
      const n = await within(conn.read(buf), 3000, "echo");
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    await conn.closeWrite();
    assert.equal(
      await within(conn.read(buf), 3000, "EOF"),
      null,
      "both halves closed: the server closed",
    );
    conn.close();
    assert.equal(target, "/shout");
    void states;
    const until = Date.now() + 3000;
    while (server.openConnections > 0 && Date.now() < until) await delay(5);
    assert.equal(server.openConnections, 0);
  } finally {
    await server.shutdown();
  }
});

Deno.test("upgrade(): CONNECT tunnels when the handler takes it; 501 otherwise", async () => {
  // An upstream TCP echo server.
  const upstream = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  (async () => {
    for await (const c of upstream) c.readable.pipeTo(c.writable).catch(() => {});
  })();
  const upPort = (upstream.addr as Deno.NetAddr).port;
  const proxy = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    if (req.method !== "CONNECT" || !new URL(req.url).pathname.startsWith("/")) {
      return new Response("no");
    }
    if (req.headers.get("x-allow") !== "yes") return new Response("not for you", { status: 403 });
    upgrade(req).then(async (client) => {
      const at = client.target.lastIndexOf(":");
      const up = await Deno.connect({
        hostname: client.target.slice(0, at),
        port: Number(client.target.slice(at + 1)),
      });
      await Promise.all([
        client.readable.pipeTo(up.writable),
        up.readable.pipeTo(client.writable),
      ]).catch(() => {});
      client.close();
    });
    return new Response(null, { status: 200 });
  });
  const port = (proxy.addr as Deno.NetAddr).port;
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    await conn.write(enc.encode(
      `CONNECT 127.0.0.1:${upPort} HTTP/1.1\r\nHost: 127.0.0.1:${upPort}\r\nX-Allow: yes\r\n\r\nthrough the tunnel`,
    ));
    let got = "";
    const buf = new Uint8Array(1024);
    while (!got.includes("through the tunnel")) {
      const n = await within(conn.read(buf), 3000, "tunnel");
      if (n === null) break;
      got += dec.decode(buf.subarray(0, n));
    }
    assert.match(got, /^HTTP\/1\.1 200 /);
    assert.doesNotMatch(got.slice(0, got.indexOf("\r\n\r\n")), /content-length|transfer-encoding/i);
    conn.close();
    // A CONNECT the handler does not take over: 501 (whatever it returned).
    const { status } = await handshakeStatus(
      port,
      `CONNECT 127.0.0.1:${upPort} HTTP/1.1\r\nHost: 127.0.0.1:${upPort}\r\n\r\n`,
    );
    assert.equal(status, 501);
  } finally {
    await proxy.shutdown();
    upstream.close();
  }
});

// -------------------------------------------------- more: TLS, server context takeover

Deno.test("wss: a WebSocket over TLS (openssl-made certificate)", async () => {
  const certs = await testCerts();
  if (certs === null) {
    console.log("skipped: openssl is not installed (or failed)");
    return;
  }
  const { ca, cert, key } = certs;
  let url = "";
  const server = serve({ port: 0, hostname: "127.0.0.1", cert, key, onListen() {} }, (req) => {
    const { socket, response } = upgradeWebSocket(req);
    url = socket.url;
    socket.onmessage = (e) => socket.send(e.data);
    return response;
  });
  try {
    const port = (server.addr as Deno.NetAddr).port;
    const conn = await Deno.connectTls({ hostname: "127.0.0.1", port, caCerts: [ca] });
    await conn.write(enc.encode(
      `GET /secure HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ));
    const buf = new Uint8Array(4096);
    let got = new Uint8Array(0);
    let end = -1;
    while (end < 0) {
      const n = await within(conn.read(buf), 3000, "101");
      assert.ok(n !== null);
      got = new Uint8Array([...got, ...buf.subarray(0, n)]);
      end = dec.decode(got).indexOf("\r\n\r\n");
    }
    assert.match(dec.decode(got), /^HTTP\/1\.1 101 /);
    const { connTransport } = await import("./_ws/socket.ts");
    const client = new RawWsClient(connTransport(conn), got.subarray(end + 4));
    const big = bytes(300_000, 7);
    await client.sendFrame(OP.binary, big);
    assert.deepEqual((await readMessage(client)).payload, big);
    await closeClean(client);
    assert.equal(url, `wss://127.0.0.1:${port}/secure`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("permessage-deflate: server context takeover (configured), Blobs compressed in order", async () => {
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
    const { socket, response } = upgradeWebSocket(req, {
      compression: { serverNoContextTakeover: false, threshold: 0 },
    });
    socket.onmessage = (e) => {
      // Three replies per message: text, a Blob, text; the Blob keeps its place.
      socket.send(`a:${e.data}`);
      socket.send(new Blob([`b:${e.data}`]));
      socket.send(`c:${e.data}`);
    };
    return response;
  });
  try {
    const { client, head } = await rawConnect(
      (server.addr as Deno.NetAddr).port,
      "Sec-WebSocket-Extensions: permessage-deflate\r\n",
    );
    assert.match(
      head,
      /sec-websocket-extensions: permessage-deflate\r\n/i,
      "no server_no_context_takeover",
    );
    const z = new DeflateClient();
    const sizes: number[] = [];
    for (let i = 0; i < 3; i++) {
      const text = "the same words again and again ".repeat(20);
      await client.sendFrame(OP.text, text);
      for (const [prefix, op] of [["a", OP.text], ["b", OP.binary], ["c", OP.text]] as const) {
        const f = (await client.read())!;
        assert.equal(f.rsv1, true);
        assert.equal(f.opcode, op);
        assert.equal(dec.decode(await z.inflate(f.payload)), `${prefix}:${text}`);
        if (prefix === "a") sizes.push(f.payload.length);
      }
    }
    // With context takeover, repeats shrink to back-references.
    assert.ok(sizes[1] < sizes[0] / 2, `${sizes}`);
    z.close();
    await closeClean(client);
  } finally {
    await server.shutdown();
  }
});
