// Copyright 2026 the connctx authors. MIT license.
// A traced app. With Deno's telemetry on, every request gets a server span
// (kind SERVER, named after the method, continuing an incoming
// `traceparent`) and the http.server.* metrics, exported by the runtime over
// OTLP — the same ones `Deno.serve` makes. The span is active while the
// handler runs, so the `fetch` below becomes its child and carries a
// `traceparent`, and the /quote request it makes continues the same trace.
//
// See spans on the console (no collector needed):
//
//   OTEL_DENO=true OTEL_EXPORTER_OTLP_PROTOCOL=console deno run -A examples/traced.ts
//   curl localhost:8000/
//
// Or in Jaeger (its OTLP/HTTP receiver listens on 4318, Deno's default
// endpoint; the UI is http://localhost:16686, service "traced"):
//
//   docker run --rm -p 16686:16686 -p 4318:4318 jaegertracing/jaeger:latest
//   OTEL_DENO=true OTEL_SERVICE_NAME=traced deno run -A examples/traced.ts
//   curl -H 'traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' localhost:8000/
//
// Any OTLP collector works: set OTEL_EXPORTER_OTLP_ENDPOINT (default
// http://localhost:4318). Metrics are exported every OTEL_METRIC_EXPORT_INTERVAL
// ms (default 60 000) and when the process exits.
//
// Without OTEL_DENO=true the same app runs with no telemetry and no cost:
// spanOf() returns undefined.

import { serve, setRoute, spanOf } from "../mod.ts";

const port = Number(Deno.env.get("PORT") ?? 8000);

const QUOTES = [
  "Simplicity is prerequisite for reliability.",
  "Make it work, make it right, make it fast.",
  "Premature optimization is the root of all evil.",
];

serve({ port }, async (req, info) => {
  const path = new URL(req.url).pathname;

  if (path === "/quote") {
    // Route templates (never raw paths) label the span and the metrics.
    setRoute(info.context, "/quote");
    const i = Math.floor(Math.random() * QUOTES.length);
    spanOf(info.context)?.addEvent("quote.picked", { "quote.index": i });
    return Response.json({ quote: QUOTES[i] });
  }

  if (path === "/") {
    setRoute(info.context, "/");
    const span = spanOf(info.context);
    span?.addEvent("upstream.start");
    // A child span of this request's; the request's context cancels it if
    // the client goes away.
    const res = await fetch(`http://127.0.0.1:${port}/quote`, { signal: info.context.signal });
    const { quote } = await res.json() as { quote: string };
    span?.addEvent("upstream.done", { "http.response.status_code": res.status });
    span?.setAttribute("app.quote.length", quote.length);
    const trace = span?.spanContext().traceId ?? "none (run with OTEL_DENO=true)";
    return new Response(`${quote}\ntrace ${trace}\n`);
  }

  return new Response("not found\n", { status: 404 });
});
