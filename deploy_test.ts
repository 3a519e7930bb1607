// Copyright 2026 the connctx authors. MIT license.
// Deployment tests against real peers: TLS (openssl-made certificates, curl
// and fetch), unix sockets (curl), the PROXY protocol behind haproxy (v1 and
// v2), and nginx as a keep-alive reverse proxy.
//
//   deno test -A deploy_test.ts
//
// Peers run as child processes with their configuration, pid file and sockets
// in a fresh temporary directory, on free loopback ports; they are stopped in
// `finally` (SIGTERM, then SIGKILL). A test whose binary is missing skips with
// a message; CI installs them (.ci/run).

import assert from "node:assert/strict";
import { type ConnInfo, type ConnState, serve, type ServeOptions } from "./server.ts";
import { get, portOf, RawClient, testCerts, within } from "./_test_http.ts";

// ---------------------------------------------------------------------------
// Helpers

const SEARCH_PATH = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/sbin"];

/** The absolute path of `name`, or null (and a message) if it is not installed. */
function which(name: string): string | null {
  for (const dir of SEARCH_PATH) {
    if (dir === "") continue;
    try {
      const path = `${dir}/${name}`;
      if (Deno.statSync(path).isFile) return path;
    } catch { /* not here */ }
  }
  return null;
}

const bins = {
  curl: which("curl"),
  openssl: which("openssl"),
  haproxy: which("haproxy"),
  nginx: which("nginx"),
};

function skipMessage(need: (keyof typeof bins)[]): string | null {
  const missing = need.filter((b) => bins[b] === null);
  if (missing.length === 0) return null;
  return `SKIPPED: ${missing.join(", ")} not installed (apt-get install -y ${missing.join(" ")})`;
}

/** `Deno.test` that skips, with a console message, when a binary is missing. */
function peerTest(name: string, need: (keyof typeof bins)[], fn: () => Promise<void>): void {
  const skip = skipMessage(need);
  Deno.test({
    name,
    ignore: skip !== null,
    fn,
  });
  if (skip !== null) console.warn(`deploy_test: "${name}": ${skip}`);
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Runs a command to completion; throws with its output if it fails. */
async function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}:\n${text}\n${
        new TextDecoder().decode(out.stderr)
      }`,
    );
  }
  return text;
}

/** A free loopback TCP port (bound and released; a peer that loses the race
 * fails to start, and the caller retries with another). */
function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = portOf(l.addr);
  l.close();
  return port;
}

/** A child process with its output collected; stopped on dispose. */
class Peer implements AsyncDisposable {
  readonly child: Deno.ChildProcess;
  readonly name: string;
  #out = "";
  #reading: Promise<void>;
  exited = false;
  readonly status: Promise<Deno.CommandStatus>;

  constructor(name: string, cmd: string, args: string[]) {
    this.name = name;
    this.child = new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const collect = async (s: ReadableStream<Uint8Array>) => {
      for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
        if (this.#out.length < 64 * 1024) this.#out += chunk;
      }
    };
    this.#reading = Promise.all([collect(this.child.stdout), collect(this.child.stderr)]).then(
      () => {},
    );
    this.status = this.child.status.then((s) => {
      this.exited = true;
      return s;
    });
  }

  get output(): string {
    return this.#out;
  }

  /** Waits (bounded retries) until `port` accepts connections. */
  async waitForPort(port: number, hostname = "127.0.0.1"): Promise<void> {
    for (let i = 0; i < 200; i++) {
      if (this.exited) {
        await this.#reading;
        throw new Error(`${this.name} exited during startup:\n${this.#out}`);
      }
      try {
        const c = await Deno.connect({ hostname, port });
        c.close();
        return;
      } catch {
        await delay(25);
      }
    }
    throw new Error(`${this.name} did not listen on ${hostname}:${port}:\n${this.#out}`);
  }

  async stop(): Promise<void> {
    if (!this.exited) {
      try {
        this.child.kill("SIGTERM");
      } catch { /* already gone */ }
      const t = setTimeout(() => {
        try {
          this.child.kill("SIGKILL");
        } catch { /* already gone */ }
      }, 5_000);
      await this.status;
      clearTimeout(t);
    }
    await this.#reading;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** A temporary directory, removed on dispose. */
async function tempDir(prefix: string): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: `connctx-${prefix}-` });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }).catch(() => {}),
  };
}

