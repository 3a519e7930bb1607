// Copyright 2026 the connctx authors. MIT license.
// Test helpers for the WebSocket engine (private; not published): an
// in-memory transport pair, a raw WebSocket client that sends exact frames
// (masked or not, any bits) and reads the server's frames, and a minimal
// HTTP server that upgrades every request, so the engine can be tested over
// real TCP before it is wired into the HTTP server. Every wait is bounded.

import { FrameHeader, unmask } from "./frame.ts";
import {
  ConnctxWebSocket,
  connTransport,
  startWebSocket,
  type WebSocketTransport,
} from "./socket.ts";
import type { SocketConfig } from "./socket.ts";
import { acceptHandshake, WebSocketHandshakeError } from "./handshake.ts";
import type { CompressionOptions } from "./deflate.ts";

/** Rejects after `ms` with `what` in the message. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  const t = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

/** One direction of an in-memory pipe. */
class Channel {
  chunks: Uint8Array[] = [];
  size = 0;
  closed = false;
  reader: (() => void) | null = null;
  writers: (() => void)[] = [];
  constructor(readonly capacity: number) {}
  wake() {
    const r = this.reader;
    this.reader = null;
    r?.();
  }
  drained() {
    while (this.writers.length > 0 && this.size < this.capacity) this.writers.shift()!();
  }
}

/** A byte-stream end with the transport shape. */
export interface PipeEnd extends WebSocketTransport {
  closeWrite(): void;
}

/**
 * Two connected in-memory transports. `capacity` bounds the bytes in flight
 * per direction: a writer waits while the reader lags (back-pressure).
 */
export function pipe(capacity = Infinity): [PipeEnd, PipeEnd] {
  const ab = new Channel(capacity);
  const ba = new Channel(capacity);
  const end = (rx: Channel, tx: Channel): PipeEnd => ({
    async read(buf) {
      while (rx.chunks.length === 0) {
        if (rx.closed) return null;
        await new Promise<void>((r) => rx.reader = r);
      }
      let n = 0;
      while (n < buf.length && rx.chunks.length > 0) {
        const c = rx.chunks[0];
        const take = Math.min(c.length, buf.length - n);
        buf.set(c.subarray(0, take), n);
        n += take;
        if (take === c.length) rx.chunks.shift();
        else rx.chunks[0] = c.subarray(take);
      }
      rx.size -= n;
      rx.drained();
      return n;
    },
    async write(bytes) {
      if (tx.closed) throw new Error("pipe closed");
      const n = bytes.length;
      tx.chunks.push(bytes.slice());
      tx.size += bytes.length;
      tx.wake();
      while (tx.size > tx.capacity && !tx.closed) {
        await new Promise<void>((r) => tx.writers.push(r));
      }
      if (tx.closed && tx.size > 0) throw new Error("pipe closed");
      return n;
    },
    close() {
      for (const c of [rx, tx]) {
        c.closed = true;
        c.wake();
        for (const w of c.writers.splice(0)) w();
      }
    },
    closeWrite() {
      tx.closed = true;
      tx.wake();
    },
  });
  return [end(ab, ba), end(ba, ab)];
}

/** A frame as the raw client reads it. */
export interface RawFrame {
  fin: boolean;
  rsv1: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** Options for {@linkcode RawWsClient.frame}. */
export interface FrameOpts {
  fin?: boolean;
  rsv?: number;
  mask?: boolean;
  /** Announce this length instead of the payload's (for limit tests). */
  length?: number | bigint;
}

const enc = new TextEncoder();

/** A WebSocket client that writes exact frames and reads the server's. */
export class RawWsClient {
  #buf = new Uint8Array(0);
  #eof = false;
  readonly #hdr = new FrameHeader();
  constructor(readonly t: WebSocketTransport, initial?: Uint8Array) {
    if (initial) this.#buf = initial.slice();
  }

