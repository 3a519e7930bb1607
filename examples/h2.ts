// Copyright 2026 the connctx authors. MIT license.
// HTTP/2: every stream of a connection is a request with its own context,
// derived from the connection's (connContext runs once per connection, not
// once per stream).
//
// Over TLS, clients that offer ALPN "h2" get HTTP/2 and the others
// HTTP/1.1; in cleartext, clients that open with the HTTP/2 preface ("prior
// knowledge" h2c) get HTTP/2. `Upgrade: h2c` is not supported: such
// requests are answered as HTTP/1.1.
//
//   openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//     -keyout key.pem -out cert.pem -days 7 -subj /CN=localhost
//   deno run --allow-net --allow-read examples/h2.ts cert.pem key.pem
//   curl -k --http2 https://localhost:8443/ https://localhost:8443/slow
//   nghttp -ans https://localhost:8443/ https://localhost:8443/slow
//
// Without certificate arguments it serves cleartext on port 8000:
//
//   curl --http2-prior-knowledge http://localhost:8000/ http://localhost:8000/slow
import { ContextKey, serve, withValue } from "../mod.ts";

/** Set once per connection; every stream of the connection sees it. */
const CONN = new ContextKey<{ id: number; streams: number }>("connection");

const [certFile, keyFile] = Deno.args;
const tls = certFile && keyFile
  ? { cert: await Deno.readTextFile(certFile), key: await Deno.readTextFile(keyFile) }
  : {};

serve({
  port: certFile ? 8443 : 8000,
  ...tls,
  connContext: (ctx, conn) => withValue(ctx, CONN, { id: conn.id, streams: 0 }),
}, (req, info) => {
  const conn = info.context.value(CONN)!;
  const n = ++conn.streams;
  const proto = info.conn.tls?.alpnProtocol ?? "cleartext";
  if (new URL(req.url).pathname === "/slow") {
    // A streamed body: sent with HTTP/2 flow control; if the client resets
    // the stream, this request's context is canceled and the stream stops,
    // while the connection and its other streams go on.
    let i = 0;
    let timer: ReturnType<typeof setInterval> | undefined;
    return new Response(
      new ReadableStream<Uint8Array>({
        start(c) {
          timer = setInterval(() => {
            if (info.context.err || ++i > 5) {
              clearInterval(timer);
              c.close();
            } else c.enqueue(new TextEncoder().encode(`tick ${i}\n`));
          }, 200);
        },
        cancel() {
          clearInterval(timer);
        },
      }),
      { headers: { "content-type": "text/plain; charset=utf-8" } },
    );
  }
  return new Response(
    `connection ${conn.id} (${proto}), request ${n} on it: ${req.method} ${req.url}\n`,
  );
});
