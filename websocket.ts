// Copyright 2026 the connctx authors. MIT license.

/**
 * WebSockets (RFC 6455, with permessage-deflate, RFC 7692) and raw
 * connection upgrades for {@linkcode serve}.
 *
 * {@linkcode upgradeWebSocket} has the signature and result of
 * `Deno.upgradeWebSocket`: call it in a handler, set up the socket's events,
 * return its `response` (a 101). The socket opens once the 101 is written.
 * Handlers written for `Deno.serve` run unchanged: importing the server
 * installs a wrapper on `Deno.upgradeWebSocket` that upgrades connctx
 * requests here and hands every other request to Deno's own function, so a
 * `Deno.serve` in the same process is untouched (see
 * {@linkcode installDenoUpgradeWebSocket}; undo it with
 * {@linkcode uninstallDenoUpgradeWebSocket}). Frameworks that call
 * `Deno.upgradeWebSocket`, such as Hono's `upgradeWebSocket` from
 * `hono/deno`, therefore work as they are.
 *
 * Contexts: a socket keeps its request's context (`info.context`, derived
 * from the connection's, so `connContext` values are visible) alive for its
 * whole life, and cancels it when the socket closes, with a
 * {@linkcode WebSocketClosedError} (code, reason, wasClean) as the cause. The
 * connection reports `hijacked` to `connState` when the socket opens and
 * `closed` when it ends, counts in `openConnections` meanwhile, and not in
 * active requests. `shutdown(ctx)` sends close 1001 to every open socket,
 * waits for the closing handshakes until `ctx` is done, then cuts the rest.
 *
 * {@linkcode upgrade} takes a connection over raw (Go's `Hijacker`, Node's
 * `'upgrade'` and `'connect'` events): for another protocol after a `101`,
 * or for a `CONNECT` tunnel after a `2xx`.
 *
 * @example Echo server
 * ```ts ignore
 * import { serve } from "./server.ts";
 * import { upgradeWebSocket } from "./websocket.ts";
 *
 * serve({ port: 8000 }, (req) => {
 *   if (req.headers.get("upgrade") !== "websocket") return new Response("not a websocket", { status: 426 });
 *   const { socket, response } = upgradeWebSocket(req);
 *   socket.onmessage = (e) => socket.send(e.data);
 *   return response;
 * });
 * ```
 *
 * @module
 */

import { CanceledError, type Context } from "./_context.ts";
import type { Connection, Protocol } from "./_exchange/conn.ts";
import { type Exchange, exchangeOf, type Takeover } from "./_exchange/exchange.ts";
import type { CompressionOptions } from "./_ws/deflate.ts";
import { acceptHandshake, headView } from "./_ws/handshake.ts";
import { WebSocketHandshakeError } from "./_ws/errors.ts";
import {
  abortWebSocket,
  type CloseResult,
  closeWebSocket,
  ConnctxWebSocket,
  connTransport,
  startWebSocket,
} from "./_ws/socket.ts";

export type { CompressionOptions };
export { WebSocketHandshakeError };

/**
 * Options of {@linkcode upgradeWebSocket}: those of
 * `Deno.UpgradeWebSocketOptions` (`protocol`, `idleTimeout`) and ours.
 *
 * @example
 * ```ts
 * import type { UpgradeWebSocketOptions } from "./websocket.ts";
 *
 * const opts: UpgradeWebSocketOptions = {
 *   protocol: "chat.v1",
 *   idleTimeout: 30,
 *   maxMessageBytes: 1 << 20,
 *   compression: { threshold: 256 },
 * };
 * ```
 */
export interface UpgradeWebSocketOptions {
  /** The subprotocol to select; the client must have offered it (else 400). */
  protocol?: string;
  /**
   * Seconds, as for `Deno.upgradeWebSocket`: a peer silent for half of it is
   * pinged; one silent for all of it is closed with 1001 ("No response from
   * ping frame."). Default 120; 0 disables.
   */
  idleTimeout?: number;
  /** Largest message, after decompression; a bigger one fails with 1009.
   * Default 64 MiB (as Deno). */
  maxMessageBytes?: number;
  /** permessage-deflate: `false` declines it; default on (see
   * {@linkcode CompressionOptions} for its limits and defaults). */
  compression?: boolean | CompressionOptions;
  /** Milliseconds a write may make no progress (a peer that stopped reading)
   * before the connection is cut; default the server's `writeTimeout`, or
   * 30 000 when that is 0. */
  writeTimeout?: number;
  /** Milliseconds to wait for the peer's close frame after ours; default 5 000. */
  closeTimeout?: number;
}