  /** Encodes a client frame (masked with a random key unless `mask: false`). */
  static frame(
    opcode: number,
    payload: Uint8Array | string = new Uint8Array(0),
    o: FrameOpts = {},
  ) {
    const p = typeof payload === "string" ? enc.encode(payload) : payload;
    const mask = o.mask ?? true;
    const len = o.length === undefined ? BigInt(p.length) : BigInt(o.length);
    const head: number[] = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | opcode];
    const m = mask ? 0x80 : 0;
    if (len < 126n) head.push(m | Number(len));
    else if (len < 65536n) head.push(m | 126, Number(len >> 8n), Number(len & 255n));
    else {
      head.push(m | 127);
      for (let i = 7; i >= 0; i--) head.push(Number((len >> BigInt(i * 8)) & 255n));
    }
    const key = crypto.getRandomValues(new Uint8Array(4));
    if (mask) head.push(...key);
    const out = new Uint8Array(head.length + p.length);
    out.set(head);
    out.set(p, head.length);
    if (mask) unmask(out, head.length, out.length, key, 0);
    return out;
  }

  /** Writes bytes. */
  async send(bytes: Uint8Array): Promise<void> {
    for (let o = 0; o < bytes.length;) o += await this.t.write(bytes.subarray(o));
  }

  /** Writes one frame. */
  async sendFrame(opcode: number, payload?: Uint8Array | string, o?: FrameOpts): Promise<void> {
    await this.send(RawWsClient.frame(opcode, payload, o));
  }

