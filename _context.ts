// Copyright 2026 the connctx authors. MIT license.

// The implementation behind `context.ts`. Private to the package: the
// underscore-prefixed exports at the bottom are for `server.ts` and tests.

/**
 * The error returned by {@linkcode Context.err} when a context is canceled
 * (Go's `context.Canceled`). Every canceled context returns the same instance,
 * so `err instanceof CanceledError` and `err === ctx.err` both work.
 *
 * @example
 * ```ts
 * import { background, CanceledError, withCancel } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const { ctx, cancel } = withCancel(background());
 * cancel();
 * assert.ok(ctx.err instanceof CanceledError);
 * ```
 */
export class CanceledError extends Error {
  /** Creates the error. Prefer comparing with `instanceof`.
   *
   * @param message The message; defaults to Go's `"context canceled"`.
   */
  constructor(message = "context canceled") {
    super(message);
    this.name = "CanceledError";
  }
}

/**
 * The error returned by {@linkcode Context.err} when a context's deadline
 * passes (Go's `context.DeadlineExceeded`).
 *
 * @example
 * ```ts
 * import { background, DeadlineExceededError, withDeadline } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const { ctx } = withDeadline(background(), Date.now() - 1);
 * assert.ok(ctx.err instanceof DeadlineExceededError);
 * ```
 */
export class DeadlineExceededError extends Error {
  /** Creates the error. Prefer comparing with `instanceof`.
   *
   * @param message The message; defaults to Go's `"context deadline exceeded"`.
   */
  constructor(message = "context deadline exceeded") {
    super(message);
    this.name = "DeadlineExceededError";
  }
}

const CANCELED = new CanceledError();
const DEADLINE_EXCEEDED = new DeadlineExceededError();

/**
 * A typed, unforgeable key for {@linkcode withValue}. Two keys are equal only
 * if they are the same object, so packages cannot collide.
 *
 * @typeParam T The type of the value stored under this key.
 *
 * @example
 * ```ts
 * import { background, ContextKey, withValue } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const USER = new ContextKey<string>("user");
 * const ctx = withValue(background(), USER, "ada");
 * const user: string | undefined = ctx.value(USER);
 * assert.equal(user, "ada");
 * ```
 */
export class ContextKey<T> {
  /** A description used in `toString()` and debugging output. */
  readonly name: string;
  /** Phantom field that makes the key's value type part of its type. */
  declare readonly _type?: T;
  /**
   * Creates a new key.
   *
   * @param name A description for debugging; it is not used for lookup.
   */
  constructor(name: string) {
    this.name = name;
  }
  /**
   * Describes the key.
   *
   * @returns `ContextKey(name)`.
   */
  toString(): string {
    return `ContextKey(${this.name})`;
  }
}

/**
 * A context: a cancellation signal, a deadline and values, immutable once made.
 *
 * @example
 * ```ts
 * import { background, type Context } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * function work(ctx: Context): string {
 *   if (ctx.err) return "stopped";
 *   return "working";
 * }
 * assert.equal(work(background()), "working");
 * ```
 */
export interface Context {
  /** An `AbortSignal` that aborts when the context is canceled or its
   * deadline passes; its `reason` is the cancel cause. */
  readonly signal: AbortSignal;
  /** The deadline as epoch milliseconds, or `undefined` if there is none. */
  readonly deadline: number | undefined;
  /** `undefined` while the context is live; then a {@linkcode CanceledError}
   * or {@linkcode DeadlineExceededError}. Once set it never changes. */
  readonly err: Error | undefined;
  /** Settles (never rejects) when `err` becomes set. */
  readonly done: Promise<void>;
  /** The value stored under `key` by this context or its nearest ancestor. */
  value<T>(key: ContextKey<T>): T | undefined;
  /** The value stored under any key, compared with `===`, like Go. */
  value(key: unknown): unknown;
}

/**
 * A cancelable context and the function that cancels it. Disposable: with
 * `using`, leaving the scope cancels it, so a forgotten cancel cannot leak.
 *
 * @example
 * ```ts
 * import { background, withCancel } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const scope = withCancel(background());
 * scope.cancel();
 * scope.cancel(); // canceling twice is a no-op
 * assert.ok(scope.ctx.err);
 * ```
 */
