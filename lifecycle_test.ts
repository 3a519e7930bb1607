// Copyright 2026 the connctx authors. MIT license.
// Lifecycle tests: graceful shutdown (Go's Server.Shutdown), shutdown
// deadlines, connState sequences, live counts, and examples/production.ts
// driven by real signals.
//
//   deno test -A lifecycle_test.ts
//
// Every wait is bounded (a broken server fails a test, never hangs it), and no
// assertion depends on how long something took.

import assert from "node:assert/strict";
import {
  background,
  CanceledError,
  cause,
  type Context,
  DeadlineExceededError,
  withTimeout,
} from "./context.ts";
import {
  type ConnInfo,
  type ConnState,
  serve,
  type ServeHandler,
  type ServeOptions,
  type Server,
  ServerContextKey,
} from "./server.ts";
import { get, portOf, RawClient, within } from "./_test_http.ts";

// ---------------------------------------------------------------------------
// Helpers

/** One macrotask turn: queued microtasks and I/O callbacks run first. */
function tick(): Promise<void> {
  return new Promise((r) => setTimeout(r, 0));
}

/** Records connState events per connection and lets tests wait for them. */
class States {
  readonly byId = new Map<number, ConnState[]>();
  readonly order: number[] = [];
  #waiters: { test: () => boolean; resolve: () => void }[] = [];

  readonly connState = (conn: ConnInfo, state: ConnState): void => {
    let list = this.byId.get(conn.id);
    if (list === undefined) {
      this.byId.set(conn.id, list = []);
      this.order.push(conn.id);
    }
    list.push(state);
    this.#waiters = this.#waiters.filter((w) => {
      if (!w.test()) return true;
      w.resolve();
      return false;
    });
  };

  /** Resolves once `test` holds (checked after every event). */
  until(test: () => boolean, what: string, ms?: number): Promise<void> {
    if (test()) return Promise.resolve();
    const p = new Promise<void>((resolve) => this.#waiters.push({ test, resolve }));
    return within(p, `waiting for ${what}`, ms);
  }

  /** The ids of connections whose last event is `state`. */
  inState(state: ConnState): number[] {
    return this.order.filter((id) => this.byId.get(id)!.at(-1) === state);
  }

  /** The id of the `i`-th connection seen (0-based). */
  id(i: number): number {
    return this.order[i];
  }

  /** The states of the `i`-th connection seen. */
  of(i: number): ConnState[] {
    return this.byId.get(this.order[i]) ?? [];
  }

  untilCount(state: ConnState, n: number, ms?: number): Promise<void> {
    return this.until(() => this.inState(state).length >= n, `${n} connection(s) ${state}`, ms);
  }

  untilLast(i: number, state: ConnState, ms?: number): Promise<void> {
    return this.until(
      () => this.order.length > i && this.of(i).at(-1) === state,
      `connection #${i} ${state}`,
      ms,
    );
  }
}

function start(
  options: Omit<ServeOptions, "port" | "hostname" | "onListen">,
  handler: ServeHandler,
): { server: Server; port: number } {
  const server = serve({ port: 0, hostname: "127.0.0.1", onListen() {}, ...options }, handler);
  return { server, port: portOf(server.addr) };
}

/** Asserts that no new connection is served: the connect fails, or the
 * connection is closed without a response. */
async function assertNoNewConnection(port: number): Promise<void> {
  let c: RawClient;
  try {
    c = await RawClient.connect(port, 5_000);
  } catch {
    return; // refused (or reset): the listener is closed
  }
  try {
    await c.send(get("/late"));
    const res = await c.read().catch(() => null);
    assert.equal(res, null, "a connection made after shutdown began was served");
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    // write to a closed socket: not served either
  } finally {
    c.close();
  }
}

// ---------------------------------------------------------------------------
// Graceful shutdown

