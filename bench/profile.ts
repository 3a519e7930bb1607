// Where a server's time goes under the hello keep-alive load, next to the
// ceiling (bench/servers/ceiling.ts):
//
//   deno run -A bench/profile.ts [--mode=cpu,strace] [--server=connctx,ceiling]
//       [--root=DIR] [--threads=1] [--connections=50] [--duration=10s]
//       [--runs=3] [--top=25] [--keep=DIR]
//   (--mode takes any of cpu, strace, perf, native, alloc)
//   deno run -A bench/profile.ts --summarize=FILE.cpuprofile [--top=25]
//
// cpu: the server runs under `deno run --cpu-prof` (through
// bench/_profile_server.ts, which exits cleanly on SIGTERM so the profile is
// written); 1 s of warm-up load, then the measured load; the report lists
// the functions with the most self time, self time by file, and the engine
// functions with the most inclusive time. Profiles include start-up and
// warm-up (well under 10 % of the samples with the defaults).
//
// strace: a normally started server gets 1 s of warm-up load; then
// `strace -c -f` attaches to every thread of it for the measured load only,
// and the report divides each system call's count by the requests wrk
// completed in that window. strace slows the server down several times, so
// req/s under strace mean nothing; calls per request are what to compare.
// Each server is traced --runs times (servers alternating); the table shows
// the median calls per request.
//
// perf: the same window without a tracer stopping every call: `perf stat`
// counts the syscall tracepoints (syscalls:sys_enter_*) and task-clock of
// every server thread, /proc gives user and system CPU time and context
// switches; all divided by the requests wrk completed. Overhead is small, so
// this shows how the calls batch at full speed (strace changes that: a
// slowed-down server finds more requests waiting at each wake-up).
//
// alloc: the server runs with --inspect; V8's sampling heap profiler
// (HeapProfiler.startSampling, objects later collected by minor and major GCs
// included) records where the measured load allocates; the report gives
// bytes allocated per request, by function and by file.
//
// Only Deno-based servers (connctx, ceiling, deno) can be profiled with cpu;
// strace takes node too. Markdown goes to stdout, progress to stderr.

import { parseArgs } from "node:util";
import {
  benchPath,
  gitDescribe,
  REPO_ROOT,
  resolveRoot,
  serverCommand,
  startServer,
  verifyRoot,
} from "./_harness.ts";
import { median } from "./_stats.ts";
import { parseWrk } from "./run.ts";

type Kind = "connctx" | "ceiling" | "deno" | "node";
const SCRIPTS: Record<Exclude<Kind, "node">, string> = {
  connctx: "./servers/connctx.ts",
  ceiling: "./servers/ceiling.ts",
  deno: "./servers/deno_serve.ts",
};
const FLAGS: Record<Kind, string[]> = {
  connctx: ["--ctx-values=0"],
  ceiling: ["--scenario=hello"],
  deno: [],
  node: [],
};

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "cpu,strace,perf" },
    server: { type: "string", default: "connctx,ceiling" },
    root: { type: "string" },
    threads: { type: "string", default: "1" },
    connections: { type: "string", default: "50" },
    duration: { type: "string", default: "10s" },
    runs: { type: "string", default: "3" },
    top: { type: "string", default: "25" },
    keep: { type: "string" },
    summarize: { type: "string" },
  },
});
const TOP = Number(values.top);
const ROOT = values.root === undefined ? undefined : resolveRoot(values.root);

