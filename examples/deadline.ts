// Copyright 2026 the connctx authors. MIT license.
// A per-request deadline that reaches downstream calls: `withTimeout(info.context,
// ms)` makes a context that ends at the deadline *or* when the client leaves,
// and its signal cancels the downstream fetch. The downstream here is this same
// server's /slow route, so you can watch the cancellation arrive there too.
//
//   deno run --allow-net examples/deadline.ts
//
//   curl -i 'localhost:8000/?work=200'     # upstream answers in time: 200
//   curl -i 'localhost:8000/?work=5000'    # deadline (1 s) passes: 504, upstream canceled
//   curl -i 'localhost:8000/?work=5000' --max-time 0.3   # leave early: upstream canceled too

import { cause, DeadlineExceededError, serve, withTimeout } from "../mod.ts";

const PORT = 8000;
const DEADLINE_MS = 1_000;

/** Waits `ms`, or until `signal` aborts (then rejects with its reason). */
function work(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });
}

serve({ port: PORT }, async (req, info) => {
  const url = new URL(req.url);

  // The downstream service: slow on purpose; stops when its caller goes away.
  if (url.pathname === "/slow") {
    const ms = Number(url.searchParams.get("ms") ?? 0);
    try {
      await work(ms, info.context.signal);
    } catch {
      console.log(`/slow: caller went away after <${ms} ms (${cause(info.context)})`);
      return new Response(null, { status: 499 });
    }
    return Response.json({ worked: ms });
  }

  // The front end: one deadline for everything this request does downstream.
  // `using` cancels the scope (and clears its timer) when the handler returns.
  using scope = withTimeout(info.context, DEADLINE_MS);
  const workMs = url.searchParams.get("work") ?? "200";
  try {
    const res = await fetch(`http://127.0.0.1:${PORT}/slow?ms=${workMs}`, {
      signal: scope.ctx.signal,
    });
    // Read the body inside the scope too: the deadline covers it.
    const body = await res.json();
    return Response.json({ upstream: body, deadlineMs: DEADLINE_MS });
  } catch (e) {
    if (scope.ctx.err instanceof DeadlineExceededError) {
      return Response.json({ error: `upstream took longer than ${DEADLINE_MS} ms` }, {
        status: 504,
      });
    }
    if (info.context.err) {
      // The client left; nobody will read this response.
      return new Response(null, { status: 499 });
    }
    return Response.json({ error: String(e) }, { status: 502 });
  }
});
