// connctx HTTP/2 benchmark server (h2c prior knowledge, or TLS with ALPN h2).
//
//   deno run -A --v8-flags=--expose-gc bench/servers/h2_connctx.ts [--tls=DIR]
//
// Routes: / → "Hello, World!", /big → 1 MiB, /__mem → GC, then
// `{"rss":…,"heap":…}`. Prints `READY <port>` once listening.

import { serve } from "../../server.ts";

const tlsDir = Deno.args.find((a) => a.startsWith("--tls="))?.slice(6);
const tls = tlsDir
  ? {
    cert: await Deno.readTextFile(`${tlsDir}/cert.pem`),
    key: await Deno.readTextFile(`${tlsDir}/key.pem`),
  }
  : {};
const BIG = new Uint8Array(1 << 20).fill(120);
const s = serve({ port: 0, hostname: "127.0.0.1", onListen() {}, ...tls }, (req) => {
  const path = new URL(req.url).pathname;
  if (path === "/big") return new Response(BIG);
  if (path === "/__mem") {
    (globalThis as { gc?: () => void }).gc?.();
    const m = Deno.memoryUsage();
    return Response.json({ rss: m.rss, heap: m.heapUsed });
  }
  return new Response("Hello, World!");
});
console.log(`READY ${(s.addr as Deno.NetAddr).port}`);
