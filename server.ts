// Copyright 2026 the connctx authors. MIT license.

/**
 * An HTTP/1.1 and HTTP/2 server for Deno with Go-style contexts that never leak.
 *
 * {@linkcode serve} has the shape of `Deno.serve`: a handler takes a web
 * `Request` and returns a `Response`, so handlers written for `Deno.serve`
 * (and frameworks such as Hono) run unchanged. Beyond `Deno.serve`, every
 * request carries a {@linkcode Context} in `info.context`, derived from its
 * connection's context, which is derived from the server's base context:
 *
 * ```
 * base = baseContext(listener) + ServerContextKey      (once, never reassigned)
 * per connection:  connCtx = connContext(withCancel(base + conn facts), conn)
 * per request:     reqCtx  = withCancel(connCtx)       (canceled when done)
 * ```
 *
 * The per-connection context lives in a local variable of that connection's
 * loop. Go 1.13.0–1.13.4 assigned it back to the shared base context, so
 * every connection chained onto the previous one and memory grew forever
 * (golang/go#35750); this module cannot do that by construction, and its
 * tests prove it.
 *
 * @example Tag each connection in its context
 * ```ts ignore
 * import { serve } from "./server.ts";
 * import { ContextKey, withValue } from "./context.ts";
 *
 * const CONN_ID = new ContextKey<number>("conn id");
 * serve({
 *   port: 8000,
 *   connContext: (ctx, conn) => withValue(ctx, CONN_ID, conn.id),
 * }, (_req, info) => new Response(`connection ${info.context.value(CONN_ID)}\n`));
 * ```
 *
 * @module
 */

import type { Context, ContextKey } from "./_context.ts";
import {
  CONN_INFO_KEY,
  type ConnInfo,
  type ConnState,
  LOCAL_ADDR_KEY,
  type ServeHandlerInfo,
  SERVER_KEY,
} from "./_exchange/core.ts";
import type { AccessLogOption } from "./_accesslog.ts";
import { ServerImpl } from "./_server/server.ts";
import type { Http2Options } from "./_http2/conn.ts";
import { installDenoUpgradeWebSocket } from "./websocket.ts";

// `Deno.upgradeWebSocket` works in connctx handlers (other requests still go
// to Deno's own); `uninstallDenoUpgradeWebSocket()` opts out.
installDenoUpgradeWebSocket();

export type { ConnInfo, ConnState, Http2Options, ServeHandlerInfo };

/**
 * A request handler, as for `Deno.serve`.
 *
 * @typeParam Addr The type of `info.remoteAddr`.
 *
 * @example
 * ```ts
 * import type { ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (req) => new Response(`you asked for ${new URL(req.url).pathname}`);
 * ```
 */
export type ServeHandler<Addr extends Deno.Addr = Deno.Addr> = (
  request: Request,
  info: ServeHandlerInfo<Addr>,
) => Response | Promise<Response>;

/**
 * Options for {@linkcode serve}. Every limit and timeout has a default that is
 * safe on the internet; times are milliseconds, `0` disables a timeout.
 *
 * @example
 * ```ts
 * import type { ServeOptions } from "./server.ts";
 *
 * const options: ServeOptions = { port: 0, hostname: "127.0.0.1", readHeaderTimeout: 5_000 };
 * ```
 */
