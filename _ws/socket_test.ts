// Copyright 2026 the connctx authors. MIT license.
// The socket's WHATWG interface and the protocol engine, over in-memory
// pipes. Wire-level conformance over TCP is in ../websocket_test.ts.
import assert from "node:assert/strict";
import { record, socketPair, within } from "./_test_util.ts";
import { ConnctxWebSocket, startWebSocket } from "./socket.ts";
import { OP_BINARY, OP_CLOSE, OP_CONTINUATION, OP_PING, OP_PONG, OP_TEXT } from "./frame.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

function closeFrameCode(f: { payload: Uint8Array }): number {
  return f.payload.length >= 2 ? (f.payload[0] << 8) | f.payload[1] : 1005;
}

Deno.test("socket: CONNECTING until started, then open; send before throws InvalidStateError", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  assert.equal(socket.readyState, WebSocket.CONNECTING);
  assert.equal(socket.CONNECTING, 0);
  assert.equal(ConnctxWebSocket.CLOSED, 3);
  assert.throws(
    () => socket.send("x"),
    (e) => e instanceof DOMException && e.name === "InvalidStateError",
  );
  let openState = -1;
  socket.onopen = () => (openState = socket.readyState);
  start();
  assert.equal(openState, WebSocket.OPEN);
  assert.deepEqual(r.events, ["open"]);
  socket.close();
  assert.equal(socket.readyState, WebSocket.CLOSING);
  const f = await client.read();
  assert.equal(f!.opcode, OP_CLOSE);
  assert.equal(f!.payload.length, 0, "close() without a code sends an empty close frame");
  await client.sendFrame(OP_CLOSE);
  const ev = await within(r.closed, 2000, "close event");
  assert.equal(ev.code, 1005);
  assert.equal(ev.wasClean, true);
  assert.equal(socket.readyState, WebSocket.CLOSED);
});

Deno.test("socket: close() checks its arguments as the WHATWG spec says", () => {
  const { socket, start } = socketPair();
  start();
  for (const code of [0, 999, 1001, 1002, 1005, 1006, 1015, 2999, 5000, 65535, NaN]) {
    assert.throws(
      () => socket.close(code),
      (e) => e instanceof DOMException && e.name === "InvalidAccessError",
      `${code}`,
    );
  }
  // 123 bytes is the limit, counted in UTF-8 (κ is 2 bytes).
  assert.throws(
    () => socket.close(1000, "κ".repeat(62)),
    (e) => e instanceof DOMException && e.name === "SyntaxError",
  );
  assert.equal(socket.readyState, WebSocket.OPEN, "a refused close changes nothing");
  socket.close(4999, "x".repeat(123));
  assert.equal(socket.readyState, WebSocket.CLOSING);
  socket.close(1000); // no-op when closing
});

Deno.test("socket: close codes are converted as WebIDL [Clamp] unsigned short", async () => {
  for (
    const [given, sent] of [[1000.4, 1000], [1000.5, 1000], [2999.5, 3000], [3000.5, 3000]] as const
  ) {
    const { socket, start, client } = socketPair();
    start();
    socket.close(given);
    const f = await client.read();
    assert.equal(closeFrameCode(f!), sent, `${given}`);
  }
  // A reason alone is sent with code 1000.
  const { socket, start, client } = socketPair();
  start();
  socket.close(undefined, "bye");
  const f = await client.read();
  assert.equal(closeFrameCode(f!), 1000);
  assert.equal(dec.decode(f!.payload.subarray(2)), "bye");
});

Deno.test("socket: server close handshake reports the peer's code and reason", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  start();
  socket.close(4001, "bye");
  const f = await client.read();
  assert.equal(closeFrameCode(f!), 4001);
  assert.equal(dec.decode(f!.payload.subarray(2)), "bye");
  await client.sendFrame(OP_CLOSE, new Uint8Array([0x0f, 0xa1, 0x6f, 0x6b])); // 4001 "ok"
  const ev = await within(r.closed, 2000, "close");
  assert.deepEqual([ev.code, ev.reason, ev.wasClean], [4001, "ok", true]);
  await client.eof();
});

