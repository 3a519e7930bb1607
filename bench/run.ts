// HTTP/1.1 throughput benchmark: connctx vs Deno.serve vs node:http vs a
// no-parsing ceiling, on loopback, with wrk (or `npx -y autocannon` if wrk is
// not installed).
//
//   deno run -A bench/run.ts [--rounds=9 | --quick] [--threads=1,2]
//       [--duration=2s] [--warmup=1s] [--connections=50]
//       [--scenario=hello,close,big,echo,ctx]
//       [--server=ceiling,connctx,connctx-ctx2,deno,node]
//       [--root=DIR] [--raw] [--tool=wrk|autocannon]
//
// Method. A round runs every (scenario, wrk threads, server) combination once.
// Each run gets a fresh server process on a free port; the harness waits for
// its READY line, checks one response, runs a warm-up load and then the
// measured load, and kills it. Within a round the servers of one (scenario,
// threads) group run back to back, so same-round ratios compare runs that are
// seconds apart; the server order and the threads order rotate every round so
// that no server always runs first (or right after a given other one). Rounds
// are the outer loop, so a burst of noise on the shared machine hits one
// round of every scenario rather than every round of one scenario.
//
// Every row reports the MEDIAN req/s over the rounds with its interquartile
// range and min–max, the median of the per-run p50 and p99 latencies, and
// ratios against the ceiling / Deno.serve / node:http computed per round (same
// round, same scenario, same threads) and summarised as median (IQR). No row
// is a best run.
//
// wrk -t1 leaves the server a whole core (of 2), so engine differences show;
// -t2 loads both cores and the server competes with wrk for CPU.
//
// Duration: with the defaults (21 server runs over the 5 scenarios, × 2 thread
// counts = 42 runs per round; 9 rounds; 1 s warm-up + 2 s measured, ~0.3 s to
// start and stop a server) a full run takes about 21 minutes; --quick (3
// rounds) about 7. Progress goes to stderr; the markdown report alone goes to
// stdout.
//
// --root=DIR runs the connctx servers against the module in another checkout
// (e.g. a `git worktree` of an older commit): the server scripts, routes and
// payloads stay this checkout's, the engine comes from DIR (checked with
// `deno info` before the first run).
//
// For a tighter connContext-cost number, run just that pair for more rounds:
//   deno run -A bench/run.ts --scenario=hello --server=connctx,connctx-ctx2 \
//       --rounds=15

import { fmtK, fmtMs, fmtRps, parseCount, parseSeconds, plural, rotate } from "./_cli.ts";
import { parseArgs } from "node:util";
import {
  benchPath,
  firstLine,
  gitDescribe,
  REPO_ROOT,
  resolveRoot,
  type RunningServer,
  serverCommand,
  startServer,
  verifyRoot,
} from "./_harness.ts";
import { summarize, type Summary } from "./_stats.ts";
import {
  BIG_SIZE,
  CTX_HEADERS,
  ctxBody,
  ECHO_SIZE,
  HELLO,
  patternBytes,
  TENANT,
} from "./servers/payloads.mjs";

type ServerId = "ceiling" | "connctx" | "connctx-ctx2" | "deno" | "node";
type ScenarioId = "hello" | "close" | "big" | "echo" | "ctx";

const SERVER_LABELS: Record<ServerId, string> = {
  "ceiling": "ceiling",
  "connctx": "connctx",
  "connctx-ctx2": "connctx + connContext (2× withValue)",
  "deno": "Deno.serve",
  "node": "node:http",
};

interface Scenario {
  id: ScenarioId;
  title: string;
  method: "GET" | "POST";
  path: string;
  /** Extra request headers, "Name: value". */
  headers: string[];
  /** Request body (POST only). */
  body?: Uint8Array<ArrayBuffer>;
  /** wrk Lua script (POST only). */
  script?: string;
  /** Expected response body, checked once before each measurement. */
  expected: Uint8Array;
  servers: ServerId[];
}

