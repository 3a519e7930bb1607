// Copyright 2026 the connctx authors. MIT license.
// Owns: HTTP/1.1 response encoding primitives (RFC 9112 §6, §7): status line, header fields, and a body
// sent with Content-Length when its size is known, chunked otherwise (or
// delimited by closing the connection for HTTP/1.0 clients).
//
// Small responses leave in one `write`: head and body share one pooled buffer.
// Buffers are pooled because allocating an ArrayBuffer costs more than the
// rest of a small response.

const POOL_BUF = 16 * 1024;
/** Room kept in front of the body for the head. */
const RESERVE = 2048;
const pool: Uint8Array[] = [];
const POOL_MAX = 64;

/** Takes a 16 KiB scratch buffer from the pool. */
export function acquire(): Uint8Array {
  return pool.pop() ?? new Uint8Array(POOL_BUF);
}

/** Gives a buffer from {@linkcode acquire} back. */
export function release(b: Uint8Array): void {
  if (b.length === POOL_BUF && pool.length < POOL_MAX) pool.push(b);
}

const encoder = new TextEncoder();

let dateStr = "";
let dateUntil = 0;
/** The `Date` header value, recomputed at most once a second. */
export function httpDate(): string {
  const now = Date.now();
  // Also when the clock was stepped back.
  if (now >= dateUntil || now < dateUntil - 1000) {
    dateStr = new Date(now).toUTCString();
    dateUntil = now - (now % 1000) + 1000;
  }
  return dateStr;
}

const REASONS: Record<number, string> = {
  100: "Continue",
  101: "Switching Protocols",
  200: "OK",
  201: "Created",
  202: "Accepted",
  203: "Non-Authoritative Information",
  204: "No Content",
  205: "Reset Content",
  206: "Partial Content",
  300: "Multiple Choices",
  301: "Moved Permanently",
  302: "Found",
  303: "See Other",
  304: "Not Modified",
  307: "Temporary Redirect",
  308: "Permanent Redirect",
  400: "Bad Request",
  401: "Unauthorized",
  402: "Payment Required",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  406: "Not Acceptable",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  411: "Length Required",
  412: "Precondition Failed",
  413: "Content Too Large",
  414: "URI Too Long",
  415: "Unsupported Media Type",
  416: "Range Not Satisfiable",
  417: "Expectation Failed",
  421: "Misdirected Request",
  422: "Unprocessable Content",
  425: "Too Early",
  426: "Upgrade Required",
  428: "Precondition Required",
  429: "Too Many Requests",
  431: "Request Header Fields Too Large",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
  505: "HTTP Version Not Supported",
};

const STATUS_LINES = new Map<number, string>();
/** `HTTP/1.1 <status> <reason>\r\n`, cached for the standard reasons. */
export function statusLine(status: number, text: string): string {
  if (text === "") {
    let l = STATUS_LINES.get(status);
    if (l === undefined) {
      l = `HTTP/1.1 ${status} ${REASONS[status] ?? ""}\r\n`;
      if (STATUS_LINES.size < 1000) STATUS_LINES.set(status, l);
    }
    return l;
  }
  return `HTTP/1.1 ${status} ${text.replace(/[\r\n]/g, "")}\r\n`;
}

/** Writes a Latin-1 string (chars ≤ 0xFF; HTTP heads) as bytes; returns the end. */
export function putLatin1(s: string, buf: Uint8Array, at: number): number {
  const n = s.length;
  for (let i = 0; i < n; i++) buf[at + i] = s.charCodeAt(i);
  return at + n;
}

/** Whether a body is forbidden for a status (RFC 9110 §6.4.1). */
export function noBodyStatus(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}

/** A sink that applies back-pressure: each call resolves once written. */
export type Write = (b: Uint8Array) => Promise<void>;

/**
 * Frames a head and a small whole body into `buf` (from {@linkcode acquire})
 * and returns the bytes to write, or `null` when they do not fit; then use
 * {@linkcode sendWhole}. Synchronous: the common response costs no promise
 * until the write itself.
 */