Deno.test("socket: a peer's close is echoed (code only) and reported clean", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  start();
  await client.sendFrame(OP_CLOSE, new Uint8Array([0x03, 0xe8, 0x68, 0x69])); // 1000 "hi"
  const f = await client.read();
  assert.equal(f!.opcode, OP_CLOSE);
  assert.deepEqual([...f!.payload], [0x03, 0xe8]);
  await client.eof();
  const ev = await within(r.closed, 2000, "close");
  assert.deepEqual([ev.code, ev.reason, ev.wasClean], [1000, "hi", true]);
  assert.deepEqual(r.events, ["open", "close:1000:hi:true"]);
});

Deno.test("socket: send after close discards the data and counts it in bufferedAmount", async () => {
  const { socket, start, client } = socketPair();
  start();
  socket.close(1000);
  socket.send("héllo"); // 6 bytes in UTF-8
  socket.send(new Uint8Array(10));
  assert.equal(socket.bufferedAmount, 16);
  const f = await client.read();
  assert.equal(f!.opcode, OP_CLOSE, "nothing was sent after the close frame");
});

Deno.test("socket: bufferedAmount is exact while a slow peer holds the data", async () => {
  const { socket, start, client } = socketPair({}, 1024);
  start();
  const big = "€".repeat(10_000); // 30 000 bytes
  socket.send(big);
  socket.send(new Uint8Array(5000));
  socket.send(new Blob([new Uint8Array(700)]));
  assert.equal(socket.bufferedAmount, 30_000 + 5000 + 700);
  let got = 0;
  while (got < 3) {
    const f = await client.read();
    got++;
    if (got === 1) assert.equal(dec.decode(f!.payload), big);
  }
  // Once everything was taken by the peer, nothing is left buffered.
  assert.equal(socket.bufferedAmount, 0);
  socket.close();
});

Deno.test("socket: Blob sends keep their place in the order", async () => {
  const { socket, start, client } = socketPair();
  start();
  socket.send("a");
  socket.send(new Blob(["b-blob"]));
  socket.send("c");
  socket.send(new Blob([new Uint8Array([1, 2, 3])]));
  socket.send(new Uint8Array([4]));
  const seen: string[] = [];
  for (let i = 0; i < 5; i++) {
    const f = (await client.read())!;
    seen.push(`${f.opcode}:${f.opcode === OP_TEXT ? dec.decode(f.payload) : f.payload.length}`);
  }
  assert.deepEqual(seen, ["1:a", "2:6", "1:c", "2:3", "2:1"]);
});

Deno.test("socket: send snapshots binary data at call time", async () => {
  const { socket, start, client } = socketPair();
  start();
  const data = new Uint8Array([1, 2, 3]);
  socket.send(data);
  socket.send(data.subarray(1).buffer.slice(0)); // ArrayBuffer
  data[0] = 9;
  assert.deepEqual([...(await client.read())!.payload], [1, 2, 3]);
  assert.deepEqual([...(await client.read())!.payload], [1, 2, 3]);
  // Anything else is sent as its string.
  socket.send(42 as unknown as string);
  assert.equal(dec.decode((await client.read())!.payload), "42");
});

Deno.test("socket: binaryType — arraybuffer by default (as Deno's server socket), blob on request", async () => {
  const { socket, start, client } = socketPair();
  assert.equal(socket.binaryType, "arraybuffer");
  socket.binaryType = "nonsense" as BinaryType; // ignored, as a WebIDL enum
  assert.equal(socket.binaryType, "arraybuffer");
  const got: unknown[] = [];
  socket.onmessage = (e) => got.push(e.data);
  start();
  await client.sendFrame(OP_BINARY, new Uint8Array([1, 2]));
  await client.sendFrame(OP_PING);
  await client.read(); // pong: the message was handled before it
  socket.binaryType = "blob";
  await client.sendFrame(OP_BINARY, new Uint8Array([3]));
  await client.sendFrame(OP_PING);
  await client.read();
  assert.ok(got[0] instanceof ArrayBuffer);
  assert.equal((got[0] as ArrayBuffer).byteLength, 2);
  assert.ok(got[1] instanceof Blob);
  assert.deepEqual([...new Uint8Array(await (got[1] as Blob).arrayBuffer())], [3]);
});

