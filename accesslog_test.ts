// Copyright 2026 the connctx authors. MIT license.
// Access logs: the pure formatters (Combined Log Format, JSON lines), the
// option's modes, and — through `serve` — one entry per request after its
// response is finished, with per-connection request ids.

import assert from "node:assert/strict";
import {
  type AccessLogEntry,
  accessLogFor,
  type AccessLogOption,
  type AccessRecord,
  formatCombined,
  formatJson,
  toEntry,
} from "./_accesslog.ts";
import { get, LOOPBACK, portOf, RawClient, within } from "./_test_http.ts";
import { serve, type ServeOptions } from "./mod.ts";

const ENTRY: AccessLogEntry = {
  time: Date.UTC(2000, 9, 10, 13, 55, 36),
  remoteAddr: "127.0.0.1",
  remotePort: 40000,
  method: "GET",
  target: "/apache_pb.gif",
  protocol: "HTTP/1.0",
  status: 200,
  bytes: 2326,
  referer: "http://www.example.com/start.html",
  userAgent: "Mozilla/4.08 [en] (Win98; I ;Nav)",
  durationMs: 12.3456789,
  connId: 5,
  requestId: "5-3",
};

function record(over: Partial<AccessRecord> = {}): AccessRecord {
  return {
    start: ENTRY.time,
    duration: 1,
    conn: { id: 9, remoteAddr: { transport: "tcp", hostname: "10.0.0.1", port: 1234 } },
    seq: 4,
    method: "GET",
    target: "/",
    protocol: "HTTP/1.1",
    status: 200,
    bytes: 5,
    referer: null,
    userAgent: null,
    ...over,
  };
}

Deno.test("formatCombined: Apache's combined example, byte for byte", () => {
  assert.equal(
    formatCombined(ENTRY),
    '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326 ' +
      '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
  );
});

Deno.test("formatCombined: '-' for no bytes, no referer, no user agent", () => {
  const line = formatCombined({ ...ENTRY, bytes: 0, referer: null, userAgent: "" });
  assert.match(line, / 200 - "-" "-"$/);
});

