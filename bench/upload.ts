// Copyright 2026 the connctx authors. MIT license.
// A large upload streamed through a hashing handler uses bounded memory.
//
//   deno run -A bench/upload.ts [--mib=1024]
//
// Starts a connctx server in a child process whose handler hashes the
// request body as it streams (SHA-256, chunk by chunk), sends it `--mib` MiB
// with Content-Length from this process, and prints the server's RSS before
// and its peak RSS (VmHWM) after, with the throughput.

import { parseArgs } from "node:util";

const { values } = parseArgs({ args: Deno.args, options: { mib: { type: "string" } } });
const mib = Number(values.mib ?? 1024);

const SERVER = `
import { serve } from ${JSON.stringify(new URL("../server.ts", import.meta.url).href)};
import { createHash } from "node:crypto";
serve({ port: 0, hostname: "127.0.0.1", onListen: (a) => console.log("READY " + a.port) },
  async (req) => {
    const hash = createHash("sha256");
    let n = 0;
    for await (const chunk of req.body!) { hash.update(chunk); n += chunk.byteLength; }
    return new Response(n + " " + hash.digest("hex"));
  });
`;

const child = new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", "-"],
  stdin: "piped",
  stdout: "piped",
  stderr: "inherit",
}).spawn();
const w = child.stdin.getWriter();
await w.write(new TextEncoder().encode(SERVER));
await w.close();
const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let out = "";
while (!out.includes("\n")) {
  const r = await lines.read();
  if (r.done) throw new Error("server exited");
  out += r.value;
}
const port = Number(/READY (\d+)/.exec(out)![1]);

function status(field: string): number {
  const s = Deno.readTextFileSync(`/proc/${child.pid}/status`);
  return Number(new RegExp(`${field}:\\s+(\\d+)`).exec(s)![1]) / 1024;
}
const before = status("VmRSS");

const total = mib * 1024 * 1024;
const conn = await Deno.connect({ hostname: "127.0.0.1", port });
await conn.write(new TextEncoder().encode(
  `POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`,
));
const chunk = new Uint8Array(256 * 1024).fill(97);
const t0 = performance.now();
for (let sent = 0; sent < total;) {
  const part = chunk.subarray(0, Math.min(chunk.length, total - sent));
  let off = 0;
  while (off < part.length) off += await conn.write(part.subarray(off));
  sent += part.length;
}
let resp = "";
const buf = new Uint8Array(4096);
for (;;) {
  const n = await conn.read(buf);
  if (n === null) break;
  resp += new TextDecoder().decode(buf.subarray(0, n));
}
const secs = (performance.now() - t0) / 1000;
conn.close();
const peak = status("VmHWM");
child.kill();
await child.status;
await lines.cancel();

console.log(`response: ${resp.slice(resp.indexOf("\r\n\r\n") + 4)}`);
console.log(
  `${mib} MiB upload hashed in ${secs.toFixed(1)} s (${(mib / secs).toFixed(0)} MiB/s); ` +
    `server RSS before ${before.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB`,
);
