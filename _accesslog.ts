// Copyright 2026 the connctx authors. MIT license.

/**
 * Access logs: one line per request, written after its response is finished,
 * in Combined Log Format or as JSON lines, or handed to your function.
 *
 * Off by default; when off the engine calls nothing per request.
 *
 * @example Format an entry both ways
 * ```ts
 * import { type AccessLogEntry, formatCombined, formatJson } from "./_accesslog.ts";
 * import assert from "node:assert/strict";
 *
 * const entry: AccessLogEntry = {
 *   time: Date.UTC(2026, 0, 2, 3, 4, 5),
 *   remoteAddr: "192.0.2.1",
 *   remotePort: 51234,
 *   method: "GET",
 *   target: "/index.html",
 *   protocol: "HTTP/1.1",
 *   status: 200,
 *   bytes: 1024,
 *   referer: null,
 *   userAgent: "curl/8.5.0",
 *   durationMs: 1.5,
 *   connId: 7,
 *   requestId: "7-1",
 * };
 * assert.equal(
 *   formatCombined(entry),
 *   `192.0.2.1 - - [02/Jan/2026:03:04:05 +0000] "GET /index.html HTTP/1.1" 200 1024 "-" "curl/8.5.0"`,
 * );
 * assert.equal(JSON.parse(formatJson(entry)).requestId, "7-1");
 * ```
 *
 * @module
 */

/**
 * One finished request, as an access log sees it.
 *
 * @example A custom sink
 * ```ts
 * import type { AccessLogEntry } from "./_accesslog.ts";
 *
 * const slow: AccessLogEntry[] = [];
 * const accessLog = (e: AccessLogEntry) => {
 *   if (e.durationMs > 1000) slow.push(e);
 * };
 * ```
 */
export interface AccessLogEntry {
  /** When the request's head was complete, epoch ms. */
  time: number;
  /** The client's address (IP for TCP, the socket path for a unix socket,
   * `"-"` when unknown); the PROXY header's when `proxyProtocol` is on. */
  remoteAddr: string;
  /** The client's port, for TCP. */
  remotePort?: number;
  /** The request method. */
  method: string;
  /** The request target as received (path and query, usually). */
  target: string;
  /** `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`. */
  protocol: string;
  /** The status sent; `0` when no response was sent (the client left). */
  status: number;
  /** Response body bytes sent. */
  bytes: number;
  /** The `Referer` header, or `null`. */
  referer: string | null;
  /** The `User-Agent` header, or `null`. */
  userAgent: string | null;
  /** From the end of the request head to the end of the response, ms. */
  durationMs: number;
  /** The connection's number (`info.conn.id`). */
  connId: number;
  /** `"<connId>-<n>"`: the n-th request on that connection; unique per
   * process. */
  requestId: string;
}

/**
 * What the engine reports when a response is finished (the fields it has at
 * hand; {@linkcode accessLogFor} turns it into an {@linkcode AccessLogEntry}).
 *
 * @example
 * ```ts
 * import type { AccessRecord } from "./_accesslog.ts";
 *
 * const rec: AccessRecord = {
 *   start: Date.now(),
 *   duration: 2,
 *   conn: { id: 1, remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 4000 } },
 *   seq: 1,
 *   method: "GET",
 *   target: "/",
 *   protocol: "HTTP/1.1",
 *   status: 200,
 *   bytes: 5,
 *   referer: null,
 *   userAgent: null,
 * };
 * ```
 */
export interface AccessRecord {
  /** When the request's head was complete, epoch ms. */
  start: number;
  /** Duration to the end of the response, ms. */
  duration: number;
  /** The connection. */
  conn: { readonly id: number; readonly remoteAddr: Deno.Addr };
  /** Request number on its connection, from 1. */
  seq: number;
  /** The request method. */
  method: string;
  /** The request target as received. */
  target: string;
  /** `HTTP/1.0`, `HTTP/1.1` or `HTTP/2.0`. */
  protocol: string;
  /** The status sent; `0` when none was. */
  status: number;
  /** Response body bytes sent. */
  bytes: number;
  /** The `Referer` header, or `null`. */
  referer: string | null;
  /** The `User-Agent` header, or `null`. */
  userAgent: string | null;
}