export interface ServeOptions {
  /** TCP port; default `8000`. `0` picks a free port. */
  port?: number;
  /** Address to listen on; default `"0.0.0.0"`. */
  hostname?: string;
  /** Listen on this unix domain socket instead of TCP. */
  path?: string;
  /** PEM certificate chain: serve HTTPS via `Deno.listenTls` (with `key`). */
  cert?: string;
  /** PEM private key for `cert`. */
  key?: string;
  /** Serve on a listener you made yourself. */
  listener?: Deno.Listener;
  /** Aborting it starts a graceful {@linkcode Server.shutdown}. */
  signal?: AbortSignal;
  /** Called once listening; default logs the address. */
  onListen?: (addr: Deno.Addr) => void;
  /** Turns a handler's exception into a response; default logs it and
   * answers 500. */
  onError?: (
    error: unknown,
    request: Request,
    info: ServeHandlerInfo,
  ) => Response | Promise<Response>;
  /** Makes the base context, once, from the listener; default
   * `background()`. The server adds {@linkcode ServerContextKey}. */
  baseContext?: (listener: Deno.Listener) => Context;
  /** Derives a connection's context from the one it is given (which carries
   * {@linkcode ConnInfoContextKey} and {@linkcode LocalAddrContextKey}).
   * Called once per connection; its result is never cached or shared. It
   * must return a context derived from `ctx`, or the connection is closed. */
  connContext?: (ctx: Context, conn: ConnInfo) => Context;
  /** Observes each connection's state changes: `new`, then `active` ↔
   * `idle`, then `closed`. */
  connState?: (conn: ConnInfo, state: ConnState) => void;
  /** Time from a request's first byte (or the connection's start) to the end
   * of its head; then 408. Default 10 000. */
  readHeaderTimeout?: number;
  /** Longest wait for the next piece of a request body; then 408 and the
   * connection closes. Default 60 000. */
  readTimeout?: number;
  /** Longest a single write may wait for the client to read (back-pressure
   * stall); then the connection closes and the request's context is
   * canceled. Default 30 000. */
  writeTimeout?: number;
  /** Minimum request-body rate, bytes/s, measured over the time the handler
   * waits for body bytes (after `minRateGracePeriod`); a slower body gets
   * 408 and the connection closes (the slow-body attack, R.U.D.Y.; over
   * HTTP/2, 408 on that stream, or RST_STREAM once its response started,
   * and the connection stays). A handler that reads slowly is never cut for
   * it. `0` disables. Default
   * 240 (as Kestrel's `MinRequestBodyDataRate`). */
  minBodyRate?: number;
  /** Minimum response rate, bytes/s, measured over the time response bytes
   * wait for the client to read them (after `minRateGracePeriod`); a slower
   * client is cut and its request context canceled (the slow-reader
   * attack; over HTTP/2 the stream is reset, and the connection closed only
   * when its socket itself is blocked). A handler that produces slowly (server-sent events) is never
   * cut for it. `0` disables. Default 240 (as Kestrel's
   * `MinResponseDataRate`). */
  minResponseRate?: number;
  /** Waiting time before the minimum rates apply, per request. Default
   * 5 000. */
  minRateGracePeriod?: number;
  /** How long a keep-alive connection may sit idle. Default 60 000. */
  idleTimeout?: number;
  /** Largest request head (request line and headers); then 431. Over
   * HTTP/2, also the largest header block and the advertised
   * `SETTINGS_MAX_HEADER_LIST_SIZE`. Default 64 KiB. */
  maxHeaderBytes?: number;
  /** Most header fields in a request; then 431. Default 128. */
  maxHeaderCount?: number;
  /** Longest request target (HTTP/2: `:path`); then 414. Default 8 KiB. */
  maxUriBytes?: number;
  /** Largest request body; a larger `Content-Length` gets 413 before the
   * handler runs, a chunked body errors when it passes the limit. Default
   * `Infinity` (bodies are streams with back-pressure). */
  maxBodyBytes?: number;
  /** Longest chunk-size line with extensions; then 400. Default 4 KiB. */
  maxChunkLineBytes?: number;
  /** Largest chunked trailer section; then 431. Default 16 KiB. */
  maxTrailerBytes?: number;
  /** Largest unread request body drained after the response to keep the
   * connection; a larger one closes it. Default 256 KiB. */
  maxDrainBytes?: number;
  /** Keep connections open between requests. Default `true`. */
  keepAlive?: boolean;
  /** Every connection starts with a PROXY protocol header (v1 or v2, as sent
   * by haproxy's `send-proxy`/`send-proxy-v2`, nginx's `proxy_protocol on`,
   * AWS NLB...): `ConnInfo.remoteAddr` and `localAddr` become the addresses
   * it carries. A connection without a valid header is closed, so enable
   * this only behind a proxy that always sends one. Not with `cert`/`key`
   * (the header precedes the TLS handshake). Default `false`. */
  proxyProtocol?: boolean;
  /** HTTP/2 (RFC 9113): offered with ALPN `h2` over TLS, and spoken to a
   * cleartext client that opens with the HTTP/2 preface (prior-knowledge
   * h2c); every other connection is HTTP/1.1 (`Upgrade: h2c` is not
   * supported: such requests are answered over HTTP/1.1). Each stream is a
   * request with its own context, derived from its connection's. On by
   * default; `false` turns it off; an object tunes it. */
  http2?: boolean | Http2Options;
  /** OpenTelemetry: a server span and the HTTP server metrics per request,
   * exported by Deno's runtime, as `Deno.serve` does. Default: on when the
   * runtime's telemetry is on (`OTEL_DENO=true`), else off; `false` turns
   * it off for this server. The span is in each request's context
   * ({@linkcode spanOf}) and active while the handler runs, so `fetch`
   * calls become its children. */
  telemetry?: boolean;
  /** One line per finished request: `true` or `"combined"` (Combined Log
   * Format on stdout), `"json"` (JSON lines), or a function that gets each
   * entry. Default off (and then free). */
  accessLog?: AccessLogOption;
  /** Sets `SO_REUSEPORT` on the TCP listener, so several processes or
   * workers can listen on one port (Linux balances connections between
   * them). Needs `--unstable-net` (or `"unstable": ["net"]` in deno.json).
   * Default `false`. */
  reusePort?: boolean;
}

