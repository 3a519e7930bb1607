// Copyright 2026 the connctx authors. MIT license.

/**
 * Test helper: an OTLP/HTTP receiver on 127.0.0.1 that decodes the protobuf
 * bodies Deno's runtime exporter sends to `/v1/traces`, `/v1/metrics` and
 * `/v1/logs` into plain objects, and lets a test wait, event-driven and with
 * a bound, until what it expects has arrived.
 *
 * The decoder is a minimal protobuf wire-format reader that knows only the
 * OTLP messages and fields below (field numbers from opentelemetry-proto
 * v1.x); unknown fields are skipped, so newer exporters still decode.
 *
 * @example Receive a subprocess's telemetry
 * ```ts ignore
 * import { startOtlpReceiver } from "./_test_otlp.ts";
 *
 * await using rx = startOtlpReceiver();
 * const child = new Deno.Command(Deno.execPath(), {
 *   args: ["run", "-A", "app.ts"],
 *   env: rx.env(),
 * }).spawn();
 * const span = await rx.waitFor(() => rx.spans.find((s) => s.kind === 2), "a server span");
 * await child.status;
 * ```
 *
 * @module
 */

/** An attribute value as decoded from an OTLP `AnyValue`. */
export type AttrValue =
  | string
  | number
  | boolean
  | bigint
  | Uint8Array
  | null
  | AttrValue[]
  | { [key: string]: AttrValue };

/** Attributes as a plain object, key → value. */
export type Attrs = Record<string, AttrValue>;

/** Instrumentation scope of a span, metric or log record. */
export interface OtlpScope {
  name: string;
  version: string;
  attributes: Attrs;
}

/** A decoded span. Ids are lower-case hex; an absent parent is `""`. */
export interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  traceState: string;
  flags: number;
  name: string;
  /** 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number;
  startTimeUnixNano: bigint;
  endTimeUnixNano: bigint;
  attributes: Attrs;
  events: { name: string; timeUnixNano: bigint; attributes: Attrs }[];
  links: { traceId: string; spanId: string; traceState: string; attributes: Attrs }[];
  /** code: 0 unset, 1 ok, 2 error. */
  status: { code: number; message: string };
  scope: OtlpScope;
  resource: Attrs;
}

/** A decoded data point: number points carry `value`, histograms the rest. */
export interface OtlpPoint {
  attributes: Attrs;
  startTimeUnixNano: bigint;
  timeUnixNano: bigint;
  value?: number;
  count?: number;
  sum?: number;
  min?: number;
  max?: number;
  bucketCounts?: number[];
  explicitBounds?: number[];
}

/** A decoded metric (one per export batch it appeared in). */
export interface OtlpMetric {
  name: string;
  description: string;
  unit: string;
  type: "gauge" | "sum" | "histogram" | "exponential_histogram" | "summary" | "unknown";
  /** 1 delta, 2 cumulative (sums and histograms). */
  temporality: number;
  monotonic: boolean;
  points: OtlpPoint[];
  scope: OtlpScope;
  resource: Attrs;
}

/** A decoded log record. */
export interface OtlpLog {
  timeUnixNano: bigint;
  severityNumber: number;
  severityText: string;
  body: AttrValue;
  attributes: Attrs;
  traceId: string;
  spanId: string;
  scope: OtlpScope;
  resource: Attrs;
}

// --- protobuf wire format -------------------------------------------------

const VARINT = 0, I64 = 1, LEN = 2, I32 = 5;

/** One field occurrence: `int` for varints, `bytes` for the others (a view
 * of the 8 or 4 bytes of a fixed-width value, or of a LEN field's payload). */
interface Field {
  no: number;
  wire: number;
  bytes: Uint8Array;
  int: bigint;
}

const EMPTY = new Uint8Array(0);
const utf8 = new TextDecoder();

function readVarint(buf: Uint8Array, pos: { at: number }): bigint {
  let result = 0n;
  let shift = 0n;
  for (let i = 0; i < 10; i++) {
    if (pos.at >= buf.length) throw new RangeError("protobuf: truncated varint");
    const b = buf[pos.at++];
    result |= BigInt(b & 0x7f) << shift;
    if ((b & 0x80) === 0) return result;
    shift += 7n;
  }
  throw new RangeError("protobuf: varint longer than 10 bytes");
}