/**
 * The `accessLog` server option: `true` or `"combined"` writes Combined Log
 * Format lines to stdout, `"json"` JSON lines, a function gets each
 * {@linkcode AccessLogEntry} (and writes it wherever it likes).
 *
 * @example
 * ```ts
 * import type { AccessLogOption } from "./_accesslog.ts";
 *
 * const option: AccessLogOption = (e) => console.error(e.requestId, e.status);
 * ```
 */
export type AccessLogOption = boolean | "combined" | "json" | ((entry: AccessLogEntry) => void);

/**
 * Converts what the engine reports into an {@linkcode AccessLogEntry}.
 *
 * @param rec The engine's record of a finished request.
 * @returns The entry.
 *
 * @example
 * ```ts
 * import { toEntry } from "./_accesslog.ts";
 * import assert from "node:assert/strict";
 *
 * const e = toEntry({
 *   start: 0,
 *   duration: 3,
 *   conn: { id: 4, remoteAddr: { transport: "tcp", hostname: "::1", port: 9 } },
 *   seq: 2,
 *   method: "GET",
 *   target: "/",
 *   protocol: "HTTP/1.1",
 *   status: 204,
 *   bytes: 0,
 *   referer: null,
 *   userAgent: null,
 * });
 * assert.equal(e.requestId, "4-2");
 * assert.equal(e.remoteAddr, "::1");
 * ```
 */
export function toEntry(rec: AccessRecord): AccessLogEntry {
  const a = rec.conn.remoteAddr;
  const tcp = a.transport === "tcp" || a.transport === "udp";
  return {
    time: rec.start,
    remoteAddr: tcp ? a.hostname : "path" in a && a.path ? a.path : "-",
    remotePort: tcp ? a.port : undefined,
    method: rec.method,
    target: rec.target,
    protocol: rec.protocol,
    status: rec.status,
    bytes: rec.bytes,
    referer: rec.referer,
    userAgent: rec.userAgent,
    durationMs: rec.duration,
    connId: rec.conn.id,
    requestId: `${rec.conn.id}-${rec.seq}`,
  };
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : `${n}`;
}

/** `[02/Jan/2026:03:04:05 +0000]`: common log time, in UTC. */
function clfTime(ms: number): string {
  const d = new Date(ms);
  return `[${pad2(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${
    pad2(d.getUTCHours())
  }:${pad2(d.getUTCMinutes())}:${pad2(d.getUTCSeconds())} +0000]`;
}

