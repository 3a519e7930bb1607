// Copyright 2026 the connctx authors. MIT license.

/**
 * The server side of a WebSocket connection: a WHATWG `WebSocket` (an
 * `EventTarget` with `open`, `message`, `error` and `close` events) driven by
 * an RFC 6455 protocol engine over an abstract byte transport, so that it can
 * run on a `Deno.Conn` taken over after a 101 response or on an in-memory
 * pipe in tests.
 *
 * Behaviour, compared with the socket `Deno.upgradeWebSocket` returns (each
 * point checked by running the same handler on both, see websocket_test.ts):
 *
 * - Same: `readyState` is CONNECTING until the 101 is written, then `open`
 *   fires; `send` while CONNECTING throws `InvalidStateError`; the default
 *   `binaryType` is `"arraybuffer"` (Deno's server default; `"blob"` is
 *   supported); a received close is echoed with its code (no reason) and the
 *   `close` event reports the peer's code and reason with `wasClean: true`;
 *   `close()` without a code sends an empty close frame and reports 1005;
 *   `idleTimeout` (seconds) pings an idle peer and closes with 1001 "No
 *   response from ping frame." when nothing comes back.
 * - Stricter, as the WHATWG spec says: `close(code)` throws
 *   `InvalidAccessError` unless `code` is 1000 or 3000–4999 (Deno sends any
 *   code, even ones a peer must reject), and `SyntaxError` when the reason is
 *   over 123 UTF-8 bytes; `send` after `close` discards the data but adds its
 *   size to `bufferedAmount` (Deno leaves it at 0).
 * - Stricter, as RFC 6455 says: unmasked client frames, reserved bits and
 *   opcodes, oversized or fragmented control frames, invalid close codes,
 *   invalid UTF-8 fail the connection with a close frame carrying 1002/1007
 *   (Deno accepts unmasked frames, and drops the TCP connection without a
 *   close frame on the others). A message over `maxMessageBytes` fails with
 *   1009 as soon as a frame header announces it, before buffering it.
 * - Reported differently: a failed connection fires `error` (an `ErrorEvent`
 *   whose `message` says why) and then `close` with code 1006 and
 *   `wasClean: false`, as the WHATWG spec has it; Deno reports code 0, and
 *   fires `close` twice after an idle timeout. `url` is the request's URL
 *   with a `ws:`/`wss:` scheme and `protocol` the negotiated subprotocol
 *   (Deno's server socket reports `""` for both).
 *
 * Back-pressure: `bufferedAmount` counts the payload bytes of `send` calls not
 * yet written to the transport. A transport write that does not complete
 * within `writeTimeout` (a peer that stopped reading) cuts the connection, so
 * a stalled peer costs at most what the application queued in that time.
 *
 * This file owns the WHATWG interface only: `ConnctxWebSocket` (events, the
 * `on*` attributes, the argument checks of `send` and `close`, `readyState`,
 * `binaryType`, `bufferedAmount`) and the three entry points the HTTP layer
 * uses (`startWebSocket`, `closeWebSocket`, `abortWebSocket`). The protocol
 * machine is in engine.ts, reading and reassembling frames in reader.ts, the
 * outgoing frame queue in writer.ts, the shared deadline timer in
 * sweeper.ts, the transport in transport.ts; the types and `connTransport`
 * are re-exported from here.
 *
 * @module
 */

import { CONNECTING, OPEN, type SocketConfig, WebSocketEngine } from "./engine.ts";
import type { WebSocketTransport } from "./transport.ts";

export { connTransport, type WebSocketTransport } from "./transport.ts";
export type { CloseResult, SocketConfig } from "./engine.ts";

const encoder = new TextEncoder();

// The engine of a socket, for the entry points below; bound in the class's
// static block.
let engineOf: (s: ConnctxWebSocket) => WebSocketEngine;

/**
 * A server-side WebSocket with the interface of the WHATWG `WebSocket`. Made
 * by `upgradeWebSocket`; starts (fires `open`) when the 101 response is
 * written.
 *
 * @example
 * ```ts
 * import { ConnctxWebSocket, startWebSocket } from "./socket.ts";
 * import assert from "node:assert/strict";
 *
 * const socket = new ConnctxWebSocket({ url: "ws://localhost/" });
 * assert.equal(socket.readyState, WebSocket.CONNECTING);
 * assert.throws(() => socket.send("too early"), { name: "InvalidStateError" });
 * ```
 */