/** What the test handlers answer: what the server knows about a request. */
interface Seen {
  url: string;
  remote: Deno.Addr;
  local: Deno.Addr;
  alpn: string | null | undefined;
  conn: number;
}

function seen(req: Request, info: { remoteAddr: Deno.Addr; conn: ConnInfo }): Response {
  const body: Seen = {
    url: req.url,
    remote: info.remoteAddr,
    local: info.conn.localAddr,
    alpn: info.conn.tls === undefined ? undefined : info.conn.tls.alpnProtocol,
    conn: info.conn.id,
  };
  return Response.json(body);
}

// ---------------------------------------------------------------------------
// TLS

/** The shared test certificates, with the CA also written to `dir` (for
 * curl's `--cacert`). */
async function makeCerts(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const certs = await testCerts();
  assert.ok(certs !== null, "openssl could not make the test certificates");
  await Deno.writeTextFile(`${dir}/ca.pem`, certs.ca);
  return certs;
}

peerTest("TLS: fetch with the test CA sees https URLs and the negotiated ALPN", [
  "openssl",
], async () => {
  await using dir = await tempDir("tls");
  const { ca, cert, key } = await makeCerts(dir.path);
  const server = serve({ port: 0, hostname: "127.0.0.1", cert, key, onListen() {} }, seen);
  const port = portOf(server.addr);
  const client = Deno.createHttpClient({ caCerts: [ca] });
  try {
    for (const host of ["localhost", "127.0.0.1"]) {
      const res = await fetch(`https://${host}:${port}/tls?x=1`, { client });
      assert.equal(res.status, 200);
      const body: Seen = await res.json();
      assert.equal(body.url, `https://${host}:${port}/tls?x=1`);
      assert.equal(body.alpn, "h2", "fetch offers h2: HTTP/2 is negotiated");
      assert.equal((body.remote as Deno.NetAddr).hostname, "127.0.0.1");
    }
    // Without the CA the certificate is not trusted.
    await assert.rejects(fetch(`https://localhost:${port}/`));
  } finally {
    client.close();
    await server.shutdown();
  }
});

peerTest("TLS: curl --cacert, with and without ALPN", ["openssl", "curl"], async () => {
  await using dir = await tempDir("tls");
  const { cert, key } = await makeCerts(dir.path);
  const states: ConnState[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    cert,
    key,
    onListen() {},
    connState: (_c, s) => states.push(s),
  }, seen);
  const port = portOf(server.addr);
  const curl = (...args: string[]) =>
    run(bins.curl!, [
      "-sS",
      "--max-time",
      "10",
      "--cacert",
      `${dir.path}/ca.pem`,
      "--resolve",
      `localhost:${port}:127.0.0.1`,
      ...args,
    ]);
  try {
    const a: Seen = JSON.parse(await curl(`https://localhost:${port}/a`));
    assert.equal(a.url, `https://localhost:${port}/a`);
    assert.equal(a.alpn, "h2", "curl offers h2 and http/1.1; the server picks h2");
    const a1: Seen = JSON.parse(await curl("--http1.1", `https://localhost:${port}/a1`));
    assert.equal(a1.alpn, "http/1.1", "curl --http1.1 offers http/1.1 only");
    const b: Seen = JSON.parse(await curl("--no-alpn", `https://localhost:${port}/b`));
    assert.equal(b.url, `https://localhost:${port}/b`);
    assert.equal(b.alpn, null, "no ALPN offered: alpnProtocol is null");
    // Two URLs on one curl: one TLS connection, kept alive.
    const out = await curl(
      "-w",
      "\\n%{num_connects}\\n",
      `https://localhost:${port}/c`,
      `https://localhost:${port}/d`,
    );
    const [c, n1, d, n2] = out.trim().split("\n");
    assert.equal(JSON.parse(c).conn, JSON.parse(d).conn);
    assert.deepEqual([n1, n2], ["1", "0"]);
    // A client that is not speaking TLS is dropped without reaching HTTP.
    const plain = await RawClient.connect(port);
    try {
      await plain.send(get("/"));
      assert.equal(await plain.read().catch(() => null), null);
    } finally {
      plain.close();
    }
  } finally {
    await server.shutdown();
  }
  assert.ok(states.includes("closed"));
});

