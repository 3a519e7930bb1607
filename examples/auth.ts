// Copyright 2026 the connctx authors. MIT license.
// Authentication once per connection: connContext derives an identity from the
// connection itself (its remote address, its transport, TLS or not) and puts
// it in the connection's context. Every request on that connection reads it;
// nothing is recomputed per request, and no identity can leak to another
// connection (each context lives in its own connection's loop).
//
//   deno run --allow-net examples/auth.ts
//
//   curl localhost:8000/whoami                  # loopback: admin
//   curl localhost:8000/admin                   # allowed for admin
//   curl "http://$(hostname -I | cut -d' ' -f1):8000/admin"   # another address: 403
//
// With TLS (add --allow-read): serve({ port: 8443, cert, key }, ...) and
// conn.tls is set; a real deployment would check a client certificate or a
// token here, once per connection, the same way.

import { ContextKey, serve, withValue } from "../mod.ts";
import type { ConnInfo } from "../mod.ts";

interface Identity {
  name: string;
  roles: ReadonlySet<string>;
  /** How the identity was established. */
  via: string;
}

const IDENTITY = new ContextKey<Identity>("identity");

function isLoopback(host: string): boolean {
  return host === "::1" || host.startsWith("127.") || host === "::ffff:127.0.0.1";
}

function isPrivate(host: string): boolean {
  return /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(host) || /^f[cd]/i.test(host);
}

/** Runs once per connection. */
function identify(conn: ConnInfo): Identity {
  const tls = conn.tls ? ` over TLS (${conn.tls.alpnProtocol ?? "no ALPN"})` : "";
  const addr = conn.remoteAddr;
  if (addr.transport === "unix" || addr.transport === "unixpacket") {
    return { name: "local-socket", roles: new Set(["admin", "reader"]), via: "unix socket" };
  }
  if (addr.transport !== "tcp") return { name: "anonymous", roles: new Set(), via: "unknown" };
  if (isLoopback(addr.hostname)) {
    return { name: "localhost", roles: new Set(["admin", "reader"]), via: `loopback${tls}` };
  }
  if (isPrivate(addr.hostname)) {
    return { name: `lan:${addr.hostname}`, roles: new Set(["reader"]), via: `private net${tls}` };
  }
  return { name: "anonymous", roles: new Set(), via: `public address${tls}` };
}

serve({
  port: 8000,
  connContext: (ctx, conn) => {
    const who = identify(conn);
    console.log(`conn ${conn.id}: authenticated as ${who.name} via ${who.via}`);
    return withValue(ctx, IDENTITY, who);
  },
}, (req, info) => {
  const who = info.context.value(IDENTITY)!;
  const path = new URL(req.url).pathname;
  if (path === "/whoami") {
    return Response.json({ name: who.name, roles: [...who.roles], via: who.via });
  }
  if (path === "/admin") {
    if (!who.roles.has("admin")) {
      return Response.json({ error: `${who.name} is not an admin` }, { status: 403 });
    }
    return Response.json({ secret: "the admin page", for: who.name });
  }
  return new Response("try /whoami or /admin\n");
});
