// node:http + ws echo server, for bench/ws.ts.
//
//   WS_MODULE=/path/to/node_modules/ws node bench/servers/ws_node.mjs --port=0
//
// `ws` is loaded from WS_MODULE (bench/ws.ts installs it in a cache
// directory with npm; the repository itself has no dependencies). Default
// `ws` options, as most deployments run it (permessage-deflate off).
// Prints `READY node-ws http://127.0.0.1:<port>` once listening.

import { createServer } from "node:http";
import { createRequire } from "node:module";

/** @param {string} name */
function flag(name) {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

const port = Number(flag("port") ?? process.env.PORT ?? 0);
const hostname = flag("hostname") ?? process.env.HOSTNAME ?? "127.0.0.1";
const wsPath = process.env.WS_MODULE;
if (!wsPath) throw new Error("set WS_MODULE to the path of the ws package");
const { WebSocketServer } = createRequire(import.meta.url)(wsPath);

// GET /gc runs a full GC when started with --expose-gc (bench idle).
const server = createServer((_req, res) => {
  globalThis.gc?.();
  res.end("ok");
});
const wss = new WebSocketServer({ server });
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
server.listen(port, hostname, () => {
  const a = server.address();
  console.log(`READY node-ws http://${a.address}:${a.port}`);
});