// ---------------------------------------------------------------------------
// Unix socket

peerTest("unix socket: curl --unix-socket, keep-alive across two requests", ["curl"], async () => {
  await using dir = await tempDir("unix");
  const path = `${dir.path}/connctx.sock`;
  const curl = (...args: string[]) =>
    run(bins.curl!, ["-sS", "--max-time", "10", "--unix-socket", path, ...args]);
  const states: ConnState[] = [];
  const server = serve({ path, onListen() {}, connState: (_c, s) => states.push(s) }, seen);
  try {
    assert.equal(server.addr.transport, "unix");
    assert.equal((server.addr as Deno.UnixAddr).path, path);
    const out = await curl("-w", "\\n", "http://localhost/one?x=1", "http://localhost/two");
    const [one, two] = out.trim().split("\n").map((l) => JSON.parse(l) as Seen);
    assert.equal(one.url, "http://localhost/one?x=1");
    assert.equal(two.url, "http://localhost/two");
    assert.equal(one.remote.transport, "unix");
    assert.equal(one.local.transport, "unix");
    assert.equal(one.conn, two.conn, "curl reused the connection");
  } finally {
    await server.shutdown();
  }
  assert.deepEqual(states, ["new", "active", "idle", "active", "idle", "closed"]);
  // The socket file goes with the listener, so a restart on the same path works.
  await assert.rejects(Deno.stat(path), Deno.errors.NotFound);
  const again = serve({ path, onListen() {} }, () => new Response("again"));
  try {
    const out = await curl("http://x/");
    assert.equal(out, "again");
  } finally {
    await again.shutdown();
  }
});

// ---------------------------------------------------------------------------
// PROXY protocol, without a proxy: exact bytes

/** Options with `proxyProtocol` (typed so that this file also compiles
 * against a server.ts without the option). */
function proxyOptions(
  extra: Partial<ServeOptions> = {},
): ServeOptions & { proxyProtocol: boolean } {
  return { port: 0, hostname: "127.0.0.1", onListen() {}, ...extra, proxyProtocol: true };
}