const encoder = new TextEncoder();
const ctxHeaderLines = Object.entries(CTX_HEADERS).map(([k, v]) => `${k}: ${v}`);

const SCENARIOS: Scenario[] = [
  {
    id: "hello",
    title: "hello keep-alive",
    method: "GET",
    path: "/hello",
    headers: [],
    expected: encoder.encode(HELLO),
    servers: ["ceiling", "connctx", "connctx-ctx2", "deno", "node"],
  },
  {
    id: "close",
    title: "connection per request",
    method: "GET",
    path: "/hello",
    headers: ["Connection: close"],
    expected: encoder.encode(HELLO),
    servers: ["ceiling", "connctx", "deno", "node"],
  },
  {
    id: "big",
    title: "1 MiB response",
    method: "GET",
    path: "/big",
    headers: [],
    expected: patternBytes(BIG_SIZE),
    servers: ["ceiling", "connctx", "deno", "node"],
  },
  {
    id: "echo",
    title: "64 KiB POST echo",
    method: "POST",
    path: "/echo",
    headers: ["Content-Type: application/octet-stream"],
    body: patternBytes(ECHO_SIZE),
    script: benchPath("./echo.lua"),
    expected: patternBytes(ECHO_SIZE),
    servers: ["ceiling", "connctx", "deno", "node"],
  },
  {
    id: "ctx",
    title: "/ctx: 3 headers + conn value",
    method: "GET",
    path: "/ctx",
    headers: ctxHeaderLines,
    expected: encoder.encode(
      ctxBody(
        CTX_HEADERS["user-agent"],
        CTX_HEADERS.accept,
        CTX_HEADERS["x-request-id"],
        TENANT,
      ),
    ),
    servers: ["ceiling", "connctx", "deno", "node"],
  },
];

/** Command line of the server `id` for scenario `scenario`. */
function commandFor(
  id: ServerId,
  scenario: ScenarioId,
  root: string | undefined,
): string[] {
  switch (id) {
    case "ceiling":
      return serverCommand("ceiling", { flags: [`--scenario=${scenario}`] });
    case "connctx":
      // /ctx reads a value that a connContext put on the connection context.
      return serverCommand("connctx", {
        flags: [`--ctx-values=${scenario === "ctx" ? 1 : 0}`],
        root,
      });
    case "connctx-ctx2":
      return serverCommand("connctx", { flags: ["--ctx-values=2"], root });
    case "deno":
      return serverCommand("deno");
    case "node":
      return serverCommand("node");
  }
}

// ---------------------------------------------------------------------------
// Options

interface Options {
  duration: number;
  warmup: number;
  rounds: number;
  connections: number;
  /** Load-generator thread counts, each a separate table. */
  threads: number[];
  scenarios: Scenario[];
  servers: Set<ServerId>;
  tool: "wrk" | "autocannon";
  /** Checkout the connctx servers load the module from (absolute). */
  root?: string;
  /** Append every run's figures to the report. */
  raw: boolean;
}

const DEFAULT_ROUNDS = 9;
const QUICK_ROUNDS = 3;
/** Seconds to start, check and stop one server (for the time estimate). */
const RUN_OVERHEAD = 0.3;

const USAGE = `usage: deno run -A bench/run.ts [options]
  --rounds=${DEFAULT_ROUNDS}         rounds; every row is the median over them (min 1)
  --quick            ${QUICK_ROUNDS} rounds (about a third of the time)
  --threads=1,2      wrk -t values, one table each (autocannon: -w workers)
  --duration=2s      measured load per run (whole seconds)
  --warmup=1s        unmeasured load before each measurement (0 to skip)
  --connections=50   concurrent connections (wrk -c)
  --scenario=LIST    comma-separated: ${SCENARIOS.map((s) => s.id).join(",")}
  --server=LIST      comma-separated: ${Object.keys(SERVER_LABELS).join(",")}
  --root=DIR         load connctx from the checkout at DIR instead of this one
  --raw              append every run's req/s, p50 and p99 to the report
  --tool=wrk         wrk or autocannon (default: wrk if installed)
Defaults: a full run takes about 21 minutes (--quick: about 7).`;

