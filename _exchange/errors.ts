// Copyright 2026 the connctx authors. MIT license.
// Owns: the protocol-independent error vocabulary of the engine — an error
// that maps to an HTTP status, the cancel causes every protocol uses, and the
// one place where refusal responses (400, 408, 413, 414, 431, 501, 505…) are
// built, for any protocol.

import { CanceledError } from "../_context.ts";

/** An error that maps to an HTTP status; the connection (HTTP/1.1) or the
 * stream (HTTP/2) is closed after answering it. */
export class HttpError extends Error {
  /** The status to answer with. */
  readonly status: number;
  /**
   * @param status The status to answer with.
   * @param message Why, for logs and the response body.
   */
  constructor(status: number, message: string) {
    super(message);
    this.name = "HttpError";
    this.status = status;
  }
}

/**
 * An error a protocol extension throws with its own answer (a refused
 * WebSocket handshake: 400 or 426): when a handler lets it through, the
 * engine sends `error[ERROR_RESPONSE]()` instead of calling `onError`.
 */
export const ERROR_RESPONSE: unique symbol = Symbol("connctx.errorResponse");

/** Whether `e` carries its own response (see {@linkcode ERROR_RESPONSE}). */
export function errorResponseOf(e: unknown): Response | null {
  if (typeof e !== "object" || e === null || !(ERROR_RESPONSE in e)) return null;
  const f = (e as { [ERROR_RESPONSE]: unknown })[ERROR_RESPONSE];
  return typeof f === "function" ? f.call(e) : null;
}

/** Cause of a request context canceled because the client went away. */
export const DISCONNECTED: CanceledError = new CanceledError("client disconnected");
/** Cause of a connection context canceled because the connection closed. */
export const CONN_CLOSED: CanceledError = new CanceledError("connection closed");
/** Cause of a request cut because the client reads the response too slowly. */
export const TOO_SLOW_READER: CanceledError = new CanceledError(
  "client reads the response below minResponseRate",
);

/** Whether an I/O error means the peer went away: routine, not worth a log line. */
export function peerGone(e: unknown): boolean {
  return e instanceof Deno.errors.BrokenPipe || e instanceof Deno.errors.ConnectionReset ||
    e instanceof Deno.errors.ConnectionAborted || e instanceof Deno.errors.NotConnected;
}

/** The body of a refusal: the reason, one line of plain text. */
export function refusalBody(e: HttpError): string {
  return `${e.message}\n`;
}

/** Header fields of a refusal, before framing (protocols add their own). */
export const REFUSAL_TYPE = "text/plain; charset=utf-8";

/**
 * A `Response` for an {@linkcode HttpError} a handler let through (its body
 * broke our framing or limits): the status it names, `Connection: close`.
 */
export function refusalResponse(e: HttpError): Response {
  return new Response(refusalBody(e), {
    status: e.status,
    headers: { "content-type": REFUSAL_TYPE, connection: "close" },
  });
}

/** The response of last resort, when `onError` itself failed. */
export function internalError(): Response {
  return new Response("Internal Server Error", {
    status: 500,
    headers: { "content-type": REFUSAL_TYPE },
  });
}
