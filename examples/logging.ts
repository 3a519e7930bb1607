// Copyright 2026 the connctx authors. MIT license.
// Request logging with per-connection ids: connContext gives each connection
// an id and a request counter (once per connection), connState logs when a
// connection opens and closes, and a wrapping handler logs one line per
// request once its response has been sent.
//
//   deno run --allow-net examples/logging.ts
//
//   curl localhost:8000/a localhost:8000/b    # one connection, requests #1 and #2
//   curl localhost:8000/missing               # a new connection
//
// Output looks like:
//   conn 1 open   127.0.0.1:51234
//   conn 1 #1 GET /a 200 0.4ms
//   conn 1 #2 GET /b 200 0.2ms
//   conn 1 closed after 2 requests
//   conn 2 open   127.0.0.1:51236
//   conn 2 #1 GET /missing 404 0.3ms
//   conn 2 closed after 1 requests

import { ContextKey, serve, type ServeHandler, type ServeHandlerInfo, withValue } from "../mod.ts";

/** What the log knows about a connection; one object per connection. */
interface ConnLog {
  id: string;
  requests: number;
}
const CONN_LOG = new ContextKey<ConnLog>("connection log");

/** Per-connection log records, for connState (which sees ConnInfo, not contexts). */
const byConn = new Map<number, ConnLog>();

function peer(addr: Deno.Addr): string {
  return addr.transport === "tcp" || addr.transport === "udp"
    ? `${addr.hostname}:${addr.port}`
    : addr.transport;
}

/** Wraps a handler: one log line per request, after the response is sent. */
function withLogging(handler: ServeHandler): ServeHandler {
  return async (req, info: ServeHandlerInfo) => {
    const start = performance.now();
    const log = info.context.value(CONN_LOG)!;
    const n = ++log.requests;
    const path = new URL(req.url).pathname;
    let status = 500;
    try {
      const res = await handler(req, info);
      status = res.status;
      return res;
    } finally {
      // Canceled already? Then the client left while the handler ran.
      const left = info.context.err !== undefined ? " (client left)" : "";
      info.completed.then(() => {
        const ms = (performance.now() - start).toFixed(1);
        console.log(`conn ${log.id} #${n} ${req.method} ${path} ${status} ${ms}ms${left}`);
      });
    }
  };
}

const hello: ServeHandler = (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/missing") return new Response("not here\n", { status: 404 });
  return new Response(`hello from ${path}\n`);
};

serve({
  port: 8000,
  connContext: (ctx, conn) => {
    const log: ConnLog = { id: String(conn.id), requests: 0 };
    byConn.set(conn.id, log);
    return withValue(ctx, CONN_LOG, log);
  },
  // new → active ⇄ idle → closed; log the ends (add "active"/"idle" to see more).
  connState: (conn, state) => {
    if (state === "new") console.log(`conn ${conn.id} open   ${peer(conn.remoteAddr)}`);
    if (state === "closed") {
      console.log(`conn ${conn.id} closed after ${byConn.get(conn.id)?.requests ?? 0} requests`);
      byConn.delete(conn.id);
    }
  },
}, withLogging(hello));