Deno.test("proxyProtocol: v1 and v2 headers set remoteAddr/localAddr; request bytes after the header are served", async () => {
  const states: ConnState[] = [];
  const server = serve(proxyOptions({ connState: (_c, s) => states.push(s) }), seen);
  const port = portOf(server.addr);
  const v2 = new Uint8Array([
    ...[0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a],
    0x21,
    0x21,
    0,
    36,
    ...[0x20, 0x01, 0x0d, 0xb8, ...new Array(11).fill(0), 0x07],
    ...[...new Array(15).fill(0), 1],
    0x9c,
    0x40, // 40000
    0x01,
    0xbb, // 443
  ]);
  const cases: { name: string; chunks: (string | Uint8Array)[]; remote: string; local: string }[] =
    [
      {
        name: "v1 TCP4, header and request in one write",
        chunks: ["PROXY TCP4 203.0.113.9 198.51.100.1 51000 443\r\n" + get("/v1")],
        remote: "203.0.113.9:51000",
        local: "198.51.100.1:443",
      },
      {
        name: "v1 TCP6, header split over writes",
        chunks: ["PROXY TCP6 2001:db8::", "42 ::1 6", "0000 8443\r", "\n", get("/v1-6")],
        remote: "2001:db8::42:60000",
        local: "::1:8443",
      },
      {
        name: "v2 TCP over IPv6, then the request",
        chunks: [v2.subarray(0, 10), v2.subarray(10), get("/v2")],
        remote: "2001:db8::7:40000",
        local: "::1:443",
      },
    ];
  try {
    for (const t of cases) {
      const c = await RawClient.connect(port);
      try {
        for (const chunk of t.chunks) await c.send(chunk);
        const res = await c.read();
        assert.equal(res?.status, 200, t.name);
        const body: Seen = JSON.parse(res!.body);
        const r = body.remote as Deno.NetAddr;
        const l = body.local as Deno.NetAddr;
        assert.equal(`${r.hostname}:${r.port}`, t.remote, t.name);
        assert.equal(`${l.hostname}:${l.port}`, t.local, t.name);
        // The second request on the connection needs no header.
        await c.send(get("/again"));
        const again: Seen = JSON.parse((await c.read())!.body);
        assert.deepEqual(again.remote, body.remote);
      } finally {
        c.close();
      }
    }
  } finally {
    await server.shutdown();
  }
  assert.equal(states.filter((s) => s === "new").length, 3);
});

Deno.test("proxyProtocol: a connection without a valid header is closed before HTTP, unreported", async () => {
  const states: ConnState[] = [];
  let calls = 0;
  const errors: string[] = [];
  const origError = console.error;
  const server = serve(proxyOptions({ connState: (_c, s) => states.push(s) }), () => {
    calls++;
    return new Response("no");
  });
  const port = portOf(server.addr);
  console.error = (...args: unknown[]) => errors.push(args.map(String).join(" "));
  try {
    for (
      const bytes of [
        get("/"), // plain HTTP
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n" + get("/"), // bad port
        "PROXY UNKNOWN " + "x".repeat(200), // longer than 107 bytes, no CRLF
      ]
    ) {
      const c = await RawClient.connect(port);
      try {
        await c.send(bytes);
        assert.equal(await c.read().catch(() => null), null);
      } finally {
        c.close();
      }
    }
  } finally {
    console.error = origError;
    await server.shutdown();
  }
  assert.equal(calls, 0);
  assert.deepEqual(states, [], "connections without a header reached connState");
  assert.equal(errors.length, 3);
  for (const e of errors) assert.match(e, /PROXY protocol header/);
});

Deno.test("proxyProtocol: cannot be combined with TLS", () => {
  assert.throws(
    () => serve(proxyOptions({ cert: "x", key: "y" }), () => new Response()),
    TypeError,
  );
});

// ---------------------------------------------------------------------------
// haproxy in front: send-proxy (v1) and send-proxy-v2

