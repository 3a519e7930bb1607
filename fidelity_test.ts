// Copyright 2026 the connctx authors. MIT license.

// Web-standard fidelity: the `Request` a handler receives and the bytes a
// `Response` becomes on the wire, checked against the platform and against
// `Deno.serve` itself.
//
//   deno test -A fidelity_test.ts
//
// Everything runs on 127.0.0.1, port 0. Raw-socket checks send
// `Connection: close` and read to EOF; every wait is bounded by `within()`,
// which fails a test instead of hanging it and asserts nothing about timing.

import assert from "node:assert/strict";
import { CanceledError, serve, type Server } from "./mod.ts";
import { concat, LOOPBACK, portOf, urlOf, within } from "./_test_http.ts";
import { fastPathEnabled } from "./_exchange/response.ts";

// ---------------------------------------------------------------------------
// Helpers

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A response as it crossed the wire. */
interface Wire {
  /** `HTTP/1.1` or `HTTP/1.0`. */
  version: string;
  status: number;
  reason: string;
  /** Header fields in wire order and wire case. */
  headers: [string, string][];
  /** How the body was delimited. */
  framing: "chunked" | "length" | "close" | "none";
  /** The body with chunked framing removed. */
  body: Uint8Array;
  /** Body as text. */
  text: string;
  /** The bytes after the head, untouched. */
  rawBody: Uint8Array;
}

/** The first value of a header, case-insensitive. */
function field(w: Wire, name: string): string | null {
  const n = name.toLowerCase();
  return w.headers.find(([k]) => k.toLowerCase() === n)?.[1] ?? null;
}

/** Every value of a header, in wire order. */
function fields(w: Wire, name: string): string[] {
  const n = name.toLowerCase();
  return w.headers.filter(([k]) => k.toLowerCase() === n).map(([, v]) => v);
}

function indexOfCrlfCrlf(b: Uint8Array): number {
  for (let i = 0; i + 3 < b.length; i++) {
    if (b[i] === 13 && b[i + 1] === 10 && b[i + 2] === 13 && b[i + 3] === 10) return i;
  }
  return -1;
}

function dechunk(b: Uint8Array): Uint8Array {
  const out: Uint8Array[] = [];
  let p = 0;
  for (;;) {
    let e = p;
    while (e + 1 < b.length && !(b[e] === 13 && b[e + 1] === 10)) e++;
    assert.ok(e + 1 < b.length, "truncated chunk-size line");
    const size = parseInt(dec.decode(b.subarray(p, e)).split(";")[0], 16);
    assert.ok(Number.isInteger(size), "bad chunk size");
    p = e + 2;
    if (size === 0) break;
    out.push(b.subarray(p, p + size));
    p += size;
    assert.equal(dec.decode(b.subarray(p, p + 2)), "\r\n", "chunk not followed by CRLF");
    p += 2;
  }
  return concat(out);
}

/** Parses one response that runs to the end of `bytes`. */
function parseWire(bytes: Uint8Array, head = false): Wire {
  const end = indexOfCrlfCrlf(bytes);
  assert.ok(end !== -1, `no response head in ${JSON.stringify(dec.decode(bytes))}`);
  const lines = dec.decode(bytes.subarray(0, end)).split("\r\n");
  const m = /^(HTTP\/1\.[01]) (\d{3}) ?(.*)$/.exec(lines[0]);
  assert.ok(m, `bad status line ${lines[0]}`);
  const headers = lines.slice(1).map((l): [string, string] => {
    const i = l.indexOf(":");
    return [l.slice(0, i), l.slice(i + 1).trim()];
  });
  const rawBody = bytes.subarray(end + 4);
  const w: Wire = {
    version: m[1],
    status: Number(m[2]),
    reason: m[3],
    headers,
    framing: "close",
    body: rawBody,
    text: "",
    rawBody,
  };
  const te = field(w, "transfer-encoding");
  const cl = field(w, "content-length");
  if (head || w.status === 204 || w.status === 304 || w.status < 200) {
    w.framing = "none";
    w.body = new Uint8Array(0);
    assert.equal(rawBody.byteLength, 0, "a bodiless response carried bytes");
  } else if (te !== null && /chunked/i.test(te)) {
    w.framing = "chunked";
    w.body = dechunk(rawBody);
  } else if (cl !== null) {
    w.framing = "length";
    assert.equal(rawBody.byteLength, Number(cl), "Content-Length does not match the body");
  }
  w.text = dec.decode(w.body);
  return w;
}

