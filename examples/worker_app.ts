// Copyright 2026 the connctx authors. MIT license.
// Multi-core serving: one module, run as the main thread (it starts the pool)
// and as each worker (it serves). Every response names its worker.
//
//   WORKERS=2 PORT=8000 deno run --allow-net --allow-env --allow-read --unstable-net \
//     examples/worker_app.ts
//
// Prints `READY workers-N http://host:port` once every worker listens; SIGTERM
// or SIGINT shuts every worker down gracefully (SHUTDOWN_TIMEOUT_MS, default
// 10000) and exits 0 if all finished in time.

import { background, withTimeout } from "../context.ts";
import { isWorker, serveWorker, serveWorkers, workerId } from "../workers.ts";

if (isWorker()) {
  const id = workerId();
  const headers = { "content-type": "text/plain", "x-worker": String(id) };
  serveWorker((req) => {
    const path = new URL(req.url).pathname;
    // /hello and /cpu: the benchmark's scenarios (bench/workers_bench.ts).
    if (path === "/hello") return new Response("Hello, World!", { headers });
    if (path === "/cpu") {
      // About a millisecond of CPU per request: where more cores help.
      let x = 0;
      for (let i = 0; i < 500_000; i++) x = (Math.imul(x, 31) + i) | 0;
      return new Response(`${x}\n`, { headers });
    }
    return new Response(`worker ${id}\n`, { headers });
  });
} else if (import.meta.main) {
  const env = (name: string, fallback: string) => Deno.env.get(name) ?? fallback;
  const pool = await serveWorkers(import.meta.url, {
    workers: Number(env("WORKERS", String(navigator.hardwareConcurrency))),
    port: Number(env("PORT", "8000")),
    hostname: env("HOST", "0.0.0.0"),
    onListen() {},
  });
  console.log(`READY workers-${pool.workers} http://${pool.addr.hostname}:${pool.addr.port}`);
  const timeout = Number(env("SHUTDOWN_TIMEOUT_MS", "10000"));
  let stopping = false;
  const stop = async (signal: Deno.Signal) => {
    if (stopping) return pool.close();
    stopping = true;
    console.log(`${signal}: shutting down ${pool.workers} workers`);
    using deadline = withTimeout(background(), timeout);
    const graceful = await pool.shutdown(deadline.ctx);
    console.log(`stopped graceful=${graceful}`);
    Deno.exit(graceful ? 0 : 1);
  };
  Deno.addSignalListener("SIGTERM", () => void stop("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void stop("SIGINT"));
}
