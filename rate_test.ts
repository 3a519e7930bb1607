// Copyright 2026 the connctx authors. MIT license.
// Minimum data rates (minBodyRate, minResponseRate): the slow-body attack
// (R.U.D.Y.) gets 408, the slow reader is cut with its context canceled,
// while honest transfers — a large upload at full speed, a slow producer
// (server-sent events), a handler that reads its body slowly — are not
// touched, because the rates count only time spent waiting on the client.

import assert from "node:assert/strict";
import { type Context, serve, type ServeOptions } from "./mod.ts";
import { get, LOOPBACK, portOf, RawClient, within } from "./_test_http.ts";

const enc = new TextEncoder();

function start(
  options: Partial<ServeOptions>,
  handler: (r: Request, ctx: Context) => Response | Promise<Response>,
) {
  return serve({ ...LOOPBACK, ...options }, (req, info) => handler(req, info.context));
}

async function served(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  try {
    await c.send(get("/ping", "Connection: close\r\n"));
    const r = await c.read();
    assert.equal(r?.status, 200);
  } finally {
    c.close();
  }
}

Deno.test("minBodyRate: a body trickling 4 B/s is answered 408 after the grace period; others are served", async () => {
  let cause: unknown;
  await using server = start({ minBodyRate: 240, minRateGracePeriod: 500 }, async (req, ctx) => {
    if (req.method === "GET") return new Response("pong");
    try {
      await req.text();
    } catch {
      cause = ctx.signal.reason;
    }
    return new Response("read it all");
  });
  const port = portOf(server);
  const c = await RawClient.connect(port, 15_000);
  let stop = false;
  try {
    await c.send("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
    const trickle = (async () => {
      for (let i = 0; i < 1000 && !stop; i++) {
        await new Promise((r) => setTimeout(r, 250));
        try {
          await c.send("a");
        } catch {
          return;
        }
      }
    })();
    // Another client is served while the slow one is being cut.
    await served(port);
    const r = await c.read();
    assert.equal(r?.status, 408);
    assert.equal(r?.get("connection"), "close");
    assert.ok(await c.closedByServer());
    stop = true;
    await trickle;
    assert.ok(cause instanceof Error, "the request's context was canceled with a cause");
  } finally {
    stop = true;
    c.close();
  }
});

Deno.test("minBodyRate: a 20 MiB upload at full speed passes", async () => {
  await using server = start({ minBodyRate: 240, minRateGracePeriod: 200 }, async (req) => {
    let n = 0;
    for await (const chunk of req.body!) n += chunk.byteLength;
    return new Response(String(n));
  });
  const size = 20 * 1024 * 1024;
  const res = await fetch(`http://127.0.0.1:${portOf(server)}/`, {
    method: "POST",
    body: new Uint8Array(size),
  });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), String(size));
});

Deno.test("minBodyRate: a handler that reads its body slowly is not cut for it", async () => {
  // The client sends everything at once; the handler pauses between reads.
  // Only time spent waiting on the client counts, so a rate no client could
  // meet over wall time is still met.
  await using server = start({ minBodyRate: 1e9, minRateGracePeriod: 50 }, async (req) => {
    let n = 0;
    const reader = req.body!.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      n += r.value.byteLength;
      await new Promise((r) => setTimeout(r, 30));
    }
    return new Response(String(n));
  });
  const c = await RawClient.connect(portOf(server));
  try {
    const body = "x".repeat(300_000);
    await c.send(`POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    const r = await c.read();
    assert.equal(r?.status, 200);
    assert.equal(r?.body, "300000");
  } finally {
    c.close();
  }
});

Deno.test("minResponseRate: a client that stops reading is cut and its request context canceled", async () => {
  let resolveCause!: (v: unknown) => void;
  const canceled = new Promise((r) => (resolveCause = r));
  await using server = start(
    { minResponseRate: 240, minRateGracePeriod: 300, writeTimeout: 0 },
    (req, ctx) => {
      if (req.url.endsWith("/ping")) return new Response("pong");
      ctx.done.then(() => resolveCause(ctx.signal.reason));
      const chunk = new Uint8Array(1024 * 1024);
      let sent = 0;
      // 256 MiB: far more than loopback socket buffers hold.
      return new Response(
        new ReadableStream({
          pull(ctrl) {
            if (sent++ >= 256) ctrl.close();
            else ctrl.enqueue(chunk);
          },
        }),
      );
    },
  );
  const port = portOf(server);
  const c = await RawClient.connect(port);
  try {
    await c.send(get("/big"));
    // The client reads nothing. The server is blocked on a full socket.
    const why = await within(canceled, "the request context canceled", 15_000);
    assert.match(String((why as Error).message), /minResponseRate/);
    await served(port);
  } finally {
    c.close();
  }
});

Deno.test("minResponseRate: a slow producer (server-sent events) is never cut", async () => {
  // A rate no client could meet over wall time: only time spent waiting for
  // the client to read counts, and this client reads at once.
  await using server = start({ minResponseRate: 1e9, minRateGracePeriod: 50 }, () => {
    let i = 0;
    return new Response(
      new ReadableStream({
        async pull(ctrl) {
          await new Promise((r) => setTimeout(r, 100));
          if (i++ === 8) ctrl.close();
          else ctrl.enqueue(enc.encode(`data: ${i}\n\n`));
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  const res = await fetch(`http://127.0.0.1:${portOf(server)}/events`);
  const text = await res.text();
  assert.equal(text.split("\n\n").filter(Boolean).length, 8);
});

Deno.test("rates: options are validated", () => {
  assert.throws(() => serve({ ...LOOPBACK, minBodyRate: -1 }, () => new Response()), TypeError);
  assert.throws(
    () => serve({ ...LOOPBACK, minResponseRate: NaN }, () => new Response()),
    TypeError,
  );
});
