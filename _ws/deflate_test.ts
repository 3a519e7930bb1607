// Copyright 2026 the connctx authors. MIT license.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import { negotiateDeflate, parseExtensions, PerMessageDeflate } from "./deflate.ts";
import { WebSocketProtocolError } from "./frame.ts";

Deno.test("deflate: Sec-WebSocket-Extensions parsing", () => {
  assert.deepEqual(parseExtensions("permessage-deflate"), [{
    name: "permessage-deflate",
    params: [],
  }]);
  assert.deepEqual(
    parseExtensions(
      ' permessage-deflate ; client_max_window_bits ; server_max_window_bits="10" , foo',
    ),
    [
      {
        name: "permessage-deflate",
        params: [
          { name: "client_max_window_bits", value: null },
          { name: "server_max_window_bits", value: "10" },
        ],
      },
      { name: "foo", params: [] },
    ],
  );
  // Malformed elements are dropped; the rest survive.
  assert.deepEqual(parseExtensions('x; a="unterminated, permessage-deflate').length, 0);
  assert.deepEqual(parseExtensions("x;;, permessage-deflate").map((e) => e.name), [
    "permessage-deflate",
  ]);
  assert.deepEqual(
    parseExtensions('x; a="b c", y').map((e) => e.name),
    ["y"],
    "quoted value must be a token",
  );
});

Deno.test("deflate: RFC 7692 negotiation table", () => {
  const cases: [string, object, string | null][] = [
    ["permessage-deflate", {}, "permessage-deflate; server_no_context_takeover"],
    [
      "permessage-deflate; client_max_window_bits",
      {},
      "permessage-deflate; server_no_context_takeover",
    ],
    [
      "permessage-deflate; client_max_window_bits",
      { clientMaxWindowBits: 10 },
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
    ],
    [
      "permessage-deflate; client_max_window_bits=12",
      {},
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=12",
    ],
    // client_max_window_bits is never sent when not offered (§7.1.2.2).
    [
      "permessage-deflate",
      { clientMaxWindowBits: 10 },
      "permessage-deflate; server_no_context_takeover",
    ],
    [
      "permessage-deflate; server_max_window_bits=8",
      {},
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
    ],
    [
      "permessage-deflate; server_max_window_bits=12",
      { serverMaxWindowBits: 10 },
      "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
    ],
    [
      "permessage-deflate",
      { serverNoContextTakeover: false },
      "permessage-deflate",
    ],
    [
      "permessage-deflate; server_no_context_takeover",
      { serverNoContextTakeover: false },
      "permessage-deflate; server_no_context_takeover",
    ],
    [
      "permessage-deflate",
      { clientNoContextTakeover: true },
      "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
    ],
    // Declined: unknown, duplicated, out-of-range or malformed parameters.
    ["permessage-deflate; foo", {}, null],
    ["permessage-deflate; server_no_context_takeover; server_no_context_takeover", {}, null],
    ["permessage-deflate; server_max_window_bits=7", {}, null],
    ["permessage-deflate; server_max_window_bits=16", {}, null],
    ["permessage-deflate; server_max_window_bits", {}, null],
    ["permessage-deflate; client_max_window_bits=0", {}, null],
    ["permessage-deflate; client_no_context_takeover=1", {}, null],
    ["permessage-deflate; server_max_window_bits=010", {}, null],
    ["x-webkit-deflate-frame", {}, null],
    // First acceptable offer wins.
    [
      "permessage-deflate; foo, permessage-deflate; client_max_window_bits=9",
      {},
      "permessage-deflate; server_no_context_takeover; client_max_window_bits=9",
    ],
  ];
  for (const [offer, opts, want] of cases) {
    assert.equal(
      negotiateDeflate(offer, opts)?.response ?? null,
      want,
      `${offer} ${JSON.stringify(opts)}`,
    );
  }
  assert.equal(negotiateDeflate(null, {}), null);
});

const text = new TextEncoder().encode(
  JSON.stringify({ type: "chat", user: "alice", text: "hello there, how are you doing today?" })
    .repeat(4),
);

/** A client-side raw inflater, to check what the server sends. */
function clientInflate(payload: Uint8Array, windowBits = 15): Uint8Array {
  const full = new Uint8Array(payload.length + 4);
  full.set(payload);
  full.set([0, 0, 0xff, 0xff], payload.length);
  return new Uint8Array(
    zlib.inflateRawSync(full, { windowBits, finishFlush: zlib.constants.Z_SYNC_FLUSH }),
  );
}

Deno.test("deflate: no context takeover — every message stands alone", async () => {
  const { params } = negotiateDeflate("permessage-deflate", {})!;
  const a = new PerMessageDeflate(params);
  const b = new PerMessageDeflate(params);
  const m1 = await a.compress(text);
  const m2 = await b.compress(text); // same shared compressor, reset between
  assert.deepEqual(m1, m2);
  assert.deepEqual(clientInflate(m1), text);
  assert.deepEqual(clientInflate(await a.compress(text)), text, "independently decodable");
  a.close();
  b.close();
});