/** Reads from `conn` until EOF (bounded). */
async function readToEnd(conn: Deno.Conn, ms = 5_000): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(16 * 1024);
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, ms);
  try {
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
  } catch (e) {
    if (timedOut) throw new Error(`no EOF within ${ms} ms; got ${dec.decode(concat(chunks))}`);
    throw e;
  } finally {
    clearTimeout(timer);
  }
  return concat(chunks);
}

/** Sends raw request bytes (in pieces, if several) and reads the whole
 * response; the request must make the server close (Connection: close or
 * HTTP/1.0). */
async function exchange(
  port: number,
  request: string | Uint8Array,
  opts: { head?: boolean } = {},
): Promise<Wire> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(typeof request === "string" ? enc.encode(request) : request);
    return parseWire(await readToEnd(conn), opts.head ?? /^HEAD /.test(String(request)));
  } finally {
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** Reads from `conn` until the text read so far includes `needle`. */
async function readUntil(conn: Deno.Conn, needle: string, have = ""): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = have;
  while (!text.includes(needle)) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`EOF before ${JSON.stringify(needle)}; got ${text}`);
    text += dec.decode(buf.subarray(0, n));
  }
  return text;
}

function get(path: string, extra = ""): string {
  return `GET ${path} HTTP/1.1\r\nHost: h.test\r\n${extra}Connection: close\r\n\r\n`;
}

// ---------------------------------------------------------------------------
// The request

Deno.test("request: instanceof Request, with the platform's brand", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, (req) =>
    Response.json({
      instance: req instanceof Request,
      tag: Object.prototype.toString.call(req),
      proto: Object.getPrototypeOf(Object.getPrototypeOf(req)) === Request.prototype ||
        Object.getPrototypeOf(req) === Request.prototype,
      method: req.method,
      // Properties the facade does not implement itself delegate to a real Request.
      redirect: req.redirect,
      cache: req.cache,
      keepalive: req.keepalive,
    }));
  const res = await fetch(urlOf(server, "/x"), { client });
  assert.deepEqual(await res.json(), {
    instance: true,
    tag: "[object Request]",
    proto: true,
    method: "GET",
    redirect: "follow",
    cache: "default",
    keepalive: false,
  });
});

Deno.test("request.url: absolute, from Host, absolute-form and HTTP/1.0 without Host", async () => {
  await using server = serve(LOOPBACK, (req) => new Response(req.url));
  const port = portOf(server);

  // origin-form + Host
  let w = await exchange(port, get("/a/b?c=d&e=%20"));
  assert.equal(w.text, "http://h.test/a/b?c=d&e=%20");
  w = await exchange(port, get("/p", "").replace("h.test", "h.test:8080"));
  assert.equal(w.text, "http://h.test:8080/p");
  // Percent-encoded bytes are kept as sent.
  w = await exchange(port, get("/%E2%9C%93"));
  assert.equal(w.text, "http://h.test/%E2%9C%93");
  assert.equal(new URL(w.text).pathname, "/%E2%9C%93");

  // absolute-form wins over Host (RFC 9112 §3.2.2)
  w = await exchange(
    port,
    "GET http://abs.test:81/x?y=1 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
  );
  assert.equal(w.text, "http://abs.test:81/x?y=1");

  // HTTP/1.0 without Host: the address the connection arrived on
  w = await exchange(port, "GET /old HTTP/1.0\r\n\r\n");
  assert.equal(w.status, 200);
  assert.equal(w.text, `http://127.0.0.1:${port}/old`);
  const u = new URL(w.text);
  assert.equal(u.protocol, "http:");

  // HTTP/1.0 with Host
  w = await exchange(port, "GET /old HTTP/1.0\r\nHost: legacy.test\r\n\r\n");
  assert.equal(w.text, "http://legacy.test/old");

  // OPTIONS * has a URL too
  w = await exchange(port, "OPTIONS * HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n");
  assert.equal(w.text, "http://h.test/");
});

