// Copyright 2026 the connctx authors. MIT license.

/**
 * Go's `context` package for TypeScript, bridged to the web platform's
 * {@linkcode AbortSignal}.
 *
 * A {@linkcode Context} carries a cancellation signal, an optional deadline and
 * request-scoped values across API boundaries. Contexts form a tree: deriving
 * never changes the parent, cancellation flows from a parent to all of its
 * descendants and never upward, and the earliest deadline wins.
 *
 * Leak rules this implementation keeps:
 *
 * - A parent never references a value-child (`withValue`): lookups walk up.
 * - A cancelable child is registered with its parent only once somebody
 *   observes it (reads `signal`/`done`, or calls {@linkcode afterFunc}); until
 *   then cancellation reaches it by being pulled when `err` is read. So a child
 *   that is created and dropped costs the parent nothing.
 * - A registered child is held *weakly* by its parent (a `WeakRef` cleaned up
 *   by a `FinalizationRegistry`), and it keeps its ancestors alive, not the
 *   other way round. A child dropped without being canceled is collected even
 *   while the parent lives. Only children with a pending `done` or
 *   `afterFunc` are held strongly, as in Go, until they are canceled.
 * - Canceling removes the child from its parent's bookkeeping and clears its
 *   timer. A scope is `Disposable`, so `using` cancels it on scope exit.
 *
 * @example Cancel a tree of work with `using`
 * ```ts
 * import { background, withTimeout } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * {
 *   using scope = withTimeout(background(), 1_000);
 *   assert.equal(scope.ctx.err, undefined);
 *   // pass scope.ctx.signal to fetch(), streams, timers...
 * } // scope exit: canceled, timer cleared
 * ```
 *
 * @module
 */

export {
  afterFunc,
  background,
  type CancelCauseScope,
  CanceledError,
  type CancelScope,
  cause,
  type Context,
  ContextKey,
  DeadlineExceededError,
  isContext,
  todo,
  withCancel,
  withCancelCause,
  withDeadline,
  withoutCancel,
  withTimeout,
  withValue,
} from "./_context.ts";
