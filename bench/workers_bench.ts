// Multi-core throughput: examples/worker_app.ts with 1 worker vs N workers
// (SO_REUSEPORT), measured with wrk on loopback.
//
//   deno run -A bench/workers_bench.ts [--workers=1,2] [--paths=/hello,/cpu]
//       [--duration=5] [--warmup=1] [--rounds=3] [--connections=50] [--threads=1]
//
// Each (path, round, worker count) starts a fresh `deno run --unstable-net
// examples/worker_app.ts` on a free port, waits for its READY line, runs a
// warm-up and the measured `wrk` load, then stops it with SIGTERM. Prints a
// markdown table of median requests/s and the gain over the first worker
// count. /hello is a tiny response (the server's per-request overhead); /cpu
// burns about a millisecond of CPU per request. wrk shares the machine's
// cores with the server: with as many cores as workers, a cheap route gains
// little because wrk takes a core of its own.

import { parseArgs } from "node:util";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    workers: { type: "string", default: "1,2" },
    paths: { type: "string", default: "/hello,/cpu" },
    duration: { type: "string", default: "5" },
    warmup: { type: "string", default: "1" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "50" },
    threads: { type: "string", default: "1" },
  },
});

const counts = values.workers.split(",").map(Number);
const paths = values.paths.split(",");
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const threads = Number(values.threads);
for (const n of [...counts, duration, rounds, connections, threads]) {
  if (!Number.isInteger(n) || n < 1) throw new Error(`bad option value: ${n}`);
}

const APP = decodeURIComponent(new URL("../examples/worker_app.ts", import.meta.url).pathname);

interface Running {
  port: number;
  stop(): Promise<void>;
}

async function start(workers: number): Promise<Running> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--unstable-net", APP],
    env: { WORKERS: String(workers), PORT: "0", HOST: "127.0.0.1", NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => (exited = true, s));
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`worker_app exited before READY:\n${out}`);
    out += value;
    const m = /READY workers-\d+ http:\/\/127\.0\.0\.1:(\d+)/.exec(out);
    if (m) port = Number(m[1]);
  }
  clearTimeout(timer);
  const draining = (async () => {
    while (!(await reader.read()).done);
  })();
  return {
    port,
    async stop() {
      if (!exited) child.kill("SIGTERM");
      const t = setTimeout(() => !exited && child.kill("SIGKILL"), 5_000);
      await status;
      clearTimeout(t);
      await draining;
    },
  };
}

async function wrk(
  port: number,
  path: string,
  seconds: number,
): Promise<{ rps: number; errors: number }> {
  const out = await new Deno.Command("wrk", {
    args: [
      `-t${threads}`,
      `-c${connections}`,
      `-d${seconds}s`,
      `http://127.0.0.1:${port}${path}`,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = /^Requests\/sec:\s+([\d.]+)/m.exec(text);
  if (!out.success || rps === null) throw new Error(`wrk failed:\n${text}`);
  let errors = 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (socket) errors += socket.slice(1).reduce((a, b) => a + Number(b), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  return { rps: Number(rps[1]), errors };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

try {
  await new Deno.Command("wrk", { args: ["-v"], stdout: "null", stderr: "null" }).output();
} catch {
  console.error("wrk is not installed (apt-get install -y wrk)");
  Deno.exit(1);
}

let errors = 0;
const table: string[] = [];
for (const path of paths) {
  const results = new Map<number, number[]>(counts.map((n) => [n, []]));
  for (let round = 1; round <= rounds; round++) {
    // Alternate the order between rounds so drift favors no configuration.
    const order = round % 2 ? counts : [...counts].reverse();
    for (const n of order) {
      const server = await start(n);
      try {
        if (warmup > 0) await wrk(server.port, path, warmup);
        const r = await wrk(server.port, path, duration);
        results.get(n)!.push(r.rps);
        errors += r.errors;
        console.error(`${path} round ${round}: ${n} worker(s): ${r.rps.toFixed(0)} req/s`);
      } finally {
        await server.stop();
      }
    }
  }
  const base = median(results.get(counts[0])!);
  for (const n of counts) {
    const m = median(results.get(n)!);
    table.push(`| ${path} | ${n} | ${m.toFixed(0)} | ${(m / base).toFixed(2)}× |`);
  }
}

console.log(
  `\nwrk -t${threads} -c${connections} -d${duration}s, ${rounds} rounds, ` +
    `${navigator.hardwareConcurrency} cores, median:\n`,
);
console.log(`| path | workers | req/s | vs ${counts[0]} |`);
console.log("| --- | ---: | ---: | ---: |");
for (const row of table) console.log(row);
if (errors > 0) console.log(`\n${errors} socket errors or non-2xx responses`);
