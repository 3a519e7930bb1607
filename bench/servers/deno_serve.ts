// Deno.serve benchmark server.
//
//   deno run -A bench/servers/deno_serve.ts --port=0
//
// Prints `READY Deno.serve http://127.0.0.1:<port>` once listening.

import { TENANT } from "./payloads.mjs";
import { announce, route, serverFlags } from "./shared.ts";

const { port, hostname } = serverFlags();

Deno.serve({
  port,
  hostname,
  onListen: (addr) => announce("Deno.serve", addr),
}, (req) => route(req, TENANT));