/**
 * What {@linkcode upgradeWebSocket} returns, as `Deno.WebSocketUpgrade`.
 *
 * @example
 * ```ts ignore
 * import { upgradeWebSocket, type WebSocketUpgrade } from "./websocket.ts";
 *
 * declare const req: Request;
 * const { socket, response }: WebSocketUpgrade = upgradeWebSocket(req);
 * ```
 */
export interface WebSocketUpgrade {
  /** The 101 response to return from the handler. */
  response: Response;
  /** The socket; `open` fires when the response is written. */
  socket: WebSocket;
}

/**
 * The cause a socket's context (the request's `info.context`) is canceled
 * with when the socket closes.
 *
 * @example
 * ```ts ignore
 * import { serve } from "./server.ts";
 * import { upgradeWebSocket, WebSocketClosedError } from "./websocket.ts";
 * import { cause } from "./context.ts";
 *
 * serve({ port: 8000 }, (req, info) => {
 *   const { socket, response } = upgradeWebSocket(req);
 *   socket.onclose = () => {
 *     const why = cause(info.context);
 *     if (why instanceof WebSocketClosedError) console.log(why.code, why.wasClean);
 *   };
 *   return response;
 * });
 * ```
 */
export class WebSocketClosedError extends CanceledError {
  /** The close code the socket reported (1006 for an abnormal end). */
  readonly code: number;
  /** The close reason. */
  readonly reason: string;
  /** Whether the closing handshake completed. */
  readonly wasClean: boolean;

  /**
   * Creates the error.
   *
   * @param result How the socket ended.
   */
  constructor(result: { code: number; reason: string; wasClean: boolean; error?: string | null }) {
    super(
      `websocket closed: ${result.code}${
        result.reason ? ` ${JSON.stringify(result.reason)}` : ""
      }` +
        (result.error ? ` (${result.error})` : ""),
    );
    this.name = "WebSocketClosedError";
    this.code = result.code;
    this.reason = result.reason;
    this.wasClean = result.wasClean;
  }
}

const originalUpgrade: typeof Deno.upgradeWebSocket = Deno.upgradeWebSocket;

/**
 * Upgrades a request of a connctx server to a WebSocket: validates the
 * handshake, negotiates the subprotocol and permessage-deflate, and returns
 * the socket and the 101 response to return from the handler. A request that
 * did not come from a connctx server is handed to `Deno.upgradeWebSocket`.
 *
 * A request that is not a valid handshake throws a
 * {@linkcode WebSocketHandshakeError} (a `TypeError`, as Deno throws), which
 * the server answers with its status when the handler lets it through
 * (Deno's becomes a 500): 400
 * (not GET, no `Upgrade: websocket` or `Connection: upgrade`, a missing or
 * malformed `Sec-WebSocket-Key`, a required `protocol` the client did not
 * offer) or 426 with `Sec-WebSocket-Version: 13` (another version).
 *
 * If the handler does not return the 101 (it throws, or returns another
 * response), the socket fires `error` and `close` (1006) and never opens.
 *
 * @example
 * ```ts
 * import { serve } from "./server.ts";
 * import { upgradeWebSocket } from "./websocket.ts";
 * import assert from "node:assert/strict";
 *
 * await using server = serve({ port: 0, hostname: "127.0.0.1", onListen() {} }, (req) => {
 *   const { socket, response } = upgradeWebSocket(req);
 *   socket.onmessage = (e) => socket.send(`echo: ${e.data}`);
 *   return response;
 * });
 * const ws = new WebSocket(`ws://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`);
 * const reply = await new Promise<string>((resolve) => {
 *   ws.onopen = () => ws.send("hi");
 *   ws.onmessage = (e) => resolve(e.data);
 * });
 * assert.equal(reply, "echo: hi");
 * ws.close();
 * await new Promise((r) => (ws.onclose = r));
 * ```
 */