Deno.test("request.headers: case-insensitive, duplicates combined in wire order", async () => {
  await using server = serve(LOOPBACK, (req) =>
    Response.json({
      same: req.headers === req.headers,
      get: req.headers.get("X-DUP"),
      lower: req.headers.get("x-dup"),
      has: req.headers.has("X-Single"),
      single: req.headers.get("x-single"),
      cookie: req.headers.get("cookie"),
      missing: req.headers.get("x-missing"),
      names: [...req.headers.keys()],
    }));
  const w = await exchange(
    portOf(server),
    "GET / HTTP/1.1\r\nHost: h.test\r\nX-Dup: first\r\nX-Single:   padded   \r\n" +
      "x-dup: second\r\nCookie: a=1\r\nX-DUP: third\r\nConnection: close\r\n\r\n",
  );
  assert.deepEqual(JSON.parse(w.text), {
    same: true,
    get: "first, second, third",
    lower: "first, second, third",
    has: true,
    single: "padded",
    cookie: "a=1",
    missing: null,
    // Headers iterate sorted and lower-cased, like any Headers object.
    names: ["connection", "cookie", "host", "x-dup", "x-single"],
  });
  // Order is the wire's, not sorted: reversed on the wire, reversed here.
  const w2 = await exchange(
    portOf(server),
    "GET / HTTP/1.1\r\nHost: h.test\r\nX-Dup: z\r\nX-Dup: a\r\nConnection: close\r\n\r\n",
  );
  assert.equal(JSON.parse(w2.text).get, "z, a");
});

Deno.test("request.body: a stream that delivers chunks as they arrive", async () => {
  const firstChunkSeen = Promise.withResolvers<void>();
  await using server = serve(LOOPBACK, async (req) => {
    assert.ok(req.body instanceof ReadableStream);
    const reader = req.body.getReader();
    const pieces: string[] = [];
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      pieces.push(dec.decode(r.value));
      firstChunkSeen.resolve();
    }
    return Response.json({ pieces: pieces.join(""), used: req.bodyUsed });
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
  try {
    await conn.write(enc.encode(
      "POST /up HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n" +
        "Connection: close\r\n\r\n5\r\nhello\r\n",
    ));
    // The handler sees the first chunk before the rest is even sent.
    await within(firstChunkSeen.promise, "first body chunk");
    await conn.write(enc.encode("1\r\n \r\n5\r\nworld\r\n0\r\n\r\n"));
    const w = parseWire(await readToEnd(conn));
    assert.equal(w.status, 200);
    assert.deepEqual(JSON.parse(w.text), { pieces: "hello world", used: true });
  } finally {
    conn.close();
  }
});

Deno.test("request body readers: text, json, bytes, arrayBuffer, blob, formData", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, async (req) => {
    const kind = new URL(req.url).pathname.slice(1);
    switch (kind) {
      case "text":
        return new Response(await req.text());
      case "json":
        return Response.json({ got: await req.json() });
      case "bytes":
        return new Response(String((await req.bytes()).byteLength));
      case "arrayBuffer":
        return new Response(String((await req.arrayBuffer()).byteLength));
      case "blob": {
        const b = await req.blob();
        return new Response(`${b.type}|${b.size}`);
      }
      case "formData": {
        const out: Record<string, string> = {};
        for (const [k, v] of await req.formData()) {
          out[k] = typeof v === "string" ? v : `${v.name}:${await v.text()}`;
        }
        return Response.json(out);
      }
      case "none":
        return Response.json({ body: req.body, text: await req.text() });
    }
    return new Response("?", { status: 400 });
  });
  const post = async (path: string, body: BodyInit | null, headers?: HeadersInit) => {
    const res = await fetch(urlOf(server, path), {
      method: body === null ? "GET" : "POST",
      body,
      headers,
      client,
    });
    return await res.text();
  };
  assert.equal(await post("/text", "héllo"), "héllo");
  assert.equal(await post("/json", '{"a":[1,2]}'), '{"got":{"a":[1,2]}}');
  assert.equal(await post("/bytes", new Uint8Array(70_000)), "70000");
  assert.equal(await post("/arrayBuffer", new Uint8Array(3)), "3");
  assert.equal(await post("/blob", "abc", { "content-type": "text/x-abc" }), "text/x-abc|3");
  const form = new FormData();
  form.append("k", "v");
  form.append("file", new File(["file body"], "a.txt"));
  assert.deepEqual(JSON.parse(await post("/formData", form)), { k: "v", file: "a.txt:file body" });
  assert.deepEqual(JSON.parse(await post("/formData", new URLSearchParams({ k: "q", r: "a b" }))), {
    k: "q",
    r: "a b",
  });
  assert.deepEqual(JSON.parse(await post("/none", null)), { body: null, text: "" });
});