export interface CancelScope extends Disposable {
  /** The derived context. */
  readonly ctx: Context;
  /** Cancels `ctx` and all of its descendants. Safe to call more than once. */
  cancel(): void;
}

/**
 * A {@linkcode CancelScope} whose `cancel` records a cause, read back with
 * {@linkcode cause}.
 *
 * @example
 * ```ts
 * import { background, cause, withCancelCause } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const { ctx, cancel } = withCancelCause(background());
 * cancel(new Error("client went away"));
 * assert.equal((cause(ctx) as Error).message, "client went away");
 * ```
 */
export interface CancelCauseScope extends CancelScope {
  /**
   * Cancels `ctx` with `cause`; the first cause wins.
   *
   * @param cause Why; defaults to the context's `err`.
   */
  cancel(cause?: unknown): void;
}

// ---------------------------------------------------------------------------
// Implementation. Every context is a `Node`. Fields are underscore-prefixed
// and assigned in the same order in every constructor to keep lookups fast.

const NO_KEY: unknown = Symbol("no key");
const NEVER_SIGNAL: AbortSignal = new AbortController().signal;
const NEVER_DONE: Promise<void> = new Promise<void>(() => {});
const OWNER = Symbol("connctx.context");

type Finalized = { parent: CancelNode; ref: WeakRef<CancelNode> };
const registry = new FinalizationRegistry<Finalized>((h) => {
  h.parent._kids?.delete(h.ref);
});

abstract class Node implements Context {
  /** Parent for value lookup; `null` at a root. */
  _parent: Node | null;
  /** Key stored by a value node, `NO_KEY` otherwise. */
  _key: unknown;
  _val: unknown;
  /** Nearest cancelable node, this one included; `null` if never canceled. */
  _cn: CancelNode | null;

  constructor(parent: Node | null, key: unknown, val: unknown, cn: CancelNode | null) {
    this._parent = parent;
    this._key = key;
    this._val = val;
    this._cn = cn;
  }

  value(key: unknown): unknown {
    // deno-lint-ignore no-this-alias
    let c: Node = this;
    for (;;) {
      if (c._key === key) return c._val;
      const p: Node | null = c._parent;
      if (p === null) return c._rootValue(key);
      c = p;
    }
  }

  /** The next node to search; foreign adapters answer by themselves. */
  /** Where a lookup ends: nothing, except for an adapted foreign context. */
  _rootValue(_key: unknown): unknown {
    return undefined;
  }

  get signal(): AbortSignal {
    const cn = this._cn;
    return cn === null ? NEVER_SIGNAL : cn.signal;
  }
  get deadline(): number | undefined {
    const cn = this._cn;
    return cn === null ? undefined : cn._deadline;
  }
  get err(): Error | undefined {
    const cn = this._cn;
    return cn === null ? undefined : cn.err;
  }
  get done(): Promise<void> {
    const cn = this._cn;
    return cn === null ? NEVER_DONE : cn.done;
  }
}

class RootNode extends Node {
  readonly #name: string;
  constructor(name: string) {
    super(null, NO_KEY, undefined, null);
    this.#name = name;
  }
  override toString(): string {
    return `context.${this.#name}`;
  }
}

class ValueNode extends Node {
  override toString(): string {
    return `${this._parent}.withValue(${String(this._key)})`;
  }
}

class WithoutCancelNode extends Node {
  override toString(): string {
    return `${this._parent}.withoutCancel`;
  }
}

/** An entry registered by `afterFunc`. */
type After = { fn: () => void; state: 0 | 1 | 2 }; // 0 waiting, 1 ran, 2 stopped

