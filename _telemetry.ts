// Copyright 2026 the connctx authors. MIT license.
// Owns: OpenTelemetry for requests — the server span, its attributes and
// status, the four HTTP server metrics, trace context in the request context
// (spanOf, setRoute). The async isolation every handler runs in is in
// `_exchange/isolate.ts`. Longer than ~500 lines because a third of it is the
// structural typing of the OpenTelemetry API we read from the runtime (we
// import no OpenTelemetry package) and its JSDoc examples.

/**
 * OpenTelemetry for connctx: the server span and HTTP server metrics that
 * `Deno.serve` produces, for requests served by connctx's own engine.
 *
 * Nothing here imports an OpenTelemetry package. Deno, when its telemetry is
 * on (`OTEL_DENO=true`), registers its tracer provider, context manager,
 * meter provider and propagators in the OpenTelemetry API's global registry
 * (`globalThis[Symbol.for("opentelemetry.js.api.1")]`) before any user code
 * runs; `npm:@opentelemetry/api` is a facade over that same registry. This
 * module talks to the registry directly, so:
 *
 * - with telemetry off, {@linkcode telemetryFor} returns `null` after one
 *   property lookup and a server pays nothing per request;
 * - with it on, spans and metrics go through the runtime's own providers and
 *   exporter, and user code using `npm:@opentelemetry/api` sees the same
 *   active span as {@linkcode spanOf} (and `fetch` in a handler becomes its
 *   child, with `traceparent` injected).
 *
 * @example The span of a request, from its context
 * ```ts
 * import { spanOf } from "./_telemetry.ts";
 * import { background } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * // Without telemetry (or outside a request) there is no span.
 * assert.equal(spanOf(background()), undefined);
 * ```
 *
 * @module
 */

import { type Context, ContextKey } from "./_context.ts";

// --- the OpenTelemetry API's global registry, structurally ----------------

/**
 * A span attribute value, as the OpenTelemetry API defines it.
 *
 * @example
 * ```ts
 * import type { SpanAttributeValue } from "./_telemetry.ts";
 *
 * const values: SpanAttributeValue[] = ["GET", 200, true, ["a", "b"]];
 * ```
 */
export type SpanAttributeValue =
  | string
  | number
  | boolean
  | Array<null | undefined | string>
  | Array<null | undefined | number>
  | Array<null | undefined | boolean>;

/**
 * Span attributes: keys to {@linkcode SpanAttributeValue}s.
 *
 * @example
 * ```ts
 * import type { SpanAttributes } from "./_telemetry.ts";
 *
 * const attributes: SpanAttributes = { "app.user": "ada", "app.items": 3 };
 * ```
 */
export type SpanAttributes = Record<string, SpanAttributeValue | undefined>;

/**
 * A time, as the OpenTelemetry API takes it: epoch ms, `[s, ns]` or a Date.
 *
 * @example
 * ```ts
 * import type { SpanTime } from "./_telemetry.ts";
 *
 * const times: SpanTime[] = [Date.now(), [1_700_000_000, 5], new Date()];
 * ```
 */
export type SpanTime = number | [number, number] | Date;

/**
 * The span a request's context carries: the subset of `@opentelemetry/api`'s
 * `Span` interface that a handler needs. The object is the runtime's own span,
 * so code that has `npm:@opentelemetry/api` may treat it as that package's
 * `Span` (`spanOf(ctx) as unknown as api.Span`).
 *
 * @example Add an event and an attribute to the request's span
 * ```ts
 * import { spanOf, type TraceSpan } from "./_telemetry.ts";
 * import type { ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (_req, info) => {
 *   const span: TraceSpan | undefined = spanOf(info.context);
 *   span?.addEvent("cache.miss", { "cache.key": "users" });
 *   span?.setAttribute("app.tenant", "acme");
 *   return new Response("ok");
 * };
 * ```
 */
