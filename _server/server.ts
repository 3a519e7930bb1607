// Copyright 2026 the connctx authors. MIT license.
// Owns: a running server — options to settings (`Core`), the listener
// (TCP, TLS with ALPN, unix), the accept loop and the protocol each
// connection starts with, the sweeper that enforces every connection's
// deadline, and graceful shutdown. The public types and `serve()` overloads
// are in `../server.ts`.

import { background, CanceledError, type Context, withValue } from "../_context.ts";
import { Connection } from "../_exchange/conn.ts";
import { type Core, SERVER_KEY } from "../_exchange/core.ts";
import { internalError } from "../_exchange/errors.ts";
import { DEFAULT_CHUNK_LIMITS } from "../_http1/chunked.ts";
import { Http1Conn } from "../_http1/conn.ts";
import { DEFAULT_LIMITS } from "../_http1/parser.ts";
import { resolveHttp2Options, serveHttp2 } from "../_http2/conn.ts";
import { accessLogFor } from "../_accesslog.ts";
import { freshAsyncContext } from "../_exchange/isolate.ts";
import { telemetryFor } from "../_telemetry.ts";
import type { ServeHandler, ServeOptions, Server } from "../server.ts";

function defaultOnError(error: unknown): Response {
  console.error("connctx: handler failed:", error);
  return internalError();
}

function listen(options: ServeOptions): Deno.Listener {
  if (options.listener) return options.listener;
  if (options.path !== undefined) {
    return Deno.listen({ transport: "unix", path: options.path });
  }
  const hostname = options.hostname ?? "0.0.0.0";
  const port = options.port ?? 8000;
  if (options.cert !== undefined || options.key !== undefined) {
    if (options.cert === undefined || options.key === undefined) {
      throw new TypeError("TLS needs both cert and key");
    }
    return Deno.listenTls({
      hostname,
      port,
      cert: options.cert,
      key: options.key,
      alpnProtocols: options.http2 === false ? ["http/1.1"] : ["h2", "http/1.1"],
      ...(options.reusePort ? { reusePort: true } : {}),
    });
  }
  return Deno.listen({
    hostname,
    port,
    transport: "tcp",
    ...(options.reusePort ? { reusePort: true } : {}),
  });
}

function num(v: number | undefined, d: number, name: string): number {
  if (v === undefined) return d;
  if (typeof v !== "number" || Number.isNaN(v) || v < 0) {
    throw new TypeError(`${name} must be a non-negative number`);
  }
  return v;
}

/** A running server. */
export class ServerImpl implements Server {
  readonly addr: Deno.Addr;
  readonly finished: Promise<void>;
  readonly #listener: Deno.Listener;
  readonly #core: Core;
  readonly #tls: boolean;
  #resolveFinished!: () => void;
  #listening = true;
  #sweeper: ReturnType<typeof setInterval> | undefined;
  #hooks: (() => void)[] = [];
  #shutdown: Promise<void> | null = null;
  #idle: (() => void) | null = null;
  #acceptLoop: Promise<void>;

