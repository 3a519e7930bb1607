// Copyright 2026 the connctx authors. MIT license.

/**
 * permessage-deflate (RFC 7692): parameter negotiation and the compressor
 * and decompressor a socket uses.
 *
 * ## Negotiation (RFC 7692 §7.1)
 *
 * The client's offers are tried in its order of preference; the first one we
 * can honour is accepted, the others are declined. An offer is declined when
 * it carries an unknown parameter, a parameter twice, or a value out of
 * range. `server_max_window_bits=8` is honoured although zlib raises a raw
 * deflate window of 8 bits to 9: zlib never emits a distance above the
 * window size minus 262 (`MAX_DIST`), i.e. 250 for a 512-byte window, so its
 * output decodes with a 256-byte window (websocket_test.ts checks this with
 * an inflater that cannot look further back). In the response:
 *
 * - `server_no_context_takeover` is sent when the client asked for it or when
 *   {@linkcode CompressionOptions.serverNoContextTakeover} is set (the
 *   default: the server then keeps no compression state per socket).
 * - `client_no_context_takeover` is sent when configured (a server may ask it
 *   of any client); otherwise a client's own request for it is ignored, as
 *   RFC 7692 §7.1.1.2 allows.
 * - `server_max_window_bits` is sent when offered (the smaller of the offer
 *   and our setting) or when our setting is below 15.
 * - `client_max_window_bits` is sent only when offered (§7.1.2.2), with the
 *   smaller of the offered value (15 when none) and our setting.
 *
 * ## Compression
 *
 * Context takeover needs a compressor or decompressor that lives across
 * messages and emits a sync-flushed block per message. Measured on Deno 2.9
 * for a ~100-byte JSON message (µs per message, see websocket_test.ts for the
 * correctness side):
 *
 * | method                                               | deflate | inflate |
 * | ---------------------------------------------------- | ------: | ------: |
 * | `node:zlib` stream, `write` + `flush(Z_SYNC_FLUSH)`  |    4.8  |    ~4.5 |
 * | `CompressionStream("deflate-raw")`, persistent       |    5.6  |    4.3  |
 * | `deflateRawSync`/`inflateRawSync`, one per message   |   20.5  |   10.8  |
 * | `inflateRawSync` with a 32 KiB `dictionary` (takeover)|     –   |  128    |
 *
 * The one-shot functions allocate a whole zlib state per call and cannot
 * carry context; `CompressionStream` cannot set a window size, so it could
 * honour neither `server_max_window_bits` nor, for a small decompression
 * window, `client_max_window_bits`. So this module uses persistent
 * `node:zlib` streams (real zlib; window bits are honoured, measured), which
 * are as fast as the web streams and support every parameter.
 *
 * A stream runs one message at a time. Without context takeover one stream is
 * shared by all sockets of the process (reset after each message), so idle
 * sockets cost nothing; with takeover each socket gets its own, created on its
 * first compressed message.
 *
 * A decompression is bounded by the *inflated* size: output beyond the limit
 * aborts it (close 1009) after at most one 16 KiB zlib chunk more, so a
 * compression bomb never allocates more than the limit.
 *
 * @module
 */

import type { DeflateRaw, InflateRaw } from "node:zlib";
import { WebSocketProtocolError } from "./frame.ts";

type Zlib = typeof import("node:zlib");

/** `node:zlib`, loaded on first use: importing it costs tens of ms at
 * startup, which a server that never compresses should not pay. */
let zlib: Zlib | null = null;
let zlibLoading: Promise<Zlib> | null = null;
function loadZlib(): Promise<Zlib> {
  return zlibLoading ??= import("node:zlib").then((m) => (zlib = m));
}

const Z_SYNC_FLUSH = 2;
const Z_DEFAULT_COMPRESSION = -1;

/**
 * permessage-deflate settings of {@linkcode UpgradeWebSocketOptions}.
 *
 * @example
 * ```ts
 * import type { CompressionOptions } from "./deflate.ts";
 *
 * const opts: CompressionOptions = { threshold: 1024, serverNoContextTakeover: false };
 * ```
 */
