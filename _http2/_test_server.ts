// Copyright 2026 the connctx authors. MIT license.
// Test-only: the server HTTP/2 tests run against — the real `serve()` on
// 127.0.0.1, port 0, with HTTP/2 tuning passed as its `http2` option.

import type { Context } from "../_context.ts";
import { serve, type ServeHandler, type ServeOptions } from "../server.ts";
import type { Http2Options } from "./conn.ts";

/** What tests use of a server. */
export interface TestServer extends AsyncDisposable {
  readonly addr: Deno.NetAddr;
  readonly port: number;
  readonly finished: Promise<void>;
  readonly openConnections: number;
  readonly activeRequests: number;
  shutdown(ctx?: Context): Promise<void>;
  close(): void;
  /** Always true: the real `serve()`. */
  readonly real: boolean;
}

/** Options: `ServeOptions` plus HTTP/2 tuning. */
export type H2ServeOptions = ServeOptions & { http2Options?: Http2Options };

/**
 * Starts a server for HTTP/2 tests on 127.0.0.1, port 0.
 *
 * @param options Serve options (TLS with `cert`/`key`).
 * @param handler The handler.
 * @returns The server.
 */
export function h2serve(options: H2ServeOptions, handler: ServeHandler): Promise<TestServer> {
  const { http2Options, ...rest } = options;
  const s = serve(
    { port: 0, hostname: "127.0.0.1", onListen() {}, ...rest, http2: http2Options ?? true },
    handler as ServeHandler<Deno.NetAddr>,
  );
  return Promise.resolve({
    addr: s.addr as Deno.NetAddr,
    port: (s.addr as Deno.NetAddr).port,
    finished: s.finished,
    get openConnections() {
      return s.openConnections;
    },
    get activeRequests() {
      return s.activeRequests;
    },
    shutdown: (ctx?: Context) => s.shutdown(ctx),
    close: () => s.close(),
    real: true,
    [Symbol.asyncDispose]: () => s.shutdown(),
  });
}
