// Copyright 2026 the connctx authors. MIT license.

/**
 * The protocol machine of one WebSocket connection, between the WHATWG
 * interface (socket.ts) and the transport: {@linkcode WebSocketEngine} owns
 * the connection's state (CONNECTING to CLOSED), starting it, framing what
 * is sent (compressing it when permessage-deflate was negotiated), answering
 * control frames, the closing handshake, failing the connection (a close
 * frame, then a short linger), idle pings and the close and write
 * deadlines, and the final `error`/`close` events. Reading is the
 * {@linkcode FrameReader}'s (reader.ts), the write queue the
 * {@linkcode FrameWriter}'s (writer.ts); both report back here.
 *
 * @module
 */

import {
  CLOSE_ABNORMAL,
  CLOSE_GOING_AWAY,
  CLOSE_INTERNAL_ERROR,
  CLOSE_NO_STATUS,
  closePayload,
  encodeFrame,
  OP_BINARY,
  OP_CLOSE,
  OP_PING,
  OP_PONG,
  OP_TEXT,
  parseClosePayload,
} from "./frame.ts";
import { type DeflateParams, PerMessageDeflate } from "./deflate.ts";
import { FrameReader, type ReaderHost } from "./reader.ts";
import { FrameWriter } from "./writer.ts";
import { sweeper } from "./sweeper.ts";
import type { WebSocketTransport } from "./transport.ts";

/**
 * How a socket was set up. Times: `idleTimeout` in seconds (as for
 * `Deno.upgradeWebSocket`), the others in milliseconds; 0 disables.
 *
 * @example
 * ```ts
 * import type { SocketConfig } from "./engine.ts";
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
 * import type { CloseResult } from "./engine.ts";
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

/** `readyState` values, as the WHATWG `WebSocket` has them. */
export const CONNECTING = 0;
/** @see {@linkcode CONNECTING} */
export const OPEN = 1;
/** @see {@linkcode CONNECTING} */
export const CLOSING = 2;
/** @see {@linkcode CONNECTING} */
export const CLOSED = 3;

/** Longest wait for a failed connection's peer to close its side. */
const LINGER_MS = 1000;
/** Strings up to this many UTF-16 units are encoded straight into their frame. */
const INLINE_STRING = 2048;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

/**
 * The protocol machine behind one `ConnctxWebSocket`; events are dispatched
 * on the socket (`target`). Its `send*` methods expect an OPEN socket: the
 * WHATWG checks are the socket's.
 *
 * @example
 * ```ts
 * import { CONNECTING, WebSocketEngine } from "./engine.ts";
 * import assert from "node:assert/strict";
 *
 * const engine = new WebSocketEngine(new EventTarget(), { url: "ws://localhost/" });
 * assert.equal(engine.readyState, CONNECTING);
 * ```
 */
export class WebSocketEngine implements ReaderHost {
  /** CONNECTING, OPEN, CLOSING or CLOSED. */
  readyState = CONNECTING;
  /** How binary messages are delivered. */
  binaryType: BinaryType = "arraybuffer";

  readonly #target: EventTarget;
  readonly #idleMs: number;
  readonly #writeTimeout: number;
  readonly #closeTimeout: number;
  readonly #onClosed: ((r: CloseResult) => void) | undefined;
  #deflate: PerMessageDeflate | null;
  #t: WebSocketTransport | null = null;
  readonly #reader: FrameReader;
  readonly #writer: FrameWriter;

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