peerTest("haproxy send-proxy / send-proxy-v2: the handler sees the original client address", [
  "haproxy",
  "curl",
], async () => {
  await using dir = await tempDir("haproxy");
  // haproxy's health checks, by path: /healthz-v1 and /healthz-v2.
  const health = new Map<string, Seen>();
  let sawHealth!: () => void;
  const healthSeen = new Promise<void>((r) => (sawHealth = r));
  const server = serve(proxyOptions(), (req, info) => {
    const path = new URL(req.url).pathname;
    if (path.startsWith("/healthz")) {
      health.set(path, JSON.parse(JSON.stringify({ url: req.url, remote: info.remoteAddr })));
      if (health.size === 2) sawHealth();
    }
    return seen(req, info);
  });
  const backend = portOf(server.addr);
  let ipv6 = true;
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
  } catch {
    ipv6 = false;
    console.warn("deploy_test: no IPv6 loopback; skipping the [::1] frontends");
  }
  let haproxy: Peer | null = null;
  const ports = { v1: 0, v2: 0, v1six: 0, v2six: 0 };
  try {
    // Start haproxy; retry with other ports if one was taken meanwhile.
    for (let attempt = 0; attempt < 3 && haproxy === null; attempt++) {
      ports.v1 = freePort();
      ports.v2 = freePort();
      ports.v1six = ipv6 ? freePort("::1") : 0;
      ports.v2six = ipv6 ? freePort("::1") : 0;
      const cfg = `${dir.path}/haproxy.cfg`;
      // A frontend and its backend for one PROXY protocol version.
      const proxied = (v: 1 | 2, mode: "http" | "tcp", send: string, about: string) => {
        const [port, six] = v === 1 ? [ports.v1, ports.v1six] : [ports.v2, ports.v2six];
        return `# v${v}, ${about}
frontend v${v}
  mode ${mode}
  bind 127.0.0.1:${port}
  ${ipv6 ? `bind [::1]:${six}` : ""}
  default_backend app_v${v}

backend app_v${v}
  mode ${mode}
  option httpchk GET /healthz-v${v}
  server s${v} 127.0.0.1:${backend} ${send} check inter 100ms
`;
      };
      const settings = `global
  pidfile ${dir.path}/haproxy.pid
  maxconn 200

defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
`;
      await Deno.writeTextFile(
        cfg,
        [
          settings,
          proxied(
            1,
            "http",
            "send-proxy",
            "HTTP mode (haproxy parses HTTP, opens its own server connections)",
          ),
          proxied(2, "tcp", "send-proxy-v2", "TCP mode (bytes relayed as they are)"),
        ].join("\n"),
      );
      const p = new Peer("haproxy", bins.haproxy!, ["-db", "-f", cfg]);
      try {
        await p.waitForPort(ports.v1);
        await p.waitForPort(ports.v2);
        if (ipv6) {
          await p.waitForPort(ports.v1six, "::1");
          await p.waitForPort(ports.v2six, "::1");
        }
        haproxy = p;
      } catch (e) {
        await p.stop();
        if (attempt === 2) throw e;
      }
    }

    // curl, with its source port reported back: the handler sees exactly it.
    for (const [version, port] of [["v1", ports.v1], ["v2", ports.v2]] as const) {
      const out = await run(bins.curl!, [
        "-sS",
        "--max-time",
        "10",
        "-w",
        "\\n%{local_ip} %{local_port}",
        `http://127.0.0.1:${port}/via-${version}`,
      ]);
      const [json, local] = out.split("\n");
      const body: Seen = JSON.parse(json);
      const r = body.remote as Deno.NetAddr;
      assert.equal(`${r.hostname} ${r.port}`, local, `${version}: remote address`);
      const l = body.local as Deno.NetAddr;
      assert.equal(`${l.hostname}:${l.port}`, `127.0.0.1:${port}`, `${version}: local address`);
      assert.equal(new URL(body.url).pathname, `/via-${version}`);
    }

    // A raw keep-alive client through the TCP-mode (v2) frontend: one
    // backend connection, every request sees our address.
    const c = await RawClient.connect(ports.v2);
    try {
      const me = { ...c.conn.localAddr };
      const ids = new Set<number>();
      for (let i = 0; i < 3; i++) {
        await c.send(get(`/raw${i}`));
        const body: Seen = JSON.parse((await c.read())!.body);
        assert.deepEqual(body.remote, me);
        ids.add(body.conn);
      }
      assert.equal(ids.size, 1);
    } finally {
      c.close();
    }

    // IPv6 clients: PROXY TCP6 (v1) and AF_INET6 (v2).
    if (ipv6) {
      for (const port of [ports.v1six, ports.v2six]) {
        const out = await run(bins.curl!, [
          "-sS",
          "--max-time",
          "10",
          "-w",
          "\\n%{local_port}",
          `http://[::1]:${port}/six`,
        ]);
        const [json, localPort] = out.split("\n");
        const body: Seen = JSON.parse(json);
        assert.deepEqual(body.remote, {
          transport: "tcp",
          hostname: "::1",
          port: Number(localPort),
        });
        assert.deepEqual(body.local, { transport: "tcp", hostname: "::1", port });
      }
    }

    // haproxy's health checks arrive with PROXY headers too (v1 with the
    // check connection's own addresses, v2 LOCAL: the real endpoints stand)
    // and are answered.
    await within(healthSeen, "haproxy health checks", 10_000);
    for (const h of health.values()) {
      assert.equal((h.remote as Deno.NetAddr).hostname, "127.0.0.1");
    }
  } finally {
    await haproxy?.stop();
    await server.shutdown();
  }
});