// ---------------------------------------------------------------------------
// .cpuprofile summary

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** A short, stable name for a source URL: path under the checkout, ext:… */
function shortUrl(url: string): string {
  if (url === "") return "";
  for (const root of [ROOT, REPO_ROOT]) {
    if (root !== undefined && url.startsWith(`file://${root}/`)) {
      return url.slice(`file://${root}/`.length);
    }
  }
  return url.replace(/^file:\/\//, "");
}

function frameKey(f: CallFrame): string {
  const name = f.functionName || "(anonymous)";
  const where = shortUrl(f.url);
  return where ? `${name} ${where}:${f.lineNumber + 1}` : name;
}

function fileKey(f: CallFrame): string {
  return shortUrl(f.url) || f.functionName || "(native)";
}

/** Whether a frame is the engine's own code (not bench/, not the runtime). */
function isEngine(f: CallFrame): boolean {
  const u = shortUrl(f.url);
  return u !== "" && !u.startsWith("bench/") && !u.startsWith("ext:") &&
    !u.startsWith("node:") && !u.includes("://") && !u.startsWith("/");
}

/** Markdown summary of one .cpuprofile. */
export function summarizeProfile(profile: CpuProfile, top = 25): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Time per sample: the delta to the next sample (the last gets the mean).
  const deltas = profile.timeDeltas;
  const total = profile.endTime - profile.startTime;
  const self = new Map<string, number>();
  const files = new Map<string, number>();
  const inclusive = new Map<string, number>();
  let sampled = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = i + 1 < deltas.length ? deltas[i + 1] : total / profile.samples.length;
    sampled += dt;
    const node = byId.get(profile.samples[i])!;
    const k = frameKey(node.callFrame);
    self.set(k, (self.get(k) ?? 0) + dt);
    const fk = fileKey(node.callFrame);
    files.set(fk, (files.get(fk) ?? 0) + dt);
    // Inclusive: every distinct engine function on the stack, once.
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const f = byId.get(id)!.callFrame;
      if (!isEngine(f)) continue;
      const key = frameKey(f);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + dt);
    }
  }
  const pct = (us: number) => `${((us / sampled) * 100).toFixed(1)} %`;
  const ms = (us: number) => `${(us / 1000).toFixed(0)} ms`;
  const rows = (m: Map<string, number>, n: number) =>
    [...m].sort((a, b) => b[1] - a[1]).slice(0, n)
      .map(([k, us]) => `| \`${k}\` | ${ms(us)} | ${pct(us)} |`);
  return [
    `${profile.samples.length} samples over ${(sampled / 1e6).toFixed(1)} s ` +
    `(mean interval ${(sampled / profile.samples.length).toFixed(0)} µs).`,
    "",
    `Top ${top} functions by self time:`,
    "",
    "| function | self | share |",
    "|---|--:|--:|",
    ...rows(self, top),
    "",
    "Self time by file (or category):",
    "",
    "| file | self | share |",
    "|---|--:|--:|",
    ...rows(files, 15),
    "",
    "Engine functions by inclusive time (self + callees):",
    "",
    "| function | inclusive | share |",
    "|---|--:|--:|",
    ...rows(inclusive, 15),
  ].join("\n");
}

if (values.summarize !== undefined) {
  const profile = JSON.parse(await Deno.readTextFile(values.summarize)) as CpuProfile;
  console.log(summarizeProfile(profile, TOP));
  Deno.exit(0);
}

// ---------------------------------------------------------------------------
// Load