Deno.test("shutdown: 100 in-flight requests finish with `connection: close`; nothing new is accepted", async () => {
  const N = 100;
  const states = new States();
  let entered = 0;
  let allIn!: () => void;
  const allInP = new Promise<void>((r) => (allIn = r));
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const { server, port } = start({ connState: states.connState }, async (req) => {
    if (++entered === N) allIn();
    await released;
    return new Response(`done ${new URL(req.url).pathname}`);
  });
  const clients: RawClient[] = [];
  try {
    for (let i = 0; i < N; i++) clients.push(await RawClient.connect(port));
    await Promise.all(clients.map((c, i) => c.send(get(`/r${i}`))));
    await within(allInP, "all handlers entered");
    assert.equal(server.activeRequests, N);
    assert.equal(server.openConnections, N);

    let hookRuns = 0;
    let hookRan!: () => void;
    const hookRanP = new Promise<void>((r) => (hookRan = r));
    server.registerOnShutdown(() => {
      hookRuns++;
      hookRan();
    });
    let shutdownDone = false;
    const shutdown = server.shutdown();
    shutdown.then(() => (shutdownDone = true));
    assert.equal(server.shutdown(), shutdown, "a second shutdown() joins the first");

    await within(hookRanP, "the shutdown hook");
    await assertNoNewConnection(port);
    await tick();
    assert.equal(shutdownDone, false, "shutdown resolved while requests were in flight");
    assert.equal(server.activeRequests, N);
    assert.equal(entered, N, "a request arrived after shutdown began");

    release();
    const responses = await within(Promise.all(clients.map((c) => c.read())), "responses");
    responses.forEach((res, i) => {
      assert.ok(res !== null, `request ${i} got no response`);
      assert.equal(res.status, 200);
      assert.equal(res.body, `done /r${i}`);
      assert.equal(res.get("connection"), "close", `response ${i} lacks connection: close`);
    });
    for (const c of clients) assert.ok(await c.closedByServer());
    await within(shutdown, "shutdown()");
    await within(server.finished, "finished");
    assert.equal(server.openConnections, 0);
    assert.equal(server.activeRequests, 0);
    assert.equal(hookRuns, 1);
    await server.shutdown();
    await tick();
    assert.equal(hookRuns, 1, "the hook ran again");
    assert.equal(states.order.length, N);
    for (let i = 0; i < N; i++) assert.deepEqual(states.of(i), ["new", "active", "closed"]);
  } finally {
    release();
    for (const c of clients) c.close();
    server.close();
    await server.finished;
  }
});

Deno.test("shutdown: a stuck request is cut at the context's deadline, its context canceled with a shutdown cause", async () => {
  const states = new States();
  const contexts: Context[] = [];
  let inHandler!: () => void;
  const inHandlerP = new Promise<void>((r) => (inHandler = r));
  let handlerSaw: unknown;
  const { server, port } = start({ connState: states.connState }, async (_req, info) => {
    contexts.push(info.context);
    inHandler();
    await info.context.done; // stuck until canceled
    handlerSaw = cause(info.context);
    return new Response("too late");
  });
  const stuck = await RawClient.connect(port);
  // A request that finishes normally during the same shutdown.
  const idle = await RawClient.connect(port);
  const scope = withTimeout(background(), 200);
  try {
    await stuck.send(get("/stuck"));
    await within(inHandlerP, "the stuck handler");
    await states.until(() => states.order.length === 2, "both connections accepted");
    await within(server.shutdown(scope.ctx), "shutdown(200 ms)");
    // shutdown() returned because the deadline passed, not before.
    assert.ok(scope.ctx.err instanceof DeadlineExceededError);
    const ctx = contexts[0];
    assert.ok(ctx.err instanceof CanceledError, `request context err: ${ctx.err}`);
    const why = cause(ctx);
    assert.ok(why instanceof CanceledError);
    assert.match(why.message, /shutdown/);
    assert.match(why.message, /deadline exceeded/);
    await within(server.finished, "finished");
    assert.equal(handlerSaw, why);
    assert.equal(await stuck.read(), null, "the cut request got a response");
    assert.equal(await idle.read(), null);
    assert.equal(server.openConnections, 0);
    assert.equal(server.activeRequests, 0);
    assert.deepEqual(states.byId.get(states.id(0)), ["new", "active", "closed"]);
    assert.deepEqual(states.byId.get(states.id(1)), ["new", "closed"]);
  } finally {
    scope.cancel();
    stuck.close();
    idle.close();
    server.close();
    await server.finished;
  }
});

