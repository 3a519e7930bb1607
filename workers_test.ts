// Copyright 2026 the connctx authors. MIT license.
// Tests for workers.ts: N workers serving one port with SO_REUSEPORT.
//
//   deno test -A workers_test.ts                  # as CI runs it
//   deno test -A --unstable-net workers_test.ts   # the pool tests in-process
//
// SO_REUSEPORT needs --unstable-net. Without it, the "pool:" tests run in a
// child `deno test --unstable-net` (one wrapper test below), and the
// example runs as a child `deno run --unstable-net`.

import assert from "node:assert/strict";
import { serve, type ServeOptions } from "./server.ts";
import { isWorker, serveWorkers, workerId } from "./workers.ts";
import { get, RawClient, within } from "./_test_http.ts";

const UNSTABLE_NET = "listenDatagram" in Deno;
const WORKER_APP = new URL("./examples/worker_app.ts", import.meta.url);

/** Asks `port` over a fresh connection which worker answers. */
async function whichWorker(port: number): Promise<string> {
  const c = await RawClient.connect(port);
  try {
    await c.send(get("/", "Connection: close\r\n"));
    const res = await c.read();
    if (res === null) throw new Error("closed without a response");
    assert.equal(res.status, 200);
    return res!.get("x-worker")!;
  } finally {
    c.close();
  }
}

/** Opens fresh connections (at most 200) until `n` distinct workers answered. */
async function distinctWorkers(port: number, n: number): Promise<Set<string>> {
  const seen = new Set<string>();
  for (let i = 0; i < 200 && seen.size < n; i++) seen.add(await whichWorker(port));
  return seen;
}

/** A worker module in a temporary file (JavaScript: no type check to wait for). */
async function tempModule(dir: string, name: string, body: string): Promise<URL> {
  const path = `${dir}/${name}`;
  const workers = new URL("./workers.ts", import.meta.url).href;
  await Deno.writeTextFile(path, `import { serveWorker, workerId } from "${workers}";\n${body}\n`);
  return new URL(`file://${path}`);
}

Deno.test("isWorker()/workerId() outside a pool", () => {
  assert.equal(isWorker(), false);
  assert.equal(workerId(), 0);
});

Deno.test({
  name: "serveWorkers() without --unstable-net rejects with a clear message",
  ignore: UNSTABLE_NET,
  async fn() {
    await assert.rejects(
      serveWorkers(WORKER_APP, { workers: 2, port: 0, onListen() {} }),
      /--unstable-net/,
    );
  },
});

// ---------------------------------------------------------------------------
// The pool, in-process (needs --unstable-net)

Deno.test({
  name: "pool: fresh connections spread over 2 workers; keep-alive stays on one; graceful shutdown",
  ignore: !UNSTABLE_NET,
  async fn() {
    let listened: [Deno.NetAddr, number] | null = null;
    const pool = await serveWorkers(WORKER_APP, {
      workers: 2,
      port: 0,
      hostname: "127.0.0.1",
      onListen: (addr, n) => (listened = [addr, n]),
    });
    try {
      assert.equal(pool.workers, 2);
      assert.ok(pool.addr.port > 0);
      assert.deepEqual(listened, [pool.addr, 2]);
      const ids = await distinctWorkers(pool.addr.port, 2);
      assert.deepEqual([...ids].sort(), ["1", "2"]);
      // One keep-alive connection: always the same worker.
      const c = await RawClient.connect(pool.addr.port);
      try {
        const on = new Set<string>();
        for (let i = 0; i < 5; i++) {
          await c.send(get("/"));
          on.add((await c.read())!.get("x-worker")!);
        }
        assert.equal(on.size, 1);
        // Shutdown closes the idle keep-alive connection.
        assert.equal(await within(pool.shutdown(5_000), "pool.shutdown", 20_000), true);
        assert.ok(await c.closedByServer());
      } finally {
        c.close();
      }
      await within(pool.finished, "pool.finished", 20_000);
      await assert.rejects(Deno.connect({ hostname: "127.0.0.1", port: pool.addr.port }));
    } finally {
      pool.close();
    }
  },
});

Deno.test({
  name: "pool: a worker module that throws while loading rejects serveWorkers()",
  ignore: !UNSTABLE_NET,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "connctx-workers-" });
    try {
      const url = await tempModule(dir, "throws.js", `throw new Error("broken module");`);
      await assert.rejects(
        serveWorkers(url, { workers: 2, port: 0, hostname: "127.0.0.1", onListen() {} }),
        /broken module/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "pool: when one worker fails to start, serveWorkers() rejects and stops the others",
  ignore: !UNSTABLE_NET,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "connctx-workers-" });
    try {
      const url = await tempModule(
        dir,
        "second_fails.js",
        `if (workerId() === 2) throw new Error("worker 2 cannot start");
        serveWorker(() => new Response("ok"));`,
      );
      const port = (() => {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const p = (l.addr as Deno.NetAddr).port;
        l.close();
        return p;
      })();
      await assert.rejects(
        serveWorkers(url, { workers: 3, port, hostname: "127.0.0.1", onListen() {} }),
        /worker 2 failed to start: .*worker 2 cannot start/,
      );
      // Worker 1 listened; once it is torn down, nothing is left on the port.
      let refused = false;
      for (let i = 0; i < 100 && !refused; i++) {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          await new Promise((r) => setTimeout(r, 20));
        } catch {
          refused = true;
        }
      }
      assert.ok(refused, "a worker still listens after serveWorkers() rejected");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "pool: a module that never calls serveWorker() fails after startTimeout",
  ignore: !UNSTABLE_NET,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "connctx-workers-" });
    try {
      const url = await tempModule(dir, "idle.js", `void serveWorker; void workerId;`);
      await assert.rejects(
        serveWorkers(url, {
          workers: 1,
          port: 0,
          hostname: "127.0.0.1",
          startTimeout: 300,
          onListen() {},
        }),
        /did not call serveWorker\(\) within 300 ms/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "pool: a port held without SO_REUSEPORT makes serveWorkers() reject",
  ignore: !UNSTABLE_NET,
  async fn() {
    const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      await assert.rejects(
        serveWorkers(WORKER_APP, {
          workers: 2,
          port: (taken.addr as Deno.NetAddr).port,
          hostname: "127.0.0.1",
          onListen() {},
        }),
        /worker 1 failed to start: .*AddrInUse/,
      );
    } finally {
      taken.close();
    }
  },
});