export function upgradeWebSocket(
  request: Request,
  options: UpgradeWebSocketOptions = {},
): WebSocketUpgrade {
  const ex = exchangeOf(request);
  if (ex === undefined) {
    return originalUpgrade.call(Deno, request, {
      protocol: options.protocol,
      idleTimeout: options.idleTimeout,
    });
  }
  if (ex.takeover !== null || ex.finished) {
    throw new TypeError("this request has already been upgraded or answered");
  }
  // The parsed head, not request.headers: no Headers object is built.
  const agreed = acceptHandshake(headView(ex.head.method, ex.head.headers), options);
  // Only the connection is kept after the takeover (not the takeover
  // record, whose buffered bytes the socket has copied).
  let taken: Connection | null = null;
  const onClosed = (result: CloseResult) => {
    ex.cancel(new WebSocketClosedError(result));
    taken?.close();
  };
  const writeTimeout = options.writeTimeout ?? (ex.core.writeTimeout || 30_000);
  const socket = new ConnctxWebSocket({
    url: wsUrl(request.url),
    protocol: agreed.protocol,
    extensions: agreed.extensions,
    deflate: agreed.deflate,
    maxMessageBytes: options.maxMessageBytes,
    idleTimeout: options.idleTimeout,
    writeTimeout,
    closeTimeout: options.closeTimeout,
    onClosed,
  });
  ex.takeover = (t) => {
    const c = taken = t.connection;
    const proto: Protocol = {
      timeout() {},
      closeIfIdle: () => closeWebSocket(socket, 1001, "server shutting down"),
      abort: (cause) => abortWebSocket(socket, reasonOf(cause)),
    };
    c.proto = proto;
    c.deadline = 0;
    noDelay(c.conn);
    c.state("hijacked");
    startWebSocket(socket, connTransport(c.conn), t.buffered);
    if (c.core.draining) closeWebSocket(socket, 1001, "server shutting down");
  };
  // No takeover by the time the exchange is over: the 101 never went out.
  ex.completed.then(() => {
    if (taken === null) abortWebSocket(socket, "the handler did not return the 101 response");
  });
  const response = new Response(null, { status: 101, headers: agreed.headers });
  return { socket, response };
}

/**
 * A connection taken over by {@linkcode upgrade}: the socket, the bytes the
 * server had read past the request head, and a duplex view of both.
 *
 * @example
 * ```ts ignore
 * import { upgrade, type UpgradedConnection } from "./websocket.ts";
 *
 * declare const req: Request;
 * upgrade(req).then(async (up: UpgradedConnection) => {
 *   await up.readable.pipeTo(up.writable); // echo until the peer closes
 * });
 * ```
 */
export interface UpgradedConnection {
  /** The connection itself. Prefer `readable`/`writable`, which start with `buffered`. */
  readonly conn: Deno.Conn;
  /** The request target as sent: `host:port` for a CONNECT, else a path. */
  readonly target: string;
  /** Bytes read past the request head before the handover (a copy). */
  readonly buffered: Uint8Array;
  /** The peer's bytes: `buffered`, then what the connection reads. */
  readonly readable: ReadableStream<Uint8Array>;
  /** To the peer; closing it half-closes the connection (FIN). */
  readonly writable: WritableStream<Uint8Array>;
  /** The request's context, alive until {@linkcode UpgradedConnection.close}. */
  readonly context: Context;
  /** Closes the connection and cancels the context. */
  close(): void;
}

/**
 * Takes a connection over after the response the handler returns: a `101`
 * for a protocol switch, or a `2xx` to a `CONNECT` (then a tunnel; without a
 * call to `upgrade`, the server answers CONNECT with 501). The promise
 * resolves once the response head is written, and rejects if the handler
 * returned anything else (the response then goes out as usual).
 *
 * The connection counts in `openConnections` and reports `hijacked` until it
 * is closed: by {@linkcode UpgradedConnection.close}, when both directions
 * have ended (`readable` at EOF and `writable` closed), or by the server
 * (`shutdown` waits for it until its context is done, then cuts it).
 *
 * @example A CONNECT tunnel
 * ```ts ignore
 * import { serve } from "./server.ts";
 * import { upgrade } from "./websocket.ts";
 *
 * serve({ port: 8080 }, (req) => {
 *   if (req.method !== "CONNECT") return new Response("proxy only", { status: 405 });
 *   upgrade(req).then(async (client) => {
 *     const at = client.target.lastIndexOf(":"); // "example.com:443", "[::1]:443"
 *     const hostname = client.target.slice(0, at).replace(/^\[|\]$/g, "");
 *     const upstream = await Deno.connect({ hostname, port: Number(client.target.slice(at + 1)) });
 *     await Promise.all([client.readable.pipeTo(upstream.writable), upstream.readable.pipeTo(client.writable)])
 *       .catch(() => {});
 *     client.close();
 *   });
 *   return new Response(null, { status: 200 });
 * });
 * ```
 */
