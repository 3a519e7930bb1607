// OpenTelemetry cost benchmark: connctx and Deno.serve, each with the
// runtime's telemetry off and on, hello keep-alive (GET /hello) with wrk.
//
//   deno run -A bench/telemetry.ts [--rounds=9 | --quick] [--threads=1,2]
//       [--duration=2s] [--warmup=1s] [--connections=50] [--raw]
//
// Method: that of bench/run.ts. A round runs every (wrk threads, server,
// telemetry) combination once, each in a fresh server process on a free port:
// wait for its READY line, check one response, 1 s warm-up, 2 s measured, kill.
// Within a round the four variants of one thread count run back to back, in an
// order that rotates every round (so does the threads order); rounds are the
// outer loop. Rows report the median req/s over the rounds with IQR and
// min–max and the median p99; ratios are medians of same-round ratios.
//
// Telemetry ON = the server process started with OTEL_DENO=true and its OTLP
// exporter pointed (http/protobuf) at a sink this process serves on
// 127.0.0.1: a Deno.serve that reads and discards every POST body and answers
// 200. Each run exports under its own endpoint path
// (`http://127.0.0.1:<sink>/run-<n>`, so `/run-<n>/v1/traces`), which lets
// the benchmark check per run that telemetry really was on: an ON run that
// delivered no /v1/traces POST, or an OFF run that delivered anything, aborts
// the benchmark. The sink shares the machine's CPUs with the server and wrk,
// as a local collector would.
//
// Environment is passed by running the server argv of bench/_harness.ts under
// `env` (which execs, so the pid the harness signals is the server's own).

import { fmtK, fmtMs, fmtRps, parseCount, parseSeconds, plural, rotate } from "./_cli.ts";
import { parseArgs } from "node:util";
import {
  firstLine,
  gitDescribe,
  REPO_ROOT,
  type RunningServer,
  serverCommand,
  startServer,
} from "./_harness.ts";
import { summarize, type Summary } from "./_stats.ts";
import { parseWrk } from "./run.ts";
import { HELLO } from "./servers/payloads.mjs";

type Sample = ReturnType<typeof parseWrk>;
type ServerId = "connctx" | "deno";
type Variant = { server: ServerId; otel: boolean };

const SERVER_LABELS: Record<ServerId, string> = {
  connctx: "connctx",
  deno: "Deno.serve",
};
const SERVERS: ServerId[] = ["connctx", "deno"];
const VARIANTS: Variant[] = SERVERS.flatMap((server) => [
  { server, otel: false },
  { server, otel: true },
]);
const PATH = "/hello";

const DEFAULT_ROUNDS = 9;
const QUICK_ROUNDS = 3;
/** Seconds to start, check and stop one server (for the time estimate). */
const RUN_OVERHEAD = 0.4;

const USAGE = `usage: deno run -A bench/telemetry.ts [options]
  --rounds=${DEFAULT_ROUNDS}         rounds; every row is the median over them (min 1)
  --quick            ${QUICK_ROUNDS} rounds
  --threads=1,2      wrk -t values, one table each
  --duration=2s      measured load per run (whole seconds)
  --warmup=1s        unmeasured load before each measurement (0 to skip)
  --connections=50   concurrent connections (wrk -c)
  --raw              append every run's req/s, p99 and OTLP traffic`;

interface Options {
  duration: number;
  warmup: number;
  rounds: number;
  connections: number;
  threads: number[];
  raw: boolean;
}

