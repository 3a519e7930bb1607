// Copyright 2026 the connctx authors. MIT license.

/**
 * connctx: an HTTP/1.1 server for Deno with Go-style contexts that never leak.
 *
 * - {@linkcode serve} runs `Deno.serve`-style handlers on the module's own
 *   HTTP/1.1 engine, built on `Deno.listen`, and gives every request a
 *   {@linkcode Context} derived from its connection's.
 * - `context.ts` is Go's `context` package for TypeScript, bridged to
 *   `AbortSignal` and `using`.
 *
 * @example Tag each connection, read the tag in every request
 * ```ts
 * import { ContextKey, serve, withValue } from "./mod.ts";
 * import assert from "node:assert/strict";
 *
 * const CONN_ID = new ContextKey<number>("conn id");
 * await using server = serve({
 *   port: 0,
 *   hostname: "127.0.0.1",
 *   onListen() {},
 *   connContext: (ctx, conn) => withValue(ctx, CONN_ID, conn.id),
 * }, (_req, info) => new Response(`connection ${info.context.value(CONN_ID)}`));
 *
 * const res = await fetch(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`);
 * assert.match(await res.text(), /^connection \d+$/);
 * ```
 *
 * @module
 */

export * from "./context.ts";
export * from "./server.ts";
export * from "./workers.ts";
export * from "./websocket.ts";
export {
  setRoute,
  type SpanAttributes,
  type SpanAttributeValue,
  SpanContextKey,
  spanOf,
  type SpanTime,
  type TraceSpan,
} from "./_telemetry.ts";
export {
  type AccessLogEntry,
  type AccessLogOption,
  formatCombined,
  formatJson,
} from "./_accesslog.ts";
