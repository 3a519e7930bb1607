// Copyright 2026 the connctx authors. MIT license.
// A tiny router on the web-standard URLPattern, with no framework: routes get
// the request, connctx's info and the matched parameters.
//
//   deno run --allow-net examples/router.ts
//
//   curl -i localhost:8000/users/1
//   curl -i -X POST localhost:8000/users -d '{"name":"grace"}'
//   curl -i -X DELETE localhost:8000/users/1    # 405, with an Allow header
//   curl -i localhost:8000/nowhere              # 404

import { ContextKey, serve, type ServeHandler, type ServeHandlerInfo, withValue } from "../mod.ts";

type Params = Record<string, string | undefined>;
type RouteHandler = (
  req: Request,
  info: ServeHandlerInfo,
  params: Params,
) => Response | Promise<Response>;

/** First match wins; a path that matches with another method gets 405. */
function router(routes: [method: string, path: string, handler: RouteHandler][]): ServeHandler {
  const table = routes.map(([method, pathname, handler]) => ({
    method,
    pattern: new URLPattern({ pathname }),
    handler,
  }));
  return (req, info) => {
    const allow = new Set<string>();
    for (const r of table) {
      const m = r.pattern.exec(req.url);
      if (m === null) continue;
      if (r.method === req.method || (r.method === "GET" && req.method === "HEAD")) {
        return r.handler(req, info, m.pathname.groups);
      }
      allow.add(r.method);
    }
    if (allow.size > 0) {
      return new Response("method not allowed\n", {
        status: 405,
        headers: { allow: [...allow].join(", ") },
      });
    }
    return new Response("not found\n", { status: 404 });
  };
}

/** A request id, added to the context by a wrapping handler. */
const REQUEST_ID = new ContextKey<string>("request id");

const users = new Map<string, { name: string }>([["1", { name: "ada" }]]);
let nextUser = 2;

const app = router([
  ["GET", "/", () => new Response("try /users/1\n")],
  ["GET", "/users/:id", (_req, info, { id }) => {
    const user = users.get(id!);
    if (!user) return Response.json({ error: "no such user" }, { status: 404 });
    return Response.json({ id, ...user, requestId: info.context.value(REQUEST_ID) });
  }],
  ["POST", "/users", async (req) => {
    const body = await req.json().catch(() => null) as { name?: unknown } | null;
    if (typeof body?.name !== "string") {
      return Response.json({ error: 'send {"name": "..."}' }, { status: 400 });
    }
    const id = String(nextUser++);
    users.set(id, { name: body.name });
    return Response.json({ id }, { status: 201, headers: { location: `/users/${id}` } });
  }],
  ["GET", "/static/:path+", (_req, _info, { path }) => new Response(`a file called ${path}\n`)],
]);

// Middleware is function composition: derive a context, pass a new info on.
serve({ port: 8000 }, (req, info) => {
  const requestId = crypto.randomUUID().slice(0, 8);
  return app(req, {
    remoteAddr: info.remoteAddr,
    completed: info.completed,
    conn: info.conn,
    context: withValue(info.context, REQUEST_ID, requestId),
  });
});