Deno.test("shutdown: idle keep-alive connections are closed at once", async () => {
  const states = new States();
  // Idle connections would otherwise stay for a minute (idleTimeout).
  const { server, port } = start({ connState: states.connState }, () => new Response("ok"));
  const clients = await Promise.all([1, 2, 3].map(() => RawClient.connect(port)));
  const silent = await RawClient.connect(port);
  try {
    for (const c of clients) {
      await c.send(get("/"));
      const res = await c.read();
      assert.equal(res?.status, 200);
      assert.equal(res?.get("connection"), null, "keep-alive by default");
    }
    await states.untilCount("idle", 3);
    await states.untilCount("new", 1); // the silent one
    assert.equal(server.openConnections, 4);
    await within(server.shutdown(), "shutdown with only idle connections", 2_000);
    for (const c of [...clients, silent]) assert.ok(await c.closedByServer());
    assert.equal(server.openConnections, 0);
    for (const id of states.order) {
      const seq = states.byId.get(id)!;
      assert.ok(
        JSON.stringify(seq) === '["new","active","idle","closed"]' ||
          JSON.stringify(seq) === '["new","closed"]',
        `unexpected states ${seq}`,
      );
    }
    assert.equal(states.inState("closed").length, 4);
  } finally {
    for (const c of [...clients, silent]) c.close();
    server.close();
    await server.finished;
  }
});

Deno.test("shutdown: registerOnShutdown hooks run once each, including one registered late", async () => {
  const { server } = start({}, () => new Response("ok"));
  const runs = { a: 0, b: 0, late: 0 };
  server.registerOnShutdown(() => runs.a++);
  server.registerOnShutdown(() => runs.b++);
  assert.deepEqual(runs, { a: 0, b: 0, late: 0 }, "a hook ran before shutdown");
  const p1 = server.shutdown();
  const p2 = server.shutdown(withTimeout(background(), 10).ctx);
  server.registerOnShutdown(() => runs.late++);
  await within(Promise.all([p1, p2]), "shutdown");
  await server[Symbol.asyncDispose]();
  await tick();
  assert.deepEqual(runs, { a: 1, b: 1, late: 1 });
  await within(server.finished, "finished");
});

Deno.test("shutdown: a throwing registerOnShutdown hook is logged; it neither crashes the process nor stops the other hooks", async () => {
  const { server, port } = start({}, () => new Response("ok"));
  const uncaught: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    e.preventDefault(); // keep the test run alive; the assertion below reports it
    uncaught.push(e.error);
  };
  const logged: string[] = [];
  const origError = console.error;
  globalThis.addEventListener("error", onError);
  console.error = (...args: unknown[]) => logged.push(args.map(String).join(" "));
  let other = 0;
  try {
    server.registerOnShutdown(() => {
      throw new Error("hook failed");
    });
    server.registerOnShutdown(() => other++);
    const c = await RawClient.connect(port);
    await c.send(get("/"));
    assert.equal((await c.read())?.status, 200);
    await within(server.shutdown(), "shutdown");
    assert.ok(await c.closedByServer());
    c.close();
    await tick();
  } finally {
    globalThis.removeEventListener("error", onError);
    console.error = origError;
  }
  assert.equal(other, 1);
  assert.deepEqual(uncaught, [], "the hook's exception escaped as an uncaught error");
  assert.ok(logged.some((l) => l.includes("hook failed")), "the hook's exception was not logged");
});

