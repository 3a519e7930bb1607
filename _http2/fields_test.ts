// Copyright 2026 the connctx authors. MIT license.
// Request field validation (RFC 9113 §8.2, §8.3) and the mapping onto the
// exchange layer's head.

import assert from "node:assert/strict";
import { checkTrailers, requestHead } from "./fields.ts";
import { H2Error, PROTOCOL_ERROR } from "./frame.ts";

const BASE = [":method", "GET", ":scheme", "https", ":path", "/a?b=c", ":authority", "ex.com"];

function malformed(fields: string[], why: string): void {
  assert.throws(() => requestHead(fields, 3), (e: unknown) => {
    assert.ok(e instanceof H2Error, why);
    assert.equal(e.code, PROTOCOL_ERROR, why);
    assert.equal(e.stream, 3, `${why}: a stream error`);
    return true;
  }, why);
}

Deno.test("fields: a request maps onto the head", () => {
  const h = requestHead([...BASE, "accept", "*/*", "cookie", "a=1", "cookie", "b=2"], 1);
  assert.equal(h.method, "GET");
  assert.equal(h.target, "/a?b=c");
  assert.equal(h.form, 0);
  assert.equal(h.authority, "ex.com");
  assert.equal(h.scheme, "https");
  assert.equal(h.contentLength, -1);
  // Host from :authority first; cookie crumbs joined with "; " (§8.2.3).
  assert.deepEqual(h.headers, ["host", "ex.com", "accept", "*/*", "cookie", "a=1; b=2"]);
  // Host without :authority.
  const h2 = requestHead([":method", "GET", ":scheme", "http", ":path", "/", "host", "h:1"], 1);
  assert.equal(h2.authority, "h:1");
  assert.deepEqual(h2.headers, ["host", "h:1"]);
  // OPTIONS *.
  const o = requestHead(
    [":method", "OPTIONS", ":scheme", "http", ":path", "*", ":authority", "a"],
    1,
  );
  assert.equal(o.form, 2);
  // CONNECT: authority-form.
  const c = requestHead([":method", "CONNECT", ":authority", "a:443"], 1);
  assert.equal(c.form, 3);
  assert.equal(c.target, "a:443");
  // content-length, repeated identically.
  assert.equal(
    requestHead([...BASE, "content-length", "12", "content-length", "12"], 1).contentLength,
    12,
  );
  // te: trailers; methods are case-sensitive tokens.
  requestHead([...BASE, "te", "trailers"], 1);
  assert.equal(requestHead([":method", "PATCH", ...BASE.slice(2)], 1).method, "PATCH");
});

Deno.test("fields: malformed requests are stream PROTOCOL_ERRORs", () => {
  const cases: [string[], string][] = [
    [[...BASE, "Accept", "x"], "upper-case name"],
    [[...BASE, "a b", "x"], "space in a name"],
    [[...BASE, "", "x"], "empty name"],
    [[...BASE, "x:y", "1"], "colon in a regular name"],
    [[...BASE, ":foo", "1"], "unknown pseudo-header"],
    [[...BASE, ":status", "200"], "response pseudo-header"],
    [[":method", "GET", ...BASE], "duplicate :method"],
    [[...BASE.slice(0, 6), "x", "1", ...BASE.slice(6)], "pseudo-header after a field"],
    [[...BASE, "connection", "close"], "connection"],
    [[...BASE, "keep-alive", "1"], "keep-alive"],
    [[...BASE, "proxy-connection", "1"], "proxy-connection"],
    [[...BASE, "transfer-encoding", "chunked"], "transfer-encoding"],
    [[...BASE, "upgrade", "websocket"], "upgrade"],
    [[...BASE, "te", "gzip"], "te other than trailers"],
    [[...BASE, "x", "a\r\nb"], "CRLF in a value"],
    [[...BASE, "x", "a\0b"], "NUL in a value"],
    [[...BASE, "x", "a "], "trailing space"],
    [[...BASE, "x", "\ta"], "leading tab"],
    [BASE.slice(2), "no :method"],
    [[...BASE.slice(0, 2), ...BASE.slice(4)], "no :scheme"],
    [[...BASE.slice(0, 4), ...BASE.slice(6)], "no :path"],
    [[":method", "GET", ":scheme", "http", ":path", "", ":authority", "a"], "empty :path"],
    [
      [":method", "GET", ":scheme", "http", ":path", "a", ":authority", "a"],
      ":path not origin-form",
    ],
    [[":method", "GET", ":scheme", "http", ":path", "/#f", ":authority", "a"], "fragment"],
    [[":method", "GET", ":scheme", "http", ":path", "*", ":authority", "a"], "* without OPTIONS"],
    [[":method", "G T", ...BASE.slice(2)], "invalid method"],
    [[...BASE.slice(0, 6), ":authority", "u@h"], "userinfo in :authority"],
    [[...BASE.slice(0, 6), ":authority", "a b"], "space in :authority"],
    [[...BASE, "host", "other"], "host differs from :authority"],
    [[...BASE, "content-length", "1x"], "bad content-length"],
    [[...BASE, "content-length", "1", "content-length", "2"], "conflicting content-length"],
    [[":method", "CONNECT", ":authority", "a:1", ":path", "/"], "CONNECT with :path"],
    [[":method", "CONNECT"], "CONNECT without :authority"],
  ];
  for (const [f, why] of cases) malformed(f, why);
});

Deno.test("fields: trailers carry no pseudo-headers", () => {
  checkTrailers(["x-sum", "abc"], 1);
  assert.throws(() => checkTrailers([":path", "/"], 1), H2Error);
  assert.throws(() => checkTrailers(["X-Sum", "1"], 1), H2Error);
});
