// HTTP/2 benchmark: connctx vs Deno.serve (native h2) vs node:http2, with
// h2load, over TLS (ALPN h2) and h2c (prior knowledge):
//
//   hello   GET / ("Hello, World!"), 10 connections × 10 streams each
//   1 MiB   GET /big, 10 connections × 1 stream each (throughput)
//
// Every server runs once per mode (TLS, h2c) for the whole benchmark; each
// round runs every scenario on every server, in an order that rotates per
// round; the table reports the median with its spread (min–max) over the
// rounds, never a best run. Then memory per idle HTTP/2 connection: N
// connections each do the preface, SETTINGS and one GET, and stay open;
// (RSS after − RSS before) / N, after a GC in the server, median of runs.
//
//   deno run -A bench/h2.ts [--rounds=9] [--duration=2] [--connections=1000]
//       [--mem-runs=3] [--server=connctx,deno,node]
//
// Needs h2load (nghttp2-client), openssl and node.

import { parseArgs } from "node:util";
import { FLAG_END_STREAM, HEADERS } from "../_http2/frame.ts";
import { RawClient, testCerts } from "../_http2/_test_harness.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    rounds: { type: "string", default: "9" },
    duration: { type: "string", default: "2" },
    connections: { type: "string", default: "1000" },
    "mem-runs": { type: "string", default: "3" },
    server: { type: "string", default: "connctx,deno,node" },
  },
});
const ROUNDS = Number(values.rounds);
const DURATION = Number(values.duration);
const CONNS = Number(values.connections);
const MEM_RUNS = Number(values["mem-runs"]);
type Kind = "connctx" | "deno" | "node";
const LABEL: Record<Kind, string> = {
  connctx: "connctx",
  deno: "Deno.serve",
  node: "node:http2",
};
const KINDS = values.server.split(",").map((s) => s.trim()) as Kind[];
const here = (p: string) => decodeURIComponent(new URL(p, import.meta.url).pathname);

function argv(kind: Kind, tlsDir: string | null): string[] {
  const tls = tlsDir ? [`--tls=${tlsDir}`] : [];
  if (kind === "node") return ["node", "--expose-gc", here("./servers/h2_node.mjs"), ...tls];
  const script = kind === "connctx" ? "./servers/h2_connctx.ts" : "./servers/h2_deno.ts";
  return [Deno.execPath(), "run", "-A", "--v8-flags=--expose-gc", here(script), ...tls];
}

interface Running {
  kind: Kind;
  tls: boolean;
  port: number;
  pid: number;
  stop(): Promise<void>;
}

async function start(kind: Kind, tlsDir: string | null): Promise<Running> {
  const [cmd, ...args] = argv(kind, tlsDir);
  const p = new Deno.Command(cmd, { args, stdout: "piped", stderr: "inherit" }).spawn();
  const reader = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const deadline = Date.now() + 20_000;
  while (!/READY (\d+)/.test(text)) {
    if (Date.now() > deadline) throw new Error(`${kind} did not start`);
    const r = await reader.read();
    if (r.done) throw new Error(`${kind} exited: ${text}`);
    text += r.value;
  }
  // Keep draining stdout so the child never blocks on it.
  (async () => {
    while (!(await reader.read()).done);
  })().catch(() => {});
  const port = Number(/READY (\d+)/.exec(text)![1]);
  return {
    kind,
    tls: tlsDir !== null,
    port,
    pid: p.pid,
    async stop() {
      try {
        p.kill("SIGTERM");
      } catch { /* gone */ }
      await p.status;
    },
  };
}

interface H2load {
  rps: number;
  mbps: number;
  failed: number;
}

async function h2load(s: Running, path: string, streams: number): Promise<H2load> {
  const url = `${s.tls ? "https://localhost" : "http://127.0.0.1"}:${s.port}${path}`;
  const out = await new Deno.Command("h2load", {
    args: [
      "-c",
      "10",
      "-m",
      String(streams),
      "-D",
      String(DURATION),
      "--warm-up-time=500ms",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const m = /finished in [\d.]+s, ([\d.]+) req\/s, ([\d.]+)([KMG]?)B\/s/.exec(text);
  const f = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed/.exec(text);
  if (!m || !f) throw new Error(`h2load output not understood:\n${text}`);
  const scale = { "": 1 / (1 << 20), K: 1 / 1024, M: 1, G: 1024 }[m[3]] ?? 1;
  return { rps: Number(m[1]), mbps: Number(m[2]) * scale, failed: Number(f[1]) };
}

function stats(xs: number[]): { median: number; min: number; max: number } {
  const s = [...xs].sort((a, b) => a - b);
  const mid = (s.length - 1) / 2;
  return {
    median: (s[Math.floor(mid)] + s[Math.ceil(mid)]) / 2,
    min: s[0],
    max: s[s.length - 1],
  };
}

function fmt(x: number, digits = 0): string {
  return x.toLocaleString("en-US", {
    maximumFractionDigits: digits,
    minimumFractionDigits: digits,
  });
}

async function rssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]);
}

