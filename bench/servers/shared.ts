// Routes and flag parsing shared by the Deno-based benchmark servers
// (connctx.ts and deno_serve.ts), so both run exactly the same handler code.

import { BIG_SIZE, ctxBody, ECHO_SIZE, HELLO, patternBytes } from "./payloads.mjs";

const TEXT = { "content-type": "text/plain" } as const;
const OCTETS = { "content-type": "application/octet-stream" } as const;

/** Preallocated 1 MiB body of /big. */
const BIG = patternBytes(BIG_SIZE);

/** Options common to all benchmark servers. */
export interface ServerFlags {
  port: number;
  hostname: string;
}

/**
 * Reads `--port=N` / `--hostname=H` from argv, falling back to the PORT and
 * HOSTNAME environment variables, then to 0 (a free port) and 127.0.0.1.
 */
export function serverFlags(args: string[] = Deno.args): ServerFlags {
  const port = Number(argFlag("port", args) ?? Deno.env.get("PORT") ?? 0);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid port: ${port}`);
  }
  const hostname = argFlag("hostname", args) ?? Deno.env.get("HOSTNAME") ??
    "127.0.0.1";
  return { port, hostname };
}

/** Returns the value of `--name=value` in argv, if present. */
export function argFlag(
  name: string,
  args: string[] = Deno.args,
): string | undefined {
  const prefix = `--${name}=`;
  return args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/** Prints the readiness line the harness waits for. */
export function announce(name: string, addr: Deno.Addr): void {
  if (addr.transport !== "tcp") throw new Error(`not TCP: ${addr.transport}`);
  console.log(`READY ${name} http://${addr.hostname}:${addr.port}`);
}

/** Answers every benchmark scenario, selected by URL path. */
export function route(
  req: Request,
  tenant: string | undefined,
): Response | Promise<Response> {
  const url = req.url;
  const path = url.slice(url.indexOf("/", url.indexOf("//") + 2));
  switch (path) {
    case "/hello":
      return new Response(HELLO, { headers: TEXT });
    case "/big":
      return new Response(BIG, { headers: OCTETS });
    case "/echo":
      return echo(req);
    case "/ctx": {
      const h = req.headers;
      return new Response(
        ctxBody(
          h.get("user-agent"),
          h.get("accept"),
          h.get("x-request-id"),
          tenant,
        ),
        { headers: TEXT },
      );
    }
    case "/__gc":
      return collectGarbage();
    default:
      return new Response("not found", { status: 404, headers: TEXT });
  }
}

async function echo(req: Request): Promise<Response> {
  const body = await req.bytes();
  if (body.byteLength !== ECHO_SIZE) {
    return new Response(`expected ${ECHO_SIZE} bytes`, {
      status: 400,
      headers: TEXT,
    });
  }
  return new Response(body, { headers: OCTETS });
}

/** Used by idle_memory.ts (servers started with --expose-gc) only. */
function collectGarbage(): Response {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) {
    return new Response("gc not exposed", { status: 501, headers: TEXT });
  }
  gc();
  return new Response("gc", { headers: TEXT });
}
