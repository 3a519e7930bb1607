// Process helpers shared by bench/run.ts and bench/idle_memory.ts: start a
// benchmark server as a child process, wait for its readiness line, stop it.

/** Ids of the benchmark servers under bench/servers/. */
export type ServerKind = "ceiling" | "connctx" | "deno" | "node";

/** Absolute path of a file under bench/. */
export function benchPath(relative: string): string {
  return decodeURIComponent(new URL(relative, import.meta.url).pathname);
}

/** Absolute path of the checkout these benchmark scripts belong to. */
export const REPO_ROOT: string = benchPath("../").replace(/\/$/, "");

/** Public entry points of the module, relative to a checkout's root. */
const ENTRY_POINTS = ["mod.ts", "server.ts", "context.ts", "workers.ts"];

/**
 * A `data:` URL import map that redirects the module's entry points (as the
 * benchmark servers under bench/servers/ import them, relative to this
 * checkout) to the checkout at `root`. The modules they import in turn resolve
 * relative to `root`, so the whole engine comes from there, while the
 * benchmark server scripts, routes and payloads stay this checkout's.
 */
export function rootImportMap(root: string): string {
  const from = new URL(`file://${REPO_ROOT}/`);
  const to = new URL(`file://${resolveRoot(root)}/`);
  const imports: Record<string, string> = {};
  for (const entry of ENTRY_POINTS) {
    imports[new URL(entry, from).href] = new URL(entry, to).href;
  }
  return `data:application/json,${encodeURIComponent(JSON.stringify({ imports }))}`;
}

/** `root` as an absolute path without a trailing slash. */
export function resolveRoot(root: string): string {
  const abs = root.startsWith("/") ? root : `${Deno.cwd()}/${root}`;
  return Deno.realPathSync(abs).replace(/\/$/, "");
}

/**
 * Checks (with `deno info`) that the connctx benchmark server, started with
 * `--root=root`, loads every engine module from `root` and none from this
 * checkout. Returns the number of engine modules loaded from `root`.
 */
export async function verifyRoot(root: string): Promise<number> {
  const dir = resolveRoot(root);
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      `--import-map=${rootImportMap(dir)}`,
      benchPath("./servers/connctx.ts"),
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`deno info failed:\n${new TextDecoder().decode(out.stderr)}`);
  }
  const info = JSON.parse(new TextDecoder().decode(out.stdout)) as {
    modules: { specifier: string }[];
  };
  const specifiers = info.modules.map((m) => m.specifier);
  const own = `file://${REPO_ROOT}/`;
  const stray = specifiers.filter((s) => s.startsWith(own) && !s.startsWith(`${own}bench/`));
  const fromRoot = specifiers.filter((s) => s.startsWith(`file://${dir}/`));
  if (dir !== REPO_ROOT && stray.length > 0) {
    throw new Error(`--root=${root}: still loads ${stray.join(", ")}`);
  }
  if (!fromRoot.some((s) => s.endsWith("/server.ts"))) {
    throw new Error(`--root=${root}: server.ts not loaded from ${dir}`);
  }
  return fromRoot.length;
}

