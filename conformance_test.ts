// Copyright 2026 the connctx authors. MIT license.
// End-to-end RFC 9112 conformance over TCP with raw sockets: response framing
// (HEAD, 204, 304, Date, Connection), keep-alive and HTTP/1.0, errors,
// pipelining, Expect: 100-continue, request bodies (short, unread, too
// large), and the four timeouts. Every test also checks that the server goes
// on serving other connections.
//
//   deno test -A conformance_test.ts
//
// Every wait is bounded (a broken server fails a test, never hangs it), and no
// assertion depends on how long something took.

import assert from "node:assert/strict";
import {
  type ConnInfo,
  type ConnState,
  serve,
  type ServeHandler,
  type ServeOptions,
  type Server,
} from "./server.ts";
import { Client, latin1, portOf, WAIT, within } from "./_test_http.ts";

// ---------------------------------------------------------------------------
// Server helpers

/** Handler errors seen by `onError`, per server. */
const errors = new WeakMap<Server, unknown[]>();

function start(handler: ServeHandler, opts: ServeOptions = {}): Server {
  const seen: unknown[] = [];
  const server = serve({
    port: 0,
    hostname: "127.0.0.1",
    onListen() {},
    onError(e) {
      seen.push(e);
      return new Response("handler failed", { status: 500 });
    },
    ...opts,
  }, handler);
  errors.set(server, seen);
  return server;
}

/** Echoes method, path and body: `GET /x <body>`. */
const echo: ServeHandler = async (req) => {
  const body = req.body === null ? "" : await req.text();
  return new Response(`${req.method} ${new URL(req.url).pathname} ${body}`);
};