  constructor(options: ServeOptions, handler: ServeHandler) {
    if (options.proxyProtocol && (options.cert !== undefined || options.key !== undefined)) {
      throw new TypeError("proxyProtocol cannot be combined with cert/key");
    }
    // Without the flag Deno exits the process (code 70) instead of throwing.
    if (options.reusePort && !options.listener && !("listenDatagram" in Deno)) {
      throw new TypeError('reusePort needs --unstable-net (or "unstable": ["net"] in deno.json)');
    }
    const listener = listen(options);
    this.#listener = listener;
    this.addr = listener.addr;
    this.#tls = options.cert !== undefined;
    this.finished = new Promise((r) => (this.#resolveFinished = r));
    // The base context: computed once, never reassigned.
    const base = withValue(
      options.baseContext ? options.baseContext(listener) : background(),
      SERVER_KEY,
      this as Server,
    );
    const h2 = options.http2 === false
      ? null
      : resolveHttp2Options(typeof options.http2 === "object" ? options.http2 : {});
    const core: Core = {
      handler,
      onError: options.onError ?? defaultOnError,
      base,
      connContext: options.connContext,
      connState: options.connState,
      limits: {
        maxHeaderBytes: num(
          options.maxHeaderBytes,
          DEFAULT_LIMITS.maxHeaderBytes,
          "maxHeaderBytes",
        ),
        maxHeaderCount: num(
          options.maxHeaderCount,
          DEFAULT_LIMITS.maxHeaderCount,
          "maxHeaderCount",
        ),
        maxUriBytes: num(options.maxUriBytes, DEFAULT_LIMITS.maxUriBytes, "maxUriBytes"),
      },
      chunkLimits: {
        maxChunkLineBytes: num(
          options.maxChunkLineBytes,
          DEFAULT_CHUNK_LIMITS.maxChunkLineBytes,
          "maxChunkLineBytes",
        ),
        maxTrailerBytes: num(
          options.maxTrailerBytes,
          DEFAULT_CHUNK_LIMITS.maxTrailerBytes,
          "maxTrailerBytes",
        ),
      },
      maxBodyBytes: num(options.maxBodyBytes, Infinity, "maxBodyBytes"),
      drainBytes: num(options.maxDrainBytes, 256 * 1024, "maxDrainBytes"),
      readHeaderTimeout: num(options.readHeaderTimeout, 10_000, "readHeaderTimeout"),
      minBodyRate: num(options.minBodyRate, 240, "minBodyRate"),
      minResponseRate: num(options.minResponseRate, 240, "minResponseRate"),
      minRateGrace: num(options.minRateGracePeriod, 5_000, "minRateGracePeriod"),
      readTimeout: num(options.readTimeout, 60_000, "readTimeout"),
      writeTimeout: num(options.writeTimeout, 30_000, "writeTimeout"),
      idleTimeout: num(options.idleTimeout, 60_000, "idleTimeout"),
      keepAlive: options.keepAlive ?? true,
      proxyProtocol: options.proxyProtocol ?? false,
      scheme: this.#tls ? "https" : "http",
      draining: false,
      conns: new Set(),
      activeRequests: 0,
      onIdle: () => this.#idle?.(),
      log: (msg, err) => console.error(`connctx: ${msg}`, ...(err === undefined ? [] : [err])),
      unref: false,
      isolate: freshAsyncContext(),
      observer: telemetryFor(options.telemetry),
      accessLog: accessLogFor(options.accessLog),
      http2: h2 === null ? null : (c, ctx, b) => serveHttp2(c, ctx, b, h2),
    };
    this.#core = core;
    const timeouts = [
      core.readHeaderTimeout,
      core.readTimeout,
      core.writeTimeout,
      core.idleTimeout,
      core.minBodyRate > 0 || core.minResponseRate > 0 ? core.minRateGrace : 0,
    ].filter((t) => t > 0);
    if (timeouts.length > 0) {
      const tick = Math.min(1000, Math.max(5, Math.floor(Math.min(...timeouts) / 4)));
      const id = setInterval(() => this.#sweep(), tick);
      Deno.unrefTimer(id as unknown as number);
      this.#sweeper = id;
    }
    options.signal?.addEventListener("abort", () => void this.shutdown(), { once: true });
    if (options.signal?.aborted) queueMicrotask(() => void this.shutdown());
    (options.onListen ?? defaultOnListen)(this.addr);
    this.#acceptLoop = this.#accept();
  }

  get openConnections(): number {
    return this.#core.conns.size;
  }
  get activeRequests(): number {
    return this.#core.activeRequests;
  }

  #sweep(): void {
    const now = Date.now();
    for (const c of this.#core.conns) {
      if (c.deadline !== 0 && now >= c.deadline) {
        c.deadline = 0;
        c.proto.timeout();
      }
    }
  }

  async #accept(): Promise<void> {
    const core = this.#core;
    // Isolation loads lazily (once per process, a few ms): no request runs
    // before it is in place.
    await core.isolate.ready;
    let backoff = 0;
    while (this.#listening) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
        backoff = 0;
      } catch (e) {
        if (!this.#listening || e instanceof Deno.errors.BadResource) break;
        if (e instanceof Deno.errors.Interrupted) break;
        // Out of file descriptors and the like: back off and retry, as Go does.
        backoff = backoff === 0 ? 5 : Math.min(backoff * 2, 1000);
        core.log(`accept failed; retrying in ${backoff} ms`, e);
        await new Promise((r) => setTimeout(r, backoff));
        continue;
      }
      if (core.draining) {
        conn.close();
        continue;
      }
      if (this.#tls) this.#handshake(conn as Deno.TlsConn);
      else Http1Conn.start(Connection.accept(core, conn));
    }
  }

  async #handshake(conn: Deno.TlsConn): Promise<void> {
    const core = this.#core;
    const t = core.readHeaderTimeout > 0
      ? setTimeout(() => conn.close(), core.readHeaderTimeout)
      : undefined;
    try {
      const hs = await conn.handshake();
      const c = Connection.accept(core, conn, { alpnProtocol: hs.alpnProtocol });
      if (hs.alpnProtocol === "h2" && core.http2 !== null) {
        const ctx = c.open();
        if (ctx === null) c.close();
        else core.http2(c, ctx, new Uint8Array(0));
      } else Http1Conn.start(c);
    } catch {
      try {
        conn.close();
      } catch { /* closed by the timer */ }
    } finally {
      clearTimeout(t);
    }
  }

  #stopListening(): void {
    if (!this.#listening) return;
    this.#listening = false;
    try {
      this.#listener.close();
    } catch { /* already closed */ }
  }

  #finish(): void {
    if (this.#sweeper !== undefined) clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    this.#acceptLoop.then(() => this.#resolveFinished());
  }

  shutdown(ctx: Context = background()): Promise<void> {
    if (this.#shutdown !== null) return this.#shutdown;
    const core = this.#core;
    core.draining = true;
    for (const h of this.#hooks) queueMicrotask(() => this.#runHook(h));
    this.#hooks = [];
    this.#stopListening();
    this.#shutdown = (async () => {
      const idle = new Promise<void>((r) => (this.#idle = r));
      for (const c of [...core.conns]) c.proto.closeIfIdle();
      if (core.conns.size > 0) {
        if (ctx.err === undefined) await Promise.race([idle, ctx.done]);
        if (core.conns.size > 0) {
          const why = new CanceledError(
            `server shutdown: ${ctx.err?.message ?? "canceled"}; request cut off`,
          );
          for (const c of [...core.conns]) c.proto.abort(why);
        }
      }
      this.#finish();
      await this.finished;
    })();
    return this.#shutdown;
  }

  close(): void {
    const core = this.#core;
    core.draining = true;
    this.#stopListening();
    const why = new CanceledError("server closed");
    for (const c of [...core.conns]) c.proto.abort(why);
    this.#shutdown ??= (this.#finish(), this.finished);
  }

  registerOnShutdown(fn: () => void): void {
    if (this.#core.draining) queueMicrotask(() => this.#runHook(fn));
    else this.#hooks.push(fn);
  }

  /** Runs a shutdown hook; its failure is logged, never thrown. */
  #runHook(fn: () => void): void {
    const fail = (e: unknown) => this.#core.log("registerOnShutdown hook failed", e);
    try {
      const r: unknown = fn();
      if (r instanceof Promise) r.catch(fail);
    } catch (e) {
      fail(e);
    }
  }

  ref(): void {
    this.#core.unref = false;
    this.#listener.ref();
    for (const c of this.#core.conns) c.conn.ref();
  }

  unref(): void {
    this.#core.unref = true;
    this.#listener.unref();
    for (const c of this.#core.conns) c.conn.unref();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }
}

function defaultOnListen(addr: Deno.Addr): void {
  if (addr.transport === "unix" || addr.transport === "unixpacket") {
    console.log(`Listening on ${addr.path}`);
    return;
  }
  const a = addr as Deno.NetAddr;
  const host = a.hostname.includes(":") ? `[${a.hostname}]` : a.hostname;
  const shown = a.hostname === "0.0.0.0" || a.hostname === "::" ? "localhost" : host;
  console.log(`Listening on http://${host}:${a.port}/ (http://${shown}:${a.port}/)`);
}