/**
 * A running server, as returned by {@linkcode serve}. It mirrors
 * `Deno.HttpServer` and adds Go's graceful shutdown with a context.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 *
 * await using server = serve({ port: 0, onListen() {} }, () => new Response("ok"));
 * const res = await fetch(`http://localhost:${(server.addr as Deno.NetAddr).port}/`);
 * await res.text();
 * ```
 */
export interface Server extends AsyncDisposable {
  /** The address the server listens on. */
  readonly addr: Deno.Addr;
  /** Settles when the server has stopped and every connection is closed. */
  readonly finished: Promise<void>;
  /** Connections open now. */
  readonly openConnections: number;
  /** Requests being served now. */
  readonly activeRequests: number;
  /**
   * Graceful shutdown, like Go's `Server.Shutdown(ctx)`: stop accepting,
   * close idle connections, let in-flight requests finish (their responses
   * carry `Connection: close`). If `ctx` ends first, the remaining requests'
   * contexts are canceled with a cause and their connections closed.
   *
   * @param ctx Bounds the wait; default: wait as long as it takes.
   * @returns Settles when every connection is closed.
   */
  shutdown(ctx?: Context): Promise<void>;
  /** Closes the listener and every connection now. */
  close(): void;
  /**
   * Registers `fn` to run once when shutdown starts (Go's
   * `RegisterOnShutdown`), e.g. to tell long-lived streams to wind down.
   *
   * @param fn The hook.
   */
  registerOnShutdown(fn: () => void): void;
  /** Keeps the process alive while the server runs (the default). */
  ref(): void;
  /** Lets the process exit even though the server is running. */
  unref(): void;
}

/**
 * The key under which every context of a server carries the
 * {@linkcode Server} (Go's `http.ServerContextKey`).
 *
 * @example
 * ```ts
 * import { ServerContextKey, type ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (_req, info) => {
 *   const server = info.context.value(ServerContextKey);
 *   return new Response(`${server?.activeRequests} active`);
 * };
 * ```
 */
export const ServerContextKey: ContextKey<Server> = SERVER_KEY as ContextKey<Server>;

/**
 * The key under which a connection's context carries the local address the
 * connection arrived on (Go's `http.LocalAddrContextKey`).
 *
 * @example
 * ```ts
 * import { LocalAddrContextKey, type ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (_req, info) =>
 *   new Response(JSON.stringify(info.context.value(LocalAddrContextKey)));
 * ```
 */
