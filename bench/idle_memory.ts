// Memory per idle keep-alive connection, for connctx, Deno.serve and
// node:http. One run of one server (a fresh child process): warm it up, GC,
// read VmRSS; open N connections from this process and send one keep-alive
// GET /hello on each (reading the response, keeping the connection open); GC,
// read VmRSS again; (after - before) / N is that run's KiB per connection.
// Each server runs --runs times (default 7), the servers alternating within a
// round in an order that rotates every round; the table reports the median
// KiB per connection with its IQR and min–max (never a best run).
//
//   deno run -A bench/idle_memory.ts [--connections=5000] [--runs=7]
//       [--server=connctx,deno,node] [--root=DIR]
//
// --root=DIR loads connctx from the checkout at DIR (see bench/run.ts).
// With the defaults a run takes about 2 s per server and round: ~1 minute in all.
//
// Needs about 2 × N + 100 file descriptors here and N + 100 in the server;
// if `ulimit -n` is lower, the script re-runs itself under
// `bash -c 'ulimit -n 20000; ...'` (or run `ulimit -n 20000` yourself first).
// The servers are started with gc() exposed; GET /__gc runs it.

import { parseArgs } from "node:util";
import {
  firstLine,
  gitDescribe,
  REPO_ROOT,
  resolveRoot,
  type RunningServer,
  serverCommand,
  type ServerKind,
  startServer,
  verifyRoot,
} from "./_harness.ts";
import { median, summarize } from "./_stats.ts";
import { HELLO } from "./servers/payloads.mjs";

const LABELS: Record<string, string> = {
  connctx: "connctx",
  deno: "Deno.serve",
  node: "node:http",
};
const KINDS = Object.keys(LABELS) as ServerKind[];

const { values } = parseArgs({
  args: Deno.args,
  options: {
    connections: { type: "string", default: "5000" },
    runs: { type: "string", default: "7" },
    server: { type: "string", default: KINDS.join() },
    root: { type: "string" },
  },
});
const N = Number(values.connections);
if (!Number.isInteger(N) || N < 1) throw new Error("--connections: integer");
const RUNS = Number(values.runs);
if (!Number.isInteger(RUNS) || RUNS < 1) throw new Error("--runs: integer");
const ROOT = values.root === undefined ? undefined : resolveRoot(values.root);
const kinds = values.server.split(",").map((s) => s.trim()) as ServerKind[];
for (const k of kinds) {
  if (!KINDS.includes(k)) throw new Error(`--server: unknown ${k}`);
}

// ---------------------------------------------------------------------------
// File-descriptor limit

const FD_LIMIT = 20_000;

async function fdLimit(): Promise<number> {
  const out = await new Deno.Command("bash", { args: ["-c", "ulimit -n"] })
    .output();
  const text = new TextDecoder().decode(out.stdout).trim();
  return text === "unlimited" ? Infinity : Number(text);
}

if (await fdLimit() < 2 * N + 100) {
  if (Deno.env.get("CONNCTX_BENCH_REEXEC")) {
    console.error(
      `ulimit -n is ${await fdLimit()}, need ${2 * N + 100}: ` +
        `run \`ulimit -n ${FD_LIMIT}\` (as root or with a high hard limit)`,
    );
    Deno.exit(1);
  }
  const argv = [
    Deno.execPath(),
    "run",
    "-A",
    new URL(import.meta.url).pathname,
    ...Deno.args,
  ];
  console.error(`raising the fd limit: ulimit -n ${FD_LIMIT}`);
  const { code } = await new Deno.Command("bash", {
    // Up to FD_LIMIT, else as far as the hard limit allows; the re-run checks
    // again and explains if that is still too low.
    args: [
      "-c",
      `ulimit -n ${FD_LIMIT} 2>/dev/null || ulimit -n "$(ulimit -Hn)"; ` +
      `exec "$@"`,
      "bash",
      ...argv,
    ],
    env: { CONNCTX_BENCH_REEXEC: "1" },
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  Deno.exit(code);
}

// ---------------------------------------------------------------------------
// Measurement

const encoder = new TextEncoder();
const KEEP_ALIVE = encoder.encode("GET /hello HTTP/1.1\r\nHost: x\r\n\r\n");
const HELLO_BYTES = encoder.encode(HELLO);

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength;) {
    off += await conn.write(bytes.subarray(off));
  }
}

