// Copyright 2026 the connctx authors. MIT license.
// Observability: with the runtime's telemetry on (OTEL_DENO=true), a request
// served by connctx gets the server span and HTTP server metrics Deno.serve
// gets, exported by the runtime over OTLP; the span is active in the handler
// (fetch becomes its child and carries traceparent); an incoming traceparent
// continues the caller's trace; and each handler starts in a fresh async
// context. Every assertion runs against Deno.serve too, to show parity; where
// Deno.serve differs, the test asserts what it does and says so.
//
// Each server runs in a subprocess (`_test_otlp.ts` is the app) whose
// runtime exports to an OTLP receiver in this process; the downstream that
// the app fetches also runs here, so it sees exactly the headers fetch sent.
// Waits are event-driven (a receiver waiter, the child's exit), each bounded.

import assert from "node:assert/strict";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  type AppReply,
  type OtlpMetric,
  type OtlpReceiver,
  type OtlpSpan,
  startOtlpReceiver,
} from "./_test_otlp.ts";
import { get, RawClient, within } from "./_test_http.ts";
import { spanOf, telemetryFor } from "./_telemetry.ts";
import { freshAsyncContext } from "./_exchange/isolate.ts";
import { background } from "./context.ts";

const SERVER = 2, CLIENT = 3; // OTLP span kinds
const TRACE_ID = "0af7651916cd43dd8448eb211c80319c";
const PARENT_ID = "b7ad6b7169203331";
const TRACEPARENT = `00-${TRACE_ID}-${PARENT_ID}-01`;

/** Whether this Deno can run with telemetry on: a subprocess with
 * OTEL_DENO=true finds Deno's providers in the OpenTelemetry registry. */
async function telemetryWorks(): Promise<string | null> {
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const r = globalThis[Symbol.for("opentelemetry.js.api.1")];
         console.log(JSON.stringify({ trace: !!r?.trace, metrics: !!r?.metrics }));`,
      ],
      env: { OTEL_DENO: "true", OTEL_EXPORTER_OTLP_ENDPOINT: "http://127.0.0.1:9" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const r = JSON.parse(new TextDecoder().decode(out.stdout));
    return r.trace && r.metrics
      ? null
      : `OTEL_DENO=true registers no providers: ${JSON.stringify(r)}`;
  } catch (e) {
    return `cannot run deno with OTEL_DENO=true: ${e}`;
  }
}

const unavailable = await telemetryWorks();
if (unavailable) console.warn(`telemetry_test: skipping the OTLP tests: ${unavailable}`);

/** What one run of the app produced. */
interface Run {
  port: number;
  /** Reply to GET /fetch?x=1 with TRACEPARENT. */
  traced: AppReply;
  /** Replies to two GET /als on one keep-alive connection, no traceparent. */
  first: AppReply;
  second: AppReply;
  /** Status of GET /error (the handler throws). */
  errorStatus: number;
  /** Headers the downstream received from the app's fetch. */
  downstream: Headers;
  rx: OtlpReceiver;
}

/** Runs the app (`connctx` or `deno`) with telemetry on, sends the requests,
 * stops it, and waits until its spans and metrics have arrived. */
async function runApp(kind: "connctx" | "deno", rx: OtlpReceiver): Promise<Run> {
  const seenDownstream = Promise.withResolvers<Headers>();
  await using downstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => {
      seenDownstream.resolve(req.headers);
      return new Response("down");
    },
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("./_test_otlp.ts", import.meta.url).pathname,
      kind,
      `http://127.0.0.1:${downstream.addr.port}`,
    ],
    env: rx.env(),
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = child.stdin.getWriter();
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let out = "";
    while (!out.includes("\n")) {
      const { value, done } = await within(lines.read(), `${kind} app to print its port`, 30_000);
      if (done) throw new Error(`${kind} app exited before listening: ${out}`);
      out += value;
    }
    lines.releaseLock();
    child.stdout.cancel().catch(() => {});
    const { port } = JSON.parse(out.slice(0, out.indexOf("\n"))) as { port: number };
    const base = `http://127.0.0.1:${port}`;

    const res = await fetch(`${base}/fetch?x=1`, {
      headers: { traceparent: TRACEPARENT, tracestate: "congo=t61rcWkgMzE" },
    });
    assert.equal(res.status, 200);
    const traced = (await res.json()) as AppReply;
    const downstreamHeaders = await within(seenDownstream.promise, "downstream request");

    const c = await RawClient.connect(port);
    let first: AppReply, second: AppReply;
    try {
      await c.send(get("/als"));
      const r1 = await c.read();
      await c.send(get("/als"));
      const r2 = await c.read();
      assert.equal(r1?.status, 200);
      assert.equal(r2?.status, 200, "second request on the same connection");
      first = JSON.parse(r1!.body);
      second = JSON.parse(r2!.body);
    } finally {
      c.close();
    }

    const err = await fetch(`${base}/error`);
    await err.body?.cancel();

    await stdin.close();
    const status = await within(child.status, `${kind} app to exit`, 30_000);
    assert.equal(status.code, 0, `${kind} app exit code`);

    // The runtime flushes on exit and waits for the receiver's answers, so
    // everything has arrived by now; fetch's client span (made by the runtime
    // in both servers) is the bounded check that the export worked at all.
    await rx.waitFor(() => rx.spans.find((s) => s.kind === CLIENT), "fetch's client span");
    assert.deepEqual(rx.errors, []);
    return {
      port,
      traced,
      first,
      second,
      errorStatus: err.status,
      downstream: downstreamHeaders,
      rx,
    };
  } finally {
    await stdin.close().catch(() => {});
    try {
      child.kill();
    } catch { /* exited */ }
    await child.status;
  }
}