/** A good request on a fresh connection is answered. */
async function assertServes(port: number): Promise<void> {
  await using c = await Client.open(port);
  const r = await c.request("GET /alive HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  assert.equal(r.status, 200, `a fresh connection got ${r.status} ${r.text}`);
}

/** Resolves when the server reports a connection `closed`. */
class Closed {
  #waiters: (() => void)[] = [];
  count = 0;
  readonly connState = (_c: ConnInfo, s: ConnState): void => {
    if (s !== "closed") return;
    this.count++;
    for (const w of this.#waiters.splice(0)) w();
  };
  /** Waits until `n` connections have closed in all. */
  async until(n: number, ms = WAIT): Promise<void> {
    while (this.count < n) {
      await within(new Promise<void>((r) => this.#waiters.push(r)), `${n} closed connections`, ms);
    }
  }
}

const GET = (path = "/", extra = "") => `GET ${path} HTTP/1.1\r\nHost: x\r\n${extra}\r\n`;
const IMF_FIXDATE =
  /^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

// ---------------------------------------------------------------------------
// Response framing

Deno.test("conformance: HEAD has no body but keeps Content-Length", async () => {
  await using server = start(() => new Response("hello"));
  await using c = await Client.open(portOf(server));
  // HEAD then GET in one write: the GET's response must follow the HEAD's
  // head directly, so no body bytes were sent for HEAD.
  await c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + GET());
  const h = await c.response({ head: true });
  assert.equal(h.status, 200);
  assert.equal(h.get("content-length"), "5");
  const g = await c.response();
  assert.equal(g.text, "hello");
  assert.equal(c.buffered.length, 0);
});

Deno.test("conformance: HEAD with a streamed body sends the head only", async () => {
  await using server = start(() =>
    new Response(
      new ReadableStream({
        pull(ctrl) {
          ctrl.enqueue(new Uint8Array(10));
        },
      }),
      { headers: { "content-length": "1000" } },
    )
  );
  await using c = await Client.open(portOf(server));
  await c.send("HEAD / HTTP/1.1\r\nHost: x\r\n\r\n" + "HEAD /2 HTTP/1.1\r\nHost: x\r\n\r\n");
  const a = await c.response({ head: true });
  assert.equal(a.get("content-length"), "1000");
  const b = await c.response({ head: true });
  assert.equal(b.status, 200);
  assert.equal(c.buffered.length, 0);
});

Deno.test("conformance: 204 and 304 have no body and no framing surprises", async () => {
  await using server = start((req) => {
    const p = new URL(req.url).pathname;
    if (p === "/204") return new Response(null, { status: 204 });
    if (p === "/304") {
      return new Response(null, { status: 304, headers: { etag: '"x"', "content-length": "42" } });
    }
    return new Response("after");
  });
  await using c = await Client.open(portOf(server));
  await c.send(GET("/204") + GET("/304") + GET("/after"));
  const a = await c.response();
  assert.equal(a.status, 204);
  assert.equal(a.get("content-length"), null);
  assert.equal(a.get("transfer-encoding"), null);
  const b = await c.response();
  assert.equal(b.status, 304);
  assert.equal(b.get("etag"), '"x"');
  assert.equal(b.get("transfer-encoding"), null);
  // A 304 may carry the Content-Length the 200 would have had (RFC 9110 §8.6).
  assert.ok(b.get("content-length") === null || b.get("content-length") === "42");
  const d = await c.response();
  assert.equal(d.text, "after");
});

Deno.test("conformance: every response has a Date header (handler and error responses)", async () => {
  await using server = start(() => new Response("x"));
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    const r = await c.request(GET());
    assert.match(r.get("date") ?? "", IMF_FIXDATE);
    assert.equal(r.headers.filter(([k]) => k === "date").length, 1);
  }
  {
    await using c = await Client.open(port);
    const r = await c.request("GET / HTTP/1.1\r\n\r\n"); // no Host: 400
    assert.equal(r.status, 400);
    assert.match(r.get("date") ?? "", IMF_FIXDATE);
  }
  {
    // A handler's own Date is kept, not doubled.
    await using s2 = start(() =>
      new Response("x", { headers: { date: "Sun, 06 Nov 1994 08:49:37 GMT" } })
    );
    await using c = await Client.open(portOf(s2));
    const r = await c.request(GET());
    assert.deepEqual(r.headers.filter(([k]) => k === "date"), [[
      "date",
      "Sun, 06 Nov 1994 08:49:37 GMT",
    ]]);
  }
});

Deno.test("conformance: large response heads with small bodies arrive intact", async () => {
  await using server = start((req) => {
    const n = Number(new URL(req.url).searchParams.get("n"));
    return new Response("hello", { headers: { "x-big": "h".repeat(n) } });
  });
  await using c = await Client.open(portOf(server));
  for (const n of [100, 1900, 2100, 5000, 16_000, 17_000, 40_000]) {
    const r = await c.request(GET(`/?n=${n}`));
    assert.equal(r.get("x-big")?.length, n);
    assert.equal(r.text, "hello", `body after a ${n}-byte header`);
  }
});

Deno.test("conformance: framing headers from the handler are replaced", async () => {
  await using server = start(() =>
    new Response("hello", {
      headers: {
        "transfer-encoding": "chunked",
        "content-length": "999",
        "keep-alive": "timeout=1",
      },
    })
  );
  await using c = await Client.open(portOf(server));
  const r = await c.request(GET());
  assert.equal(r.get("content-length"), "5");
  assert.equal(r.get("transfer-encoding"), null);
  assert.equal(r.get("keep-alive"), null);
  assert.equal(r.text, "hello");
});

Deno.test("conformance: streamed responses are chunked for 1.1, close-delimited for 1.0", async () => {
  const handler = () => {
    let i = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(ctrl) {
          await Promise.resolve();
          if (i === 3) return ctrl.close();
          ctrl.enqueue(new TextEncoder().encode(`part${i++};`));
          // Let the writer see a stream that is not yet complete.
          await new Promise((r) => setTimeout(r, 1));
        },
      }),
    );
  };
  await using server = start(handler);
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    const r = await c.request(GET());
    assert.equal(r.get("transfer-encoding"), "chunked");
    assert.equal(r.text, "part0;part1;part2;");
    // Still usable.
    assert.equal((await c.request(GET())).text, "part0;part1;part2;");
  }
  {
    await using c = await Client.open(port);
    const r = await c.request("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal(r.get("transfer-encoding"), null);
    assert.equal(r.get("connection")?.toLowerCase(), "close");
    assert.equal(r.text, "part0;part1;part2;");
    assert.ok(c.eof);
  }
});

Deno.test("conformance: a streamed body that errors ends without its last chunk, then close", async () => {
  const logged: unknown[] = [];
  const realError = console.error;
  console.error = (...a: unknown[]) => void logged.push(a);
  try {
    await using server = start(() => {
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(ctrl) {
            await new Promise((r) => setTimeout(r, 1));
            if (i++ === 2) throw new Error("backend went away");
            ctrl.enqueue(new TextEncoder().encode("data;"));
          },
        }),
      );
    });
    await using c = await Client.open(portOf(server));
    await c.send(GET());
    await assert.rejects(c.response(), /closed in chunk size/);
    assert.ok(c.eof);
  } finally {
    console.error = realError;
  }
});