Deno.test("socket: on* attributes — one listener each, replaced in place, null removes", async () => {
  const { socket, start, client } = socketPair();
  const order: string[] = [];
  socket.addEventListener("message", () => order.push("first"));
  socket.onmessage = () => order.push("attr-1");
  socket.addEventListener("message", () => order.push("last"));
  socket.onmessage = () => order.push("attr-2"); // keeps the attribute's position
  assert.equal(typeof socket.onmessage, "function");
  start();
  await client.sendFrame(OP_TEXT, "x");
  await client.sendFrame(OP_PING);
  await client.read();
  assert.deepEqual(order, ["first", "attr-2", "last"]);
  socket.onmessage = null;
  assert.equal(socket.onmessage, null);
  await client.sendFrame(OP_TEXT, "y");
  await client.sendFrame(OP_PING);
  await client.read();
  assert.deepEqual(order, ["first", "attr-2", "last", "first", "last"]);
});

Deno.test("socket: fragments with interleaved pings — pongs in between, one message at the end", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  start();
  await client.sendFrame(OP_TEXT, "frag", { fin: false });
  await client.sendFrame(OP_PING, "p1");
  await client.sendFrame(OP_CONTINUATION, "men", { fin: false });
  await client.sendFrame(OP_PING, "p2");
  await client.sendFrame(OP_CONTINUATION, "ts");
  const p1 = (await client.read())!;
  const p2 = (await client.read())!;
  assert.deepEqual([p1.opcode, dec.decode(p1.payload)], [OP_PONG, "p1"]);
  assert.deepEqual([p2.opcode, dec.decode(p2.payload)], [OP_PONG, "p2"]);
  await client.sendFrame(OP_CLOSE, new Uint8Array([3, 232]));
  await within(r.closed, 2000, "close");
  assert.deepEqual(r.events, ["open", "text:fragments", "close:1000::true"]);
});

Deno.test("socket: a UTF-8 code point split across fragments is fine; bad UTF-8 fails fast (1007)", async () => {
  {
    const { socket, start, client } = socketPair();
    const r = record(socket);
    start();
    const euro = enc.encode("€");
    await client.sendFrame(OP_TEXT, euro.subarray(0, 1), { fin: false });
    await client.sendFrame(OP_CONTINUATION, euro.subarray(1, 2), { fin: false });
    await client.sendFrame(OP_CONTINUATION, euro.subarray(2));
    await client.sendFrame(OP_CLOSE);
    await within(r.closed, 2000, "close");
    assert.deepEqual(r.events.slice(0, 2), ["open", "text:€"]);
  }
  {
    // The invalid byte arrives in the middle of a frame whose rest never
    // comes: the server must not wait for the frame's end.
    const { socket, start, client } = socketPair();
    const r = record(socket);
    start();
    const frame = (await import("./_test_util.ts")).RawWsClient.frame(
      OP_TEXT,
      new Uint8Array([0x68, 0x69, 0xed, 0xa0, 0x80, 0x41, 0x42, 0x43, 0x44]),
    );
    await client.send(frame.subarray(0, 6 + 4)); // header + "hi" + ED A0
    const f = await client.read(2000);
    assert.equal(closeFrameCode(f!), 1007);
    await client.eof();
    client.t.close();
    const ev = await within(r.closed, 2000, "close");
    assert.equal(ev.code, 1006);
    assert.equal(ev.wasClean, false);
    assert.deepEqual(r.events, ["open", "error", "close:1006::false"]);
  }
});

