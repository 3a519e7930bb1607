// node:http benchmark server (plain Node 20, no dependencies).
//
//   node bench/servers/node_http.mjs --port=0
//
// Prints `READY node:http http://127.0.0.1:<port>` once listening.

import { createServer } from "node:http";
import { BIG_SIZE, ctxBody, ECHO_SIZE, HELLO, patternBytes, TENANT } from "./payloads.mjs";

/** @param {string} name */
function flag(name) {
  const prefix = `--${name}=`;
  return process.argv.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

const port = Number(flag("port") ?? process.env.PORT ?? 0);
const hostname = flag("hostname") ?? process.env.HOSTNAME ?? "127.0.0.1";

const HELLO_BUF = Buffer.from(HELLO);
const BIG = Buffer.from(patternBytes(BIG_SIZE).buffer);
const TEXT = "text/plain";
const OCTETS = "application/octet-stream";

/** Per-connection value, set when the socket is accepted (the natural way). */
const tenants = new WeakMap();

/**
 * @param {import("node:http").ServerResponse} res
 * @param {number} status
 * @param {string} type
 * @param {Buffer | Uint8Array} body
 */
function send(res, status, type, body) {
  res.writeHead(status, {
    "content-type": type,
    "content-length": body.byteLength,
  });
  res.end(body);
}

const server = createServer((req, res) => {
  switch (req.url) {
    case "/hello":
      return send(res, 200, TEXT, HELLO_BUF);
    case "/big":
      return send(res, 200, OCTETS, BIG);
    case "/echo": {
      /** @type {Buffer[]} */
      const chunks = [];
      req.on("data", (chunk) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks);
        if (body.byteLength !== ECHO_SIZE) {
          send(res, 400, TEXT, Buffer.from(`expected ${ECHO_SIZE} bytes`));
        } else {
          send(res, 200, OCTETS, body);
        }
      });
      return;
    }
    case "/ctx": {
      const h = req.headers;
      const body = ctxBody(
        h["user-agent"],
        /** @type {string | undefined} */ (h["accept"]),
        /** @type {string | undefined} */ (h["x-request-id"]),
        tenants.get(req.socket),
      );
      return send(res, 200, TEXT, Buffer.from(body));
    }
    case "/__gc": {
      // Only used by idle_memory.ts, which starts node with --expose-gc.
      if (typeof globalThis.gc !== "function") {
        return send(res, 501, TEXT, Buffer.from("gc not exposed"));
      }
      globalThis.gc();
      return send(res, 200, TEXT, Buffer.from("gc"));
    }
    default:
      return send(res, 404, TEXT, Buffer.from("not found"));
  }
});

server.on("connection", (socket) => tenants.set(socket, TENANT));
// Keep idle keep-alive connections open (idle_memory.ts holds them open);
// Node's default keepAliveTimeout of 5 s would close them.
server.keepAliveTimeout = 0;

server.listen(port, hostname, () => {
  const addr = /** @type {import("node:net").AddressInfo} */ (server.address());
  console.log(`READY node:http http://${hostname}:${addr.port}`);
});