export class ConnctxWebSocket extends EventTarget implements WebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  declare readonly CONNECTING: 0;
  declare readonly OPEN: 1;
  declare readonly CLOSING: 2;
  declare readonly CLOSED: 3;

  readonly #url: string;
  readonly #protocol: string;
  readonly #extensions: string;
  readonly #e: WebSocketEngine;

  // on* handler attributes.
  #handlers: Record<string, EventListener | null> = {};

  /** @param config what the handshake agreed; see {@linkcode SocketConfig}. */
  constructor(config: SocketConfig = {}) {
    super();
    this.#url = config.url ?? "";
    this.#protocol = config.protocol ?? "";
    this.#extensions = config.extensions ?? "";
    this.#e = new WebSocketEngine(this, config);
  }

  /** The URL of the request that was upgraded, with a `ws:`/`wss:` scheme. */
  get url(): string {
    return this.#url;
  }
  /** The negotiated subprotocol, or `""`. */
  get protocol(): string {
    return this.#protocol;
  }
  /** The negotiated extensions (`Sec-WebSocket-Extensions`), or `""`. */
  get extensions(): string {
    return this.#extensions;
  }
  /** CONNECTING, OPEN, CLOSING or CLOSED. */
  get readyState(): number {
    return this.#e.readyState;
  }
  /** Payload bytes passed to `send` and not yet written to the network. */
  get bufferedAmount(): number {
    return this.#e.bufferedAmount;
  }
  /** How binary messages are delivered: `"arraybuffer"` (default) or `"blob"`. */
  get binaryType(): BinaryType {
    return this.#e.binaryType;
  }
  set binaryType(value: BinaryType) {
    // A WebIDL enum attribute ignores values outside the enum.
    if (value === "arraybuffer" || value === "blob") this.#e.binaryType = value;
  }

  /** Handler for `open`. */
  get onopen(): ((this: WebSocket, ev: Event) => unknown) | null {
    return this.#getHandler("open");
  }
  set onopen(fn: ((this: WebSocket, ev: Event) => unknown) | null) {
    this.#setHandler("open", fn);
  }
  /** Handler for `message`. */
  get onmessage(): ((this: WebSocket, ev: MessageEvent) => unknown) | null {
    return this.#getHandler("message");
  }
  set onmessage(fn: ((this: WebSocket, ev: MessageEvent) => unknown) | null) {
    this.#setHandler("message", fn);
  }
  /** Handler for `error`. */
  get onerror(): ((this: WebSocket, ev: Event | ErrorEvent) => unknown) | null {
    return this.#getHandler("error");
  }
  set onerror(fn: ((this: WebSocket, ev: Event | ErrorEvent) => unknown) | null) {
    this.#setHandler("error", fn);
  }
  /** Handler for `close`. */
  get onclose(): ((this: WebSocket, ev: CloseEvent) => unknown) | null {
    return this.#getHandler("close");
  }
  set onclose(fn: ((this: WebSocket, ev: CloseEvent) => unknown) | null) {
    this.#setHandler("close", fn);
  }

  // deno-lint-ignore no-explicit-any
  #getHandler(type: string): any {
    return (this.#handlers[type] as unknown as { fn?: unknown })?.fn ?? null;
  }

  #setHandler(type: string, fn: unknown): void {
    // As the HTML spec's event handler attributes: one listener, registered
    // when first set, whose position in the listener order never changes.
    let h = this.#handlers[type] as unknown as { fn: unknown } & EventListener;
    if (!h) {
      if (typeof fn !== "function") return;
      const holder = function (this: unknown, ev: Event) {
        const f = (holder as unknown as { fn: unknown }).fn;
        if (typeof f === "function") return f.call(ev.currentTarget, ev);
      } as unknown as { fn: unknown } & EventListener;
      this.addEventListener(type, holder);
      this.#handlers[type] = holder;
      h = holder;
    }
    h.fn = typeof fn === "function" ? fn : null;
  }

  /**
   * Sends a message: a string as a text message, an `ArrayBuffer`, a view or
   * a `Blob` as a binary one (a Blob keeps its place in the order). Throws
   * `InvalidStateError` while CONNECTING; after `close` the data is dropped
   * and only counted in `bufferedAmount`.
   */
  send(data: string | ArrayBufferLike | Blob | ArrayBufferView): void {
    const e = this.#e;
    const state = e.readyState;
    if (state === CONNECTING) {
      throw new DOMException("'readyState' not OPEN", "InvalidStateError");
    }
    if (typeof data === "string") {
      if (state !== OPEN) e.discard(utf8Length(data));
      else e.sendText(data);
      return;
    }
    if (data instanceof Blob) {
      if (state !== OPEN) e.discard(data.size);
      else e.sendBlob(data);
      return;
    }
    let bytes: Uint8Array;
    if (ArrayBuffer.isView(data)) {
      bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    } else if (data instanceof ArrayBuffer || isSharedArrayBuffer(data)) {
      bytes = new Uint8Array(data as ArrayBufferLike);
    } else {
      // WebIDL: anything else is converted to a string.
      this.send(String(data));
      return;
    }
    if (state !== OPEN) e.discard(bytes.length);
    else e.sendBinary(bytes);
  }

  /**
   * Closes the connection: `code` must be 1000 or 3000–4999
   * (`InvalidAccessError` otherwise), `reason` at most 123 UTF-8 bytes
   * (`SyntaxError`). Without a code, an empty close frame is sent (a reason
   * alone is sent with code 1000). No-op when already closing.
   */
  close(code?: number, reason?: string): void {
    let c: number | undefined;
    if (code !== undefined) {
      c = clampUnsignedShort(code);
      if (c !== 1000 && (c < 3000 || c > 4999)) {
        throw new DOMException(
          `The close code must be either 1000 or in the range of 3000 to 4999. Received ${c}`,
          "InvalidAccessError",
        );
      }
    }
    let r = "";
    if (reason !== undefined) {
      r = String(reason);
      if (encoder.encode(r).length > 123) {
        throw new DOMException("The close reason may not be longer than 123 bytes", "SyntaxError");
      }
      if (c === undefined && r !== "") c = 1000;
    }
    this.#e.close(c, r);
  }

  static {
    engineOf = (s) => s.#e;
  }
}