Deno.test("formatCombined: client-controlled fields cannot forge structure", () => {
  const line = formatCombined({
    ...ENTRY,
    target: '/a"b\\c',
    referer: 'x" 200 1 "y',
    userAgent: "ua\r\n127.0.0.1 - - [forged]\x7fé",
  });
  assert.equal(line.split("\n").length, 1);
  assert.ok(line.includes('"GET /a\\"b\\\\c HTTP/1.0"'), line);
  assert.ok(line.includes('"x\\" 200 1 \\"y"'), line);
  assert.ok(line.endsWith('"ua\\x0d\\x0a127.0.0.1 - - [forged]\\x7f\\xe9"'), line);
  // Only the six quotes of the format itself remain unescaped.
  assert.equal(line.match(/(?<!\\)"/g)?.length, 6);
});

Deno.test("formatCombined: UTC time, zero-padded", () => {
  const line = formatCombined({ ...ENTRY, time: Date.UTC(2026, 0, 2, 3, 4, 5) });
  assert.ok(line.includes(" [02/Jan/2026:03:04:05 +0000] "), line);
});

Deno.test("formatJson: every field, ISO time, ms rounded to µs, one line", () => {
  const line = formatJson({ ...ENTRY, userAgent: 'a"\nb' });
  assert.equal(line.split("\n").length, 1);
  assert.deepEqual(JSON.parse(line), {
    time: "2000-10-10T13:55:36.000Z",
    remoteAddr: "127.0.0.1",
    remotePort: 40000,
    method: "GET",
    target: "/apache_pb.gif",
    protocol: "HTTP/1.0",
    status: 200,
    bytes: 2326,
    referer: "http://www.example.com/start.html",
    userAgent: 'a"\nb',
    durationMs: 12.346,
    connId: 5,
    requestId: "5-3",
  });
});

Deno.test("toEntry: request id, addresses of TCP and unix peers", () => {
  const tcp = toEntry(record());
  assert.equal(tcp.requestId, "9-4");
  assert.equal(tcp.connId, 9);
  assert.equal(tcp.remoteAddr, "10.0.0.1");
  assert.equal(tcp.remotePort, 1234);
  const unix = toEntry(record({ conn: { id: 2, remoteAddr: { transport: "unix", path: "" } } }));
  assert.equal(unix.remoteAddr, "-");
  assert.equal(unix.remotePort, undefined);
  const named = toEntry(record({
    conn: { id: 2, remoteAddr: { transport: "unix", path: "/run/app.sock" } },
  }));
  assert.equal(named.remoteAddr, "/run/app.sock");
});

Deno.test("accessLogFor: off is null; modes write one line to console.log", () => {
  assert.equal(accessLogFor(undefined), null);
  assert.equal(accessLogFor(false), null);
  assert.throws(() => accessLogFor("xml" as AccessLogOption), TypeError);
  const lines: unknown[] = [];
  const orig = console.log;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    accessLogFor(true)!(record());
    accessLogFor("combined")!(record());
    accessLogFor("json")!(record());
  } finally {
    console.log = orig;
  }
  assert.equal(lines[0], lines[1]);
  assert.equal(lines[0], formatCombined(toEntry(record())));
  assert.equal(lines[2], formatJson(toEntry(record())));
  const seen: AccessLogEntry[] = [];
  accessLogFor((e) => seen.push(e))!(record());
  assert.deepEqual(seen, [toEntry(record())]);
});

Deno.test("serve with accessLog: one entry per finished request, ids per connection", async () => {
  const entries: AccessLogEntry[] = [];
  let wanted = 0;
  let reached = Promise.withResolvers<void>();
  const until = (n: number) => {
    wanted = n;
    reached = Promise.withResolvers<void>();
    if (entries.length >= n) reached.resolve();
    return within(reached.promise, `${n} access log entries (have ${entries.length})`);
  };
  const options: ServeOptions & { accessLog: AccessLogOption } = {
    ...LOOPBACK,
    accessLog: (e) => {
      entries.push(e);
      if (entries.length >= wanted) reached.resolve();
    },
  };
  await using server = serve(options, (req) => {
    const path = new URL(req.url).pathname;
    if (path === "/missing") return new Response("not here", { status: 404 });
    return new Response("hello");
  });
  const t0 = Date.now();
  const c = await RawClient.connect(portOf(server));
  try {
    await c.send(get("/a?x=1", 'Referer: http://example.com/\r\nUser-Agent: test "agent"\r\n'));
    assert.equal((await c.read())?.status, 200);
    await c.send(get("/missing"));
    assert.equal((await c.read())?.status, 404);
    await until(2);
  } finally {
    c.close();
  }
  const [a, b] = entries;
  assert.equal(a.method, "GET");
  assert.equal(a.target, "/a?x=1");
  assert.equal(a.protocol, "HTTP/1.1");
  assert.equal(a.status, 200);
  assert.equal(a.bytes, 5);
  assert.equal(a.referer, "http://example.com/");
  assert.equal(a.userAgent, 'test "agent"');
  assert.equal(a.remoteAddr, "127.0.0.1");
  assert.equal(typeof a.remotePort, "number");
  assert.ok(a.durationMs >= 0);
  assert.ok(a.time >= t0 - 1000 && a.time <= Date.now(), `time ${a.time}`);
  assert.equal(b.status, 404);
  assert.equal(b.bytes, 8);
  assert.equal(b.referer, null);
  assert.equal(b.connId, a.connId, "same connection");
  assert.equal(a.requestId, `${a.connId}-1`);
  assert.equal(b.requestId, `${a.connId}-2`);
  assert.match(formatCombined(a), /^127\.0\.0\.1 - - \[.+\] "GET \/a\?x=1 HTTP\/1\.1" 200 5 /);

  // A new connection: a new id, its requests counted from 1.
  const res = await fetch(`http://127.0.0.1:${portOf(server)}/b`);
  await res.body?.cancel();
  await until(3);
  assert.notEqual(entries[2].connId, a.connId);
  assert.equal(entries[2].requestId, `${entries[2].connId}-1`);
});