export interface TraceSpan {
  /** Trace id, span id, flags and trace state of this span. */
  spanContext(): {
    traceId: string;
    spanId: string;
    traceFlags: number;
    isRemote?: boolean;
    traceState?: { serialize(): string };
  };
  /** Sets one attribute. */
  setAttribute(key: string, value: SpanAttributeValue): this;
  /** Sets several attributes. */
  setAttributes(attributes: SpanAttributes): this;
  /** Adds an event (a timestamped annotation) to the span. */
  addEvent(name: string, attributesOrTime?: SpanAttributes | SpanTime, time?: SpanTime): this;
  /** Sets the status: `code` 0 unset, 1 ok, 2 error. */
  setStatus(status: { code: 0 | 1 | 2; message?: string }): this;
  /** Renames the span. */
  updateName(name: string): this;
  /** Records an exception as an `exception` event. */
  recordException(exception: unknown, time?: SpanTime): void;
  /** Whether the span is being recorded (sampled and tracing on). */
  isRecording(): boolean;
  /** Ends the span; the server does this itself for request spans. */
  end(endTime?: SpanTime): void;
}

interface OtelContext {
  getValue(key: symbol): unknown;
  setValue(key: symbol, value: unknown): OtelContext;
}

interface Tracer {
  startSpan(
    name: string,
    options?: { kind?: number; attributes?: SpanAttributes },
    context?: OtelContext,
  ): TraceSpan;
}

interface Histogram {
  record(value: number, attributes?: SpanAttributes): void;
}
interface Counter {
  add(value: number, attributes?: SpanAttributes): void;
}

interface Meter {
  createHistogram(
    name: string,
    options?: {
      description?: string;
      unit?: string;
      advice?: { explicitBucketBoundaries?: number[] };
    },
  ): Histogram;
  createUpDownCounter(name: string, options?: { description?: string; unit?: string }): Counter;
}

interface Registry {
  version?: string;
  trace?: { getTracer(name: string, version?: string): Tracer };
  context?: {
    active(): OtelContext;
    with<T>(context: OtelContext, fn: () => T): T;
  };
  metrics?: { getMeter(name: string, version?: string): Meter };
  propagation?: {
    extract(
      context: OtelContext,
      carrier: Headers,
      getter: {
        get(carrier: Headers, key: string): string | undefined;
        keys(carrier: Headers): string[];
      },
    ): OtelContext;
  };
}

const REGISTRY = Symbol.for("opentelemetry.js.api.1");
/** The key under which an OpenTelemetry Context holds the active span (the
 * same symbol in Deno's runtime and in `@opentelemetry/api`). */
const OTEL_SPAN = Symbol.for("OpenTelemetry Context Key SPAN");