class CancelNode extends Node {
  /** Parent's nearest cancelable node, which cancels this one. */
  _pc: CancelNode | null;
  _err: Error | undefined = undefined;
  _cause: unknown = undefined;
  /** When it was canceled (epoch ms), to order a parent's cancel against a
   * deadline that a lazily pulled `err` discovers later. */
  _at = 0;
  /** Effective deadline: the earlier of the parent's and our own. */
  _deadline: number | undefined;
  /** True if `_deadline` is ours (so we own its timer). */
  _ownDeadline: boolean;
  _deadlineCause: unknown;
  _timer: ReturnType<typeof setTimeout> | undefined = undefined;
  _ctrl: AbortController | null = null;
  _done: Promise<void> | null = null;
  _resolve: (() => void) | null = null;
  /** Registered children, held weakly. */
  _kids: Set<WeakRef<CancelNode>> | null = null;
  /** Children that must stay alive until canceled (pending done/afterFunc). */
  _pins: Set<CancelNode> | null = null;
  _afters: Set<After> | null = null;
  /** Our handle in the parent's `_kids`, when registered. */
  _ref: WeakRef<CancelNode> | null = null;
  /** Whether the parent pins us. */
  _pinned = false;
  /** Whether `done` was asked for (a reason to be pinned). */
  _doneWanted = false;
  /** Made by the server, which always cancels it: held strongly, without
   * the WeakRef and FinalizationRegistry bookkeeping. */
  _owned = false;

  constructor(parent: Node, deadline: number | undefined, deadlineCause: unknown) {
    super(parent, NO_KEY, undefined, null);
    this._cn = this;
    const pc = parent._cn;
    this._pc = pc;
    const inherited = pc === null ? undefined : pc._deadline;
    if (deadline !== undefined && (inherited === undefined || deadline < inherited)) {
      this._deadline = deadline;
      this._ownDeadline = true;
    } else {
      this._deadline = inherited;
      this._ownDeadline = false;
    }
    this._deadlineCause = deadlineCause;
  }

  override get err(): Error | undefined {
    return this._err ?? this._pull();
  }

  /** Discovers a cancellation that was not pushed to us: the parent's, or our
   * own deadline. Unobserved children are never pushed to. */
  _pull(): Error | undefined {
    // Fast path, no allocation: nothing above us is canceled or expired.
    // deno-lint-ignore no-this-alias
    let m: CancelNode = this;
    let now = 0;
    for (;;) {
      if (m._ownDeadline) {
        if (now === 0) now = Date.now();
        if (now >= m._deadline!) break;
      }
      const pc = m._pc;
      if (pc === null) {
        if (m._foreignErr() === undefined) return undefined;
        break;
      }
      if (pc._err !== undefined) break;
      m = pc;
    }
    // Iterative: collect the unpulled chain, then settle it top-down.
    const path: CancelNode[] = [];
    // deno-lint-ignore no-this-alias
    let n: CancelNode = this;
    for (;;) {
      path.push(n);
      const pc = n._pc;
      if (pc === null || pc._err !== undefined) break;
      n = pc;
    }
    for (let k = path.length - 1; k >= 0; k--) if (path[k]._err === undefined) path[k]._pullOne();
    return this._err;
  }

  _pullOne(): Error | undefined {
    const pc = this._pc;
    let perr: Error | undefined;
    if (pc !== null) perr = pc._err;
    else perr = this._foreignErr();
    const dl = this._ownDeadline ? this._deadline! : undefined;
    if (perr !== undefined) {
      const at = pc === null ? Date.now() : pc._at;
      if (dl !== undefined && dl < at) {
        this._cancel(DEADLINE_EXCEEDED, this._deadlineCause, true, dl);
      } else {
        this._cancel(perr, pc === null ? this._foreignCause() : pc._cause, true, at);
      }
      return this._err;
    }
    if (dl !== undefined && Date.now() >= dl) {
      this._cancel(DEADLINE_EXCEEDED, this._deadlineCause, true, dl);
      return this._err;
    }
    return undefined;
  }

  _foreignErr(): Error | undefined {
    return undefined;
  }
  _foreignCause(): unknown {
    return undefined;
  }

  override get signal(): AbortSignal {
    let ctrl = this._ctrl;
    if (ctrl === null) {
      ctrl = this._ctrl = new AbortController();
      // The signal keeps its context alive: a listener on a signal that is
      // still reachable must still fire when an ancestor is canceled.
      (ctrl.signal as unknown as Record<symbol, unknown>)[OWNER] = this;
      if (this.err !== undefined) ctrl.abort(this._cause);
      else this._observe(false);
    }
    return ctrl.signal;
  }

  override get done(): Promise<void> {
    let d = this._done;
    if (d === null) {
      d = this._done = new Promise<void>((r) => (this._resolve = r));
      if (this.err !== undefined) {
        this._resolve?.();
        this._resolve = null;
      } else {
        this._doneWanted = true;
        this._observe(true);
      }
    }
    return d;
  }

