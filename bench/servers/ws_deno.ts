// Deno.serve + Deno.upgradeWebSocket echo server, for bench/ws.ts.
//
//   deno run -A bench/servers/ws_deno.ts --port=0
//
// Prints `READY deno-ws http://127.0.0.1:<port>` once listening.

import { announce, serverFlags } from "./shared.ts";

const { port, hostname } = serverFlags();

Deno.serve({
  port,
  hostname,
  onListen: (addr) => announce("deno-ws", addr),
}, (req) => {
  if (req.headers.get("upgrade") !== "websocket") {
    // GET /gc runs a full GC when started with --v8-flags=--expose-gc (bench idle).
    (globalThis as { gc?: () => void }).gc?.();
    return new Response("ok");
  }
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  socket.onmessage = (e) => socket.send(e.data);
  return response;
});
