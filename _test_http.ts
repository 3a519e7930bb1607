// Copyright 2026 the connctx authors. MIT license.
// A tiny raw HTTP/1.1 client for tests: exact bytes out, parsed responses in,
// every wait bounded so a broken server fails a test instead of hanging it.

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
    const b = typeof data === "string" ? latin1(data) : data;
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
    const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
    let o = 0;
    for (const p of parts) {
      out.set(p, o);
      o += p.length;
    }
    return out;
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

function latin1(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) b[i] = s.charCodeAt(i);
  return b;
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

/** The port of a server's address. */
export function portOf(addr: Deno.Addr): number {
  return (addr as Deno.NetAddr).port;
}