Deno.test("conformance: a streamed body never exceeds the Content-Length the handler set", async () => {
  const realError = console.error;
  console.error = () => {}; // the server may log the handler's mistake
  using _restore = { [Symbol.dispose]: () => void (console.error = realError) };
  await using server = start((req) => {
    const long = new URL(req.url).pathname === "/long";
    let i = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        async pull(ctrl) {
          await new Promise((r) => setTimeout(r, 1));
          if (i++ === 2) return ctrl.close();
          ctrl.enqueue(new TextEncoder().encode(long ? "hello" : "hi"));
        },
      }),
      { headers: { "content-length": "6" } },
    );
  });
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    await c.send(GET("/long") + GET("/next"));
    const r = await c.response();
    assert.equal(r.text, "helloh");
    // Nothing more: the extra bytes would be read as the next response.
    assert.equal(latin1(await c.closed()), "");
  }
  {
    await using c = await Client.open(port);
    await c.send(GET("/short"));
    // Shorter than declared: all the server can do is close.
    await assert.rejects(c.response(), /closed after 4 of 6 body bytes/);
  }
});

// ---------------------------------------------------------------------------
// Connection management

Deno.test("conformance: Connection: close from the client closes after the response", async () => {
  await using server = start(echo);
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send(GET("/1", "Connection: close\r\n") + GET("/2"));
  const r = await c.response();
  assert.equal(r.text, "GET /1 ");
  assert.equal(r.get("connection")?.toLowerCase(), "close");
  // Nothing after it: the pipelined /2 is not served (RFC 9112 §9.6).
  assert.equal((await c.closed()).length, 0);
  await assertServes(port);
});

Deno.test("conformance: Connection: close from the handler closes after the response", async () => {
  await using server = start(() => new Response("bye", { headers: { Connection: "close" } }));
  await using c = await Client.open(portOf(server));
  await c.send(GET("/1") + GET("/2"));
  const r = await c.response();
  assert.equal(r.text, "bye");
  assert.deepEqual(r.headers.filter(([k]) => k === "connection"), [["connection", "close"]]);
  assert.equal((await c.closed()).length, 0);
});

Deno.test("conformance: HTTP/1.1 keeps the connection by default", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  for (let i = 0; i < 3; i++) {
    const r = await c.request(GET(`/${i}`));
    assert.equal(r.text, `GET /${i} `);
    assert.equal(r.get("connection"), null);
  }
});

Deno.test("conformance: HTTP/1.0 keep-alive only when asked, and the response says so", async () => {
  await using server = start(echo);
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    await c.send("GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n");
    const r = await c.response();
    assert.equal(r.text, "GET /a ");
    assert.equal(r.get("connection")?.toLowerCase(), "close");
    assert.equal((await c.closed()).length, 0);
  }
  {
    await using c = await Client.open(port);
    const r = await c.request("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    assert.equal(r.text, "GET /a ");
    assert.equal(r.get("connection")?.toLowerCase(), "keep-alive");
    const r2 = await c.request("GET /b HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    assert.equal(r2.text, "GET /b ");
    const r3 = await c.request("GET /c HTTP/1.0\r\n\r\n");
    assert.equal(r3.text, "GET /c ");
    assert.equal(r3.get("connection")?.toLowerCase(), "close");
    assert.equal((await c.closed()).length, 0);
  }
});

Deno.test("conformance: a handler that throws gets a 500 from onError, the connection lives", async () => {
  await using server = start((req) => {
    if (new URL(req.url).pathname === "/boom") throw new Error("boom");
    return new Response("fine");
  });
  await using c = await Client.open(portOf(server));
  const r = await c.request(GET("/boom"));
  assert.equal(r.status, 500);
  assert.equal(r.text, "handler failed");
  assert.equal(r.get("connection"), null);
  assert.equal((errors.get(server)![0] as Error).message, "boom");
  assert.equal((await c.request(GET("/ok"))).text, "fine");
  // Async throw too.
  await using s2 = start(async () => {
    await Promise.resolve();
    throw new Error("later");
  });
  await using c2 = await Client.open(portOf(s2));
  assert.equal((await c2.request(GET())).status, 500);
  assert.equal((await c2.request(GET())).status, 500);
});

Deno.test("conformance: three pipelined requests in one write, answered in order", async () => {
  let n = 0;
  await using server = start(async (req) => {
    const i = n++;
    // The first is the slowest: order must still hold.
    if (i === 0) await new Promise((r) => setTimeout(r, 20));
    return await echo(req, undefined as never);
  });
  await using c = await Client.open(portOf(server));
  await c.send(
    GET("/1") +
      "POST /2 HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
      "POST /3 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
  );
  assert.equal((await c.response()).text, "GET /1 ");
  assert.equal((await c.response()).text, "POST /2 hello");
  assert.equal((await c.response()).text, "POST /3 abc");
  // And the connection still serves a request sent later.
  assert.equal((await c.request(GET("/4"))).text, "GET /4 ");
  assert.equal((await c.request(GET("/5"))).text, "GET /5 ");
});

Deno.test("conformance: pipelined requests split across writes at odd places", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  const all = GET("/a") + "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nxyz" + GET("/c");
  for (const cut of [1, 17, 40, 45, all.length - 2]) {
    await c.send(all.slice(0, cut));
    await c.send(all.slice(cut));
    assert.equal((await c.response()).text, "GET /a ");
    assert.equal((await c.response()).text, "POST /b xyz");
    assert.equal((await c.response()).text, "GET /c ");
  }
});

