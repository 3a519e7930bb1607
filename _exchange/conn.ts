// Copyright 2026 the connctx authors. MIT license.
// Owns: one accepted connection as the server sees it, whatever protocol it
// speaks — its registry entry, its context (derived from the base context,
// passed through `connContext`, never stored back), its deadline for the
// sweeper, its `connState` reports, and closing it exactly once.
//
// A protocol serves the connection by implementing `Protocol` and setting
// `connection.proto`. HTTP/1.1 starts every connection; it hands over to
// HTTP/2 (h2c preface) or to an upgrade (WebSocket, raw) by replacing
// `proto`, so the registry, the context and the counters stay one.
//
//   Connection.accept(core, conn)      registers; reports nothing yet
//   connection.open()                  conn context + "new"; null: close
//   connection.deadline = t            the sweeper calls proto.timeout() at t
//   connection.state("idle")           connState, once per change
//   connection.close()                 socket closed, context canceled with
//                                      CONN_CLOSED, "closed", unregistered

import {
  type _CancelNode as CancelNode,
  _cancelNode,
  _newCancelNode,
  _newValueNode,
} from "../_context.ts";
import { type Context, isContext } from "../_context.ts";
import { CONN_CLOSED } from "./errors.ts";
import { CONN_INFO_KEY, type ConnInfo, type ConnState, type Core, LOCAL_ADDR_KEY } from "./core.ts";

/** What the server asks of the protocol serving a connection. */
export interface Protocol {
  /** The connection's deadline passed (see {@linkcode Connection.deadline}). */
  timeout(): void;
  /** Shutdown started: close now if idle, else wind down (finish in-flight
   * work, announce the end: `Connection: close`, GOAWAY, close 1001). */
  closeIfIdle(): void;
  /** Cut now; cancel in-flight work with `cause`. */
  abort(cause: unknown): void;
}

let nextId = 1;

/** One accepted connection. */
export class Connection {
  readonly core: Core;
  readonly conn: Deno.Conn;
  readonly info: ConnInfo;
  /** Epoch ms when the current phase times out; 0: never. */
  deadline = 0;
  /** Who serves the connection now. */
  proto: Protocol;
  /** The connection's own cancel node; `null` until {@linkcode open}. */
  node: CancelNode | null = null;
  closed = false;
  #state: ConnState | null = null;

  private constructor(core: Core, conn: Deno.Conn, info: ConnInfo) {
    this.core = core;
    this.conn = conn;
    this.info = info;
    this.proto = NO_PROTOCOL;
  }

  /** Registers an accepted connection. */
  static accept(core: Core, conn: Deno.Conn, tls?: ConnInfo["tls"]): Connection {
    const info: ConnInfo = tls === undefined
      ? { id: nextId++, localAddr: conn.localAddr, remoteAddr: conn.remoteAddr }
      : { id: nextId++, localAddr: conn.localAddr, remoteAddr: conn.remoteAddr, tls };
    const c = new Connection(core, conn, info);
    core.conns.add(c);
    if (core.unref) conn.unref();
    return c;
  }

  /** The addresses named by a PROXY header replace the socket's. */
  setAddrs(remote: Deno.Addr | undefined, local: Deno.Addr | undefined): void {
    const info = this.info as { remoteAddr: Deno.Addr; localAddr: Deno.Addr };
    if (remote !== undefined) info.remoteAddr = remote;
    if (local !== undefined) info.localAddr = local;
  }

  /**
   * Derives the connection's context from the base context and passes it
   * through `connContext`; reports `new`. `null`: the callback failed or
   * returned a context not derived from the one it was given (logged);
   * close the connection.
   */
  open(): Context | null {
    const core = this.core;
    // Context flow: derived from the base in a local, never stored back.
    const node = _newCancelNode(
      _newValueNode(
        _newValueNode(core.base, LOCAL_ADDR_KEY, this.info.localAddr),
        CONN_INFO_KEY,
        this.info,
      ),
    );
    this.node = node;
    let ctx: Context = node;
    const cc = core.connContext;
    if (cc !== undefined) {
      try {
        ctx = core.isolate(() => cc(node, this.info));
      } catch (e) {
        core.log(`connContext threw; closing connection ${this.info.id}`, e);
        return null;
      }
      if (!derivesFrom(ctx, node)) {
        core.log(
          `connContext must return a context derived from the one it was given; ` +
            `closing connection ${this.info.id}`,
          new TypeError(isContext(ctx) ? "context not derived from ctx" : "not a Context"),
        );
        return null;
      }
    }
    this.state("new");
    return ctx;
  }

  /** Reports a state change to `connState` (once per change; never after
   * `closed`; nothing before `new`). */
  state(s: ConnState): void {
    if (this.#state === s || this.#state === "closed" || this.node === null) return;
    this.#state = s;
    const cs = this.core.connState;
    if (cs !== undefined) {
      try {
        this.core.isolate(() => cs(this.info, s));
      } catch (e) {
        this.core.log("connState threw", e);
      }
    }
  }

  /** Sets the deadline `ms` from now (0: none). */
  expireIn(ms: number): void {
    this.deadline = ms > 0 ? Date.now() + ms : 0;
  }

  /** Closes the socket (once), cancels the connection's context, reports
   * `closed` and leaves the registry. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.deadline = 0;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    if (this.node !== null) _cancelNode(this.node, CONN_CLOSED);
    const core = this.core;
    if (core.conns.delete(this)) {
      this.state("closed");
      if (core.draining && core.conns.size === 0) core.onIdle();
    }
  }

  /** Cancels the connection's context with `cause` (first cause wins). */
  cancel(cause: unknown): void {
    if (this.node !== null) _cancelNode(this.node, cause);
  }
}

const NO_PROTOCOL: Protocol = {
  timeout() {},
  closeIfIdle() {},
  abort() {},
};

/** Whether `ctx` is `root` or derives from it (bounded walk). */
function derivesFrom(ctx: unknown, root: Context): boolean {
  if (!isContext(ctx)) return false;
  // deno-lint-ignore no-explicit-any
  let c: any = ctx;
  for (let i = 0; i < 10_000 && c !== null && c !== undefined; i++) {
    if (c === root) return true;
    c = c._parent;
  }
  return false;
}