function parseOptions(args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string", default: "2s" },
      warmup: { type: "string", default: "1s" },
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      connections: { type: "string", default: "50" },
      threads: { type: "string", default: "1,2" },
      raw: { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (values.quick && values.rounds !== undefined) {
    throw new Error("--quick and --rounds are exclusive");
  }
  const threads = [
    ...new Set(
      values.threads.split(",").map((t) => t.trim()).filter(Boolean)
        .map((t) => parseCount("threads", t)),
    ),
  ];
  if (threads.length === 0) throw new Error("--threads: empty list");
  return {
    duration: parseSeconds("duration", values.duration, 1),
    warmup: parseSeconds("warmup", values.warmup, 0),
    rounds: values.quick
      ? QUICK_ROUNDS
      : parseCount("rounds", values.rounds ?? `${DEFAULT_ROUNDS}`),
    connections: parseCount("connections", values.connections),
    threads,
    raw: values.raw,
  };
}

// ---------------------------------------------------------------------------
// OTLP sink

/** What the sink received under one run's endpoint path. */
interface Traffic {
  traces: number;
  metrics: number;
  other: number;
  bytes: number;
}

interface Sink {
  port: number;
  /** Traffic received so far under `/run-<id>/`. */
  traffic(id: number): Traffic;
  close(): Promise<void>;
}

function startSink(): Sink {
  const byRun = new Map<number, Traffic>();
  const traffic = (id: number): Traffic => {
    let t = byRun.get(id);
    if (!t) {
      t = { traces: 0, metrics: 0, other: 0, bytes: 0 };
      byRun.set(id, t);
    }
    return t;
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    async (req) => {
      const path = new URL(req.url).pathname;
      const m = /^\/run-(\d+)(\/.*)$/.exec(path);
      const t = traffic(m ? Number(m[1]) : -1);
      const body = req.body ? await req.arrayBuffer() : new ArrayBuffer(0);
      t.bytes += body.byteLength;
      if (req.method === "POST" && m?.[2] === "/v1/traces") t.traces++;
      else if (req.method === "POST" && m?.[2] === "/v1/metrics") t.metrics++;
      else t.other++;
      return new Response(null, {
        status: 200,
        headers: { "content-type": "application/x-protobuf" },
      });
    },
  );
  return {
    port: server.addr.port,
    traffic: (id) => ({ ...traffic(id) }),
    close: () => server.shutdown(),
  };
}

/** Thrown when a run's telemetry is not in the state it should be in. */
class TelemetryCheckError extends Error {}

// ---------------------------------------------------------------------------
// One run

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The server argv of bench/_harness.ts under `env`, telemetry on or off. */
function commandFor(v: Variant, sinkPort: number, runId: number): string[] {
  const argv = v.server === "connctx"
    ? serverCommand("connctx", { flags: ["--ctx-values=0"] })
    : serverCommand("deno");
  const endpoint = `http://127.0.0.1:${sinkPort}/run-${runId}`;
  // OFF: OTEL_DENO unset, but the endpoint still set, so a stray export
  // would reach the sink and fail the check.
  const env = v.otel
    ? [
      "OTEL_DENO=true",
      `OTEL_EXPORTER_OTLP_ENDPOINT=${endpoint}`,
      "OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf",
      "OTEL_DENO_CONSOLE=ignore",
      "OTEL_METRIC_EXPORT_INTERVAL=1000",
    ]
    : ["-u", "OTEL_DENO", `OTEL_EXPORTER_OTLP_ENDPOINT=${endpoint}`];
  return ["env", ...env, ...argv];
}

async function runWrk(
  opts: Options,
  threads: number,
  url: string,
  seconds: number,
): Promise<Sample> {
  const args = [
    `-t${threads}`,
    `-c${opts.connections}`,
    `-d${seconds}s`,
    "--latency",
    url,
  ];
  const out = await new Deno.Command("wrk", {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `wrk ${args.join(" ")} failed:\n${stdout}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return parseWrk(stdout);
}

async function checkResponse(url: string): Promise<void> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const res = await fetch(url, { client });
    const body = await res.text();
    if (res.status !== 200 || body !== HELLO) {
      throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(body.slice(0, 80))}`);
    }
  } finally {
    client.close();
  }
}

interface Run {
  sample: Sample;
  traffic: Traffic;
}