Deno.test("conformance: absolute-form target wins over Host", async () => {
  await using server = start((req) => new Response(req.url));
  await using c = await Client.open(portOf(server));
  const r = await c.request("GET http://example.com/p?q HTTP/1.1\r\nHost: other.test\r\n\r\n");
  assert.equal(r.text, "http://example.com/p?q");
  const r2 = await c.request("OPTIONS * HTTP/1.1\r\nHost: h.test\r\n\r\n");
  assert.equal(r2.status, 200);
});

Deno.test("conformance: CONNECT is refused", async () => {
  await using server = start(() => new Response("no"));
  await using c = await Client.open(portOf(server));
  const r = await c.request("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
  assert.ok(r.status === 501 || r.status === 405, `${r.status}`);
  await c.closed();
});

// ---------------------------------------------------------------------------
// Expect: 100-continue

/** A request head expecting 100-continue, with a 5-byte body to follow. */
const EXPECT_5 = "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n";

/** The next response echoes `POST /e hello`, and the connection is kept alive. */
async function assertEchoedKeptAlive(c: Client): Promise<void> {
  const r = await c.response();
  assert.equal(r.status, 200);
  assert.equal(r.text, "POST /e hello");
  assert.equal((await c.request(GET("/next"))).text, "GET /next ");
}

Deno.test("conformance: 100-continue is sent when the handler reads the body", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  await c.send(EXPECT_5);
  const interim = await c.response();
  assert.equal(interim.status, 100);
  assert.equal(interim.body.length, 0);
  await c.send("hello");
  await assertEchoedKeptAlive(c);
});

Deno.test("conformance: 100-continue with a chunked body", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  await c.send(
    "POST /e HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
  );
  assert.equal((await c.response()).status, 100);
  await c.send("5\r\nhello\r\n0\r\n\r\n");
  assert.equal((await c.response()).text, "POST /e hello");
  assert.equal((await c.request(GET("/next"))).text, "GET /next ");
});

Deno.test("conformance: no 100-continue when the handler ignores the body; then close", async () => {
  await using server = start((req) =>
    req.method === "POST" ? new Response("denied", { status: 401 }) : new Response("ok")
  );
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send(EXPECT_5);
  const r = await c.response();
  assert.equal(r.status, 401, "the final response comes first, no 100");
  assert.equal(r.text, "denied");
  // The body was never read, so the connection cannot be reused; the
  // response must say so (RFC 9110 §10.1.1, RFC 9112 §9.6).
  assert.equal(await c.closed().then((b) => b.length), 0);
  assert.equal(r.get("connection")?.toLowerCase(), "close");
  await assertServes(port);
});

Deno.test("conformance: no 100-continue when the body is already on its way", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  await c.send(EXPECT_5 + "hello");
  await assertEchoedKeptAlive(c);
});