/** `git describe --always --dirty` of `dir`, or "unknown". */
export async function gitDescribe(dir: string): Promise<string> {
  try {
    const out = await new Deno.Command("git", {
      args: ["-C", dir, "describe", "--always", "--dirty", "--abbrev=7"],
      stdout: "piped",
      stderr: "null",
    }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : "unknown";
  } catch {
    return "unknown";
  }
}

/** First line of `program args...` output (stdout, else stderr), or "". */
export async function firstLine(program: string, args: string[]): Promise<string> {
  try {
    const out = await new Deno.Command(program, {
      args,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout).trim() ||
      new TextDecoder().decode(out.stderr).trim();
    return text.split("\n")[0];
  } catch {
    return "";
  }
}

/** Options for {@linkcode serverCommand}. */
export interface ServerCommandOptions {
  /** Extra `--name=value` flags passed to the server script. */
  flags?: string[];
  /** Start the runtime with `gc()` exposed (used by idle_memory.ts). */
  exposeGc?: boolean;
  /**
   * connctx only: load the module from the checkout at this directory
   * instead of this one (see {@linkcode rootImportMap}).
   */
  root?: string;
  /** Extra runtime flags for Deno-based servers (e.g. `--cpu-prof`). */
  runtimeFlags?: string[];
}

/** The argv (program first) that starts one benchmark server on a free port. */
export function serverCommand(
  kind: ServerKind,
  { flags = [], exposeGc = false, root, runtimeFlags = [] }: ServerCommandOptions = {},
): string[] {
  const deno = (script: string) => [
    Deno.execPath(),
    "run",
    "-A",
    ...(exposeGc ? ["--v8-flags=--expose-gc"] : []),
    ...(kind === "connctx" && root !== undefined ? [`--import-map=${rootImportMap(root)}`] : []),
    ...runtimeFlags,
    benchPath(script),
    "--port=0",
    ...flags,
  ];
  switch (kind) {
    case "ceiling":
      return deno("./servers/ceiling.ts");
    case "connctx":
      return deno("./servers/connctx.ts");
    case "deno":
      return deno("./servers/deno_serve.ts");
    case "node":
      return [
        "node",
        ...(exposeGc ? ["--expose-gc"] : []),
        benchPath("./servers/node_http.mjs"),
        "--port=0",
        ...flags,
      ];
  }
}

/** A running server child process. */
export interface RunningServer {
  process: Deno.ChildProcess;
  pid: number;
  /** Base URL from the readiness line, e.g. `http://127.0.0.1:40123`. */
  url: string;
  hostname: string;
  port: number;
  /** Everything the server printed so far (capped), for error messages. */
  output(): string;
  /** Stops the server (SIGTERM, then SIGKILL) and waits for it to exit. */
  stop(): Promise<void>;
}

const READY = /^READY \S+ (http:\/\/([^:/\s]+):(\d+))\s*$/m;
const OUTPUT_CAP = 16 * 1024;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Spawns `argv` and waits (at most `timeoutMs`) for its
 * `READY <name> http://host:port` line, then confirms with bounded TCP connect
 * retries that the port accepts connections. Throws (after killing the child)
 * if the server exits or never becomes ready.
 */
export async function startServer(
  argv: string[],
  timeoutMs = 20_000,
): Promise<RunningServer> {
  const [program, ...args] = argv;
  const child = new Deno.Command(program, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let output = "";
  let exited = false;
  let onOutput = () => {};
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output = (output + text).slice(-OUTPUT_CAP);
      onOutput();
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  const status = child.status.then((s) => {
    exited = true;
    onOutput();
    return s;
  });

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (!exited) {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already gone.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already gone.
        }
      }, 3_000);
      await status;
      clearTimeout(timer);
    }
    await drained;
  };

  try {
    const match = await new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`no READY line after ${timeoutMs} ms`)),
        timeoutMs,
      );
      onOutput = () => {
        const m = output.match(READY);
        if (m) {
          clearTimeout(timer);
          resolve(m);
        } else if (exited) {
          clearTimeout(timer);
          reject(new Error("server exited before printing READY"));
        }
      };
      onOutput();
    });
    onOutput = () => {};
    const [, url, hostname, portText] = match;
    const port = Number(portText);
    await waitForPort(hostname, port);
    return {
      process: child,
      pid: child.pid,
      url,
      hostname,
      port,
      output: () => output,
      stop,
    };
  } catch (err) {
    await stop();
    throw new Error(
      `${argv.join(" ")}: ${(err as Error).message}\n${output.trim()}`,
    );
  }
}

/** Connects to `hostname:port` with bounded retries (default 50 × 100 ms). */
export async function waitForPort(
  hostname: string,
  port: number,
  attempts = 50,
): Promise<void> {
  for (let i = 1;; i++) {
    try {
      const conn = await Deno.connect({ hostname, port });
      conn.close();
      return;
    } catch (err) {
      if (i >= attempts) throw err;
      await sleep(100);
    }
  }
}
