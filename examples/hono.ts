// Copyright 2026 the connctx authors. MIT license.
// A Hono app on connctx. Hono hands its fetch's second argument to routes as
// `c.env`, so connctx's `info` (and the request's context) is `c.env`.
//
//   deno run --allow-net examples/hono.ts
//
//   curl -i localhost:8000/hello/ada
//   curl -i -X POST localhost:8000/double -H 'content-type: application/json' -d '{"n":21}'
//   curl localhost:8000/hello/a localhost:8000/hello/b   # one connection: same id, age grows

// deno-lint-ignore no-import-prefix
import { Hono } from "npm:hono@4";
import { ContextKey, serve, type ServeHandlerInfo, withValue } from "../mod.ts";

/** When the connection was accepted: set once per connection by connContext. */
const CONNECTED_AT = new ContextKey<number>("connected at");

const app = new Hono<{ Bindings: ServeHandlerInfo }>();

app.get("/", (c) => c.text("try /hello/:name or POST /double\n"));

app.get("/hello/:name", (c) => {
  const ctx = c.env.context; // this request's connctx context
  return c.json({
    hello: c.req.param("name"),
    connection: c.env.conn.id,
    connectionAgeMs: Date.now() - ctx.value(CONNECTED_AT)!,
  });
});

app.post("/double", async (c) => {
  const { n } = await c.req.json<{ n: number }>();
  if (typeof n !== "number") return c.json({ error: 'send {"n": <number>}' }, 400);
  return c.json({ n: n * 2 });
});

app.notFound((c) => c.json({ error: "not found", path: c.req.path }, 404));

serve({
  port: 8000,
  connContext: (ctx) => withValue(ctx, CONNECTED_AT, Date.now()),
}, app.fetch); // or (req, info) => app.fetch(req, info)