for (const [name, value] of [["CONNECTING", 0], ["OPEN", 1], ["CLOSING", 2], ["CLOSED", 3]]) {
  Object.defineProperty(ConnctxWebSocket.prototype, name, { value, enumerable: true });
}

/**
 * Starts a socket on its transport once the 101 response is written:
 * `buffered` holds bytes the HTTP layer read past the request head. Fires
 * `open` (unless `close()` was called before) and begins reading.
 *
 * @example
 * ```ts ignore
 * import { connTransport, ConnctxWebSocket, startWebSocket } from "./socket.ts";
 *
 * declare const conn: Deno.Conn;
 * const socket = new ConnctxWebSocket({ url: "ws://localhost/" });
 * startWebSocket(socket, connTransport(conn), null);
 * ```
 */
export function startWebSocket(
  socket: ConnctxWebSocket,
  transport: WebSocketTransport,
  buffered: Uint8Array | null,
): void {
  engineOf(socket).start(transport, buffered);
}

/**
 * Starts the closing handshake with any code a server may send (1001 for a
 * shutdown, which `close()` refuses); a no-op when already closing.
 *
 * @example
 * ```ts ignore
 * import { closeWebSocket, type ConnctxWebSocket } from "./socket.ts";
 *
 * declare const socket: ConnctxWebSocket;
 * closeWebSocket(socket, 1001, "server shutting down");
 * ```
 */
export function closeWebSocket(
  socket: ConnctxWebSocket,
  code: number | undefined,
  reason = "",
): void {
  engineOf(socket).closeWith(code, reason);
}

/**
 * Cuts the connection now, without a close frame: the socket reports
 * `error` (with `reason`) and `close` 1006.
 *
 * @example
 * ```ts ignore
 * import { abortWebSocket, type ConnctxWebSocket } from "./socket.ts";
 *
 * declare const socket: ConnctxWebSocket;
 * abortWebSocket(socket, "shutdown deadline passed");
 * ```
 */
export function abortWebSocket(socket: ConnctxWebSocket, reason: string): void {
  engineOf(socket).abort(reason);
}

function clampUnsignedShort(v: number): number {
  // WebIDL [Clamp] unsigned short: NaN → 0, clamp, round half to even.
  let x = Number(v);
  if (Number.isNaN(x)) return 0;
  x = Math.min(Math.max(x, 0), 65535);
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function isSharedArrayBuffer(x: unknown): boolean {
  return typeof SharedArrayBuffer !== "undefined" && x instanceof SharedArrayBuffer;
}

/** UTF-8 length of a string (lone surrogates count as U+FFFD, 3 bytes). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 3;
    } else n += 3;
  }
  return n;
}
