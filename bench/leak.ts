// Leak check: an in-process connctx server whose connContext adds a value
// (withValue) to every connection, driven with >= 200 000 short connections
// (one `Connection: close` request each). Compares the heap after GC at the
// 20 000th connection with the heap after GC at the end.
//
//   deno run -A bench/leak.ts [--connections=200000] [--concurrency=32]
//       [--baseline-at=20000] [--max-growth-mib=1]
//
// gc() must be exposed; without --v8-flags=--expose-gc the script re-runs
// itself with it. Exits 1 if the heap grew by more than --max-growth-mib.

import { parseArgs } from "node:util";
import { ContextKey, withValue } from "../context.ts";
import { serve } from "../server.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    "connections": { type: "string", default: "200000" },
    "concurrency": { type: "string", default: "32" },
    "baseline-at": { type: "string", default: "20000" },
    "max-growth-mib": { type: "string", default: "1" },
  },
});
const TOTAL = Number(values.connections);
const CONCURRENCY = Number(values.concurrency);
const BASELINE_AT = Number(values["baseline-at"]);
const MAX_GROWTH_MIB = Number(values["max-growth-mib"]);
if (
  ![TOTAL, CONCURRENCY, BASELINE_AT].every((n) => Number.isInteger(n) && n > 0) ||
  BASELINE_AT >= TOTAL || !(MAX_GROWTH_MIB >= 0)
) {
  throw new Error("flags must be positive integers, --baseline-at < total");
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) {
  // Re-run with gc() exposed, same arguments.
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc",
      new URL(import.meta.url).pathname,
      ...Deno.args,
    ],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

const MiB = 1024 * 1024;
const CONN_KEY = new ContextKey<string>("conn");
const REQUEST = new TextEncoder().encode(
  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
);
const EXPECTED_STATUS = new TextEncoder().encode("HTTP/1.1 200");
const EXPECTED_BODY = new TextEncoder().encode("conn-");

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Heap used after a full GC; a few rounds so finalizers and WeakRefs settle. */
async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 4; i++) {
    gc!();
    await sleep(50);
  }
  return Deno.memoryUsage().heapUsed;
}

function includes(haystack: Uint8Array, n: number, needle: Uint8Array) {
  outer: for (let i = 0; i + needle.length <= n; i++) {
    for (let j = 0; j < needle.length; j++) {
      if (haystack[i + j] !== needle[j]) continue outer;
    }
    return true;
  }
  return false;
}

// ---------------------------------------------------------------------------
// Server

let accepted = 0;
let listening: (addr: Deno.Addr) => void;
const listeningAddr = new Promise<Deno.Addr>((r) => listening = r);
const server = serve({
  port: 0,
  hostname: "127.0.0.1",
  onListen: (addr) => listening(addr),
  connContext: (ctx) => withValue(ctx, CONN_KEY, `conn-${++accepted}`),
}, (_req, info) => new Response(`hello ${info.context.value(CONN_KEY)}`));
const addr = await listeningAddr;
if (addr.transport !== "tcp") throw new Error("expected a TCP listener");
const { hostname, port } = addr;

// ---------------------------------------------------------------------------
// Client

let started = 0;
let completed = 0;
let failures = 0;
let firstFailure: unknown;

/** One connection: write the request, read to EOF, check the response. */
async function oneConnection(buf: Uint8Array): Promise<void> {
  const conn = await Deno.connect({ hostname, port });
  try {
    let written = 0;
    while (written < REQUEST.byteLength) {
      written += await conn.write(REQUEST.subarray(written));
    }
    let n = 0;
    for (;;) {
      const r = await conn.read(buf.subarray(n));
      if (r === null) break;
      n += r;
      if (n === buf.byteLength) throw new Error("response too large");
    }
    if (
      !includes(buf, EXPECTED_STATUS.length, EXPECTED_STATUS) ||
      !includes(buf, n, EXPECTED_BODY)
    ) {
      throw new Error(
        `unexpected response: ${new TextDecoder().decode(buf.subarray(0, n))}`,
      );
    }
  } finally {
    conn.close();
  }
}

/** Runs `CONCURRENCY` client loops until `limit` connections completed. */
async function drive(limit: number): Promise<void> {
  const loop = async () => {
    const buf = new Uint8Array(4096);
    while (started < limit) {
      started++;
      try {
        await oneConnection(buf);
      } catch (err) {
        failures++;
        firstFailure ??= err;
      }
      completed++;
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
}

// A stall watchdog: abort if no connection completes for 15 s.
let lastCompleted = -1;
const watchdog = setInterval(() => {
  if (completed === lastCompleted) {
    console.error(`stalled at ${completed} connections`);
    Deno.exit(2);
  }
  lastCompleted = completed;
}, 15_000);

const t0 = performance.now();
const heapStart = await heapAfterGc();
await drive(BASELINE_AT);
await sleep(200); // let the server finish closing its side
const heapBaseline = await heapAfterGc();
const t1 = performance.now();
console.log(
  `heap after GC @ ${completed} connections: ` +
    `${(heapBaseline / MiB).toFixed(2)} MiB ` +
    `(at start: ${(heapStart / MiB).toFixed(2)} MiB)`,
);

let lastReport = completed;
const progress = setInterval(() => {
  if (completed - lastReport >= 20_000) {
    lastReport = completed;
    const rate = completed / ((performance.now() - t0) / 1000);
    console.error(`  ${completed} connections (${rate.toFixed(0)}/s)`);
  }
}, 1_000);
await drive(TOTAL);
clearInterval(progress);
await sleep(200);
const heapEnd = await heapAfterGc();
const t2 = performance.now();
clearInterval(watchdog);

const growth = heapEnd - heapBaseline;
const measured = completed - BASELINE_AT;
console.log(
  `heap after GC @ ${completed} connections: ${(heapEnd / MiB).toFixed(2)} MiB`,
);
console.log(
  `growth over the last ${measured} connections: ` +
    `${(growth / MiB).toFixed(2)} MiB ` +
    `(${(growth / measured).toFixed(1)} bytes/connection)`,
);
console.log(
  `${completed} connections in ${((t2 - t0) / 1000).toFixed(1)} s ` +
    `(${(measured / ((t2 - t1) / 1000)).toFixed(0)}/s after the baseline), ` +
    `${accepted} accepted by connContext, ${failures} failed, ` +
    `RSS ${(Deno.memoryUsage().rss / MiB).toFixed(0)} MiB`,
);
if (firstFailure !== undefined) console.log(`first failure: ${firstFailure}`);

await server.shutdown();
await server.finished;

const problems = [
  ...(growth > MAX_GROWTH_MIB * MiB ? [`heap grew > ${MAX_GROWTH_MIB} MiB`] : []),
  ...(failures > 0 ? [`${failures} connections failed`] : []),
  ...(accepted !== completed
    ? [`connContext ran ${accepted} times for ${completed} connections`]
    : []),
];
console.log(
  problems.length === 0
    ? `OK: heap growth ≤ ${MAX_GROWTH_MIB} MiB`
    : `FAIL: ${problems.join("; ")}`,
);
Deno.exit(problems.length === 0 ? 0 : 1);
