// Copyright 2026 the connctx authors. MIT license.
// Test helpers for HTTP/2: a raw frame client over Deno.connect (written
// from RFC 9113, for frame-level cases), an HPACK-encoding request builder,
// and a self-signed certificate made with `openssl`.

import { concat, testCerts } from "../_test_http.ts";
import { ByteBuf } from "./buf.ts";
import {
  CONTINUATION,
  DATA,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FRAME_HEADER_SIZE,
  type FrameHeader,
  GOAWAY,
  HEADERS,
  PING,
  PREFACE,
  putHeader,
  readFrameHeader,
  readU31,
  readU32,
  RST_STREAM,
  SETTINGS,
  WINDOW_UPDATE,
} from "./frame.ts";
import { Decoder, Encoder } from "./hpack.ts";

/** A frame as the raw client reads it. */
export interface Frame extends FrameHeader {
  payload: Uint8Array;
}

/** What the server did, as the raw client saw it. */
export type Outcome =
  | { kind: "goaway"; code: number; last: number; debug: string }
  | { kind: "rst"; stream: number; code: number }
  | { kind: "closed" }
  | { kind: "timeout" };

/**
 * A raw HTTP/2 client: writes frames byte for byte and reads the server's
 * frames, with bounded waits.
 */
export class RawClient {
  readonly conn: Deno.Conn;
  readonly enc: Encoder = new Encoder({ sensitive: () => false });
  readonly dec: Decoder = new Decoder();
  #buf = new Uint8Array(0);
  #eof = false;
  #pending: Promise<void> | null = null;
  /** Every frame read so far. */
  readonly frames: Frame[] = [];

  constructor(conn: Deno.Conn) {
    this.conn = conn;
  }

  /** Connects, sends the preface and an empty SETTINGS, and (unless told
   * otherwise) reads the server's SETTINGS and ACKs it. */
  static async connect(
    port: number,
    { preface = true, settings = [] as [number, number][], handshake = true } = {},
  ): Promise<RawClient> {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const c = new RawClient(conn);
    if (preface) {
      await c.write(PREFACE);
      await c.settings(settings);
    }
    if (preface && handshake) {
      const f = await c.expect((f) => f.type === SETTINGS && (f.flags & FLAG_ACK) === 0);
      if (f === null) throw new Error("no SETTINGS from the server");
      await c.frame(SETTINGS, FLAG_ACK, 0, new Uint8Array(0));
    }
    return c;
  }

  async write(b: Uint8Array): Promise<void> {
    let off = 0;
    while (off < b.byteLength) off += await this.conn.write(b.subarray(off));
  }

  /** Writes one frame. */
  async frame(type: number, flags: number, stream: number, payload: Uint8Array): Promise<void> {
    const w = new ByteBuf(FRAME_HEADER_SIZE + payload.byteLength);
    putHeader(w, payload.byteLength, type, flags, stream);
    w.bytes(payload);
    await this.write(w.view());
  }

  /** Bytes of a frame, for writing several at once. */
  static bytes(type: number, flags: number, stream: number, payload: Uint8Array): Uint8Array {
    const w = new ByteBuf(FRAME_HEADER_SIZE + payload.byteLength);
    putHeader(w, payload.byteLength, type, flags, stream);
    w.bytes(payload);
    return w.view().slice();
  }

  async settings(entries: [number, number][]): Promise<void> {
    const p = new Uint8Array(entries.length * 6);
    const v = new DataView(p.buffer);
    entries.forEach(([id, val], i) => {
      v.setUint16(i * 6, id);
      v.setUint32(i * 6 + 2, val);
    });
    await this.frame(SETTINGS, 0, 0, p);
  }

  /** An HPACK block for a request (`:method GET`, `:scheme http`, `:path /`,
   * `:authority localhost` unless overridden), then `extra` fields. */
  block(fields: [string, string][] = [], base = true): Uint8Array {
    const w = new ByteBuf(256);
    const all: [string, string][] = base
      ? [[":method", "GET"], [":scheme", "http"], [":path", "/"], [":authority", "localhost"]]
      : [];
    for (const [n, v] of fields) {
      const i = base ? all.findIndex(([m]) => m === n && n.startsWith(":")) : -1;
      if (i >= 0) all[i] = [n, v];
      else all.push([n, v]);
    }
    this.enc.startBlock(w);
    for (const [n, v] of all) this.enc.field(w, n, v);
    return w.view().slice();
  }

  /** Sends a request's HEADERS. */
  async headers(
    stream: number,
    fields: [string, string][] = [],
    { endStream = true, endHeaders = true, base = true } = {},
  ): Promise<void> {
    const flags = (endStream ? FLAG_END_STREAM : 0) | (endHeaders ? FLAG_END_HEADERS : 0);
    await this.frame(HEADERS, flags, stream, this.block(fields, base));
  }

  async data(stream: number, payload: Uint8Array, endStream = false): Promise<void> {
    await this.frame(DATA, endStream ? FLAG_END_STREAM : 0, stream, payload);
  }