export function upgrade(request: Request): Promise<UpgradedConnection> {
  const ex = exchangeOf(request);
  if (ex === undefined) {
    return Promise.reject(new TypeError("upgrade() needs a request from a connctx server"));
  }
  if (ex.takeover !== null || ex.finished) {
    return Promise.reject(new TypeError("this request has already been upgraded or answered"));
  }
  return new Promise((resolve, reject) => {
    let taken = false;
    ex.takeover = (t) => {
      taken = true;
      resolve(rawConnection(t));
    };
    ex.completed.then(() => {
      if (!taken) {
        reject(
          new TypeError("the handler's response did not switch protocols (101, or 2xx to CONNECT)"),
        );
      }
    });
  });
}

function rawConnection(t: Takeover): UpgradedConnection {
  const c: Connection = t.connection;
  const ex: Exchange = t.exchange;
  const conn = c.conn;
  let pending: Uint8Array | null = t.buffered.length > 0 ? t.buffered : null;
  let readDone = false;
  let writeDone = false;
  let closed = false;
  const close = (cause: unknown = new CanceledError("connection closed")) => {
    if (closed) return;
    closed = true;
    ex.cancel(cause);
    c.close();
  };
  const maybeClose = () => {
    if (readDone && writeDone) close();
  };
  c.proto = {
    timeout() {},
    closeIfIdle() {},
    abort: (cause) => close(cause),
  };
  c.deadline = 0;
  c.state("hijacked");
  const readable = new ReadableStream<Uint8Array>({
    async pull(ctrl) {
      if (pending !== null) {
        const p = pending;
        pending = null;
        ctrl.enqueue(p);
        return;
      }
      const buf = new Uint8Array(16 * 1024);
      let n: number | null;
      try {
        n = closed ? null : await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        readDone = true;
        ctrl.close();
        maybeClose();
        return;
      }
      ctrl.enqueue(buf.subarray(0, n));
    },
    cancel() {
      readDone = true;
      maybeClose();
    },
  });
  const writable = new WritableStream<Uint8Array>({
    async write(chunk) {
      for (let off = 0; off < chunk.length;) off += await conn.write(chunk.subarray(off));
    },
    async close() {
      writeDone = true;
      await conn.closeWrite().catch(() => {});
      maybeClose();
    },
    abort() {
      close();
    },
  });
  return {
    conn,
    target: ex.head.target,
    buffered: t.buffered,
    readable,
    writable,
    context: ex.context,
    close: () => close(),
  };
}

let installed = false;

/**
 * Replaces `Deno.upgradeWebSocket` with a function that upgrades requests of
 * connctx servers with {@linkcode upgradeWebSocket} and passes every other
 * request to Deno's original, unchanged. Importing the server calls it once;
 * calling it again does nothing.
 *
 * @example
 * ```ts
 * import { installDenoUpgradeWebSocket } from "./websocket.ts";
 *
 * installDenoUpgradeWebSocket(); // already done by importing the server
 * ```
 */
export function installDenoUpgradeWebSocket(): void {
  if (installed) return;
  installed = true;
  try {
    Deno.upgradeWebSocket = denoUpgradeWebSocket;
  } catch {
    installed = false; // the runtime would not let us: connctx handlers use upgradeWebSocket
  }
}

/**
 * Puts Deno's own `Deno.upgradeWebSocket` back (the opt-out from
 * {@linkcode installDenoUpgradeWebSocket}). Handlers of connctx servers must
 * then call {@linkcode upgradeWebSocket} themselves.
 *
 * @example
 * ```ts
 * import { installDenoUpgradeWebSocket, uninstallDenoUpgradeWebSocket } from "./websocket.ts";
 *
 * uninstallDenoUpgradeWebSocket();
 * installDenoUpgradeWebSocket(); // and back
 * ```
 */
export function uninstallDenoUpgradeWebSocket(): void {
  if (!installed) return;
  installed = false;
  if (Deno.upgradeWebSocket === denoUpgradeWebSocket) Deno.upgradeWebSocket = originalUpgrade;
}

function denoUpgradeWebSocket(
  request: Request,
  options?: Deno.UpgradeWebSocketOptions,
): Deno.WebSocketUpgrade {
  if (exchangeOf(request) === undefined) return originalUpgrade.call(Deno, request, options);
  return upgradeWebSocket(request, options);
}

function wsUrl(url: string): string {
  if (url.startsWith("http:")) return `ws:${url.slice(5)}`;
  if (url.startsWith("https:")) return `wss:${url.slice(6)}`;
  return url;
}

function reasonOf(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause ?? "connection aborted");
}

function noDelay(conn: Deno.Conn): void {
  try {
    (conn as Deno.TcpConn).setNoDelay?.(true);
  } catch { /* not TCP */ }
}