async function measure(
  opts: Options,
  threads: number,
  v: Variant,
  sink: Sink,
  runId: number,
): Promise<Run> {
  let running: RunningServer | undefined;
  let sample: Sample;
  try {
    running = await startServer(commandFor(v, sink.port, runId));
    const url = running.url + PATH;
    await checkResponse(url);
    if (opts.warmup > 0) await runWrk(opts, threads, url, opts.warmup);
    sample = await runWrk(opts, threads, url, opts.duration);
  } catch (err) {
    const output = running?.output().trim();
    throw new Error(
      (err as Error).message + (output ? `\nserver output:\n${output}` : ""),
    );
  } finally {
    await running?.stop();
  }
  // Exports already sent may still be in the sink's queue: wait a little
  // (bounded) for the first trace POST, and let OFF runs show any stray one.
  let traffic = sink.traffic(runId);
  for (let i = 0; i < 10 && (v.otel ? traffic.traces === 0 : i < 2); i++) {
    await sleep(100);
    traffic = sink.traffic(runId);
  }
  const label = `${SERVER_LABELS[v.server]} telemetry ${v.otel ? "on" : "off"}`;
  if (v.otel && traffic.traces === 0) {
    throw new TelemetryCheckError(
      `${label}: the sink received no /v1/traces POST (traffic ${
        JSON.stringify(traffic)
      }): telemetry is not on\nserver output:\n${running!.output().trim()}`,
    );
  }
  if (!v.otel && traffic.traces + traffic.metrics + traffic.other > 0) {
    throw new TelemetryCheckError(
      `${label}: the sink received OTLP traffic ${JSON.stringify(traffic)}`,
    );
  }
  return { sample, traffic };
}

// ---------------------------------------------------------------------------
// Reporting

function fmtRatio(s: Summary, digits = 3): string {
  if (s.n === 0) return "–";
  return `${s.median.toFixed(digits)}× (IQR ${s.q1.toFixed(digits)}–${s.q3.toFixed(digits)})`;
}

function fmtPct(ratio: number): string {
  const change = (ratio - 1) * 100;
  return `${change >= 0 ? "+" : "−"}${Math.abs(change).toFixed(1)} %`;
}

interface Entry {
  rounds: Map<number, Run>;
  failure?: string;
}
type Results = Map<string, Entry>;

const key = (threads: number, v: Variant) => `${threads}/${v.server}/${v.otel ? "on" : "off"}`;

/** Same-round values of f(a, b), one per round where both ran. */
function sameRound(
  results: Results,
  threads: number,
  a: Variant,
  b: Variant,
  f: (a: Sample, b: Sample) => number,
): number[] {
  const ra = results.get(key(threads, a))?.rounds;
  const rb = results.get(key(threads, b))?.rounds;
  if (!ra || !rb) return [];
  const out: number[] = [];
  for (const [round, run] of ra) {
    const other = rb.get(round);
    if (other && other.sample.rps > 0) out.push(f(run.sample, other.sample));
  }
  return out;
}

/** Same-round req/s ratio of `a` over `b`. */
const rpsRatio = (results: Results, threads: number, a: Variant, b: Variant) =>
  summarize(sameRound(results, threads, a, b, (x, y) => x.rps / y.rps));

