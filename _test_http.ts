// Copyright 2026 the connctx authors. MIT license.
// Shared test helpers (private; not published): two raw HTTP/1.1 clients
// (exact bytes out, parsed responses in), bounded waits, and server address
// helpers. Every wait is bounded so a broken server fails a test instead of
// hanging it.

/** A parsed response. */
export interface RawResponse {
  status: number;
  headers: [string, string][];
  body: string;
  /** The header value (lower-cased name), or null. */
  get(name: string): string | null;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw connection to a test server. */
export class RawClient {
  readonly conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #eof = false;
  readonly timeoutMs: number;

  private constructor(conn: Deno.TcpConn, timeoutMs: number) {
    this.conn = conn;
    this.timeoutMs = timeoutMs;
  }

  /** Connects to `port` on 127.0.0.1. */
  static async connect(port: number, timeoutMs = 10_000): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }), timeoutMs);
  }

  /** Sends bytes (a string is sent as Latin-1/ASCII). */
  async send(data: string | Uint8Array): Promise<void> {
    const b = typeof data === "string" ? bytes(data) : data;
    let off = 0;
    while (off < b.length) off += await this.conn.write(b.subarray(off));
  }

  async #more(): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout">((
      r,
    ) => (timer = setTimeout(() => r("timeout"), this.timeoutMs)));
    let n: number | null | "timeout";
    try {
      n = await Promise.race([this.conn.read(chunk).catch(() => null), timeout]);
    } finally {
      clearTimeout(timer);
    }
    if (n === "timeout") throw new Error(`no data from server within ${this.timeoutMs} ms`);
    if (n === null) {
      this.#eof = true;
      return false;
    }
    const nb = new Uint8Array(this.#buf.length + n);
    nb.set(this.#buf);
    nb.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = nb;
    return true;
  }

  /** Reads one response; `null` if the server closed the connection first. */
  async read(opts: { head?: boolean } = {}): Promise<RawResponse | null> {
    let end: number;
    while ((end = indexOf(this.#buf, "\r\n\r\n")) === -1) {
      if (!(await this.#more())) {
        if (this.#buf.length === 0) return null;
        throw new Error(`connection closed mid-head: ${JSON.stringify(dec.decode(this.#buf))}`);
      }
    }
    const headText = String.fromCharCode(...this.#buf.subarray(0, end));
    this.#buf = this.#buf.subarray(end + 4);
    const lines = headText.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error(`bad status line: ${lines[0]}`);
    const status = Number(m[1]);
    const headers: [string, string][] = lines.slice(1).map((l) => {
      const i = l.indexOf(":");
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const get = (name: string) => headers.find(([k]) => k === name)?.[1] ?? null;
    let body: Uint8Array = new Uint8Array(0);
    const noBody = opts.head || status < 200 || status === 204 || status === 304;
    if (!noBody) {
      const te = get("transfer-encoding");
      const cl = get("content-length");
      if (te !== null && /chunked/i.test(te)) body = await this.#chunked();
      else if (cl !== null) body = await this.#take(Number(cl));
      else {
        while (await this.#more());
        body = this.#buf;
        this.#buf = new Uint8Array(0);
      }
    }
    return { status, headers, body: dec.decode(body), get };
  }

  async #take(n: number): Promise<Uint8Array> {
    while (this.#buf.length < n) {
      if (!(await this.#more())) throw new Error("connection closed mid-body");
    }
    const out = this.#buf.slice(0, n);
    this.#buf = this.#buf.subarray(n);
    return out;
  }

  async #line(): Promise<string> {
    let i: number;
    while ((i = indexOf(this.#buf, "\r\n")) === -1) {
      if (!(await this.#more())) throw new Error("connection closed mid-chunk");
    }
    const l = dec.decode(this.#buf.subarray(0, i));
    this.#buf = this.#buf.subarray(i + 2);
    return l;
  }

  async #chunked(): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (;;) {
      const size = parseInt(await this.#line(), 16);
      if (size === 0) {
        while ((await this.#line()) !== "");
        break;
      }
      parts.push(await this.#take(size));
      await this.#line();
    }
    return concat(parts);
  }

  /** Resolves true once the server has closed the connection (bounded). */
  async closedByServer(): Promise<boolean> {
    while (await this.#more());
    return this.#eof;
  }

  /** What arrived and was not consumed by `read`. */
  rest(): string {
    return dec.decode(this.#buf);
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* already closed */ }
  }
}

function indexOf(buf: Uint8Array, s: string): number {
  const needle = enc.encode(s);
  outer: for (let i = 0; i + needle.length <= buf.length; i++) {
    for (let j = 0; j < needle.length; j++) if (buf[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** `GET path` with a Host header (and extra header lines). */
export function get(path = "/", extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n${extra}\r\n`;
}

// ---------------------------------------------------------------------------
// Bytes, bounds and addresses

/** The default bound, in ms, on a wait of `Client` and `within()`. */
export const WAIT = 5_000;

/** Latin-1 bytes of `s` (one byte per character). */
export function bytes(s: string): Uint8Array {
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

/** Latin-1 text of `b` (one character per byte). */
export function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 8192) {
    s += String.fromCharCode(...b.subarray(i, i + 8192));
  }
  return s;
}

/** The chunks joined into one array. */
export function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.byteLength, 0));
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.byteLength;
  }
  return out;
}

/** Awaits `p`, failing if it has not settled within `ms`: a bound against
 * hangs, never an assertion about timing. */
export async function within<T>(p: Promise<T>, what: string, ms = WAIT): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, bound]);
  } finally {
    clearTimeout(timer);
  }
}

/** Options every test server uses: loopback, a free port, no log line. */
export const LOOPBACK = { port: 0, hostname: "127.0.0.1", onListen() {} } as const;

/** The port of an address, or of a server's or listener's address. */
export function portOf(of: Deno.Addr | { readonly addr: Deno.Addr }): number {
  return (("addr" in of ? of.addr : of) as Deno.NetAddr).port;
}

/** `http://127.0.0.1:<port><path>` for a server. */
export function urlOf(server: { readonly addr: Deno.Addr }, path = "/"): string {
  return `http://127.0.0.1:${portOf(server)}${path}`;
}

// ---------------------------------------------------------------------------
// Client: a raw client with per-response deadlines and close tracking

/** A parsed response. */
export interface Res {
  status: number;
  reason: string;
  /** Lower-cased names, in order. */
  headers: [string, string][];
  body: Uint8Array;
  text: string;
  get(name: string): string | null;
}

/**
 * A raw connection that tracks how the peer closed (`eof`, `reset`) and reads
 * each response against one deadline. Disposing of it closes the connection.
 */
export class Client implements AsyncDisposable {
  readonly conn: Deno.TcpConn;
  #buf: Uint8Array = new Uint8Array(0);
  #read: Promise<number | null> | null = null;
  #chunk = new Uint8Array(64 * 1024);
  /** The peer closed (FIN or RST). */
  eof = false;
  /** The peer reset the connection. */
  reset = false;
  #closed = false;

  constructor(conn: Deno.TcpConn) {
    this.conn = conn;
  }

  static async open(port: number): Promise<Client> {
    return new Client(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /** Writes all of `data`; false if the peer is gone. */
  async send(data: string | Uint8Array): Promise<boolean> {
    const b = typeof data === "string" ? bytes(data) : data;
    try {
      let off = 0;
      while (off < b.length) off += await this.conn.write(b.subarray(off));
      return true;
    } catch {
      return false;
    }
  }

  closeWrite(): Promise<void> {
    return this.conn.closeWrite();
  }

  /** Reads once more into the buffer, waiting at most until `deadline`. */
  async #more(deadline: number, what: string): Promise<boolean> {
    if (this.eof) return false;
    if (this.#read === null) {
      this.#read = this.conn.read(this.#chunk).catch((e) => {
        if (e instanceof Deno.errors.ConnectionReset) this.reset = true;
        return null;
      });
    }
    const n = await within(this.#read, what, Math.max(1, deadline - Date.now()));
    this.#read = null;
    if (n === null) {
      this.eof = true;
      return false;
    }
    const nb = new Uint8Array(this.#buf.length + n);
    nb.set(this.#buf);
    nb.set(this.#chunk.subarray(0, n), this.#buf.length);
    this.#buf = nb;
    return true;
  }

  /** Bytes received and not yet consumed. */
  get buffered(): Uint8Array {
    return this.#buf;
  }

  /**
   * Reads one response. `head`: it answers a HEAD request (no body). Throws
   * if the connection closes before a complete response.
   */
  async response(opts: { head?: boolean; ms?: number } = {}): Promise<Res> {
    const deadline = Date.now() + (opts.ms ?? WAIT);
    let end: number;
    for (;;) {
      end = findCRLFCRLF(this.#buf);
      if (end !== -1) break;
      if (!await this.#more(deadline, "response head")) {
        throw new Error(
          `connection closed before a response head; got ${JSON.stringify(latin1(this.#buf))}`,
        );
      }
    }
    const lines = latin1(this.#buf.subarray(0, end - 4)).split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3}) (.*)$/.exec(lines[0]);
    if (m === null) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
    const status = Number(m[1]);
    const headers: [string, string][] = lines.slice(1).map((l) => {
      const i = l.indexOf(":");
      if (i <= 0) throw new Error(`bad header line ${JSON.stringify(l)}`);
      return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
    });
    const get = (name: string) => headers.find(([k]) => k === name)?.[1] ?? null;
    this.#buf = this.#buf.subarray(end);
    let body: Uint8Array = new Uint8Array(0);
    const te = get("transfer-encoding");
    const cl = get("content-length");
    if (opts.head || status < 200 || status === 204 || status === 304) {
      // No body.
    } else if (te !== null) {
      if (te.toLowerCase() !== "chunked") throw new Error(`unexpected transfer-encoding ${te}`);
      body = await this.#chunked(deadline);
    } else if (cl !== null) {
      const n = Number(cl);
      while (this.#buf.length < n) {
        if (!await this.#more(deadline, "response body")) {
          throw new Error(`closed after ${this.#buf.length} of ${n} body bytes`);
        }
      }
      body = this.#buf.slice(0, n);
      this.#buf = this.#buf.subarray(n);
    } else {
      while (await this.#more(deadline, "close-delimited body"));
      body = this.#buf;
      this.#buf = new Uint8Array(0);
    }
    return { status, reason: m[2], headers, body, text: dec.decode(body), get };
  }

  async #chunked(deadline: number): Promise<Uint8Array> {
    const parts: Uint8Array[] = [];
    for (;;) {
      let lf: number;
      while ((lf = this.#buf.indexOf(10)) === -1) {
        if (!await this.#more(deadline, "chunk size")) throw new Error("closed in chunk size");
      }
      const size = parseInt(latin1(this.#buf.subarray(0, lf)), 16);
      if (Number.isNaN(size)) throw new Error("bad chunk size");
      this.#buf = this.#buf.subarray(lf + 1);
      if (size === 0) {
        // No trailers from this server: just the final CRLF.
        while (this.#buf.length < 2) {
          if (!await this.#more(deadline, "last chunk")) throw new Error("closed in last chunk");
        }
        this.#buf = this.#buf.subarray(2);
        break;
      }
      while (this.#buf.length < size + 2) {
        if (!await this.#more(deadline, "chunk data")) throw new Error("closed in chunk data");
      }
      parts.push(this.#buf.slice(0, size));
      this.#buf = this.#buf.subarray(size + 2);
    }
    return concat(parts);
  }

  /** Reads until the peer closes; returns what arrived meanwhile. */
  async closed(ms = WAIT): Promise<Uint8Array> {
    const deadline = Date.now() + ms;
    while (await this.#more(deadline, "connection close"));
    const rest = this.#buf;
    this.#buf = new Uint8Array(0);
    return rest;
  }

  /** Sends a request and reads its response. */
  async request(raw: string, opts: { head?: boolean; ms?: number } = {}): Promise<Res> {
    if (!await this.send(raw)) throw new Error("could not send the request");
    return await this.response(opts);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.conn.close();
    } catch { /* already closed */ }
    if (this.#read !== null) await this.#read;
  }
}

function findCRLFCRLF(b: Uint8Array): number {
  for (let i = b.indexOf(13); i !== -1 && i + 3 < b.length; i = b.indexOf(13, i + 1)) {
    if (b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i + 4;
  }
  return -1;
}

// ---------------------------------------------------------------------------
// TLS

/**
 * A test CA and a leaf certificate for localhost and 127.0.0.1 signed by it
 * (rustls refuses a CA certificate used as a server's own), made with
 * openssl in a temporary directory that is removed again; `null` when
 * openssl is missing or fails.
 */
export async function testCerts(): Promise<{ ca: string; cert: string; key: string } | null> {
  const dir = await Deno.makeTempDir({ prefix: "connctx-certs-" });
  const ssl = async (args: string[]) => {
    const out = await new Deno.Command("openssl", {
      args,
      cwd: dir,
      stdout: "null",
      stderr: "null",
    }).output();
    if (!out.success) throw new Error(`openssl ${args[0]} failed`);
  };
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  try {
    await ssl([
      ...["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2"],
      ...["-subj", "/CN=connctx test CA"],
    ]);
    await ssl(["req", ...ec, "-keyout", "key.pem", "-out", "leaf.csr", "-subj", "/CN=localhost"]);
    await Deno.writeTextFile(
      `${dir}/leaf.ext`,
      "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n" +
        "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n",
    );
    await ssl([
      ...["x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key"],
      ...["-CAcreateserial", "-out", "cert.pem", "-days", "2", "-extfile", "leaf.ext"],
    ]);
    return {
      ca: await Deno.readTextFile(`${dir}/ca.pem`),
      cert: await Deno.readTextFile(`${dir}/cert.pem`),
      key: await Deno.readTextFile(`${dir}/key.pem`),
    };
  } catch {
    return null;
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
