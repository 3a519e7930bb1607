// Copyright 2026 the connctx authors. MIT license.

/**
 * The server's side of the opening handshake (RFC 6455 §4.2): validating a
 * request, choosing the subprotocol and extensions, computing
 * `Sec-WebSocket-Accept`. Synchronous (the accept key uses a small SHA-1 of
 * its own, since `crypto.subtle` is asynchronous and `upgradeWebSocket` is
 * not).
 *
 * Refusals, checked in this order:
 *
 * | request                                              | status |
 * | ---------------------------------------------------- | ------ |
 * | method other than GET                                | 400 (as `Deno.serve`; RFC 6455 §4.2.1 requires GET and §4.2.2 answers 400) |
 * | `Upgrade` without the `websocket` token              | 400    |
 * | `Connection` without the `upgrade` token             | 400    |
 * | no `Sec-WebSocket-Version`                           | 400 + `Sec-WebSocket-Version: 13` |
 * | `Sec-WebSocket-Version` other than 13                | 426 + `Sec-WebSocket-Version: 13` (§4.4) |
 * | `Sec-WebSocket-Key` missing or not base64 of 16 bytes| 400    |
 * | `protocol` required by the server, not offered       | 400    |
 *
 * @module
 */

import { type CompressionOptions, type DeflateParams, negotiateDeflate } from "./deflate.ts";
import { WebSocketHandshakeError } from "./errors.ts";

export { WebSocketHandshakeError };

/** RFC 6455's fixed GUID, appended to the key before hashing. */
const GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/**
 * What the handshake agreed.
 *
 * @example
 * ```ts
 * import { acceptHandshake } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://localhost/chat", {
 *   headers: {
 *     upgrade: "websocket",
 *     connection: "Upgrade",
 *     "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
 *     "sec-websocket-version": "13",
 *   },
 * });
 * const agreed = acceptHandshake(req, {});
 * assert.equal(agreed.headers.get("sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
 * ```
 */
export interface Handshake {
  /** Headers of the 101 response. */
  headers: Headers;
  /** Chosen subprotocol or `""`. */
  protocol: string;
  /** Accepted extensions (`Sec-WebSocket-Extensions` response value) or `""`. */
  extensions: string;
  /** permessage-deflate parameters, when accepted. */
  deflate: DeflateParams | null;
}

/**
 * The parts of a request the handshake reads: its method and header lookup
 * (`get` returns a field's combined value, or null), e.g. over a parsed head
 * without building a `Headers`.
 *
 * @example
 * ```ts
 * import { headView } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const view = headView("GET", ["upgrade", "websocket", "connection", "Upgrade"]);
 * assert.equal(view.get("connection"), "Upgrade");
 * ```
 */
export interface HandshakeRequest {
  /** Request method. */
  readonly method: string;
  /** A header's value (repeated fields joined with ", "), or null. */
  get(name: string): string | null;
}

/**
 * A {@linkcode HandshakeRequest} over a method and header fields as flat
 * lower-case name/value pairs (`[name, value, name, value, ...]`).
 *
 * @example
 * ```ts
 * import { headView } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const view = headView("GET", ["x", "1", "x", "2"]);
 * assert.equal(view.get("x"), "1, 2");
 * assert.equal(view.get("y"), null);
 * ```
 */
export function headView(method: string, flat: readonly string[]): HandshakeRequest {
  return {
    method,
    get(name: string): string | null {
      let v: string | null = null;
      for (let i = 0; i < flat.length; i += 2) {
        if (flat[i] === name) v = v === null ? flat[i + 1] : `${v}, ${flat[i + 1]}`;
      }
      return v;
    },
  };
}

/**
 * Validates an upgrade request and returns the 101 response's headers and
 * what was agreed; throws a {@linkcode WebSocketHandshakeError} to refuse.
 * `protocol` must be one the client offered (as `Deno.upgradeWebSocket`
 * requires); `compression: false` declines permessage-deflate.
 *
 * @example
 * ```ts
 * import { acceptHandshake, WebSocketHandshakeError } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const req = new Request("http://localhost/", {
 *   headers: { upgrade: "websocket", connection: "upgrade", "sec-websocket-version": "8" },
 * });
 * assert.throws(() => acceptHandshake(req, {}), (e) => e instanceof WebSocketHandshakeError && e.status === 426);
 * ```
 */
