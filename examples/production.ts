// Copyright 2026 the connctx authors. MIT license.
// A production-shaped server: graceful shutdown on SIGTERM/SIGINT with a
// deadline, one log line per lifecycle event, and a health check that turns
// "not ready" as soon as the server starts draining.
//
//   PORT=8000 deno run --allow-net --allow-env examples/production.ts
//
// Environment:
//   PORT                 listening port (default 8000; 0 picks a free one)
//   HOST                 listening address (default 0.0.0.0; not HOSTNAME,
//                        which shells and containers set to the machine name)
//   SHUTDOWN_TIMEOUT_MS  longest graceful shutdown; then in-flight requests are
//                        cut, their contexts canceled (default 10000)
//   DRAIN_DELAY_MS       after the signal, keep serving (with /healthz at 503)
//                        this long so a load balancer stops routing here
//                        before the listener closes (default 0)
//
// On the first SIGTERM/SIGINT: /healthz → 503, wait DRAIN_DELAY_MS, then
// `server.shutdown(withTimeout(background(), SHUTDOWN_TIMEOUT_MS).ctx)`: stop
// accepting, close idle connections, let in-flight requests finish (with
// `Connection: close`). Exit 0 if everything finished in time, 1 otherwise. A
// second signal closes everything at once.
//
// Routes: /healthz (readiness and live counts), /slow?ms=N (a slow request
// that gives up when its context ends), / (hello).

import { background, cause, withTimeout } from "../context.ts";
import { serve, type ServeHandler } from "../server.ts";

function envInt(name: string, fallback: number): number {
  const raw = Deno.env.get(name);
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer`);
  return n;
}

const port = envInt("PORT", 8000);
const hostname = Deno.env.get("HOST") ?? "0.0.0.0";
const shutdownTimeout = envInt("SHUTDOWN_TIMEOUT_MS", 10_000);
const drainDelay = envInt("DRAIN_DELAY_MS", 0);

/** One logfmt line per event. */
function log(event: string, fields: Record<string, string | number | boolean> = {}): void {
  let line = `time=${new Date().toISOString()} event=${event}`;
  for (const [k, v] of Object.entries(fields)) {
    const s = String(v);
    line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
  }
  console.log(line);
}

function addr(a: Deno.Addr): string {
  if (a.transport === "tcp" || a.transport === "udp") {
    return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
  }
  return "path" in a ? `unix:${a.path}` : a.transport;
}

let draining = false;

const handler: ServeHandler = async (req, info) => {
  const url = new URL(req.url);
  switch (url.pathname) {
    case "/healthz": {
      const body = {
        status: draining ? "draining" : "ok",
        ready: !draining,
        openConnections: server.openConnections,
        activeRequests: server.activeRequests,
      };
      return Response.json(body, {
        status: draining ? 503 : 200,
        headers: { "cache-control": "no-store" },
      });
    }
    case "/slow": {
      const ms = Math.min(Math.max(Number(url.searchParams.get("ms")) || 1000, 0), 60_000);
      let timer: ReturnType<typeof setTimeout> | undefined;
      // Sleep, or stop as soon as the request's context ends: the client went
      // away or the shutdown deadline passed.
      await Promise.race([
        new Promise((r) => (timer = setTimeout(r, ms))),
        info.context.done,
      ]);
      clearTimeout(timer);
      if (info.context.err !== undefined) {
        log("request_canceled", { path: url.pathname, cause: String(cause(info.context)) });
        return new Response("canceled\n", { status: 503 });
      }
      return new Response(`slept ${ms} ms\n`);
    }
    case "/":
      return new Response("hello\n");
    default:
      return new Response("not found\n", { status: 404 });
  }
};

const server = serve({
  port,
  hostname,
  onListen: (a) => {
    const shown = a.transport === "tcp" ? `http://${addr(a)}/` : addr(a);
    log("listening", { url: shown, pid: Deno.pid });
  },
  connState: (conn, state) =>
    log("conn_state", { conn: conn.id, remote: addr(conn.remoteAddr), state }),
  onError: (error, req) => {
    log("handler_error", { path: new URL(req.url).pathname, error: String(error) });
    return new Response("Internal Server Error\n", { status: 500 });
  },
}, handler);

server.registerOnShutdown(() => log("stopped_accepting"));

let stopping = false;
let forced = false;

async function stop(signal: Deno.Signal): Promise<void> {
  if (stopping) {
    log("signal", { signal, action: "close_now" });
    forced = true;
    server.close();
    return;
  }
  stopping = true;
  log("signal", { signal, action: "graceful_shutdown" });
  draining = true;
  log("draining", { delay_ms: drainDelay });
  if (drainDelay > 0) await new Promise((r) => setTimeout(r, drainDelay));
  log("shutdown_start", {
    timeout_ms: shutdownTimeout,
    open_connections: server.openConnections,
    active_requests: server.activeRequests,
  });
  using deadline = withTimeout(
    background(),
    shutdownTimeout,
    new Error(`shutdown took longer than ${shutdownTimeout} ms`),
  );
  await server.shutdown(deadline.ctx);
  const graceful = !forced && deadline.ctx.err === undefined;
  log("shutdown_done", {
    graceful,
    ...(graceful ? {} : { cause: forced ? "second signal" : String(cause(deadline.ctx)) }),
  });
  Deno.exit(graceful ? 0 : 1);
}

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  try {
    Deno.addSignalListener(signal, () => void stop(signal));
  } catch {
    // SIGTERM cannot be listened for on Windows.
  }
}