/** An empty context for a registry that has a tracer but no context manager. */
class RootContext implements OtelContext {
  #values: Map<symbol, unknown>;
  constructor(values = new Map<symbol, unknown>()) {
    this.#values = values;
  }
  getValue(key: symbol): unknown {
    return this.#values.get(key);
  }
  setValue(key: symbol, value: unknown): OtelContext {
    return new RootContext(new Map(this.#values).set(key, value));
  }
}

const HEADERS_GETTER = {
  get: (carrier: Headers, key: string) => carrier.get(key) ?? undefined,
  keys: (carrier: Headers) => [...carrier.keys()],
};

// --- what the engine calls -------------------------------------------------

/**
 * What {@linkcode RequestTelemetry.start} needs of a handler's `info`: the
 * peer's address (for `client.address`). A `ServeHandlerInfo` is one.
 *
 * @example
 * ```ts
 * import type { RequestInfo } from "./_telemetry.ts";
 *
 * const info: RequestInfo = {
 *   remoteAddr: { transport: "tcp", hostname: "192.0.2.1", port: 50000 },
 * };
 * ```
 */
export interface RequestInfo {
  /** The peer's address (the one a PROXY header gave, when on). */
  readonly remoteAddr: Deno.Addr;
}

/**
 * Telemetry for one request: its server span (when tracing is on) and its
 * metrics (when metrics are on).
 *
 * @example How the engine drives it
 * ```ts
 * import { type SpanHandle, telemetryFor } from "./_telemetry.ts";
 *
 * const tel = telemetryFor(undefined); // null unless OTEL_DENO=true
 * const req = new Request("http://localhost/");
 * const info = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 5000 } } as const;
 * const h: SpanHandle | undefined = tel?.start(req, info, "1.1");
 * const res = h ? await h.run(() => new Response("ok")) : new Response("ok");
 * h?.end(res.status, undefined, 0, 2);
 * ```
 */
export interface SpanHandle {
  /** The server span, or `undefined` when only metrics are on. */
  readonly span: TraceSpan | undefined;
  /** {@linkcode SpanContextKey} when there is a span, else `null`: the engine
   * derives the request's context with `withValue(ctx, key, value)`. */
  readonly key: ContextKey<TraceSpan> | null;
  /** The span again (the value to store under `key`). */
  readonly value: TraceSpan | undefined;
  /** Runs `fn` with the span active in the runtime's context manager, so
   * `fetch` and OpenTelemetry-instrumented code in it make child spans. */
  run<T>(fn: () => T): T;
  /**
   * Ends the span and records the metrics, once (later calls do nothing).
   *
   * @param status The status sent; `0` when no response was sent.
   * @param error Why the exchange failed, if it did (handler exception,
   *   client gone mid-response); `undefined` otherwise.
   * @param bodyBytes Request body bytes read.
   * @param sentBytes Response body bytes written (not counting framing).
   */
  end(status: number, error?: unknown, bodyBytes?: number, sentBytes?: number): void;
  /** Sets `http.route` (a low-cardinality template like `/users/:id`) on the
   * span and on the request's metrics. */
  setRoute(route: string): void;
}

/**
 * A server's telemetry, made once at server start by {@linkcode telemetryFor}.
 *
 * @example
 * ```ts
 * import { type RequestTelemetry, telemetryFor } from "./_telemetry.ts";
 *
 * const tel: RequestTelemetry | null = telemetryFor(false);
 * ```
 */
export interface RequestTelemetry {
  /** Whether server spans are made (tracing on). */
  readonly tracing: boolean;
  /** Whether HTTP server metrics are recorded (metrics on). */
  readonly metrics: boolean;
  /**
   * Starts a request's telemetry once its head is parsed, before the handler.
   *
   * @param req The request the handler gets (its `url`, `method`, `headers`).
   * @param info The handler's `info` (its `remoteAddr`).
   * @param protocol The HTTP version: `"1.0"`, `"1.1"` or `"2"`.
   */
  start(req: Request, info: RequestInfo, protocol: string): SpanHandle;
}

/**
 * The key under which a request's {@linkcode Context} carries its server span
 * (Go's `trace.SpanFromContext`); see {@linkcode spanOf}.
 *
 * @example
 * ```ts
 * import { SpanContextKey } from "./_telemetry.ts";
 * import { background } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(background().value(SpanContextKey), undefined);
 * ```
 */
export const SpanContextKey: ContextKey<TraceSpan> = new ContextKey<TraceSpan>("connctx.span");

/**
 * The server span of the request whose context is `ctx` (or of any context
 * derived from it), when tracing is on; otherwise `undefined`. It is also the
 * active span while the handler runs, so `trace.getActiveSpan()` from
 * `npm:@opentelemetry/api` returns the same span.
 *
 * @param ctx A request's context (`info.context`) or one derived from it.
 * @returns The span, or `undefined` when telemetry is off.
 *
 * @example Annotate the request's span
 * ```ts
 * import { spanOf } from "./_telemetry.ts";
 * import type { ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = async (req, info) => {
 *   const span = spanOf(info.context);
 *   span?.addEvent("parsed body");
 *   const body = await req.text();
 *   span?.setAttribute("app.body_length", body.length);
 *   return new Response("ok");
 * };
 * ```
 */
export function spanOf(ctx: Context): TraceSpan | undefined {
  return ctx.value(SpanContextKey);
}

const handles = new WeakMap<TraceSpan, SpanHandle>();

/**
 * Sets `http.route` for the request whose context is `ctx`: on its span and
 * on its `http.server.*` metrics (like `span.setAttribute("http.route", …)`
 * under `Deno.serve`). Use a template (`/users/:id`), never the raw path.
 * Does nothing when tracing is off.
 *
 * @param ctx The request's context (`info.context`) or one derived from it.
 * @param route The route template that matched.
 *
 * @example In a router
 * ```ts
 * import { setRoute } from "./_telemetry.ts";
 * import type { ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (req, info) => {
 *   const m = new URLPattern({ pathname: "/users/:id" }).exec(req.url);
 *   if (!m) return new Response("not found", { status: 404 });
 *   setRoute(info.context, "/users/:id");
 *   return new Response(`user ${m.pathname.groups.id}`);
 * };
 * ```
 */
export function setRoute(ctx: Context, route: string): void {
  const span = ctx.value(SpanContextKey);
  if (span !== undefined) handles.get(span)?.setRoute(route);
}

const KNOWN_METHODS = new Set([
  "GET",
  "HEAD",
  "POST",
  "PUT",
  "DELETE",
  "CONNECT",
  "OPTIONS",
  "TRACE",
  "PATCH",
  "QUERY",
]);

const DURATION_BUCKETS = [
  0.005,
  0.01,
  0.025,
  0.05,
  0.075,
  0.1,
  0.25,
  0.5,
  0.75,
  1,
  2.5,
  5,
  7.5,
  10,
];
const SIZE_BUCKETS = [0, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9];

interface Instruments {
  duration: Histogram;
  active: Counter;
  requestSize: Histogram;
  responseSize: Histogram;
}

/** Per-registry state, shared by every server in the process. */
interface State {
  tracer: Tracer | undefined;
  cm: Registry["context"];
  propagation: Registry["propagation"];
  instruments: Instruments | undefined;
}

const states = new WeakMap<Registry, State>();

function stateFor(reg: Registry): State {
  let st = states.get(reg);
  if (st !== undefined) return st;
  // Deno's own providers: use the scope of its built-in instrumentation
  // ("deno", runtime version), so connctx's spans and metrics are the ones
  // Deno.serve would have made. Another SDK: say who made them.
  const deno = typeof Deno !== "undefined" && reg.trace !== undefined &&
    reg.trace === (Deno.telemetry?.tracerProvider as unknown);
  const denoMeter = typeof Deno !== "undefined" && reg.metrics !== undefined &&
    reg.metrics === (Deno.telemetry?.meterProvider as unknown);
  const [tName, tVersion] = deno ? ["deno", Deno.version.deno] : ["connctx", undefined];
  const [mName, mVersion] = denoMeter ? ["deno", Deno.version.deno] : ["connctx", undefined];
  let instruments: Instruments | undefined;
  if (reg.metrics !== undefined) {
    const meter = reg.metrics.getMeter(mName, mVersion);
    instruments = {
      duration: meter.createHistogram("http.server.request.duration", {
        description: "Duration of HTTP server requests.",
        unit: "s",
        advice: { explicitBucketBoundaries: DURATION_BUCKETS },
      }),
      active: meter.createUpDownCounter("http.server.active_requests", {
        description: "Number of active HTTP server requests.",
        unit: "{request}",
      }),
      requestSize: meter.createHistogram("http.server.request.body.size", {
        description: "Size of HTTP server request bodies.",
        unit: "By",
        advice: { explicitBucketBoundaries: SIZE_BUCKETS },
      }),
      responseSize: meter.createHistogram("http.server.response.body.size", {
        description: "Size of HTTP server response bodies.",
        unit: "By",
        advice: { explicitBucketBoundaries: SIZE_BUCKETS },
      }),
    };
  }
  st = {
    tracer: reg.trace?.getTracer(tName, tVersion),
    cm: reg.context,
    propagation: reg.propagation,
    instruments,
  };
  states.set(reg, st);
  return st;
}

/** The type of error for `error.type`: its name, or `_OTHER` (semconv). */
function errorType(error: unknown): string {
  if (error instanceof Error && error.name !== "" && error.name !== "Error") return error.name;
  return "_OTHER";
}

/** The pieces of an absolute request URL that the attributes need. */
interface UrlParts {
  scheme: string;
  host: string;
  port: number | undefined;
  path: string;
  query: string;
}

/** Splits `scheme://authority/path?query` without a URL parser. */
function splitUrl(url: string): UrlParts {
  const colon = url.indexOf(":");
  const scheme = url.slice(0, colon);
  const a = colon + 3;
  let p = a;
  while (p < url.length && url[p] !== "/" && url[p] !== "?") p++;
  const authority = url.slice(a, p);
  const q = url.indexOf("?", p);
  let host = authority, port: number | undefined;
  const close = authority.lastIndexOf("]");
  const pc = authority.lastIndexOf(":");
  if (pc > close) {
    host = authority.slice(0, pc);
    port = Number(authority.slice(pc + 1));
  } else port = scheme === "https" ? 443 : scheme === "http" ? 80 : undefined;
  if (host.startsWith("[")) host = host.slice(1, -1);
  return {
    scheme,
    host,
    port,
    path: q < 0 ? (p < url.length ? url.slice(p) : "/") : url.slice(p, q) || "/",
    query: q < 0 ? "" : url.slice(q + 1),
  };
}

class Handle implements SpanHandle {
  readonly span: TraceSpan | undefined;
  readonly key: ContextKey<TraceSpan> | null;
  #st: State;
  #ctx: OtelContext | undefined;
  #counterAttrs: SpanAttributes;
  #method: string;
  #scheme: string;
  #protocol: string;
  #t0: number;
  #route: string | undefined = undefined;
  #ended = false;

  constructor(
    st: State,
    span: TraceSpan | undefined,
    ctx: OtelContext | undefined,
    method: string,
    scheme: string,
    protocol: string,
  ) {
    this.#st = st;
    this.span = span;
    this.key = span === undefined ? null : SpanContextKey;
    this.#ctx = ctx;
    this.#method = method;
    this.#scheme = scheme;
    this.#protocol = protocol;
    this.#t0 = performance.now();
    this.#counterAttrs = { "http.request.method": method, "url.scheme": scheme };
    if (span !== undefined) handles.set(span, this);
    st.instruments?.active.add(1, this.#counterAttrs);
  }

  get value(): TraceSpan | undefined {
    return this.span;
  }

  run<T>(fn: () => T): T {
    const ctx = this.#ctx, cm = this.#st.cm;
    return ctx === undefined || cm === undefined ? fn() : cm.with(ctx, fn);
  }

  setRoute(route: string): void {
    this.#route = route;
    this.span?.setAttribute("http.route", route);
  }

  end(status: number, error?: unknown, bodyBytes?: number, sentBytes?: number): void {
    if (this.#ended) return;
    this.#ended = true;
    // As Deno.serve: a 5xx is an error of the server, typed by its status;
    // otherwise an exchange that failed is typed by its error.
    const type = status >= 500
      ? String(status)
      : error !== undefined || status === 0
      ? errorType(error)
      : undefined;
    const span = this.span;
    if (span !== undefined) {
      // As Deno.serve: the status as a string.
      if (status !== 0) span.setAttribute("http.response.status_code", String(status));
      if (type !== undefined) {
        span.setAttribute("error.type", type);
        span.setStatus({
          code: 2,
          message: error instanceof Error
            ? error.message
            : error === undefined
            ? ""
            : String(error),
        });
      }
      if (error !== undefined) span.recordException(error as Error);
      span.end();
    }
    const ins = this.#st.instruments;
    if (ins !== undefined) {
      const seconds = (performance.now() - this.#t0) / 1000;
      const attrs: SpanAttributes = {
        "http.request.method": this.#method,
        "url.scheme": this.#scheme,
        "network.protocol.version": this.#protocol,
      };
      if (status !== 0) attrs["http.response.status_code"] = status;
      if (type !== undefined) attrs["error.type"] = type;
      if (this.#route !== undefined) attrs["http.route"] = this.#route;
      ins.duration.record(seconds, attrs);
      ins.requestSize.record(bodyBytes ?? 0, attrs);
      ins.responseSize.record(sentBytes ?? 0, attrs);
      ins.active.add(-1, this.#counterAttrs);
    }
  }
}

class Telemetry implements RequestTelemetry {
  readonly tracing: boolean;
  readonly metrics: boolean;
  #st: State;
  /** The OpenTelemetry context active when the server started: every request's
   * parent, whatever the engine's own async context has become since. */
  #base: OtelContext;

  constructor(st: State) {
    this.#st = st;
    this.tracing = st.tracer !== undefined;
    this.metrics = st.instruments !== undefined;
    this.#base = st.cm?.active() ?? new RootContext();
  }

  start(req: Request, info: RequestInfo, protocol: string): SpanHandle {
    const st = this.#st;
    const raw = req.method;
    const known = KNOWN_METHODS.has(raw);
    const method = known ? raw : "_OTHER";
    const url = req.url;
    const u = splitUrl(url);
    if (st.tracer === undefined) {
      return new Handle(st, undefined, undefined, method, u.scheme, protocol);
    }
    const headers = req.headers;
    let parent = this.#base;
    if (st.propagation !== undefined) {
      parent = st.propagation.extract(parent, headers, HEADERS_GETTER);
    }
    const peer = info.remoteAddr;
    const attributes: SpanAttributes = {
      "http.request.method": method,
      "url.full": url,
      "url.scheme": u.scheme,
      "url.path": u.path,
      "url.query": u.query,
      "server.address": u.host,
      "server.port": u.port,
      "network.protocol.version": protocol,
      "client.address": peer.transport === "tcp" || peer.transport === "udp"
        ? peer.hostname
        : undefined,
      "user_agent.original": headers.get("user-agent") ?? undefined,
    };
    if (!known) attributes["http.request.method_original"] = raw;
    // Kind SERVER; named after the method, as Deno.serve names its spans.
    const span = st.tracer.startSpan(known ? raw : "HTTP", { kind: 1, attributes }, parent);
    return new Handle(st, span, parent.setValue(OTEL_SPAN, span), method, u.scheme, protocol);
  }
}

/**
 * The telemetry a server should use, decided once at server start.
 *
 * - `false`: none.
 * - `undefined` (the default) or `true`: on when an OpenTelemetry provider is
 *   registered — Deno's own when run with `OTEL_DENO=true` (like `Deno.serve`,
 *   nothing to configure), or one that code registered through
 *   `npm:@opentelemetry/api` before the server started. Otherwise `null`.
 *
 * @param option The server's `telemetry` option.
 * @returns The server's telemetry, or `null` when off (then the engine calls
 *   nothing per request).
 *
 * @example
 * ```ts
 * import { telemetryFor } from "./_telemetry.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(telemetryFor(false), null);
 * // Without OTEL_DENO=true no provider is registered, so this is null too.
 * const registered = Symbol.for("opentelemetry.js.api.1") in globalThis;
 * if (!registered) assert.equal(telemetryFor(undefined), null);
 * ```
 */
export function telemetryFor(option: boolean | undefined): RequestTelemetry | null {
  if (option === false) return null;
  const reg = (globalThis as Record<symbol, unknown>)[REGISTRY] as Registry | undefined;
  if (reg === undefined || (reg.trace === undefined && reg.metrics === undefined)) return null;
  return new Telemetry(stateFor(reg));
}
