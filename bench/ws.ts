// WebSocket benchmark: connctx vs Deno.serve + Deno.upgradeWebSocket vs
// node:http + ws, on loopback.
//
//   deno run -A bench/ws.ts [--rounds=9] [--duration=2] [--warmup=1]
//       [--scenario=small,big,idle] [--server=connctx,connctx-deno,deno,node]
//       [--connections=100] [--idle=5000]
//
// Scenarios:
//   small  100 sockets, each echoing a 32-byte text message in a closed loop
//          (one message in flight per socket): messages/s, and the p50/p99
//          round trip over every message of the measured window.
//   big    4 sockets echoing a 1 MiB binary message in a closed loop: MiB/s
//          (each way) and p99 round trip.
//   idle   opens --idle sockets (default 5000) and reports the server's
//          resident memory per open socket: (RSS with them open − RSS before)
//          / count, after the sockets have been idle for 2 s; both readings
//          after a full GC (servers run with --expose-gc; GET /gc).
//
// Servers (bench/servers/): connctx (`upgradeWebSocket`), connctx-deno (the
// same engine reached through the `Deno.upgradeWebSocket` wrapper, as an
// unchanged Deno.serve handler would), deno (Deno.serve +
// Deno.upgradeWebSocket), node (node:http + ws 8, default options; installed
// with npm into a cache directory on first use, node must be on PATH).
//
// Method: as bench/run.ts. A fresh server process per run; the load comes
// from a child process running this script in client mode (raw frames,
// pre-masked, so the client does as little as possible). Rounds are the
// outer loop and the server order rotates every round. Every figure is the
// MEDIAN over the rounds with its min–max; ratios are computed per round and
// summarised the same way. Server CPU time (utime+stime from /proc) over the
// measured window gives messages per server CPU-second, which does not
// depend on how much of the machine the client took.

import { parseArgs } from "node:util";
import { benchPath, type RunningServer, startServer } from "./_harness.ts";
import { summarize, type Summary } from "./_stats.ts";

const SERVERS = ["connctx", "connctx-deno", "deno", "node"] as const;
type Server = typeof SERVERS[number];

const args = parseArgs({
  args: Deno.args,
  options: {
    client: { type: "string" },
    port: { type: "string" },
    rounds: { type: "string", default: "9" },
    duration: { type: "string", default: "2" },
    warmup: { type: "string", default: "1" },
    scenario: { type: "string", default: "small,big,idle" },
    server: { type: "string", default: SERVERS.join(",") },
    connections: { type: "string", default: "100" },
    idle: { type: "string", default: "5000" },
  },
});

const enc = new TextEncoder();

// ---------------------------------------------------------------- client --

interface ClientResult {
  messages: number;
  seconds: number;
  p50: number;
  p99: number;
  bytes: number;
  /** Server CPU ms over the measured window (filled in by the parent). */
  cpuMs?: number;
}

