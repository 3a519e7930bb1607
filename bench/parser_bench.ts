// Micro-benchmarks for the HTTP/1.1 request-head parser (_http1/parser.ts).
//
//   deno bench bench/parser_bench.ts
//
// Deno.bench reports time per iteration; one iteration parses one request
// head, so "time/iter" is ns per request. Before the table, a quick timed loop
// prints ns/request and throughput (MB/s of head bytes) for each head.

import { DEFAULT_LIMITS, findHeadEnd, parseHead, type RequestHead } from "../_http1/parser.ts";

const encoder = new TextEncoder();

/** A typical Chrome navigation request head (~500 bytes, 10 fields). */
const CHROME = encoder.encode(
  [
    "GET /docs/getting-started?lang=en HTTP/1.1",
    "Host: www.example.com",
    "Connection: keep-alive",
    'sec-ch-ua: "Chromium";v="131", "Not_A Brand";v="24"',
    'sec-ch-ua-platform: "Linux"',
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 " +
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9," +
    "image/avif,image/webp,*/*;q=0.8",
    "Sec-Fetch-Site: same-origin",
    "Sec-Fetch-Mode: navigate",
    "Accept-Encoding: gzip, deflate, br, zstd",
    "Accept-Language: en-US,en;q=0.9",
    "",
    "",
  ].join("\r\n"),
);

/** What wrk sends: the smallest realistic head. */
const MINIMAL = encoder.encode(
  "GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
);

/** A JSON API POST with a body length. */
const POST = encoder.encode(
  [
    "POST /api/v1/orders HTTP/1.1",
    "Host: api.example.com",
    "Content-Type: application/json",
    "Content-Length: 348",
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0." +
    "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "Accept: application/json",
    "User-Agent: node-fetch",
    "",
    "",
  ].join("\r\n"),
);

const HEADS = [
  { name: "Chrome GET", bytes: CHROME },
  { name: "minimal GET (wrk)", bytes: MINIMAL },
  { name: "API POST", bytes: POST },
];

/** What the server does per request: find the head's end, then parse it. */
function parse(buf: Uint8Array): RequestHead {
  const end = findHeadEnd(buf, 0, buf.byteLength);
  if (end < 0) throw new Error("incomplete head");
  return parseHead(buf, 0, end, DEFAULT_LIMITS);
}

// Sanity check, so the numbers measure a successful parse.
{
  const head = parse(CHROME);
  if (head.method !== "GET" || head.headers.length !== 2 * 10) {
    throw new Error(`unexpected parse: ${JSON.stringify(head)}`);
  }
}

let sink = 0;

for (const { name, bytes } of HEADS) {
  Deno.bench({
    name: `findHeadEnd + parseHead: ${name} (${bytes.byteLength} B)`,
    group: "parse",
    baseline: bytes === CHROME,
    fn() {
      sink += parse(bytes).headers.length;
    },
  });
}

{
  const end = findHeadEnd(CHROME, 0, CHROME.byteLength);
  Deno.bench({
    name: `parseHead only: Chrome GET (${CHROME.byteLength} B)`,
    group: "split",
    fn() {
      sink += parseHead(CHROME, 0, end, DEFAULT_LIMITS).headers.length;
    },
  });
  Deno.bench({
    name: `findHeadEnd only: Chrome GET (${CHROME.byteLength} B)`,
    group: "split",
    fn() {
      sink += findHeadEnd(CHROME, 0, CHROME.byteLength);
    },
  });
}

/**
 * ns per parse of `bytes`: after a warm-up, the fastest of `windows` timed
 * windows of about 100 ms each (the fastest is the least disturbed by other
 * load on a shared machine).
 */
function nsPerParse(bytes: Uint8Array, windows: number): number {
  for (let i = 0; i < 200_000; i++) sink += parse(bytes).headers.length;
  let best = Infinity;
  for (let w = 0; w < windows; w++) {
    let n = 0;
    const start = performance.now();
    let elapsed = 0;
    while (elapsed < 100) {
      for (let i = 0; i < 1_000; i++) sink += parse(bytes).headers.length;
      n += 1_000;
      elapsed = performance.now() - start;
    }
    best = Math.min(best, (elapsed * 1e6) / n);
  }
  return best;
}

for (const { name, bytes } of HEADS) {
  const ns = nsPerParse(bytes, 5);
  const mbPerSecond = bytes.byteLength / ns * 1e3; // bytes/ns = GB/s
  console.log(
    `throughput ${name} (${bytes.byteLength} B): ${ns.toFixed(0)} ns/request, ` +
      `${mbPerSecond.toFixed(0)} MB/s`,
  );
}

addEventListener("unload", () => {
  if (sink === -1) console.log(sink);
});
