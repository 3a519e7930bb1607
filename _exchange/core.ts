// Copyright 2026 the connctx authors. MIT license.
// Owns: what every protocol needs from its server — the settings (limits,
// timeouts, minimum rates), the user's callbacks (handler, onError,
// connContext, connState), the base context, and the server-wide state
// (connection registry, request counter, draining flag). `server.ts` builds
// one `Core` per server; connections and exchanges only read it (and bump
// its counters).

import type { Context } from "../_context.ts";
import { ContextKey } from "../_context.ts";
import type { ChunkLimits } from "../_http1/chunked.ts";
import type { Limits } from "../_http1/parser.ts";
import type { AccessRecord } from "../_accesslog.ts";
import type { RequestTelemetry } from "../_telemetry.ts";
import type { RunFresh } from "./isolate.ts";
import type { Connection } from "./conn.ts";

/**
 * A connection's lifecycle state, as reported to `connState`: `new` once,
 * then `active` (a request is being read or served) and `idle` (waiting for
 * the next keep-alive request) in turn, then `closed` once. A connection
 * taken over after a `101 Switching Protocols` (a WebSocket, or a raw
 * `upgrade()`) reports `hijacked` (Go's `StateHijacked`) and, unlike Go's,
 * still reports `closed` when the server closes it. An HTTP/2 connection is
 * `active` while at least one stream is open and `idle` otherwise.
 *
 * @example
 * ```ts
 * import { serve, type ConnState } from "../mod.ts";
 *
 * const seen: ConnState[] = [];
 * await using server = serve({
 *   port: 0,
 *   onListen() {},
 *   connState: (_conn, state) => seen.push(state),
 * }, () => new Response("ok"));
 * ```
 */
export type ConnState = "new" | "active" | "idle" | "hijacked" | "closed";

/**
 * What a handler (and `connContext`, `connState`) learns about a connection.
 *
 * @example
 * ```ts
 * import { serve, type ConnInfo } from "../mod.ts";
 *
 * const describe = (conn: ConnInfo): string =>
 *   `#${conn.id} from ${JSON.stringify(conn.remoteAddr)}${conn.tls ? " (TLS)" : ""}`;
 * await using server = serve({ port: 0, onListen() {} }, (_req, info) =>
 *   new Response(describe(info.conn)));
 * ```
 */
export interface ConnInfo {
  /** Unique (per process) connection number, starting at 1. */
  readonly id: number;
  /** The server's address for this connection. */
  readonly localAddr: Deno.Addr;
  /** The peer's address (from the PROXY header when `proxyProtocol` is on). */
  readonly remoteAddr: Deno.Addr;
  /** TLS details, for connections accepted by a TLS listener. */
  readonly tls?: { readonly alpnProtocol: string | null };
}

/**
 * The `info` argument of a handler: a superset of `Deno.ServeHandlerInfo`.
 * `Addr` is the type of `remoteAddr`: `Deno.NetAddr` for TCP and TLS,
 * `Deno.UnixAddr` for a unix socket, as with `Deno.serve`.
 *
 * @typeParam Addr The type of the peer's address.
 *
 * @example
 * ```ts
 * import type { ServeHandlerInfo } from "../server.ts";
 *
 * function handler(_req: Request, info: ServeHandlerInfo): Response {
 *   if (info.context.err) return new Response(null, { status: 499 });
 *   return new Response(`hello, connection ${info.conn.id}`);
 * }
 * ```
 */
export interface ServeHandlerInfo<Addr extends Deno.Addr = Deno.Addr> {
  /** The peer's address. */
  readonly remoteAddr: Addr;
  /** Settles when the response has been sent (or the connection failed). */
  readonly completed: Promise<void>;
  /** This request's context: derived from its connection's, canceled when
   * the response is finished or the client goes away. */
  readonly context: Context;
  /** The connection the request arrived on. */
  readonly conn: ConnInfo;
}

/** The handler's `info`, whatever the address type. */
export type HandlerInfo = ServeHandlerInfo;

/** A request handler. */
export type Handler = (req: Request, info: HandlerInfo) => Response | Promise<Response>;

/** Everything a connection needs from its server. */
export interface Core {
  handler: Handler;
  onError: (err: unknown, req: Request, info: HandlerInfo) => Response | Promise<Response>;
  base: Context;
  connContext: ((ctx: Context, conn: ConnInfo) => Context) | undefined;
  connState: ((conn: ConnInfo, state: ConnState) => void) | undefined;
  limits: Limits;
  chunkLimits: ChunkLimits;
  maxBodyBytes: number;
  /** Largest unread body drained to keep a connection; else it is closed. */
  drainBytes: number;
  readHeaderTimeout: number;
  readTimeout: number;
  writeTimeout: number;
  idleTimeout: number;
  /** Bytes/s a request body must keep up while the handler waits for it. */
  minBodyRate: number;
  /** Bytes/s a client must read a response at while bytes wait to be sent. */
  minResponseRate: number;
  /** Time before the minimum rates apply (per request), ms. */
  minRateGrace: number;
  keepAlive: boolean;
  /** Expect a PROXY protocol (v1/v2) header before the first request. */
  proxyProtocol: boolean;
  scheme: string;
  /** Set by shutdown: finish in-flight requests, keep nothing alive. */
  draining: boolean;
  conns: Set<Connection>;
  activeRequests: number;
  /** Called when the last connection of a draining server closes. */
  onIdle: () => void;
  /** Logs an error that has no request to answer. */
  log: (msg: string, err?: unknown) => void;
  unref: boolean;
  /** Runs user callbacks in the server's own async context. */
  isolate: RunFresh;
  /** Telemetry, or `null` when off. */
  observer: RequestTelemetry | null;
  /** Access log, or `null` when off. */
  accessLog: ((entry: AccessRecord) => void) | null;
  /** Serves a connection that speaks HTTP/2 (ALPN `h2`, or the h2c preface),
   * or `null` when HTTP/2 is off. `buffered` holds bytes already read. */
  http2: ((c: Connection, ctx: Context, buffered: Uint8Array) => void) | null;
}

/** Key under which every context of a server carries the server (the public
 * `ServerContextKey`). */
export const SERVER_KEY: ContextKey<unknown> = new ContextKey<unknown>("connctx.server");
/** Key under which a connection's context carries its {@linkcode ConnInfo}. */
export const CONN_INFO_KEY: ContextKey<ConnInfo> = new ContextKey<ConnInfo>("connctx.conn");
/** Key for the local address (Go's `LocalAddrContextKey`). */
export const LOCAL_ADDR_KEY: ContextKey<Deno.Addr> = new ContextKey<Deno.Addr>(
  "connctx.localAddr",
);