  override get deadline(): number | undefined {
    return this._deadline;
  }

  /** Makes sure a cancellation will be pushed to us: registers with the
   * parent (weakly, or strongly when `pin`) and arms our deadline timer. */
  _observe(pin: boolean): void {
    // deno-lint-ignore no-this-alias
    let n: CancelNode = this;
    for (;;) {
      if (n._err !== undefined) return;
      if (n._ownDeadline && n._timer === undefined) {
        const node = n;
        const dl = n._deadline!;
        n._timer = setTimeout(() => {
          node._timer = undefined;
          node._cancel(DEADLINE_EXCEEDED, node._deadlineCause, true, dl);
        }, Math.max(0, dl - Date.now()));
      }
      const pc = n._pc;
      if (pc === null) {
        n._observeForeign();
        return;
      }
      if (n._owned) {
        if (!n._pinned) {
          n._pinned = true;
          (pc._pins ??= new Set()).add(n);
        }
      } else if (n._ref === null) {
        const ref = new WeakRef<CancelNode>(n);
        n._ref = ref;
        (pc._kids ??= new Set()).add(ref);
        registry.register(n, { parent: pc, ref });
      }
      if (pin && !n._pinned) {
        n._pinned = true;
        (pc._pins ??= new Set()).add(n);
      }
      n = pc;
    }
  }

  _observeForeign(): void {}

  /** Reconsiders whether the parent must hold us strongly. */
  _unpinIfIdle(): void {
    // deno-lint-ignore no-this-alias
    let n: CancelNode | null = this;
    while (n !== null) {
      if (!n._pinned || n._doneWanted || n._owned) return;
      if ((n._afters?.size ?? 0) > 0 || (n._pins?.size ?? 0) > 0) return;
      n._pinned = false;
      const pc: CancelNode | null = n._pc;
      pc?._pins?.delete(n);
      n = pc;
    }
  }

  _cancel(err: Error, cause: unknown, detach: boolean, at?: number): void {
    if (this._err !== undefined) return;
    const work: CancelNode[] = [];
    this._cancelOne(err, cause, at ?? Date.now(), work);
    if (detach) this._detach();
    else this._release();
    for (let k = work.pop(); k !== undefined; k = work.pop()) {
      if (k._err !== undefined) continue;
      const p = k._pc!;
      k._cancelOne(err, p._cause, p._at, work);
      k._release();
    }
  }

  _cancelOne(err: Error, cause: unknown, at: number, work: CancelNode[]): void {
    this._err = err;
    this._cause = cause === undefined ? err : cause;
    this._at = at;
    if (this._timer !== undefined) {
      clearTimeout(this._timer);
      this._timer = undefined;
    }
    this._ctrl?.abort(this._cause);
    if (this._resolve !== null) {
      this._resolve();
      this._resolve = null;
    }
    const afters = this._afters;
    if (afters !== null) {
      this._afters = null;
      for (const a of afters) runAfter(a);
    }
    const kids = this._kids;
    const pins = this._pins;
    this._kids = null;
    this._pins = null;
    if (kids !== null) {
      for (const ref of kids) {
        const k = ref.deref();
        if (k !== undefined) work.push(k);
      }
    }
    if (pins !== null) { for (const k of pins) work.push(k); }
  }

  /** Leaves the parent's bookkeeping (we were canceled on our own). */
  _detach(): void {
    const pc = this._pc;
    if (pc !== null) {
      if (this._ref !== null) pc._kids?.delete(this._ref);
      if (this._pinned) {
        pc._pins?.delete(this);
        pc._unpinIfIdle();
      }
    }
    this._release();
    this._detachForeign();
  }

  /** Drops our own registration handles (the parent cleared its sets). */
  _release(): void {
    this._ref = null;
    this._pinned = false;
  }

  _detachForeign(): void {}

  override toString(): string {
    return `${this._parent}.withCancel`;
  }
}