Deno.test("request: reading a consumed body throws, as for a real Request", async () => {
  // A real Request whose body was read refuses to be read again, cloned or
  // copied. The facade must keep refusing after it has materialised.
  using client = Deno.createHttpClient({});
  const check = async (req: Request) => {
    const out: Record<string, string> = {};
    const attempt = async (name: string, f: () => unknown) => {
      try {
        await f();
        out[name] = "ok";
      } catch (e) {
        out[name] = (e as Error).name;
      }
    };
    await req.text();
    await attempt("text again", () => req.text());
    await attempt("clone", () => req.clone());
    await attempt("text after clone", () => req.text());
    await attempt("new Request", () => new Request(req));
    out.bodyUsed = String(req.bodyUsed);
    return Response.json(out);
  };
  const expected = {
    "text again": "TypeError",
    clone: "TypeError",
    "text after clone": "TypeError",
    "new Request": "TypeError",
    bodyUsed: "true",
  };
  // What Deno.serve's requests do...
  await using native = Deno.serve(LOOPBACK, check);
  const nres = await fetch(urlOf(native), { method: "POST", body: "abc", client });
  assert.deepEqual(await nres.json(), expected);
  // ...the facade does too.
  await using server = serve(LOOPBACK, check);
  const res = await fetch(urlOf(server), { method: "POST", body: "abc", client });
  assert.deepEqual(await res.json(), expected);
});

Deno.test("request.signal and info.context abort when the client disconnects", async () => {
  const entered = Promise.withResolvers<void>();
  const aborted = Promise.withResolvers<{ reason: unknown; err: unknown; same: boolean }>();
  await using server = serve(LOOPBACK, (req, info) => {
    entered.resolve();
    return new Promise<Response>((resolve) => {
      req.signal.addEventListener("abort", () => {
        aborted.resolve({
          reason: req.signal.reason,
          err: info.context.err,
          same: req.signal === info.context.signal,
        });
        resolve(new Response("too late"));
      }, { once: true });
    });
  });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
  await conn.write(enc.encode("GET /slow HTTP/1.1\r\nHost: h.test\r\n\r\n"));
  await within(entered.promise, "handler entered");
  conn.close();
  const got = await within(aborted.promise, "request.signal abort");
  assert.ok(got.err instanceof CanceledError);
  assert.ok(got.reason instanceof CanceledError);
  assert.match((got.reason as Error).message, /disconnect/);
  assert.equal(got.same, true);
});

Deno.test("request.clone(): both copies read the whole body", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, async (req) => {
    const copy = req.clone();
    assert.ok(copy instanceof Request);
    const [a, b] = await Promise.all([req.text(), copy.text()]);
    return Response.json({ a, b, url: copy.url, h: copy.headers.get("x-a"), m: copy.method });
  });
  const body = "x".repeat(100_000);
  const res = await fetch(urlOf(server, "/c?q=1"), {
    method: "PUT",
    body,
    headers: { "x-a": "1" },
    client,
  });
  const got = await res.json();
  assert.equal(got.a, body);
  assert.equal(got.b, body);
  assert.equal(got.url, urlOf(server, "/c?q=1"));
  assert.equal(got.h, "1");
  assert.equal(got.m, "PUT");
});

Deno.test("new Request(request) copies method, URL, headers and body", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, async (req) => {
    const copy = new Request(req);
    const changed = new Request(req.url, { headers: { "x-b": "2" } });
    return Response.json({
      url: copy.url,
      method: copy.method,
      h: copy.headers.get("x-a"),
      body: await copy.text(),
      origUsed: req.bodyUsed,
      changed: changed.headers.get("x-b"),
    });
  });
  const res = await fetch(urlOf(server, "/n"), {
    method: "POST",
    body: "payload",
    headers: { "x-a": "1" },
    client,
  });
  assert.deepEqual(await res.json(), {
    url: urlOf(server, "/n"),
    method: "POST",
    h: "1",
    body: "payload",
    origUsed: true, // the copy took the body, as the spec says
    changed: "2",
  });
});