/** GETs /__mem (a GC in the server) over h2c. */
async function gcServer(port: number): Promise<void> {
  const c = await RawClient.connect(port);
  await c.headers(1, [[":path", "/__mem"]]);
  await c.response(1);
  c.close();
}

async function idleMemory(kind: Kind): Promise<number> {
  const s = await start(kind, null);
  try {
    // Warm up, then settle.
    for (let i = 0; i < 3; i++) await gcServer(s.port);
    const before = await rssKiB(s.pid);
    const clients: RawClient[] = [];
    for (let i = 0; i < CONNS; i += 100) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(100, CONNS - i) }, async () => {
          const c = await RawClient.connect(s.port);
          await c.frame(HEADERS, FLAG_END_STREAM | 0x4, 1, c.block());
          const r = await c.response(1);
          if (r === null) throw new Error("no response");
          return c;
        }),
      );
      clients.push(...batch);
    }
    await gcServer(s.port);
    await gcServer(s.port);
    const after = await rssKiB(s.pid);
    for (const c of clients) c.close();
    return (after - before) / CONNS;
  } finally {
    await s.stop();
  }
}

// ---------------------------------------------------------------------------

for (const bin of ["h2load", "openssl", "node"]) {
  const ok = await new Deno.Command("sh", { args: ["-c", `command -v ${bin}`], stdout: "null" })
    .output();
  if (!ok.success) {
    console.error(`bench/h2.ts needs ${bin}`);
    Deno.exit(1);
  }
}

const certs = await testCerts();
if (certs === null) throw new Error("openssl could not make a certificate");
const tlsDir = await Deno.makeTempDir();
await Deno.writeTextFile(`${tlsDir}/cert.pem`, certs.cert);
await Deno.writeTextFile(`${tlsDir}/key.pem`, certs.key);

const scenarios = [
  { name: "hello, TLS", tls: true, path: "/", streams: 10, unit: "req/s" },
  { name: "hello, h2c", tls: false, path: "/", streams: 10, unit: "req/s" },
  { name: "1 MiB, TLS", tls: true, path: "/big", streams: 1, unit: "MiB/s" },
  { name: "1 MiB, h2c", tls: false, path: "/big", streams: 1, unit: "MiB/s" },
] as const;

const servers: Running[] = [];
try {
  for (const k of KINDS) {
    servers.push(await start(k, tlsDir));
    servers.push(await start(k, null));
  }
  const find = (k: Kind, tls: boolean) => servers.find((s) => s.kind === k && s.tls === tls)!;
  // Warm-up: one run of each scenario on each server.
  for (const sc of scenarios) {
    for (const k of KINDS) await h2load(find(k, sc.tls), sc.path, sc.streams);
  }
  const results = new Map<string, number[]>();
  let failures = 0;
  for (let round = 0; round < ROUNDS; round++) {
    const order = KINDS.map((_, i) => KINDS[(i + round) % KINDS.length]);
    for (const sc of scenarios) {
      for (const k of order) {
        const r = await h2load(find(k, sc.tls), sc.path, sc.streams);
        failures += r.failed;
        const key = `${sc.name}|${k}`;
        if (!results.has(key)) results.set(key, []);
        results.get(key)!.push(sc.unit === "req/s" ? r.rps : r.mbps);
      }
    }
    console.error(`round ${round + 1}/${ROUNDS} done`);
  }
  console.log(
    `\nHTTP/2, h2load -c 10 (hello: -m 10; 1 MiB: -m 1), ${DURATION} s per run, ` +
      `${ROUNDS} interleaved rounds; median (min–max)\n`,
  );
  console.log(`| scenario | ${KINDS.map((k) => LABEL[k]).join(" | ")} |`);
  console.log(`| --- | ${KINDS.map(() => "---:").join(" | ")} |`);
  for (const sc of scenarios) {
    const cells = KINDS.map((k) => {
      const s = stats(results.get(`${sc.name}|${k}`)!);
      const d = sc.unit === "req/s" ? 0 : 0;
      return `${fmt(s.median, d)} (${fmt(s.min, d)}–${fmt(s.max, d)})`;
    });
    console.log(`| ${sc.name} (${sc.unit}) | ${cells.join(" | ")} |`);
  }
  if (failures > 0) console.log(`\n${failures} requests failed`);
} finally {
  for (const s of servers) await s.stop();
}

console.log(`\nMemory per idle HTTP/2 connection (h2c, ${CONNS} connections, ${MEM_RUNS} runs)\n`);
console.log("| server | KiB per connection, median (min–max) |");
console.log("| --- | ---: |");
const mem = new Map<Kind, number[]>();
for (let run = 0; run < MEM_RUNS; run++) {
  for (let i = 0; i < KINDS.length; i++) {
    const k = KINDS[(i + run) % KINDS.length];
    if (!mem.has(k)) mem.set(k, []);
    mem.get(k)!.push(await idleMemory(k));
  }
}
for (const k of KINDS) {
  const s = stats(mem.get(k)!);
  console.log(`| ${LABEL[k]} | ${fmt(s.median, 1)} (${fmt(s.min, 1)}–${fmt(s.max, 1)}) |`);
}
await Deno.remove(tlsDir, { recursive: true });
