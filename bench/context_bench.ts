// Micro-benchmarks for context.ts.
//
//   deno bench bench/context_bench.ts
//
// value(key) walks up the chain, so a lookup costs O(hops): the "top" cases
// look up the key stored at the root end of a chain of N withValue contexts
// (N hops, the worst case), the "nearest" cases the key stored last (1 hop),
// the "miss" cases a key that is not there (N hops, then undefined).

import { background, type Context, ContextKey, withCancel, withValue } from "../context.ts";

const DEPTHS = [1, 8, 32] as const;

/** A chain of `depth` withValue contexts, each under its own key. */
function chain(depth: number): { ctx: Context; keys: ContextKey<number>[] } {
  let ctx = background();
  const keys: ContextKey<number>[] = [];
  for (let i = 0; i < depth; i++) {
    const key = new ContextKey<number>(`k${i}`);
    keys.push(key);
    ctx = withValue(ctx, key, i);
  }
  return { ctx, keys };
}

// Results are summed into a module-level sink so no work can be dropped.
let sink = 0;

const KEY = new ContextKey<number>("bench");
const root = background();

Deno.bench({
  name: "withValue (create one)",
  group: "create",
  baseline: true,
  fn() {
    sink += withValue(root, KEY, 1) === root ? 1 : 0;
  },
});

for (const depth of DEPTHS) {
  Deno.bench({
    name: `withValue chain of ${depth} (create)`,
    group: "create",
    fn() {
      sink += chain(depth).keys.length;
    },
  });
}

for (const depth of DEPTHS) {
  const { ctx, keys } = chain(depth);
  const top = keys[0];
  const nearest = keys[depth - 1];
  const missing = new ContextKey<number>("missing");
  Deno.bench({
    name: `value(key) depth ${depth}, top (${depth} ${depth === 1 ? "hop" : "hops"})`,
    group: "lookup",
    baseline: depth === 1,
    fn() {
      sink += ctx.value(top)!;
    },
  });
  if (depth > 1) {
    Deno.bench({
      name: `value(key) depth ${depth}, nearest (1 hop)`,
      group: "lookup",
      fn() {
        sink += ctx.value(nearest)!;
      },
    });
  }
  Deno.bench({
    name: `value(key) depth ${depth}, miss`,
    group: "lookup",
    fn() {
      sink += ctx.value(missing) === undefined ? 1 : 0;
    },
  });
}

Deno.bench({
  name: "withCancel + cancel",
  group: "cancel",
  baseline: true,
  fn() {
    const scope = withCancel(root);
    scope.cancel();
    sink += scope.ctx.err ? 1 : 0;
  },
});

Deno.bench({
  name: "withCancel + signal + cancel",
  group: "cancel",
  fn() {
    const scope = withCancel(root);
    sink += scope.ctx.signal.aborted ? 1 : 0;
    scope.cancel();
  },
});

{
  // A child of a live cancelable parent: cancel unregisters it again.
  const parent = withCancel(root);
  Deno.bench({
    name: "withCancel(child of cancelable) + signal + cancel",
    group: "cancel",
    fn() {
      const scope = withCancel(parent.ctx);
      sink += scope.ctx.signal.aborted ? 1 : 0;
      scope.cancel();
    },
  });
}

{
  const { ctx } = chain(8);
  Deno.bench({
    name: "withCancel under 8 values + cancel",
    group: "cancel",
    fn() {
      const scope = withCancel(ctx);
      scope.cancel();
      sink += scope.ctx.err ? 1 : 0;
    },
  });
}

addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
