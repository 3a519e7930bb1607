// connctx benchmark server.
//
//   deno run -A bench/servers/connctx.ts --port=0 [--ctx-values=N]
//
// --ctx-values=N (0, 1 or 2; default 0) installs a `connContext` that layers N
// `withValue` values on every connection's context. /ctx reads the first one
// (the tenant) back through `info.context.value(key)`.
//
// Prints `READY connctx http://127.0.0.1:<port>` once listening.

import { ContextKey, withValue } from "../../context.ts";
import { serve } from "../../server.ts";
import { TENANT } from "./payloads.mjs";
import { announce, argFlag, route, serverFlags } from "./shared.ts";

const TENANT_KEY = new ContextKey<string>("tenant");
const CONN_ID_KEY = new ContextKey<string>("conn-id");

const { port, hostname } = serverFlags();
const ctxValues = Number(argFlag("ctx-values") ?? 0);
if (![0, 1, 2].includes(ctxValues)) {
  throw new Error(`--ctx-values must be 0, 1 or 2, got ${ctxValues}`);
}

let connections = 0;

serve({
  port,
  hostname,
  onListen: (addr) => announce("connctx", addr),
  // Leave `connContext` out entirely for the baseline (--ctx-values=0).
  ...(ctxValues === 0 ? {} : {
    connContext: (ctx) => {
      const withTenant = withValue(ctx, TENANT_KEY, TENANT);
      return ctxValues === 1 ? withTenant : withValue(withTenant, CONN_ID_KEY, `c${++connections}`);
    },
  }),
}, (req, info) => route(req, info.context.value(TENANT_KEY)));
