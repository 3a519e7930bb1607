// Copyright 2026 the connctx authors. MIT license.
// HTTP/2 options. The connection itself is tested end to end, against real
// peers and a raw framer, in http2_test.ts.

import assert from "node:assert/strict";
import { HTTP2_DEFAULTS, resolveHttp2Options } from "./conn.ts";

Deno.test("http2 options: defaults, validation, resolved once", () => {
  assert.deepEqual(resolveHttp2Options(), HTTP2_DEFAULTS);
  const o = { maxConcurrentStreams: 250, maxFrameSize: 65536 };
  const r = resolveHttp2Options(o);
  assert.equal(r.maxConcurrentStreams, 250);
  assert.equal(r.maxFrameSize, 65536);
  assert.equal(r.initialWindowSize, HTTP2_DEFAULTS.initialWindowSize);
  assert.equal(resolveHttp2Options(o), r, "cached per options object");
  assert.ok(Object.isFrozen(r));
  for (
    const bad of [
      { maxConcurrentStreams: 0 },
      { maxConcurrentStreams: 1.5 },
      { initialWindowSize: 2 ** 31 },
      { connectionWindowSize: 1000 },
      { maxFrameSize: 16383 },
      { maxFrameSize: 2 ** 24 },
      { resetBudget: 0 },
      { resetRefillPerSecond: -1 },
      { resetRefillPerSecond: Infinity },
    ]
  ) assert.throws(() => resolveHttp2Options(bad), TypeError, JSON.stringify(bad));
});
