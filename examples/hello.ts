// Copyright 2026 the connctx authors. MIT license.
// `deno task start`: a server that shows per-connection contexts.
//
//   curl localhost:8000 localhost:8000   # one connection, two requests
//   curl localhost:8000                  # a new connection: a new id, count 1
import { ContextKey, serve, withValue } from "../mod.ts";

/** The connection's id, set once per connection by connContext. */
const CONN_ID = new ContextKey<number>("conn id");
/** A per-connection request counter, also in the connection's context. */
const REQUESTS = new ContextKey<{ n: number }>("requests");

const port = Number(Deno.env.get("PORT") ?? 8000);

serve({
  port,
  connContext: (ctx, conn) => withValue(withValue(ctx, CONN_ID, conn.id), REQUESTS, { n: 0 }),
}, (req, info) => {
  const counter = info.context.value(REQUESTS)!;
  counter.n++;
  const id = info.context.value(CONN_ID);
  return new Response(
    `connection ${id}, request ${counter.n} on it (${req.method} ${new URL(req.url).pathname})\n`,
  );
});