export function frameWhole(
  buf: Uint8Array,
  head: string,
  body: string | Uint8Array | null,
): Uint8Array | null {
  if (head.length > RESERVE) return null;
  let bl = 0;
  if (typeof body === "string") {
    if (body.length > POOL_BUF - RESERVE) return null;
    const r = encoder.encodeInto(body, buf.subarray(RESERVE));
    if (r.read !== body.length) return null;
    bl = r.written;
  } else if (body !== null) {
    if (body.byteLength > POOL_BUF - RESERVE) return null;
    buf.set(body, RESERVE);
    bl = body.byteLength;
  }
  const hs = RESERVE - head.length;
  putLatin1(head, buf, hs);
  return buf.subarray(hs, RESERVE + bl);
}

/**
 * Sends a head and a whole body. `head` must end with the blank line.
 * One write when both fit a pooled buffer ({@linkcode frameWhole}).
 */
export async function sendWhole(
  write: Write,
  head: string,
  body: string | Uint8Array | null,
): Promise<void> {
  const buf = acquire();
  try {
    const frame = frameWhole(buf, head, body);
    await (frame !== null ? write(frame) : sendSplit(write, buf, head, body));
  } finally {
    release(buf);
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Sends what {@linkcode frameWhole} could not frame: a head past the reserve
 * or a large body. Head and body still share one write when they fit `buf`
 * (a pooled buffer); otherwise the head goes first, then the body as is.
 */
export async function sendSplit(
  write: Write,
  buf: Uint8Array,
  head: string,
  body: string | Uint8Array | null,
): Promise<void> {
  const bytes = body === null ? EMPTY : typeof body === "string" ? encoder.encode(body) : body;
  if (head.length + bytes.byteLength <= buf.length) {
    putLatin1(head, buf, 0);
    buf.set(bytes, head.length);
    await write(buf.subarray(0, head.length + bytes.byteLength));
    return;
  }
  await write(head.length <= buf.length ? buf.subarray(0, putLatin1(head, buf, 0)) : putHead(head));
  if (bytes.byteLength > 0) await write(bytes);
}

function putHead(head: string): Uint8Array {
  const b = new Uint8Array(head.length);
  putLatin1(head, b, 0);
  return b;
}

/** Byte length of a body as it will be sent. */
export function byteLength(body: string | Uint8Array): number {
  if (typeof body !== "string") return body.byteLength;
  // Fast for ASCII; exact for anything.
  let n = body.length;
  for (let i = 0; i < body.length; i++) {
    const c = body.charCodeAt(i);
    if (c >= 0x80) {
      if (c < 0x800) n++;
      else if (c >= 0xd800 && c <= 0xdbff && i + 1 < body.length) {
        const d = body.charCodeAt(i + 1);
        if (d >= 0xdc00 && d <= 0xdfff) {
          n += 2;
          i++;
        } else n += 2;
      } else n += 2;
    }
  }
  return n;
}

const CRLF = new Uint8Array([13, 10]);

/**
 * Sends one chunk of a chunked body, with `prefix` (a head, or nothing) in
 * front, in one write when it fits a pooled buffer.
 */
export async function sendChunk(write: Write, prefix: string, chunk: Uint8Array): Promise<void> {
  const size = `${prefix}${chunk.byteLength.toString(16)}\r\n`;
  const total = size.length + chunk.byteLength + 2;
  if (total <= POOL_BUF) {
    const buf = acquire();
    try {
      let p = putLatin1(size, buf, 0);
      buf.set(chunk, p);
      p += chunk.byteLength;
      buf[p++] = 13;
      buf[p++] = 10;
      await write(buf.subarray(0, p));
    } finally {
      release(buf);
    }
    return;
  }
  await write(putHead(size));
  await write(chunk);
  await write(CRLF);
}

/** Sends raw bytes with an optional head in front (identity framing). */
export async function sendRaw(write: Write, prefix: string, chunk: Uint8Array): Promise<void> {
  if (prefix === "") {
    await write(chunk);
    return;
  }
  await sendWhole(write, prefix, chunk);
}