// Quote, backslash, control characters, DEL and anything past ASCII: what a
// log reader could mistake for structure (a forged line, a closing quote).
// deno-lint-ignore no-control-regex
const UNSAFE = /["\\\x00-\x1f\x7f-\uffff]/;
// deno-lint-ignore no-control-regex
const UNSAFE_G = /["\\\x00-\x1f\x7f-\uffff]/g;

/** Escapes like Apache's `ap_escape_logitem`: `\"`, `\\`, `\xhh` (UTF-16
 * code units past 0xff as `\uhhhh`). Never returns an empty field. */
function field(s: string | null): string {
  if (s === null || s === "") return "-";
  if (!UNSAFE.test(s)) return s;
  return s.replace(UNSAFE_G, (c) => {
    if (c === '"' || c === "\\") return `\\${c}`;
    const n = c.charCodeAt(0);
    return n <= 0xff
      ? `\\x${n.toString(16).padStart(2, "0")}`
      : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

/**
 * Formats an entry in the Combined Log Format (Apache's and nginx's
 * `combined`): `host - - [time] "request" status bytes "referer" "user-agent"`.
 * Time is UTC; `bytes` is `-` when none were sent; quotes, backslashes and
 * control characters in the request line and headers are escaped, so a client
 * cannot forge a line. The connection and request ids and the duration are not
 * part of this format: use {@linkcode formatJson} to keep them.
 *
 * @param e The entry.
 * @returns One line, without a newline.
 *
 * @example
 * ```ts
 * import { formatCombined } from "./_accesslog.ts";
 * import assert from "node:assert/strict";
 *
 * const line = formatCombined({
 *   time: 0,
 *   remoteAddr: "127.0.0.1",
 *   method: "POST",
 *   target: '/x?q="a"',
 *   protocol: "HTTP/1.1",
 *   status: 201,
 *   bytes: 0,
 *   referer: "https://example.com/",
 *   userAgent: null,
 *   durationMs: 1,
 *   connId: 1,
 *   requestId: "1-1",
 * });
 * assert.equal(
 *   line,
 *   '127.0.0.1 - - [01/Jan/1970:00:00:00 +0000] "POST /x?q=\\"a\\" HTTP/1.1" 201 - "https://example.com/" "-"',
 * );
 * ```
 */
export function formatCombined(e: AccessLogEntry): string {
  return `${field(e.remoteAddr)} - - ${clfTime(e.time)} "${field(e.method)} ${field(e.target)} ${
    field(e.protocol)
  }" ${e.status} ${e.bytes > 0 ? e.bytes : "-"} "${field(e.referer)}" "${field(e.userAgent)}"`;
}

/**
 * Formats an entry as one JSON object (a JSON line): every field of
 * {@linkcode AccessLogEntry}, with `time` as an ISO 8601 string and
 * `durationMs` rounded to microseconds.
 *
 * @param e The entry.
 * @returns One line of JSON, without a newline.
 *
 * @example
 * ```ts
 * import { formatJson } from "./_accesslog.ts";
 * import assert from "node:assert/strict";
 *
 * const line = formatJson({
 *   time: 0,
 *   remoteAddr: "127.0.0.1",
 *   remotePort: 40000,
 *   method: "GET",
 *   target: "/",
 *   protocol: "HTTP/1.1",
 *   status: 200,
 *   bytes: 2,
 *   referer: null,
 *   userAgent: "curl/8",
 *   durationMs: 0.1234567,
 *   connId: 3,
 *   requestId: "3-1",
 * });
 * assert.deepEqual(JSON.parse(line), {
 *   time: "1970-01-01T00:00:00.000Z",
 *   remoteAddr: "127.0.0.1",
 *   remotePort: 40000,
 *   method: "GET",
 *   target: "/",
 *   protocol: "HTTP/1.1",
 *   status: 200,
 *   bytes: 2,
 *   referer: null,
 *   userAgent: "curl/8",
 *   durationMs: 0.123,
 *   connId: 3,
 *   requestId: "3-1",
 * });
 * ```
 */
export function formatJson(e: AccessLogEntry): string {
  return JSON.stringify({
    time: new Date(e.time).toISOString(),
    remoteAddr: e.remoteAddr,
    remotePort: e.remotePort,
    method: e.method,
    target: e.target,
    protocol: e.protocol,
    status: e.status,
    bytes: e.bytes,
    referer: e.referer,
    userAgent: e.userAgent,
    durationMs: Math.round(e.durationMs * 1000) / 1000,
    connId: e.connId,
    requestId: e.requestId,
  });
}

/**
 * The access log a server should use, decided once at server start.
 *
 * @param option The server's `accessLog` option.
 * @returns A function the engine calls once per finished request, or `null`
 *   when the option is unset or `false` (then it calls nothing).
 *
 * @example Collect entries in a test
 * ```ts
 * import { accessLogFor, type AccessLogEntry } from "./_accesslog.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(accessLogFor(undefined), null);
 * const seen: AccessLogEntry[] = [];
 * const log = accessLogFor((e) => seen.push(e))!;
 * log({
 *   start: 0,
 *   duration: 1,
 *   conn: { id: 1, remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 1 } },
 *   seq: 1,
 *   method: "GET",
 *   target: "/",
 *   protocol: "HTTP/1.1",
 *   status: 200,
 *   bytes: 0,
 *   referer: null,
 *   userAgent: null,
 * });
 * assert.equal(seen[0].requestId, "1-1");
 * ```
 */
export function accessLogFor(
  option: AccessLogOption | undefined,
): ((rec: AccessRecord) => void) | null {
  if (option === undefined || option === false) return null;
  if (typeof option === "function") return (rec) => option(toEntry(rec));
  if (option === "json") return (rec) => console.log(formatJson(toEntry(rec)));
  if (option === true || option === "combined") {
    return (rec) => console.log(formatCombined(toEntry(rec)));
  }
  throw new TypeError(`accessLog must be true, "combined", "json" or a function, not ${option}`);
}