Deno.test("shutdown: the `signal` option starts a graceful shutdown; `finished` resolves", async () => {
  const states = new States();
  const ac = new AbortController();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let inHandler!: () => void;
  const inHandlerP = new Promise<void>((r) => (inHandler = r));
  const { server, port } = start(
    { signal: ac.signal, connState: states.connState },
    async (req) => {
      if (new URL(req.url).pathname === "/slow") {
        inHandler();
        await released;
      }
      return new Response("ok");
    },
  );
  let hook = 0;
  server.registerOnShutdown(() => hook++);
  const idle = await RawClient.connect(port);
  const busy = await RawClient.connect(port);
  try {
    await idle.send(get("/"));
    assert.equal((await idle.read())?.status, 200);
    await busy.send(get("/slow"));
    await within(inHandlerP, "the slow handler");
    ac.abort();
    assert.ok(await idle.closedByServer(), "the idle connection stays open");
    await assertNoNewConnection(port);
    release();
    const res = await busy.read();
    assert.equal(res?.status, 200);
    assert.equal(res?.get("connection"), "close");
    await within(server.finished, "finished");
    assert.equal(hook, 1);
    assert.equal(server.openConnections, 0);
  } finally {
    release();
    idle.close();
    busy.close();
    server.close();
    await server.finished;
  }
});

Deno.test("shutdown: a `signal` aborted before serve() shuts down at once", async () => {
  const server = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, signal: AbortSignal.abort() },
    () => new Response("never"),
  );
  await within(server.finished, "finished");
  await assertNoNewConnection(portOf(server.addr));
});

Deno.test("close(): cuts in-flight requests at once with a cause; `finished` resolves", async () => {
  let ctx: Context | undefined;
  let inHandler!: () => void;
  const inHandlerP = new Promise<void>((r) => (inHandler = r));
  const { server, port } = start({}, async (_req, info) => {
    ctx = info.context;
    inHandler();
    await info.context.done;
    return new Response("late");
  });
  const c = await RawClient.connect(port);
  try {
    await c.send(get("/"));
    await within(inHandlerP, "handler");
    server.close();
    await within(server.finished, "finished");
    assert.ok(ctx?.err instanceof CanceledError);
    assert.match(String((cause(ctx!) as Error).message), /server closed/);
    assert.equal(await c.read(), null);
  } finally {
    c.close();
  }
});

// ---------------------------------------------------------------------------
// connState sequences