async function handshake(port: number): Promise<Deno.TcpConn> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  conn.setNoDelay(true);
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await writeAll(
    conn,
    enc.encode(
      `GET / HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    ),
  );
  const buf = new Uint8Array(1024);
  let got = "";
  while (!got.includes("\r\n\r\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("closed during handshake");
    got += new TextDecoder().decode(buf.subarray(0, n));
  }
  if (!got.startsWith("HTTP/1.1 101")) {
    throw new Error(`handshake refused: ${got.split("\r\n")[0]}`);
  }
  if (got.indexOf("\r\n\r\n") + 4 !== got.length) throw new Error("unexpected bytes after 101");
  return conn;
}

async function writeAll(conn: Deno.Conn, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await conn.write(b.subarray(o));
}

/** A masked client frame (fixed mask: the client's cost is not measured). */
function maskedFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const len = payload.length;
  const head = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const out = new Uint8Array(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65536) {
    out[1] = 0x80 | 126;
    out[2] = len >> 8;
    out[3] = len & 255;
  } else {
    out[1] = 0x80 | 127;
    new DataView(out.buffer).setUint32(6, len);
  }
  const mask = [0x37, 0xfa, 0x21, 0x3d];
  out.set(mask, head);
  for (let i = 0; i < len; i++) out[head + 4 + i] = payload[i] ^ mask[i & 3];
  return out;
}

async function runClient(
  port: number,
  scenario: string,
  connections: number,
  warmupS: number,
  durationS: number,
): Promise<ClientResult> {
  const big = scenario === "big";
  const payload = big ? new Uint8Array(1 << 20).map((_, i) => i * 31) : enc.encode("x".repeat(32));
  const frame = maskedFrame(big ? 2 : 1, payload);
  const replySize = payload.length + (payload.length < 126 ? 2 : payload.length < 65536 ? 4 : 10);
  const conns = await Promise.all(Array.from({ length: connections }, () => handshake(port)));
  let measuring = false;
  let stop = false;
  let messages = 0;
  const lat: number[] = [];
  const t0 = performance.now();
  const warmEnd = t0 + warmupS * 1000;
  const end = warmEnd + durationS * 1000;
  let startedAt = 0;
  const loop = async (conn: Deno.TcpConn) => {
    const buf = new Uint8Array(big ? 1 << 20 : 4096);
    while (!stop) {
      const sent = performance.now();
      await writeAll(conn, frame);
      let got = 0;
      while (got < replySize) {
        const n = await conn.read(buf);
        if (n === null) throw new Error("server closed the connection");
        got += n;
      }
      const now = performance.now();
      if (measuring) {
        messages++;
        lat.push(now - sent);
      }
    }
  };
  const timer = setInterval(() => {
    const now = performance.now();
    if (!measuring && now >= warmEnd && now < end) {
      measuring = true;
      startedAt = now;
      console.log("MEASURING"); // the parent samples server CPU from here
    }
    if (now >= end) {
      if (measuring) console.log("DONE");
      stop = true;
      measuring = false;
      clearInterval(timer);
    }
  }, 5);
  await Promise.all(conns.map(loop));
  const seconds = (performance.now() - startedAt) / 1000;
  for (const c of conns) {
    try {
      c.close();
    } catch { /* closed */ }
  }
  lat.sort((a, b) => a - b);
  const q = (p: number) =>
    lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : NaN;
  return { messages, seconds, p50: q(0.5), p99: q(0.99), bytes: messages * payload.length };
}

async function idleClient(port: number, count: number): Promise<void> {
  const conns: Deno.TcpConn[] = [];
  for (let i = 0; i < count; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, count - i) }, () => handshake(port)),
    );
    conns.push(...batch);
  }
  console.log(`OPEN ${conns.length}`);
  // Hold them until the parent kills us (a timer keeps the process alive).
  setInterval(() => {}, 1 << 30);
  await new Promise(() => {});
}

if (args.values.client) {
  const port = Number(args.values.port);
  if (args.values.client === "idle") {
    await idleClient(port, Number(args.values.idle));
  } else {
    const r = await runClient(
      port,
      args.values.client,
      Number(args.values.connections),
      Number(args.values.warmup),
      Number(args.values.duration),
    );
    console.log(`RESULT ${JSON.stringify(r)}`);
  }
  Deno.exit(0);
}

// ---------------------------------------------------------------- parent --

const NODE_WS_DIR = `${Deno.env.get("TMPDIR") ?? "/tmp"}/connctx-bench-node-ws`;

async function ensureNodeWs(): Promise<string> {
  const path = `${NODE_WS_DIR}/node_modules/ws`;
  try {
    await Deno.stat(`${path}/package.json`);
    return path;
  } catch { /* install */ }
  await Deno.mkdir(NODE_WS_DIR, { recursive: true });
  const out = await new Deno.Command("npm", {
    args: ["install", "--no-save", "--no-audit", "--no-fund", "--prefix", NODE_WS_DIR, "ws@8"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`npm install ws failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return path;
}

function serverArgv(kind: Server, gc: boolean): { argv: string[] } {
  const deno = (script: string, ...flags: string[]) => [
    Deno.execPath(),
    "run",
    "-A",
    ...(gc ? ["--v8-flags=--expose-gc"] : []),
    benchPath(script),
    "--port=0",
    ...flags,
  ];
  switch (kind) {
    case "connctx":
      return { argv: deno("./servers/ws_connctx.ts") };
    case "connctx-deno":
      return { argv: deno("./servers/ws_connctx.ts", "--api=deno") };
    case "deno":
      return { argv: deno("./servers/ws_deno.ts") };
    case "node":
      return {
        argv: [
          "node",
          ...(gc ? ["--expose-gc"] : []),
          benchPath("./servers/ws_node.mjs"),
          "--port=0",
        ],
      };
  }
}

async function start(kind: Server, wsModule: string, gc = false): Promise<RunningServer> {
  const { argv } = serverArgv(kind, gc);
  if (kind === "node") {
    // startServer passes no environment; wrap node in env(1).
    return await startServer(["env", `WS_MODULE=${wsModule}`, ...argv]);
  }
  return await startServer(argv);
}

/** The server's own pid: for node it is env's child (env execs, same pid). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
  return ticks * 10; // USER_HZ = 100
}

function rssKiB(pid: number): number {
  const m = Deno.readTextFileSync(`/proc/${pid}/status`).match(/VmRSS:\s+(\d+) kB/);
  return m ? Number(m[1]) : NaN;
}

async function runLoad(
  server: RunningServer,
  scenario: string,
  connections: number,
): Promise<ClientResult> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      benchPath("./ws.ts"),
      `--client=${scenario}`,
      `--port=${server.port}`,
      `--connections=${connections}`,
      `--warmup=${args.values.warmup}`,
      `--duration=${args.values.duration}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  let cpu0 = 0, cpu1 = 0;
  for await (const text of child.stdout.pipeThrough(new TextDecoderStream())) {
    out += text;
    if (cpu0 === 0 && out.includes("MEASURING")) cpu0 = cpuMs(server.pid);
    if (cpu1 === 0 && out.includes("DONE")) cpu1 = cpuMs(server.pid);
  }
  const status = await child.status;
  const err = await new Response(child.stderr).text();
  const m = out.match(/RESULT (.*)/);
  if (!status.success || !m) throw new Error(`client failed: ${out}\n${err}\n${server.output()}`);
  const r = JSON.parse(m[1]) as ClientResult;
  r.cpuMs = cpu1 - cpu0;
  return r;
}

/** A full GC in the server (its GET /gc), then its resident memory. */
async function settledRss(server: RunningServer): Promise<number> {
  for (let i = 0; i < 2; i++) await (await fetch(`${server.url}/gc`)).text();
  await new Promise((r) => setTimeout(r, 300));
  return rssKiB(server.pid);
}

async function runIdle(server: RunningServer, count: number): Promise<number> {
  // Warm up: a few sockets open and close, so lazily loaded code is loaded.
  await runLoadQuiet(server);
  const before = await settledRss(server);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      benchPath("./ws.ts"),
      "--client=idle",
      `--port=${server.port}`,
      `--idle=${count}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  while (!out.includes("OPEN")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`idle client failed: ${await new Response(child.stderr).text()}`);
    out += value;
  }
  await new Promise((r) => setTimeout(r, 2000));
  const after = await settledRss(server);
  try {
    child.kill("SIGKILL");
  } catch { /* already gone */ }
  await child.status;
  reader.cancel().catch(() => {});
  child.stderr.cancel().catch(() => {});
  return ((after - before) * 1024) / count;
}

async function runLoadQuiet(server: RunningServer): Promise<void> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      benchPath("./ws.ts"),
      "--client=small",
      `--port=${server.port}`,
      "--connections=10",
      "--warmup=0",
      "--duration=0.3",
    ],
    stdout: "null",
    stderr: "null",
  }).output();
  if (!out.success) throw new Error("warm-up client failed");
}

const fmt = (s: Summary, digits = 0) =>
  `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`;

if (import.meta.main) {
  const rounds = Number(args.values.rounds);
  const scenarios = args.values.scenario!.split(",");
  const servers = args.values.server!.split(",") as Server[];
  const connections = Number(args.values.connections);
  const idleCount = Number(args.values.idle);
  const wsModule = servers.includes("node") ? await ensureNodeWs() : "";

  // results[scenario][server] = per-round values
  type Row = { rate: number[]; p50: number[]; p99: number[]; perCpu: number[]; mem: number[] };
  const results: Record<string, Record<string, Row>> = {};
  const row = (
    sc: string,
    sv: string,
  ): Row => ((results[sc] ??= {})[sv] ??= { rate: [], p50: [], p99: [], perCpu: [], mem: [] });

  for (let round = 0; round < rounds; round++) {
    const order = servers.map((_, i) => servers[(i + round) % servers.length]);
    for (const sc of scenarios) {
      for (const sv of order) {
        const server = await start(sv, wsModule, sc === "idle");
        try {
          if (sc === "idle") {
            const per = await runIdle(server, idleCount);
            row(sc, sv).mem.push(per);
            console.error(`round ${round + 1}/${rounds} ${sc} ${sv}: ${per.toFixed(0)} B/socket`);
          } else {
            const r = await runLoad(server, sc, sc === "big" ? 4 : connections);
            const rate = sc === "big" ? r.bytes / r.seconds / (1 << 20) : r.messages / r.seconds;
            const x = row(sc, sv);
            x.rate.push(rate);
            x.p50.push(r.p50);
            x.p99.push(r.p99);
            x.perCpu.push(r.messages / ((r.cpuMs ?? NaN) / 1000));
            console.error(
              `round ${round + 1}/${rounds} ${sc} ${sv}: ${rate.toFixed(0)} ${
                sc === "big" ? "MiB/s" : "msg/s"
              } p99 ${r.p99.toFixed(2)} ms, server CPU ${r.cpuMs} ms`,
            );
          }
        } finally {
          await server.stop();
        }
      }
    }
  }

  // Per-round ratios against deno and node.
  const ratio = (sc: string, a: string, b: string, key: "rate" | "perCpu" | "mem") => {
    const x = results[sc]?.[a]?.[key], y = results[sc]?.[b]?.[key];
    if (!x || !y) return null;
    return summarize(x.map((v, i) => v / y[i]));
  };
  const lines: string[] = [];
  lines.push(`# WebSocket benchmark (${new Date().toISOString().slice(0, 10)}, ${rounds} rounds)`);
  lines.push("");
  lines.push(
    `Deno ${Deno.version.deno}; node ${
      servers.includes("node")
        ? new TextDecoder().decode(
          (await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output())
            .stdout,
        ).trim()
        : "–"
    }; ${navigator.hardwareConcurrency} CPUs. Medians over rounds, (min–max).`,
  );
  for (const sc of scenarios) {
    lines.push("");
    if (sc === "idle") {
      lines.push(`## idle: memory per open socket (${idleCount} sockets)`);
      lines.push("");
      lines.push("| server | bytes/socket |");
      lines.push("| --- | ---: |");
      for (const sv of servers) lines.push(`| ${sv} | ${fmt(summarize(results[sc][sv].mem))} |`);
      continue;
    }
    const unit = sc === "big" ? "MiB/s" : "msg/s";
    lines.push(
      sc === "big"
        ? "## big: 1 MiB binary echo, 4 sockets"
        : `## small: 32-byte text echo, ${connections} sockets`,
    );
    lines.push("");
    lines.push(`| server | ${unit} | p50 ms | p99 ms | msg per server CPU-s | × deno | × node |`);
    lines.push("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (const sv of servers) {
      const x = results[sc][sv];
      const rd = ratio(sc, sv, "deno", "rate");
      const rn = ratio(sc, sv, "node", "rate");
      lines.push(
        `| ${sv} | ${fmt(summarize(x.rate))} | ${fmt(summarize(x.p50), 2)} | ${
          fmt(summarize(x.p99), 2)
        } | ${fmt(summarize(x.perCpu))} | ${rd ? fmt(rd, 2) : "–"} | ${rn ? fmt(rn, 2) : "–"} |`,
      );
    }
  }
  console.log(lines.join("\n"));
}