export function acceptHandshake(
  req: Request | HandshakeRequest,
  opts: { protocol?: string; compression?: boolean | CompressionOptions },
): Handshake {
  const h = req instanceof Request ? req.headers : req;
  if (req.method !== "GET") {
    throw new WebSocketHandshakeError(400, "a WebSocket handshake must be a GET request");
  }
  if (!hasToken(h.get("upgrade"), "websocket")) {
    throw new WebSocketHandshakeError(400, "the 'upgrade' header must contain 'websocket'");
  }
  if (!hasToken(h.get("connection"), "upgrade")) {
    throw new WebSocketHandshakeError(400, "the 'connection' header must contain 'Upgrade'");
  }
  const version = h.get("sec-websocket-version");
  if (version === null) {
    throw new WebSocketHandshakeError(400, "the 'sec-websocket-version' header is missing", {
      "sec-websocket-version": "13",
    });
  }
  if (version.trim() !== "13") {
    throw new WebSocketHandshakeError(426, "unsupported WebSocket version (13 is supported)", {
      "sec-websocket-version": "13",
    });
  }
  const key = h.get("sec-websocket-key")?.trim() ?? "";
  if (!isValidKey(key)) {
    throw new WebSocketHandshakeError(
      400,
      "the 'sec-websocket-key' header must be the base64 encoding of 16 bytes",
    );
  }
  const headers = new Headers({
    upgrade: "websocket",
    connection: "Upgrade",
    "sec-websocket-accept": acceptKey(key),
  });
  let protocol = "";
  if (opts.protocol !== undefined && opts.protocol !== "") {
    const offered = (h.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
    if (!offered.includes(opts.protocol)) {
      throw new WebSocketHandshakeError(
        400,
        `subprotocol '${opts.protocol}' was not offered by the client`,
      );
    }
    protocol = opts.protocol;
    headers.set("sec-websocket-protocol", protocol);
  }
  let deflate: DeflateParams | null = null;
  let extensions = "";
  if (opts.compression !== false) {
    const agreed = negotiateDeflate(
      h.get("sec-websocket-extensions"),
      typeof opts.compression === "object" ? opts.compression : {},
    );
    if (agreed) {
      deflate = agreed.params;
      extensions = agreed.response;
      headers.set("sec-websocket-extensions", extensions);
    }
  }
  return { headers, protocol, extensions, deflate };
}

/** Whether a comma-separated header value contains `token` (case-insensitive). */
function hasToken(value: string | null, token: string): boolean {
  if (value === null) return false;
  for (const part of value.split(",")) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * Whether `key` is the canonical base64 encoding of exactly 16 bytes (24
 * characters ending in `==`, the last data character carrying no stray bits).
 *
 * @example
 * ```ts
 * import { isValidKey } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * assert.equal(isValidKey("dGhlIHNhbXBsZSBub25jZQ=="), true);
 * assert.equal(isValidKey("AAAAAAAAAAAAAA=="), false); // 10 bytes
 * ```
 */
export function isValidKey(key: string): boolean {
  return /^[A-Za-z0-9+/]{21}[AQgw]==$/.test(key);
}

/**
 * `Sec-WebSocket-Accept` for a key: base64(SHA-1(key + GUID)).
 *
 * @example
 * ```ts
 * import { acceptKey } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * // RFC 6455 §1.3
 * assert.equal(acceptKey("dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
 * ```
 */
export function acceptKey(key: string): string {
  const digest = sha1(new TextEncoder().encode(key + GUID));
  let s = "";
  for (const b of digest) s += String.fromCharCode(b);
  return btoa(s);
}

/**
 * SHA-1 (FIPS 180-4) of a short message. Only for the handshake's accept
 * key, where the hash is a fixed transform, not a security measure.
 *
 * @example
 * ```ts
 * import { sha1 } from "./handshake.ts";
 * import assert from "node:assert/strict";
 *
 * const hex = [...sha1(new TextEncoder().encode("abc"))].map((b) => b.toString(16).padStart(2, "0")).join("");
 * assert.equal(hex, "a9993e364706816aba3e25717850c26c9cd0d89d");
 * ```
 */
export function sha1(msg: Uint8Array): Uint8Array {
  const bitLen = msg.length * 8;
  const total = ((msg.length + 9 + 63) >> 6) << 6;
  const data = new Uint8Array(total);
  data.set(msg);
  data[msg.length] = 0x80;
  const dv = new DataView(data.buffer);
  dv.setUint32(total - 8, Math.floor(bitLen / 0x100000000));
  dv.setUint32(total - 4, bitLen >>> 0);
  let h0 = 0x67452301, h1 = 0xefcdab89, h2 = 0x98badcfe, h3 = 0x10325476, h4 = 0xc3d2e1f0;
  const w = new Int32Array(80);
  for (let off = 0; off < total; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = dv.getInt32(off + i * 4);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, b = h1, c = h2, d = h3, e = h4;
    for (let i = 0; i < 80; i++) {
      let f: number, k: number;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      const t = (((a << 5) | (a >>> 27)) + f + e + k + w[i]) | 0;
      e = d;
      d = c;
      c = (b << 30) | (b >>> 2);
      b = a;
      a = t;
    }
    h0 = (h0 + a) | 0;
    h1 = (h1 + b) | 0;
    h2 = (h2 + c) | 0;
    h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  const out = new Uint8Array(20);
  const ov = new DataView(out.buffer);
  ov.setInt32(0, h0);
  ov.setInt32(4, h1);
  ov.setInt32(8, h2);
  ov.setInt32(12, h3);
  ov.setInt32(16, h4);
  return out;
}