async function wrk(url: string, seconds: number) {
  const out = await new Deno.Command("wrk", {
    args: [
      `-t${values.threads}`,
      `-c${values.connections}`,
      `-d${seconds}s`,
      "--latency",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`wrk failed: ${text}`);
  return parseWrk(text);
}

const DURATION = Number(/^(\d+)s?$/.exec(values.duration)?.[1]);
if (!(DURATION >= 1)) throw new Error("--duration: whole seconds");
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error("--runs: integer");

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// ---------------------------------------------------------------------------
// cpu

async function cpuProfile(kind: Kind, dir: string): Promise<string> {
  if (kind === "node") throw new Error("cpu mode: Deno servers only");
  const name = `${kind}.cpuprofile`;
  const argv = [
    Deno.execPath(),
    "run",
    "-A",
    "--cpu-prof",
    `--cpu-prof-dir=${dir}`,
    `--cpu-prof-name=${name}`,
    ...(kind === "connctx" && ROOT !== undefined
      ? serverCommand("connctx", { root: ROOT }).filter((a) => a.startsWith("--import-map="))
      : []),
    benchPath("./_profile_server.ts"),
    SCRIPTS[kind],
    "--port=0",
    ...FLAGS[kind],
  ];
  const server = await startServer(argv);
  let sample;
  try {
    await wrk(`${server.url}/hello`, 1);
    sample = await wrk(`${server.url}/hello`, DURATION);
  } finally {
    await server.stop();
  }
  console.error(
    `cpu ${kind}: ${Math.round(sample.rps)} req/s under the profiler ` +
      `(p50 ${sample.p50.toFixed(2)} ms)`,
  );
  const profile = JSON.parse(await Deno.readTextFile(`${dir}/${name}`)) as CpuProfile;
  return `#### ${kind} (${Math.round(sample.rps).toLocaleString("en-US")} req/s ` +
    `under the profiler)\n\n${summarizeProfile(profile, TOP)}`;
}

// ---------------------------------------------------------------------------
// strace

interface Trace {
  requests: number;
  rps: number;
  /** syscall → [calls, errors]. */
  calls: Map<string, [number, number]>;
}

/** Parses the `strace -c` table. */
function parseStraceSummary(text: string): Map<string, [number, number]> {
  const calls = new Map<string, [number, number]>();
  for (const line of text.split("\n")) {
    // % time  seconds  usecs/call  calls  errors  syscall
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(\d+)?\s*([a-z_0-9]+)\s*$/.exec(line);
    if (m && m[3] !== "total") calls.set(m[3], [Number(m[1]), Number(m[2] ?? 0)]);
  }
  return calls;
}

async function trace(kind: Kind, dir: string, run: number): Promise<Trace> {
  const server = await startServer(
    serverCommand(kind, { flags: FLAGS[kind], root: ROOT }),
  );
  const out = `${dir}/strace-${kind}-${run}.txt`;
  try {
    await wrk(`${server.url}/hello`, 1);
    const tids: string[] = [];
    for await (const e of Deno.readDir(`/proc/${server.pid}/task`)) tids.push(e.name);
    const strace = new Deno.Command("strace", {
      args: ["-c", "-f", "-S", "calls", "-o", out, ...tids.flatMap((t) => ["-p", t])],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await sleep(500); // attach
    const sample = await wrk(`${server.url}/hello`, DURATION);
    strace.kill("SIGINT");
    await strace.output();
    const calls = parseStraceSummary(await Deno.readTextFile(out));
    if (calls.size === 0) throw new Error(`no strace summary in ${out}`);
    console.error(
      `strace ${kind} run ${run}: ${sample.requests} requests, ` +
        `${Math.round(sample.rps)} req/s under strace`,
    );
    return { requests: sample.requests, rps: sample.rps, calls };
  } finally {
    await server.stop();
  }
}

function straceTable(kinds: Kind[], traces: Map<Kind, Trace[]>): string {
  const names = new Set<string>();
  for (const ts of traces.values()) {
    for (const t of ts) for (const n of t.calls.keys()) names.add(n);
  }
  const perReq = (kind: Kind, name: string, i: 0 | 1) =>
    median((traces.get(kind) ?? []).map((t) => (t.calls.get(name)?.[i] ?? 0) / t.requests));
  const totalPerReq = (kind: Kind) =>
    median(
      (traces.get(kind) ?? []).map((t) =>
        [...t.calls.values()].reduce((a, [c]) => a + c, 0) / t.requests
      ),
    );
  const rows = [...names]
    .map((n) => ({ n, max: Math.max(...kinds.map((k) => perReq(k, n, 0))) }))
    .filter((r) => r.max >= 0.001)
    .sort((a, b) => b.max - a.max);
  const fmt = (x: number) => x >= 0.1 ? x.toFixed(2) : x.toFixed(3);
  return [
    `| syscall | ${kinds.map((k) => `${k} calls/req (errors/req)`).join(" | ")} |`,
    `|---|${kinds.map(() => "--:|").join("")}`,
    ...rows.map(({ n }) =>
      `| ${n} | ${
        kinds.map((k) => {
          const e = perReq(k, n, 1);
          return `${fmt(perReq(k, n, 0))}${e > 0 ? ` (${fmt(e)})` : ""}`;
        }).join(" | ")
      } |`
    ),
    `| **total** | ${kinds.map((k) => `**${fmt(totalPerReq(k))}**`).join(" | ")} |`,
    "",
    `Requests per traced run (median): ${
      kinds.map((k) =>
        `${k} ${Math.round(median((traces.get(k) ?? []).map((t) => t.requests)))} ` +
        `(${Math.round(median((traces.get(k) ?? []).map((t) => t.rps)))} req/s under strace)`
      ).join(", ")
    }.`,
  ].join("\n");
}

// ---------------------------------------------------------------------------
// perf

interface Cost {
  requests: number;
  rps: number;
  /** CPU µs per request, from /proc/PID/stat (all threads). */
  userUs: number;
  sysUs: number;
  /** Context switches per request, summed over threads. */
  voluntary: number;
  involuntary: number;
  /** The same for the main (JS event loop) thread alone. */
  mainVoluntary: number;
  mainInvoluntary: number;
  /** Main-thread CPU µs per request (user + system). */
  mainUs: number;
  /** syscall → calls per request (perf tracepoints). */
  syscalls: Map<string, number>;
}

const TICK_US = 1e6 / 100; // USER_HZ (getconf CLK_TCK) is 100 on Linux

async function procCpu(pid: number): Promise<[number, number]> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 (utime, stime), counted from 1 with pid and comm first.
  return [Number(f[11]) * TICK_US, Number(f[12]) * TICK_US];
}

/** Context switches [voluntary, involuntary]: all threads, then the main one. */
async function procSwitches(pid: number): Promise<[number, number, number, number]> {
  let vol = 0;
  let invol = 0;
  let mainVol = 0;
  let mainInvol = 0;
  for await (const e of Deno.readDir(`/proc/${pid}/task`)) {
    try {
      const st = await Deno.readTextFile(`/proc/${pid}/task/${e.name}/status`);
      const v = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      const i = Number(/^nonvoluntary_ctxt_switches:\s+(\d+)/m.exec(st)?.[1] ?? 0);
      vol += v;
      invol += i;
      if (e.name === `${pid}`) [mainVol, mainInvol] = [v, i];
    } catch {
      // thread exited
    }
  }
  return [vol, invol, mainVol, mainInvol];
}

/** CPU µs (user + system) of the main thread alone. */
async function mainThreadCpu(pid: number): Promise<number> {
  const stat = await Deno.readTextFile(`/proc/${pid}/task/${pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) * TICK_US;
}

async function perfCost(kind: Kind, dir: string, run: number): Promise<Cost> {
  const server = await startServer(
    serverCommand(kind, { flags: FLAGS[kind], root: ROOT }),
  );
  const out = `${dir}/perf-${kind}-${run}.csv`;
  try {
    await wrk(`${server.url}/hello`, 1);
    const perf = new Deno.Command("perf", {
      args: ["stat", "-x,", "-e", "syscalls:sys_enter_*", "-p", `${server.pid}`, "-o", out],
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await sleep(500); // attach
    const cpu0 = await procCpu(server.pid);
    const sw0 = await procSwitches(server.pid);
    const main0 = await mainThreadCpu(server.pid);
    const sample = await wrk(`${server.url}/hello`, DURATION);
    const cpu1 = await procCpu(server.pid);
    const sw1 = await procSwitches(server.pid);
    const main1 = await mainThreadCpu(server.pid);
    perf.kill("SIGINT");
    await perf.output();
    const syscalls = new Map<string, number>();
    for (const line of (await Deno.readTextFile(out)).split("\n")) {
      const [count, , event] = line.split(",");
      const m = /^syscalls:sys_enter_(\w+)$/.exec(event ?? "");
      if (m && /^\d+$/.test(count) && Number(count) > 0) {
        syscalls.set(m[1], Number(count) / sample.requests);
      }
    }
    if (syscalls.size === 0) throw new Error(`no perf counts in ${out}`);
    const n = sample.requests;
    console.error(
      `perf ${kind} run ${run}: ${Math.round(sample.rps)} req/s, ` +
        `${((cpu1[0] - cpu0[0]) / n).toFixed(1)} µs user + ` +
        `${((cpu1[1] - cpu0[1]) / n).toFixed(1)} µs sys per request`,
    );
    return {
      requests: n,
      rps: sample.rps,
      userUs: (cpu1[0] - cpu0[0]) / n,
      sysUs: (cpu1[1] - cpu0[1]) / n,
      voluntary: (sw1[0] - sw0[0]) / n,
      involuntary: (sw1[1] - sw0[1]) / n,
      mainVoluntary: (sw1[2] - sw0[2]) / n,
      mainInvoluntary: (sw1[3] - sw0[3]) / n,
      mainUs: (main1 - main0) / n,
      syscalls,
    };
  } finally {
    await server.stop();
  }
}

function perfTable(kinds: Kind[], costs: Map<Kind, Cost[]>): string {
  const med = (kind: Kind, f: (c: Cost) => number) => median((costs.get(kind) ?? []).map(f));
  const fmt = (x: number) => x >= 10 ? x.toFixed(1) : x >= 0.1 ? x.toFixed(2) : x.toFixed(3);
  const row = (label: string, f: (c: Cost) => number) =>
    `| ${label} | ${kinds.map((k) => fmt(med(k, f))).join(" | ")} |`;
  const names = new Set<string>();
  for (const cs of costs.values()) {
    for (const c of cs) for (const n of c.syscalls.keys()) names.add(n);
  }
  const sys = [...names]
    .map((n) => ({ n, max: Math.max(...kinds.map((k) => med(k, (c) => c.syscalls.get(n) ?? 0))) }))
    .filter((r) => r.max >= 0.001)
    .sort((a, b) => b.max - a.max);
  return [
    `| per request | ${kinds.join(" | ")} |`,
    `|---|${kinds.map(() => "--:|").join("")}`,
    row("req/s (not under a tracer)", (c) => c.rps),
    row("CPU µs, user", (c) => c.userUs),
    row("CPU µs, system", (c) => c.sysUs),
    row("CPU µs, total", (c) => c.userUs + c.sysUs),
    row("CPU µs, main thread (event loop)", (c) => c.mainUs),
    row("voluntary context switches", (c) => c.voluntary),
    row("involuntary context switches", (c) => c.involuntary),
    row("main thread: voluntary (sleeps)", (c) => c.mainVoluntary),
    row("main thread: involuntary (preempted)", (c) => c.mainInvoluntary),
    ...sys.map(({ n }) => row(`syscall ${n}`, (c) => c.syscalls.get(n) ?? 0)),
    row(
      "**syscalls, total**",
      (c) => [...c.syscalls.values()].reduce((a, b) => a + b, 0),
    ),
  ].join("\n");
}

// ---------------------------------------------------------------------------
// native

/**
 * `perf record` (cpu-clock samples, all threads) over the measured window,
 * with V8's `--perf-basic-prof` so JIT-compiled JS has names. Returns µs of
 * CPU per request by binary (kernel, deno, JIT code, libc) and the top
 * symbols. The deno binary is stripped: its own functions (V8 builtins and
 * runtime, deno_core, tokio) show as addresses and are summed as "deno".
 */
async function nativeProfile(kind: Kind, dir: string): Promise<string> {
  if (kind === "node") throw new Error("native mode: Deno servers only");
  const data = `${dir}/perf-${kind}.data`;
  const server = await startServer(
    serverCommand(kind, {
      flags: FLAGS[kind],
      root: ROOT,
      runtimeFlags: ["--v8-flags=--perf-basic-prof"],
    }),
  );
  const hz = 999;
  try {
    await wrk(`${server.url}/hello`, 1);
    const perf = new Deno.Command("perf", {
      args: ["record", "-F", `${hz}`, "-p", `${server.pid}`, "-o", data],
      stdout: "null",
      stderr: "null",
    }).spawn();
    await sleep(500);
    const sample = await wrk(`${server.url}/hello`, DURATION);
    perf.kill("SIGINT");
    await perf.output();
    // Symbolise while the process (and its /tmp/perf-PID.map) still exist.
    const report = async (sort: string) => {
      const out = await new Deno.Command("perf", {
        args: [
          "report",
          "-i",
          data,
          "--no-children",
          "-F",
          `overhead,period,${sort}`,
          "--stdio",
          "-g",
          "none",
        ],
        stdout: "piped",
        stderr: "null",
      }).output();
      // "  40.46%     920920920  [kernel.kallsyms]  [k] sym": period in ns.
      return new TextDecoder().decode(out.stdout).split("\n")
        .map((l) => /^\s*([\d.]+)%\s+(\d+)\s+(.*)$/.exec(l))
        .filter((m) => m !== null)
        .map((m) => ({ pct: m[1], ns: Number(m[2]), name: m[3].trim().replace(/\s+/g, " ") }));
    };
    const dsos = await report("dso");
    const syms = await report("dso,sym");
    const requests = sample.requests;
    const totalNs = dsos.reduce((a, r) => a + r.ns, 0);
    const rows = (lines: { pct: string; ns: number; name: string }[], n: number) =>
      lines.slice(0, n).map((r) =>
        `| \`${r.name}\` | ${r.pct} % | ${(r.ns / 1000 / requests).toFixed(2)} |`
      );
    return [
      `#### ${kind} (${Math.round(sample.rps).toLocaleString("en-US")} req/s ` +
      `under perf record)`,
      "",
      `${(totalNs / 1e9).toFixed(2)} s of CPU sampled at ${hz} Hz over ` +
      `${requests} requests: ${(totalNs / 1000 / requests).toFixed(1)} µs per request.`,
      "",
      "| binary | share | CPU µs / request |",
      "|---|--:|--:|",
      ...rows(dsos, 8),
      "",
      "| binary, symbol | share | CPU µs / request |",
      "|---|--:|--:|",
      ...rows(syms, TOP),
    ].join("\n");
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------
// alloc

interface HeapNode {
  callFrame: CallFrame;
  selfSize: number;
  id: number;
  children: HeapNode[];
}

/** Minimal Chrome DevTools protocol client over the inspector WebSocket. */
async function inspector(url: string) {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => {
    ws.onopen = resolve;
    ws.onerror = reject;
  });
  let next = 1;
  const waiting = new Map<number, (msg: { result?: unknown; error?: unknown }) => void>();
  ws.onmessage = (e) => {
    const msg = JSON.parse(e.data as string);
    if (msg.id !== undefined) waiting.get(msg.id)?.(msg);
  };
  return {
    call(method: string, params: Record<string, unknown> = {}): Promise<unknown> {
      const id = next++;
      ws.send(JSON.stringify({ id, method, params }));
      return new Promise((resolve, reject) =>
        waiting.set(
          id,
          (msg) => msg.error ? reject(new Error(JSON.stringify(msg.error))) : resolve(msg.result),
        )
      );
    },
    close: () => ws.close(),
  };
}

async function allocProfile(kind: Kind): Promise<string> {
  if (kind === "node") throw new Error("alloc mode: Deno servers only");
  const server = await startServer(
    serverCommand(kind, {
      flags: FLAGS[kind],
      root: ROOT,
      runtimeFlags: ["--inspect=127.0.0.1:0"],
    }),
  );
  try {
    const ws = /ws:\/\/[^\s]+/.exec(server.output())?.[0];
    if (ws === undefined) throw new Error(`no inspector URL in: ${server.output()}`);
    const session = await inspector(ws);
    try {
      await wrk(`${server.url}/hello`, 1);
      await session.call("HeapProfiler.enable");
      await session.call("HeapProfiler.startSampling", {
        samplingInterval: 4096,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
      const sample = await wrk(`${server.url}/hello`, DURATION);
      const { profile } = await session.call("HeapProfiler.stopSampling") as {
        profile: { head: HeapNode };
      };
      const byFn = new Map<string, number>();
      const byFile = new Map<string, number>();
      let total = 0;
      const walk = (n: HeapNode) => {
        if (n.selfSize > 0) {
          total += n.selfSize;
          const k = frameKey(n.callFrame);
          byFn.set(k, (byFn.get(k) ?? 0) + n.selfSize);
          const f = fileKey(n.callFrame);
          byFile.set(f, (byFile.get(f) ?? 0) + n.selfSize);
        }
        for (const c of n.children) walk(c);
      };
      walk(profile.head);
      const n = sample.requests;
      const rows = (m: Map<string, number>, top: number) =>
        [...m].sort((a, b) => b[1] - a[1]).slice(0, top).map(([k, b]) =>
          `| \`${k}\` | ${(b / n).toFixed(0)} | ${((b / total) * 100).toFixed(1)} % |`
        );
      console.error(`alloc ${kind}: ${(total / n).toFixed(0)} bytes per request`);
      return [
        `#### ${kind}: ${(total / n).toFixed(0)} bytes allocated per request ` +
        `(${Math.round(sample.rps).toLocaleString("en-US")} req/s under the sampler)`,
        "",
        "| function | bytes / request | share |",
        "|---|--:|--:|",
        ...rows(byFn, TOP),
        "",
        "| file | bytes / request | share |",
        "|---|--:|--:|",
        ...rows(byFile, 12),
      ].join("\n");
    } finally {
      session.close();
    }
  } finally {
    await server.stop();
  }
}

// ---------------------------------------------------------------------------
// Main

const kinds = values.server.split(",").map((s) => s.trim()) as Kind[];
for (const k of kinds) if (!(k in FLAGS)) throw new Error(`--server: unknown ${k}`);
const modes = values.mode.split(",").map((s) => s.trim());
if (ROOT !== undefined && kinds.includes("connctx")) {
  console.error(`--root: connctx loads ${await verifyRoot(ROOT)} modules from ${ROOT}`);
}
const dir = values.keep ?? await Deno.makeTempDir({ prefix: "connctx-profile-" });
await Deno.mkdir(dir, { recursive: true });
const root = ROOT ?? REPO_ROOT;
const load = `wrk -t${values.threads} -c${values.connections} -d${DURATION}s GET /hello`;
// Each section is printed as soon as it is done.
const report = {
  push: (...lines: string[]) => console.log(lines.join("\n")),
};
report.push(
  `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC · Deno ` +
    `${Deno.version.deno} · \`${["deno run -A bench/profile.ts", ...Deno.args].join(" ")}\` · ` +
    `load: ${load} (after 1 s of warm-up) · connctx module: ` +
    `${root === REPO_ROOT ? "this checkout" : root} (${await gitDescribe(root)})`,
);
if (modes.includes("cpu")) {
  report.push("", "### CPU profile");
  for (const kind of kinds) {
    if (kind === "node") continue;
    report.push("", await cpuProfile(kind, dir));
  }
}
if (modes.includes("native")) {
  report.push("", "### Native profile (perf record)");
  for (const kind of kinds) {
    if (kind === "node") continue;
    report.push("", await nativeProfile(kind, dir));
  }
}
if (modes.includes("alloc")) {
  report.push(
    "",
    "### Allocation per request (V8 sampling heap profiler, 4 KiB mean interval)",
  );
  for (const kind of kinds) {
    if (kind === "node") continue;
    report.push("", await allocProfile(kind));
  }
}
if (modes.includes("strace")) {
  const traces = new Map<Kind, Trace[]>(kinds.map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) {
    const shift = run % kinds.length;
    for (const kind of [...kinds.slice(shift), ...kinds.slice(0, shift)]) {
      traces.get(kind)!.push(await trace(kind, dir, run + 1));
    }
  }
  report.push(
    "",
    `### System calls per request (strace -c -f, median of ${RUNS} runs)`,
    "",
    straceTable(kinds, traces),
  );
}
if (modes.includes("perf")) {
  const costs = new Map<Kind, Cost[]>(kinds.map((k) => [k, []]));
  for (let run = 0; run < RUNS; run++) {
    const shift = run % kinds.length;
    for (const kind of [...kinds.slice(shift), ...kinds.slice(0, shift)]) {
      costs.get(kind)!.push(await perfCost(kind, dir, run + 1));
    }
  }
  report.push(
    "",
    `### CPU time, context switches and system calls per request (perf stat ` +
      `tracepoints + /proc, no tracer; median of ${RUNS} runs)`,
    "",
    perfTable(kinds, costs),
  );
}
if (values.keep === undefined) await Deno.remove(dir, { recursive: true });
else console.error(`profiles and strace output kept in ${dir}`);