Deno.test("conformance: an unsupported expectation gets 417", async () => {
  await using server = start(echo);
  await using c = await Client.open(portOf(server));
  const r = await c.request(
    "POST / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Length: 1\r\n\r\nx",
  );
  assert.equal(r.status, 417);
  await c.closed();
});

// ---------------------------------------------------------------------------
// Request bodies

Deno.test("conformance: a body shorter than declared errors the handler's stream", async () => {
  let seen: unknown = undefined;
  const done = Promise.withResolvers<void>();
  await using server = start(async (req) => {
    try {
      await req.text();
      seen = "no error";
    } catch (e) {
      seen = e;
    }
    done.resolve();
    return new Response("got it");
  });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabcd");
  await c.closeWrite();
  await within(done.promise, "the handler to see the end of the body", WAIT);
  assert.ok(seen instanceof Error, `handler saw ${String(seen)}`);
  // Whatever it answered, the connection ends.
  await c.closed();
  await assertServes(port);
});

Deno.test("conformance: an unread small body is drained and the next request answered", async () => {
  await using server = start((req) => new Response(`ignored ${new URL(req.url).pathname}`));
  await using c = await Client.open(portOf(server));
  await c.send(
    "POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" +
      "POST /b HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nT: 1\r\n\r\n" +
      GET("/c"),
  );
  assert.equal((await c.response()).text, "ignored /a");
  assert.equal((await c.response()).text, "ignored /b");
  assert.equal((await c.response()).text, "ignored /c");
  // A body that trickles in after the response is drained too.
  await c.send("POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\n\r\nab");
  assert.equal((await c.response()).text, "ignored /d");
  await c.send("cdef" + GET("/e"));
  assert.equal((await c.response()).text, "ignored /e");
});

Deno.test("conformance: an unread body larger than maxDrainBytes closes the connection", async () => {
  await using server = start(() => new Response("short"), { maxDrainBytes: 1000 });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + "x".repeat(5000));
  const r = await c.response();
  assert.equal(r.text, "short");
  await c.closed();
  await assertServes(port);
});

Deno.test("conformance: 413 for a Content-Length over maxBodyBytes, before the handler", async () => {
  let called = 0;
  await using server = start(async (req) => {
    called++;
    return new Response(await req.text());
  }, { maxBodyBytes: 10 });
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    const r = await c.request("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789");
    assert.equal(r.status, 200);
    assert.equal(r.text, "0123456789");
  }
  {
    await using c = await Client.open(port);
    const r = await c.request(
      "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n0123456789x",
    );
    assert.equal(r.status, 413);
    assert.equal(r.get("connection")?.toLowerCase(), "close");
    await c.closed();
  }
  assert.equal(called, 1);
  await assertServes(port);
});

Deno.test("conformance: a chunked body over maxBodyBytes the handler lets through is a 413, not a 500", async () => {
  let onError = 0;
  await using server = start(async (req) => new Response(`read ${(await req.text()).length}`), {
    maxBodyBytes: 10,
    onError: () => {
      onError++;
      return new Response("oops", { status: 500 });
    },
  });
  const port = portOf(server);
  await using c = await Client.open(port);
  const r = await c.request(
    "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
      "5\r\n01234\r\n6\r\n567890\r\n0\r\n\r\n",
  );
  assert.equal(r.status, 413);
  assert.equal(r.get("connection")?.toLowerCase(), "close");
  assert.equal(onError, 0, "onError ran for the engine's own limit");
  await assertServes(port);
});

Deno.test("conformance: a chunked body over maxBodyBytes errors the handler's stream", async () => {
  let seen: unknown;
  await using server = start(async (req) => {
    try {
      return new Response(`read ${(await req.text()).length}`);
    } catch (e) {
      seen = e;
      return new Response("too big", { status: 413 });
    }
  }, { maxBodyBytes: 10 });
  const port = portOf(server);
  {
    await using c = await Client.open(port);
    const r = await c.request(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n01234\r\n5\r\n56789\r\n0\r\n\r\n",
    );
    assert.equal(r.text, "read 10");
  }
  {
    await using c = await Client.open(port);
    const r = await c.request(
      "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" +
        "5\r\n01234\r\n6\r\n567890\r\n0\r\n\r\n" + GET("/smuggled"),
    );
    assert.equal(r.status, 413);
    assert.ok(seen instanceof Error);
    assert.equal(r.get("connection")?.toLowerCase(), "close");
    assert.equal((await c.closed()).length, 0, "the request after it is not served");
  }
  await assertServes(port);
});