  async ping(data = new Uint8Array(8)): Promise<void> {
    await this.frame(PING, 0, 0, data);
  }

  async windowUpdate(stream: number, inc: number): Promise<void> {
    const p = new Uint8Array(4);
    new DataView(p.buffer).setUint32(0, inc);
    await this.frame(WINDOW_UPDATE, 0, stream, p);
  }

  async rst(stream: number, code: number): Promise<void> {
    const p = new Uint8Array(4);
    new DataView(p.buffer).setUint32(0, code);
    await this.frame(RST_STREAM, 0, stream, p);
  }

  /** Reads the next frame; `null` on EOF or after `ms`. */
  async next(ms = 5000): Promise<Frame | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      if (this.#buf.length >= FRAME_HEADER_SIZE) {
        const h: FrameHeader = { length: 0, type: 0, flags: 0, stream: 0 };
        readFrameHeader(this.#buf, 0, h);
        if (this.#buf.length >= FRAME_HEADER_SIZE + h.length) {
          const payload = this.#buf.slice(FRAME_HEADER_SIZE, FRAME_HEADER_SIZE + h.length);
          this.#buf = this.#buf.slice(FRAME_HEADER_SIZE + h.length);
          const f = { ...h, payload };
          this.frames.push(f);
          return f;
        }
      }
      if (this.#eof) return null;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      this.#pending ??= this.#fill();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = await Promise.race([
        this.#pending.then(() => false),
        new Promise<boolean>((r) => (timer = setTimeout(() => r(true), left))),
      ]);
      clearTimeout(timer);
      if (timedOut) return null;
    }
  }

  async #fill(): Promise<void> {
    const chunk = new Uint8Array(65536);
    let n: number | null;
    try {
      n = await this.conn.read(chunk);
    } catch {
      n = null;
    }
    this.#pending = null;
    if (n === null || n === 0) {
      this.#eof = true;
      return;
    }
    const nb = new Uint8Array(this.#buf.length + n);
    nb.set(this.#buf);
    nb.set(chunk.subarray(0, n), this.#buf.length);
    this.#buf = nb;
  }

  /** Reads frames until one matches (answering nothing); `null` on EOF or
   * timeout. */
  async expect(match: (f: Frame) => boolean, ms = 5000): Promise<Frame | null> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (f === null) return null;
      if (match(f)) return f;
    }
  }

  /** Reads until the server shows what it did about an error: GOAWAY,
   * RST_STREAM, or closing. */
  async outcome(ms = 5000): Promise<Outcome> {
    const deadline = Date.now() + ms;
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (f === null) return this.#eof ? { kind: "closed" } : { kind: "timeout" };
      if (f.type === GOAWAY) {
        return {
          kind: "goaway",
          last: readU31(f.payload, 0),
          code: readU32(f.payload, 4),
          debug: new TextDecoder().decode(f.payload.subarray(8)),
        };
      }
      if (f.type === RST_STREAM) {
        return { kind: "rst", stream: f.stream, code: readU32(f.payload, 0) };
      }
    }
  }

  /** Reads a response on `stream`: decoded header fields and the body. */
  async response(stream: number, ms = 5000): Promise<
    {
      headers: Map<string, string>;
      body: Uint8Array;
      reset: number | null;
    } | null
  > {
    const deadline = Date.now() + ms;
    let headers: Map<string, string> | null = null;
    const chunks: Uint8Array[] = [];
    let block = new ByteBuf(256);
    for (;;) {
      const f = await this.next(Math.max(1, deadline - Date.now()));
      if (f === null) return null;
      if (f.type === SETTINGS && (f.flags & FLAG_ACK) === 0) {
        await this.frame(SETTINGS, FLAG_ACK, 0, new Uint8Array(0));
        continue;
      }
      if (f.stream !== stream) {
        if (f.type === HEADERS || f.type === CONTINUATION) {
          // Keep the HPACK table in step.
          if (f.type === HEADERS) block = new ByteBuf(256);
          block.bytes(f.payload);
          if (f.flags & FLAG_END_HEADERS) this.dec.decode(block.view());
        }
        continue;
      }
      if (f.type === HEADERS || f.type === CONTINUATION) {
        if (f.type === HEADERS) block = new ByteBuf(256);
        block.bytes(f.payload);
        if (f.flags & FLAG_END_HEADERS) {
          const list = this.dec.decode(block.view());
          if (headers === null) {
            headers = new Map();
            for (let i = 0; i < list.length; i += 2) headers.set(list[i], list[i + 1]);
          }
        }
      } else if (f.type === DATA) chunks.push(f.payload);
      else if (f.type === RST_STREAM) {
        return {
          headers: headers ?? new Map(),
          body: concat(chunks),
          reset: readU32(f.payload, 0),
        };
      }
      if ((f.type === HEADERS || f.type === DATA) && f.flags & FLAG_END_STREAM) {
        return { headers: headers ?? new Map(), body: concat(chunks), reset: null };
      }
    }
  }

  get eof(): boolean {
    return this.#eof;
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

export { concat, testCerts };