Deno.test("fetch(request): the facade proxies, forward and reverse", async () => {
  using client = Deno.createHttpClient({});
  await using upstream = serve(LOOPBACK, async (req) =>
    Response.json({
      method: req.method,
      path: new URL(req.url).pathname + new URL(req.url).search,
      body: await req.text(),
      xa: req.headers.get("x-a"),
    }, { headers: { "x-upstream": "yes" } }));

  // Forward proxy: the client sends an absolute-form target; the handler
  // passes the request itself to fetch().
  await using forward = serve(LOOPBACK, async (req) => {
    const res = await fetch(req, { client });
    return new Response(res.body, res);
  });
  const up = portOf(upstream);
  const w = await exchange(
    portOf(forward),
    `POST http://127.0.0.1:${up}/f?x=1 HTTP/1.1\r\nHost: 127.0.0.1:${up}\r\nX-A: fwd\r\n` +
      "Content-Length: 3\r\nConnection: close\r\n\r\nabc",
  );
  assert.equal(w.status, 200);
  assert.equal(field(w, "x-upstream"), "yes");
  assert.deepEqual(JSON.parse(w.text), { method: "POST", path: "/f?x=1", body: "abc", xa: "fwd" });

  // Reverse proxy: a new URL, everything else from the request (the body streams).
  await using reverse = serve(LOOPBACK, async (req) => {
    const u = new URL(req.url);
    const res = await fetch(new Request(`http://127.0.0.1:${up}${u.pathname}${u.search}`, req), {
      client,
    });
    return new Response(res.body, res);
  });
  const res = await fetch(urlOf(reverse, "/r?y=2"), {
    method: "PUT",
    body: "streamed",
    headers: { "x-a": "rev" },
    client,
  });
  assert.equal(res.headers.get("x-upstream"), "yes");
  assert.deepEqual(await res.json(), {
    method: "PUT",
    path: "/r?y=2",
    body: "streamed",
    xa: "rev",
  });
});

// ---------------------------------------------------------------------------
// The response

Deno.test("response bodies: string, bytes, Blob, FormData, URLSearchParams, JSON, stream", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, (req) => {
    switch (new URL(req.url).pathname) {
      case "/string":
        return new Response("héllo");
      case "/bytes":
        return new Response(new Uint8Array([0, 1, 2, 255]));
      case "/blob":
        return new Response(new Blob(["blob body"], { type: "text/x-blob" }));
      case "/form": {
        const f = new FormData();
        f.append("a", "1");
        f.append("file", new File(["contents"], "f.txt", { type: "text/plain" }));
        return new Response(f);
      }
      case "/usp":
        return new Response(new URLSearchParams({ q: "a b", r: "&" }));
      case "/json":
        return Response.json({ ok: [1, "two"] }, { status: 201 });
      case "/stream":
        return new Response(
          ReadableStream.from(["a", "b", "c"]).pipeThrough(new TextEncoderStream()),
        );
    }
    return new Response(null, { status: 404 });
  });
  const go = (p: string) => fetch(urlOf(server, p), { client });

  let res = await go("/string");
  assert.equal(res.headers.get("content-type"), "text/plain;charset=UTF-8");
  assert.equal(await res.text(), "héllo");

  res = await go("/bytes");
  assert.equal(res.headers.get("content-type"), null);
  assert.deepEqual(await res.bytes(), new Uint8Array([0, 1, 2, 255]));

  res = await go("/blob");
  assert.equal(res.headers.get("content-type"), "text/x-blob");
  assert.equal(await res.text(), "blob body");

  res = await go("/form");
  assert.match(res.headers.get("content-type")!, /^multipart\/form-data; boundary=/);
  const f = await res.formData();
  assert.equal(f.get("a"), "1");
  assert.equal(await (f.get("file") as File).text(), "contents");
  assert.equal((f.get("file") as File).name, "f.txt");

  res = await go("/usp");
  assert.equal(res.headers.get("content-type"), "application/x-www-form-urlencoded;charset=UTF-8");
  assert.equal(await res.text(), "q=a+b&r=%26");

  res = await go("/json");
  assert.equal(res.status, 201);
  assert.equal(res.headers.get("content-type"), "application/json");
  assert.deepEqual(await res.json(), { ok: [1, "two"] });

  res = await go("/stream");
  assert.equal(await res.text(), "abc");

  res = await go("/nope");
  assert.equal(res.status, 404);
  assert.equal(await res.text(), "");
});

Deno.test("response stream: chunks reach the client before the stream ends", async () => {
  const clientGotFirst = Promise.withResolvers<void>();
  await using server = serve(LOOPBACK, () =>
    new Response(
      new ReadableStream<Uint8Array>({
        async start(c) {
          c.enqueue(enc.encode("first;"));
          await clientGotFirst.promise; // the client must see it before we go on
          c.enqueue(enc.encode("second"));
          c.close();
        },
      }),
      { headers: { "content-type": "text/plain" } },
    ));
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: portOf(server) });
  try {
    await conn.write(enc.encode(get("/")));
    const seen = await within(readUntil(conn, "first;"), "first chunk");
    clientGotFirst.resolve();
    const rest = await readToEnd(conn);
    const w = parseWire(concat([enc.encode(seen), rest]));
    assert.equal(w.framing, "chunked");
    assert.equal(w.text, "first;second");
  } finally {
    clientGotFirst.resolve();
    conn.close();
  }
});