function parseList<T extends string>(
  name: string,
  text: string,
  known: readonly T[],
): T[] {
  const items = text.split(",").map((s) => s.trim()).filter(Boolean);
  for (const item of items) {
    if (!known.includes(item as T)) {
      throw new Error(`--${name}: unknown ${item} (known: ${known.join(",")})`);
    }
  }
  return items as T[];
}

async function hasWrk(): Promise<boolean> {
  try {
    await new Deno.Command("wrk", {
      args: ["-v"],
      stdout: "null",
      stderr: "null",
    })
      .output();
    return true;
  } catch {
    return false;
  }
}

async function parseOptions(args: string[]): Promise<Options> {
  const { values } = parseArgs({
    args,
    options: {
      duration: { type: "string", default: "2s" },
      warmup: { type: "string", default: "1s" },
      rounds: { type: "string" },
      quick: { type: "boolean", default: false },
      scenario: { type: "string", default: SCENARIOS.map((s) => s.id).join() },
      server: { type: "string", default: Object.keys(SERVER_LABELS).join() },
      connections: { type: "string", default: "50" },
      threads: { type: "string", default: "1,2" },
      root: { type: "string" },
      raw: { type: "boolean", default: false },
      tool: { type: "string" },
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
  const scenarioIds = parseList(
    "scenario",
    values.scenario,
    SCENARIOS.map((s) => s.id),
  );
  const tool = values.tool ?? (await hasWrk() ? "wrk" : "autocannon");
  if (tool !== "wrk" && tool !== "autocannon") {
    throw new Error(`--tool: expected wrk or autocannon, got ${tool}`);
  }
  const threads = [
    ...new Set(
      values.threads.split(",").map((t) => t.trim()).filter(Boolean)
        .map((t) => parseCount("threads", t)),
    ),
  ];
  if (threads.length === 0) throw new Error("--threads: empty list");
  let root: string | undefined;
  if (values.root !== undefined) {
    try {
      root = resolveRoot(values.root);
    } catch (err) {
      throw new Error(`--root=${values.root}: ${(err as Error).message}`);
    }
  }
  return {
    duration: parseSeconds("duration", values.duration, 1),
    warmup: parseSeconds("warmup", values.warmup, 0),
    rounds: values.quick
      ? QUICK_ROUNDS
      : parseCount("rounds", values.rounds ?? `${DEFAULT_ROUNDS}`),
    connections: parseCount("connections", values.connections),
    threads,
    scenarios: SCENARIOS.filter((s) => scenarioIds.includes(s.id)),
    servers: new Set(
      parseList(
        "server",
        values.server,
        Object.keys(SERVER_LABELS) as ServerId[],
      ),
    ),
    tool,
    root,
    raw: values.raw,
  };
}

// ---------------------------------------------------------------------------
// Load generation

/** One measured run. Latencies in milliseconds. */
interface Sample {
  rps: number;
  p50: number;
  p99: number;
  requests: number;
  /** Socket errors + timeouts + non-2xx/3xx responses. */
  errors: number;
}

const UNIT_MS: Record<string, number> = {
  us: 1e-3,
  ms: 1,
  s: 1e3,
  m: 60e3,
  h: 3600e3,
};

/** Parses `wrk --latency` output. */
export function parseWrk(out: string): Sample {
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    if (!m) throw new Error(`unexpected wrk output (no ${re}):\n${out}`);
    return Number(m[1]);
  };
  const latency = (pct: string): number => {
    const re = new RegExp(`^\\s*${pct}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m");
    const m = re.exec(out);
    if (!m) throw new Error(`unexpected wrk output (no ${pct}%):\n${out}`);
    return Number(m[1]) * UNIT_MS[m[2]];
  };
  let errors = 0;
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/
    .exec(out);
  if (socket) errors += socket.slice(1).reduce((a, b) => a + Number(b), 0);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  return {
    rps: num(/^Requests\/sec:\s+([\d.]+)/m),
    p50: latency("50"),
    p99: latency("99"),
    requests: num(/^\s*(\d+) requests in /m),
    errors,
  };
}

interface AutocannonJson {
  requests: { average: number; total: number };
  latency: { p50: number; p99: number };
  errors: number;
  timeouts: number;
  non2xx: number;
}

async function runLoad(
  opts: Options,
  scenario: Scenario,
  threads: number,
  url: string,
  seconds: number,
): Promise<Sample> {
  let argv: string[];
  if (opts.tool === "wrk") {
    argv = [
      "wrk",
      `-t${threads}`,
      `-c${opts.connections}`,
      `-d${seconds}s`,
      "--latency",
      ...scenario.headers.flatMap((h) => ["-H", h]),
      ...(scenario.script ? ["-s", scenario.script] : []),
      url,
    ];
  } else {
    argv = [
      "npx",
      "-y",
      "autocannon",
      "-j",
      "-c",
      `${opts.connections}`,
      "-d",
      `${seconds}`,
      // autocannon's closest analogue of wrk -t: worker threads.
      ...(threads > 1 ? ["-w", `${threads}`] : []),
      "-m",
      scenario.method,
      ...scenario.headers.flatMap((h) => {
        const i = h.indexOf(":");
        return ["-H", `${h.slice(0, i)}=${h.slice(i + 1).trim()}`];
      }),
      ...(scenario.body ? ["-i", await bodyFile(scenario)] : []),
      url,
    ];
  }
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${argv.join(" ")} failed:\n${stdout}${new TextDecoder().decode(out.stderr)}`,
    );
  }
  if (opts.tool === "wrk") return parseWrk(stdout);
  const json = JSON.parse(stdout) as AutocannonJson;
  return {
    rps: json.requests.average,
    p50: json.latency.p50,
    p99: json.latency.p99,
    requests: json.requests.total,
    errors: json.errors + json.timeouts + json.non2xx,
  };
}

const bodyFiles = new Map<ScenarioId, string>();

/** Writes a scenario's request body to a temp file (for autocannon -i). */
async function bodyFile(scenario: Scenario): Promise<string> {
  let path = bodyFiles.get(scenario.id);
  if (path === undefined) {
    path = await Deno.makeTempFile({ prefix: `connctx-bench-${scenario.id}-` });
    await Deno.writeFile(path, scenario.body!);
    bodyFiles.set(scenario.id, path);
  }
  return path;
}

/** Sends the scenario's request once and checks the response body. */
async function checkResponse(scenario: Scenario, url: string): Promise<void> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    const headers = new Headers();
    for (const h of scenario.headers) {
      const i = h.indexOf(":");
      const name = h.slice(0, i).trim();
      if (name.toLowerCase() !== "connection") {
        headers.set(name, h.slice(i + 1).trim());
      }
    }
    const res = await fetch(url, {
      method: scenario.method,
      headers,
      body: scenario.body,
      client,
      signal: AbortSignal.timeout(10_000),
    });
    const body = await res.bytes();
    const expected = scenario.expected;
    const same = body.byteLength === expected.byteLength &&
      body.every((b, i) => b === expected[i]);
    if (res.status !== 200 || !same) {
      const preview = new TextDecoder().decode(body.subarray(0, 200));
      throw new Error(
        `${scenario.method} ${url}: status ${res.status}, ` +
          `${body.byteLength} bytes (want 200, ${expected.byteLength}): ${preview}`,
      );
    }
  } finally {
    client.close();
  }
}

