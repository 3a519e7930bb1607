// Copyright 2026 the connctx authors. MIT license.

/**
 * Multi-core serving: N Deno `Worker`s, each running its own {@linkcode serve}
 * on one shared port with `SO_REUSEPORT`, so the kernel spreads incoming
 * connections across them (Linux). One module plays both roles: in the main
 * thread it calls {@linkcode serveWorkers} with its own URL; in each worker it
 * calls {@linkcode serveWorker} with its handler.
 *
 * `SO_REUSEPORT` is an unstable Deno API: run with `--unstable-net` (or put
 * `"unstable": ["net"]` in deno.json). Without it {@linkcode serveWorkers}
 * rejects with a message saying so instead of letting Deno exit the process.
 *
 * @example One module, N workers
 * ```ts ignore
 * // app.ts — deno run --allow-net --unstable-net app.ts
 * import { isWorker, serveWorker, serveWorkers, workerId } from "./workers.ts";
 * import { background, withTimeout } from "./context.ts";
 *
 * if (isWorker()) {
 *   serveWorker((_req) => new Response(`hello from worker ${workerId()}\n`));
 * } else {
 *   const pool = await serveWorkers(import.meta.url, { workers: 4, port: 8000 });
 *   Deno.addSignalListener("SIGTERM", async () => {
 *     using deadline = withTimeout(background(), 10_000);
 *     await pool.shutdown(deadline.ctx);
 *     Deno.exit(0);
 *   });
 * }
 * ```
 *
 * @module
 */

import { background, type Context, withTimeout } from "./context.ts";
import { serve, type ServeHandler, type ServeOptions, type Server } from "./server.ts";

const NAME_PREFIX = "connctx-worker:";

/** What a worker learns from its name (set by {@linkcode serveWorkers}). */
interface WorkerConfig {
  id: number;
  port: number;
  hostname: string;
}

/** Messages between the pool and its workers. */
type ToWorker = { connctx: "shutdown"; timeoutMs: number | null } | { connctx: "cut" };
type FromWorker =
  | { connctx: "listening"; id: number; port: number }
  | { connctx: "error"; id: number; message: string }
  | { connctx: "finished"; id: number; graceful: boolean };

/** The worker global scope, as far as this module uses it. */
interface WorkerScope {
  name?: string;
  postMessage(message: FromWorker): void;
  addEventListener(type: "message", listener: (e: MessageEvent<ToWorker>) => void): void;
}

const scope = globalThis as unknown as WorkerScope;

function config(): WorkerConfig | null {
  const name = scope.name;
  if (typeof name !== "string" || !name.startsWith(NAME_PREFIX)) return null;
  if (!("WorkerGlobalScope" in globalThis)) return null;
  return JSON.parse(name.slice(NAME_PREFIX.length));
}

/**
 * Whether this code runs inside a worker started by {@linkcode serveWorkers}.
 *
 * @returns `true` in such a worker.
 *
 * @example
 * ```ts
 * import { isWorker } from "./workers.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isWorker(), false);
 * ```
 */
export function isWorker(): boolean {
  return config() !== null;
}

/**
 * This worker's number, `1` to `workers`; `0` outside a pool's worker.
 *
 * @returns The worker id.
 *
 * @example
 * ```ts
 * import { workerId } from "./workers.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(workerId(), 0);
 * ```
 */
export function workerId(): number {
  return config()?.id ?? 0;
}

/** Whether Deno was started with the unstable `Deno.listen({ reusePort })`. */
function hasReusePort(): boolean {
  // `--unstable-net` (or `"unstable": ["net"]`) exposes its other APIs too;
  // asking for `reusePort` without it makes Deno exit the process (code 70).
  return "listenDatagram" in Deno;
}

/**
 * {@linkcode ServeOptions} a worker may set: where it listens is the pool's.
 *
 * @example
 * ```ts
 * import type { WorkerServeOptions } from "./workers.ts";
 *
 * const options: WorkerServeOptions = { readHeaderTimeout: 5_000, keepAlive: true };
 * ```
 */
export type WorkerServeOptions = Omit<
  ServeOptions,
  "port" | "hostname" | "path" | "listener" | "cert" | "key" | "signal"
>;

/**
 * Serves in a worker of a pool: listens on the pool's port with
 * `SO_REUSEPORT` and runs {@linkcode serve} there. The pool shuts it down.
 *
 * @param handler Answers each request.
 * @returns The worker's server.
 */
export function serveWorker(handler: ServeHandler): Server;
/**
 * Serves in a worker of a pool, with options.
 *
 * @param options {@linkcode serve}'s options, except where to listen.
 * @param handler Answers each request.
 * @returns The worker's server.
 *
 * @example
 * ```ts ignore
 * import { serveWorker, workerId } from "./workers.ts";
 *
 * serveWorker({ idleTimeout: 30_000 }, () => new Response(`worker ${workerId()}`));
 * ```
 */