Deno.test("response: multiple Set-Cookie fields stay separate on the wire", async () => {
  using client = Deno.createHttpClient({});
  const cookies = [
    "a=1; Path=/; HttpOnly",
    "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT", // a comma inside one cookie
    "c=3; SameSite=Lax",
  ];
  await using server = serve(LOOPBACK, () => {
    const headers = new Headers({ "content-type": "text/plain" });
    for (const c of cookies) headers.append("set-cookie", c);
    headers.append("x-list", "one");
    headers.append("x-list", "two");
    return new Response("cookies", { headers });
  });
  const w = await exchange(portOf(server), get("/"));
  assert.deepEqual(fields(w, "set-cookie"), cookies);
  // Other repeated fields are combined, as Headers does.
  assert.deepEqual(fields(w, "x-list"), ["one, two"]);
  const res = await fetch(urlOf(server), { client });
  assert.deepEqual(res.headers.getSetCookie(), cookies);
  await res.body?.cancel();
});

Deno.test("response: status codes and redirects", async () => {
  using client = Deno.createHttpClient({});
  await using server = serve(LOOPBACK, (req) => {
    switch (new URL(req.url).pathname) {
      case "/teapot":
        return new Response("short and stout", { status: 418 });
      case "/redirect":
        return Response.redirect(new URL("/target?x=1", req.url), 302);
      case "/moved":
        return Response.redirect("https://example.com/elsewhere", 308);
      case "/created":
        return new Response(null, { status: 201, headers: { location: "/things/1" } });
      case "/nocontent":
        return new Response(null, { status: 204 });
      case "/unknown":
        return new Response("?", { status: 599 });
    }
    return new Response("target");
  });
  const port = portOf(server);

  let w = await exchange(port, get("/teapot"));
  assert.equal(w.status, 418);
  assert.equal(w.text, "short and stout");
  w = await exchange(port, get("/redirect"));
  assert.equal(w.status, 302);
  assert.equal(w.reason, "Found");
  assert.equal(field(w, "location"), "http://h.test/target?x=1");
  w = await exchange(port, get("/moved"));
  assert.equal(w.status, 308);
  assert.equal(field(w, "location"), "https://example.com/elsewhere");
  w = await exchange(port, get("/created"));
  assert.equal(w.status, 201);
  assert.equal(field(w, "location"), "/things/1");
  assert.equal(field(w, "content-length"), "0");
  w = await exchange(port, get("/nocontent"));
  assert.equal(w.status, 204);
  assert.equal(w.framing, "none");
  assert.equal(field(w, "content-length"), null);
  w = await exchange(port, get("/unknown"));
  assert.equal(w.status, 599);

  // fetch follows the redirect to the same server
  const followed = await fetch(urlOf(server, "/redirect"), { client });
  assert.equal(await followed.text(), "target");
  assert.equal(followed.redirected, true);
});

Deno.test("response: a custom statusText is sent, whatever the status", async () => {
  // Deno.serve drops statusText; connctx promises to send it. A 200 with a
  // custom text must not lose it on the fast path. (Checked on the wire:
  // Deno's fetch reports the canonical reason whatever the server sent.)
  await using server = serve(LOOPBACK, (req) => {
    const status = Number(new URL(req.url).searchParams.get("status"));
    const kind = new URL(req.url).pathname;
    const init = { status, statusText: "Custom Reason" };
    if (kind === "/json") return Response.json({ ok: 1 }, init);
    if (kind === "/null") return new Response(null, init);
    return new Response("body", init);
  });
  const port = portOf(server);
  const seen: string[] = [];
  for (const kind of ["/text", "/json", "/null"]) {
    for (const status of [200, 201, 418, 500]) {
      const w = await exchange(port, get(`${kind}?status=${status}`));
      assert.equal(w.status, status);
      seen.push(`${kind} ${status} ${w.reason}`);
    }
  }
  assert.deepEqual(
    seen.filter((s) => !s.endsWith(" Custom Reason")),
    [],
    "responses that lost their statusText",
  );
});