function endsWith(buf: Uint8Array, n: number, suffix: Uint8Array): boolean {
  if (n < suffix.length) return false;
  for (let i = 0; i < suffix.length; i++) {
    if (buf[n - suffix.length + i] !== suffix[i]) return false;
  }
  return true;
}

/** Sends one keep-alive GET /hello and reads the whole response. */
async function helloRequest(conn: Deno.Conn, buf: Uint8Array): Promise<void> {
  await writeAll(conn, KEEP_ALIVE);
  let n = 0;
  while (!endsWith(buf, n, HELLO_BYTES)) {
    const r = await conn.read(buf.subarray(n));
    if (r === null) throw new Error("connection closed before the response");
    n += r;
    if (n === buf.byteLength) throw new Error("response too large");
  }
}

/** Asks the server to run a full GC (GET /__gc), then lets it settle. */
async function serverGc(server: RunningServer): Promise<void> {
  // No pooled connection may stay open: it would count as an idle connection.
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.url}/__gc`, { client });
      await res.body?.cancel();
      if (res.status !== 200) throw new Error(`/__gc: status ${res.status}`);
    }
  } finally {
    client.close();
  }
  await sleep(300);
}

async function vmRssKiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(status);
  if (!m) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Number of sockets the server process holds open. */
async function openSockets(pid: number): Promise<number> {
  let n = 0;
  for await (const entry of Deno.readDir(`/proc/${pid}/fd`)) {
    try {
      const target = await Deno.readLink(`/proc/${pid}/fd/${entry.name}`);
      if (target.startsWith("socket:")) n++;
    } catch {
      // fd closed while iterating
    }
  }
  return n;
}

interface Result {
  kind: ServerKind;
  beforeKiB: number;
  afterKiB: number;
  socketsBefore: number;
  socketsAfter: number;
  seconds: number;
}

async function measure(kind: ServerKind): Promise<Result> {
  const t0 = performance.now();
  const server = await startServer(
    serverCommand(kind, { exposeGc: true, root: ROOT }),
  );
  const conns: Deno.Conn[] = [];
  const connect = () => Deno.connect({ hostname: server.hostname, port: server.port });
  try {
    // Warm up: 2000 requests on 8 connections, then close them.
    const warm = await Promise.all(Array.from({ length: 8 }, connect));
    const bufs = warm.map(() => new Uint8Array(1024));
    for (let i = 0; i < 250; i++) {
      await Promise.all(warm.map((c, j) => helloRequest(c, bufs[j])));
    }
    for (const c of warm) c.close();
    await sleep(200);
    await serverGc(server);
    const beforeKiB = await vmRssKiB(server.pid);
    const socketsBefore = await openSockets(server.pid);

    // Open N keep-alive connections, 100 at a time in flight.
    let next = 0;
    await Promise.all(Array.from({ length: 100 }, async () => {
      const b = new Uint8Array(1024);
      while (next < N) {
        next++;
        const conn = await connect();
        conns.push(conn);
        await helloRequest(conn, b);
      }
    }));
    await sleep(500);
    await serverGc(server);
    const afterKiB = await vmRssKiB(server.pid);
    const socketsAfter = await openSockets(server.pid);
    return {
      kind,
      beforeKiB,
      afterKiB,
      socketsBefore,
      socketsAfter,
      seconds: (performance.now() - t0) / 1000,
    };
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch {
        // already closed
      }
    }
    await server.stop();
  }
}

if (ROOT !== undefined && kinds.includes("connctx")) {
  const n = await verifyRoot(ROOT);
  console.error(`--root: connctx loads ${n} modules from ${ROOT}`);
}

const WATCHDOG_S = 60 + 30 * RUNS * kinds.length;
const watchdog = setTimeout(() => {
  console.error(`idle_memory: took longer than ${WATCHDOG_S} s, giving up`);
  Deno.exit(2);
}, WATCHDOG_S * 1000);

const started = performance.now();
const runs = new Map<ServerKind, Result[]>(kinds.map((k) => [k, []]));
const failures = new Map<ServerKind, string>();
for (let round = 0; round < RUNS; round++) {
  const shift = round % kinds.length;
  for (const kind of [...kinds.slice(shift), ...kinds.slice(0, shift)]) {
    const tag = `round ${round + 1}/${RUNS} ${LABELS[kind]}`;
    try {
      const r = await measure(kind);
      runs.get(kind)!.push(r);
      console.error(
        `${tag}: ${((r.afterKiB - r.beforeKiB) / N).toFixed(2)} KiB/conn ` +
          `(RSS ${(r.beforeKiB / 1024).toFixed(1)} → ` +
          `${(r.afterKiB / 1024).toFixed(1)} MiB, ${r.seconds.toFixed(1)} s)`,
      );
      if (r.socketsAfter - r.socketsBefore < N) {
        console.error(
          `  warning: ${LABELS[kind]} holds only ` +
            `${r.socketsAfter - r.socketsBefore} of ${N} connections open`,
        );
      }
    } catch (err) {
      failures.set(kind, (err as Error).message);
      console.error(`${tag}: FAILED ${(err as Error).message}`);
    }
  }
}
clearTimeout(watchdog);
const elapsed = (performance.now() - started) / 1000;

const node = await firstLine("node", ["--version"]) || "not found";
const root = ROOT ?? REPO_ROOT;
console.log(
  `${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC · ` +
    `Deno ${Deno.version.deno} · Node ${node} · ` +
    `\`${["deno run -A bench/idle_memory.ts", ...Deno.args].join(" ")}\` · ` +
    `${RUNS} run${RUNS === 1 ? "" : "s"} per server, ${elapsed.toFixed(0)} s · connctx module: ` +
    `${root === REPO_ROOT ? "this checkout" : root} (${await gitDescribe(root)})`,
);
console.log("");
console.log(
  `Method: per run, a fresh server; RSS after GC before and after opening ` +
    `${N} idle keep-alive connections (each served one GET /hello); KiB / ` +
    `idle conn = (after − before) / ${N}. Median over ${RUNS} run${RUNS === 1 ? "" : "s"} per ` +
    `server (servers alternate, order rotating), with IQR and min–max.`,
);
console.log("");
console.log(
  "| server | KiB / idle conn | IQR | min–max | RSS before | " +
    `RSS with ${N} idle conns | open sockets | runs |`,
);
console.log("|---|--:|--:|--:|--:|--:|--:|--:|");
for (const kind of kinds) {
  const rs = runs.get(kind)!;
  if (rs.length === 0) {
    console.log(`| ${LABELS[kind]} | failed | – | – | – | – | – | 0 |`);
    continue;
  }
  const per = summarize(rs.map((r) => (r.afterKiB - r.beforeKiB) / N));
  const mib = (xs: number[]) => `${(median(xs) / 1024).toFixed(1)} MiB`;
  const sockets = (xs: number[]) => Math.round(median(xs));
  console.log(
    `| ${LABELS[kind]} | ${per.median.toFixed(2)} | ` +
      `${per.q1.toFixed(2)}–${per.q3.toFixed(2)} | ` +
      `${per.min.toFixed(2)}–${per.max.toFixed(2)} | ` +
      `${mib(rs.map((r) => r.beforeKiB))} | ${mib(rs.map((r) => r.afterKiB))} | ` +
      `${sockets(rs.map((r) => r.socketsBefore))} → ` +
      `${sockets(rs.map((r) => r.socketsAfter))} | ${rs.length} |`,
  );
}
for (const [kind, message] of failures) {
  console.log(`\n- ${LABELS[kind]}: failed in some runs: ${message.split("\n")[0]}`);
}