Deno.test("connState: keep-alive → new, active, idle, active, idle, closed", async () => {
  const states = new States();
  const { server, port } = start({ connState: states.connState }, () => new Response("ok"));
  const c = await RawClient.connect(port);
  try {
    for (let i = 0; i < 2; i++) {
      await c.send(get(`/${i}`));
      assert.equal((await c.read())?.status, 200);
      await states.untilLast(0, "idle");
    }
    c.close();
    await states.untilLast(0, "closed");
    assert.deepEqual(states.of(0), ["new", "active", "idle", "active", "idle", "closed"]);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("connState: `Connection: close` and HTTP/1.0 → new, active, closed (as Go)", async () => {
  const states = new States();
  const { server, port } = start({ connState: states.connState }, () => new Response("ok"));
  try {
    const requests = [
      get("/", "Connection: close\r\n"),
      "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
    ];
    for (let i = 0; i < requests.length; i++) {
      const c = await RawClient.connect(port);
      try {
        await c.send(requests[i]);
        const res = await c.read();
        assert.equal(res?.status, 200);
        assert.equal(res?.get("connection"), "close");
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
      await states.untilLast(i, "closed");
      assert.deepEqual(states.of(i), ["new", "active", "closed"]);
    }
  } finally {
    await server.shutdown();
  }
});

Deno.test("connState: a client that aborts mid-head → new, active, closed; no handler runs", async () => {
  const states = new States();
  let calls = 0;
  const { server, port } = start({ connState: states.connState }, () => {
    calls++;
    return new Response("ok");
  });
  const c = await RawClient.connect(port);
  try {
    await c.send("GET /partial HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Half: ");
    await states.untilLast(0, "active");
    c.close();
    await states.untilLast(0, "closed");
    assert.deepEqual(states.of(0), ["new", "active", "closed"]);
    assert.equal(calls, 0);
    assert.equal(server.openConnections, 0);
  } finally {
    c.close();
    await server.shutdown();
  }
});

// The handler's response is still written (into a socket the peer has
// closed), the connection goes idle, and the next read finds EOF. Go's
// net/http reports the same sequence: StateIdle is set before the next Peek.
Deno.test("connState: a client that aborts while its handler runs → new, active, idle, closed (as Go); context canceled", async () => {
  const states = new States();
  let inHandler!: () => void;
  const inHandlerP = new Promise<void>((r) => (inHandler = r));
  let handlerDone!: (why: unknown) => void;
  const handlerDoneP = new Promise<unknown>((r) => (handlerDone = r));
  const { server, port } = start({ connState: states.connState }, async (_req, info) => {
    inHandler();
    await info.context.done;
    handlerDone(cause(info.context));
    return new Response("nobody is listening");
  });
  const c = await RawClient.connect(port);
  try {
    await c.send(get("/wait"));
    await within(inHandlerP, "handler");
    assert.equal(server.activeRequests, 1);
    c.close();
    const why = await within(handlerDoneP, "the handler's context canceled");
    assert.ok(why instanceof CanceledError);
    assert.match(why.message, /client disconnected/);
    await states.untilLast(0, "closed");
    assert.deepEqual(states.of(0), ["new", "active", "idle", "closed"]);
    assert.equal(server.activeRequests, 0);
    assert.equal(server.openConnections, 0);
  } finally {
    c.close();
    await server.shutdown();
  }
});

Deno.test("connState: connect and leave → new, closed; idle timeout → new, active, idle, closed", async () => {
  const states = new States();
  const { server, port } = start(
    { connState: states.connState, idleTimeout: 50 },
    () => new Response("ok"),
  );
  try {
    const silent = await RawClient.connect(port);
    await states.untilLast(0, "new");
    silent.close();
    await states.untilLast(0, "closed");
    assert.deepEqual(states.of(0), ["new", "closed"]);

    const c = await RawClient.connect(port);
    try {
      await c.send(get("/"));
      assert.equal((await c.read())?.status, 200);
      // The server closes the idle connection by itself.
      assert.ok(await c.closedByServer());
      await states.untilLast(1, "closed");
      assert.deepEqual(states.of(1), ["new", "active", "idle", "closed"]);
    } finally {
      c.close();
    }
  } finally {
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------
// Live counts

Deno.test("openConnections and activeRequests follow connections and requests live", async () => {
  const states = new States();
  const gates = new Map<string, () => void>();
  const entered: string[] = [];
  let onEnter: () => void = () => {};
  let seenInside = -1;
  const { server, port } = start({ connState: states.connState }, async (req, info) => {
    const name = new URL(req.url).pathname.slice(1);
    seenInside = info.context.value(ServerContextKey)!.activeRequests;
    const gate = new Promise<void>((r) => gates.set(name, r));
    entered.push(name);
    onEnter();
    await gate;
    return new Response(name);
  });
  const [a, b, c] = await Promise.all([1, 2, 3].map(() => RawClient.connect(port)));
  const bothIn = new Promise<void>((r) => (onEnter = () => entered.length === 2 && r()));
  try {
    await states.untilCount("new", 3);
    assert.equal(server.openConnections, 3);
    assert.equal(server.activeRequests, 0);
    await a.send(get("/a"));
    await b.send(get("/b"));
    await within(bothIn, "both handlers");
    assert.equal(server.activeRequests, 2);
    assert.ok(seenInside >= 1, "a handler sees itself in activeRequests");
    assert.equal(server.openConnections, 3);

    gates.get("a")!();
    assert.equal((await a.read())?.body, "a");
    await states.untilLast(0, "idle");
    assert.equal(server.activeRequests, 1);
    gates.get("b")!();
    assert.equal((await b.read())?.body, "b");
    await states.untilCount("idle", 2);
    assert.equal(server.activeRequests, 0);
    assert.equal(server.openConnections, 3);

    a.close();
    await states.untilCount("closed", 1);
    assert.equal(server.openConnections, 2);
    b.close();
    c.close();
    await states.untilCount("closed", 3);
    assert.equal(server.openConnections, 0);
  } finally {
    for (const g of gates.values()) g();
    for (const x of [a, b, c]) x.close();
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------
// examples/production.ts, driven by SIGTERM

/** Lines of a child's stdout, as they arrive. */
class Lines {
  readonly all: string[] = [];
  #waiters: { re: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
  readonly done: Promise<void>;

  constructor(stream: ReadableStream<Uint8Array>) {
    this.done = (async () => {
      let rest = "";
      for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
        rest += chunk;
        let i;
        while ((i = rest.indexOf("\n")) !== -1) {
          this.#line(rest.slice(0, i));
          rest = rest.slice(i + 1);
        }
      }
      if (rest !== "") this.#line(rest);
    })();
  }

  #line(line: string): void {
    this.all.push(line);
    this.#waiters = this.#waiters.filter((w) => {
      const m = w.re.exec(line);
      if (m) w.resolve(m);
      return !m;
    });
  }

  wait(re: RegExp, ms = 10_000): Promise<RegExpExecArray> {
    for (const l of this.all) {
      const m = re.exec(l);
      if (m) return Promise.resolve(m);
    }
    const p = new Promise<RegExpExecArray>((resolve) => this.#waiters.push({ re, resolve }));
    return within(p, `a line matching ${re} (got:\n${this.all.join("\n")})`, ms);
  }
}

Deno.test("examples/production.ts: SIGTERM → not ready, drain, graceful exit; a log line per event", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-net",
      "--allow-env",
      new URL("./examples/production.ts", import.meta.url).pathname,
    ],
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      DRAIN_DELAY_MS: "1500",
      SHUTDOWN_TIMEOUT_MS: "10000",
      NO_COLOR: "1",
    },
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const out = new Lines(child.stdout);
  const err = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const slow = { client: null as RawClient | null };
  try {
    const m = await out.wait(/event=listening .*url=http:\/\/127\.0\.0\.1:(\d+)/, 30_000);
    const port = Number(m[1]);
    const base = `http://127.0.0.1:${port}`;
    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    const h = await health.json();
    assert.equal(h.ready, true);
    assert.equal(h.activeRequests, 1, "the health check itself");
    assert.ok(h.openConnections >= 1);

    // A request in flight across the shutdown.
    slow.client = await RawClient.connect(port, 20_000);
    await slow.client.send(get("/slow?ms=2500"));
    await out.wait(/event=conn_state .*state=active/);

    child.kill("SIGTERM");
    await out.wait(/event=signal signal=SIGTERM/);
    // During the drain delay the health check reports not ready (503).
    let notReady: Record<string, unknown> | null = null;
    for (let i = 0; i < 100 && notReady === null; i++) {
      const r = await fetch(`${base}/healthz`);
      const body = await r.json();
      if (r.status === 503) notReady = body;
      else await tick();
    }
    assert.ok(notReady !== null, "readiness never turned false");
    assert.equal(notReady.ready, false);
    assert.equal(notReady.status, "draining");

    const res = await slow.client.read();
    assert.equal(res?.status, 200, "the in-flight request was not allowed to finish");
    const s = await within(status, "the example's exit", 20_000);
    assert.equal(s.code, 0, `exit code ${s.code}; stderr:\n${await err}`);
    await out.done;
    const log = out.all.join("\n");
    for (
      const re of [
        /event=conn_state conn=\d+ remote=127\.0\.0\.1:\d+ state=new/,
        /state=active/,
        /state=idle/,
        /state=closed/,
        /event=draining/,
        /event=shutdown_start timeout_ms=10000/,
        /event=shutdown_done .*graceful=true/,
      ]
    ) assert.match(log, re);
  } finally {
    slow.client?.close();
    if (!exited) child.kill("SIGKILL");
    await status;
    await out.done.catch(() => {});
    await err;
  }
});
