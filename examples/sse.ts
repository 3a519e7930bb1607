// Copyright 2026 the connctx authors. MIT license.
// Server-sent events that stop when the client leaves: the stream loops until
// the request's context ends, and connctx ends it the moment the client
// disconnects, or when the server shuts down. No timer or loop is left behind.
//
//   deno run --allow-net examples/sse.ts
//
//   curl -N localhost:8000/events     # one event a second; Ctrl-C, and the
//                                     # server logs that the stream stopped
//   open http://localhost:8000/       # the same, in a browser (EventSource)

import { background, cause, type Context, serve, withCancelCause } from "../mod.ts";

const encoder = new TextEncoder();

/** Waits `ms` or until the context ends, whichever comes first. */
function tick(ctx: Context, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    ctx.signal.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(t);
      ctx.signal.removeEventListener("abort", done);
      resolve();
    }
  });
}

const PAGE = `<!doctype html>
<title>connctx SSE</title>
<pre id="log"></pre>
<script>
  const log = document.getElementById("log");
  new EventSource("/events").onmessage = (e) => (log.textContent += e.data + "\\n");
</script>
`;

// Every request context derives from the server's base context. Canceling the
// base at shutdown ends every open stream, so a graceful shutdown can finish.
const life = withCancelCause(background());

const server = serve({ port: 8000, baseContext: () => life.ctx }, (req, info) => {
  const path = new URL(req.url).pathname;
  if (path === "/") return new Response(PAGE, { headers: { "content-type": "text/html" } });
  if (path !== "/events") return new Response("not found\n", { status: 404 });

  const ctx = info.context;
  const id = info.conn.id;
  let n = 0;
  console.log(`conn ${id}: subscribed`);
  const body = new ReadableStream<Uint8Array>({
    async start(controller) {
      // Loop until the client leaves (or the server shuts down).
      while (ctx.err === undefined) {
        const event = `id: ${n}\nevent: tick\ndata: ${new Date().toISOString()} #${n}\n\n`;
        controller.enqueue(encoder.encode(event));
        n++;
        await tick(ctx, 1_000);
      }
      console.log(`conn ${id}: stopped after ${n} events (${cause(ctx)})`);
      controller.close();
    },
  });
  return new Response(body, {
    headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
  });
});

server.registerOnShutdown(() => life.cancel(new Error("server shutting down")));

// Ctrl-C: graceful shutdown; open streams end (their contexts are canceled).
Deno.addSignalListener("SIGINT", () => {
  console.log("shutting down");
  server.shutdown().then(() => Deno.exit(0));
});
