// Copyright 2026 the connctx authors. MIT license.

/**
 * The byte stream a WebSocket runs on: the {@linkcode WebSocketTransport}
 * interface (shaped like `Deno.Conn`, so an in-memory pipe can stand in for
 * it in tests) and {@linkcode connTransport}, the one over a `Deno.Conn`.
 * Nothing else: framing is in frame.ts, the protocol in engine.ts.
 *
 * @module
 */

/**
 * The byte stream a socket runs on, shaped like `Deno.Conn`: `read` resolves
 * with the number of bytes read into `buf`, or null at end of stream; `write`
 * with the number of bytes written (possibly fewer than given: the socket
 * writes the rest); `close` releases the stream at once; `closeWrite`, when
 * present, half-closes it (used to linger after failing a connection).
 *
 * @example
 * ```ts
 * import type { WebSocketTransport } from "./transport.ts";
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
 * import { connTransport } from "./transport.ts";
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
