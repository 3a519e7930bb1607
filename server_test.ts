// Copyright 2026 the connctx authors. MIT license.
// Isolation: no value, cancellation or memory crosses connections.
import assert from "node:assert/strict";
import { _childCount, _depth } from "./_context.ts";
import {
  afterFunc,
  background,
  cause,
  type Context,
  ContextKey,
  withCancel,
  withValue,
} from "./context.ts";
import {
  ConnInfoContextKey,
  LocalAddrContextKey,
  serve,
  type ServeOptions,
  type Server,
  ServerContextKey,
} from "./server.ts";
import { get, portOf, RawClient } from "./_test_http.ts";

const quiet = { hostname: "127.0.0.1", port: 0, onListen() {} } satisfies ServeOptions;

/** One request on a fresh connection that the client asks to close. */
async function once(server: Server, path = "/"): Promise<string> {
  const c = await RawClient.connect(portOf(server.addr));
  try {
    await c.send(get(path, "Connection: close\r\n"));
    const res = await c.read();
    assert.ok(res, "no response");
    assert.equal(res.status, 200, res.body);
    return res.body;
  } finally {
    c.close();
  }
}

/** A promise with its resolver. */
function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

Deno.test("seed reproduction (golang/go#35750): a connContext value never reaches the next connection", async () => {
  // The Go 1.13.4 program from the seed, line for line: ConnContext counts
  // connections, reports a "count" value it finds (left over from an earlier
  // connection), and stores its own under the same string key; the handler
  // answers with Connection: close. On Go 1.13.4 the second request prints
  // "found leftover data: 1", because the result replaced the shared context.
  let count = 0;
  const leftovers: unknown[] = [];
  const seenByHandler: unknown[] = [];
  await using server = serve({
    ...quiet,
    connContext(ctx) {
      count++;
      const c2 = ctx.value("count");
      if (c2 !== undefined) leftovers.push(c2);
      return withValue(ctx, "count", count);
    },
  }, (_req, info) => {
    seenByHandler.push(info.context.value("count"));
    return new Response(null, { headers: { connection: "close" } });
  });

  for (let i = 0; i < 2; i++) {
    const c = await RawClient.connect(portOf(server.addr));
    try {
      await c.send(get("/"));
      const res = await c.read();
      assert.equal(res?.status, 200);
      assert.equal(res?.get("connection"), "close");
      assert.ok(await c.closedByServer(), "the server did not close the connection");
    } finally {
      c.close();
    }
  }
  assert.equal(count, 2);
  assert.deepEqual(leftovers, [], "the second connection found the first one's value");
  assert.deepEqual(seenByHandler, [1, 2]);
});

Deno.test("a connContext value is not visible to the next connection (typed key)", async () => {
  const KEY = new ContextKey<string>("conn");
  const seenInConnContext: (string | undefined)[] = [];
  let n = 0;
  await using server = serve({
    ...quiet,
    connContext(ctx) {
      seenInConnContext.push(ctx.value(KEY));
      return withValue(ctx, KEY, `conn-${++n}`);
    },
  }, (_req, info) => new Response(info.context.value(KEY)));

  assert.equal(await once(server), "conn-1");
  assert.equal(await once(server), "conn-2");
  assert.deepEqual(seenInConnContext, [undefined, undefined]);
});

Deno.test("200 sequential and 200 concurrent connections each see only their own tag", async () => {
  const TAG = new ContextKey<number>("tag");
  const leaked: number[] = [];
  await using server = serve({
    ...quiet,
    connContext: (ctx, conn) => {
      // What a connection is given must carry no other connection's tag.
      const prev = ctx.value(TAG);
      if (prev !== undefined) leaked.push(prev);
      return withValue(ctx, TAG, conn.id);
    },
  }, (_req, info) => {
    // The handler's view: its tag, and the connection it arrived on.
    return new Response(`${info.context.value(TAG)} ${info.conn.id}`);
  });
  const port = portOf(server.addr);

  async function connection(): Promise<void> {
    const c = await RawClient.connect(port);
    try {
      // Three keep-alive requests on one connection: all see one tag.
      const tags = new Set<string>();
      for (let i = 0; i < 3; i++) {
        await c.send(get(`/${i}`));
        const res = await c.read();
        assert.ok(res);
        const [tag, id] = res.body.split(" ");
        assert.equal(tag, id, "the tag belongs to another connection");
        tags.add(tag);
      }
      assert.equal(tags.size, 1);
      seen.push([...tags][0]);
    } finally {
      c.close();
    }
  }
  const seen: string[] = [];
  for (let i = 0; i < 200; i++) await connection();
  await Promise.all(Array.from({ length: 200 }, connection));
  assert.deepEqual(leaked, [], "connContext saw another connection's tag");
  assert.equal(seen.length, 400);
  assert.equal(new Set(seen).size, 400, "two connections shared a tag");
});