Deno.test("socket: a length over maxMessageBytes fails (1009) from the header alone", async () => {
  const { socket, start, client } = socketPair({ maxMessageBytes: 1024 });
  const r = record(socket);
  start();
  const { RawWsClient } = await import("./_test_util.ts");
  // Announce 80 MiB, send nothing of it.
  await client.send(RawWsClient.frame(OP_BINARY, new Uint8Array(0), { length: 80n << 20n }));
  const f = await client.read(2000);
  assert.equal(closeFrameCode(f!), 1009);
  await client.eof();
  client.t.close();
  await within(r.closed, 2000, "close");
});

Deno.test("socket: fragments adding up past maxMessageBytes fail (1009) at the fragment that crosses", async () => {
  const { socket, start, client } = socketPair({ maxMessageBytes: 64 * 1024 });
  const r = record(socket);
  start();
  const chunk = new Uint8Array(16 * 1024);
  await client.sendFrame(OP_BINARY, chunk, { fin: false });
  for (let i = 0; i < 3; i++) await client.sendFrame(OP_CONTINUATION, chunk, { fin: false });
  await client.sendFrame(OP_CONTINUATION, new Uint8Array(1), { fin: false }); // 64 KiB + 1
  const f = await client.read(2000);
  assert.equal(closeFrameCode(f!), 1009);
  await client.eof();
  client.t.close();
  await within(r.closed, 2000, "close");
  assert.deepEqual(r.events, ["open", "error", "close:1006::false"]);
});

Deno.test("socket: idleTimeout pings a silent peer, then closes with 1001", async () => {
  const { socket, start, client } = socketPair({ idleTimeout: 0.3 });
  const r = record(socket);
  let errorMessage = "";
  socket.onerror = (e) => (errorMessage = (e as ErrorEvent).message);
  start();
  const ping = await client.read(2000);
  assert.equal(ping!.opcode, OP_PING);
  const close = await client.read(2000);
  assert.equal(closeFrameCode(close!), 1001);
  assert.equal(dec.decode(close!.payload.subarray(2)), "No response from ping frame.");
  const ev = await within(r.closed, 3000, "close");
  assert.equal(ev.code, 1006);
  assert.equal(errorMessage, "No response from ping frame.");
});

Deno.test("socket: idleTimeout — a peer that answers pings stays open", async () => {
  const { socket, start, client } = socketPair({ idleTimeout: 0.2 });
  const r = record(socket);
  start();
  const until = Date.now() + 700;
  let pings = 0;
  while (Date.now() < until) {
    const f = await client.read(2000);
    assert.equal(f!.opcode, OP_PING);
    pings++;
    await client.sendFrame(OP_PONG, f!.payload);
  }
  assert.ok(pings >= 2, `${pings} pings`);
  assert.equal(socket.readyState, WebSocket.OPEN);
  socket.close();
  await client.readClose();
  await client.sendFrame(OP_CLOSE);
  await within(r.closed, 2000, "close");
});

Deno.test("socket: a peer that stops reading is cut after writeTimeout", async () => {
  const { socket, start } = socketPair({ writeTimeout: 200 }, 64 * 1024);
  const r = record(socket);
  let errorMessage = "";
  socket.onerror = (e) => (errorMessage = (e as ErrorEvent).message);
  start();
  // The client never reads: the pipe takes 64 KiB, then writes stall.
  const chunk = new Uint8Array(256 * 1024);
  socket.send(chunk);
  socket.send(chunk);
  const t0 = Date.now();
  const ev = await within(r.closed, 3000, "close after writeTimeout");
  const took = Date.now() - t0;
  assert.equal(ev.code, 1006);
  assert.equal(ev.wasClean, false);
  assert.match(errorMessage, /write timed out/);
  assert.ok(took >= 150 && took < 2000, `${took} ms`);
  // Memory: nothing stays queued after the cut.
  socket.send(chunk);
  assert.equal(socket.readyState, WebSocket.CLOSED);
});

Deno.test("socket: no close reply within closeTimeout — closed unclean (1006)", async () => {
  const { socket, start, client } = socketPair({ closeTimeout: 200 });
  const r = record(socket);
  start();
  socket.close(1000);
  await client.read(); // the close frame; no reply
  const ev = await within(r.closed, 3000, "close");
  assert.deepEqual([ev.code, ev.wasClean], [1006, false]);
  assert.deepEqual(r.events, ["open", "close:1006::false"], "a timed-out close is not an error");
});

