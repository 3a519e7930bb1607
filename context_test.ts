// Copyright 2026 the connctx authors. MIT license.

// Tests for context.ts. Heap and GC assertions need a collector we can call:
//
//   deno test -A --v8-flags=--expose-gc context_test.ts
//
// Without it those assertions are skipped (with a message); everything else
// still runs.

import assert from "node:assert/strict";
// Kept inline so only this file changes; could move to deno.json "imports".
// deno-lint-ignore no-import-prefix
import fc from "npm:fast-check@3";
import {
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
} from "./context.ts";
import { _childCount, _depth } from "./_context.ts";

// ---------------------------------------------------------------------------
// Helpers

const realSetTimeout = globalThis.setTimeout;
const realClearTimeout = globalThis.clearTimeout;

/** Awaits `p`, failing if it has not settled within `ms`. A bound against
 * hangs, never an assertion about timing. */
async function within<T>(p: Promise<T>, what = "promise", ms = 2_000): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = realSetTimeout(() => reject(new Error(`${what} did not settle within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, bound]);
  } finally {
    realClearTimeout(timer);
  }
}

/** One macrotask turn: every queued microtask (and abort event) runs first. */
function tick(): Promise<void> {
  return new Promise((r) => realSetTimeout(r, 0));
}

/** Whether `p` has settled once the microtask queue has drained. */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(() => (done = true), () => (done = true));
  await tick();
  return done;
}

const gc = (globalThis as { gc?: () => void }).gc;
const HAS_GC = typeof gc === "function";
const MiB = 1024 * 1024;

function skipGc(what: string): void {
  console.log(`    [skipped: ${what} — gc unavailable, run with --v8-flags=--expose-gc]`);
}

/** Full collection. WeakRef targets are kept until the current job ends, and
 * finalizers run as tasks, so interleave macrotask turns. */
async function collect(rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    gc!();
    await tick();
  }
  gc!();
}

async function heapAfterGc(): Promise<number> {
  await collect();
  return Deno.memoryUsage().heapUsed;
}

/** Bounded retry: up to `rounds` of (gc, macrotask turn) until `cond()`.
 * `cond` may deref WeakRefs, which keeps their targets alive until the job
 * ends, so it is only ever followed by a turn, never directly by gc(). */
async function eventually(cond: () => boolean, rounds = 50): Promise<boolean> {
  for (let i = 0; i < rounds; i++) {
    if (cond()) return true;
    await tick();
    gc?.();
    await tick(); // finalizers run as tasks
  }
  return cond();
}

type TimerId = ReturnType<typeof setTimeout>;

/** Replaces the global timer functions (the module looks them up at call
 * time) to count pending timers. Disposing restores them and clears any
 * timer still pending, so a failing assertion does not also leak a timer. */
function trackTimers(): { readonly pending: number } & Disposable {
  const pending = new Set<TimerId>();
  const g = globalThis as unknown as Record<string, unknown>;
  g.setTimeout = (fn: (...a: unknown[]) => void, ms?: number, ...args: unknown[]) => {
    const id: TimerId = realSetTimeout(
      (...a: unknown[]) => {
        pending.delete(id);
        fn(...a);
      },
      ms,
      ...args,
    );
    pending.add(id);
    return id;
  };
  g.clearTimeout = (id: TimerId | undefined) => {
    if (id !== undefined) pending.delete(id);
    realClearTimeout(id);
  };
  return {
    get pending() {
      return pending.size;
    },
    [Symbol.dispose]() {
      g.setTimeout = realSetTimeout;
      g.clearTimeout = realClearTimeout;
      for (const id of pending) realClearTimeout(id);
      pending.clear();
    },
  };
}

const FOREIGN_ERR = new CanceledError("foreign context canceled");

interface Foreign {
  readonly ctx: Context;
  abort(reason?: unknown): void;
  /** abort listeners added minus removed on the foreign signal. */
  readonly listeners: number;
}

/** A Context implemented by hand, outside this module, over an AbortController. */
function foreignContext(
  opts: { values?: Map<unknown, unknown>; deadline?: number } = {},
): Foreign {
  const ac = new AbortController();
  const signal = ac.signal;
  const done = new Promise<void>((r) =>
    signal.addEventListener("abort", () => r(), { once: true })
  );
  let added = 0;
  let removed = 0;
  const add = signal.addEventListener.bind(signal);
  const remove = signal.removeEventListener.bind(signal);
  signal.addEventListener = ((...a: Parameters<typeof add>) => {
    added++;
    add(...a);
  }) as typeof add;
  signal.removeEventListener = ((...a: Parameters<typeof remove>) => {
    removed++;
    remove(...a);
  }) as typeof remove;
  const values = opts.values ?? new Map();
  const ctx = {
    signal,
    deadline: opts.deadline,
    done,
    get err() {
      return signal.aborted ? FOREIGN_ERR : undefined;
    },
    value: ((key: unknown) => values.get(key)) as Context["value"],
  } satisfies Context;
  return {
    ctx,
    abort: (reason?: unknown) => ac.abort(reason),
    get listeners() {
      return added - removed;
    },
  };
}

/** Reads `err` without the type narrowing an earlier assertion on it left. */
function errOf(ctx: Context): Error | undefined {
  return ctx.err;
}

const K_USER = new ContextKey<string>("user");
const K_ID = new ContextKey<number>("id");

// ---------------------------------------------------------------------------
// Errors, keys, isContext

Deno.test("CanceledError / DeadlineExceededError: names, Go messages, instanceof", () => {
  const c = new CanceledError();
  assert.ok(c instanceof Error);
  assert.equal(c.name, "CanceledError");
  assert.equal(c.message, "context canceled");
  assert.equal(new CanceledError("x").message, "x");
  const d = new DeadlineExceededError();
  assert.ok(d instanceof Error);
  assert.ok(!(d instanceof CanceledError));
  assert.ok(!(c instanceof DeadlineExceededError));
  assert.equal(d.name, "DeadlineExceededError");
  assert.equal(d.message, "context deadline exceeded");
});

Deno.test("ContextKey: name, toString, identity not name", () => {
  const a = new ContextKey<string>("same");
  const b = new ContextKey<string>("same");
  assert.equal(a.name, "same");
  assert.equal(String(a), "ContextKey(same)");
  const ctx = withValue(background(), a, "A");
  assert.equal(ctx.value(a), "A");
  assert.equal(ctx.value(b), undefined);
});

Deno.test("isContext: true for every module context, false otherwise", () => {
  using c = withCancel(background());
  using cc = withCancelCause(background());
  using t = withTimeout(background(), 60_000);
  using d = withDeadline(background(), Date.now() + 60_000);
  const all: Context[] = [
    background(),
    todo(),
    withValue(background(), K_ID, 1),
    c.ctx,
    cc.ctx,
    t.ctx,
    d.ctx,
    withoutCancel(c.ctx),
  ];
  for (const ctx of all) assert.ok(isContext(ctx), String(ctx));
  for (const x of [null, undefined, {}, 1, "ctx", new AbortController().signal]) {
    assert.equal(isContext(x), false);
  }
  assert.equal(isContext(foreignContext().ctx), false);
});

Deno.test("deriving from something that is not a Context throws TypeError", () => {
  for (const bad of [null, undefined, 42, "x", {}]) {
    assert.throws(() => withCancel(bad as unknown as Context), TypeError);
    assert.throws(() => withValue(bad as unknown as Context, K_ID, 1), TypeError);
  }
});

// ---------------------------------------------------------------------------
// background / todo

Deno.test("background/todo: never canceled, no deadline, no values, signal not aborted", async () => {
  assert.equal(background(), background());
  assert.equal(todo(), todo());
  assert.notEqual(background(), todo());
  for (const ctx of [background(), todo()]) {
    assert.equal(ctx.err, undefined);
    assert.equal(ctx.deadline, undefined);
    assert.equal(ctx.signal.aborted, false);
    assert.equal(ctx.value(K_USER), undefined);
    assert.equal(ctx.value("anything"), undefined);
    assert.equal(cause(ctx), undefined);
    assert.equal(await settled(ctx.done), false);
  }
});

Deno.test("background/todo: hold no children after many derivations", async () => {
  const refs: WeakRef<Context>[] = [];
  let afterFuncs = 0;
  (() => {
    for (let i = 0; i < 10_000; i++) {
      const root = i % 2 === 0 ? background() : todo();
      const s = i % 3 === 0 ? withTimeout(root, 60_000) : withCancel(root);
      void s.ctx.signal;
      if (i % 3 !== 0) void s.ctx.done; // would pin it, if anything held it
      if (i % 5 === 0) {
        afterFunc(s.ctx, () => {}); // its stop function is dropped too
        afterFuncs++;
      }
      void withValue(root, K_ID, i).signal;
      if (i % 3 === 0 || i % 7 === 0) s.cancel(); // timeouts must be canceled
      refs.push(new WeakRef(s.ctx));
    }
  })();
  assert.equal(_childCount(background()), 0);
  assert.equal(_childCount(todo()), 0);
  assert.equal(background().err, undefined);
  assert.equal(background().signal.aborted, false);
  if (!HAS_GC) return skipGc("collection of children dropped under background()");
  // Nothing under the roots is reachable any more: every child is collected.
  const ok = await eventually(() => refs.every((r) => r.deref() === undefined));
  assert.ok(ok, `${refs.filter((r) => r.deref() !== undefined).length} children still alive`);
  assert.equal(afterFuncs, 2_000);
});

// ---------------------------------------------------------------------------
// withValue

Deno.test("withValue: typed lookup, parent unchanged, missing key", () => {
  const parent = withValue(background(), K_ID, 7);
  const child = withValue(parent, K_USER, "ada");
  const user: string | undefined = child.value(K_USER);
  const id: number | undefined = child.value(K_ID);
  assert.equal(user, "ada");
  assert.equal(id, 7);
  assert.equal(parent.value(K_USER), undefined, "parent must not see the child's value");
  assert.equal(parent.value(K_ID), 7);
  assert.equal(background().value(K_ID), undefined);
  assert.equal(child.value(new ContextKey<string>("user")), undefined);
});

Deno.test("withValue: shadowing — the nearest ancestor wins, outer context keeps its own", () => {
  const outer = withValue(background(), K_USER, "outer");
  const mid = withValue(outer, K_ID, 1);
  const inner = withValue(mid, K_USER, "inner");
  assert.equal(inner.value(K_USER), "inner");
  assert.equal(inner.value(K_ID), 1);
  assert.equal(mid.value(K_USER), "outer");
  assert.equal(outer.value(K_USER), "outer");
  // Storing undefined / null shadows too (Go returns the nil stored nearest).
  assert.equal(withValue(inner, K_USER, undefined as unknown as string).value(K_USER), undefined);
  assert.equal(withValue(inner, K_USER, null as unknown as string).value(K_USER), null);
  // Siblings do not see each other.
  const a = withValue(outer, K_ID, 10);
  const b = withValue(outer, K_ID, 20);
  assert.equal(a.value(K_ID), 10);
  assert.equal(b.value(K_ID), 20);
});

Deno.test("withValue: null or undefined key throws TypeError; other falsy keys work", () => {
  assert.throws(() => withValue(background(), null, 1), TypeError);
  assert.throws(() => withValue(background(), undefined, 1), TypeError);
  for (const key of [0, "", false, -0n]) {
    const ctx = withValue(background(), key, "v");
    assert.equal(ctx.value(key), "v", `key ${String(key)}`);
  }
});

Deno.test("withValue: any key compared with === (like Go)", () => {
  const objKey = { k: 1 };
  const sym = Symbol("s");
  let ctx = withValue(background(), "name", "str");
  ctx = withValue(ctx, 1, "one");
  ctx = withValue(ctx, objKey, "obj");
  ctx = withValue(ctx, sym, "sym");
  assert.equal(ctx.value("name"), "str");
  assert.equal(ctx.value(1), "one");
  assert.equal(ctx.value("1"), undefined, "no coercion");
  assert.equal(ctx.value(objKey), "obj");
  assert.equal(ctx.value({ k: 1 }), undefined, "structurally equal is not equal");
  assert.equal(ctx.value(sym), "sym");
  assert.equal(ctx.value(Symbol("s")), undefined);
});

Deno.test("withValue: lookup walks through withCancel/withTimeout/withDeadline/withoutCancel", () => {
  const base = withValue(background(), K_USER, "ada");
  const c1 = withCancel(base);
  const c2 = withCancelCause(withValue(c1.ctx, K_ID, 1));
  const c3 = withTimeout(c2.ctx, 60_000);
  const c4 = withDeadline(c3.ctx, Date.now() + 120_000);
  const detached = withoutCancel(c4.ctx);
  const leaf = withCancel(detached);
  for (const ctx of [c1.ctx, c2.ctx, c3.ctx, c4.ctx, detached, leaf.ctx]) {
    assert.equal(ctx.value(K_USER), "ada");
  }
  assert.equal(c1.ctx.value(K_ID), undefined);
  assert.equal(leaf.ctx.value(K_ID), 1);
  c1.cancel();
  // Values survive cancellation.
  assert.equal(c4.ctx.value(K_USER), "ada");
  assert.equal(leaf.ctx.value(K_ID), 1);
  leaf.cancel();
});

Deno.test("withValue: on a canceled context the child is canceled too", () => {
  const s = withCancelCause(background());
  const why = new Error("gone");
  s.cancel(why);
  const v = withValue(s.ctx, K_ID, 1);
  assert.ok(v.err instanceof CanceledError);
  assert.equal(v.signal.aborted, true);
  assert.equal(v.signal.reason, why);
  assert.equal(cause(v), why);
  assert.equal(v.value(K_ID), 1);
});

// ---------------------------------------------------------------------------
// withCancel

Deno.test("withCancel: err, shared CanceledError instance, cause = err, done", async () => {
  const a = withCancel(background());
  const b = withCancel(background());
  assert.equal(a.ctx.err, undefined);
  assert.equal(a.ctx.deadline, undefined);
  a.cancel();
  b.cancel();
  assert.ok(errOf(a.ctx) instanceof CanceledError);
  assert.equal(errOf(a.ctx)?.message, "context canceled");
  assert.equal(a.ctx.err, a.ctx.err, "err is stable");
  assert.equal(a.ctx.err, b.ctx.err, "every canceled context returns the same error");
  assert.equal(cause(a.ctx), a.ctx.err);
  assert.equal(await within(a.ctx.done), undefined);
});

Deno.test("withCancel: cancel reaches every descendant, through value nodes too", async () => {
  const root = withCancel(background());
  const v1 = withValue(root.ctx, K_ID, 1);
  const child = withCancel(v1); // observed below
  const v2 = withValue(child.ctx, K_USER, "x");
  const grand = withCancel(v2);
  const great = withCancel(withValue(withValue(grand.ctx, "a", 1), "b", 2));
  const lazy = withCancel(withValue(grand.ctx, "c", 3)); // never observed before cancel
  const timed = withTimeout(v2, 60_000);
  const events: string[] = [];
  child.ctx.signal.addEventListener("abort", () => events.push("child"));
  great.ctx.signal.addEventListener("abort", () => events.push("great"));
  timed.ctx.signal.addEventListener("abort", () => events.push("timed"));
  const greatDone = great.ctx.done;

  root.cancel();
  // Observed descendants are notified synchronously, inside cancel().
  assert.deepEqual([...events].sort(), ["child", "great", "timed"]);
  for (const ctx of [v1, child.ctx, v2, grand.ctx, great.ctx, lazy.ctx, timed.ctx]) {
    assert.ok(ctx.err instanceof CanceledError, String(ctx));
    assert.equal(ctx.signal.aborted, true);
    assert.equal(cause(ctx), root.ctx.err);
  }
  await within(greatDone, "descendant done");
  await within(lazy.ctx.done, "lazily canceled descendant done");
});

Deno.test("withCancel: never upward, siblings unaffected", async () => {
  const root = withCancel(background());
  const a = withCancel(withValue(root.ctx, K_ID, 1));
  const b = withCancel(root.ctx);
  const aChild = withCancel(a.ctx);
  const bChild = withCancel(b.ctx);
  for (const s of [root, a, b, aChild, bChild]) void s.ctx.signal;
  const rootDone = root.ctx.done;
  a.cancel();
  assert.ok(a.ctx.err instanceof CanceledError);
  assert.ok(aChild.ctx.err instanceof CanceledError);
  assert.equal(root.ctx.err, undefined);
  assert.equal(root.ctx.signal.aborted, false);
  assert.equal(b.ctx.err, undefined);
  assert.equal(bChild.ctx.err, undefined);
  assert.equal(bChild.ctx.signal.aborted, false);
  assert.equal(await settled(rootDone), false);
  assert.equal(_childCount(root.ctx), 1, "only b is still registered with root");
  root.cancel();
  assert.ok(errOf(bChild.ctx) instanceof CanceledError);
});

Deno.test("withCancel: canceling twice is a no-op", async () => {
  const s = withCancel(background());
  let aborts = 0;
  s.ctx.signal.addEventListener("abort", () => aborts++);
  let runs = 0;
  afterFunc(s.ctx, () => runs++);
  s.cancel();
  const err = s.ctx.err;
  s.cancel();
  s[Symbol.dispose]();
  await tick();
  assert.equal(s.ctx.err, err);
  assert.equal(aborts, 1);
  assert.equal(runs, 1);
});

Deno.test("withCancel: signal aborts — signal read before cancel", () => {
  const s = withCancel(background());
  const signal = s.ctx.signal;
  assert.equal(signal.aborted, false);
  let reason: unknown = "not fired";
  signal.addEventListener("abort", () => (reason = signal.reason));
  s.cancel();
  assert.equal(signal.aborted, true);
  assert.ok(reason instanceof CanceledError);
  assert.equal(signal.reason, s.ctx.err);
  assert.equal(s.ctx.signal, signal, "the same signal every time");
});

Deno.test("withCancel: signal aborts — signal first read after cancel", () => {
  const s = withCancelCause(background());
  const why = new Error("why");
  s.cancel(why);
  const signal = s.ctx.signal;
  assert.equal(signal.aborted, true);
  assert.equal(signal.reason, why);
  const plain = withCancel(background());
  plain.cancel();
  assert.equal(plain.ctx.signal.aborted, true);
  assert.equal(plain.ctx.signal.reason, plain.ctx.err);
});

Deno.test("withCancel: done resolves (to undefined) and never rejects, in both orders", async () => {
  const before = withCancel(background());
  const d1 = before.ctx.done;
  assert.equal(await settled(d1), false);
  before.cancel();
  let rejected = false;
  const r1 = await within(d1.catch(() => (rejected = true)), "done (read before cancel)");
  assert.equal(r1, undefined);
  assert.equal(rejected, false);
  assert.equal(before.ctx.done, d1, "the same promise every time");

  const after = withCancelCause(background());
  after.cancel(new Error("cause is not a rejection"));
  const r2 = await within(after.ctx.done.catch(() => (rejected = true)), "done (read after)");
  assert.equal(r2, undefined);
  assert.equal(rejected, false);
});

Deno.test("withCancel: a child of an already-canceled parent is born canceled", async () => {
  const p = withCancelCause(background());
  const why = new Error("parent gone");
  p.cancel(why);
  const c = withCancel(withValue(p.ctx, K_ID, 1));
  assert.ok(c.ctx.err instanceof CanceledError);
  assert.equal(cause(c.ctx), why);
  assert.equal(c.ctx.signal.aborted, true);
  assert.equal(c.ctx.signal.reason, why);
  await within(c.ctx.done);
  const g = withCancel(c.ctx);
  assert.ok(g.ctx.err instanceof CanceledError);
  assert.equal(_childCount(p.ctx), 0);
  assert.equal(_childCount(c.ctx), 0);
});

// Each of these reads one property FIRST on a child that was never observed
// before its parent was canceled (the cancellation is discovered lazily).
for (const first of ["err", "signal", "done"] as const) {
  Deno.test(`withCancel: unobserved child of a canceled parent — reading ${first} first`, async () => {
    const p = withCancel(background());
    const c = withCancel(withValue(p.ctx, K_ID, 1));
    const t = withTimeout(p.ctx, 60_000);
    p.cancel();
    for (const ctx of [c.ctx, t.ctx]) {
      if (first === "err") assert.ok(ctx.err instanceof CanceledError);
      if (first === "signal") assert.equal(ctx.signal.aborted, true);
      if (first === "done") await within(ctx.done, "done");
      assert.ok(ctx.err instanceof CanceledError);
      assert.equal(ctx.signal.aborted, true);
      assert.equal(ctx.signal.reason, p.ctx.err);
      await within(ctx.done, "done");
    }
  });
}

Deno.test("withCancel: a child canceled first keeps its own err and cause", () => {
  const p = withCancelCause(background());
  const c = withCancelCause(p.ctx);
  void c.ctx.signal;
  const mine = new Error("mine");
  c.cancel(mine);
  p.cancel(new Error("parent's"));
  assert.equal(cause(c.ctx), mine);
  assert.equal(c.ctx.signal.reason, mine);
});

Deno.test("cancel(): on an unobserved child after its parent was canceled is a no-op", () => {
  // In Go the child was canceled (with the parent's err and cause) the moment
  // the parent was; its own cancel() comes second and changes nothing.
  const p = withCancelCause(background());
  const c = withCancelCause(withValue(p.ctx, K_ID, 1)); // never observed
  const first = new Error("parent first");
  p.cancel(first);
  c.cancel(new Error("child second"));
  assert.equal(cause(c.ctx), first);
  assert.equal(c.ctx.signal.reason, first);
  const g = withCancel(c.ctx);
  assert.equal(cause(g.ctx), first, "descendants see the parent's cause too");
});

Deno.test("cancel(): after an unobserved deadline passed reports DeadlineExceeded", async () => {
  // Go's timer fires at the deadline; a later cancel() is a no-op.
  const why = new Error("budget");
  const s = withTimeout(background(), 5, why); // never observed: no timer
  const dl = s.ctx.deadline!;
  while (Date.now() <= dl) await tick();
  s.cancel();
  assert.ok(s.ctx.err instanceof DeadlineExceededError, `got ${s.ctx.err?.name}`);
  assert.equal(cause(s.ctx), why);
});

Deno.test("withCancel: `using` cancels on scope exit", () => {
  let ctx: Context;
  let signal: AbortSignal;
  const parent = withCancel(background());
  {
    using s = withCancel(parent.ctx);
    ctx = s.ctx;
    signal = s.ctx.signal;
    assert.equal(ctx.err, undefined);
    assert.equal(_childCount(parent.ctx), 1);
  }
  assert.ok(errOf(ctx) instanceof CanceledError);
  assert.equal(signal.aborted, true);
  assert.equal(_childCount(parent.ctx), 0);
  assert.equal(parent.ctx.err, undefined);
  parent.cancel();
});

Deno.test("cancel releases: a canceled parent holds no children", () => {
  const p = withCancel(background());
  const kids = Array.from({ length: 1_000 }, () => withCancel(p.ctx));
  for (const k of kids) void k.ctx.signal;
  assert.equal(_childCount(p.ctx), 1_000);
  p.cancel();
  assert.equal(_childCount(p.ctx), 0);
  for (const k of kids) assert.equal(_childCount(k.ctx), 0);
});

// ---------------------------------------------------------------------------
// withCancelCause / cause()

Deno.test("cause: undefined while live, first cause wins, err when none given", () => {
  const s = withCancelCause(background());
  assert.equal(cause(s.ctx), undefined);
  const first = new Error("first");
  s.cancel(first);
  s.cancel(new Error("second"));
  assert.equal(cause(s.ctx), first);
  assert.ok(s.ctx.err instanceof CanceledError, "err stays CanceledError, not the cause");
  assert.equal(s.ctx.signal.reason, first);

  const none = withCancelCause(background());
  none.cancel();
  assert.equal(cause(none.ctx), none.ctx.err);
  const undef = withCancelCause(background());
  undef.cancel(undefined);
  assert.equal(cause(undef.ctx), undef.ctx.err);
  const str = withCancelCause(background());
  str.cancel("client went away");
  assert.equal(cause(str.ctx), "client went away");
});

Deno.test("cause: a descendant inherits its parent's cause (observed and lazy)", () => {
  const p = withCancelCause(background());
  const observed = withCancel(withValue(p.ctx, K_ID, 1));
  void observed.ctx.signal;
  const lazy = withCancelCause(withValue(p.ctx, K_ID, 2));
  const grand = withCancel(observed.ctx);
  void grand.ctx.done;
  const why = new Error("shutdown");
  p.cancel(why);
  for (const ctx of [observed.ctx, lazy.ctx, grand.ctx]) {
    assert.equal(cause(ctx), why);
    assert.equal(ctx.signal.reason, why);
    assert.ok(ctx.err instanceof CanceledError);
  }
  // A later cancel of the child cannot replace the inherited cause.
  lazy.cancel(new Error("late"));
  assert.equal(cause(lazy.ctx), why);
});

Deno.test("cause: undefined for contexts that cannot be canceled", () => {
  const s = withCancel(background());
  s.cancel();
  assert.equal(cause(background()), undefined);
  assert.equal(cause(todo()), undefined);
  assert.equal(cause(withValue(background(), K_ID, 1)), undefined);
  assert.equal(cause(withoutCancel(s.ctx)), undefined);
  assert.equal(cause(withValue(s.ctx, K_ID, 1)), s.ctx.err);
});

// ---------------------------------------------------------------------------
// withDeadline / withTimeout

Deno.test("deadline: getter for number, Date and timeout; invalid Date throws", () => {
  const at = Date.now() + 60_000;
  const a = withDeadline(background(), at);
  const b = withDeadline(background(), new Date(at + 1));
  const before = Date.now();
  const c = withTimeout(background(), 30_000);
  const after = Date.now();
  assert.equal(a.ctx.deadline, at);
  assert.equal(b.ctx.deadline, at + 1);
  assert.ok(c.ctx.deadline! >= before + 30_000 && c.ctx.deadline! <= after + 30_000);
  assert.equal(withValue(a.ctx, K_ID, 1).deadline, at);
  assert.equal(withCancel(a.ctx).ctx.deadline, at, "withCancel inherits the deadline");
  assert.throws(() => withDeadline(background(), new Date(NaN)), TypeError);
  assert.throws(() => withDeadline(background(), NaN), TypeError);
  for (const s of [a, b, c]) assert.equal(s.ctx.err, undefined);
  a.cancel();
  b.cancel();
  c.cancel();
});

Deno.test("deadline: the earliest deadline in the chain wins", () => {
  const at = Date.now() + 60_000;
  const parent = withDeadline(background(), at);
  const later = withDeadline(withValue(parent.ctx, K_ID, 1), at + 10_000);
  const laterTimeout = withTimeout(parent.ctx, 3_600_000);
  const earlier = withDeadline(later.ctx, at - 10_000);
  const equal = withDeadline(parent.ctx, at);
  assert.equal(later.ctx.deadline, at, "later child reports the parent's deadline");
  assert.equal(laterTimeout.ctx.deadline, at);
  assert.equal(earlier.ctx.deadline, at - 10_000, "earlier child reports its own");
  assert.equal(equal.ctx.deadline, at);
  assert.equal(parent.ctx.deadline, at, "parent unchanged");
  assert.equal(withCancel(earlier.ctx).ctx.deadline, at - 10_000);
  // withoutCancel drops the deadline; a timeout below it starts afresh.
  const detached = withoutCancel(earlier.ctx);
  assert.equal(detached.deadline, undefined);
  const fresh = withDeadline(detached, at + 20_000);
  assert.equal(fresh.ctx.deadline, at + 20_000);
  parent.cancel();
  assert.equal(fresh.ctx.err, undefined);
  fresh.cancel();
});

Deno.test("deadline: in the past → born canceled with DeadlineExceededError", async () => {
  for (
    const s of [
      withDeadline(background(), Date.now() - 1),
      withDeadline(background(), new Date(0)),
      withTimeout(background(), 0),
      withTimeout(background(), -50),
    ]
  ) {
    assert.ok(s.ctx.err instanceof DeadlineExceededError);
    assert.equal(s.ctx.err.message, "context deadline exceeded");
    assert.equal(cause(s.ctx), s.ctx.err);
    assert.equal(s.ctx.signal.aborted, true);
    assert.equal(s.ctx.signal.reason, s.ctx.err);
    await within(s.ctx.done);
    s.cancel(); // no-op
    assert.ok(s.ctx.err instanceof DeadlineExceededError, "first err wins");
  }
  const a = withTimeout(background(), -1);
  const b = withTimeout(background(), -1);
  assert.equal(a.ctx.err, b.ctx.err, "one shared DeadlineExceededError");
  const why = new Error("budget spent");
  assert.equal(cause(withTimeout(background(), -1, why).ctx), why);
});

Deno.test("deadline: a timeout fires; descendants get DeadlineExceededError and the cause", async () => {
  using timers = trackTimers();
  const why = new Error("too slow");
  using s = withTimeout(background(), 20, why);
  const child = withCancel(withValue(s.ctx, K_ID, 1));
  const sig = child.ctx.signal;
  const lazy = withCancel(s.ctx);
  assert.equal(s.ctx.err, undefined);
  await within(s.ctx.done, "timeout");
  assert.ok(errOf(s.ctx) instanceof DeadlineExceededError);
  assert.equal(cause(s.ctx), why);
  assert.equal(s.ctx.signal.reason, why);
  assert.ok(child.ctx.err instanceof DeadlineExceededError);
  assert.equal(sig.aborted, true);
  assert.equal(sig.reason, why);
  assert.ok(lazy.ctx.err instanceof DeadlineExceededError);
  assert.equal(cause(lazy.ctx), why);
  assert.equal(timers.pending, 0, "the fired timer is gone");
  assert.equal(_childCount(s.ctx), 0);
});

Deno.test("deadline: a timeout without cause reports err as cause; fires via afterFunc too", async () => {
  const s = withTimeout(background(), 20);
  let ran!: () => void;
  const ranP = new Promise<void>((r) => (ran = r));
  afterFunc(s.ctx, ran); // the only observer
  await within(ranP, "afterFunc after timeout");
  assert.ok(s.ctx.err instanceof DeadlineExceededError);
  assert.equal(cause(s.ctx), s.ctx.err);
});

Deno.test("deadline: a child timing out leaves its parent alone and unregisters", async () => {
  const parent = withCancel(background());
  const child = withTimeout(parent.ctx, 20);
  const sibling = withCancel(parent.ctx);
  void sibling.ctx.signal;
  await within(child.ctx.done, "child timeout");
  assert.ok(child.ctx.err instanceof DeadlineExceededError);
  assert.equal(parent.ctx.err, undefined);
  assert.equal(sibling.ctx.err, undefined);
  assert.equal(_childCount(parent.ctx), 1, "only the sibling is registered");
  parent.cancel();
});

Deno.test("deadline: canceled early leaves no pending timer", () => {
  using timers = trackTimers();
  const s = withTimeout(background(), 60_000);
  void s.ctx.signal;
  void s.ctx.done;
  assert.equal(timers.pending, 1, "observed timeout has exactly one timer");
  s.cancel();
  assert.equal(timers.pending, 0);
  assert.ok(s.ctx.err instanceof CanceledError, "canceled, not deadline exceeded");

  // Canceled through its parent.
  const p = withCancel(background());
  const c = withDeadline(withValue(p.ctx, K_ID, 1), Date.now() + 60_000);
  void c.ctx.done;
  assert.equal(timers.pending, 1);
  p.cancel();
  assert.equal(timers.pending, 0);
  assert.ok(c.ctx.err instanceof CanceledError);

  // A child whose deadline is not its own (parent's is earlier) adds no timer.
  const early = withTimeout(background(), 30_000);
  const late = withTimeout(early.ctx, 60_000);
  void late.ctx.signal;
  assert.equal(timers.pending, 1);
  early.cancel();
  assert.equal(timers.pending, 0);
});

Deno.test("deadline: `using` disposes the scope and clears its timer", () => {
  using timers = trackTimers();
  let ctx: Context;
  {
    using s = withTimeout(background(), 60_000);
    ctx = s.ctx;
    void s.ctx.signal;
    assert.equal(timers.pending, 1);
  }
  assert.ok(ctx.err instanceof CanceledError);
  assert.equal(timers.pending, 0);
});

Deno.test("deadline: unobserved — no timer, expiry still discovered when err is read", async () => {
  using timers = trackTimers();
  const s = withTimeout(background(), 5);
  const dl = s.ctx.deadline!;
  assert.equal(timers.pending, 0);
  while (Date.now() <= dl) await tick(); // wait (bounded by the 5 ms deadline)
  assert.ok(s.ctx.err instanceof DeadlineExceededError);
  assert.equal(s.ctx.signal.aborted, true);
});

Deno.test("deadline: lazily discovered, ordered against the parent's cancel by time", async () => {
  const parent = withCancel(background());
  const early = withTimeout(parent.ctx, 5); // deadline passes before parent's cancel
  const late = withTimeout(parent.ctx, 60_000); // parent's cancel comes first
  const dl = early.ctx.deadline!;
  while (Date.now() <= dl) await tick();
  parent.cancel();
  assert.ok(early.ctx.err instanceof DeadlineExceededError, "the deadline happened first");
  assert.ok(late.ctx.err instanceof CanceledError, "the parent's cancel happened first");
});

Deno.test("deadline: past deadline under an already-canceled parent reports the parent's err", () => {
  // Go's WithDeadline propagates the parent's cancellation before it checks
  // the deadline: a parent that is already done wins ("whichever happens
  // first"), and the child reports parent.Err() and Cause(parent).
  const p = withCancelCause(background());
  const why = new Error("parent gone");
  p.cancel(why);
  const c = withDeadline(p.ctx, Date.now());
  assert.ok(c.ctx.err instanceof CanceledError, `got ${c.ctx.err?.name}`);
  assert.equal(cause(c.ctx), why);
  const t = withTimeout(p.ctx, -1);
  assert.ok(t.ctx.err instanceof CanceledError, `got ${t.ctx.err?.name}`);
});

// ---------------------------------------------------------------------------
// withoutCancel

Deno.test("withoutCancel: keeps values, never canceled, no deadline", async () => {
  const p = withDeadline(withValue(background(), K_USER, "ada"), Date.now() + 60_000);
  const detached = withoutCancel(withValue(p.ctx, K_ID, 1));
  const below = withCancel(detached);
  const belowValue = withValue(detached, "k", "v");
  void below.ctx.signal;
  assert.equal(detached.deadline, undefined);
  assert.equal(below.ctx.deadline, undefined);
  p.cancel();
  for (const ctx of [detached, below.ctx, belowValue]) {
    assert.equal(ctx.err, undefined);
    assert.equal(ctx.signal.aborted, false);
    assert.equal(cause(ctx), undefined);
    assert.equal(ctx.value(K_USER), "ada");
    assert.equal(ctx.value(K_ID), 1);
  }
  assert.equal(await settled(detached.done), false);
  // Derived from an already-canceled parent: still live.
  const late = withoutCancel(p.ctx);
  assert.equal(late.err, undefined);
  assert.equal(late.signal.aborted, false);
  assert.equal(late.value(K_USER), "ada");
  // Its own cancelable descendants still cancel independently.
  below.cancel();
  assert.ok(below.ctx.err instanceof CanceledError);
  assert.equal(detached.err, undefined);
});

// ---------------------------------------------------------------------------
// afterFunc

Deno.test("afterFunc: runs once, after cancel, never synchronously inside cancel()", async () => {
  const s = withCancel(background());
  let runs = 0;
  let errSeen: unknown;
  const stop = afterFunc(s.ctx, () => {
    runs++;
    errSeen = s.ctx.err;
  });
  await tick();
  assert.equal(runs, 0, "not before cancel");
  s.cancel();
  assert.equal(runs, 0, "not synchronously inside cancel()");
  await tick();
  assert.equal(runs, 1);
  assert.ok(errSeen instanceof CanceledError, "ctx is already done when fn runs");
  s.cancel();
  await tick();
  assert.equal(runs, 1, "once");
  assert.equal(stop(), false, "stop after it ran");
  assert.equal(stop(), false);
});

Deno.test("afterFunc: stop() before cancel returns true and prevents the run; twice → false", async () => {
  const s = withCancel(background());
  let runs = 0;
  const stop = afterFunc(s.ctx, () => runs++);
  let otherRuns = 0;
  afterFunc(s.ctx, () => otherRuns++);
  assert.equal(stop(), true);
  assert.equal(stop(), false);
  s.cancel();
  await tick();
  assert.equal(runs, 0);
  assert.equal(otherRuns, 1, "other registrations are unaffected");
  assert.equal(stop(), false);
});

Deno.test("afterFunc: stop() right after cancel (before fn ran) returns false; fn runs", async () => {
  const s = withCancel(background());
  let runs = 0;
  const stop = afterFunc(s.ctx, () => runs++);
  s.cancel();
  assert.equal(stop(), false);
  await tick();
  assert.equal(runs, 1);
});

Deno.test("afterFunc: on an already-done context runs soon (asynchronously)", async () => {
  const s = withCancel(background());
  s.cancel();
  let runs = 0;
  const stop = afterFunc(withValue(s.ctx, K_ID, 1), () => runs++);
  assert.equal(runs, 0, "not synchronously");
  await tick();
  assert.equal(runs, 1);
  assert.equal(stop(), false);
  // Lazily discovered: unobserved child of a canceled parent.
  const p = withCancel(background());
  const c = withCancel(p.ctx);
  p.cancel();
  let lazyRuns = 0;
  afterFunc(c.ctx, () => lazyRuns++);
  await tick();
  assert.equal(lazyRuns, 1);
});

Deno.test("afterFunc: runs when an ancestor is canceled", async () => {
  const p = withCancelCause(background());
  const c = withCancel(withValue(p.ctx, K_ID, 1));
  let seen: unknown;
  afterFunc(withValue(c.ctx, K_USER, "u"), () => (seen = cause(c.ctx)));
  const why = new Error("why");
  p.cancel(why);
  await tick();
  assert.equal(seen, why);
});

Deno.test("afterFunc: on background/withoutCancel never runs; stop() returns true", async () => {
  const s = withCancel(background());
  let runs = 0;
  const stops = [
    afterFunc(background(), () => runs++),
    afterFunc(todo(), () => runs++),
    afterFunc(withoutCancel(s.ctx), () => runs++),
  ];
  s.cancel();
  await tick();
  assert.equal(runs, 0);
  for (const stop of stops) {
    assert.equal(stop(), true);
    assert.equal(stop(), false);
  }
});

Deno.test("afterFunc: a throwing fn is reported and does not stop the others", async () => {
  const reported: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    reported.push(e.error);
    e.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  try {
    const s = withCancel(background());
    const boom = new Error("boom");
    let ran = false;
    afterFunc(s.ctx, () => {
      throw boom;
    });
    afterFunc(s.ctx, () => (ran = true));
    s.cancel();
    await tick();
    assert.equal(ran, true);
    assert.deepEqual(reported, [boom]);
  } finally {
    globalThis.removeEventListener("error", onError);
  }
});

// ---------------------------------------------------------------------------
// Reachability: what keeps a context alive (needs gc)

Deno.test("reachability: a pending done / afterFunc / reachable signal still fires after the ctx is dropped", async () => {
  const parent = withCancel(background());
  let doneFired = false;
  let afterFired = false;
  let abortFired = false;
  let signal: AbortSignal | undefined;
  (() => {
    // Each child is dropped; only the promise reaction / afterFunc / signal stays.
    withCancel(withValue(parent.ctx, K_ID, 1)).ctx.done.then(() => (doneFired = true));
    afterFunc(withCancel(parent.ctx).ctx, () => (afterFired = true));
    signal = withCancel(parent.ctx).ctx.signal;
    signal.addEventListener("abort", () => (abortFired = true));
  })();
  if (HAS_GC) await collect();
  else skipGc("collection before cancel (test still checks delivery)");
  parent.cancel();
  await tick();
  assert.equal(abortFired, true, "listener on a reachable signal");
  assert.equal(doneFired, true, "pending done");
  assert.equal(afterFired, true, "pending afterFunc");
});

Deno.test("reachability: stop() releases an afterFunc's hold on a dropped child", async () => {
  if (!HAS_GC) return skipGc("afterFunc stop() release");
  using parent = withCancel(background());
  let ref!: WeakRef<Context>;
  (() => {
    const c = withCancel(withValue(parent.ctx, K_ID, 1));
    const stop = afterFunc(c.ctx, () => {});
    assert.equal(stop(), true);
    ref = new WeakRef(c.ctx);
  })();
  const ok = await eventually(() => ref.deref() === undefined && _childCount(parent.ctx) === 0);
  assert.ok(ok, `child alive=${ref.deref() !== undefined}, kids=${_childCount(parent.ctx)}`);
});

// ---------------------------------------------------------------------------
// Foreign contexts

Deno.test("foreign parent: values and cancellation flow through", async () => {
  const f = foreignContext({ values: new Map<unknown, unknown>([[K_USER, "ada"], ["plain", 1]]) });
  const child = withCancel(f.ctx);
  const sig = child.ctx.signal;
  const grand = withCancel(withValue(child.ctx, K_ID, 3));
  void grand.ctx.done;
  const lazy = withCancel(withValue(f.ctx, "x", 2));
  const valueOnly = withValue(f.ctx, K_ID, 9);

  assert.equal(child.ctx.value(K_USER), "ada");
  assert.equal(child.ctx.value("plain"), 1);
  assert.equal(child.ctx.value("missing"), undefined);
  assert.equal(grand.ctx.value(K_USER), "ada");
  assert.equal(grand.ctx.value(K_ID), 3);
  assert.equal(lazy.ctx.value("x"), 2);
  assert.equal(lazy.ctx.value(K_USER), "ada");
  assert.equal(valueOnly.value(K_ID), 9);
  assert.equal(withValue(f.ctx, K_USER, "shadow").value(K_USER), "shadow");
  assert.equal(child.ctx.err, undefined);
  assert.equal(child.ctx.deadline, undefined);

  let fired = 0;
  sig.addEventListener("abort", () => fired++);
  let afterRan = false;
  afterFunc(f.ctx, () => (afterRan = true));
  const why = new Error("peer closed");
  f.abort(why);
  assert.equal(fired, 1, "pushed synchronously through the foreign signal");
  for (const ctx of [child.ctx, grand.ctx, lazy.ctx, valueOnly]) {
    assert.equal(ctx.err, FOREIGN_ERR, "the parent's err, as in Go");
    assert.equal(cause(ctx), why);
    assert.equal(ctx.signal.aborted, true);
    assert.equal(ctx.signal.reason, why);
  }
  await within(grand.ctx.done, "grandchild done");
  await tick();
  assert.equal(afterRan, true, "afterFunc on a foreign context");
});

Deno.test("foreign parent: already aborted → child born canceled; withoutCancel detaches", () => {
  const f = foreignContext({ values: new Map([[K_USER, "ada"]]) });
  const detached = withoutCancel(f.ctx);
  const why = new Error("early");
  f.abort(why);
  const c = withCancel(f.ctx);
  assert.equal(c.ctx.err, FOREIGN_ERR);
  assert.equal(cause(c.ctx), why);
  assert.equal(c.ctx.signal.reason, why);
  assert.equal(detached.err, undefined);
  assert.equal(detached.signal.aborted, false);
  assert.equal(detached.value(K_USER), "ada");
});

Deno.test("foreign parent: deadline inherited, earliest wins", () => {
  const at = Date.now() + 60_000;
  const f = foreignContext({ deadline: at });
  assert.equal(withCancel(f.ctx).ctx.deadline, at);
  assert.equal(withValue(f.ctx, K_ID, 1).deadline, at);
  assert.equal(withTimeout(f.ctx, 3_600_000).ctx.deadline, at);
  assert.equal(withDeadline(f.ctx, at - 1_000).ctx.deadline, at - 1_000);
  assert.equal(withoutCancel(f.ctx).deadline, undefined);
});

Deno.test("foreign parent: canceled children do not leave listeners on the foreign signal", () => {
  const f = foreignContext();
  for (let i = 0; i < 1_000; i++) {
    const s = withCancel(f.ctx);
    void s.ctx.signal;
    s.cancel();
    const a = withCancel(f.ctx);
    const stop = afterFunc(a.ctx, () => {});
    stop();
    a.cancel();
  }
  // Go's propagateCancel goroutine for a foreign parent exits when the child
  // is done; here at most one shared listener may stay.
  assert.ok(f.listeners <= 1, `${f.listeners} abort listeners left on the foreign signal`);
  f.abort();
});

Deno.test("foreign parent with a deadline: a canceled child leaves no timer behind", () => {
  using timers = trackTimers();
  const f = foreignContext({ deadline: Date.now() + 60_000 });
  {
    using s = withCancel(f.ctx);
    void s.ctx.signal;
  }
  assert.equal(timers.pending, 0, "a timer outlives the canceled child");
  f.abort();
});

// ---------------------------------------------------------------------------
// Leaks (heap assertions need --v8-flags=--expose-gc)

const N = 100_000;

Deno.test("leak: 100 000 children created and canceled under one long-lived parent", async () => {
  using parent = withCancel(withValue(background(), K_USER, "server"));
  const start = HAS_GC ? await heapAfterGc() : 0;
  for (let i = 0; i < N; i++) {
    const s = withCancel(withValue(parent.ctx, K_ID, i));
    void s.ctx.signal; // registers with the parent
    s.cancel();
  }
  assert.equal(_childCount(parent.ctx), 0);
  // The same with done (pins the child strongly) and afterFunc + stop().
  for (let i = 0; i < N / 10; i++) {
    const s = withCancel(parent.ctx);
    void s.ctx.done;
    afterFunc(s.ctx, () => {})();
    s.cancel();
  }
  assert.equal(_childCount(parent.ctx), 0);
  assert.equal(parent.ctx.err, undefined);
  if (!HAS_GC) return skipGc("heap assertion");
  const end = await heapAfterGc();
  assert.ok(
    end - start < MiB,
    `heap grew by ${((end - start) / MiB).toFixed(2)} MiB (start ${start}, end ${end})`,
  );
});

Deno.test("leak: 100 000 children dropped uncanceled under a live parent are collected", async () => {
  using parent = withCancel(background());
  const start = HAS_GC ? await heapAfterGc() : 0;
  (() => {
    for (let i = 0; i < N; i++) {
      const s = withCancel(withValue(parent.ctx, K_ID, i));
      void s.ctx.signal; // registers (weakly) with the parent
    }
  })();
  // Finalizers run as tasks, never inside the synchronous loop above.
  assert.equal(_childCount(parent.ctx), N, "every child registered");
  if (!HAS_GC) return skipGc("collection and heap assertions");
  const ok = await eventually(() => _childCount(parent.ctx) === 0);
  assert.ok(ok, `${_childCount(parent.ctx)} dropped children still registered`);
  const end = await heapAfterGc();
  assert.ok(
    end - start < MiB,
    `heap grew by ${((end - start) / MiB).toFixed(2)} MiB (start ${start}, end ${end})`,
  );
  // The parent still works for children that are alive.
  const live = withCancel(parent.ctx);
  void live.ctx.signal;
  assert.equal(_childCount(parent.ctx), 1);
  parent.cancel();
  assert.ok(live.ctx.err instanceof CanceledError);
});

Deno.test("leak: per-connection derivation does not deepen the chain", () => {
  // The server's pattern: `base` is never reassigned; every connection and
  // request derives from it afresh (Go 1.13's net/http reassigned the
  // connection context in the accept loop, so each one got deeper).
  const SERVER = new ContextKey<string>("server");
  const CONN = new ContextKey<number>("conn");
  const base = withValue(background(), SERVER, "s");
  const depths = new Set<number>();
  for (let i = 0; i < 1_000; i++) {
    using conn = withCancel(withValue(base, CONN, i));
    const connCtx = withValue(conn.ctx, "local", i); // connContext hook
    using req = withCancel(connCtx);
    void req.ctx.signal;
    assert.equal(req.ctx.value(CONN), i);
    depths.add(_depth(req.ctx));
  }
  assert.deepEqual([...depths], [_depth(base) + 4]);
  assert.equal(_depth(background()), 1);
  // _depth does measure growth: the buggy pattern deepens by one per round.
  let ctx = base;
  for (let i = 0; i < 10; i++) ctx = withValue(ctx, CONN, i);
  assert.equal(_depth(ctx), _depth(base) + 10);
});

// ---------------------------------------------------------------------------
// Deep chains: Go's context has no depth limit (goroutine stacks grow).

const DEEP = 10_000;

function chain(root: Context, n: number): { scopes: CancelScope[]; leaf: Context } {
  const scopes: CancelScope[] = [];
  let ctx = root;
  for (let i = 0; i < n; i++) {
    const s = withCancel(i % 2 === 0 ? ctx : withValue(ctx, K_ID, i));
    scopes.push(s);
    ctx = s.ctx;
  }
  return { scopes, leaf: ctx };
}

Deno.test(`deep chain (${DEEP}): lazily pulled err of the leaf`, () => {
  const root = withCancel(background());
  const { leaf } = chain(root.ctx, DEEP);
  root.cancel();
  assert.ok(leaf.err instanceof CanceledError);
});

Deno.test(`deep chain (${DEEP}): observing the leaf, then canceling the root`, () => {
  const root = withCancel(background());
  const { leaf } = chain(root.ctx, DEEP);
  let aborted = false;
  try {
    leaf.signal.addEventListener("abort", () => (aborted = true));
  } finally {
    root.cancel();
  }
  assert.equal(aborted, true);
  assert.ok(leaf.err instanceof CanceledError);
});

Deno.test(`deep chain (${DEEP}): afterFunc/done on the leaf pin the chain; stop and cancel unpin`, async () => {
  const root = withCancel(background());
  const { leaf, scopes } = chain(root.ctx, DEEP);
  let runs = 0;
  try {
    const stop = afterFunc(leaf, () => runs++); // pins every ancestor
    assert.equal(stop(), true); // unpins them again
    void leaf.done;
    scopes[scopes.length - 1].cancel();
  } finally {
    root.cancel();
  }
  assert.ok(leaf.err instanceof CanceledError);
  await within(leaf.done);
  await tick();
  assert.equal(runs, 0);
});

Deno.test(`deep chain (${DEEP}): value lookup walks to the root`, () => {
  const { leaf, scopes } = chain(withValue(background(), K_USER, "root"), DEEP);
  assert.equal(leaf.value(K_USER), "root");
  assert.equal(leaf.value(K_ID), DEEP - 1);
  scopes[0].cancel();
});

// ---------------------------------------------------------------------------
// Property test: random trees

type Kind = "root" | "value" | "cancel" | "cause" | "timeout" | "deadline" | "without";
type Observe = "none" | "signal" | "done" | "err";

interface TreeNode {
  kind: Kind;
  parent: number;
  ctx: Context;
  scope?: CancelScope | CancelCauseScope;
  cancelCause?: unknown;
  key?: unknown;
  val?: unknown;
  /** Bounds of the node's own deadline (timeout: Date.now() is read twice). */
  lo?: number;
  hi?: number;
  observed: Observe;
}

const PROP_KEYS: unknown[] = [
  new ContextKey<unknown>("a"),
  new ContextKey<unknown>("b"),
  "string-key",
  Symbol("symbol-key"),
];
const NEVER_SET = new ContextKey<unknown>("never set");

function fcSeed(): { seed?: number } {
  const env = Deno.env.get("FC_SEED");
  if (env === "random") return {};
  return { seed: env === undefined ? 0x5eed : Number(env) };
}

const opArb = fc.record({
  kind: fc.constantFrom<Kind>("value", "cancel", "cause", "timeout", "deadline", "without"),
  parent: fc.nat(),
  key: fc.nat({ max: PROP_KEYS.length - 1 }),
  ms: fc.integer({ min: 3_600_000, max: 3_700_000 }),
  observe: fc.constantFrom<Observe>("none", "signal", "done", "err"),
});

Deno.test("property: cancel reaches exactly the cancelable descendants; values resolve to the nearest", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(opArb, { minLength: 1, maxLength: 30 }),
      fc.array(fc.nat(), { minLength: 1, maxLength: 3 }),
      async (ops, targetPicks) => {
        const nodes: TreeNode[] = [{
          kind: "root",
          parent: -1,
          ctx: background(),
          observed: "none",
        }];
        try {
          // Build.
          ops.forEach((op, i) => {
            const parent = op.parent % nodes.length;
            const p = nodes[parent].ctx;
            const n: TreeNode = { kind: op.kind, parent, ctx: p, observed: op.observe };
            switch (op.kind) {
              case "value":
                n.key = PROP_KEYS[op.key];
                n.val = { node: i + 1 };
                n.ctx = withValue(p, n.key, n.val);
                break;
              case "cancel":
                n.scope = withCancel(p);
                break;
              case "cause":
                n.scope = withCancelCause(p);
                n.cancelCause = new Error(`cause ${i + 1}`);
                break;
              case "timeout": {
                const before = Date.now();
                n.scope = withTimeout(p, op.ms);
                const after = Date.now();
                n.lo = before + op.ms;
                n.hi = after + op.ms;
                break;
              }
              case "deadline":
                n.lo = n.hi = Date.now() + op.ms;
                n.scope = withDeadline(p, n.lo);
                break;
              case "without":
                n.ctx = withoutCancel(p);
                break;
            }
            if (n.scope) n.ctx = n.scope.ctx;
            if (op.observe === "signal") void n.ctx.signal;
            if (op.observe === "done") void n.ctx.done;
            if (op.observe === "err") assert.equal(n.ctx.err, undefined);
            nodes.push(n);
          });

          const cancelable = nodes.map((_, i) => i).filter((i) => nodes[i].scope);
          const cancelOwner = (i: number): number => {
            for (let c = i; c >= 0; c = nodes[c].parent) {
              const k = nodes[c].kind;
              if (nodes[c].scope) return c;
              if (k === "without" || k === "root") return -1;
            }
            return -1;
          };
          // Whether canceling t reaches i (no withoutCancel on the way down).
          const reaches = (t: number, i: number): boolean => {
            for (let c = i; c >= 0; c = nodes[c].parent) {
              if (c === t) return true;
              if (nodes[c].kind === "without") return false;
            }
            return false;
          };

          // Cancel 1..3 random cancelable nodes, in order.
          const order: number[] = [];
          if (cancelable.length > 0) {
            for (const pick of targetPicks) {
              const t = cancelable[pick % cancelable.length];
              order.push(t);
              const n = nodes[t];
              if (n.kind === "cause") (n.scope as CancelCauseScope).cancel(n.cancelCause);
              else n.scope!.cancel();
            }
          }
          const firstCanceler = (i: number) => order.find((t) => reaches(t, i));

          // Registration: a live cancelable node is held by its parent iff it
          // or something below it was observed (signal/done); canceled nodes
          // are released and hold nothing.
          const observedOwners = new Set<number>();
          nodes.forEach((n, i) => {
            if (n.observed === "signal" || n.observed === "done") {
              const o = cancelOwner(i);
              if (o >= 0) observedOwners.add(o);
            }
          });
          // Registration is never undone by a child's cancel, only by our own.
          const everObserved = (i: number): boolean =>
            observedOwners.has(i) ||
            nodes.some((n, j) =>
              n.scope !== undefined && j !== i && cancelOwner(n.parent) === i && everObserved(j)
            );
          const registered = (i: number): boolean =>
            firstCanceler(i) === undefined && everObserved(i);
          for (const i of cancelable) {
            const expected = nodes.filter((n, j) =>
              n.scope !== undefined && cancelOwner(n.parent) === i && registered(j)
            ).length;
            assert.equal(_childCount(nodes[i].ctx), expected, `children of node ${i}`);
          }

          // Every node: err / cause / signal / deadline / values.
          const dones: Promise<void>[] = [];
          nodes.forEach((n, i) => {
            const t = firstCanceler(i);
            const ctx = n.ctx;
            const what = `node ${i} (${n.kind}), canceled by ${t}`;
            if (t === undefined) {
              assert.equal(ctx.err, undefined, what);
              assert.equal(cause(ctx), undefined, what);
              assert.equal(ctx.signal.aborted, false, what);
            } else {
              assert.ok(ctx.err instanceof CanceledError, what);
              const expectedCause = nodes[t].cancelCause ?? ctx.err;
              assert.equal(cause(ctx), expectedCause, what);
              assert.equal(ctx.signal.aborted, true, what);
              assert.equal(ctx.signal.reason, expectedCause, what);
              dones.push(within(ctx.done, what));
            }
            // Deadline: the earliest own deadline up to a withoutCancel.
            let lo: number | undefined;
            let hi: number | undefined;
            for (let c = i; c >= 0 && nodes[c].kind !== "without"; c = nodes[c].parent) {
              const m = nodes[c];
              if (m.lo !== undefined) {
                lo = lo === undefined ? m.lo : Math.min(lo, m.lo);
                hi = hi === undefined ? m.hi! : Math.min(hi, m.hi!);
              }
            }
            if (lo === undefined) assert.equal(ctx.deadline, undefined, what);
            else {
              const d = ctx.deadline;
              assert.ok(d !== undefined && d >= lo && d <= hi!, `${what}: deadline ${d}`);
            }
            // Values: the nearest value node with that key, through anything.
            for (const key of PROP_KEYS) {
              let expected: unknown = undefined;
              for (let c = i; c >= 0; c = nodes[c].parent) {
                if (nodes[c].kind === "value" && nodes[c].key === key) {
                  expected = nodes[c].val;
                  break;
                }
              }
              assert.equal(ctx.value(key), expected, `${what}: value(${String(key)})`);
            }
            assert.equal(ctx.value(NEVER_SET), undefined);
          });
          await Promise.all(dones);
          for (const i of order) assert.equal(_childCount(nodes[i].ctx), 0);
        } finally {
          for (const n of nodes) n.scope?.cancel();
        }
        for (const n of nodes) assert.equal(_childCount(n.ctx), 0);
      },
    ),
    // A fixed seed keeps runs reproducible; FC_SEED=random explores afresh.
    { numRuns: Number(Deno.env.get("FC_RUNS") ?? 300), ...fcSeed() },
  );
});