function table(opts: Options, results: Results, threads: number): string {
  const lines = [
    `### wrk -t${threads} -c${opts.connections} -d${opts.duration}s, GET ${PATH} keep-alive`,
    "",
    "| server | telemetry | req/s | IQR | min–max | p99 | on/off (same round) | vs Deno.serve, same telemetry | OTLP per run (traces POSTs, KiB) |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|",
  ];
  const notes: string[] = [];
  for (const v of VARIANTS) {
    const label = SERVER_LABELS[v.server];
    const tel = v.otel ? "on" : "off";
    const entry = results.get(key(threads, v));
    const runs = [...(entry?.rounds.values() ?? [])];
    if (runs.length === 0) {
      lines.push(`| ${label} | ${tel} | failed | – | – | – | – | – | – |`);
      if (entry?.failure) notes.push(`- ${label} / ${tel}: ${entry.failure.split("\n")[0]}`);
      continue;
    }
    const rps = summarize(runs.map((r) => r.sample.rps));
    const p99 = summarize(runs.map((r) => r.sample.p99)).median;
    const onOff = v.otel
      ? fmtRatio(rpsRatio(results, threads, v, { server: v.server, otel: false }), 2)
      : "1.00×";
    const vsDeno = v.server === "deno"
      ? "1.00×"
      : fmtRatio(rpsRatio(results, threads, v, { server: "deno", otel: v.otel }), 2);
    const otlp = v.otel
      ? `${summarize(runs.map((r) => r.traffic.traces)).median}, ` +
        `${(summarize(runs.map((r) => r.traffic.bytes)).median / 1024).toFixed(0)}`
      : "0";
    lines.push(
      `| ${label} | ${tel} | ${fmtRps(rps.median)} | ${fmtK(rps.q1)}–${fmtK(rps.q3)} | ` +
        `${fmtK(rps.min)}–${fmtK(rps.max)} | ${fmtMs(p99)} | ${onOff} | ${vsDeno} | ${otlp} |`,
    );
    const errors = runs.reduce((a, r) => a + r.sample.errors, 0);
    if (errors > 0) {
      const requests = runs.reduce((a, r) => a + r.sample.requests, 0);
      notes.push(
        `- ${label} / ${tel}: ${errors} socket errors or non-2xx responses in ` +
          `${requests} requests (all rounds)`,
      );
    }
    if (runs.length < opts.rounds) {
      notes.push(
        `- ${label} / ${tel}: only ${runs.length} of ${opts.rounds} rounds succeeded` +
          (entry?.failure ? ` (${entry.failure.split("\n")[0]})` : ""),
      );
    }
  }

  // Key figures.
  const key_: string[] = [];
  const ratios = new Map<ServerId, Summary>();
  for (const server of SERVERS) {
    const s = rpsRatio(results, threads, { server, otel: true }, { server, otel: false });
    ratios.set(server, s);
    if (s.n === 0) continue;
    key_.push(
      `- **${SERVER_LABELS[server]}**, telemetry on/off: req/s ratio ` +
        `${fmtRatio(s)} → ${fmtPct(s.median)}, median of ${s.n} same-round ` +
        `ratios, min–max ${s.min.toFixed(3)}–${s.max.toFixed(3)}`,
    );
  }
  const c = ratios.get("connctx")!;
  const d = ratios.get("deno")!;
  if (c.n > 0 && d.n > 0) {
    // Per round: connctx's on/off ratio divided by Deno.serve's.
    const rel: number[] = [];
    const r = (server: ServerId, otel: boolean) =>
      results.get(key(threads, { server, otel }))?.rounds;
    const [con, coff, don, doff] = [
      r("connctx", true),
      r("connctx", false),
      r("deno", true),
      r("deno", false),
    ];
    for (const [round, a] of con ?? []) {
      const b = coff?.get(round), x = don?.get(round), y = doff?.get(round);
      if (b && x && y) rel.push((a.sample.rps / b.sample.rps) / (x.sample.rps / y.sample.rps));
    }
    const s = summarize(rel);
    const costC = (1 - c.median) * 100;
    const costD = (1 - d.median) * 100;
    key_.push(
      `- **connctx vs Deno.serve overhead**: telemetry costs connctx ` +
        `${costC.toFixed(1)} % of its req/s and Deno.serve ${costD.toFixed(1)} % ` +
        `(${(costC - costD) >= 0 ? "+" : "−"}${Math.abs(costC - costD).toFixed(1)} points` +
        (costD > 0.5 ? `, ${(costC / costD).toFixed(2)}× Deno.serve's` : "") +
        `); same-round (connctx on/off) ÷ (Deno.serve on/off): ${fmtRatio(s)}, ` +
        `n=${s.n} (> 1: connctx loses less than Deno.serve)`,
    );
  }
  return [...lines, "", ...key_, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

function rawTable(opts: Options, results: Results): string {
  const lines = [
    "<details><summary>every run (req/s / p99 ms / traces POSTs)</summary>",
    "",
    "| threads | server | telemetry | " +
    Array.from({ length: opts.rounds }, (_, i) => `round ${i + 1}`).join(" | ") + " |",
    `|--:|---|---|${"--:|".repeat(opts.rounds)}`,
  ];
  for (const threads of opts.threads) {
    for (const v of VARIANTS) {
      const rounds = results.get(key(threads, v))?.rounds;
      const cells = Array.from({ length: opts.rounds }, (_, i) => {
        const r = rounds?.get(i);
        return r
          ? `${fmtRps(r.sample.rps)} / ${r.sample.p99.toFixed(2)} / ${r.traffic.traces}`
          : "failed";
      });
      lines.push(
        `| ${threads} | ${SERVER_LABELS[v.server]} | ${v.otel ? "on" : "off"} | ${
          cells.join(" | ")
        } |`,
      );
    }
  }
  lines.push("", "</details>");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  let opts: Options;
  try {
    opts = parseOptions(Deno.args);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const wrkLine = await firstLine("wrk", ["-v"]);
  if (!wrkLine) {
    console.error("wrk not found");
    Deno.exit(2);
  }
  const perRound = VARIANTS.length * opts.threads.length;
  const runs = perRound * opts.rounds;
  const estimate = runs * (opts.warmup + opts.duration + RUN_OVERHEAD);
  console.error(
    `${runs} runs (${opts.rounds} rounds × ${perRound}), threads ` +
      `${opts.threads.join(",")}, ${opts.connections} connections, ` +
      `${opts.warmup}s warm-up + ${opts.duration}s each: about ` +
      `${Math.ceil(estimate / 60)} min`,
  );

  const sink = startSink();
  const loadAvg = async () =>
    (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ")
      .slice(0, 3).join(" ");
  const loadAtStart = await loadAvg();
  const date = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const results: Results = new Map();
  const started = performance.now();
  let done = 0;
  try {
    for (let round = 0; round < opts.rounds; round++) {
      for (const threads of rotate(opts.threads, round)) {
        for (const v of rotate(VARIANTS, round)) {
          done++;
          const k = key(threads, v);
          const entry = results.get(k) ?? { rounds: new Map<number, Run>() };
          results.set(k, entry);
          const tag = `[${done}/${runs}] round ${round + 1} -t${threads} ` +
            `${SERVER_LABELS[v.server]} telemetry ${v.otel ? "on" : "off"}`;
          try {
            const run = await measure(opts, threads, v, sink, done);
            entry.rounds.set(round, run);
            console.error(
              `${tag}: ${fmtRps(run.sample.rps)} req/s, p99 ${fmtMs(run.sample.p99)}` +
                (v.otel
                  ? `, OTLP ${run.traffic.traces} traces + ${run.traffic.metrics} ` +
                    `metrics POSTs, ${(run.traffic.bytes / 1024).toFixed(0)} KiB`
                  : "") +
                (run.sample.errors ? `, ${run.sample.errors} errors` : ""),
            );
          } catch (err) {
            if (err instanceof TelemetryCheckError) {
              console.error(`${tag}: TELEMETRY CHECK FAILED, aborting\n${err.message}`);
              Deno.exit(1);
            }
            entry.failure = (err as Error).message;
            console.error(`${tag}: FAILED\n${entry.failure}`);
          }
        }
      }
    }
  } finally {
    await sink.close();
  }
  const elapsed = Math.round((performance.now() - started) / 1000);
  console.error(`done in ${elapsed}s\n`);

  const wrk = /wrk\s+(\S+)/.exec(wrkLine)?.[1] ?? "?";
  const command = ["deno run -A bench/telemetry.ts", ...Deno.args].join(" ");
  const header = [
    `## OpenTelemetry cost, hello keep-alive`,
    "",
    `${date} · Deno ${Deno.version.deno} (V8 ${Deno.version.v8}) · wrk ${wrk} · ` +
    `${navigator.hardwareConcurrency} CPUs (load average ${loadAtStart} at the ` +
    `start, ${await loadAvg()} at the end) · \`${command}\` · ` +
    `${plural(opts.rounds, "round")}, ` +
    (elapsed < 120 ? `${elapsed} s` : `${Math.round(elapsed / 60)} min`) +
    ` · connctx ${await gitDescribe(REPO_ROOT)}`,
    "",
    `Method: ${plural(opts.rounds, "round")}; each round runs every (threads, ` +
    `server, telemetry) once, in a fresh server process, ${opts.warmup}s ` +
    `warm-up then ${opts.duration}s measured, ${opts.connections} connections, ` +
    `loopback; the four variants of a thread count run back to back, in an ` +
    `order rotating every round. Telemetry on: OTEL_DENO=true, OTLP ` +
    `http/protobuf to a local sink (200, body discarded) in the benchmark ` +
    `process, OTEL_DENO_CONSOLE=ignore, OTEL_METRIC_EXPORT_INTERVAL=1000; ` +
    `every on run was checked to deliver /v1/traces POSTs, every off run to ` +
    `deliver nothing. req/s: median over the rounds, IQR (q1–q3), min–max; ` +
    `p99: median of per-run p99s; ratios: median (IQR) of same-round ratios.`,
  ];
  const tables = opts.threads.map((t) => table(opts, results, t));
  const out = [...header, "", tables.join("\n\n")];
  if (opts.raw) out.push("", rawTable(opts, results));
  console.log(out.join("\n"));
}

if (import.meta.main) {
  await main();
}