Deno.test("socket: EOF without a close frame — error, then close 1006", async () => {
  const { socket, start, clientEnd } = socketPair();
  const r = record(socket);
  start();
  clientEnd.close();
  const ev = await within(r.closed, 2000, "close");
  assert.deepEqual([ev.code, ev.wasClean], [1006, false]);
  assert.deepEqual(r.events, ["open", "error", "close:1006::false"]);
});

Deno.test("socket: messages arriving after our close frame are dropped", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  start();
  socket.close(1000);
  await client.sendFrame(OP_TEXT, "late");
  await client.sendFrame(OP_CLOSE, new Uint8Array([3, 232]));
  await within(r.closed, 2000, "close");
  assert.deepEqual(r.events, ["open", "close:1000::true"]);
});

Deno.test("socket: close() before the 101 went out — no open, close frame first thing", async () => {
  const { socket, start, client } = socketPair();
  const r = record(socket);
  socket.close(4000, "changed my mind");
  assert.equal(socket.readyState, WebSocket.CLOSING);
  start();
  const f = await client.read();
  assert.equal(closeFrameCode(f!), 4000);
  await client.sendFrame(OP_CLOSE, new Uint8Array([0x0f, 0xa0]));
  await within(r.closed, 2000, "close");
  assert.deepEqual(r.events, ["close:4000::true"]);
});

Deno.test("socket: bytes pipelined after the handshake are read first", async () => {
  const { pipe, RawWsClient } = await import("./_test_util.ts");
  const [a, b] = pipe();
  const socket = new ConnctxWebSocket({ url: "ws://test/" });
  const r = record(socket);
  const early = RawWsClient.frame(OP_TEXT, "early");
  startWebSocket(socket, a, early);
  const client = new RawWsClient(b);
  await client.sendFrame(OP_TEXT, "later");
  await client.sendFrame(OP_CLOSE);
  await within(r.closed, 2000, "close");
  assert.deepEqual(r.events, ["open", "text:early", "text:later", "close:1005::true"]);
});

Deno.test("socket: large messages stream into their own buffer, byte-exact", async () => {
  const { socket, start, client } = socketPair();
  socket.onmessage = (e) => socket.send(e.data);
  start();
  const big = new Uint8Array(3 * 1024 * 1024 + 7);
  for (let o = 0; o < big.length; o += 65536) crypto.getRandomValues(big.subarray(o, o + 65536));
  // Sent in odd-sized pieces, so headers and payloads straddle reads.
  const { RawWsClient } = await import("./_test_util.ts");
  const f = RawWsClient.frame(OP_BINARY, big);
  for (let o = 0; o < f.length; o += 100_003) await client.send(f.subarray(o, o + 100_003));
  const echo = (await client.read(5000))!;
  assert.equal(echo.opcode, OP_BINARY);
  assert.deepEqual(echo.payload, big);
  const text = "κόσμε ".repeat(30_000);
  await client.sendFrame(OP_TEXT, text);
  assert.equal(dec.decode((await client.read(5000))!.payload), text);
  socket.close();
});

Deno.test("socket: an error thrown by a listener does not break the engine", async () => {
  const { socket, start, client } = socketPair();
  const errors: unknown[] = [];
  const onError = (e: ErrorEvent) => {
    errors.push(e.error);
    e.preventDefault();
  };
  globalThis.addEventListener("error", onError);
  try {
    socket.onmessage = (e) => {
      if (e.data === "boom") throw new Error("listener failed");
      socket.send(e.data);
    };
    start();
    await client.sendFrame(OP_TEXT, "boom");
    await client.sendFrame(OP_TEXT, "fine");
    assert.equal(dec.decode((await client.read())!.payload), "fine");
    assert.equal(errors.length, 1);
  } finally {
    globalThis.removeEventListener("error", onError);
    socket.close();
  }
});