export function serveWorker(options: WorkerServeOptions, handler: ServeHandler): Server;
export function serveWorker(a: WorkerServeOptions | ServeHandler, b?: ServeHandler): Server {
  const cfg = config();
  if (cfg === null) {
    throw new Error("serveWorker() runs only in a worker started by serveWorkers()");
  }
  const options: WorkerServeOptions = typeof a === "function" ? {} : a;
  const handler = typeof a === "function" ? a : b;
  if (typeof handler !== "function") throw new TypeError("serveWorker() needs a handler");
  let server: Server;
  try {
    const listener = Deno.listen({
      hostname: cfg.hostname,
      port: cfg.port,
      transport: "tcp",
      reusePort: true,
    });
    server = serve({ onListen() {}, ...options, listener }, handler);
  } catch (e) {
    scope.postMessage({ connctx: "error", id: cfg.id, message: String(e) });
    throw e;
  }
  scope.addEventListener("message", (e) => {
    const msg = e.data;
    if (msg?.connctx === "cut") return void server.close();
    if (msg?.connctx !== "shutdown") return;
    const deadline = msg.timeoutMs === null ? null : withTimeout(background(), msg.timeoutMs);
    server.shutdown(deadline?.ctx).then(() => {
      const graceful = deadline === null || deadline.ctx.err === undefined;
      deadline?.cancel();
      scope.postMessage({ connctx: "finished", id: cfg.id, graceful });
    });
  });
  scope.postMessage({
    connctx: "listening",
    id: cfg.id,
    port: (server.addr as Deno.NetAddr).port,
  });
  return server;
}

/**
 * Options for {@linkcode serveWorkers}.
 *
 * @example
 * ```ts
 * import type { ServeWorkersOptions } from "./workers.ts";
 *
 * const options: ServeWorkersOptions = { workers: 2, port: 8000, hostname: "127.0.0.1" };
 * ```
 */
export interface ServeWorkersOptions {
  /** How many workers; default `navigator.hardwareConcurrency`. */
  workers?: number;
  /** TCP port; default `8000`. `0` picks a free port (the first worker's). */
  port?: number;
  /** Address to listen on; default `"0.0.0.0"`. */
  hostname?: string;
  /** Called once every worker listens; default logs the address. */
  onListen?: (addr: Deno.NetAddr, workers: number) => void;
  /** Called when a worker dies of an uncaught error after it started;
   * default logs it. (The other workers keep serving.) */
  onWorkerError?: (id: number, error: unknown) => void;
  /** Longest wait for a worker to call {@linkcode serveWorker}; default 30 000 ms. */
  startTimeout?: number;
}

/**
 * A running pool of workers, as returned by {@linkcode serveWorkers}.
 *
 * @example
 * ```ts ignore
 * import { serveWorkers } from "./workers.ts";
 *
 * // Needs --unstable-net; the module calls serveWorker() when isWorker().
 * await using pool = await serveWorkers(import.meta.url, { workers: 2, port: 8000 });
 * console.log(`${pool.workers} workers on port ${pool.addr.port}`);
 * ```
 */
export interface WorkerPool extends AsyncDisposable {
  /** The shared address. */
  readonly addr: Deno.NetAddr;
  /** How many workers were started. */
  readonly workers: number;
  /** Settles when every worker has stopped. */
  readonly finished: Promise<void>;
  /**
   * Graceful shutdown of every worker's server, like `Server.shutdown(ctx)`:
   * each worker stops accepting and lets in-flight requests finish until
   * `ctx` is done (its deadline is passed on to every worker; canceling it
   * cuts the remaining requests), then the workers are terminated. A number
   * is taken as a timeout in milliseconds (the 0.1 form).
   *
   * @param ctx Bounds the wait; default: wait as long as it takes.
   * @returns Whether every worker finished before `ctx` was done.
   */
  shutdown(ctx?: Context | number): Promise<boolean>;
  /** Terminates every worker at once (their connections are reset). */
  close(): void;
}

interface Handle {
  id: number;
  worker: Worker;
  listening: Promise<number>;
  finished: Promise<boolean>;
  done: boolean;
  /** Clears the start timeout. */
  stopTimer(): void;
}

/**
 * Starts `workers` Deno Workers running `moduleUrl`, each serving on the same
 * port with `SO_REUSEPORT` (the module calls {@linkcode serveWorker} when
 * {@linkcode isWorker} is true). Needs `--unstable-net` and Linux.
 *
 * @param moduleUrl The workers' module (usually `import.meta.url`).
 * @param options Port, address, worker count.
 * @returns The pool, once every worker listens.
 *
 * @example
 * ```ts ignore
 * import { serveWorkers } from "./workers.ts";
 * import { background, withTimeout } from "./context.ts";
 *
 * const pool = await serveWorkers(new URL("./app.ts", import.meta.url), { workers: 2, port: 8080 });
 * using deadline = withTimeout(background(), 5_000);
 * await pool.shutdown(deadline.ctx);
 * ```
 */