// ---------------------------------------------------------------------------
// Timeouts. Small values; each test waits for the event, never for a time.

Deno.test("conformance: readHeaderTimeout answers a slowloris head with 408", async () => {
  await using server = start(echo, { readHeaderTimeout: 200 });
  const port = portOf(server);
  await using c = await Client.open(port);
  // Trickle a head that never ends, one header line every 20 ms.
  let stop = false;
  const trickle = (async () => {
    if (!await c.send("GET / HTTP/1.1\r\nHost: x\r\n")) return;
    for (let i = 0; !stop && i < 500; i++) {
      await new Promise((r) => setTimeout(r, 20));
      if (!await c.send(`X-${i}: ${i}\r\n`)) return;
    }
  })();
  try {
    // Other connections are served meanwhile.
    await assertServes(port);
    const r = await c.response();
    assert.equal(r.status, 408);
    assert.equal(r.get("connection")?.toLowerCase(), "close");
    await c.closed();
  } finally {
    stop = true;
    await trickle;
  }
  await assertServes(port);
});

Deno.test("conformance: readHeaderTimeout closes a silent new connection", async () => {
  await using server = start(echo, { readHeaderTimeout: 200 });
  const port = portOf(server);
  await using c = await Client.open(port);
  await assertServes(port);
  assert.equal((await c.closed()).length, 0);
  await assertServes(port);
});

Deno.test("conformance: idleTimeout closes an idle keep-alive connection", async () => {
  await using server = start(echo, { idleTimeout: 200 });
  const port = portOf(server);
  await using c = await Client.open(port);
  assert.equal((await c.request(GET("/1"))).text, "GET /1 ");
  // Idle now; the server closes it without a response.
  assert.equal((await c.closed()).length, 0);
  await assertServes(port);
});

/** A handler that reads the whole body: `seen` is what that read threw (if
 * anything), and `done` resolves once it has finished. */
function bodyReader() {
  const r = {
    seen: undefined as unknown,
    done: Promise.withResolvers<void>(),
    handler: (async (req) => {
      try {
        await req.text();
      } catch (e) {
        r.seen = e;
      }
      r.done.resolve();
      return new Response("late");
    }) as ServeHandler,
  };
  return r;
}

Deno.test("conformance: readTimeout on a stalled body", async () => {
  const body = bodyReader();
  const closed = new Closed();
  await using server = start(body.handler, { readTimeout: 200, connState: closed.connState });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789");
  await within(body.done.promise, "the handler to see the stalled body fail", WAIT);
  assert.ok(body.seen instanceof Error, `handler saw ${String(body.seen)}`);
  await closed.until(1);
  await c.closed();
  await assertServes(port);
});

Deno.test("conformance: readTimeout on a stalled chunked body", async () => {
  const body = bodyReader();
  await using server = start(body.handler, { readTimeout: 200 });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab");
  await within(body.done.promise, "the handler to see the stalled body fail", WAIT);
  assert.ok(body.seen instanceof Error, `handler saw ${String(body.seen)}`);
  await c.closed();
  await assertServes(port);
});

Deno.test("conformance: writeTimeout closes a connection whose client never reads", async () => {
  const closed = new Closed();
  const canceled = Promise.withResolvers<void>();
  const MiB = 1024 * 1024;
  await using server = start((req) => {
    if (new URL(req.url).pathname !== "/big") return new Response("small");
    let sent = 0;
    return new Response(
      new ReadableStream<Uint8Array>({
        pull(ctrl) {
          // Far more than socket buffers hold; bounded so a bug cannot run forever.
          if (sent >= 512 * MiB) return ctrl.close();
          sent += 256 * 1024;
          ctrl.enqueue(new Uint8Array(256 * 1024));
        },
        cancel() {
          canceled.resolve();
        },
      }),
    );
  }, { writeTimeout: 300, connState: closed.connState });
  const port = portOf(server);
  await using c = await Client.open(port);
  await c.send(GET("/big"));
  // While the writer is stuck, other connections are served.
  await assertServes(port);
  // Never read on `c`: the server gives up on it.
  await closed.until(2, 10_000);
  await within(canceled.promise, "the response stream to be canceled", WAIT);
  await assertServes(port);
});
