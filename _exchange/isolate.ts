// Copyright 2026 the connctx authors. MIT license.
// Owns: running user callbacks (handlers, connContext, connState, onError)
// in the async context the server started in, so that nothing one request
// leaves behind — an `AsyncLocalStorage` store entered with `enterWith`, an
// active span — is seen by the next request on the same connection (the
// seed's bug, in async-context form). Used by every protocol through
// `Core.isolate`.

import { internalsDisabled } from "./internals.ts";

/**
 * A function that runs its argument in the async context captured when it was
 * made; see {@linkcode freshAsyncContext}.
 */
export interface RunFresh {
  /**
   * Runs `fn` in the captured async context and restores the caller's after
   * it returns (its promise continuations keep the captured one).
   */
  <T>(fn: () => T): T;
  /** Settles once isolation is in place (`node:async_hooks` is loaded lazily,
   * a few ms after the first call of {@linkcode freshAsyncContext}); before
   * that `fn` runs in the caller's context. Never rejects. */
  readonly ready: Promise<void>;
}

interface AsyncScope {
  runInAsyncScope<T>(fn: () => T): T;
}
type AsyncResourceClass = new (type: string) => AsyncScope;

let asyncResource: AsyncResourceClass | undefined;
let asyncHooks: Promise<AsyncResourceClass | undefined> | undefined;

/**
 * Captures the current async context (every `AsyncLocalStorage` value and
 * the active OpenTelemetry span) and returns a function that runs a callback
 * in it. A server makes one at start and runs every handler through it, so
 * whatever a handler (or a body stream, or a callback) entered with
 * `AsyncLocalStorage.prototype.enterWith`, and whatever span was active, is
 * gone for the next request on the connection; as `Deno.serve` does.
 *
 * Built on the runtime's own async-context slots when a self-test shows they
 * work (about 12 ns a call, as `Deno.serve` itself restores them); else on
 * `AsyncResource` from `node:async_hooks`, imported on first use (≈15 ms
 * and a few MB, once per process, about 0.2 µs a call), so that importing
 * connctx without serving costs nothing; await `ready` before the first
 * request.
 *
 * @returns A {@linkcode RunFresh} bound to the context current now.
 *
 * @example Nothing entered in one call is seen in the next
 * ```ts
 * import { freshAsyncContext } from "./isolate.ts";
 * import { AsyncLocalStorage } from "node:async_hooks";
 * import assert from "node:assert/strict";
 *
 * const als = new AsyncLocalStorage<string>();
 * const runFresh = freshAsyncContext();
 * await runFresh.ready;
 * runFresh(() => als.enterWith("request 1"));
 * assert.equal(runFresh(() => als.getStore()), undefined);
 * ```
 */
export function freshAsyncContext(): RunFresh {
  const fast = coreAsyncContext();
  if (fast !== null) {
    // The runtime's own async-context slots, as Deno.serve restores them:
    // about 12 ns a call, where an AsyncResource costs about 200 ns (it also
    // runs the async_hooks before/after machinery).
    const snap = fast.getAsyncContext();
    const run = (<T>(fn: () => T): T => {
      const prev = fast.getAsyncContext();
      fast.setAsyncContext(snap);
      try {
        return fn();
      } finally {
        fast.setAsyncContext(prev);
      }
    }) as RunFresh;
    Object.defineProperty(run, "ready", { value: READY });
    return run;
  }
  let scope: AsyncScope | undefined;
  if (asyncResource !== undefined) scope = new asyncResource("connctx.request");
  asyncHooks ??= import("node:async_hooks").then(
    (m) => asyncResource = m.AsyncResource as unknown as AsyncResourceClass,
    () => undefined,
  );
  // A reaction runs in the async context current when it was registered (now),
  // so the resource made in it captures the caller's context.
  const ready = asyncHooks.then(() => {
    if (scope === undefined && asyncResource !== undefined) {
      scope = new asyncResource("connctx.request");
    }
  });
  const run = ((fn) => scope === undefined ? fn() : scope.runInAsyncScope(fn)) as RunFresh;
  Object.defineProperty(run, "ready", { value: ready });
  return run;
}

const READY: Promise<void> = Promise.resolve();

interface CoreAsync {
  getAsyncContext(): unknown;
  setAsyncContext(c: unknown): void;
}

let coreAsync: CoreAsync | null | undefined;

/**
 * The runtime's async-context accessors (`Deno[Deno.internal].core`), when
 * they exist and a self-test shows they behave as this module needs; else
 * `null` (then `AsyncResource` is used). `CONNCTX_NO_FAST_PATH=1` turns them
 * off, as it does the `Response` fast path.
 */
function coreAsyncContext(): CoreAsync | null {
  if (coreAsync !== undefined) return coreAsync;
  coreAsync = null;
  try {
    if (internalsDisabled()) return null;
    const d = Deno as unknown as Record<PropertyKey, unknown>;
    const internal = d[d.internal as PropertyKey] as { core?: Partial<CoreAsync> } | undefined;
    const core = internal?.core;
    if (
      typeof core?.getAsyncContext !== "function" || typeof core.setAsyncContext !== "function"
    ) return null;
    const c = core as CoreAsync;
    // Self-test: a value set inside is seen inside and gone outside.
    const before = c.getAsyncContext();
    const marker = {};
    c.setAsyncContext(marker);
    const inside = c.getAsyncContext();
    c.setAsyncContext(before);
    if (inside !== marker || c.getAsyncContext() !== before) return null;
    coreAsync = c;
  } catch {
    coreAsync = null;
  }
  return coreAsync;
}
