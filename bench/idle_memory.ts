// Memory per idle keep-alive connection, for connctx, Deno.serve and
// node:http. For each server (a child process): warm it up, GC, read VmRSS;
// open N connections from this process and send one keep-alive GET /hello on
// each (reading the response, keeping the connection open); GC, read VmRSS
// again. Reports (after - before) / N.
//
//   deno run -A bench/idle_memory.ts [--connections=5000]
//       [--server=connctx,deno,node]
//
// Needs about 2 × N + 100 file descriptors here and N + 100 in the server;
// if `ulimit -n` is lower, the script re-runs itself under
// `bash -c 'ulimit -n 20000; ...'` (or run `ulimit -n 20000` yourself first).
// The servers are started with gc() exposed; GET /__gc runs it.

import { parseArgs } from "node:util";
import { type RunningServer, serverCommand, type ServerKind, startServer } from "./_harness.ts";
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
    server: { type: "string", default: KINDS.join() },
  },
});
const N = Number(values.connections);
if (!Number.isInteger(N) || N < 1) throw new Error("--connections: integer");
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
  const server = await startServer(serverCommand(kind, { exposeGc: true }));
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

const watchdog = setTimeout(() => {
  console.error("idle_memory: took longer than 60 s, giving up");
  Deno.exit(2);
}, 60_000);

console.log(
  `| server | RSS before | RSS with ${N} idle conns | KiB / idle conn | open sockets |`,
);
console.log("|---|--:|--:|--:|--:|");
for (const kind of kinds) {
  try {
    const r = await measure(kind);
    const perConn = (r.afterKiB - r.beforeKiB) / N;
    console.log(
      `| ${LABELS[kind]} | ${(r.beforeKiB / 1024).toFixed(1)} MiB | ` +
        `${(r.afterKiB / 1024).toFixed(1)} MiB | ${perConn.toFixed(1)} | ` +
        `${r.socketsBefore} → ${r.socketsAfter} |`,
    );
    console.error(`  ${LABELS[kind]}: ${r.seconds.toFixed(1)} s`);
    if (r.socketsAfter - r.socketsBefore < N) {
      console.error(
        `  warning: ${LABELS[kind]} holds only ` +
          `${r.socketsAfter - r.socketsBefore} of ${N} connections open`,
      );
    }
  } catch (err) {
    console.log(`| ${LABELS[kind]} | failed | – | – | – |`);
    console.error(`${LABELS[kind]}: ${(err as Error).message}`);
  }
}
clearTimeout(watchdog);