export async function serveWorkers(
  moduleUrl: string | URL,
  options: ServeWorkersOptions = {},
): Promise<WorkerPool> {
  if (!hasReusePort()) {
    throw new Error(
      "serveWorkers() needs SO_REUSEPORT, an unstable Deno API: run with --unstable-net " +
        '(or add "unstable": ["net"] to deno.json)',
    );
  }
  const count = options.workers ?? navigator.hardwareConcurrency;
  if (!Number.isInteger(count) || count < 1) {
    throw new TypeError("workers must be a positive integer");
  }
  const hostname = options.hostname ?? "0.0.0.0";
  const startTimeout = options.startTimeout ?? 30_000;
  const url = new URL(moduleUrl, `file://${Deno.cwd()}/`);
  const onWorkerError = options.onWorkerError ??
    ((id, e) => console.error(`connctx: worker ${id} failed:`, e));
  const handles: Handle[] = [];

  const start = (id: number, port: number): Handle => {
    const cfg: WorkerConfig = { id, port, hostname };
    const worker = new Worker(url, { type: "module", name: NAME_PREFIX + JSON.stringify(cfg) });
    let listening!: (port: number) => void;
    let failed!: (e: Error) => void;
    let finished!: (graceful: boolean) => void;
    const timer = setTimeout(
      () => failed(new Error(`worker ${id} did not call serveWorker() within ${startTimeout} ms`)),
      startTimeout,
    );
    const h: Handle = {
      id,
      worker,
      listening: new Promise<number>((res, rej) => {
        listening = res;
        failed = rej;
      }),
      finished: new Promise<boolean>((r) => (finished = r)),
      done: false,
      stopTimer: () => clearTimeout(timer),
    };
    let started = false;
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const msg = e.data;
      if (msg?.id !== id) return;
      if (msg.connctx === "listening") {
        started = true;
        clearTimeout(timer);
        listening(msg.port);
      } else if (msg.connctx === "error") {
        clearTimeout(timer);
        failed(new Error(`worker ${id} failed to start: ${msg.message}`));
      } else if (msg.connctx === "finished") {
        h.done = true;
        worker.terminate();
        finished(msg.graceful);
      }
    };
    worker.onerror = (e: ErrorEvent) => {
      // Handled here: an uncaught error in a worker must not end the process.
      e.preventDefault();
      clearTimeout(timer);
      const err = e.error ?? new Error(e.message);
      h.done = true;
      worker.terminate();
      finished(false);
      if (started) onWorkerError(id, err);
      else failed(new Error(`worker ${id} failed to start: ${err}`, { cause: err }));
    };
    h.listening.catch(() => {}).finally(() => clearTimeout(timer));
    return h;
  };

  const terminateAll = () => {
    for (const h of handles) {
      h.stopTimer();
      if (h.done) continue;
      h.done = true;
      h.worker.terminate();
    }
  };

  let port = options.port ?? 8000;
  try {
    // The first worker picks the port (when 0); the others join it.
    handles.push(start(1, port));
    port = await handles[0].listening;
    for (let id = 2; id <= count; id++) handles.push(start(id, port));
    await Promise.all(handles.map((h) => h.listening));
  } catch (e) {
    terminateAll();
    throw e;
  }

  const addr: Deno.NetAddr = { transport: "tcp", hostname, port };
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  Promise.all(handles.map((h) => h.finished)).then(() => resolveFinished());
  let shutdown: Promise<boolean> | null = null;

  const pool: WorkerPool = {
    addr,
    workers: count,
    finished,
    shutdown(arg?: Context | number): Promise<boolean> {
      if (shutdown !== null) return shutdown;
      const owned = typeof arg === "number" ? withTimeout(background(), arg) : null;
      const ctx = owned?.ctx ?? (arg as Context | undefined) ?? background();
      // Contexts do not cross workers: each gets the deadline; an earlier
      // cancel is sent as a message.
      const timeoutMs = ctx.deadline === undefined ? null : Math.max(0, ctx.deadline - Date.now());
      const msg: ToWorker = { connctx: "shutdown", timeoutMs };
      for (const h of handles) if (!h.done) h.worker.postMessage(msg);
      const all = Promise.all(handles.map((h) => h.finished)).then((gs) => gs.every(Boolean));
      let settled = false;
      ctx.done.then(() => {
        if (settled) return;
        for (const h of handles) if (!h.done) h.worker.postMessage({ connctx: "cut" });
      });
      // A worker whose event loop is stuck cannot answer: terminate it a
      // little after ctx is done.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = ctx.done.then(() =>
        new Promise<boolean>((r) => {
          if (settled) return r(true);
          timer = setTimeout(() => {
            terminateAll();
            r(false);
          }, 1_000);
        })
      );
      shutdown = Promise.race([all, grace]).then((graceful) => {
        settled = true;
        const inTime = graceful && ctx.err === undefined;
        clearTimeout(timer);
        owned?.cancel();
        terminateAll();
        resolveFinished();
        return inTime;
      });
      return shutdown;
    },
    close(): void {
      terminateAll();
      resolveFinished();
    },
    async [Symbol.asyncDispose](): Promise<void> {
      await pool.shutdown();
    },
  };
  (options.onListen ?? defaultOnListen)(addr, count);
  return pool;
}

function defaultOnListen(addr: Deno.NetAddr, workers: number): void {
  const host = addr.hostname.includes(":") ? `[${addr.hostname}]` : addr.hostname;
  console.log(`Listening on http://${host}:${addr.port}/ (${workers} workers)`);
}