  /**
   * @param target where the events are dispatched (the socket)
   * @param config what the handshake agreed
   */
  constructor(target: EventTarget, config: SocketConfig) {
    this.#target = target;
    this.#deflate = config.deflate ? new PerMessageDeflate(config.deflate) : null;
    this.#idleMs = Math.max(0, (config.idleTimeout ?? 120) * 1000);
    this.#writeTimeout = config.writeTimeout ?? 30_000;
    this.#closeTimeout = config.closeTimeout ?? 5_000;
    this.#onClosed = config.onClosed;
    this.#reader = new FrameReader(
      this,
      config.maxMessageBytes ?? 64 * 1024 * 1024,
      this.#deflate,
      config.allowUnmasked ?? false,
    );
    this.#writer = new FrameWriter(
      this.#writeTimeout,
      (err) => this.#abort(this.#closeReceived ? null : errorMessage(err)),
    );
  }

  /** Payload bytes passed to `send` and not yet written to the network. */
  get bufferedAmount(): number {
    return this.#writer.bufferedAmount;
  }

  /** Counts `amount` bytes sent after closing: dropped, but in `bufferedAmount`. */
  discard(amount: number): void {
    this.#writer.bufferedAmount += amount;
  }

  /** Whether the connection is finished (the transport is closed). */
  get finished(): boolean {
    return this.#finished;
  }

  // ---- starting -----------------------------------------------------------

  /** Starts on `t` (`buffered`: bytes read past the HTTP head); see `startWebSocket`. */
  start(t: WebSocketTransport, buffered: Uint8Array | null): void {
    if (this.#t !== null || this.#finished) return;
    this.#t = t;
    this.#writer.attach(t);
    this.#reader.start(buffered);
    this.#lastActive = Date.now();
    sweeper.add(this);
    if (this.#pendingClose) {
      // close() was called while CONNECTING: no open event.
      const { code, reason } = this.#pendingClose;
      this.#pendingClose = null;
      this.#sendClose(code, reason);
    } else {
      this.readyState = OPEN;
      this.#target.dispatchEvent(new Event("open"));
    }
    this.#reader.run(t);
  }

  // ---- sending (OPEN only) ------------------------------------------------

  /** A text message. */
  sendText(data: string): void {
    if (this.#deflate === null && data.length <= INLINE_STRING && !this.#writer.queued) {
      this.#writer.stageText(data);
      return;
    }
    const bytes = encoder.encode(data);
    this.#sendBytes(OP_TEXT, bytes, true);
  }

  /** A binary message of the caller's bytes (copied if they must wait). */
  sendBinary(bytes: Uint8Array): void {
    this.#sendBytes(OP_BINARY, bytes, false);
  }

  /** A binary message of a Blob's bytes; it keeps its place in the order. */
  sendBlob(data: Blob): void {
    const amount = data.size;
    this.#writer.bufferedAmount += amount;
    this.#writer.enqueue(
      data.arrayBuffer().then(
        (ab) => this.#frameAsync(OP_BINARY, new Uint8Array(ab)),
        () => null,
      ),
      amount,
    );
  }

  /** Sends a data frame; `owned`: the bytes are ours (no copy needed). */
  #sendBytes(op: number, bytes: Uint8Array, owned: boolean): void {
    const amount = bytes.length;
    this.#writer.bufferedAmount += amount;
    const d = this.#deflate;
    if (d !== null && amount >= d.params.threshold) {
      // Copy now: the caller may change its buffer after send returns.
      this.#writer.enqueue(this.#frameAsync(op, owned ? bytes : bytes.slice()), amount);
      return;
    }
    this.#writer.frame(op, bytes, owned);
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
        this.fail(CLOSE_INTERNAL_ERROR, "compression failed");
        return null;
      }
    }
    return encodeFrame(op, bytes, true, rsv1);
  }

  // ---- closing ------------------------------------------------------------

  /** `close()` once its arguments are checked: a no-op when already closing. */
  close(code: number | undefined, reason: string): void {
    if (this.readyState === CLOSING || this.readyState === CLOSED) return;
    if (this.readyState === CONNECTING) {
      // Closed before the 101 went out: close as soon as it has.
      this.readyState = CLOSING;
      this.#pendingClose = { code, reason };
      return;
    }
    this.readyState = CLOSING;
    this.#sendClose(code, reason);
  }

  /** Starts the closing handshake with any code; see `closeWebSocket`. */
  closeWith(code: number | undefined, reason: string): void {
    if (this.readyState === OPEN) {
      this.readyState = CLOSING;
      this.#sendClose(code, reason);
    } else this.close(code, reason);
  }

  /** Cuts the connection now, without a close frame; see `abortWebSocket`. */
  abort(reason: string): void {
    this.#abort(reason);
  }

  #sendClose(code: number | undefined, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#writer.control(OP_CLOSE, closePayload(code, reason));
    if (this.#closeReceived) {
      // Echoing the peer's close: the handshake is complete once written.
      this.#writer.after(() => this.shutdown());
    } else {
      this.#closeDeadline = this.#closeTimeout > 0 ? Date.now() + this.#closeTimeout : 0;
    }
  }

  // ---- what the reader reports (ReaderHost) -------------------------------

  /** A whole text message: a `message` event while OPEN. */
  text(data: string): void {
    if (this.readyState !== OPEN) return;
    this.#target.dispatchEvent(new MessageEvent("message", { data }));
  }

  /** A whole binary message: a `message` event while OPEN. */
  binary(bytes: Uint8Array): void {
    if (this.readyState !== OPEN) return;
    const data = this.binaryType === "blob"
      ? new Blob([bytes as Uint8Array<ArrayBuffer>])
      : bytes.buffer as ArrayBuffer;
    this.#target.dispatchEvent(new MessageEvent("message", { data }));
  }

  /** A ping (answered), pong (ignored) or close (echoed, or ending ours). */
  control(op: number, payload: Uint8Array): void {
    if (op === OP_PING) {
      if (!this.#closeSent) this.#writer.control(OP_PONG, payload);
      return;
    }
    if (op === OP_PONG) return;
    // Close.
    const { code, reason } = parseClosePayload(payload);
    this.#closeReceived = true;
    this.#peerCode = code;
    this.#peerReason = reason;
    this.#reader.stop();
    if (this.#closeSent) {
      // Our close was answered: the server closes the TCP connection first.
      this.shutdown();
      return;
    }
    this.readyState = CLOSING;
    // Echo the code (not the reason), or an empty close for an empty one.
    this.#sendClose(code === CLOSE_NO_STATUS ? undefined : code, "");
  }

  /** The peer ended its stream. */
  eof(): void {
    if (this.#finished) return;
    const clean = this.#closeReceived;
    this.#reader.stop();
    this.#abort(clean || this.#failure !== null || this.#closeSent ? null : "Unexpected EOF");
  }

  /** The transport failed while reading (reset, closed under us). */
  readFailed(err: unknown): void {
    this.#abort(this.#closeReceived || this.#closeSent ? null : errorMessage(err));
  }

  // ---- failing and finishing ---------------------------------------------

  /** Fails the connection: a close frame with `code`, then a short linger. */
  fail(code: number, message: string, reason = ""): void {
    if (this.#failure !== null || this.#finished) return;
    this.#failure = message;
    this.readyState = CLOSING;
    this.#reader.stop();
    // Frames not yet handed to the transport are dropped.
    this.#writer.drop();
    if (!this.#closeSent) {
      this.#closeSent = true;
      this.#writer.control(OP_CLOSE, closePayload(code, reason));
    }
    this.#writer.after(() => {
      const t = this.#t;
      if (t?.closeWrite) Promise.resolve(t.closeWrite()).catch(() => {});
      else this.shutdown();
    });
    // Linger for the peer's EOF, briefly: it has nothing more to say.
    this.#closeDeadline = Date.now() + Math.min(this.#closeTimeout || LINGER_MS, LINGER_MS);
  }

  /** Closes the transport now and finishes (no close frame). */
  #abort(error: string | null): void {
    if (this.#finished) return;
    if (error !== null && this.#failure === null) this.#failure = error;
    this.shutdown();
  }

  /** Closes the transport and fires `error` (when failed) and `close`. */
  shutdown(): void {
    if (this.#finished) return;
    this.#finished = true;
    this.#reader.release();
    this.#t?.close();
    sweeper.delete(this);
    this.#deflate?.close();
    this.#deflate = null;
    this.#writer.release();
    this.readyState = CLOSED;
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
      this.#target.dispatchEvent(
        new ErrorEvent("error", { message: this.#failure!, error: null }),
      );
    }
    this.#target.dispatchEvent(
      new CloseEvent("close", { code: result.code, reason: result.reason, wasClean }),
    );
  }

  // ---- deadlines ----------------------------------------------------------

  /** Sweeper tick: write, close and idle deadlines. */
  tick(now: number): void {
    if (this.#finished) return;
    if (this.#writer.stalled(now)) {
      this.#abort("write timed out: the peer is not reading");
      return;
    }
    if (this.#closeDeadline !== 0 && now >= this.#closeDeadline) {
      this.#abort(this.#failure === null && !this.#closeReceived ? null : this.#failure);
      return;
    }
    if (this.#idleMs === 0 || this.readyState !== OPEN) return;
    const reads = this.#reader.reads;
    if (reads !== this.#seenReads) {
      this.#seenReads = reads;
      this.#lastActive = now;
      this.#pinged = false;
      return;
    }
    const quiet = now - this.#lastActive;
    if (quiet >= this.#idleMs) {
      this.fail(CLOSE_GOING_AWAY, "No response from ping frame.", "No response from ping frame.");
    } else if (!this.#pinged && quiet >= this.#idleMs / 2) {
      this.#pinged = true;
      this.#writer.control(OP_PING, EMPTY);
    }
  }

  /** Shortest timeout this socket needs checked, in ms (0: none). */
  get resolution(): number {
    const ts = [this.#writeTimeout, this.#closeTimeout, this.#idleMs / 2].filter((x) => x > 0);
    return ts.length ? Math.min(...ts) : 0;
  }
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