function serverSpans(rx: OtlpReceiver): OtlpSpan[] {
  return rx.spans.filter((s) => s.kind === SERVER && s.attributes["url.path"] !== "/down");
}

function spansAt(rx: OtlpReceiver, path: string): OtlpSpan[] {
  return serverSpans(rx).filter((s) => s.attributes["url.path"] === path);
}

/** The one server span for `path`; fails with what there is instead. */
function spanAt(rx: OtlpReceiver, path: string): OtlpSpan {
  const spans = spansAt(rx, path);
  assert.equal(
    spans.length,
    1,
    `one server span for ${path}; server spans: ${
      JSON.stringify(serverSpans(rx).map((s) => s.attributes["url.path"]))
    }`,
  );
  return spans[0];
}

/** The latest export of metric `name` that has a point matching `pick`. */
function metric(
  rx: OtlpReceiver,
  name: string,
  pick: (p: OtlpMetric["points"][number]) => boolean = () => true,
): OtlpMetric | undefined {
  return rx.metrics.findLast((m) => m.name === name && m.points.some(pick));
}

const DURATION_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];
const SIZE_BOUNDS = [0, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

for (const kind of ["deno", "connctx"] as const) {
  const who = kind === "deno" ? "Deno.serve" : "connctx serve";
  Deno.test({
    name: `telemetry: ${who} exports a server span, continues traces, meters, isolates`,
    ignore: unavailable !== null,
    async fn(t) {
      await using rx = startOtlpReceiver();
      const run = await runApp(kind, rx);

      await t.step(
        "server span: kind SERVER, named after the method, Deno.serve's attributes",
        () => {
          const s = spanAt(rx, "/fetch");
          assert.ok(
            s,
            `a server span for /fetch among ${JSON.stringify(serverSpans(rx).map((x) => x.name))}`,
          );
          assert.equal(s.kind, SERVER);
          assert.equal(s.name, "GET");
          assert.equal(s.scope.name, "deno");
          assert.equal(s.scope.version, Deno.version.deno);
          assert.equal(s.resource["service.name"], "connctx-test");
          assert.equal(s.attributes["http.request.method"], "GET");
          assert.equal(s.attributes["url.scheme"], "http");
          assert.equal(s.attributes["url.path"], "/fetch");
          assert.equal(s.attributes["url.query"], "x=1");
          assert.equal(s.attributes["url.full"], `http://127.0.0.1:${run.port}/fetch?x=1`);
          // Deno.serve records the status code as a string; connctx does too.
          assert.equal(s.attributes["http.response.status_code"], "200");
          assert.equal(s.attributes["http.route"], "/fetch");
          assert.equal(s.status.code, 0);
          assert.ok(s.endTimeUnixNano >= s.startTimeUnixNano);
          if (kind === "connctx") {
            // The recommended semconv attributes Deno.serve leaves out.
            assert.equal(s.attributes["server.address"], "127.0.0.1");
            assert.equal(s.attributes["server.port"], run.port);
            assert.equal(s.attributes["network.protocol.version"], "1.1");
            assert.equal(s.attributes["client.address"], "127.0.0.1");
          } else {
            // Deno.serve's span has none of these (2.9.6).
            for (const k of ["server.address", "server.port", "network.protocol.version"]) {
              assert.equal(s.attributes[k], undefined, k);
            }
          }
        },
      );

      await t.step("an incoming traceparent continues the caller's trace", () => {
        const s = spanAt(rx, "/fetch");
        assert.equal(s.traceId, TRACE_ID);
        assert.equal(s.parentSpanId, PARENT_ID);
        // tracestate is parsed but not kept: the runtime's tracer starts a
        // span from a remote parent's ids and flags only (Deno 2.9.6), for
        // Deno.serve and connctx alike.
        assert.equal(s.traceState, "");
        assert.equal(run.downstream.get("tracestate"), null);
      });

      await t.step("the span is active in the handler: spanOf, the OTel API, fetch", () => {
        const s = spanAt(rx, "/fetch");
        assert.equal(run.traced.active, s.spanId, "active span in the handler");
        if (kind === "connctx") assert.equal(run.traced.spanOf, s.spanId, "spanOf(info.context)");
        const client = rx.spans.find((x) => x.kind === CLIENT && x.parentSpanId === s.spanId);
        assert.ok(client, "fetch's client span is a child of the server span");
        assert.equal(client.traceId, TRACE_ID);
        assert.equal(client.attributes["url.path"], "/down");
        assert.equal(run.downstream.get("traceparent"), `00-${TRACE_ID}-${client.spanId}-01`);
      });

      await t.step("requests on one keep-alive connection start fresh traces", () => {
        const spans = spansAt(rx, "/als");
        assert.equal(spans.length, 2);
        const [a, b] = spans;
        assert.equal(a.parentSpanId, "");
        assert.equal(b.parentSpanId, "");
        assert.notEqual(a.traceId, b.traceId);
        // Each handler's active span is its own, not the previous request's.
        assert.deepEqual(
          new Set([run.first.active, run.second.active]),
          new Set([a.spanId, b.spanId]),
        );
      });

      await t.step("AsyncLocalStorage.enterWith in one request is not seen by the next", () => {
        assert.equal(run.first.seen, null);
        // Deno.serve restores the async context of its call for every
        // request, so it passes this too; connctx runs handlers in the async
        // context of serve() (freshAsyncContext).
        assert.equal(run.second.seen, null, "the second request saw the first's store");
      });

      await t.step("a handler that throws: 500, span status ERROR, error.type", () => {
        assert.equal(run.errorStatus, 500);
        const s = spanAt(rx, "/error");
        assert.equal(s.attributes["http.response.status_code"], "500");
        assert.equal(s.attributes["error.type"], "500");
        assert.equal(s.status.code, 2);
        if (kind === "connctx") {
          // connctx also records the exception (Deno.serve does not).
          assert.ok(
            s.events.some((e) =>
              e.name === "exception" && e.attributes["exception.message"] === "boom"
            ),
          );
        }
      });

      await t.step("http.server.request.duration: histogram in s, attributes, buckets", () => {
        const m = metric(rx, "http.server.request.duration");
        assert.ok(m, "http.server.request.duration exported");
        assert.equal(m.type, "histogram");
        assert.equal(m.unit, "s");
        assert.equal(m.scope.name, "deno");
        const ok = m.points.filter((p) =>
          p.attributes["http.response.status_code"] === 200 &&
          p.attributes["http.route"] === undefined
        );
        assert.equal(ok.length, 1, JSON.stringify(m.points.map((p) => p.attributes)));
        const [p] = ok;
        assert.deepEqual(
          Object.fromEntries(Object.entries(p.attributes).sort()),
          {
            "http.request.method": "GET",
            "http.response.status_code": 200,
            "network.protocol.version": "1.1",
            "url.scheme": "http",
          },
        );
        assert.equal(p.count, 2, "the two /als requests");
        assert.deepEqual(p.explicitBounds, DURATION_BOUNDS);
        // http.route set in the handler labels the request's metrics.
        assert.ok(m.points.some((q) => q.attributes["http.route"] === "/fetch" && q.count === 1));
        assert.ok(m.points.some((q) => q.attributes["http.response.status_code"] === 500));
      });

      await t.step("http.server.active_requests, request and response body sizes", () => {
        const active = metric(rx, "http.server.active_requests");
        assert.ok(active, "http.server.active_requests exported");
        assert.equal(active.type, "sum");
        assert.equal(active.unit, "{request}");
        assert.equal(active.monotonic, false);
        const a = active.points.find((p) => p.attributes["http.request.method"] === "GET")!;
        assert.equal(a.attributes["url.scheme"], "http");
        assert.equal(a.value, 0, "every request has ended");
        for (const name of ["http.server.request.body.size", "http.server.response.body.size"]) {
          const m = metric(rx, name)!;
          assert.ok(m, name);
          assert.equal(m.type, "histogram");
          assert.equal(m.unit, "By");
          assert.deepEqual(m.points[0].explicitBounds, SIZE_BOUNDS);
        }
        const sent = metric(rx, "http.server.response.body.size")!.points
          .filter((p) => p.attributes["http.response.status_code"] === 200)
          .reduce((n, p) => n + (p.sum ?? 0), 0);
        // connctx counts the bytes it sent; Deno.serve 2.9.6 records 0 for
        // these (it reads the count before the body is written).
        if (kind === "connctx") assert.ok(sent > 0, `response bytes ${sent}`);
        else assert.ok(sent >= 0);
      });
    },
  });
}

Deno.test("telemetry: off without a registered provider, and with telemetry: false", () => {
  const registered = Symbol.for("opentelemetry.js.api.1") in globalThis;
  assert.equal(telemetryFor(false), null);
  if (!registered) assert.equal(telemetryFor(undefined), null);
  assert.equal(spanOf(background()), undefined);
});

Deno.test("freshAsyncContext: enterWith and run in one call are gone in the next", async () => {
  const als = new AsyncLocalStorage<string>();
  const runFresh = freshAsyncContext();
  await runFresh.ready;
  als.enterWith("outside, after start");
  // Stores entered before the call (in the engine's own context) are not seen.
  assert.equal(runFresh(() => als.getStore()), undefined);
  // Stores entered inside do not leak to the caller or the next call...
  runFresh(() => als.enterWith("request 1"));
  assert.equal(als.getStore(), "outside, after start");
  assert.equal(runFresh(() => als.getStore()), undefined);
  // ...but do follow the call's own awaits.
  const seen = await runFresh(async () => {
    als.enterWith("request 2");
    await Promise.resolve();
    return als.getStore();
  });
  assert.equal(seen, "request 2");
  assert.equal(runFresh(() => als.getStore()), undefined);
});

Deno.test("freshAsyncContext: captures the context current when made", async () => {
  const als = new AsyncLocalStorage<string>();
  const runFresh = als.run("server start", () => freshAsyncContext());
  await runFresh.ready;
  als.enterWith("later");
  assert.equal(runFresh(() => als.getStore()), "server start");
});