/** Splits a message into its fields, in wire order. */
function fields(buf: Uint8Array): Field[] {
  const out: Field[] = [];
  const pos = { at: 0 };
  while (pos.at < buf.length) {
    const key = Number(readVarint(buf, pos));
    const no = key >>> 3, wire = key & 7;
    if (no === 0) throw new RangeError("protobuf: field number 0");
    switch (wire) {
      case VARINT:
        out.push({ no, wire, bytes: EMPTY, int: readVarint(buf, pos) });
        break;
      case I64:
      case I32: {
        const n = wire === I64 ? 8 : 4;
        if (pos.at + n > buf.length) throw new RangeError("protobuf: truncated fixed field");
        out.push({ no, wire, bytes: buf.subarray(pos.at, pos.at + n), int: 0n });
        pos.at += n;
        break;
      }
      case LEN: {
        const len = Number(readVarint(buf, pos));
        if (pos.at + len > buf.length) throw new RangeError("protobuf: truncated length field");
        out.push({ no, wire, bytes: buf.subarray(pos.at, pos.at + len), int: 0n });
        pos.at += len;
        break;
      }
      default:
        throw new RangeError(`protobuf: unsupported wire type ${wire}`);
    }
  }
  return out;
}

function view(b: Uint8Array): DataView {
  return new DataView(b.buffer, b.byteOffset, b.byteLength);
}
function u64(f: Field): bigint {
  return f.wire === I64 ? view(f.bytes).getBigUint64(0, true) : f.int;
}
function f64(f: Field): number {
  return view(f.bytes).getFloat64(0, true);
}
function u32(f: Field): number {
  return f.wire === I32 ? view(f.bytes).getUint32(0, true) : Number(BigInt.asUintN(32, f.int));
}
function str(f: Field): string {
  return utf8.decode(f.bytes);
}
function hex(b: Uint8Array): string {
  let s = "";
  for (const x of b) s += x.toString(16).padStart(2, "0");
  return s;
}
function num(n: bigint): number | bigint {
  return n >= BigInt(Number.MIN_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(n)
    : n;
}

/** Repeated fixed64/double: packed (LEN) or not (I64). */
function fixed64s(f: Field, asDouble: boolean): number[] {
  if (f.wire === I64) return [asDouble ? f64(f) : Number(u64(f))];
  const v = view(f.bytes), out: number[] = [];
  for (let i = 0; i + 8 <= f.bytes.length; i += 8) {
    out.push(asDouble ? v.getFloat64(i, true) : Number(v.getBigUint64(i, true)));
  }
  return out;
}

// --- OTLP messages --------------------------------------------------------

function anyValue(buf: Uint8Array): AttrValue {
  let value: AttrValue = null;
  for (const f of fields(buf)) {
    switch (f.no) {
      case 1:
        value = str(f);
        break;
      case 2:
        value = f.int !== 0n;
        break;
      case 3:
        value = num(BigInt.asIntN(64, f.int));
        break;
      case 4:
        value = f64(f);
        break;
      case 5:
        value = fields(f.bytes).filter((x) => x.no === 1).map((x) => anyValue(x.bytes));
        break;
      case 6:
        value = keyValues(fields(f.bytes).filter((x) => x.no === 1));
        break;
      case 7:
        value = f.bytes.slice();
        break;
    }
  }
  return value;
}

function keyValues(list: Field[]): Attrs {
  const out: Attrs = {};
  for (const kv of list) {
    let key = "", value: AttrValue = null;
    for (const f of fields(kv.bytes)) {
      if (f.no === 1) key = str(f);
      else if (f.no === 2) value = anyValue(f.bytes);
    }
    out[key] = value;
  }
  return out;
}

function attrsOf(buf: Uint8Array, no: number): Attrs {
  return keyValues(fields(buf).filter((f) => f.no === no));
}

function scopeOf(buf: Uint8Array | undefined): OtlpScope {
  const scope: OtlpScope = { name: "", version: "", attributes: {} };
  if (!buf) return scope;
  const attrs: Field[] = [];
  for (const f of fields(buf)) {
    if (f.no === 1) scope.name = str(f);
    else if (f.no === 2) scope.version = str(f);
    else if (f.no === 3) attrs.push(f);
  }
  scope.attributes = keyValues(attrs);
  return scope;
}

/** Walks Resource{X} → Scope{X} → items: the three OTLP exports share this shape. */
function walk<T>(
  body: Uint8Array,
  item: (buf: Uint8Array, scope: OtlpScope, resource: Attrs) => T,
): T[] {
  const out: T[] = [];
  for (const r of fields(body)) {
    if (r.no !== 1) continue;
    const rf = fields(r.bytes);
    const resBuf = rf.find((f) => f.no === 1)?.bytes;
    const resource = resBuf ? attrsOf(resBuf, 1) : {};
    for (const s of rf) {
      if (s.no !== 2) continue;
      const sf = fields(s.bytes);
      const scope = scopeOf(sf.find((f) => f.no === 1)?.bytes);
      for (const i of sf) if (i.no === 2) out.push(item(i.bytes, scope, resource));
    }
  }
  return out;
}

/**
 * Decodes an `ExportTraceServiceRequest`.
 *
 * @example
 * ```ts ignore
 * const spans = decodeTraces(new Uint8Array(await req.arrayBuffer()));
 * ```
 */
export function decodeTraces(body: Uint8Array): OtlpSpan[] {
  return walk(body, (buf, scope, resource) => {
    const span: OtlpSpan = {
      traceId: "",
      spanId: "",
      parentSpanId: "",
      traceState: "",
      flags: 0,
      name: "",
      kind: 0,
      startTimeUnixNano: 0n,
      endTimeUnixNano: 0n,
      attributes: {},
      events: [],
      links: [],
      status: { code: 0, message: "" },
      scope,
      resource,
    };
    const attrs: Field[] = [];
    for (const f of fields(buf)) {
      switch (f.no) {
        case 1:
          span.traceId = hex(f.bytes);
          break;
        case 2:
          span.spanId = hex(f.bytes);
          break;
        case 3:
          span.traceState = str(f);
          break;
        case 4:
          span.parentSpanId = hex(f.bytes);
          break;
        case 5:
          span.name = str(f);
          break;
        case 6:
          span.kind = Number(f.int);
          break;
        case 7:
          span.startTimeUnixNano = u64(f);
          break;
        case 8:
          span.endTimeUnixNano = u64(f);
          break;
        case 9:
          attrs.push(f);
          break;
        case 11: {
          const ev = { name: "", timeUnixNano: 0n, attributes: {} as Attrs };
          const evAttrs: Field[] = [];
          for (const e of fields(f.bytes)) {
            if (e.no === 1) ev.timeUnixNano = u64(e);
            else if (e.no === 2) ev.name = str(e);
            else if (e.no === 3) evAttrs.push(e);
          }
          ev.attributes = keyValues(evAttrs);
          span.events.push(ev);
          break;
        }
        case 13: {
          const link = { traceId: "", spanId: "", traceState: "", attributes: {} as Attrs };
          const linkAttrs: Field[] = [];
          for (const l of fields(f.bytes)) {
            if (l.no === 1) link.traceId = hex(l.bytes);
            else if (l.no === 2) link.spanId = hex(l.bytes);
            else if (l.no === 3) link.traceState = str(l);
            else if (l.no === 4) linkAttrs.push(l);
          }
          link.attributes = keyValues(linkAttrs);
          span.links.push(link);
          break;
        }
        case 15:
          for (const s of fields(f.bytes)) {
            if (s.no === 2) span.status.message = str(s);
            else if (s.no === 3) span.status.code = Number(s.int);
          }
          break;
        case 16:
          span.flags = u32(f);
          break;
      }
    }
    span.attributes = keyValues(attrs);
    return span;
  });
}

function numberPoint(buf: Uint8Array): OtlpPoint {
  const p: OtlpPoint = { attributes: {}, startTimeUnixNano: 0n, timeUnixNano: 0n };
  const attrs: Field[] = [];
  for (const f of fields(buf)) {
    if (f.no === 7) attrs.push(f);
    else if (f.no === 2) p.startTimeUnixNano = u64(f);
    else if (f.no === 3) p.timeUnixNano = u64(f);
    else if (f.no === 4) p.value = f64(f);
    else if (f.no === 6) p.value = Number(BigInt.asIntN(64, u64(f)));
  }
  p.attributes = keyValues(attrs);
  return p;
}

function histogramPoint(buf: Uint8Array): OtlpPoint {
  const p: OtlpPoint = {
    attributes: {},
    startTimeUnixNano: 0n,
    timeUnixNano: 0n,
    count: 0,
    bucketCounts: [],
    explicitBounds: [],
  };
  const attrs: Field[] = [];
  for (const f of fields(buf)) {
    if (f.no === 9) attrs.push(f);
    else if (f.no === 2) p.startTimeUnixNano = u64(f);
    else if (f.no === 3) p.timeUnixNano = u64(f);
    else if (f.no === 4) p.count = Number(u64(f));
    else if (f.no === 5) p.sum = f64(f);
    else if (f.no === 6) p.bucketCounts!.push(...fixed64s(f, false));
    else if (f.no === 7) p.explicitBounds!.push(...fixed64s(f, true));
    else if (f.no === 11) p.min = f64(f);
    else if (f.no === 12) p.max = f64(f);
  }
  p.attributes = keyValues(attrs);
  return p;
}

/**
 * Decodes an `ExportMetricsServiceRequest`. Histogram and number points are
 * decoded; exponential histograms and summaries keep only their type.
 *
 * @example
 * ```ts ignore
 * const metrics = decodeMetrics(new Uint8Array(await req.arrayBuffer()));
 * ```
 */
export function decodeMetrics(body: Uint8Array): OtlpMetric[] {
  return walk(body, (buf, scope, resource) => {
    const m: OtlpMetric = {
      name: "",
      description: "",
      unit: "",
      type: "unknown",
      temporality: 0,
      monotonic: false,
      points: [],
      scope,
      resource,
    };
    const types = {
      5: "gauge",
      7: "sum",
      9: "histogram",
      10: "exponential_histogram",
      11: "summary",
    } as const;
    for (const f of fields(buf)) {
      if (f.no === 1) m.name = str(f);
      else if (f.no === 2) m.description = str(f);
      else if (f.no === 3) m.unit = str(f);
      else if (f.no in types) {
        m.type = types[f.no as keyof typeof types];
        for (const d of fields(f.bytes)) {
          if (d.no === 1) {
            if (m.type === "gauge" || m.type === "sum") m.points.push(numberPoint(d.bytes));
            else if (m.type === "histogram") m.points.push(histogramPoint(d.bytes));
          } else if (d.no === 2 && m.type !== "gauge") m.temporality = Number(d.int);
          else if (d.no === 3 && m.type === "sum") m.monotonic = d.int !== 0n;
        }
      }
    }
    return m;
  });
}

/**
 * Decodes an `ExportLogsServiceRequest`.
 *
 * @example
 * ```ts ignore
 * const logs = decodeLogs(new Uint8Array(await req.arrayBuffer()));
 * ```
 */
export function decodeLogs(body: Uint8Array): OtlpLog[] {
  return walk(body, (buf, scope, resource) => {
    const log: OtlpLog = {
      timeUnixNano: 0n,
      severityNumber: 0,
      severityText: "",
      body: null,
      attributes: {},
      traceId: "",
      spanId: "",
      scope,
      resource,
    };
    const attrs: Field[] = [];
    for (const f of fields(buf)) {
      if (f.no === 1) log.timeUnixNano = u64(f);
      else if (f.no === 2) log.severityNumber = Number(f.int);
      else if (f.no === 3) log.severityText = str(f);
      else if (f.no === 5) log.body = anyValue(f.bytes);
      else if (f.no === 6) attrs.push(f);
      else if (f.no === 9) log.traceId = hex(f.bytes);
      else if (f.no === 10) log.spanId = hex(f.bytes);
    }
    log.attributes = keyValues(attrs);
    return log;
  });
}

// --- the receiver ---------------------------------------------------------

/** A running receiver; `await using` closes it. */
export interface OtlpReceiver extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`: the value for `OTEL_EXPORTER_OTLP_ENDPOINT`. */
  readonly endpoint: string;
  /** Every span received so far, in arrival order. */
  readonly spans: OtlpSpan[];
  /** Every metric received so far (one entry per metric per export). */
  readonly metrics: OtlpMetric[];
  /** Every log record received so far. */
  readonly logs: OtlpLog[];
  /** Bodies that failed to decode, with the error: a test should assert none. */
  readonly errors: unknown[];
  /**
   * Resolves with `pick()`'s first non-`undefined` result, re-checked each
   * time an export arrives; rejects after `timeoutMs` (default 15 000) with
   * `what` in the message.
   */
  waitFor<T>(pick: () => T | undefined, what: string, timeoutMs?: number): Promise<T>;
  /** Environment for a subprocess whose runtime should export here quickly. */
  env(extra?: Record<string, string>): Record<string, string>;
  /** Stops listening. */
  close(): Promise<void>;
}

/**
 * Starts an OTLP/HTTP (protobuf) receiver on 127.0.0.1 on a free port.
 *
 * @example
 * ```ts ignore
 * await using rx = startOtlpReceiver();
 * console.log(rx.endpoint);
 * ```
 */
export function startOtlpReceiver(): OtlpReceiver {
  const spans: OtlpSpan[] = [];
  const metrics: OtlpMetric[] = [];
  const logs: OtlpLog[] = [];
  const errors: unknown[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of [...waiters]) w();
  };

  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, async (req) => {
    if (req.method !== "POST") return new Response(null, { status: 405 });
    let body = new Uint8Array(await req.arrayBuffer());
    try {
      if (req.headers.get("content-encoding") === "gzip") {
        const stream = new Blob([body]).stream().pipeThrough(new DecompressionStream("gzip"));
        body = new Uint8Array(await new Response(stream).arrayBuffer());
      }
      const type = req.headers.get("content-type") ?? "";
      if (!type.includes("protobuf")) {
        throw new TypeError(`unsupported content-type ${type}: use http/protobuf`);
      }
      const path = new URL(req.url).pathname;
      if (path === "/v1/traces") spans.push(...decodeTraces(body));
      else if (path === "/v1/metrics") metrics.push(...decodeMetrics(body));
      else if (path === "/v1/logs") logs.push(...decodeLogs(body));
      else return new Response(null, { status: 404 });
    } catch (e) {
      errors.push(e);
      notify();
      return new Response(String(e), { status: 400 });
    }
    notify();
    // An empty Export*ServiceResponse: full success.
    return new Response(new Uint8Array(0), {
      headers: { "content-type": "application/x-protobuf" },
    });
  });
  const endpoint = `http://127.0.0.1:${server.addr.port}`;

  let closed: Promise<void> | undefined;
  const close = () => closed ??= server.shutdown();

  return {
    endpoint,
    spans,
    metrics,
    logs,
    errors,
    waitFor<T>(pick: () => T | undefined, what: string, timeoutMs = 15_000): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        const check = () => {
          let v: T | undefined;
          try {
            v = pick();
          } catch (e) {
            done();
            reject(e);
            return;
          }
          if (v !== undefined) {
            done();
            resolve(v);
          }
        };
        const timer = setTimeout(() => {
          done();
          const got = `${spans.length} spans, ${metrics.length} metrics, ${logs.length} logs` +
            (errors.length ? `, decode errors: ${errors.map(String).join("; ")}` : "");
          reject(
            new Error(
              `OTLP receiver: timed out after ${timeoutMs} ms waiting for ${what} (got ${got})`,
            ),
          );
        }, timeoutMs);
        const done = () => {
          clearTimeout(timer);
          waiters.delete(check);
        };
        waiters.add(check);
        check();
      });
    },
    env(extra = {}) {
      return {
        OTEL_DENO: "true",
        OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
        OTEL_EXPORTER_OTLP_PROTOCOL: "http/protobuf",
        // Export spans and metrics within a fraction of a second.
        OTEL_BSP_SCHEDULE_DELAY: "50",
        OTEL_METRIC_EXPORT_INTERVAL: "200",
        OTEL_DENO_CONSOLE: "ignore",
        OTEL_SERVICE_NAME: "connctx-test",
        ...extra,
      };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

// --- the traced app a test runs in a subprocess -----------------------------

/** What the test app's handler answers with (JSON). */
export interface AppReply {
  /** The `AsyncLocalStorage` store the handler found on entry (`null`: none);
   * it then enters `"request <n>"` with `enterWith`, before any `await`. */
  seen: string | null;
  /** The active span's id on entry, via the OpenTelemetry API registry. */
  active: string | null;
  /** `spanOf(info.context)`'s span id (connctx only; `null` otherwise). */
  spanOf: string | null;
  /** The downstream's status, for `/fetch`. */
  downstream?: number;
}

/**
 * The app a telemetry test runs with `OTEL_DENO=true`:
 * `deno run -A _test_otlp.ts <connctx|deno> <downstream-url>`. It serves on
 * 127.0.0.1 with connctx's `serve` (from `mod.ts`) or `Deno.serve`, prints
 * `{"port":N}` on a line, and shuts down and exits when stdin closes (so the
 * runtime flushes its telemetry on exit). Routes: `/fetch` fetches
 * `<downstream-url>/down` and sets `http.route`; `/error` throws; anything
 * else just replies.
 */
async function app(kind: string, downstream: string): Promise<void> {
  const { AsyncLocalStorage } = await import("node:async_hooks");
  const { setRoute, spanOf } = await import("./_telemetry.ts");
  const als = new AsyncLocalStorage<string>();
  type ApiSpan = { spanContext(): { spanId: string }; setAttribute(k: string, v: string): void };
  const registry = (globalThis as Record<symbol, unknown>)[
    Symbol.for("opentelemetry.js.api.1")
  ] as { context?: { active(): { getValue(k: symbol): unknown } } } | undefined;
  const activeSpan = () =>
    registry?.context?.active().getValue(Symbol.for("OpenTelemetry Context Key SPAN")) as
      | ApiSpan
      | undefined;
  let n = 0;
  const handler = async (req: Request, handlerInfo: unknown) => {
    const info = handlerInfo as { context?: import("./_context.ts").Context };
    const reply: AppReply = {
      seen: als.getStore() ?? null,
      active: activeSpan()?.spanContext().spanId ?? null,
      spanOf: info.context ? spanOf(info.context)?.spanContext().spanId ?? null : null,
    };
    als.enterWith(`request ${++n}`);
    const path = new URL(req.url).pathname;
    if (path === "/error") throw new Error("boom");
    if (path === "/fetch") {
      if (info.context) setRoute(info.context, "/fetch");
      else activeSpan()?.setAttribute("http.route", "/fetch");
      const res = await fetch(`${downstream}/down`);
      await res.body?.cancel();
      reply.downstream = res.status;
    }
    return Response.json(reply);
  };
  const quiet = {
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    onError: () => new Response("boom", { status: 500 }),
  };
  let stop: () => Promise<void>;
  let port: number;
  if (kind === "deno") {
    const server = Deno.serve({ ...quiet, handler });
    port = server.addr.port;
    stop = () => server.shutdown();
  } else {
    const { serve } = await import("./mod.ts");
    const server = serve(quiet, handler);
    port = (server.addr as Deno.NetAddr).port;
    stop = () => server.shutdown();
  }
  console.log(JSON.stringify({ port }));
  // Wait for the test to close stdin.
  for await (const _ of Deno.stdin.readable) { /* ignore input */ }
  await stop();
}

if (import.meta.main) await app(Deno.args[0], Deno.args[1]);
