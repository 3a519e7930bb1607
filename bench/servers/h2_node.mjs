// node:http2 benchmark server: h2c prior knowledge, or TLS with ALPN h2.
// Same routes as h2_connctx.ts.
//
//   node --expose-gc bench/servers/h2_node.mjs [--tls=DIR]

import { readFileSync } from "node:fs";
import http2 from "node:http2";

const tlsDir = process.argv.find((a) => a.startsWith("--tls="))?.slice(6);
const BIG = Buffer.alloc(1 << 20, 120);
const HELLO = Buffer.from("Hello, World!");

function onStream(stream, headers) {
  const path = headers[":path"];
  if (path === "/big") {
    stream.respond({ ":status": 200, "content-length": BIG.length });
    stream.end(BIG);
  } else if (path === "/__mem") {
    globalThis.gc?.();
    const m = process.memoryUsage();
    stream.respond({ ":status": 200, "content-type": "application/json" });
    stream.end(JSON.stringify({ rss: m.rss, heap: m.heapUsed }));
  } else {
    stream.respond({
      ":status": 200,
      "content-type": "text/plain;charset=UTF-8",
      "content-length": 13,
    });
    stream.end(HELLO);
  }
}

const server = tlsDir
  ? http2.createSecureServer({
    cert: readFileSync(`${tlsDir}/cert.pem`),
    key: readFileSync(`${tlsDir}/key.pem`),
  })
  : http2.createServer();
server.on("stream", onStream);
server.on("sessionError", () => {});
server.listen(0, "127.0.0.1", () => console.log(`READY ${server.address().port}`));