Deno.test("the context chain a handler sees is as deep on the 1000th connection as on the 1st", async () => {
  const K = new ContextKey<number>("k");
  const depths: number[] = [];
  await using server = serve({
    ...quiet,
    connContext: (ctx, conn) => withValue(ctx, K, conn.id),
  }, (_req, info) => {
    depths.push(_depth(info.context));
    return new Response("ok");
  });
  for (let i = 0; i < 1000; i++) await once(server);
  assert.equal(depths.length, 1000);
  assert.ok(depths[0] > 1);
  assert.deepEqual(
    new Set(depths),
    new Set([depths[0]]),
    `depths vary: ${depths[0]}..${depths.at(-1)}`,
  );
});

Deno.test("after all connections close the base context holds no children", async () => {
  const base = withCancel(background());
  const TAG = new ContextKey<number>("tag");
  let held = 0;
  await using server = serve({
    ...quiet,
    baseContext: () => base.ctx,
    connContext: (ctx, conn) => withValue(ctx, TAG, conn.id),
  }, (_req, info) => {
    // Observing the signal registers the request and connection contexts
    // all the way up to the base, so the base's bookkeeping is exercised.
    assert.equal(info.context.signal.aborted, false);
    held = Math.max(held, _childCount(base.ctx));
    return new Response("ok");
  });
  await Promise.all(Array.from({ length: 50 }, () => once(server)));
  for (let i = 0; i < 50; i++) await once(server);
  // While connections were open the base did hold them (the test can fail)...
  assert.ok(held >= 1, "connections never registered with the base");
  // ...and when they are closed it holds none. Closing is signalled to the
  // server by EOF, so wait (bounded) for the server to see every close.
  for (let i = 0; i < 200 && server.openConnections > 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  assert.equal(server.openConnections, 0);
  assert.equal(_childCount(base.ctx), 0);
  base.cancel();
});

Deno.test("every context carries the server, the connection and the local address", async () => {
  await using server: Server = serve(quiet, (_req, info): Response => {
    const ok: boolean = info.context.value(ServerContextKey) === server &&
      info.context.value(ConnInfoContextKey) === info.conn &&
      info.context.value(LocalAddrContextKey) === info.conn.localAddr;
    return new Response(String(ok));
  });
  assert.equal(await once(server), "true");
});

Deno.test("a request's context is canceled when its response is finished", async () => {
  const ctxs: Context[] = [];
  const ran = deferred();
  await using server = serve(quiet, (_req, info) => {
    ctxs.push(info.context);
    afterFunc(info.context, () => ran.resolve());
    assert.equal(info.context.err, undefined);
    return new Response("ok");
  });
  await once(server);
  await ran.promise;
  assert.ok(ctxs[0].err);
  // The connection's context outlives the request's; a second request on the
  // same connection gets a new, live context.
});

Deno.test("a client that disconnects mid-request cancels that request's context and no other", async () => {
  const started = new Map<string, { ctx: Context; signal: AbortSignal }>();
  const bothStarted = deferred();
  const release = deferred();
  const aborted = deferred<unknown>();
  await using server = serve(quiet, async (req, info) => {
    const who = new URL(req.url).pathname;
    started.set(who, { ctx: info.context, signal: req.signal });
    if (started.size === 2) bothStarted.resolve();
    if (who === "/leaver") {
      req.signal.addEventListener("abort", () => aborted.resolve(req.signal.reason));
    }
    await release.promise;
    return new Response(who);
  });
  const port = portOf(server.addr);
  const leaver = await RawClient.connect(port);
  const stayer = await RawClient.connect(port);
  await leaver.send(get("/leaver"));
  await stayer.send(get("/stayer"));
  await bothStarted.promise;

  leaver.close();
  const reason = await aborted.promise;
  const l = started.get("/leaver")!;
  const s = started.get("/stayer")!;
  assert.ok(l.ctx.err, "leaver's context not canceled");
  assert.ok(l.ctx.signal.aborted);
  assert.ok(l.signal.aborted, "request.signal not aborted");
  assert.match(String((reason as Error).message), /disconnect/);
  assert.match(String((cause(l.ctx) as Error).message), /disconnect/);
  assert.equal(s.ctx.err, undefined, "the other request was canceled too");
  assert.equal(s.signal.aborted, false);

  release.resolve();
  const res = await stayer.read();
  assert.equal(res?.body, "/stayer");
  stayer.close();
});

for (
  const [name, connContext] of [
    ["throws", (): Context => {
      throw new Error("boom");
    }],
    ["returns a non-context", () => ({}) as Context],
    ["returns an unrelated context (the cached-context bug)", () => background()],
  ] as const
) {
  Deno.test(`connContext that ${name} closes that connection; the next one is served`, async () => {
    let calls = 0;
    const logged: unknown[] = [];
    const origError = console.error;
    console.error = (...a: unknown[]) => logged.push(a);
    try {
      await using server = serve({
        ...quiet,
        connContext: (ctx) => (++calls === 1 ? connContext() : ctx),
      }, () => new Response("served"));
      const bad = await RawClient.connect(portOf(server.addr));
      await bad.send(get());
      assert.equal(await bad.read(), null, "the bad connection got an answer");
      bad.close();
      assert.equal(await once(server), "served");
      assert.equal(calls, 2);
      assert.equal(logged.length, 1, "the error was not reported");
      assert.match(String(logged[0]), /connContext/);
    } finally {
      console.error = origError;
    }
  });
}

Deno.test("connection contexts are canceled when their connection closes, not before", async () => {
  const conns: Context[] = [];
  await using server = serve({
    ...quiet,
    connContext: (ctx) => {
      conns.push(ctx);
      return ctx;
    },
  }, () => new Response("ok"));
  const c = await RawClient.connect(portOf(server.addr));
  await c.send(get());
  assert.equal((await c.read())?.status, 200);
  assert.equal(conns.length, 1);
  assert.equal(conns[0].err, undefined, "canceled while the connection is open");
  const closed = conns[0].done;
  c.close();
  await closed;
  assert.ok(conns[0].err);
});

Deno.test("memory: values held by 2000 connection contexts are released", async () => {
  const gc = (globalThis as { gc?: () => void }).gc;
  const BIG = new ContextKey<Uint8Array>("big");
  await using server = serve({
    ...quiet,
    connContext: (ctx) => withValue(ctx, BIG, new Uint8Array(64 * 1024)),
  }, (_req, info) => new Response(String(info.context.value(BIG)?.length)));
  const settle = async () => {
    for (let i = 0; i < 3; i++) {
      gc?.();
      await new Promise((r) => setTimeout(r, 0));
    }
  };
  for (let i = 0; i < 100; i++) await once(server);
  await settle();
  const before = Deno.memoryUsage();
  for (let i = 0; i < 2000; i++) await once(server);
  for (let i = 0; i < 200 && server.openConnections > 0; i++) {
    await new Promise((r) => setTimeout(r, 5));
  }
  await settle();
  const after = Deno.memoryUsage();
  if (!gc) {
    console.log("memory test: run with --v8-flags=--expose-gc to check the heap");
    return;
  }
  // 2000 × 64 KiB = 125 MiB if the values were chained like Go 1.13.4.
  const grew = (after.heapUsed + after.external - before.heapUsed - before.external) / 2 ** 20;
  assert.ok(grew < 8, `heap+external grew ${grew.toFixed(1)} MiB`);
});