export const LocalAddrContextKey: ContextKey<Deno.Addr> = LOCAL_ADDR_KEY;

/**
 * The key under which a connection's context carries its {@linkcode ConnInfo}.
 *
 * @example
 * ```ts
 * import { ConnInfoContextKey, type ServeHandler } from "./server.ts";
 *
 * const handler: ServeHandler = (_req, info) =>
 *   new Response(`connection ${info.context.value(ConnInfoContextKey)?.id}`);
 * ```
 */
export const ConnInfoContextKey: ContextKey<ConnInfo> = CONN_INFO_KEY;

/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) with `handler`, like `Deno.serve`, on port 8000.
 *
 * @param handler Answers each request.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 *
 * serve((req) => new Response(`Hello from ${new URL(req.url).pathname}`));
 * ```
 */
export function serve(handler: ServeHandler<Deno.NetAddr>): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) on a unix domain socket; `info.remoteAddr` is a
 * `Deno.UnixAddr`.
 *
 * @param options Options with the socket's `path`.
 * @param handler Answers each request.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 *
 * serve({ path: "/tmp/app.sock" }, (_req, info) => new Response(info.remoteAddr.path));
 * ```
 */
export function serve(
  options: ServeOptions & { path: string },
  handler: ServeHandler<Deno.UnixAddr>,
): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) on a listener you made; `info.remoteAddr` is whatever
 * address it reports.
 *
 * @param options Options with the `listener`.
 * @param handler Answers each request.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 *
 * serve({ listener: Deno.listen({ port: 8000 }) }, () => new Response("ok"));
 * ```
 */
export function serve(
  options: ServeOptions & { listener: Deno.Listener },
  handler: ServeHandler,
): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) with `handler` and {@linkcode ServeOptions}.
 *
 * @param options Where to listen, contexts, limits and timeouts.
 * @param handler Answers each request.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (_req, info) =>
 *   new Response(`connection ${info.conn.id}`));
 * const res = await fetch(`http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`);
 * assert.match(await res.text(), /^connection \d+$/);
 * ```
 */
export function serve(options: ServeOptions, handler: ServeHandler<Deno.NetAddr>): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) on a unix domain socket, with the handler in the options.
 *
 * @param options Options with the socket's `path` and `handler`.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 *
 * serve({ path: "/tmp/app.sock", handler: (_req, info) => new Response(info.remoteAddr.path) });
 * ```
 */
export function serve(
  options: ServeOptions & { path: string; handler: ServeHandler<Deno.UnixAddr> },
): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) on a listener you made, with the handler in the options.
 *
 * @param options Options with the `listener` and `handler`.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 *
 * serve({ listener: Deno.listen({ port: 8000 }), handler: () => new Response("ok") });
 * ```
 */
export function serve(
  options: ServeOptions & { listener: Deno.Listener; handler: ServeHandler },
): Server;
/**
 * Serves HTTP (HTTP/1.1, and HTTP/2 where negotiated) with options that include the handler; `info.remoteAddr`
 * is a `Deno.NetAddr`.
 *
 * @param options Options and `handler`.
 * @returns The running {@linkcode Server}.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 *
 * await using server = serve({ port: 0, onListen() {}, handler: () => new Response("ok") });
 * ```
 */
export function serve(options: ServeOptions & { handler: ServeHandler<Deno.NetAddr> }): Server;
export function serve(
  a: ServeHandler<never> | (ServeOptions & { handler?: ServeHandler<never> }),
  b?: ServeHandler<never>,
): Server {
  // Each overload pins the address type its listener produces.
  if (typeof a === "function") return new ServerImpl({}, a as ServeHandler);
  const handler = b ?? a.handler;
  if (typeof handler !== "function") throw new TypeError("serve() needs a handler");
  return new ServerImpl(a, handler as ServeHandler);
}