/** Adapts a context implemented outside this module. */
class ForeignNode extends CancelNode {
  readonly _foreign: Context;
  _listener: (() => void) | null = null;
  constructor(foreign: Context) {
    super(BACKGROUND, foreign.deadline, undefined);
    this._foreign = foreign;
    this._ownDeadline = false; // the foreign context enforces its own deadline
    this._parent = null; // lookups end here and ask the foreign context
  }
  override _rootValue(key: unknown): unknown {
    return this._foreign.value(key);
  }
  override _foreignErr(): Error | undefined {
    return this._foreign.err;
  }
  override _foreignCause(): unknown {
    const s = this._foreign.signal;
    return s.aborted ? s.reason : undefined;
  }
  override _observeForeign(): void {
    if (this._listener !== null) return;
    const l = () => this.err;
    this._listener = l;
    this._foreign.signal.addEventListener("abort", l, { once: true });
  }
  override _detachForeign(): void {
    if (this._listener !== null) {
      this._foreign.signal.removeEventListener("abort", this._listener);
      this._listener = null;
    }
  }
}

function runAfter(a: After): void {
  if (a.state !== 0) return;
  a.state = 1;
  queueMicrotask(() => {
    try {
      a.fn();
    } catch (e) {
      reportError(e);
    }
  });
}

const BACKGROUND: Node = new RootNode("background");
const TODO: Node = new RootNode("todo");

function asNode(ctx: Context): Node {
  if (ctx instanceof Node) return ctx;
  if (ctx === null || typeof ctx !== "object" || typeof ctx.value !== "function") {
    throw new TypeError("parent is not a Context");
  }
  let f = foreignNodes.get(ctx);
  if (f === undefined) foreignNodes.set(ctx, f = new ForeignNode(ctx));
  return f;
}
const foreignNodes = new WeakMap<Context, ForeignNode>();

/**
 * Reports whether `x` is a {@linkcode Context} made by this module.
 *
 * @param x Anything.
 * @returns `true` for contexts from `background()` and the `with*` functions.
 *
 * @example
 * ```ts
 * import { background, isContext } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * assert.ok(isContext(background()));
 * assert.ok(!isContext({}));
 * ```
 */
export function isContext(x: unknown): x is Context {
  return x instanceof Node;
}

/**
 * The root of every context tree: never canceled, no values, no deadline.
 * It holds no children, so deriving from it never leaks.
 *
 * @returns The one shared background context.
 *
 * @example
 * ```ts
 * import { background } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(background().err, undefined);
 * assert.equal(background().deadline, undefined);
 * ```
 */
export function background(): Context {
  return BACKGROUND;
}

/**
 * Like {@linkcode background}, as a placeholder where the right context is
 * not yet plumbed through.
 *
 * @returns The shared TODO context.
 *
 * @example
 * ```ts
 * import { todo } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(todo().err, undefined);
 * ```
 */
export function todo(): Context {
  return TODO;
}

/**
 * Derives a context that carries `value` under `key`. The parent is not
 * changed and never references the child.
 *
 * @typeParam T The value's type.
 * @param parent The context to derive from.
 * @param key A {@linkcode ContextKey} (or any non-null value, compared with `===`).
 * @param value The value.
 * @returns The derived context.
 *
 * @example
 * ```ts
 * import { background, ContextKey, withValue } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const ID = new ContextKey<number>("id");
 * const parent = background();
 * const child = withValue(parent, ID, 7);
 * assert.equal(child.value(ID), 7);
 * assert.equal(parent.value(ID), undefined);
 * ```
 */
export function withValue<T>(parent: Context, key: ContextKey<T>, value: T): Context;
/**
 * Derives a context that carries `value` under an arbitrary key.
 *
 * @param parent The context to derive from.
 * @param key Any non-null value, compared with `===`.
 * @param value The value.
 * @returns The derived context.
 *
 * @example
 * ```ts
 * import { background, withValue } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const key = Symbol("k");
 * assert.equal(withValue(background(), key, 1).value(key), 1);
 * ```
 */
export function withValue(parent: Context, key: unknown, value: unknown): Context;
export function withValue(parent: Context, key: unknown, value: unknown): Context {
  if (key === null || key === undefined) throw new TypeError("context key is null or undefined");
  const p = asNode(parent);
  return new ValueNode(p, key, value, p._cn);
}

