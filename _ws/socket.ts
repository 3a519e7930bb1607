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
 * @module
 */

import {
  CLOSE_ABNORMAL,
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_INVALID_DATA,
  CLOSE_NO_STATUS,
  closePayload,
  encodeFrame,
  FrameHeader,
  headerSize,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseClosePayload,
  unmask,
  WebSocketProtocolError,
  writeHeader,
} from "./frame.ts";
import { Utf8Validator } from "./utf8.ts";
import { type DeflateParams, PerMessageDeflate } from "./deflate.ts";

/**
 * The byte stream a socket runs on, shaped like `Deno.Conn`: `read` resolves
 * with the number of bytes read into `buf`, or null at end of stream; `write`
 * with the number of bytes written (possibly fewer than given: the socket
 * writes the rest); `close` releases the stream at once; `closeWrite`, when
 * present, half-closes it (used to linger after failing a connection).
 *
 * @example
 * ```ts
 * import type { WebSocketTransport } from "./socket.ts";
 *
 * function fromConn(conn: Deno.Conn): WebSocketTransport {
 *   return {
 *     read: (buf) => conn.read(buf),
 *     write: (bytes) => conn.write(bytes),
 *     close: () => conn.close(),
 *   };
 * }
 * ```
 */
export interface WebSocketTransport {
  /** Reads into `buf`; null at end of stream. */
  read(buf: Uint8Array): Promise<number | null>;
  /** Writes from `bytes`; resolves with how many were written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Closes the stream (both directions) now. */
  close(): void;
  /** Half-closes the writing side. */
  closeWrite?(): Promise<void> | void;
}

/**
 * A {@linkcode WebSocketTransport} over a `Deno.Conn`.
 *
 * @example
 * ```ts ignore
 * import { connTransport } from "./socket.ts";
 *
 * const conn = await Deno.connect({ port: 8080 });
 * const transport = connTransport(conn);
 * ```
 */
export function connTransport(conn: Deno.Conn): WebSocketTransport {
  return {
    read: (buf) => conn.read(buf),
    write: (bytes) => conn.write(bytes),
    close: () => {
      try {
        conn.close();
      } catch { /* already closed */ }
    },
    closeWrite: () => conn.closeWrite().catch(() => {}),
  };
}

/**
 * How a socket was set up. Times: `idleTimeout` in seconds (as for
 * `Deno.upgradeWebSocket`), the others in milliseconds; 0 disables.
 *
 * @example
 * ```ts
 * import type { SocketConfig } from "./socket.ts";
 *
 * const config: SocketConfig = { url: "ws://localhost/chat", maxMessageBytes: 1 << 20 };
 * ```
 */
export interface SocketConfig {
  /** The socket's `url`. */
  url?: string;
  /** The negotiated subprotocol. */
  protocol?: string;
  /** The negotiated `Sec-WebSocket-Extensions` response value. */
  extensions?: string;
  /** permessage-deflate parameters, when negotiated. */
  deflate?: DeflateParams | null;
  /** Largest message (after decompression); default 64 MiB, as Deno. */
  maxMessageBytes?: number;
  /** Ping a peer silent for half this many seconds; close when silent this long. Default 120. */
  idleTimeout?: number;
  /** Cut the connection when a write makes no progress this long; default 30 000 ms. */
  writeTimeout?: number;
  /** How long to wait for the peer's close frame, or its EOF after a failure; default 5 000 ms. */
  closeTimeout?: number;
  /** Accept unmasked frames (never for a server facing clients; for tests). */
  allowUnmasked?: boolean;
  /** Called once, after the transport is closed and before the `close` event. */
  onClosed?: (result: CloseResult) => void;
}

/**
 * How a socket ended, as its `close` event reports it.
 *
 * @example
 * ```ts
 * import type { CloseResult } from "./socket.ts";
 *
 * const done: CloseResult = { code: 1000, reason: "", wasClean: true, error: null };
 * ```
 */
export interface CloseResult {
  /** Close code (1006 when no close frame completed the handshake). */
  code: number;
  /** Close reason. */
  reason: string;
  /** Whether the closing handshake completed. */
  wasClean: boolean;
  /** Why the connection failed, or null. */
  error: string | null;
}

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

/** Idle read buffer: small, so idle sockets are cheap (a control frame
 * that does not fit grows it). */
const SMALL_BUF = 256;
/** Largest read buffer; a frame that does not fit is read into its own buffer. */
const MAX_BUF = 64 * 1024;
/** Queued frames are merged into one write up to this size. */
const COALESCE_MAX = 64 * 1024;
/** Frames up to this size are copied into the staging buffer. */
const STAGE_MAX = 16 * 1024;
/** First size of a staging buffer. */
const OUT_MIN = 1024;
/** Longest wait for a failed connection's peer to close its side. */
const LINGER_MS = 1000;
/** Most bytes read (and discarded) while waiting for it. */
const LINGER_BYTES = 64 * 1024;
/** Strings up to this many UTF-16 units are encoded straight into their frame. */
const INLINE_STRING = 2048;

