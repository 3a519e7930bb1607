// Copyright 2026 the connctx authors. MIT license.

// Interoperability: frameworks and handlers written for `Deno.serve` run on
// connctx unchanged, and reach the request's context through `info`.
//
//   deno test -A interop_test.ts
//
// Hono passes its fetch's second argument through as `c.env`, so a Hono app
// served by connctx reads the request context as `c.env.context`.

import assert from "node:assert/strict";
// deno-lint-ignore no-import-prefix
import { Hono } from "npm:hono@4";
// deno-lint-ignore no-import-prefix
import { streamSSE } from "npm:hono@4/streaming";
import {
  afterFunc,
  cause,
  type Context,
  ContextKey,
  serve,
  type ServeHandler,
  type ServeHandlerInfo,
  withValue,
} from "./mod.ts";
import { LOOPBACK, portOf, urlOf, within } from "./_test_http.ts";

// ---------------------------------------------------------------------------
// Helpers

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Waits `ms`, or less if `signal` aborts; leaves no timer behind. Pacing
 * for event streams, never used to wait for an outcome. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** One server-sent event, as parsed by a client. */
interface SseEvent {
  id?: string;
  event?: string;
  data: string;
}

/** Reads `count` events from an event-stream body, then cancels it. */
async function readEvents(body: ReadableStream<Uint8Array>, count: number): Promise<SseEvent[]> {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  const events: SseEvent[] = [];
  let buf = "";
  try {
    while (events.length < count) {
      const r = await reader.read();
      if (r.done) break;
      buf += r.value;
      let i;
      while (events.length < count && (i = buf.indexOf("\n\n")) !== -1) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const ev: SseEvent = { data: "" };
        const data: string[] = [];
        for (const line of block.split("\n")) {
          const [k, ...rest] = line.split(":");
          const v = rest.join(":").replace(/^ /, "");
          if (k === "data") data.push(v);
          else if (k === "id") ev.id = v;
          else if (k === "event") ev.event = v;
        }
        ev.data = data.join("\n");
        events.push(ev);
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return events;
}

/** Reads from a raw connection until the text includes `needle`. */
async function readUntil(conn: Deno.Conn, needle: string): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  while (!text.includes(needle)) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF before ${JSON.stringify(needle)}; got ${text}`);
    text += dec.decode(buf.subarray(0, n));
  }
  return text;
}

// ---------------------------------------------------------------------------
// Hono

/** Set once per connection by connContext; read by routes via `c.env`. */
const TENANT = new ContextKey<string>("tenant");
/** A per-connection counter object, also from connContext. */
const COUNTER = new ContextKey<{ n: number }>("requests on this connection");

type HonoEnv = { Bindings: ServeHandlerInfo; Variables: { started: number } };

function honoApp(): Hono<HonoEnv> {
  const app = new Hono<HonoEnv>();
  // Middleware runs around every route.
  app.use("*", async (c, next) => {
    c.set("started", 1);
    await next();
    c.header("x-powered-by", "connctx");
  });
  app.get("/", (c) => c.text("home"));
  app.get(
    "/users/:id",
    (c) =>
      c.json({ id: c.req.param("id"), q: c.req.query("q") ?? null, started: c.get("started") }),
  );
  app.get("/files/*", (c) => c.text(`file ${c.req.path.slice("/files/".length)}`));
  app.get("/items/:id{[0-9]+}", (c) => c.json({ item: Number(c.req.param("id")) }));
  app.post("/echo", async (c) => {
    const body = await c.req.json<{ n: number; tags: string[] }>();
    return c.json({ n: body.n * 2, tags: body.tags.toReversed() }, 201);
  });
  app.put("/form", async (c) => {
    const form = await c.req.parseBody();
    return c.json({ name: form.name });
  });
  app.get("/headers", (c) => {
    c.header("x-single", "1");
    c.header("set-cookie", "a=1", { append: true });
    c.header("set-cookie", "b=2", { append: true });
    return c.text(`ua=${c.req.header("x-test")}`);
  });
  app.delete("/items/:id", (c) => c.body(null, 204));
  app.get("/teapot", (c) => c.text("short and stout", 418));
  app.get("/redirect", (c) => c.redirect("/users/1", 301));
  app.get("/boom", () => {
    throw new Error("boom");
  });
  // Reading the connctx context from a route.
  app.get("/context", (c) => {
    const ctx: Context = c.env.context;
    const counter = ctx.value(COUNTER)!;
    counter.n++;
    return c.json({
      tenant: ctx.value(TENANT),
      conn: c.env.conn.id,
      nth: counter.n,
      live: ctx.err === undefined,
      sameSignal: c.req.raw.signal === ctx.signal,
    });
  });
  // Server-sent events from a plain ReadableStream body.
  app.get("/sse/raw", (c) => {
    const ctx = c.env.context;
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i > 0) await pause(2, ctx.signal);
        if (ctx.err !== undefined || i === 3) return controller.close();
        controller.enqueue(enc.encode(`id: ${i}\nevent: tick\ndata: raw ${i}\n\n`));
        i++;
      },
    });
    return c.body(body, 200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
  });
  // Hono's own streamSSE helper.
  app.get("/sse/helper", (c) =>
    streamSSE(c, async (stream) => {
      for (let i = 0; i < 3 && c.env.context.err === undefined; i++) {
        await stream.writeSSE({ id: String(i), event: "tick", data: `helper ${i}\nline 2` });
        await pause(2, c.env.context.signal);
      }
    }));
  app.onError((err, c) => c.json({ error: err.message }, 500));
  app.notFound((c) => c.json({ error: "no route", path: c.req.path }, 404));
  return app;
}

/** connContext for the Hono tests: a tenant and a counter per connection. */
const honoConnContext = (ctx: Context, conn: { remoteAddr: Deno.Addr }): Context =>
  withValue(
    withValue(ctx, TENANT, `tenant@${(conn.remoteAddr as Deno.NetAddr).hostname}`),
    COUNTER,
    { n: 0 },
  );

Deno.test("hono: routing, params, JSON in and out, headers, status codes, 404", async () => {
  using client = Deno.createHttpClient({});
  const app = honoApp();
  // app.fetch is (request, env, executionCtx): connctx's info becomes c.env.
  await using server = serve({ ...LOOPBACK, connContext: honoConnContext }, app.fetch);
  const go = (path: string, init: RequestInit = {}) =>
    fetch(urlOf(server, path), { ...init, client, redirect: "manual" });

  let res = await go("/");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-powered-by"), "connctx");
  assert.equal(await res.text(), "home");

  res = await go("/users/42?q=ok");
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), { id: "42", q: "ok", started: 1 });

  res = await go("/files/a/b/c.txt");
  assert.equal(await res.text(), "file a/b/c.txt");

  res = await go("/items/7");
  assert.deepEqual(await res.json(), { item: 7 });

  res = await go("/echo", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ n: 21, tags: ["a", "b"] }),
  });
  assert.equal(res.status, 201);
  assert.deepEqual(await res.json(), { n: 42, tags: ["b", "a"] });

  res = await go("/form", { method: "PUT", body: new URLSearchParams({ name: "ada" }) });
  assert.deepEqual(await res.json(), { name: "ada" });

  res = await go("/headers", { headers: { "X-Test": "yes" } });
  assert.equal(res.headers.get("x-single"), "1");
  assert.deepEqual(res.headers.getSetCookie(), ["a=1", "b=2"]);
  assert.equal(await res.text(), "ua=yes");

  res = await go("/items/7", { method: "DELETE" });
  assert.equal(res.status, 204);
  assert.equal(await res.text(), "");

  res = await go("/teapot");
  assert.equal(res.status, 418);
  assert.equal(await res.text(), "short and stout");

  res = await go("/redirect");
  assert.equal(res.status, 301);
  assert.equal(res.headers.get("location"), "/users/1");
  await res.body?.cancel();

  res = await go("/boom");
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { error: "boom" });

  res = await go("/nowhere");
  assert.equal(res.status, 404);
  assert.deepEqual(await res.json(), { error: "no route", path: "/nowhere" });

  // HEAD is answered by the GET route, without a body.
  res = await go("/users/1", { method: "HEAD" });
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "");

  // A method with no route
  res = await go("/users/1", { method: "PATCH" });
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

Deno.test("hono: c.env is connctx's info; the context comes from connContext", async () => {
  const app = honoApp();
  // The explicit form: pass info as Hono's env.
  const handler: ServeHandler = (req, info) => app.fetch(req, info);
  await using server = serve({ ...LOOPBACK, connContext: honoConnContext }, handler);
  // Three requests on one connection (pipelined), then one on another.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
  let text: string;
  try {
    const req = "GET /context HTTP/1.1\r\nHost: h.test\r\n\r\n";
    await conn.write(
      enc.encode(req + req + req.replace("\r\n\r\n", "\r\nConnection: close\r\n\r\n")),
    );
    text = "";
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await within(conn.read(buf), "pipelined responses");
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  const bodies = [...text.matchAll(/\{.*?\}/g)].map((m) => JSON.parse(m[0]));
  assert.equal(bodies.length, 3);
  const conn1 = bodies[0].conn;
  assert.deepEqual(bodies.map((b) => b.nth), [1, 2, 3], "one counter per connection");
  for (const b of bodies) {
    assert.equal(b.tenant, "tenant@127.0.0.1");
    assert.equal(b.conn, conn1);
    assert.equal(b.live, true);
    assert.equal(b.sameSignal, true, "Hono's c.req.raw.signal is the context's signal");
  }
  using client = Deno.createHttpClient({});
  const res = await fetch(urlOf(server, "/context"), { client });
  const other = await res.json();
  assert.notEqual(other.conn, conn1);
  assert.equal(other.nth, 1, "a new connection starts a new counter");
});

Deno.test("hono: server-sent events, from a ReadableStream and from streamSSE", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve({ ...LOOPBACK, connContext: honoConnContext }, honoApp().fetch);

  let res = await fetch(urlOf(server, "/sse/raw"), { client });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  assert.equal(res.headers.get("cache-control"), "no-cache");
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  assert.deepEqual(await readEvents(res.body!, 10), [
    { id: "0", event: "tick", data: "raw 0" },
    { id: "1", event: "tick", data: "raw 1" },
    { id: "2", event: "tick", data: "raw 2" },
  ]);

  res = await fetch(urlOf(server, "/sse/helper"), { client });
  assert.equal(res.headers.get("content-type"), "text/event-stream");
  // streamSSE sets "Transfer-Encoding: chunked" and "Connection: keep-alive"
  // itself; connctx owns framing and hop-by-hop fields and frames it properly.
  assert.equal(res.headers.get("transfer-encoding"), "chunked");
  assert.deepEqual(await readEvents(res.body!, 10), [
    { id: "0", event: "tick", data: "helper 0\nline 2" },
    { id: "1", event: "tick", data: "helper 1\nline 2" },
    { id: "2", event: "tick", data: "helper 2\nline 2" },
  ]);
});

Deno.test("hono: the same app answers the same way on Deno.serve and on connctx", async () => {
  // Routes that do not use connctx's context behave identically.
  using client = Deno.createHttpClient({});
  const app = honoApp();
  await using ours = serve(LOOPBACK, app.fetch);
  await using native = Deno.serve(LOOPBACK, app.fetch);
  const requests: [string, RequestInit?][] = [
    ["/"],
    ["/users/9?q=x"],
    ["/echo", { method: "POST", body: JSON.stringify({ n: 1, tags: ["z"] }) }],
    ["/headers", { headers: { "x-test": "t" } }],
    ["/teapot"],
    ["/redirect"],
    ["/boom"],
    ["/missing"],
  ];
  for (const [path, init] of requests) {
    const [a, b] = await Promise.all([ours, native].map(async (s) => {
      const res = await fetch(urlOf(s, path), {
        ...init,
        // Deno.serve compresses on its own when asked; compare plain bodies.
        headers: { ...init?.headers as Record<string, string>, "accept-encoding": "identity" },
        client,
        redirect: "manual",
      });
      return {
        status: res.status,
        type: res.headers.get("content-type"),
        location: res.headers.get("location"),
        cookies: res.headers.getSetCookie(),
        powered: res.headers.get("x-powered-by"),
        body: await res.text(),
      };
    }));
    assert.deepEqual(a, b, path);
  }
});

// ---------------------------------------------------------------------------
// A plain URLPattern router

type Params = Record<string, string | undefined>;
type Route = {
  method: string;
  pattern: URLPattern;
  handler: (req: Request, info: ServeHandlerInfo, params: Params) => Response | Promise<Response>;
};

/** A dozen-line router: first match wins; 405 with Allow when only the method is wrong. */
function router(routes: Route[]): ServeHandler {
  return (req, info) => {
    const allowed = new Set<string>();
    for (const r of routes) {
      const m = r.pattern.exec(req.url);
      if (m === null) continue;
      if (r.method === req.method || (r.method === "GET" && req.method === "HEAD")) {
        return r.handler(req, info, m.pathname.groups);
      }
      allowed.add(r.method);
    }
    if (allowed.size > 0) {
      return new Response("method not allowed", {
        status: 405,
        headers: { allow: [...allowed].join(", ") },
      });
    }
    return new Response("not found", { status: 404 });
  };
}

const REQUEST_ID = new ContextKey<string>("request id");

Deno.test("URLPattern router on connctx, with the context in every route", async () => {
  using client = Deno.createHttpClient({});
  const users = new Map<string, { name: string }>([["1", { name: "ada" }]]);
  const routes: Route[] = [
    {
      method: "GET",
      pattern: new URLPattern({ pathname: "/users/:id" }),
      handler: (_req, info, { id }) => {
        const user = users.get(id!);
        if (!user) return Response.json({ error: "no such user" }, { status: 404 });
        return Response.json({ ...user, conn: info.conn.id, rid: info.context.value(REQUEST_ID) });
      },
    },
    {
      method: "POST",
      pattern: new URLPattern({ pathname: "/users" }),
      handler: async (req) => {
        const body = await req.json() as { name: string };
        const id = String(users.size + 1);
        users.set(id, body);
        return Response.json({ id }, { status: 201, headers: { location: `/users/${id}` } });
      },
    },
    {
      method: "GET",
      pattern: new URLPattern({ pathname: "/static/:path+" }),
      handler: (_req, _info, { path }) => new Response(`static ${path}`),
    },
  ];
  const routed = router(routes);
  // Wrapping a handler to add request-scoped values to the context is
  // ordinary function composition: derive, then pass a new info on. (Spell
  // the fields out: like Deno.serve's, connctx's info is a class instance
  // whose fields are getters, so `{ ...info }` does not copy them.)
  let n = 0;
  const withRequestId: ServeHandler = (req, info) =>
    routed(req, {
      remoteAddr: info.remoteAddr,
      completed: info.completed,
      conn: info.conn,
      context: withValue(info.context, REQUEST_ID, `r${++n}`),
    });
  await using server = serve(LOOPBACK, withRequestId);
  const go = (path: string, init: RequestInit = {}) =>
    fetch(urlOf(server, path), { ...init, client });

  let res = await go("/users/1");
  const got = await res.json();
  assert.equal(got.name, "ada");
  assert.equal(got.rid, "r1");
  assert.equal(typeof got.conn, "number");

  res = await go("/users", { method: "POST", body: JSON.stringify({ name: "grace" }) });
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("location"), "/users/2");
  await res.body?.cancel();

  res = await go("/users/2");
  assert.equal((await res.json()).name, "grace");

  res = await go("/users/99");
  assert.equal(res.status, 404);
  await res.body?.cancel();

  res = await go("/static/css/site.css");
  assert.equal(await res.text(), "static css/site.css");

  res = await go("/users/1", { method: "DELETE" });
  assert.equal(res.status, 405);
  assert.equal(res.headers.get("allow"), "GET");
  await res.body?.cancel();

  res = await go("/elsewhere");
  assert.equal(res.status, 404);
  await res.body?.cancel();
});

// ---------------------------------------------------------------------------
// Handlers written for Deno.serve

Deno.test("a handler written for Deno.serve runs unchanged", async () => {
  using client = Deno.createHttpClient({});
  const completed: string[] = [];
  // Typed and written against Deno's own API only.
  const denoHandler: Deno.ServeHandler = async (req, info) => {
    const url = new URL(req.url);
    info.completed.then(() => completed.push(url.pathname));
    const addr = info.remoteAddr;
    const from = addr.transport === "tcp" ? addr.hostname : addr.transport;
    if (req.method === "POST") {
      return Response.json({ echo: await req.json(), from });
    }
    return new Response(`${req.method} ${url.pathname}${url.search} from ${from}`, {
      headers: { "content-type": "text/plain; charset=utf-8" },
    });
  };
  await using ours = serve(LOOPBACK, denoHandler);
  await using native = Deno.serve(LOOPBACK, denoHandler);
  for (const s of [ours, native]) {
    let res = await fetch(urlOf(s, "/hi?x=1"), { client });
    assert.equal(await res.text(), "GET /hi?x=1 from 127.0.0.1");
    res = await fetch(urlOf(s, "/post"), {
      client,
      method: "POST",
      body: JSON.stringify({ a: [1] }),
    });
    assert.deepEqual(await res.json(), { echo: { a: [1] }, from: "127.0.0.1" });
  }
  // info.completed settles once each response is sent, on both servers.
  await within(
    (async () => {
      while (completed.length < 4) await new Promise((r) => setTimeout(r, 1));
    })(),
    "info.completed",
  );
  assert.deepEqual(completed.toSorted(), ["/hi", "/hi", "/post", "/post"]);
  // The options-with-handler overload, as in Deno.serve({ handler }).
  await using third = serve({ ...LOOPBACK, handler: denoHandler });
  const res = await fetch(urlOf(third, "/third"), { client });
  assert.equal(await res.text(), "GET /third from 127.0.0.1");
});

Deno.test("Deno.serve handler types are accepted by serve() (deno check)", async () => {
  // The shapes Deno's docs use: a handler typed for TCP (remoteAddr is a
  // NetAddr), and an inline handler reading info.remoteAddr.hostname. Checked
  // in a subprocess so that a failure is a test failure here, not a type
  // error that stops this whole file from running.
  const source = `
import { serve } from ${JSON.stringify(new URL("./mod.ts", import.meta.url).href)};

const typed: Deno.ServeHandler<Deno.NetAddr> = (_req, info) =>
  new Response(info.remoteAddr.hostname);

export function start(): Deno.HttpServer[] {
  return [
    serve({ port: 0 }, typed),
    serve({ port: 0 }, (_req, info) =>
      new Response(\`\${info.remoteAddr.hostname}:\${info.remoteAddr.port}\`)),
    serve((_req, info) => new Response(info.remoteAddr.hostname)),
    serve({ port: 0, handler: (_req, info) => new Response(info.remoteAddr.hostname) }),
    serve({ path: "/tmp/s.sock" }, (_req, info) => new Response(info.remoteAddr.path)),
    serve({ port: 0 }, (req) => new Response(req.url)),
  ];
}
`;
  const dir = await Deno.makeTempDir({ prefix: "connctx-types-" });
  try {
    const file = `${dir}/deno_serve_handlers.ts`;
    await Deno.writeTextFile(file, source);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["check", "--no-lock", "--no-config", "--quiet", file],
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const errors = (dec.decode(out.stderr).match(/TS\d+ \[ERROR\]:[^\n]*(\n[^\n]+)?/g) ?? [])
      .map((e) => e.replace(/\s+/g, " "));
    assert.deepEqual(errors, [], "type errors checking Deno.serve-style handlers");
    assert.equal(out.code, 0, dec.decode(out.stderr));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---------------------------------------------------------------------------
// Server-sent events stop when the client leaves

/** An SSE handler that emits events until its request context ends, and
 * reports why it stopped. Returned synchronously, as frameworks do. */
function ticker(stopped: PromiseWithResolvers<unknown>): ServeHandler {
  return (_req, info) => {
    const ctx = info.context;
    afterFunc(ctx, () => stopped.resolve(cause(ctx)));
    let i = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (i > 0) await pause(5, ctx.signal);
        if (ctx.err !== undefined) return controller.close();
        controller.enqueue(enc.encode(`id: ${i}\ndata: event ${i}\n\n`));
        i++;
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  };
}

Deno.test("SSE: the server's context ends when the client aborts after two events", async () => {
  using client = Deno.createHttpClient({});
  const stopped = Promise.withResolvers<unknown>();
  await using server = serve(LOOPBACK, ticker(stopped));
  const ac = new AbortController();
  const res = await fetch(urlOf(server, "/events"), { client, signal: ac.signal });
  const events = await within(readEvents(res.body!, 2), "two events");
  assert.deepEqual(events, [{ id: "0", data: "event 0" }, { id: "1", data: "event 1" }]);
  ac.abort();
  const why = await within(stopped.promise, "the server-side context to end");
  assert.ok(why instanceof Error, `cause: ${why}`);
});

Deno.test("SSE: an idle event stream still ends when the client disconnects", async () => {
  // The stream sends two events, then waits for news that never comes. Only
  // the server noticing the disconnect (EOF on the socket) can end it; no
  // failing write is coming.
  const stopped = Promise.withResolvers<unknown>();
  const server = serve(LOOPBACK, (_req, info) => {
    const ctx = info.context;
    afterFunc(ctx, () => stopped.resolve(cause(ctx)));
    return new Response(
      new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(enc.encode("data: one\n\n"));
          controller.enqueue(enc.encode("data: two\n\n"));
          ctx.signal.addEventListener("abort", () => controller.close(), { once: true });
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
    try {
      await conn.write(enc.encode("GET /events HTTP/1.1\r\nHost: h.test\r\n\r\n"));
      await within(readUntil(conn, "data: two"), "two events");
    } finally {
      conn.close();
    }
    const why = await within(stopped.promise, "the server-side context to end", 3_000);
    assert.match(String(why), /disconnect/);
  } finally {
    server.close(); // a hung stream must not hang the test
    await server.finished;
  }
});

Deno.test("SSE: a body stream that ignores the context is canceled when the client leaves, as on Deno.serve", async () => {
  // Streams built without connctx in mind (a framework's, a message queue's)
  // learn that the client left the web-standard way: their cancel() runs.
  // Otherwise the connection waits on the stream for ever.
  for (const which of ["Deno.serve", "connctx"] as const) {
    const canceled = Promise.withResolvers<unknown>();
    const release = Promise.withResolvers<void>();
    const handler = () =>
      new Response(
        new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(enc.encode("data: one\n\n"));
            controller.enqueue(enc.encode("data: two\n\n"));
            // Idle until canceled (or until the test gives up).
            release.promise.then(() => {
              try {
                controller.close();
              } catch { /* canceled already */ }
            });
          },
          cancel(reason) {
            canceled.resolve(reason);
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    const server = which === "connctx" ? serve(LOOPBACK, handler) : Deno.serve(LOOPBACK, handler);
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
      try {
        await conn.write(enc.encode("GET /events HTTP/1.1\r\nHost: h.test\r\n\r\n"));
        await within(readUntil(conn, "data: two"), `${which}: two events`);
      } finally {
        conn.close();
      }
      await within(canceled.promise, `${which}: the body stream's cancel()`, 3_000);
    } finally {
      release.resolve();
      if (which === "connctx") {
        (server as ReturnType<typeof serve>).close();
        await server.finished;
      } else await server.shutdown();
    }
  }
});

Deno.test("SSE: a client leaving mid-stream is not logged as a server error", async () => {
  // A stream that writes on a timer and ignores the context: after the client
  // leaves, a write fails (EPIPE/ECONNRESET) unless the server stopped first.
  // Either way, a client going away is routine, not an error to log.
  const logged: unknown[][] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    using client = Deno.createHttpClient({});
    const ended = Promise.withResolvers<void>();
    const server = serve(LOOPBACK, (_req, info) => {
      afterFunc(info.context, () => ended.resolve());
      const stop = new AbortController();
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(controller) {
            if (i > 0) await pause(2, stop.signal);
            if (!stop.signal.aborted) controller.enqueue(enc.encode(`data: ${i++}\n\n`));
          },
          cancel() {
            stop.abort();
          },
        }),
        { headers: { "content-type": "text/event-stream" } },
      );
    });
    try {
      const ac = new AbortController();
      const res = await fetch(urlOf(server, "/events"), { client, signal: ac.signal });
      await within(readEvents(res.body!, 2), "two events");
      ac.abort();
      await within(ended.promise, "the request context to end");
    } finally {
      await within(server.shutdown(), "shutdown");
    }
  } finally {
    console.error = error;
  }
  assert.deepEqual(logged.map((args) => args.map(String).join(" ")), []);
});

Deno.test("a client that leaves before a large response is written is not logged", async () => {
  // As in Go, the response is still written into the closed socket; the
  // write fails (EPIPE/ECONNRESET), which is routine, not a server error.
  const logged: unknown[][] = [];
  const error = console.error;
  console.error = (...args: unknown[]) => void logged.push(args);
  try {
    const entered = Promise.withResolvers<void>();
    const sent = Promise.withResolvers<void>();
    const server = serve(LOOPBACK, async (req, info) => {
      entered.resolve();
      await new Promise((r) => req.signal.addEventListener("abort", r, { once: true }));
      info.completed.then(() => sent.resolve());
      return new Response("x".repeat(16 << 20)); // more than socket buffers hold
    });
    try {
      const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
      await conn.write(enc.encode("GET /big HTTP/1.1\r\nHost: h.test\r\n\r\n"));
      await within(entered.promise, "handler entered");
      conn.close();
      await within(sent.promise, "the response to be done with");
    } finally {
      await within(server.shutdown(), "shutdown");
    }
  } finally {
    console.error = error;
  }
  assert.deepEqual(logged.map((args) => args.map(String).join(" ")), []);
});

Deno.test("SSE with Hono's streamSSE stops when the client leaves", async () => {
  using client = Deno.createHttpClient({});
  const stopped = Promise.withResolvers<unknown>();
  const aborted = Promise.withResolvers<void>();
  const app = new Hono<{ Bindings: ServeHandlerInfo }>();
  app.get("/events", (c) => {
    const ctx = c.env.context;
    afterFunc(ctx, () => stopped.resolve(cause(ctx)));
    return streamSSE(c, async (stream) => {
      // Hono's own way to learn the client left: onAbort.
      stream.onAbort(() => aborted.resolve());
      for (let i = 0; !stream.aborted; i++) {
        await stream.writeSSE({ id: String(i), data: `event ${i}` });
        await pause(5, ctx.signal);
      }
    });
  });
  await using server = serve(LOOPBACK, app.fetch);
  const ac = new AbortController();
  const res = await fetch(urlOf(server, "/events"), { client, signal: ac.signal });
  const events = await within(readEvents(res.body!, 2), "two events");
  assert.deepEqual(events.map((e) => e.data), ["event 0", "event 1"]);
  ac.abort();
  await within(aborted.promise, "Hono's stream.onAbort");
  await within(stopped.promise, "the request context to end");
});