// ---------------------------------------------------------------------------
// nginx as a keep-alive reverse proxy

peerTest("nginx keep-alive reverse proxy: 1000 requests, concurrency 10, no error", [
  "nginx",
], async () => {
  await using dir = await tempDir("nginx");
  const conns = new Set<number>();
  let closedUnexpectedly = 0;
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    connState: (c, s) => {
      if (s === "new") conns.add(c.id);
    },
  }, async (req, info) => {
    const url = new URL(req.url);
    if (req.method === "POST") {
      const text = await req.text();
      return new Response(`${url.searchParams.get("i")}:${text.length}:${text.slice(0, 8)}`);
    }
    if (req.headers.get("connection") !== null) closedUnexpectedly++;
    return new Response(`${url.searchParams.get("i")}:${info.conn.id}`);
  });
  const backend = portOf(server.addr);
  let nginx: Peer | null = null;
  let port = 0;
  try {
    for (let attempt = 0; attempt < 3 && nginx === null; attempt++) {
      port = freePort();
      const cfg = `${dir.path}/nginx.conf`;
      await Deno.writeTextFile(
        cfg,
        `daemon off;
master_process on;
worker_processes 1;
pid ${dir.path}/nginx.pid;
error_log stderr warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir.path}/body;
  proxy_temp_path ${dir.path}/proxy;
  fastcgi_temp_path ${dir.path}/fastcgi;
  uwsgi_temp_path ${dir.path}/uwsgi;
  scgi_temp_path ${dir.path}/scgi;
  upstream app {
    server 127.0.0.1:${backend};
    keepalive 16;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`,
      );
      const p = new Peer("nginx", bins.nginx!, ["-p", dir.path, "-c", cfg, "-e", "stderr"]);
      try {
        await p.waitForPort(port);
        nginx = p;
      } catch (e) {
        await p.stop();
        if (attempt === 2) throw e;
      }
    }

    const N = 1000;
    const CONCURRENCY = 10;
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: CONCURRENCY });
    let next = 0;
    let failures = 0;
    const worker = async () => {
      while (next < N) {
        const i = next++;
        const post = i % 5 === 0;
        const body = post ? `payload-${i}-`.repeat(50) : undefined;
        const res = await fetch(`http://127.0.0.1:${port}/r?i=${i}`, {
          client,
          method: post ? "POST" : "GET",
          body,
        });
        const text = await res.text();
        const ok = res.status === 200 &&
          (post ? text === `${i}:${body!.length}:${body!.slice(0, 8)}` : text.startsWith(`${i}:`));
        if (!ok) failures++;
      }
    };
    try {
      await within(
        Promise.all(Array.from({ length: CONCURRENCY }, worker)),
        "1000 requests through nginx",
        40_000,
      );
    } finally {
      client.close();
    }
    assert.equal(failures, 0);
    assert.equal(closedUnexpectedly, 0, "nginx forwarded a Connection header");
    // Upstream keep-alive: a handful of backend connections, not one per request.
    assert.ok(conns.size <= 2 * CONCURRENCY, `${conns.size} backend connections for ${N} requests`);
    assert.ok(server.openConnections > 0, "nginx keeps idle upstream connections");
    assert.doesNotMatch(nginx!.output, /\[(error|crit|alert|emerg)\]/);
  } finally {
    await nginx?.stop();
    await server.shutdown();
  }
});
