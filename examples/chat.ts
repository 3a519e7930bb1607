// Copyright 2026 the connctx authors. MIT license.
// A chat room over WebSockets: one page, one socket per visitor, every
// message broadcast to everyone. The handler is the one you would write for
// Deno.serve (`Deno.upgradeWebSocket` works too); connctx adds the
// per-connection context — here a nickname set in `connContext` — which
// stays alive for the socket's life and is canceled, with the close code as
// its cause, when the socket closes. Ctrl-C shuts down gracefully: every
// visitor gets close 1001 ("going away") and the server waits up to 5 s for
// the closing handshakes.
//
//   deno run --allow-net examples/chat.ts
//   open http://localhost:8000/ in two browser windows
//   (or: deno eval 'const w = new WebSocket("ws://localhost:8000/ws");
//         w.onmessage = (e) => console.log(e.data); w.onopen = () => w.send("hi")')

import { background, cause, ContextKey, serve, withTimeout, withValue } from "../mod.ts";
import { upgradeWebSocket, WebSocketClosedError } from "../websocket.ts";

const NICK = new ContextKey<string>("nick");
const ANIMALS = ["otter", "heron", "lynx", "ibex", "puffin", "gecko", "wombat", "tapir"];

const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>connctx chat</title>
<pre id="log" style="height: 20em; overflow: auto"></pre>
<form id="f"><input id="msg" autofocus autocomplete="off"> <button>send</button></form>
<script>
  const log = document.getElementById("log");
  const show = (line) => { log.textContent += line + "\\n"; log.scrollTop = 1e9; };
  const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws");
  ws.onmessage = (e) => show(e.data);
  ws.onclose = (e) => show("(closed: " + e.code + " " + e.reason + ")");
  document.getElementById("f").onsubmit = (e) => {
    e.preventDefault();
    const input = document.getElementById("msg");
    if (input.value) ws.send(input.value);
    input.value = "";
  };
</script>
`;

/** Everyone in the room. */
const room = new Set<WebSocket>();

function broadcast(text: string): void {
  for (const s of room) {
    // A visitor that stopped reading falls behind; skip them rather than
    // queue without bound (and the server cuts them after writeTimeout).
    if (s.readyState === WebSocket.OPEN && s.bufferedAmount < 1 << 20) s.send(text);
  }
}

const server = serve({
  port: 8000,
  // Once per connection: a nickname every request (and socket) on it sees.
  connContext: (ctx, conn) =>
    withValue(ctx, NICK, `${ANIMALS[conn.id % ANIMALS.length]}-${conn.id}`),
}, (req, info) => {
  const path = new URL(req.url).pathname;
  if (path === "/") {
    return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
  }
  if (path !== "/ws") return new Response("not found\n", { status: 404 });
  if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
    return new Response("this is a WebSocket endpoint\n", {
      status: 426,
      headers: { upgrade: "websocket" },
    });
  }

  const { socket, response } = upgradeWebSocket(req, { idleTimeout: 30, maxMessageBytes: 4096 });
  const nick = info.context.value(NICK)!;
  socket.onopen = () => {
    room.add(socket);
    socket.send(`welcome, ${nick}; ${room.size - 1} other(s) here`);
    broadcast(`* ${nick} joined`);
  };
  socket.onmessage = (e) => {
    if (typeof e.data === "string") broadcast(`${nick}: ${e.data}`);
  };
  socket.onclose = () => {
    room.delete(socket);
    // The request's context ended with the socket; its cause says how.
    const why = cause(info.context);
    const how = why instanceof WebSocketClosedError
      ? `${why.code}${why.wasClean ? "" : ", unclean"}`
      : "";
    broadcast(`* ${nick} left (${how})`);
  };
  return response;
});

Deno.addSignalListener("SIGINT", async () => {
  console.log("shutting down: close 1001 to everyone, 5 s for the handshakes");
  using scope = withTimeout(background(), 5_000);
  await server.shutdown(scope.ctx);
  Deno.exit(0);
});