class Scope implements CancelCauseScope {
  readonly ctx: Context;
  readonly cancel: (cause?: unknown) => void;
  constructor(node: CancelNode, withCause: boolean) {
    this.ctx = node;
    this.cancel = withCause
      ? (cause?: unknown) => {
        if (node.err === undefined) node._cancel(CANCELED, cause, true);
      }
      : () => {
        if (node.err === undefined) node._cancel(CANCELED, undefined, true);
      };
  }
  [Symbol.dispose](): void {
    this.cancel();
  }
}

/**
 * Derives a cancelable context. Calling `cancel` (or leaving a `using` block)
 * cancels it and its descendants and releases everything it holds.
 *
 * @param parent The context to derive from; its cancellation propagates down.
 * @returns The scope: `{ ctx, cancel }`, disposable.
 *
 * @example
 * ```ts
 * import { background, CanceledError, withCancel } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const parent = withCancel(background());
 * const child = withCancel(parent.ctx);
 * parent.cancel();
 * assert.ok(child.ctx.err instanceof CanceledError);
 * assert.ok(child.ctx.signal.aborted);
 * ```
 */
export function withCancel(parent: Context): CancelScope {
  return new Scope(new CancelNode(asNode(parent), undefined, undefined), false);
}

/**
 * Like {@linkcode withCancel}, but `cancel(cause)` records why; read it with
 * {@linkcode cause}. The context's `signal.reason` is the cause too.
 *
 * @param parent The context to derive from.
 * @returns The scope: `{ ctx, cancel(cause?) }`, disposable.
 *
 * @example
 * ```ts
 * import { background, cause, withCancelCause } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const why = new Error("shutting down");
 * const { ctx, cancel } = withCancelCause(background());
 * cancel(why);
 * assert.equal(cause(ctx), why);
 * assert.equal(ctx.signal.reason, why);
 * ```
 */
export function withCancelCause(parent: Context): CancelCauseScope {
  return new Scope(new CancelNode(asNode(parent), undefined, undefined), true);
}

/**
 * Derives a context canceled at `at` (or earlier, when the parent is). The
 * earliest deadline in the chain wins. Its timer exists only while someone
 * observes the context and is cleared on cancel.
 *
 * @param parent The context to derive from.
 * @param at The deadline, as a `Date` or epoch milliseconds.
 * @param cause Optional cause reported by {@linkcode cause} when it expires.
 * @returns The scope: `{ ctx, cancel }`, disposable.
 *
 * @example
 * ```ts
 * import { background, withDeadline } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const at = Date.now() + 60_000;
 * using scope = withDeadline(background(), at);
 * assert.equal(scope.ctx.deadline, at);
 * ```
 */
export function withDeadline(parent: Context, at: Date | number, cause?: unknown): CancelScope {
  const ms = typeof at === "number" ? at : at.getTime();
  if (Number.isNaN(ms)) throw new TypeError("invalid deadline");
  const node = new CancelNode(asNode(parent), ms, cause);
  const pc = node._pc;
  const perr = pc !== null ? pc.err : node._foreignErr();
  if (perr !== undefined) {
    node._cancel(perr, pc !== null ? pc._cause : node._foreignCause(), true, pc?._at);
  } else if (node._ownDeadline && Date.now() >= ms) {
    node._cancel(DEADLINE_EXCEEDED, cause, true, ms);
  }
  return new Scope(node, false);
}

/**
 * Derives a context canceled `ms` milliseconds from now:
 * `withDeadline(parent, Date.now() + ms, cause)`.
 *
 * @param parent The context to derive from.
 * @param ms Milliseconds until the deadline.
 * @param cause Optional cause reported by {@linkcode cause} when it expires.
 * @returns The scope: `{ ctx, cancel }`, disposable.
 *
 * @example
 * ```ts
 * import { background, withTimeout } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * using scope = withTimeout(background(), 5_000);
 * assert.ok(scope.ctx.deadline! > Date.now());
 * ```
 */
export function withTimeout(parent: Context, ms: number, cause?: unknown): CancelScope {
  return withDeadline(parent, Date.now() + ms, cause);
}