Deno.test("deflate: server context takeover — later messages reference earlier ones", async () => {
  const { params } = negotiateDeflate("permessage-deflate", { serverNoContextTakeover: false })!;
  assert.equal(params.serverNoContextTakeover, false);
  const pmd = new PerMessageDeflate(params);
  const first = await pmd.compress(text);
  const second = await pmd.compress(text);
  assert.ok(second.length < first.length / 2, `${second.length} vs ${first.length}`);
  // A client inflater with context decodes both in order.
  const inf = zlib.createInflateRaw({ windowBits: 15 });
  const out: Uint8Array[] = [];
  inf.on("data", (c: Uint8Array) => out.push(c));
  for (const m of [first, second]) {
    await new Promise<void>((r) => {
      inf.write(m);
      inf.write(new Uint8Array([0, 0, 0xff, 0xff]));
      inf.flush(zlib.constants.Z_SYNC_FLUSH, () => r());
    });
  }
  inf.close();
  assert.equal(out.reduce((n, c) => n + c.length, 0), text.length * 2);
  pmd.close();
});

Deno.test("deflate: client context takeover — inflater keeps its window", async () => {
  const { params } = negotiateDeflate("permessage-deflate", {})!;
  assert.equal(params.clientNoContextTakeover, false);
  const pmd = new PerMessageDeflate(params);
  // A client compressing with context: the second message is mostly a back-reference.
  const d = zlib.createDeflateRaw({ windowBits: 15 });
  const chunks: Uint8Array[] = [];
  d.on("data", (c: Uint8Array) => chunks.push(c));
  const compress = (m: Uint8Array) =>
    new Promise<Uint8Array>((r) => {
      d.write(m);
      d.flush(zlib.constants.Z_SYNC_FLUSH, () => {
        const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let o = 0;
        for (const c of chunks.splice(0)) all.set(c, o), o += c.length;
        r(all.subarray(0, all.length - 4));
      });
    });
  const c1 = await compress(text);
  const c2 = await compress(text);
  d.close();
  assert.deepEqual(await pmd.decompress([c1], 1 << 20), text);
  assert.deepEqual(await pmd.decompress([c2.subarray(0, 3), c2.subarray(3)], 1 << 20), text);
  pmd.close();
});

Deno.test("deflate: a compression bomb stops at the limit of inflated bytes (1009)", async () => {
  const { params } = negotiateDeflate("permessage-deflate; client_no_context_takeover", {
    clientNoContextTakeover: true,
  })!;
  const pmd = new PerMessageDeflate(params);
  // 64 MiB of zeros compress to ~64 KiB.
  const bomb = zlib.deflateRawSync(new Uint8Array(64 << 20), {
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  const payload = bomb.subarray(0, bomb.length - 4);
  assert.ok(payload.length < 100_000);
  await assert.rejects(
    pmd.decompress([payload], 1 << 20),
    (e) => e instanceof WebSocketProtocolError && e.code === 1009,
  );
  // The shared inflater recovers for the next message.
  const ok = zlib.deflateRawSync(text, { finishFlush: zlib.constants.Z_SYNC_FLUSH });
  assert.deepEqual(await pmd.decompress([ok.subarray(0, ok.length - 4)], 1 << 20), text);
  pmd.close();
});

Deno.test("deflate: invalid compressed data fails with 1007", async () => {
  const { params } = negotiateDeflate("permessage-deflate", {})!;
  const pmd = new PerMessageDeflate(params);
  await assert.rejects(
    pmd.decompress([new Uint8Array([0xff, 0xff, 0xff, 0xff, 0xff])], 1 << 20),
    (e) => e instanceof WebSocketProtocolError && e.code === 1007,
  );
  pmd.close();
});

Deno.test("deflate: server_max_window_bits=8 output decodes with a 256-byte window", async () => {
  const { params } = negotiateDeflate("permessage-deflate; server_max_window_bits=8", {})!;
  assert.equal(params.serverMaxWindowBits, 8);
  const pmd = new PerMessageDeflate(params);
  for (let t = 0; t < 50; t++) {
    // Repeats at distances around 256–400: a 512-byte window would use them.
    const period = 240 + t * 3;
    const r = crypto.getRandomValues(new Uint8Array(period));
    const msg = new Uint8Array(4000);
    for (let i = 0; i < msg.length; i++) msg[i] = 97 + (r[i % period] & 3);
    const packed = await pmd.compress(msg);
    // chunkSize 64: the inflater cannot reach back into its output buffer,
    // only into its 256-byte window, so a longer distance would fail.
    const full = new Uint8Array(packed.length + 4);
    full.set(packed);
    full.set([0, 0, 0xff, 0xff], packed.length);
    const out = zlib.inflateRawSync(full, {
      windowBits: 8,
      chunkSize: 64,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    });
    assert.deepEqual(new Uint8Array(out), msg);
  }
  // The same check catches a 32 KiB window.
  const msg = new Uint8Array(6000);
  const r = crypto.getRandomValues(new Uint8Array(300));
  for (let i = 0; i < msg.length; i++) msg[i] = r[i % 300];
  const wide = zlib.deflateRawSync(msg, {
    windowBits: 15,
    finishFlush: zlib.constants.Z_SYNC_FLUSH,
  });
  assert.throws(() =>
    zlib.inflateRawSync(wide, {
      windowBits: 8,
      chunkSize: 64,
      finishFlush: zlib.constants.Z_SYNC_FLUSH,
    })
  );
  pmd.close();
});