Deno.test({
  name: "pool: a worker that dies is reported; the others keep serving",
  ignore: !UNSTABLE_NET,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "connctx-workers-" });
    const errors: [number, unknown][] = [];
    let reported!: () => void;
    const wasReported = new Promise<void>((r) => (reported = r));
    try {
      const url = await tempModule(
        dir,
        "crash.js",
        `serveWorker((req) => {
          if (new URL(req.url).pathname === "/crash") setTimeout(() => { throw new Error("worker crashed"); });
          return new Response("ok", { headers: { "x-worker": String(workerId()) } });
        });`,
      );
      const pool = await serveWorkers(url, {
        workers: 2,
        port: 0,
        hostname: "127.0.0.1",
        onListen() {},
        onWorkerError: (id, e) => {
          errors.push([id, e]);
          reported();
        },
      });
      try {
        const c = await RawClient.connect(pool.addr.port);
        let victim: string;
        try {
          await c.send(get("/crash", "Connection: close\r\n"));
          victim = (await c.read())!.get("x-worker")!;
        } finally {
          c.close();
        }
        await within(wasReported, "onWorkerError", 20_000);
        assert.equal(errors.length, 1);
        assert.equal(String(errors[0][0]), victim);
        assert.match(String(errors[0][1]), /worker crashed/);
        // The dead worker's socket leaves the SO_REUSEPORT group once the
        // worker is torn down; until then a connection may be queued on it
        // and reset. Then every new connection lands on the survivor.
        let inARow = 0;
        for (let i = 0; i < 200 && inARow < 10; i++) {
          const who = await whichWorker(pool.addr.port).catch(() => null);
          assert.notEqual(who, victim, "the dead worker answered");
          inARow = who === null ? 0 : inARow + 1;
        }
        assert.equal(inARow, 10, "the survivor did not take over");
        assert.equal(
          await within(pool.shutdown(5_000), "shutdown", 20_000),
          false,
          "one worker died",
        );
      } finally {
        pool.close();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

// `reusePort` in ServeOptions (typed so that this file also compiles against
// a server.ts without the option).
function reusePortOptions(port: number): ServeOptions & { reusePort: boolean } {
  return { port, hostname: "127.0.0.1", onListen() {}, reusePort: true };
}

Deno.test({
  name: "serve({ reusePort }) without --unstable-net throws instead of exiting the process",
  ignore: UNSTABLE_NET,
  fn() {
    assert.throws(() => serve(reusePortOptions(0), () => new Response()), /--unstable-net/);
  },
});

Deno.test({
  name: "pool: serve({ reusePort: true }) twice on one port; both servers answer",
  ignore: !UNSTABLE_NET,
  async fn() {
    const a = serve(reusePortOptions(0), () => new Response("a", { headers: { "x-worker": "a" } }));
    const port = (a.addr as Deno.NetAddr).port;
    try {
      const b = serve(
        reusePortOptions(port),
        () => new Response("b", { headers: { "x-worker": "b" } }),
      );
      try {
        assert.deepEqual([...await distinctWorkers(port, 2)].sort(), ["a", "b"]);
      } finally {
        await b.shutdown();
      }
    } finally {
      await a.shutdown();
    }
  },
});

Deno.test({
  name: "the pool: tests, in a child `deno test --unstable-net`",
  ignore: UNSTABLE_NET,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "test",
        "-A",
        "--unstable-net",
        "--no-check", // this run already checked it
        "--filter",
        "/^pool: /",
        new URL(import.meta.url).pathname,
      ],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(out.success, text);
    assert.match(text, /ok \| 7 passed \| 0 failed/, text);
  },
});

// ---------------------------------------------------------------------------
// examples/worker_app.ts as a process

Deno.test("examples/worker_app.ts: 2 workers answer on one port; SIGTERM stops them gracefully", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", WORKER_APP.pathname],
    env: { WORKERS: "2", PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let onOut = () => {};
  const reading = (async () => {
    for await (const t of child.stdout.pipeThrough(new TextDecoderStream())) {
      out += t;
      onOut();
    }
  })();
  const err = new Response(child.stderr).text();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    onOut();
    return s;
  });
  try {
    const port = await within(
      new Promise<number>((resolve, reject) => {
        onOut = () => {
          const m = /READY workers-2 http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
          if (m) resolve(Number(m[1]));
          else if (exited) reject(new Error(`worker_app exited:\n${out}`));
        };
        onOut();
      }),
      "READY line",
      30_000,
    );
    const ids = await distinctWorkers(port, 2);
    assert.deepEqual([...ids].sort(), ["1", "2"], "connections were not spread over workers");
    child.kill("SIGTERM");
    const s = await within(status, "exit after SIGTERM", 20_000);
    await reading;
    assert.equal(s.code, 0, `${out}\n${await err}`);
    assert.match(out, /stopped graceful=true/);
  } finally {
    if (!exited) child.kill("SIGKILL");
    await status;
    await reading;
    await err;
  }
});