// Parser states.
const S_HEADER = 0;
const S_PAYLOAD = 1; // payload accumulating in the read buffer
const S_DIRECT = 2; // payload read straight into its own buffer
const S_DONE = 3; // no more parsing (close received, or failed)

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const lenientDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const strictDecoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

type QueueItem = Uint8Array | Promise<Uint8Array | null> | (() => void);

// Internal entry points, bound in the class's static block.
let start: (s: ConnctxWebSocket, t: WebSocketTransport, buffered: Uint8Array | null) => void;
let closeWith: (s: ConnctxWebSocket, code: number | undefined, reason: string) => void;
let abort: (s: ConnctxWebSocket, reason: string) => void;
let sweeperTick: (s: ConnctxWebSocket, now: number) => void;
let resolutionOf: (s: ConnctxWebSocket) => number;

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

  #readyState = CONNECTING;
  #binaryType: BinaryType = "arraybuffer";
  #bufferedAmount = 0;
  readonly #url: string;
  readonly #protocol: string;
  readonly #extensions: string;
  readonly #max: number;
  readonly #idleMs: number;
  readonly #writeTimeout: number;
  readonly #closeTimeout: number;
  readonly #onClosed: ((r: CloseResult) => void) | undefined;
  #deflate: PerMessageDeflate | null;
  #t: WebSocketTransport | null = null;

  // Reading.
  #buf: Uint8Array = new Uint8Array(0);
  #r = 0;
  #w = 0;
  #state = S_HEADER;
  readonly #hdr = new FrameHeader();
  readonly #limits: { maxPayload: number; allowRsv1: boolean; allowUnmasked: boolean };
  /** Payload bytes of the current frame already unmasked (and validated). */
  #done = 0;
  /** S_DIRECT: the frame's own buffer. */
  #dst: Uint8Array | null = null;
  /** Opcode of the message being assembled (0: none). */
  #msgOp = 0;
  #msgCompressed = false;
  #msgLen = 0;
  #msgChunks: Uint8Array[] = [];
  /** Whether the message's text is being validated incrementally. */
  #msgValidating = false;
  readonly #utf8 = new Utf8Validator();
  #reads = 0;
  /** Size of the last read: a big buffer is dropped only after small reads. */
  #lastRead = 0;

  // Writing. Frames are encoded into a staging buffer (`#out`), written
  // as one chunk; while it is out, new frames go to the spare. Items that
  // must wait (a Blob, a compression) and everything after them go to
  // `#queue`, in order, after what is staged.
  #out: Uint8Array | null = null;
  #outLen = 0;
  #outAmount = 0;
  #spare: Uint8Array | null = null;
  #queue: QueueItem[] = [];
  #amounts: number[] = [];
  #writing = false;
  #waiting = false;
  #wBytes: Uint8Array | null = null;
  #wOff = 0;
  #wAmount = 0;
  #wStaging: Uint8Array | null = null;
  /** Counts write starts and completions; the sweeper watches it move. */
  #writeEvents = 0;
  #seenWriteEvents = 0;
  #lastWriteProgress = 0;
  #idleTicks = 0;

  // Closing.
  #closeSent = false;
  #closeReceived = false;
  #peerCode: number = CLOSE_NO_STATUS;
  #peerReason = "";
  #failure: string | null = null;
  #closeDeadline = 0;
  #pendingClose: { code: number | undefined; reason: string } | null = null;
  #finished = false;

  // Idle pings (checked by the shared sweeper).
  #seenReads = 0;
  #lastActive = 0;
  #pinged = false;

  // on* handler attributes.
  #handlers: Record<string, EventListener | null> = {};

  /** @param config what the handshake agreed; see {@linkcode SocketConfig}. */
  constructor(config: SocketConfig = {}) {
    super();
    this.#url = config.url ?? "";
    this.#protocol = config.protocol ?? "";
    this.#extensions = config.extensions ?? "";
    this.#deflate = config.deflate ? new PerMessageDeflate(config.deflate) : null;
    this.#max = config.maxMessageBytes ?? 64 * 1024 * 1024;
    this.#idleMs = Math.max(0, (config.idleTimeout ?? 120) * 1000);
    this.#writeTimeout = config.writeTimeout ?? 30_000;
    this.#closeTimeout = config.closeTimeout ?? 5_000;
    this.#onClosed = config.onClosed;
    this.#limits = {
      maxPayload: this.#max,
      allowRsv1: this.#deflate !== null,
      allowUnmasked: config.allowUnmasked ?? false,
    };
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
    return this.#readyState;
  }
  /** Payload bytes passed to `send` and not yet written to the network. */
  get bufferedAmount(): number {
    return this.#bufferedAmount;
  }
  /** How binary messages are delivered: `"arraybuffer"` (default) or `"blob"`. */
  get binaryType(): BinaryType {
    return this.#binaryType;
  }
  set binaryType(value: BinaryType) {
    // A WebIDL enum attribute ignores values outside the enum.
    if (value === "arraybuffer" || value === "blob") this.#binaryType = value;
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
    const state = this.#readyState;
    if (state === CONNECTING) {
      throw new DOMException("'readyState' not OPEN", "InvalidStateError");
    }
    if (typeof data === "string") {
      if (state !== OPEN) {
        this.#bufferedAmount += utf8Length(data);
        return;
      }
      if (this.#deflate === null && data.length <= INLINE_STRING && this.#queue.length === 0) {
        this.#stageText(data);
        return;
      }
      const bytes = encoder.encode(data);
      this.#sendBytes(OP_TEXT, bytes, true);
      return;
    }
    if (data instanceof Blob) {
      const amount = data.size;
      this.#bufferedAmount += amount;
      if (state !== OPEN) return;
      this.#enqueue(
        data.arrayBuffer().then(
          (ab) => this.#frameAsync(OP_BINARY, new Uint8Array(ab)),
          () => null,
        ),
        amount,
      );
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
    if (state !== OPEN) {
      this.#bufferedAmount += bytes.length;
      return;
    }
    this.#sendBytes(OP_BINARY, bytes, false);
  }

  /** Sends a data frame; `owned`: the bytes are ours (no copy needed). */
  #sendBytes(op: number, bytes: Uint8Array, owned: boolean): void {
    const amount = bytes.length;
    this.#bufferedAmount += amount;
    const d = this.#deflate;
    if (d !== null && amount >= d.params.threshold) {
      // Copy now: the caller may change its buffer after send returns.
      this.#enqueue(this.#frameAsync(op, owned ? bytes : bytes.slice()), amount);
      return;
    }
    if (amount <= STAGE_MAX && this.#queue.length === 0) {
      this.#stage(op, bytes, amount);
      return;
    }
    // Large (or behind a pending Blob): bytes we own go out as they are,
    // after their header; others are copied once, with the header.
    if (owned) {
      const h = new Uint8Array(headerSize(amount));
      writeHeader(h, 0, true, false, op, amount);
      this.#enqueue(h, 0);
      this.#enqueue(bytes, amount);
    } else this.#enqueue(encodeFrame(op, bytes), amount);
  }

  /** Room for `n` more bytes in the staging buffer. */
  #room(n: number): Uint8Array {
    let out = this.#out;
    const need = this.#outLen + n;
    if (out === null || out.length < need) {
      let size = out === null ? OUT_MIN : out.length * 2;
      while (size < need) size *= 2;
      const nb = this.#spare !== null && this.#spare.length >= need
        ? this.#spare
        : new Uint8Array(size);
      if (nb === this.#spare) this.#spare = null;
      if (out !== null && this.#outLen > 0) nb.set(out.subarray(0, this.#outLen));
      out = this.#out = nb;
    }
    return out;
  }

  /** A frame copied into the staging buffer (written with what is staged). */
  #stage(op: number, payload: Uint8Array, amount: number): void {
    const len = payload.length;
    const out = this.#room(10 + len);
    const pos = this.#outLen;
    const hs = writeHeader(out, pos, true, false, op, len);
    out.set(payload, pos + hs);
    this.#outLen = pos + hs + len;
    this.#outAmount += amount;
    if (!this.#writing) this.#kick();
  }

  /** A short string, UTF-8 encoded straight into the staging buffer. */
  #stageText(data: string): void {
    const n = data.length;
    const out = this.#room(4 + n * 3);
    const pos = this.#outLen;
    // ASCII (the common case) is encoded here; its length is known up front.
    let hs = n < 126 ? 2 : 4;
    let i = 0;
    const base = pos + hs;
    for (; i < n; i++) {
      const c = data.charCodeAt(i);
      if (c > 0x7f) break;
      out[base + i] = c;
    }
    let len = n;
    if (i < n) {
      // Not ASCII: the encoder does the rest, after the maximum header.
      const maxHs = n * 3 < 126 ? 2 : 4;
      const at = pos + maxHs;
      if (maxHs !== hs) out.copyWithin(at, base, base + i);
      const { written } = encoder.encodeInto(data.slice(i), out.subarray(at + i));
      len = i + written;
      hs = len < 126 ? 2 : 4;
      if (hs !== maxHs) out.copyWithin(pos + hs, at, at + len);
    }
    writeHeader(out, pos, true, false, OP_TEXT, len);
    this.#outLen = pos + hs + len;
    this.#outAmount += len;
    this.#bufferedAmount += len;
    if (!this.#writing) this.#kick();
  }

  /** A control frame, staged (it goes out after what is already queued). */
  #control(op: number, payload: Uint8Array): void {
    if (this.#queue.length === 0) this.#stage(op, payload, 0);
    else this.#enqueue(encodeFrame(op, payload), 0);
  }

  async #frameAsync(op: number, bytes: Uint8Array): Promise<Uint8Array | null> {
    const d = this.#deflate;
    let rsv1 = false;
    if (d !== null && bytes.length >= d.params.threshold) {
      try {
        bytes = await d.compress(bytes);
        rsv1 = true;
      } catch {
        if (this.#finished) return null;
        this.#fail(CLOSE_INTERNAL_ERROR, "compression failed");
        return null;
      }
    }
    return encodeFrame(op, bytes, true, rsv1);
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
    this.#close(c, r);
  }

  #close(code: number | undefined, reason: string): void {
    if (this.#readyState === CLOSING || this.#readyState === CLOSED) return;
    if (this.#readyState === CONNECTING) {
      // Closed before the 101 went out: close as soon as it has.
      this.#readyState = CLOSING;
      this.#pendingClose = { code, reason };
      return;
    }
    this.#readyState = CLOSING;
    this.#sendClose(code, reason);
  }

  #sendClose(code: number | undefined, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#control(OP_CLOSE, closePayload(code, reason));
    if (this.#closeReceived) {
      // Echoing the peer's close: the handshake is complete once written.
      this.#after(() => this.#shutdownTransport());
    } else {
      this.#closeDeadline = this.#closeTimeout > 0 ? Date.now() + this.#closeTimeout : 0;
    }
  }

  // ---- starting -----------------------------------------------------------

  #start(t: WebSocketTransport, buffered: Uint8Array | null): void {
    if (this.#t !== null || this.#finished) return;
    this.#t = t;
    this.#buf = new Uint8Array(
      buffered && buffered.length > SMALL_BUF
        ? Math.min(MAX_BUF, pow2(buffered.length))
        : SMALL_BUF,
    );
    if (buffered && buffered.length > 0) {
      if (buffered.length > this.#buf.length) {
        // Rare: more pipelined bytes than a buffer; keep them all.
        this.#buf = buffered.slice();
      } else this.#buf.set(buffered);
      this.#w = buffered.length;
    }
    this.#lastActive = Date.now();
    sweeper.add(this);
    if (this.#pendingClose) {
      // close() was called while CONNECTING: no open event.
      const { code, reason } = this.#pendingClose;
      this.#pendingClose = null;
      this.#sendClose(code, reason);
    } else {
      this.#readyState = OPEN;
      this.dispatchEvent(new Event("open"));
    }
    this.#readLoop();
  }

  // ---- reading ------------------------------------------------------------

  async #readLoop(): Promise<void> {
    const t = this.#t!;
    try {
      while (this.#state !== S_DONE) {
        if (this.#state === S_DIRECT) {
          const dst = this.#dst!;
          const n = await t.read(dst.subarray(this.#done));
          if (n === null) return this.#eof();
          this.#reads++;
          const p = this.#directData(n);
          if (p) await p;
          if (this.#stopped()) return;
          continue;
        }
        if (this.#w > this.#r) {
          const p = this.#process();
          if (p) {
            await p;
            continue;
          }
          if (this.#state === S_DONE) return;
          if (this.#state === S_DIRECT) continue;
        }
        this.#makeRoom();
        const buf = this.#buf;
        const n = await t.read(this.#w === 0 ? buf : buf.subarray(this.#w));
        if (n === null) return this.#eof();
        this.#reads++;
        this.#lastRead = n;
        this.#w += n;
        if (this.#w === this.#buf.length && this.#buf.length < MAX_BUF && this.#r === 0) {
          // A full read: probably more waiting; read bigger next time.
          this.#grow(this.#buf.length * 2);
        }
      }
    } catch (err) {
      if (err instanceof WebSocketProtocolError) {
        this.#fail(err.code, err.message);
        this.#linger();
      } else if (!this.#finished) {
        // The transport failed (reset, closed under us).
        this.#abort(this.#closeReceived || this.#closeSent ? null : errorMessage(err));
      }
    }
  }

  #stopped(): boolean {
    return this.#state === S_DONE;
  }

  /** After failing: discard input until EOF or the close timeout. */
  async #linger(): Promise<void> {
    const t = this.#t;
    if (!t || this.#finished) return;
    this.#state = S_DONE;
    const sink = this.#buf.length > 0 ? this.#buf : new Uint8Array(SMALL_BUF);
    let budget = LINGER_BYTES;
    try {
      // A peer that keeps sending (the rest of an oversized message) is not
      // read to its end: past the budget, the connection is simply closed.
      while (!this.#finished && budget > 0) {
        const n = await t.read(sink);
        if (n === null) break;
        budget -= n;
      }
    } catch { /* closed by the deadline or reset */ }
    this.#shutdownTransport();
  }

  /** Ensures the read buffer has free space after `#w`. */
  #makeRoom(): void {
    if (this.#r === this.#w) {
      this.#r = this.#w = 0;
      // An emptied big buffer is dropped, so a quiet socket stays small.
      if (
        this.#buf.length > SMALL_BUF && this.#state === S_HEADER && this.#lastRead < SMALL_BUF / 2
      ) {
        this.#buf = new Uint8Array(SMALL_BUF);
      }
      return;
    }
    if (this.#w < this.#buf.length) return;
    if (this.#r > 0) {
      this.#buf.copyWithin(0, this.#r, this.#w);
      this.#w -= this.#r;
      this.#r = 0;
    } else this.#grow(this.#buf.length * 2);
  }

  #grow(size: number): void {
    const nb = new Uint8Array(Math.max(size, SMALL_BUF));
    nb.set(this.#buf.subarray(this.#r, this.#w));
    this.#w -= this.#r;
    this.#r = 0;
    this.#buf = nb;
  }

  #eof(): void {
    if (this.#finished) return;
    const clean = this.#closeReceived;
    this.#state = S_DONE;
    this.#abort(clean || this.#failure !== null || this.#closeSent ? null : "Unexpected EOF");
  }

  /**
   * Parses what the read buffer holds. Returns a promise when a message must
   * be decompressed first (the caller awaits it and calls again).
   */
  #process(): Promise<void> | undefined {
    while (this.#state !== S_DONE) {
      const buf = this.#buf;
      if (this.#state === S_HEADER) {
        this.#limits.maxPayload = this.#max - this.#msgLen;
        const hs = this.#hdr.parse(buf, this.#r, this.#w, this.#limits);
        if (hs === 0) return;
        this.#r += hs;
        this.#onHeader();
        this.#done = 0;
        const len = this.#hdr.length;
        if (len + hs > MAX_BUF) {
          // Big frame: its own buffer, filled by reads straight into it.
          const dst = new Uint8Array(len);
          const have = Math.min(len, this.#w - this.#r);
          dst.set(buf.subarray(this.#r, this.#r + have));
          this.#r += have;
          this.#dst = dst;
          this.#state = S_DIRECT;
          const p = this.#directData(have);
          if (p) return p;
          if (this.#state === S_DIRECT) return;
          continue;
        }
        this.#state = S_PAYLOAD;
      }
      if (this.#state !== S_PAYLOAD) return;
      const len = this.#hdr.length;
      const avail = this.#w - this.#r;
      const r = this.#r;
      if (avail < len) {
        // Partial payload: unmask and validate what came, then wait.
        if (avail > this.#done && this.#textFrame()) {
          const from = r + this.#done;
          unmask(buf, from, r + avail, this.#hdr.mask, this.#done);
          this.#done = avail;
          this.#validate(buf, from, r + avail, false);
        }
        if (r + len > buf.length) {
          // Room for the whole frame; #done counts from #r, so moving is safe.
          if (len <= buf.length) {
            buf.copyWithin(0, r, this.#w);
            this.#w -= r;
            this.#r = 0;
          } else this.#grow(pow2(len));
        }
        return;
      }
      if (this.#hdr.masked) unmask(buf, r + this.#done, r + len, this.#hdr.mask, this.#done);
      this.#r = r + len;
      this.#state = S_HEADER;
      const p = this.#onFrame(buf.subarray(r, r + len), false);
      if (p) return p;
    }
  }

  /** S_DIRECT: `n` more bytes arrived in the frame's own buffer. */
  #directData(n: number): Promise<void> | undefined {
    const dst = this.#dst!;
    const from = this.#done;
    const to = from + n;
    if (this.#hdr.masked && n > 0) unmask(dst, from, to, this.#hdr.mask, from);
    if (n > 0 && this.#textFrame()) this.#validate(dst, from, to, false);
    this.#done = to;
    if (to < dst.length) return;
    this.#dst = null;
    this.#state = S_HEADER;
    return this.#onFrame(dst, true);
  }

  /** Whether the current frame's payload is text to validate as it arrives. */
  #textFrame(): boolean {
    const op = this.#hdr.opcode;
    return (op === OP_TEXT || (op === OP_CONTINUATION && this.#msgOp === OP_TEXT)) &&
      !this.#msgCompressed;
  }

  #validate(buf: Uint8Array, from: number, to: number, end: boolean): void {
    if (!this.#msgValidating) {
      this.#msgValidating = true;
      this.#utf8.reset();
    }
    if (!this.#utf8.push(buf, from, to) || (end && !this.#utf8.complete)) {
      throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
    }
  }

  /** Checks a frame header against the message in progress. */
  #onHeader(): void {
    const h = this.#hdr;
    const op = h.opcode;
    if (op >= 8) return;
    if (op === OP_CONTINUATION) {
      if (this.#msgOp === 0) {
        throw new WebSocketProtocolError(1002, "continuation frame without a message");
      }
      if (h.rsv1) throw new WebSocketProtocolError(1002, "RSV1 set on a continuation frame");
    } else {
      if (this.#msgOp !== 0) {
        throw new WebSocketProtocolError(1002, "new message inside a fragmented message");
      }
      this.#msgOp = op;
      this.#msgCompressed = h.rsv1;
      this.#msgLen = 0;
      this.#msgValidating = false;
    }
    this.#msgLen += h.length;
  }

  /**
   * A whole frame's unmasked payload. `owned`: the payload is its own buffer
   * (else a view of the read buffer, reused after this returns).
   */
  #onFrame(payload: Uint8Array, owned: boolean): Promise<void> | undefined {
    const h = this.#hdr;
    const op = h.opcode;
    if (op >= 8) {
      this.#onControl(op, payload);
      return;
    }
    if (
      (this.#msgValidating || !h.fin || op === OP_CONTINUATION) && this.#textFrame()
    ) {
      // Part of a fragmented (or trickling) text message: validate as it comes.
      const from = this.#done < payload.length ? this.#done : payload.length;
      this.#validate(payload, from, payload.length, h.fin);
    }
    if (!h.fin) {
      this.#msgChunks.push(owned ? payload : payload.slice());
      return;
    }
    const msgOp = this.#msgOp;
    const compressed = this.#msgCompressed;
    const chunks = this.#msgChunks;
    this.#msgOp = 0;
    this.#msgLen = 0;
    if (chunks.length > 0) this.#msgChunks = [];
    if (compressed) {
      // A fresh list: the socket's own one stays empty for the next message.
      return this.#inflate(msgOp, chunks.length > 0 ? [...chunks, payload] : [payload]);
    }
    if (msgOp === OP_TEXT) {
      let text: string;
      if (this.#msgValidating) {
        // Validated as it came: decode without checking again.
        this.#msgValidating = false;
        text = lenientDecoder.decode(chunks.length > 0 ? concat(chunks, payload) : payload);
      } else {
        try {
          text = strictDecoder.decode(chunks.length > 0 ? concat(chunks, payload) : payload);
        } catch {
          throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
        }
      }
      this.#deliver(text);
      return;
    }
    let bytes: Uint8Array;
    if (chunks.length > 0) bytes = concat(chunks, payload);
    else bytes = owned ? payload : payload.slice();
    this.#deliverBinary(bytes);
  }

  async #inflate(op: number, chunks: Uint8Array[]): Promise<void> {
    // Compressed payloads in the read buffer must be copied before awaiting.
    const last = chunks[chunks.length - 1];
    if (last.buffer === this.#buf.buffer) chunks[chunks.length - 1] = last.slice();
    const data = await this.#deflate!.decompress(chunks, this.#max);
    if (this.#finished) return;
    if (op === OP_TEXT) {
      let text: string;
      try {
        text = strictDecoder.decode(data);
      } catch {
        throw new WebSocketProtocolError(CLOSE_INVALID_DATA, "Invalid UTF-8");
      }
      this.#deliver(text);
    } else {
      this.#deliverBinary(
        data.byteOffset === 0 && data.length === data.buffer.byteLength ? data : data.slice(),
      );
    }
  }

  #deliver(data: string): void {
    if (this.#readyState !== OPEN) return;
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  #deliverBinary(bytes: Uint8Array): void {
    if (this.#readyState !== OPEN) return;
    const data = this.#binaryType === "blob"
      ? new Blob([bytes as Uint8Array<ArrayBuffer>])
      : bytes.buffer as ArrayBuffer;
    this.dispatchEvent(new MessageEvent("message", { data }));
  }

  #onControl(op: number, payload: Uint8Array): void {
    if (op === OP_PING) {
      if (!this.#closeSent) this.#control(OP_PONG, payload);
      return;
    }
    if (op === OP_PONG) return;
    // Close.
    const { code, reason } = parseClosePayload(payload);
    this.#closeReceived = true;
    this.#peerCode = code;
    this.#peerReason = reason;
    this.#state = S_DONE;
    if (this.#closeSent) {
      // Our close was answered: the server closes the TCP connection first.
      this.#shutdownTransport();
      return;
    }
    this.#readyState = CLOSING;
    // Echo the code (not the reason), or an empty close for an empty one.
    this.#sendClose(code === CLOSE_NO_STATUS ? undefined : code, "");
  }

  // ---- writing ------------------------------------------------------------

  /** Queues an item after everything staged and queued before it. */
  #enqueue(item: QueueItem, amount: number): void {
    this.#queue.push(item);
    this.#amounts.push(amount);
    if (!this.#writing) this.#kick();
  }

  /** Queues `fn` to run once everything before it is written. */
  #after(fn: () => void): void {
    this.#enqueue(fn, 0);
  }

  /** Starts the next write, if any: staged bytes first, then the queue. */
  #kick(): void {
    if (this.#writing || this.#waiting) return;
    const t = this.#t;
    if (t === null) return;
    if (this.#finished) {
      this.#outLen = this.#outAmount = 0;
      return;
    }
    if (this.#outLen > 0) {
      const out = this.#out!;
      const bytes = out.subarray(0, this.#outLen);
      const amount = this.#outAmount;
      // Double buffering: new frames go to the spare while this one is out.
      this.#out = this.#spare;
      this.#spare = null;
      this.#outLen = this.#outAmount = 0;
      this.#write(t, bytes, amount, out);
      return;
    }
    const q = this.#queue;
    while (q.length > 0) {
      const head = q[0];
      if (typeof head === "function") {
        q.shift();
        this.#amounts.shift();
        head();
        if (this.#writing || this.#waiting || this.#outLen > 0) {
          if (!this.#writing && !this.#waiting) this.#kick();
          return;
        }
        continue;
      }
      if (!(head instanceof Uint8Array)) {
        this.#waiting = true;
        head.then((b) => {
          this.#waiting = false;
          // The queue may have been emptied meanwhile (failure, close).
          if (this.#queue[0] === head) this.#queue[0] = b ?? EMPTY;
          this.#kick();
        });
        return;
      }
      // Merge consecutive ready frames into one write.
      let n = 1, total = head.length;
      while (
        n < q.length && q[n] instanceof Uint8Array &&
        total + (q[n] as Uint8Array).length <= COALESCE_MAX
      ) total += (q[n++] as Uint8Array).length;
      let bytes: Uint8Array, amount = 0;
      if (n === 1) {
        bytes = head;
        amount = this.#amounts[0];
      } else {
        bytes = new Uint8Array(total);
        let o = 0;
        for (let i = 0; i < n; i++) {
          const b = q[i] as Uint8Array;
          bytes.set(b, o);
          o += b.length;
          amount += this.#amounts[i];
        }
      }
      q.splice(0, n);
      this.#amounts.splice(0, n);
      if (bytes.length === 0) {
        this.#bufferedAmount -= amount;
        continue;
      }
      this.#write(t, bytes, amount, null);
      return;
    }
  }

  /** Writes `bytes` (all of it, in as many writes as it takes). */
  #write(t: WebSocketTransport, bytes: Uint8Array, amount: number, staging: Uint8Array | null) {
    this.#writing = true;
    this.#wBytes = bytes;
    this.#wOff = 0;
    this.#wAmount = amount;
    this.#wStaging = staging;
    this.#writeEvents++;
    t.write(bytes).then(this.#onWrote, this.#onWriteError);
  }

  readonly #onWrote = (n: number): void => {
    this.#writeEvents++;
    const bytes = this.#wBytes!;
    this.#wOff += n;
    if (this.#wOff < bytes.length && !this.#finished) {
      this.#t!.write(bytes.subarray(this.#wOff)).then(this.#onWrote, this.#onWriteError);
      return;
    }
    this.#bufferedAmount -= this.#wAmount;
    if (this.#wStaging !== null && this.#spare === null && this.#out !== this.#wStaging) {
      this.#spare = this.#wStaging; // reuse it for the frames after the next
    }
    this.#wBytes = this.#wStaging = null;
    this.#writing = false;
    this.#kick();
  };

  readonly #onWriteError = (err: unknown): void => {
    this.#writing = false;
    this.#wBytes = this.#wStaging = null;
    if (!this.#finished) this.#abort(this.#closeReceived ? null : errorMessage(err));
  };

  // ---- failing and finishing ---------------------------------------------

  /** Fails the connection: a close frame with `code`, then a short linger. */
  #fail(code: number, message: string, reason = ""): void {
    if (this.#failure !== null || this.#finished) return;
    this.#failure = message;
    this.#readyState = CLOSING;
    this.#state = S_DONE;
    // Frames not yet handed to the transport are dropped.
    this.#queue.length = 0;
    this.#amounts.length = 0;
    this.#outLen = this.#outAmount = 0;
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#control(OP_CLOSE, closePayload(code, reason));
    }
    this.#after(() => {
      const t = this.#t;
      if (t?.closeWrite) Promise.resolve(t.closeWrite()).catch(() => {});
      else this.#shutdownTransport();
    });
    // Linger for the peer's EOF, briefly: it has nothing more to say.
    this.#closeDeadline = Date.now() + Math.min(this.#closeTimeout || LINGER_MS, LINGER_MS);
  }

  /** Closes the transport now and finishes (no close frame). */
  #abort(error: string | null): void {
    if (this.#finished) return;
    if (error !== null && this.#failure === null) this.#failure = error;
    this.#shutdownTransport();
  }

  #shutdownTransport(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#state = S_DONE;
    this.#t?.close();
    sweeper.delete(this);
    this.#deflate?.close();
    this.#deflate = null;
    this.#queue.length = 0;
    this.#amounts.length = 0;
    this.#out = this.#spare = null;
    this.#outLen = this.#outAmount = 0;
    this.#readyState = CLOSED;
    this.#buf = new Uint8Array(0);
    this.#msgChunks = [];
    this.#dst = null;
    const failed = this.#failure !== null;
    const wasClean = !failed && this.#closeReceived && this.#closeSent;
    const result: CloseResult = {
      code: wasClean ? this.#peerCode : CLOSE_ABNORMAL,
      reason: wasClean ? this.#peerReason : "",
      wasClean,
      error: this.#failure,
    };
    try {
      this.#onClosed?.(result);
    } catch { /* the owner's bookkeeping must not stop the events */ }
    if (failed) {
      this.dispatchEvent(new ErrorEvent("error", { message: this.#failure!, error: null }));
    }
    this.dispatchEvent(
      new CloseEvent("close", { code: result.code, reason: result.reason, wasClean }),
    );
  }

  /** Sweeper tick: write, close and idle deadlines. */
  #tick(now: number): void {
    if (this.#finished) return;
    if (this.#writeEvents !== this.#seenWriteEvents) {
      this.#seenWriteEvents = this.#writeEvents;
      this.#lastWriteProgress = now;
      this.#idleTicks = 0;
    } else if (this.#writing) {
      if (this.#writeTimeout > 0 && now - this.#lastWriteProgress >= this.#writeTimeout) {
        this.#abort("write timed out: the peer is not reading");
        return;
      }
    } else if (++this.#idleTicks >= 2 && this.#outLen === 0) {
      // Nothing written for a while: an idle socket keeps no write buffers.
      this.#out = this.#spare = null;
    }
    if (this.#closeDeadline !== 0 && now >= this.#closeDeadline) {
      this.#abort(this.#failure === null && !this.#closeReceived ? null : this.#failure);
      return;
    }
    if (this.#idleMs === 0 || this.#readyState !== OPEN) return;
    if (this.#reads !== this.#seenReads) {
      this.#seenReads = this.#reads;
      this.#lastActive = now;
      this.#pinged = false;
      return;
    }
    const quiet = now - this.#lastActive;
    if (quiet >= this.#idleMs) {
      this.#fail(CLOSE_GOING_AWAY, "No response from ping frame.", "No response from ping frame.");
    } else if (!this.#pinged && quiet >= this.#idleMs / 2) {
      this.#pinged = true;
      this.#control(OP_PING, EMPTY);
    }
  }

  /** Shortest timeout this socket needs checked, in ms (0: none). */
  get #resolution(): number {
    const ts = [this.#writeTimeout, this.#closeTimeout, this.#idleMs / 2].filter((x) => x > 0);
    return ts.length ? Math.min(...ts) : 0;
  }

  static {
    start = (s, t, b) => s.#start(t, b);
    closeWith = (s, code, reason) => {
      if (s.#readyState === OPEN) {
        s.#readyState = CLOSING;
        s.#sendClose(code, reason);
      } else s.#close(code, reason);
    };
    abort = (s, reason) => s.#abort(reason);
    sweeperTick = (s, now) => s.#tick(now);
    resolutionOf = (s) => s.#resolution;
  }
}

for (const [name, value] of [["CONNECTING", 0], ["OPEN", 1], ["CLOSING", 2], ["CLOSED", 3]]) {
  Object.defineProperty(ConnctxWebSocket.prototype, name, { value, enumerable: true });
}

/** One timer for the deadlines of every socket of the process. */
const sweeper = new class {
  #sockets = new Set<ConnctxWebSocket>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #interval = 1000;

  add(s: ConnctxWebSocket): void {
    this.#sockets.add(s);
    const res = resolutionOf(s);
    if (res > 0) {
      const want = Math.min(1000, Math.max(10, Math.floor(res / 4)));
      if (want < this.#interval || this.#timer === undefined) {
        this.#interval = Math.min(this.#interval, want);
        this.#restart();
      }
    }
  }

  delete(s: ConnctxWebSocket): void {
    this.#sockets.delete(s);
    if (this.#sockets.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      this.#interval = 1000;
    }
  }

  #restart(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const timer = setInterval(() => {
      const now = Date.now();
      for (const s of this.#sockets) sweeperTick(s, now);
    }, this.#interval);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }
}();

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
  start(socket, transport, buffered);
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
  closeWith(socket, code, reason);
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
  abort(socket, reason);
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

function pow2(n: number): number {
  let p = SMALL_BUF;
  while (p < n) p *= 2;
  return p;
}

function concat(chunks: Uint8Array[], last: Uint8Array): Uint8Array {
  let total = last.length;
  for (const c of chunks) total += c.length;
  const out = new Uint8Array(total);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  out.set(last, o);
  return out;
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
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