async function measure(
  opts: Options,
  scenario: Scenario,
  threads: number,
  server: ServerId,
): Promise<Sample> {
  let running: RunningServer | undefined;
  try {
    running = await startServer(commandFor(server, scenario.id, opts.root));
    const url = running.url + scenario.path;
    await checkResponse(scenario, url);
    if (opts.warmup > 0) {
      await runLoad(opts, scenario, threads, url, opts.warmup);
    }
    return await runLoad(opts, scenario, threads, url, opts.duration);
  } catch (err) {
    const output = running?.output().trim();
    throw new Error(
      (err as Error).message + (output ? `\nserver output:\n${output}` : ""),
    );
  } finally {
    await running?.stop();
  }
}

// ---------------------------------------------------------------------------
// Reporting

/** "0.94× (0.92–0.95)": median and interquartile range of ratios. */
function fmtRatio(s: Summary): string {
  if (s.n === 0) return "–";
  return `${s.median.toFixed(2)}× (${s.q1.toFixed(2)}–${s.q3.toFixed(2)})`;
}

interface Entry {
  /** Sample per round index. */
  rounds: Map<number, Sample>;
  failure?: string;
}

type Results = Map<string, Entry>;

const key = (scenario: ScenarioId, threads: number, server: ServerId) =>
  `${scenario}/${threads}/${server}`;

