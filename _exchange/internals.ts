// Copyright 2026 the connctx authors. MIT license.
// Owns: the one switch for connctx's use of Deno internals (the `Response`
// fast path in `response.ts`, the async-context slots in `isolate.ts`). Each
// user self-tests what it reads and falls back to public APIs on any
// mismatch; `CONNCTX_NO_FAST_PATH=1` forces the fallbacks everywhere.

/** Whether `CONNCTX_NO_FAST_PATH=1` is set (and readable without a prompt). */
export function internalsDisabled(): boolean {
  try {
    const st = Deno.permissions.querySync?.({ name: "env", variable: "CONNCTX_NO_FAST_PATH" });
    if (st?.state !== "granted") return false;
    return Deno.env.get("CONNCTX_NO_FAST_PATH") === "1";
  } catch {
    return false;
  }
}
