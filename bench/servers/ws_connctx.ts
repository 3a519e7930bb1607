// connctx WebSocket echo server, for bench/ws.ts.
//
//   deno run -A bench/servers/ws_connctx.ts --port=0 [--api=deno]
//
// Echoes every message. `--api=deno` calls `Deno.upgradeWebSocket` (the
// wrapper connctx installs) instead of `upgradeWebSocket`: the same engine,
// reached the way an unchanged Deno.serve handler reaches it.
// Prints `READY connctx-ws http://127.0.0.1:<port>` once listening.

import { serve } from "../../server.ts";
import { installDenoUpgradeWebSocket, upgradeWebSocket } from "../../websocket.ts";
import { announce, argFlag, serverFlags } from "./shared.ts";

const { port, hostname } = serverFlags();
installDenoUpgradeWebSocket();
const upgrade = argFlag("api") === "deno" ? Deno.upgradeWebSocket : upgradeWebSocket;

serve({
  port,
  hostname,
  onListen: (addr) => announce("connctx-ws", addr),
}, (req) => {
  if (req.headers.get("upgrade") !== "websocket") {
    // GET /gc runs a full GC when started with --v8-flags=--expose-gc (bench idle).
    (globalThis as { gc?: () => void }).gc?.();
    return new Response("ok");
  }
  const { socket, response } = upgrade(req);
  socket.onmessage = (e) => socket.send(e.data);
  return response;
});