  async #more(ms: number): Promise<boolean> {
    if (this.#eof) return false;
    const chunk = new Uint8Array(64 * 1024);
    let n: number | null;
    try {
      n = await within(this.t.read(chunk), ms, "server frame");
    } catch (e) {
      if (String(e).includes("timed out")) throw e;
      n = null; // reset counts as EOF
    }
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

  /** Reads one server frame; null at EOF. */
  async read(ms = 5000): Promise<RawFrame | null> {
    const limits = { maxPayload: 2 ** 40, allowRsv1: true, allowUnmasked: true };
    while (true) {
      const hs = this.#hdr.parse(this.#buf, 0, this.#buf.length, limits);
      if (hs > 0 && this.#buf.length >= hs + this.#hdr.length) {
        if (this.#hdr.masked) throw new Error("server sent a masked frame");
        const payload = this.#buf.slice(hs, hs + this.#hdr.length);
        this.#buf = this.#buf.subarray(hs + this.#hdr.length);
        const h = this.#hdr;
        return { fin: h.fin, rsv1: h.rsv1, opcode: h.opcode, payload };
      }
      if (!(await this.#more(ms))) {
        if (this.#buf.length === 0) return null;
        throw new Error(`EOF inside a frame (${this.#buf.length} bytes left)`);
      }
    }
  }

  /** Reads frames until a close frame; returns its code (1005 if empty) and reason, or null at EOF. */
  async readClose(ms = 5000): Promise<{ code: number; reason: string; before: RawFrame[] } | null> {
    const before: RawFrame[] = [];
    while (true) {
      const f = await this.read(ms);
      if (f === null) return null;
      if (f.opcode === 8) {
        const code = f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
        return { code, reason: new TextDecoder().decode(f.payload.subarray(2)), before };
      }
      before.push(f);
    }
  }

  /** Resolves at EOF (any data before it is discarded); rejects after `ms`. */
  async eof(ms = 5000): Promise<void> {
    this.#buf = new Uint8Array(0);
    while (await this.#more(ms)) this.#buf = new Uint8Array(0);
  }
}

/** A socket started on one end of a pipe, a raw client on the other. */
export function socketPair(config: SocketConfig = {}, capacity = Infinity) {
  const [a, b] = pipe(capacity);
  const socket = new ConnctxWebSocket({ url: "ws://test/", ...config });
  const client = new RawWsClient(b);
  return {
    socket,
    client,
    start: () => startWebSocket(socket, a, null),
    serverEnd: a,
    clientEnd: b,
  };
}

/** Records a socket's events as strings, and resolves when it closes. */
export function record(socket: WebSocket): { events: string[]; closed: Promise<CloseEvent> } {
  const events: string[] = [];
  const closed = new Promise<CloseEvent>((resolve) => {
    socket.addEventListener("open", () => events.push("open"));
    socket.addEventListener("message", (e) => {
      const d = (e as MessageEvent).data;
      events.push(
        typeof d === "string"
          ? `text:${d.length > 40 ? `${d.slice(0, 40)}…(${d.length})` : d}`
          : d instanceof ArrayBuffer
          ? `binary:${d.byteLength}`
          : `blob:${(d as Blob).size}`,
      );
    });
    socket.addEventListener("error", () => events.push("error"));
    socket.addEventListener("close", (e) => {
      const c = e as CloseEvent;
      events.push(`close:${c.code}:${c.reason}:${c.wasClean}`);
      resolve(c);
    });
  });
  return { events, closed };
}

/** Options of {@linkcode miniServer}. */
export interface MiniOptions
  extends Omit<SocketConfig, "url" | "protocol" | "extensions" | "deflate"> {
  protocol?: string;
  compression?: boolean | CompressionOptions;
  /** Serve this page for a GET without an Upgrade header. */
  page?: string;
}

/**
 * A minimal HTTP/1.1 server on 127.0.0.1 that upgrades every request and
 * hands the socket to `onSocket` (a test harness, not the real engine).
 */
export function miniServer(
  onSocket: (socket: ConnctxWebSocket, req: Request) => void,
  opts: MiniOptions = {},
): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      handle(conn).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  async function handle(conn: Deno.Conn) {
    let buf = new Uint8Array(0);
    let end = -1;
    const chunk = new Uint8Array(4096);
    while (end < 0) {
      const n = await conn.read(chunk);
      if (n === null) return conn.close();
      const nb = new Uint8Array(buf.length + n);
      nb.set(buf);
      nb.set(chunk.subarray(0, n), buf.length);
      buf = nb;
      for (let i = 0; i + 3 < buf.length; i++) {
        if (buf[i] === 13 && buf[i + 1] === 10 && buf[i + 2] === 13 && buf[i + 3] === 10) {
          end = i;
          break;
        }
      }
    }
    const lines = new TextDecoder().decode(buf.subarray(0, end)).split("\r\n");
    const [method, target] = lines[0].split(" ");
    const headers = new Headers();
    for (const l of lines.slice(1)) {
      const i = l.indexOf(":");
      headers.append(l.slice(0, i).trim(), l.slice(i + 1).trim());
    }
    const req = new Request(`http://${headers.get("host") ?? "localhost"}${target}`, {
      method,
      headers,
    });
    const write = async (s: string) => {
      const b = enc.encode(s);
      for (let o = 0; o < b.length;) o += await conn.write(b.subarray(o));
    };
    if (!headers.get("upgrade") && opts.page !== undefined) {
      const body = enc.encode(opts.page);
      await write(
        `HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n`,
      );
      for (let o = 0; o < body.length;) o += await conn.write(body.subarray(o));
      return conn.close();
    }
    let agreed;
    try {
      agreed = acceptHandshake(req, { protocol: opts.protocol, compression: opts.compression });
    } catch (e) {
      if (!(e instanceof WebSocketHandshakeError)) throw e;
      const res = e.response();
      let head = `HTTP/1.1 ${res.status} x\r\nconnection: close\r\n`;
      for (const [k, v] of res.headers) head += `${k}: ${v}\r\n`;
      await write(head + "content-length: 0\r\n\r\n");
      return conn.close();
    }
    const socket = new ConnctxWebSocket({
      ...opts,
      url: req.url.replace(/^http/, "ws"),
      protocol: agreed.protocol,
      extensions: agreed.extensions,
      deflate: agreed.deflate,
    });
    onSocket(socket, req);
    let head = "HTTP/1.1 101 Switching Protocols\r\n";
    for (const [k, v] of agreed.headers) head += `${k}: ${v}\r\n`;
    await write(head + "\r\n");
    startWebSocket(socket, connTransport(conn), buf.subarray(end + 4));
  }
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      try {
        listener.close();
      } catch { /* closed */ }
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    },
  };
}

/** Connects a raw client to `port`, performs the handshake, returns it and the 101 head. */
export async function rawConnect(
  port: number,
  extraHeaders = "",
  path = "/",
): Promise<{ client: RawWsClient; head: string; conn: Deno.TcpConn }> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  const req = `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` +
    `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n${extraHeaders}\r\n`;
  await conn.write(enc.encode(req));
  let buf = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  while (true) {
    const n = await within(conn.read(chunk), 5000, "handshake response");
    if (n === null) throw new Error("closed during handshake");
    const nb = new Uint8Array(buf.length + n);
    nb.set(buf);
    nb.set(chunk.subarray(0, n), buf.length);
    buf = nb;
    const text = new TextDecoder("latin1").decode(buf);
    const i = text.indexOf("\r\n\r\n");
    if (i >= 0) {
      return {
        client: new RawWsClient(connTransport(conn), buf.subarray(i + 4)),
        head: text.slice(0, i),
        conn,
      };
    }
  }
}
