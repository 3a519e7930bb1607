// Copyright 2026 the connctx authors. MIT license.
// The Response fast path (`_exchange/response.ts`) reads Deno's internal
// slots when a load-time self-test proves it can; `CONNCTX_NO_FAST_PATH=1`
// turns it off. These tests run the response-fidelity, interop and isolation
// suites again in a child process with the fast path off, so the public
// path a future Deno may force is tested as thoroughly as the fast one.

import assert from "node:assert/strict";
import { fastPathEnabled } from "./_exchange/response.ts";

const here = (f: string) => new URL(f, import.meta.url).pathname;

async function child(args: string[], env: Record<string, string>): Promise<[boolean, string]> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    env: { ...env, NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  return [out.success, text];
}

Deno.test("fast path: on by default in this Deno, off with CONNCTX_NO_FAST_PATH=1", async () => {
  assert.equal(fastPathEnabled(), Deno.env.get("CONNCTX_NO_FAST_PATH") !== "1");
  const [ok, text] = await child([
    "eval",
    `import { fastPathEnabled } from ${JSON.stringify(here("./_exchange/response.ts"))};` +
    `console.log("fast=" + fastPathEnabled());`,
  ], { CONNCTX_NO_FAST_PATH: "1" });
  assert.ok(ok, text);
  assert.match(text, /fast=false/);
});

Deno.test("fast path off: fidelity, interop, conformance and isolation suites pass", async () => {
  if (Deno.env.get("CONNCTX_NO_FAST_PATH") === "1") return; // already the child
  const [ok, text] = await child([
    "test",
    "-A",
    "--v8-flags=--expose-gc",
    here("./fidelity_test.ts"),
    here("./interop_test.ts"),
    here("./conformance_test.ts"),
    here("./server_test.ts"),
  ], { CONNCTX_NO_FAST_PATH: "1" });
  assert.ok(ok, text.slice(-4000));
  assert.match(text, /ok \| \d+ passed/);
});