export interface CompressionOptions {
  /** Messages shorter than this many bytes are sent uncompressed; default 64. */
  threshold?: number;
  /** Compress every message on its own (no state kept per socket); default true. */
  serverNoContextTakeover?: boolean;
  /** Ask clients to compress every message on its own; default false. */
  clientNoContextTakeover?: boolean;
  /** Largest compression window we use, 8–15; default 15. */
  serverMaxWindowBits?: number;
  /** Largest window we let a client use when it offers a limit, 8–15; default 15. */
  clientMaxWindowBits?: number;
  /** zlib compression level 0–9; default 6 (zlib's default). */
  level?: number;
  /** zlib memLevel 1–9; default 8. */
  memLevel?: number;
}

/**
 * What was agreed for a connection.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate.ts";
 * import assert from "node:assert/strict";
 *
 * const agreed = negotiateDeflate("permessage-deflate; client_max_window_bits", {})!;
 * assert.equal(agreed.params.serverNoContextTakeover, true);
 * assert.equal(agreed.params.clientMaxWindowBits, 15);
 * ```
 */
export interface DeflateParams {
  /** We reset our compressor after every message. */
  serverNoContextTakeover: boolean;
  /** The client resets its compressor after every message. */
  clientNoContextTakeover: boolean;
  /** Window of our compressor. */
  serverMaxWindowBits: number;
  /** Window the client compresses with at most (our decompressor's window). */
  clientMaxWindowBits: number;
  /** Messages shorter than this are sent uncompressed. */
  threshold: number;
  /** zlib level. */
  level: number;
  /** zlib memLevel. */
  memLevel: number;
}

/**
 * One element of a `Sec-WebSocket-Extensions` header: a name and its parameters.
 *
 * @example
 * ```ts
 * import type { ExtensionOffer } from "./deflate.ts";
 *
 * const offer: ExtensionOffer = {
 *   name: "permessage-deflate",
 *   params: [{ name: "client_max_window_bits", value: null }],
 * };
 * ```
 */
export interface ExtensionOffer {
  /** Extension token, lower-cased. */
  name: string;
  /** Parameters in order; a parameter without a value has `value` null. */
  params: { name: string; value: string | null }[];
}

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1). Malformed
 * elements are dropped (an unparseable offer is one we decline).
 *
 * @example
 * ```ts
 * import { parseExtensions } from "./deflate.ts";
 * import assert from "node:assert/strict";
 *
 * assert.deepEqual(parseExtensions('permessage-deflate; client_max_window_bits="10", x'), [
 *   { name: "permessage-deflate", params: [{ name: "client_max_window_bits", value: "10" }] },
 *   { name: "x", params: [] },
 * ]);
 * ```
 */
export function parseExtensions(header: string): ExtensionOffer[] {
  const out: ExtensionOffer[] = [];
  let i = 0;
  const n = header.length;
  const ws = () => {
    while (i < n && (header[i] === " " || header[i] === "\t")) i++;
  };
  const token = (): string => {
    const s = i;
    while (i < n && !' \t,;="'.includes(header[i])) i++;
    const t = header.slice(s, i);
    return TOKEN.test(t) ? t : "";
  };
  while (i < n) {
    ws();
    let ok = true;
    const name = token();
    if (!name) ok = false;
    const params: ExtensionOffer["params"] = [];
    ws();
    while (ok && i < n && header[i] === ";") {
      i++;
      ws();
      const pname = token();
      if (!pname) {
        ok = false;
        break;
      }
      ws();
      let value: string | null = null;
      if (header[i] === "=") {
        i++;
        ws();
        if (header[i] === '"') {
          i++;
          let v = "";
          while (i < n && header[i] !== '"') {
            if (header[i] === "\\" && i + 1 < n) i++;
            v += header[i++];
          }
          if (header[i] !== '"') ok = false;
          i++;
          if (!TOKEN.test(v)) ok = false; // RFC 6455 §9.1: the unescaped value is a token
          value = v;
        } else {
          value = token();
          if (!value) ok = false;
        }
        ws();
      }
      params.push({ name: pname.toLowerCase(), value });
    }
    // Skip to the next element (past anything we could not parse).
    if (i < n && header[i] !== ",") ok = false;
    while (i < n && header[i] !== ",") {
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') i += header[i] === "\\" ? 2 : 1;
      }
      i++;
    }
    i++;
    if (ok) out.push({ name: name.toLowerCase(), params });
  }
  return out;
}

