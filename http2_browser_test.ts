// Copyright 2026 the connctx authors. MIT license.
// A real browser over HTTP/2: headless Chromium (driven by puppeteer-core)
// loads a page from a connctx TLS server (a self-signed certificate, ALPN)
// and the page fetches 20 subresources at once. The server must see them
// over HTTP/2, as concurrent streams of one connection, each request with
// its own context; the page's Resource Timing must say `h2`.
//
// Skipped, with a message, when /usr/bin/chromium, openssl (for the
// certificate) or npm:puppeteer-core is missing. Every wait is bounded.

import assert from "node:assert/strict";
import type { Context } from "./context.ts";
import { serve } from "./server.ts";
import { testCerts } from "./_http2/_test_harness.ts";

const CHROMIUM = "/usr/bin/chromium";
const NAME =
  "browser: headless Chromium loads a page and 20 subresources over HTTP/2 (TLS, ALPN h2)";
const COUNT = 20;

/** The few puppeteer calls used here (its own typings are not needed). */
interface Tab {
  goto(url: string, o: { timeout: number; waitUntil: string }): Promise<unknown>;
  evaluate<T>(fn: () => T): Promise<Awaited<T>>;
}
interface Browser {
  newPage(): Promise<Tab>;
  close(): Promise<void>;
  process(): { kill(signal?: string): boolean } | null;
}
interface Puppeteer {
  launch(o: {
    executablePath: string;
    headless: boolean;
    args: string[];
    timeout: number;
  }): Promise<Browser>;
}

/** `p`, or a failure naming `what` after `ms`. */
async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the test needs, or why it can't run here. */
async function prepare(): Promise<
  { why: string } | { certs: { cert: string; key: string }; puppeteer: Puppeteer }
> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    return { why: `${CHROMIUM} is not installed` };
  }
  const certs = await testCerts();
  if (certs === null) return { why: "openssl is missing or failed (no certificate)" };
  try {
    const puppeteer =
      // deno-lint-ignore no-import-prefix
      ((await import("npm:puppeteer-core@23")) as unknown as { default: Puppeteer }).default;
    return { certs, puppeteer };
  } catch (e) {
    return { why: `npm:puppeteer-core is unavailable (${(e as Error).message})` };
  }
}

/** The page: 20 fetches at once, then what Resource Timing says of them. */
const PAGE = `<!doctype html><meta charset="utf-8"><title>h2</title><script>
  window.result = Promise.all(Array.from({ length: ${COUNT} }, (_, i) =>
    fetch("/r/" + i, { cache: "no-store" }).then((r) => r.json())
  )).then((bodies) => ({
    bodies,
    protocols: performance.getEntriesByType("resource")
      .filter((e) => new URL(e.name).pathname.startsWith("/r/"))
      .map((e) => e.nextHopProtocol),
  }));
</script>`;

/** What the server saw of one request. */
interface Seen {
  path: string;
  conn: number;
  alpn: string | null;
  context: Context;
}

const env = await prepare();
if ("why" in env) {
  // Reported as ignored, with the reason: never a silent pass.
  console.log(`SKIP ${NAME}: ${env.why}`);
  Deno.test({ name: `${NAME} (SKIPPED: ${env.why})`, ignore: true, fn() {} });
} else {
  const { certs, puppeteer } = env;
  Deno.test(NAME, async () => {
    const seen: Seen[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    // Each subresource is held until all 20 are in flight (or 5 s passed):
    // they are concurrent streams, not requests one after another.
    const all = Promise.withResolvers<void>();
    const server = serve({
      port: 0,
      hostname: "127.0.0.1",
      onListen() {},
      cert: certs.cert,
      key: certs.key,
    }, async (req, info) => {
      const path = new URL(req.url).pathname;
      seen.push({
        path,
        conn: info.conn.id,
        alpn: info.conn.tls?.alpnProtocol ?? null,
        context: info.context,
      });
      if (!path.startsWith("/r/")) {
        if (path !== "/") return new Response("not found", { status: 404 });
        return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      }
      maxInFlight = Math.max(maxInFlight, ++inFlight);
      if (inFlight === COUNT) all.resolve();
      let timer: ReturnType<typeof setTimeout> | undefined;
      try {
        await Promise.race([all.promise, new Promise((r) => (timer = setTimeout(r, 5000)))]);
      } finally {
        clearTimeout(timer);
        inFlight--;
      }
      return Response.json({ path, conn: info.conn.id, live: info.context.err === undefined });
    });
    const port = (server.addr as Deno.NetAddr).port;
    const profile = await Deno.makeTempDir({ prefix: "connctx-chromium-" });
    let browser: Browser | null = null;
    try {
      browser = await bounded(
        puppeteer.launch({
          executablePath: CHROMIUM,
          headless: true,
          timeout: 20_000,
          args: [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--ignore-certificate-errors",
            `--user-data-dir=${profile}`,
          ],
        }),
        30_000,
        "Chromium launched",
      );
      const tab = await bounded(browser.newPage(), 10_000, "a new tab");
      await bounded(
        tab.goto(`https://localhost:${port}/`, { timeout: 10_000, waitUntil: "load" }),
        15_000,
        "the page loaded",
      );
      const r = await bounded(
        tab.evaluate(() =>
          (globalThis as unknown as {
            result: Promise<{
              bodies: { path: string; conn: number; live: boolean }[];
              protocols: string[];
            }>;
          }).result
        ),
        15_000,
        "the page's fetches",
      );

      // The page got every answer, each from a live request context.
      assert.deepEqual(
        r.bodies.map((b) => b.path),
        Array.from({ length: COUNT }, (_, i) => `/r/${i}`),
      );
      assert.ok(r.bodies.every((b) => b.live), "each handler ran with a live context");
      // Resource Timing in the page: every subresource came over h2.
      assert.equal(r.protocols.length, COUNT, `resource entries: ${JSON.stringify(r.protocols)}`);
      assert.deepEqual(r.protocols, Array(COUNT).fill("h2"));

      // The server: the page and the 20 subresources over TLS with ALPN h2,
      // all on ONE connection, all 20 in flight at once.
      const subs = seen.filter((s) => s.path.startsWith("/r/"));
      assert.equal(subs.length, COUNT);
      const page = seen.find((s) => s.path === "/");
      assert.ok(page !== undefined, "the page was served");
      for (const s of [page, ...subs]) assert.equal(s.alpn, "h2", `${s.path} negotiated h2`);
      const conns = new Set(subs.map((s) => s.conn));
      assert.equal(conns.size, 1, `subresources on connections ${[...conns]}`);
      assert.equal(page.conn, subs[0].conn, "the page and its subresources share the connection");
      assert.equal(maxInFlight, COUNT, "the 20 requests were concurrent streams");
      // Each request its own context, ended with its response; the
      // connection's context (their common parent) outlives them.
      assert.equal(new Set(subs.map((s) => s.context)).size, COUNT, "one context per request");
      await bounded(
        Promise.all(subs.map((s) => s.context.done)),
        5000,
        "every request context ended",
      );
    } finally {
      if (browser !== null) {
        const b = browser;
        await bounded(b.close(), 10_000, "Chromium closed").catch((e) => {
          b.process()?.kill("SIGKILL");
          console.error(e);
        });
      }
      await bounded(server.shutdown(), 10_000, "server shut down").catch((e) => {
        server.close();
        console.error(e);
      });
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    }
  });
}