/** Same-round ratios of `server` over `ref` (rps), one per shared round. */
function sameRoundRatios(
  results: Results,
  scenario: ScenarioId,
  threads: number,
  server: ServerId,
  ref: ServerId,
): number[] {
  const a = results.get(key(scenario, threads, server))?.rounds;
  const b = results.get(key(scenario, threads, ref))?.rounds;
  if (!a || !b) return [];
  const ratios: number[] = [];
  for (const [round, sample] of a) {
    const base = b.get(round);
    if (base && base.rps > 0) ratios.push(sample.rps / base.rps);
  }
  return ratios;
}

function loadLabel(opts: Options, threads: number): string {
  return opts.tool === "wrk"
    ? `wrk -t${threads} -c${opts.connections} -d${opts.duration}s`
    : `autocannon -w ${threads} -c ${opts.connections} -d ${opts.duration}`;
}

function table(opts: Options, results: Results, threads: number): string {
  const lines = [
    `### ${loadLabel(opts, threads)}`,
    "",
    "| scenario | server | req/s | IQR | min–max | p50 | p99 | vs ceiling | vs Deno.serve | vs node:http |",
    "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
  ];
  const notes: string[] = [];
  for (const scenario of opts.scenarios) {
    for (const server of scenario.servers) {
      if (!opts.servers.has(server)) continue;
      const entry = results.get(key(scenario.id, threads, server));
      const samples = [...(entry?.rounds.values() ?? [])];
      const label = SERVER_LABELS[server];
      if (samples.length === 0) {
        lines.push(
          `| ${scenario.title} | ${label} | failed | – | – | – | – | – | – | – |`,
        );
        if (entry?.failure) {
          notes.push(
            `- ${scenario.title} / ${label}: ${entry.failure.split("\n")[0]}`,
          );
        }
        continue;
      }
      const rps = summarize(samples.map((s) => s.rps));
      const ratio = (ref: ServerId) => {
        if (!opts.servers.has(ref) || !scenario.servers.includes(ref)) return "–";
        if (ref === server) return "1.00×";
        return fmtRatio(summarize(
          sameRoundRatios(results, scenario.id, threads, server, ref),
        ));
      };
      lines.push(
        `| ${scenario.title} | ${label} | ${fmtRps(rps.median)} | ` +
          `${fmtK(rps.q1)}–${fmtK(rps.q3)} | ${fmtK(rps.min)}–${fmtK(rps.max)} | ` +
          `${fmtMs(summarize(samples.map((s) => s.p50)).median)} | ` +
          `${fmtMs(summarize(samples.map((s) => s.p99)).median)} | ` +
          `${ratio("ceiling")} | ${ratio("deno")} | ${ratio("node")} |`,
      );
      const errors = samples.reduce((a, s) => a + s.errors, 0);
      if (errors > 0) {
        const requests = samples.reduce((a, s) => a + s.requests, 0);
        notes.push(
          `- ${scenario.title} / ${label}: ${errors} socket errors or ` +
            `non-2xx responses in ${requests} requests (all rounds)`,
        );
      }
      if (samples.length < opts.rounds) {
        notes.push(
          `- ${scenario.title} / ${label}: only ${samples.length} of ` +
            `${opts.rounds} rounds succeeded` +
            (entry?.failure ? ` (${entry.failure.split("\n")[0]})` : ""),
        );
      }
    }
  }
  const cost = contextCost(opts, results, threads);
  if (cost) notes.unshift(cost);
  return [...lines, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

/** The connContext cost line, from paired same-round hello samples. */
function contextCost(
  opts: Options,
  results: Results,
  threads: number,
): string | undefined {
  if (!opts.scenarios.some((s) => s.id === "hello")) return undefined;
  const s = summarize(
    sameRoundRatios(results, "hello", threads, "connctx-ctx2", "connctx"),
  );
  if (s.n === 0) return undefined;
  const pct = (r: number) => {
    const change = (r - 1) * 100;
    return `${change >= 0 ? "+" : "−"}${Math.abs(change).toFixed(1)} %`;
  };
  return `- connContext cost, hello keep-alive, connctx with 2× withValue vs ` +
    `none: req/s ratio ${s.median.toFixed(3)} (${pct(s.median)}), median of ` +
    `${s.n} same-round ratios, IQR ${s.q1.toFixed(3)}–${s.q3.toFixed(3)}, ` +
    `min–max ${s.min.toFixed(3)}–${s.max.toFixed(3)}; target: ratio ≥ 0.97 ` +
    `(cost ≤ 3 %)`;
}

/** Every run's figures, in the order they ran, for --raw. */
function rawTable(opts: Options, results: Results): string {
  const lines = [
    "<details><summary>every run (req/s, p50, p99)</summary>",
    "",
    "| threads | scenario | server | " +
    Array.from({ length: opts.rounds }, (_, i) => `round ${i + 1}`).join(" | ") +
    " |",
    `|--:|---|---|${"--:|".repeat(opts.rounds)}`,
  ];
  for (const threads of opts.threads) {
    for (const scenario of opts.scenarios) {
      for (const server of scenario.servers) {
        if (!opts.servers.has(server)) continue;
        const rounds = results.get(key(scenario.id, threads, server))?.rounds;
        const cells = Array.from({ length: opts.rounds }, (_, i) => {
          const s = rounds?.get(i);
          return s ? `${fmtRps(s.rps)} / ${s.p50.toFixed(2)} / ${s.p99.toFixed(2)}` : "failed";
        });
        lines.push(
          `| ${threads} | ${scenario.id} | ${SERVER_LABELS[server]} | ` +
            `${cells.join(" | ")} |`,
        );
      }
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
    opts = await parseOptions(Deno.args);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    Deno.exit(2);
  }
  const plan = opts.scenarios.map((s) => ({
    scenario: s,
    servers: s.servers.filter((id) => opts.servers.has(id)),
  }));
  const perRound = plan.reduce((a, p) => a + p.servers.length, 0) *
    opts.threads.length;
  const runs = perRound * opts.rounds;
  const estimate = runs * (opts.warmup + opts.duration + RUN_OVERHEAD);
  const root = opts.root ?? REPO_ROOT;
  if (opts.root !== undefined && plan.some((p) => p.servers.some((s) => s.startsWith("connctx")))) {
    const n = await verifyRoot(opts.root);
    console.error(`--root: connctx loads ${n} modules from ${opts.root}`);
  }
  console.error(
    `${runs} runs (${opts.rounds} rounds × ${perRound}) with ${opts.tool}, ` +
      `threads ${opts.threads.join(",")}, ${opts.connections} connections, ` +
      `${opts.warmup}s warm-up + ${opts.duration}s each: about ` +
      `${Math.ceil(estimate / 60)} min`,
  );

  const loadAvg = async () =>
    (await Deno.readTextFile("/proc/loadavg").catch(() => "? ? ?")).split(" ")
      .slice(0, 3).join(" ");
  const loadAtStart = await loadAvg();
  const date = new Date().toISOString().slice(0, 16).replace("T", " ") + " UTC";
  const results: Results = new Map();
  const started = performance.now();
  let done = 0;
  for (let round = 0; round < opts.rounds; round++) {
    for (const { scenario, servers } of plan) {
      // Rotate the orders every round so no server always runs first.
      for (const threads of rotate(opts.threads, round)) {
        for (const server of rotate(servers, round)) {
          done++;
          const k = key(scenario.id, threads, server);
          const entry = results.get(k) ?? { rounds: new Map<number, Sample>() };
          results.set(k, entry);
          const tag = `[${done}/${runs}] round ${round + 1} ${scenario.id} ` +
            `-t${threads} ${SERVER_LABELS[server]}`;
          try {
            const sample = await measure(opts, scenario, threads, server);
            entry.rounds.set(round, sample);
            console.error(
              `${tag}: ${fmtRps(sample.rps)} req/s, p50 ${fmtMs(sample.p50)}, ` +
                `p99 ${fmtMs(sample.p99)}` +
                (sample.errors ? `, ${sample.errors} errors` : ""),
            );
          } catch (err) {
            entry.failure = (err as Error).message;
            console.error(`${tag}: FAILED\n${entry.failure}`);
          }
        }
      }
    }
  }
  const elapsed = Math.round((performance.now() - started) / 1000);
  console.error(`done in ${elapsed}s\n`);

  const wrk = opts.tool === "wrk"
    ? (/wrk\s+(\S+)/.exec(await firstLine("wrk", ["-v"]))?.[1] ?? "?")
    : "";
  const node = await firstLine("node", ["--version"]) || "not found";
  const command = ["deno run -A bench/run.ts", ...Deno.args].join(" ");
  const header = [
    `${date} · Deno ${Deno.version.deno} · Node ${node} · ` +
    (opts.tool === "wrk" ? `wrk ${wrk}` : "autocannon") +
    ` · ${navigator.hardwareConcurrency} CPUs (load average ${loadAtStart} ` +
    `at the start, ${await loadAvg()} at the end) · \`${command}\` · ${
      plural(opts.rounds, "round")
    }, ` +
    (elapsed < 120 ? `${elapsed} s` : `${Math.round(elapsed / 60)} min`),
    "",
    `connctx module: ${root === REPO_ROOT ? "this checkout" : root} ` +
    `(${await gitDescribe(root)}).`,
    "",
    `Method: ${plural(opts.rounds, "round")}; each round runs every (scenario, threads, ` +
    `server) once, in a fresh server process, ${opts.warmup}s warm-up then ` +
    `${opts.duration}s measured, ${opts.connections} connections, loopback, ` +
    `server and load generator on the same ${navigator.hardwareConcurrency} ` +
    `CPUs. Servers of a (scenario, threads) group run back to back; the ` +
    `server and threads orders rotate every round. req/s: median over the ` +
    `rounds, IQR (q1–q3) and min–max; p50/p99: median of the per-run ` +
    `percentiles; vs X: median (IQR) of same-round req/s ratios.`,
  ];
  const tables = opts.threads.map((t) => table(opts, results, t));
  const out = [...header, "", tables.join("\n\n")];
  if (opts.raw) out.push("", rawTable(opts, results));
  console.log(out.join("\n"));
  for (const path of bodyFiles.values()) await Deno.remove(path);
}

if (import.meta.main) {
  await main();
}
