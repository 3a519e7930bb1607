// HTTP/1.1 throughput benchmark: connctx vs Deno.serve vs node:http vs a
// no-parsing ceiling, on loopback, with wrk (or `npx -y autocannon` if wrk is
// not installed).
//
//   deno run -A bench/run.ts [--duration=2s] [--warmup=1s] [--rounds=3]
//       [--scenario=hello,close,big,echo,ctx]
//       [--server=ceiling,connctx,connctx-ctx2,deno,node]
//       [--connections=50] [--threads=2] [--tool=wrk|autocannon]
//
// Every (scenario, round, server) gets a fresh server process on a free port;
// the harness waits for its READY line, checks one response, runs a warm-up
// load and the measured load, then kills it. Servers alternate within each
// round (the order rotates every round) and the table reports medians over the
// rounds. Progress goes to stderr; the markdown table alone goes to stdout.
// With the defaults (5 scenarios, 21 runs per round, 3 rounds, 1 s warm-up +
// 2 s measured) a full run takes about 3.5 minutes (about 4 on a busy
// machine, where starting each server takes longer).
//
// For a tighter connContext-cost number, run just that pair for more rounds:
//   deno run -A bench/run.ts --scenario=hello --server=connctx,connctx-ctx2 \
//       --rounds=15

import { parseArgs } from "node:util";
import { benchPath, type RunningServer, serverCommand, startServer } from "./_harness.ts";
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
function commandFor(id: ServerId, scenario: ScenarioId): string[] {
  switch (id) {
    case "ceiling":
      return serverCommand("ceiling", { flags: [`--scenario=${scenario}`] });
    case "connctx":
      // /ctx reads a value that a connContext put on the connection context.
      return serverCommand("connctx", {
        flags: [`--ctx-values=${scenario === "ctx" ? 1 : 0}`],
      });
    case "connctx-ctx2":
      return serverCommand("connctx", { flags: ["--ctx-values=2"] });
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
  threads: number;
  scenarios: Scenario[];
  servers: Set<ServerId>;
  tool: "wrk" | "autocannon";
}

const USAGE = `usage: deno run -A bench/run.ts [options]
  --duration=2s      measured load per run (whole seconds)
  --warmup=1s        unmeasured load before each measurement (0 to skip)
  --rounds=3         rounds; servers alternate within a round, medians reported
  --scenario=LIST    comma-separated: ${SCENARIOS.map((s) => s.id).join(",")}
  --server=LIST      comma-separated: ${Object.keys(SERVER_LABELS).join(",")}
  --connections=50   concurrent connections (wrk -c)
  --threads=2        load generator threads (wrk -t)
  --tool=wrk         wrk or autocannon (default: wrk if installed)`;

/** Parses "3s", "3", "1m" into whole seconds. */
function parseSeconds(name: string, text: string, min: number): number {
  const m = /^(\d+)(s|m)?$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * (m[2] === "m" ? 60 : 1) : NaN;
  if (!(seconds >= min)) {
    throw new Error(`--${name}: expected whole seconds >= ${min}, got ${text}`);
  }
  return seconds;
}

function parseCount(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name}: expected a positive integer, got ${text}`);
  }
  return n;
}

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
      rounds: { type: "string", default: "3" },
      scenario: { type: "string", default: SCENARIOS.map((s) => s.id).join() },
      server: { type: "string", default: Object.keys(SERVER_LABELS).join() },
      connections: { type: "string", default: "50" },
      threads: { type: "string", default: "2" },
      tool: { type: "string" },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
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
  return {
    duration: parseSeconds("duration", values.duration, 1),
    warmup: parseSeconds("warmup", values.warmup, 0),
    rounds: parseCount("rounds", values.rounds),
    connections: parseCount("connections", values.connections),
    threads: parseCount("threads", values.threads),
    scenarios: SCENARIOS.filter((s) => scenarioIds.includes(s.id)),
    servers: new Set(
      parseList(
        "server",
        values.server,
        Object.keys(SERVER_LABELS) as ServerId[],
      ),
    ),
    tool,
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
  url: string,
  seconds: number,
): Promise<Sample> {
  let argv: string[];
  if (opts.tool === "wrk") {
    argv = [
      "wrk",
      `-t${opts.threads}`,
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
  server: ServerId,
): Promise<Sample> {
  let running: RunningServer | undefined;
  try {
    running = await startServer(commandFor(server, scenario.id));
    const url = running.url + scenario.path;
    await checkResponse(scenario, url);
    if (opts.warmup > 0) await runLoad(opts, scenario, url, opts.warmup);
    return await runLoad(opts, scenario, url, opts.duration);
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

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

function fmtRps(rps: number): string {
  return Math.round(rps).toLocaleString("en-US");
}

function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;
}

interface Entry {
  samples: Sample[];
  /** Sample per round index, for same-round ratios. */
  rounds: Map<number, Sample>;
  failure?: string;
}

type Results = Map<string, Entry>;

const key = (scenario: ScenarioId, server: ServerId) => `${scenario}/${server}`;

function table(opts: Options, results: Results): string {
  const lines = [
    "| scenario | server | req/s | p50 | p99 | vs ceiling | vs Deno.serve | vs node:http |",
    "|---|---|--:|--:|--:|--:|--:|--:|",
  ];
  const notes: string[] = [];
  for (const scenario of opts.scenarios) {
    const medianRps = (server: ServerId) => {
      const samples = results.get(key(scenario.id, server))?.samples ?? [];
      return samples.length ? median(samples.map((s) => s.rps)) : undefined;
    };
    for (const server of scenario.servers) {
      if (!opts.servers.has(server)) continue;
      const entry = results.get(key(scenario.id, server));
      const samples = entry?.samples ?? [];
      const label = SERVER_LABELS[server];
      if (samples.length === 0) {
        lines.push(
          `| ${scenario.title} | ${label} | failed | – | – | – | – | – |`,
        );
        if (entry?.failure) {
          notes.push(
            `- ${scenario.title} / ${label}: ${entry.failure.split("\n")[0]}`,
          );
        }
        continue;
      }
      const rps = median(samples.map((s) => s.rps));
      const ratio = (ref: ServerId) => {
        const base = medianRps(ref);
        return base ? `${(rps / base).toFixed(2)}×` : "–";
      };
      lines.push(
        `| ${scenario.title} | ${label} | ${fmtRps(rps)} | ` +
          `${fmtMs(median(samples.map((s) => s.p50)))} | ` +
          `${fmtMs(median(samples.map((s) => s.p99)))} | ` +
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
            `${opts.rounds} rounds succeeded`,
        );
      }
    }
  }
  const cost = contextCost(opts, results);
  if (cost) notes.unshift(cost);
  return [...lines, ...(notes.length ? ["", ...notes] : [])].join("\n");
}

/** The connContext cost line, from paired same-round hello samples. */
function contextCost(opts: Options, results: Results): string | undefined {
  if (!opts.scenarios.some((s) => s.id === "hello")) return undefined;
  const base = results.get(key("hello", "connctx"))?.rounds;
  const ctx2 = results.get(key("hello", "connctx-ctx2"))?.rounds;
  if (!base || !ctx2) return undefined;
  const ratios: number[] = [];
  for (const [round, sample] of ctx2) {
    const b = base.get(round);
    if (b) ratios.push(sample.rps / b.rps);
  }
  if (ratios.length === 0) return undefined;
  const ratio = median(ratios);
  const change = (ratio - 1) * 100;
  return `- connContext cost, hello keep-alive, connctx with 2× withValue vs ` +
    `none: req/s ratio ${ratio.toFixed(3)} (${change >= 0 ? "+" : "−"}` +
    `${Math.abs(change).toFixed(1)} %), median of ${ratios.length} ` +
    `same-round ratios; target: ratio ≥ 0.97 (cost ≤ 3 %)`;
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
  const runs = plan.reduce((a, p) => a + p.servers.length, 0) * opts.rounds;
  const estimate = Math.round(runs * (opts.warmup + opts.duration + 0.5));
  console.error(
    `${runs} runs with ${opts.tool} (${opts.threads} threads, ` +
      `${opts.connections} connections, ${opts.warmup}s warm-up + ` +
      `${opts.duration}s), about ${estimate}s`,
  );

  const results: Results = new Map();
  const started = performance.now();
  let done = 0;
  for (const { scenario, servers } of plan) {
    for (let round = 0; round < opts.rounds; round++) {
      // Rotate the order every round so no server always runs first.
      const shift = round % servers.length;
      const order = [...servers.slice(shift), ...servers.slice(0, shift)];
      for (const server of order) {
        done++;
        const k = key(scenario.id, server);
        const entry = results.get(k) ??
          { samples: [], rounds: new Map<number, Sample>() };
        results.set(k, entry);
        const tag = `[${done}/${runs}] ${scenario.id} round ${round + 1} ` +
          SERVER_LABELS[server];
        try {
          const sample = await measure(opts, scenario, server);
          entry.samples.push(sample);
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
  const elapsed = Math.round((performance.now() - started) / 1000);
  console.error(`done in ${elapsed}s\n`);

  const header = [
    (opts.tool === "wrk"
      ? `wrk -t${opts.threads} -c${opts.connections} -d${opts.duration}s`
      : `autocannon -c ${opts.connections} -d ${opts.duration}`) +
    ` (after a ${opts.warmup}s ` +
    `warm-up), median of ${opts.rounds} rounds, loopback; ` +
    `Deno ${Deno.version.deno}, ${await nodeVersion()}, ` +
    `${navigator.hardwareConcurrency} CPUs.`,
    "",
  ];
  console.log([...header, table(opts, results)].join("\n"));
  for (const path of bodyFiles.values()) await Deno.remove(path);
}

async function nodeVersion(): Promise<string> {
  try {
    const out = await new Deno.Command("node", { args: ["--version"] })
      .output();
    return `Node ${new TextDecoder().decode(out.stdout).trim()}`;
  } catch {
    return "Node (not found)";
  }
}

if (import.meta.main) {
  await main();
}
