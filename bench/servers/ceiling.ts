// Physical upper bound ("ceiling") for the HTTP benchmarks: a bare
// Deno.listen loop that does no HTTP parsing at all. Each connection owns one
// small read buffer and every `read` is answered by writing one canned, full
// HTTP/1.1 response chosen at startup by --scenario.
//
//   deno run -A bench/servers/ceiling.ts --port=0 --scenario=hello
//
// Scenarios: hello (keep-alive), close (closes the connection after the
// response when the bytes read contain "close"), big, ctx, echo. For echo a
// single read cannot hold the 64 KiB request, so it skips to the end of the
// head ("\r\n\r\n") and then counts 64 KiB of body bytes before answering.
//
// Prints `READY ceiling http://127.0.0.1:<port>` once listening.

import {
  BIG_SIZE,
  CTX_HEADERS,
  ctxBody,
  ECHO_SIZE,
  HELLO,
  patternBytes,
  TENANT,
} from "./payloads.mjs";
import { announce, argFlag, serverFlags } from "./shared.ts";

type Scenario = "hello" | "close" | "big" | "echo" | "ctx";
const SCENARIOS: readonly Scenario[] = ["hello", "close", "big", "echo", "ctx"];

const encoder = new TextEncoder();

function cannedResponse(scenario: Scenario): Uint8Array {
  const response = (type: string, body: Uint8Array, extra = "") => {
    const head = encoder.encode(
      `HTTP/1.1 200 OK\r\ncontent-type: ${type}\r\n${extra}` +
        `content-length: ${body.byteLength}\r\n\r\n`,
    );
    const out = new Uint8Array(head.byteLength + body.byteLength);
    out.set(head);
    out.set(body, head.byteLength);
    return out;
  };
  switch (scenario) {
    case "hello":
      return response("text/plain", encoder.encode(HELLO));
    case "close":
      return response(
        "text/plain",
        encoder.encode(HELLO),
        "connection: close\r\n",
      );
    case "big":
      return response("application/octet-stream", patternBytes(BIG_SIZE));
    case "echo":
      return response("application/octet-stream", patternBytes(ECHO_SIZE));
    case "ctx": {
      const body = ctxBody(
        CTX_HEADERS["user-agent"],
        CTX_HEADERS.accept,
        CTX_HEADERS["x-request-id"],
        TENANT,
      );
      return response("text/plain", encoder.encode(body));
    }
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.byteLength;) {
    off += await conn.write(bytes.subarray(off));
  }
}

const CLOSE = encoder.encode("close");

function containsClose(buf: Uint8Array, n: number): boolean {
  outer: for (let i = 0; i + CLOSE.length <= n; i++) {
    for (let j = 0; j < CLOSE.length; j++) {
      if (buf[i + j] !== CLOSE[j]) continue outer;
    }
    return true;
  }
  return false;
}

/** One canned response per read (hello, close, big, ctx). */
async function perRead(
  conn: Deno.Conn,
  canned: Uint8Array,
  closeOnRequest: boolean,
): Promise<void> {
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    await writeAll(conn, canned);
    if (closeOnRequest && containsClose(buf, n)) return;
  }
}

/** echo: find the end of each head, count ECHO_SIZE body bytes, answer. */
async function perEcho(conn: Deno.Conn, canned: Uint8Array): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  let crlfMatched = 0; // how much of "\r\n\r\n" has been seen
  let bodyLeft = -1; // -1 while still in the head
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return;
    let i = 0;
    while (i < n) {
      if (bodyLeft < 0) {
        const b = buf[i++];
        if (b === (crlfMatched % 2 === 0 ? 13 : 10)) {
          if (++crlfMatched === 4) bodyLeft = ECHO_SIZE;
        } else {
          crlfMatched = b === 13 ? 1 : 0;
        }
      } else {
        const take = Math.min(bodyLeft, n - i);
        i += take;
        bodyLeft -= take;
      }
      if (bodyLeft === 0) {
        await writeAll(conn, canned);
        bodyLeft = -1;
        crlfMatched = 0;
      }
    }
  }
}

async function handle(
  conn: Deno.TcpConn,
  scenario: Scenario,
  canned: Uint8Array,
) {
  try {
    // No setNoDelay: one write per response gains nothing from it, and the
    // syscall would lower the bound on short connections.
    if (scenario === "echo") await perEcho(conn, canned);
    else await perRead(conn, canned, scenario === "close");
  } catch {
    // Peer reset: nothing to do.
  } finally {
    try {
      conn.close();
    } catch {
      // Already closed.
    }
  }
}

const scenario = (argFlag("scenario") ?? "hello") as Scenario;
if (!SCENARIOS.includes(scenario)) {
  throw new Error(`--scenario must be one of ${SCENARIOS.join(", ")}`);
}
const canned = cannedResponse(scenario);
const { port, hostname } = serverFlags();
const listener = Deno.listen({ port, hostname });
announce("ceiling", listener.addr);
for await (const conn of listener) {
  handle(conn, scenario, canned);
}