function bits(value: string | null, min: number): number | null {
  if (value === null || !/^[0-9]{1,2}$/.test(value)) return null;
  const v = Number(value);
  return v >= min && v <= 15 ? v : null;
}

/**
 * Accepts the first permessage-deflate offer of `header` we can honour and
 * returns the agreed parameters and the `Sec-WebSocket-Extensions` response
 * value, or null to decline them all.
 *
 * @example
 * ```ts
 * import { negotiateDeflate } from "./deflate.ts";
 * import assert from "node:assert/strict";
 *
 * // An offer with an unknown parameter is declined; the next one is accepted.
 * const agreed = negotiateDeflate(
 *   "permessage-deflate; mystery, permessage-deflate; server_max_window_bits=10",
 *   {},
 * )!;
 * assert.equal(agreed.response, "permessage-deflate; server_no_context_takeover; server_max_window_bits=10");
 * ```
 */
export function negotiateDeflate(
  header: string | null,
  opts: CompressionOptions,
): { params: DeflateParams; response: string } | null {
  if (!header) return null;
  const cfgServerBits = clampInt(opts.serverMaxWindowBits ?? 15, 8, 15);
  const cfgClientBits = clampInt(opts.clientMaxWindowBits ?? 15, 8, 15);
  for (const offer of parseExtensions(header)) {
    if (offer.name !== "permessage-deflate") continue;
    const seen = new Set<string>();
    let ok = true;
    let serverNoCtx = false;
    let serverBits: number | null = null;
    let clientBits: number | "none" | null = null; // "none": offered without a value
    for (const p of offer.params) {
      if (seen.has(p.name)) {
        ok = false;
        break;
      }
      seen.add(p.name);
      switch (p.name) {
        case "server_no_context_takeover":
          if (p.value !== null) ok = false;
          serverNoCtx = true;
          break;
        case "client_no_context_takeover":
          // Our setting decides; a client's request may be ignored (§7.1.1.2).
          if (p.value !== null) ok = false;
          break;
        case "server_max_window_bits":
          serverBits = bits(p.value, 8);
          if (serverBits === null) ok = false;
          break;
        case "client_max_window_bits":
          if (p.value === null) clientBits = "none";
          else {
            clientBits = bits(p.value, 8);
            if (clientBits === null) ok = false;
          }
          break;
        default:
          ok = false;
      }
      if (!ok) break;
    }
    if (!ok) continue;
    const ourServerBits = serverBits === null ? cfgServerBits : Math.min(serverBits, cfgServerBits);
    const params: DeflateParams = {
      serverNoContextTakeover: serverNoCtx || (opts.serverNoContextTakeover ?? true),
      clientNoContextTakeover: opts.clientNoContextTakeover ?? false,
      serverMaxWindowBits: ourServerBits,
      clientMaxWindowBits: 15,
      threshold: Math.max(0, opts.threshold ?? 64),
      level: clampInt(opts.level ?? Z_DEFAULT_COMPRESSION, -1, 9),
      memLevel: clampInt(opts.memLevel ?? 8, 1, 9),
    };
    const parts = ["permessage-deflate"];
    if (params.serverNoContextTakeover) parts.push("server_no_context_takeover");
    if (params.clientNoContextTakeover) parts.push("client_no_context_takeover");
    if (serverBits !== null || ourServerBits < 15) {
      parts.push(`server_max_window_bits=${ourServerBits}`);
    }
    if (clientBits !== null) {
      const offered = clientBits === "none" ? 15 : clientBits;
      params.clientMaxWindowBits = Math.min(offered, cfgClientBits);
      if (clientBits !== "none" || params.clientMaxWindowBits < 15) {
        parts.push(`client_max_window_bits=${params.clientMaxWindowBits}`);
      }
    }
    return { params, response: parts.join("; ") };
  }
  return null;
}

function clampInt(v: number, lo: number, hi: number): number {
  v = Math.trunc(Number(v));
  if (!Number.isFinite(v)) return hi;
  return v < lo ? lo : v > hi ? hi : v;
}