Deno.test("HEAD: the GET head without a body", async () => {
  const methods: string[] = [];
  await using server = serve(LOOPBACK, (req) => {
    methods.push(req.method);
    if (new URL(req.url).pathname === "/stream") {
      return new Response(ReadableStream.from([enc.encode("streamed")]));
    }
    return new Response("hello world", { headers: { "x-kind": "text" } });
  });
  const port = portOf(server);
  const w = await exchange(port, "HEAD / HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n");
  assert.equal(w.status, 200);
  assert.equal(field(w, "content-length"), "11");
  assert.equal(field(w, "x-kind"), "text");
  assert.equal(w.rawBody.byteLength, 0);
  const s = await exchange(
    port,
    "HEAD /stream HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
  );
  assert.equal(s.status, 200);
  assert.equal(s.rawBody.byteLength, 0);
  assert.deepEqual(methods, ["HEAD", "HEAD"]);

  // On a kept-alive connection, the next response follows at once: a HEAD
  // response must not have a body that would be mistaken for it.
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await conn.write(enc.encode(
      "HEAD / HTTP/1.1\r\nHost: h.test\r\n\r\n" + get("/"),
    ));
    const all = dec.decode(await readToEnd(conn));
    const parts = all.split(/(?=HTTP\/1\.1 )/);
    assert.equal(parts.length, 2, all);
    assert.ok(parts[0].endsWith("\r\n\r\n"), "HEAD response carried a body");
    assert.ok(parts[1].endsWith("hello world"));
  } finally {
    conn.close();
  }
});

// ---------------------------------------------------------------------------
// Side by side with Deno.serve

/** One handler, written for Deno.serve, run by both servers. */
const shared: Deno.ServeHandler = async (req) => {
  const url = new URL(req.url);
  switch (url.pathname) {
    case "/text":
      return new Response("hello");
    case "/bytes":
      return new Response(new Uint8Array([0, 1, 2, 255]));
    case "/json":
      return Response.json({ ok: true }, { status: 201 });
    case "/usp":
      return new Response(new URLSearchParams({ q: "a b", r: "&" }));
    case "/blob":
      return new Response(new Blob(["blob body"], { type: "text/x-blob" }));
    case "/form": {
      const f = new FormData();
      f.append("a", "1");
      return new Response(f);
    }
    case "/stream": {
      // Chunks that arrive over several turns of the event loop: a stream in
      // earnest, so both servers must use chunked framing.
      let i = 0;
      return new Response(
        new ReadableStream<Uint8Array>({
          async pull(c) {
            await new Promise((r) => setTimeout(r, 0));
            if (i === 3) c.close();
            else c.enqueue(enc.encode(`part${i++};`));
          },
        }),
        { headers: { "content-type": "text/plain" } },
      );
    }
    case "/stream-one":
      // A stream that is complete at once: connctx frames it with a length.
      return new Response(
        new ReadableStream({
          start(c) {
            c.enqueue(enc.encode("one"));
            c.close();
          },
        }),
      );
    case "/cookies": {
      const h = new Headers();
      h.append("set-cookie", "a=1; Path=/");
      h.append("set-cookie", "b=2; Expires=Wed, 21 Oct 2015 07:28:00 GMT");
      return new Response("c", { headers: h });
    }
    case "/redirect":
      return Response.redirect(new URL("/text", req.url), 307);
    case "/teapot":
      return new Response("tea", { status: 418, statusText: "Custom Reason" });
    case "/204":
      return new Response(null, { status: 204 });
    case "/304":
      return new Response(null, { status: 304, headers: { etag: '"v1"' } });
    case "/null":
      return new Response(null);
    case "/empty":
      return new Response("");
    case "/headers":
      return new Response("h", {
        headers: [["x-one", "1"], ["x-multi", "a"], ["x-multi", "b"], [
          "cache-control",
          "no-store",
        ]],
      });
    case "/echo":
      return Response.json({
        method: req.method,
        url: req.url,
        body: await req.text(),
        type: req.headers.get("content-type"),
        custom: req.headers.get("x-custom"),
        host: req.headers.get("host"),
      });
    case "/throw":
      throw new Error("boom");
  }
  return new Response("not found", { status: 404 });
};

interface Case {
  name: string;
  request: string;
  /** A known, deliberate difference in framing: compare the body only. */
  anyFraming?: boolean;
  /** The reason phrase differs (Deno.serve drops a custom statusText). */
  anyReason?: boolean;
  /** The response line's version differs (Deno.serve answers HTTP/1.0 to HTTP/1.0). */
  anyVersion?: boolean;
}