/**
 * Derives a context that keeps the parent's values but is never canceled and
 * has no deadline (Go's `WithoutCancel`): for work that must outlive a
 * request, such as an audit log write.
 *
 * @param parent The context whose values to keep.
 * @returns The derived context.
 *
 * @example
 * ```ts
 * import { background, ContextKey, withCancel, withoutCancel, withValue } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const K = new ContextKey<string>("k");
 * const scope = withCancel(withValue(background(), K, "v"));
 * const detached = withoutCancel(scope.ctx);
 * scope.cancel();
 * assert.equal(detached.err, undefined);
 * assert.equal(detached.value(K), "v");
 * ```
 */
export function withoutCancel(parent: Context): Context {
  return new WithoutCancelNode(asNode(parent), NO_KEY, undefined, null);
}

/**
 * Arranges for `fn` to run once, in its own task (a microtask), after `ctx`
 * is done. If `ctx` is already done, `fn` is scheduled at once.
 *
 * @param ctx The context to watch.
 * @param fn The function to run.
 * @returns `stop`: cancels the arrangement and returns `true` if that
 * prevented `fn` from running; `false` if `fn` was already started or stopped.
 *
 * @example
 * ```ts
 * import { afterFunc, background, withCancel } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const { ctx, cancel } = withCancel(background());
 * let ran = false;
 * const stop = afterFunc(ctx, () => (ran = true));
 * cancel();
 * await ctx.done;
 * await Promise.resolve();
 * assert.ok(ran);
 * assert.equal(stop(), false);
 * ```
 */
export function afterFunc(ctx: Context, fn: () => void): () => boolean {
  const cn = asNode(ctx)._cn;
  const a: After = { fn, state: 0 };
  if (cn !== null) {
    if (cn.err !== undefined) runAfter(a);
    else {
      (cn._afters ??= new Set()).add(a);
      if (!cn._pinned && cn._pc !== null) {
        cn._pinned = true;
        (cn._pc._pins ??= new Set()).add(cn);
      }
      cn._observe(true);
    }
  }
  return () => {
    if (a.state !== 0) return false;
    a.state = 2;
    if (cn !== null && cn._afters !== null) {
      cn._afters.delete(a);
      cn._unpinIfIdle();
    }
    return true;
  };
}

/**
 * Why `ctx` was canceled (Go's `context.Cause`): the cause given to the first
 * cancel, or `ctx.err` if none was given; `undefined` while `ctx` is live.
 *
 * @param ctx The context.
 * @returns The cause, or `undefined`.
 *
 * @example
 * ```ts
 * import { background, cause, CanceledError, withCancel } from "./context.ts";
 * import assert from "node:assert/strict";
 *
 * const { ctx, cancel } = withCancel(background());
 * assert.equal(cause(ctx), undefined);
 * cancel();
 * assert.ok(cause(ctx) instanceof CanceledError);
 * ```
 */
export function cause(ctx: Context): unknown {
  const cn = asNode(ctx)._cn;
  if (cn === null || cn.err === undefined) return undefined;
  return cn._cause;
}

// ---------------------------------------------------------------------------
// Internal fast paths for the server (not re-exported from mod.ts).

/** @internal A cancelable child, without a scope object. */
export function _newCancelNode(parent: Context): CancelNode {
  const n = new CancelNode(asNode(parent), undefined, undefined);
  n._owned = true;
  return n;
}

/** @internal Cancels a node made by `_newCancelNode` (first cause wins). */
export function _cancelNode(node: CancelNode, cause?: unknown): void {
  if (node.err === undefined) node._cancel(CANCELED, cause, true);
}

/** @internal A value child, without checks (the key is never null). */
export function _newValueNode(parent: Context, key: unknown, value: unknown): Context {
  const p = parent as Node;
  return new ValueNode(p, key, value, p._cn);
}

/** @internal Number of children the context's cancel node holds (tests). */
export function _childCount(ctx: Context): number {
  const n = ctx as Node;
  if (n._cn !== n) return 0;
  const cn = n as CancelNode;
  let owned = 0;
  if (cn._pins !== null) { for (const k of cn._pins) if (k._owned) owned++; }
  return (cn._kids?.size ?? 0) + owned;
}

/** @internal Depth of a context chain (tests). */
export function _depth(ctx: Context): number {
  let d = 0;
  for (let c: Node | null = ctx as Node; c !== null; c = c._parent) d++;
  return d;
}

export type { CancelNode as _CancelNode };