const TAIL = new Uint8Array([0x00, 0x00, 0xff, 0xff]);

interface Job {
  input: Uint8Array[];
  limit: number;
  out: Uint8Array[];
  total: number;
  resolve: (chunks: Uint8Array[]) => void;
  reject: (err: unknown) => void;
  settled: boolean;
}

type ZStream = DeflateRaw | InflateRaw;

/**
 * A persistent zlib stream running one message at a time. `reset` after each
 * message means no context takeover.
 */
class Codec {
  #z: ZStream | null = null;
  #job: Job | null = null;
  #queue: Job[] = [];
  readonly #inflate: boolean;
  readonly #reset: boolean;
  readonly #make: (z: Zlib) => ZStream;
  #loading = false;

  constructor(inflate: boolean, reset: boolean, make: (z: Zlib) => ZStream) {
    this.#inflate = inflate;
    this.#reset = reset;
    this.#make = make;
  }

  run(input: Uint8Array[], limit: number): Promise<Uint8Array[]> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ input, limit, out: [], total: 0, resolve, reject, settled: false });
      if (this.#job !== null || this.#loading) return;
      if (zlib !== null) {
        this.#next();
        return;
      }
      this.#loading = true;
      loadZlib().then(() => {
        this.#loading = false;
        if (this.#job === null && this.#queue.length > 0) this.#next();
      }, (err) => {
        this.#loading = false;
        for (const j of this.#queue.splice(0)) this.#fail(j, err);
      });
    });
  }

  /** Frees the zlib state; queued messages fail. */
  close(): void {
    const z = this.#z;
    this.#z = null;
    z?.destroy();
    const err = new WebSocketProtocolError(1006, "socket closed");
    if (this.#job) this.#fail(this.#job, err);
    for (const j of this.#queue.splice(0)) this.#fail(j, err);
    this.#job = null;
  }

  #stream(): ZStream {
    if (this.#z) return this.#z;
    const z = this.#make(zlib!);
    z.on("data", (chunk: Uint8Array) => {
      const job = this.#job;
      if (job === null || job.settled || this.#z !== z) return;
      job.total += chunk.length;
      if (job.total > job.limit) {
        // Bomb or simply too big: stop inflating now, drop this stream.
        this.#drop(z);
        this.#fail(
          job,
          new WebSocketProtocolError(1009, "message over the limit after decompression"),
        );
        this.#after();
        return;
      }
      job.out.push(chunk);
    });
    z.on("error", (err: Error) => {
      const job = this.#job;
      if (this.#z !== z) return;
      this.#drop(z);
      if (job && !job.settled) {
        this.#fail(
          job,
          this.#inflate
            ? new WebSocketProtocolError(1007, `invalid compressed data: ${err.message}`)
            : new WebSocketProtocolError(1011, `compression failed: ${err.message}`),
        );
        this.#after();
      }
    });
    this.#z = z;
    return z;
  }

  #drop(z: ZStream): void {
    if (this.#z === z) this.#z = null;
    try {
      z.destroy();
    } catch { /* already gone */ }
  }

  #fail(job: Job, err: unknown): void {
    if (job.settled) return;
    job.settled = true;
    job.reject(err);
  }

  #after(): void {
    this.#job = null;
    if (this.#queue.length > 0) this.#next();
  }

  #next(): void {
    const job = this.#queue.shift()!;
    this.#job = job;
    const z = this.#stream();
    for (const c of job.input) z.write(c);
    if (this.#inflate) z.write(TAIL);
    // The callback gets the stream's error, if any, before "error" is emitted.
    z.flush(Z_SYNC_FLUSH, (err?: unknown) => {
      if (this.#job !== job || job.settled) return;
      if (err || z.destroyed) {
        this.#drop(z);
        const msg = err instanceof Error ? err.message : "stream closed";
        this.#fail(
          job,
          this.#inflate
            ? new WebSocketProtocolError(1007, `invalid compressed data: ${msg}`)
            : new WebSocketProtocolError(1011, `compression failed: ${msg}`),
        );
        this.#after();
        return;
      }
      job.settled = true;
      if (this.#reset && this.#z === z) z.reset();
      job.resolve(job.out);
      this.#after();
    });
  }
}

const shared = new Map<string, Codec>();

function sharedCodec(key: string, make: () => Codec): Codec {
  let c = shared.get(key);
  if (!c) shared.set(key, c = make());
  return c;
}

/**
 * The permessage-deflate state of one socket: compresses outgoing and
 * decompresses incoming messages with the agreed parameters.
 *
 * @example
 * ```ts
 * import { negotiateDeflate, PerMessageDeflate } from "./deflate.ts";
 * import assert from "node:assert/strict";
 *
 * const { params } = negotiateDeflate("permessage-deflate", {})!;
 * const pmd = new PerMessageDeflate(params);
 * const text = new TextEncoder().encode("hello ".repeat(50));
 * const packed = await pmd.compress(text);
 * // a client would inflate with the same parameters; here we check the round trip
 * const back = await new PerMessageDeflate({ ...params, clientMaxWindowBits: 15 }).decompress(
 *   [packed],
 *   1 << 20,
 * );
 * assert.equal(back.length, text.length);
 * pmd.close();
 * ```
 */
export class PerMessageDeflate {
  readonly params: DeflateParams;
  #deflate: Codec | null = null;
  #inflate: Codec | null = null;

  /** @param params what was negotiated. */
  constructor(params: DeflateParams) {
    this.params = params;
    // Start loading zlib now, while the 101 goes out, not at the first message.
    if (zlib === null) loadZlib().catch(() => {});
  }

  /**
   * Compresses one whole message; the result has the trailing
   * `00 00 FF FF` removed (RFC 7692 §7.2.1).
   */
  async compress(data: Uint8Array): Promise<Uint8Array> {
    const chunks = await this.#deflater().run([data], Infinity);
    return join(chunks, 4);
  }

  /**
   * Decompresses one whole message from its frames' payloads; rejects with a
   * {@linkcode WebSocketProtocolError} (1009) once the output exceeds
   * `limit` bytes, or (1007) for invalid data.
   */
  async decompress(input: Uint8Array[], limit: number): Promise<Uint8Array> {
    return join(await this.#inflater().run(input, limit), 0);
  }

  /** Frees the per-socket zlib streams (shared ones stay). */
  close(): void {
    const p = this.params;
    if (!p.serverNoContextTakeover) this.#deflate?.close();
    if (!p.clientNoContextTakeover) this.#inflate?.close();
    this.#deflate = this.#inflate = null;
  }

  #deflater(): Codec {
    if (this.#deflate) return this.#deflate;
    const p = this.params;
    const make = () =>
      new Codec(
        false,
        p.serverNoContextTakeover,
        (zlib) =>
          zlib.createDeflateRaw({
            // 8 is run as 9, whose output never reaches back over 250 bytes.
            windowBits: Math.max(9, p.serverMaxWindowBits),
            level: p.level,
            memLevel: p.memLevel,
          }),
      );
    this.#deflate = p.serverNoContextTakeover
      ? sharedCodec(`d${Math.max(9, p.serverMaxWindowBits)}/${p.level}/${p.memLevel}`, make)
      : make();
    return this.#deflate;
  }

  #inflater(): Codec {
    if (this.#inflate) return this.#inflate;
    const p = this.params;
    // A shared decompressor uses the largest window: it inflates any client.
    const bits = p.clientNoContextTakeover ? 15 : p.clientMaxWindowBits;
    const make = () =>
      new Codec(
        true,
        p.clientNoContextTakeover,
        (zlib) => zlib.createInflateRaw({ windowBits: bits }),
      );
    this.#inflate = p.clientNoContextTakeover ? sharedCodec("i", make) : make();
    return this.#inflate;
  }
}

function join(chunks: Uint8Array[], strip: number): Uint8Array {
  let total = 0;
  for (const c of chunks) total += c.length;
  let out: Uint8Array;
  if (chunks.length === 1) {
    // A plain view (zlib hands out Buffers).
    const c = chunks[0];
    out = new Uint8Array(c.buffer, c.byteOffset, c.length);
  } else {
    out = new Uint8Array(total);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.length;
    }
  }
  return strip > 0 && total >= strip ? out.subarray(0, total - strip) : out;
}