const post = (path: string, body: string, extra = "") =>
  `POST ${path} HTTP/1.1\r\nHost: h.test\r\n${extra}Content-Length: ${
    enc.encode(body).byteLength
  }\r\nConnection: close\r\n\r\n${body}`;

const CASES: Case[] = [
  { name: "text", request: get("/text") },
  { name: "bytes", request: get("/bytes") },
  { name: "json 201", request: get("/json") },
  { name: "URLSearchParams", request: get("/usp") },
  { name: "Blob", request: get("/blob") },
  { name: "FormData", request: get("/form") },
  { name: "stream", request: get("/stream") },
  { name: "complete stream", request: get("/stream-one"), anyFraming: true },
  { name: "set-cookie", request: get("/cookies") },
  { name: "redirect", request: get("/redirect") },
  { name: "custom status", request: get("/teapot"), anyReason: true },
  { name: "204", request: get("/204") },
  { name: "304", request: get("/304") },
  { name: "null body", request: get("/null") },
  { name: "empty string", request: get("/empty") },
  { name: "repeated headers", request: get("/headers") },
  { name: "404", request: get("/missing") },
  { name: "handler throws", request: get("/throw") },
  {
    name: "HEAD text",
    request: "HEAD /text HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
  },
  {
    name: "HEAD stream",
    request: "HEAD /stream HTTP/1.1\r\nHost: h.test\r\nConnection: close\r\n\r\n",
  },
  { name: "POST echo", request: post("/echo?x=1", "héllo", "Content-Type: text/plain\r\n") },
  {
    name: "POST chunked echo",
    request: "POST /echo HTTP/1.1\r\nHost: h.test\r\nX-Custom: yes\r\n" +
      "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
  },
  {
    name: "absolute-form",
    request:
      "GET http://abs.test:81/echo?q HTTP/1.1\r\nHost: abs.test:81\r\nConnection: close\r\n\r\n",
  },
  {
    name: "HTTP/1.0 text",
    request: "GET /text HTTP/1.0\r\nHost: h.test\r\n\r\n",
    anyVersion: true,
  },
  {
    name: "HTTP/1.0 stream (close-delimited)",
    request: "GET /stream HTTP/1.0\r\nHost: h.test\r\n\r\n",
    anyVersion: true,
  },
];

/** What must match between the two servers. */
function essentials(w: Wire, c: Case) {
  let type = field(w, "content-type");
  let body = w.text;
  const boundary = type && /boundary=(.+)$/.exec(type)?.[1];
  if (boundary) {
    // Each server picks its own multipart boundary.
    type = type!.replace(boundary, "BOUNDARY");
    body = body.replaceAll(boundary, "BOUNDARY");
  }
  return {
    version: c.anyVersion ? "any" : w.version,
    status: w.status,
    reason: c.anyReason ? "any" : w.reason,
    type,
    framing: c.anyFraming ? "any" : w.framing,
    contentLength: c.anyFraming ? "any" : field(w, "content-length"),
    setCookie: fields(w, "set-cookie"),
    location: field(w, "location"),
    etag: field(w, "etag"),
    // Without the fast path only the public Headers API is read, and it
    // joins repeated fields (RFC 9110 §5.3 makes both forms equivalent).
    xMulti: fastPathEnabled() ? fields(w, "x-multi") : [fields(w, "x-multi").join(", ")],
    cacheControl: field(w, "cache-control"),
    body,
  };
}

Deno.test("connctx and Deno.serve answer the same requests with the same bytes", async () => {
  const onError = () => new Response("handler failed", { status: 500 });
  await using ours: Server = serve({ ...LOOPBACK, onError }, shared);
  await using native = Deno.serve({ ...LOOPBACK, onError }, shared);
  for (const c of CASES) {
    const [a, b] = await Promise.all([
      exchange(portOf(ours), c.request),
      exchange(portOf(native), c.request),
    ]);
    assert.deepEqual(essentials(a, c), essentials(b, c), `case "${c.name}"`);
    // The deliberate differences, pinned down.
    if (c.anyReason) {
      assert.equal(a.reason, "Custom Reason", "connctx keeps a custom statusText");
    }
    if (c.anyFraming) {
      assert.equal(a.framing, "length", "connctx sends a length for a complete stream");
      assert.equal(a.text, b.text);
    }
  }
});
