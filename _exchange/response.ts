// Copyright 2026 the connctx authors. MIT license.
// Reads a `Response` into what the writer needs: status, header lines, body.
//
// The public path uses only web APIs. It costs a few microseconds per
// response (iterating `Headers`, and reading a `ReadableStream` to learn that
// a body is a plain string). Deno keeps the original body and header list of
// a `Response` under internal symbols; when a self-test at load time proves we
// can read them exactly (status, headers, string/bytes/stream bodies), a fast
// path reads them directly and skips both costs. Any mismatch disables the
// fast path for the life of the process, so a future Deno falls back to the
// public path rather than misbehaving. `CONNCTX_NO_FAST_PATH=1` disables it.

import { internalsDisabled } from "./internals.ts";

/** What a response is made of, ready to frame. */
export interface Parts {
  status: number;
  statusText: string;
  /** Header fields, `[name, value]`, any case, in order (Set-Cookie apart). */
  headers: Iterable<[string, string]>;
  /** `null`: no body; string/bytes: a whole body; stream: chunks. */
  body: string | Uint8Array | ReadableStream<Uint8Array> | null;
}

const TEXT_PLAIN: [string, string][] = [["content-type", "text/plain;charset=UTF-8"]];
const NONE: [string, string][] = [];

type Fast = {
  inner: symbol;
  status: symbol;
  body: symbol;
  kind: symbol;
  ctype: symbol;
  consumed: symbol;
};

function symbols(o: object): Map<string, symbol> {
  const m = new Map<string, symbol>();
  for (const s of Object.getOwnPropertySymbols(o)) {
    if (s.description !== undefined) m.set(s.description, s);
  }
  return m;
}

function detect(): Fast | null {
  if (internalsDisabled()) return null;
  try {
    const m = symbols(new Response("probe"));
    const f: Fast = {
      inner: m.get("response")!,
      status: m.get("serve fast status")!,
      body: m.get("serve fast body")!,
      kind: m.get("serve fast header kind")!,
      ctype: m.get("serve fast content type")!,
      consumed: m.get("serve fast consumed")!,
    };
    if (Object.values(f).some((s) => s === undefined)) return null;
    fast = f;
    // Every shape the fast path reads must read back exactly as the public
    // API says it should.
    const probes: [Response, number, string, string | null, string][] = [
      [new Response("héllo"), 200, "", "text/plain;charset=UTF-8", "héllo"],
      [Response.json({ a: 1 }), 200, "", "application/json", '{"a":1}'],
      [new Response(new Uint8Array([104, 105])), 200, "", null, "hi"],
      [
        new Response("x", { status: 201, statusText: "Made", headers: { "x-a": "1" } }),
        201,
        "Made",
        "text/plain;charset=UTF-8",
        "x",
      ],
      [new Response(null, { status: 204 }), 204, "", null, ""],
    ];
    for (const [res, status, text, ctype, body] of probes) {
      const p = fastParts(res);
      if (p === null || p.status !== status || p.statusText !== text) return off();
      let ct: string | null = null;
      let xa: string | null = null;
      for (const [k, v] of p.headers) {
        if (k.toLowerCase() === "content-type") ct = v;
        if (k.toLowerCase() === "x-a") xa = v;
      }
      if (ct !== ctype || (status === 201 && xa !== "1")) return off();
      const b = p.body;
      const s = b === null
        ? ""
        : typeof b === "string"
        ? b
        : b instanceof Uint8Array
        ? new TextDecoder().decode(b)
        : null;
      if (s !== body) return off();
    }
    const stream = new ReadableStream<Uint8Array>();
    const sp = fastParts(new Response(stream));
    if (sp === null || sp.body !== stream) return off();
    const touched = new Response("t", { headers: [["set-cookie", "a=1"], ["set-cookie", "b=2"]] });
    touched.headers.append("x-b", "2");
    const tp = fastParts(touched);
    if (tp === null) return off();
    const names = [...tp.headers].map(([k, v]) => `${k.toLowerCase()}=${v}`).join("|");
    if (names !== "set-cookie=a=1|set-cookie=b=2|content-type=text/plain;charset=UTF-8|x-b=2") {
      return off();
    }
    return f;
  } catch {
    return off();
  }
}

function off(): null {
  fast = null;
  return null;
}

let fast: Fast | null = null;
fast = detect();

/** Whether the internal fast path is in use (for tests and benchmarks). */
export function fastPathEnabled(): boolean {
  return fast !== null;
}

type Inner = {
  status: number;
  statusMessage: string;
  headerList: [string, string][];
  body: null | {
    streamOrStatic: ReadableStream<Uint8Array> | {
      body: string | Uint8Array;
      consumed: boolean;
    };
  };
};

function fastParts(res: Response): Parts | null {
  const f = fast!;
  const r = res as unknown as Record<symbol, unknown>;
  const st = r[f.status];
  if (typeof st === "number" && st !== 0 && r[f.consumed] === false) {
    // Deno marks any 200 "fast", even one with a custom statusText (which
    // Deno.serve drops). Keep the text: take the public path for it.
    if ((r[f.inner] as Inner | undefined)?.statusMessage) return null;
    const kind = r[f.kind];
    const body = r[f.body];
    if (body !== null && typeof body !== "string" && !(body instanceof Uint8Array)) return null;
    let headers: [string, string][];
    if (kind === 0) headers = NONE;
    else if (kind === 1) headers = TEXT_PLAIN;
    else if (kind === 2 && typeof r[f.ctype] === "string") {
      headers = [["content-type", r[f.ctype] as string]];
    } else return null;
    return { status: st, statusText: "", headers, body };
  }
  const inner = r[f.inner] as Inner | undefined;
  if (inner === undefined || !Array.isArray(inner.headerList)) return null;
  const b = inner.body;
  let body: Parts["body"] = null;
  if (b !== null) {
    const sos = b.streamOrStatic;
    if (sos instanceof ReadableStream) body = sos;
    else if (sos.consumed) throw new TypeError("Response body already consumed");
    else if (typeof sos.body === "string" || sos.body instanceof Uint8Array) body = sos.body;
    else return null;
  }
  return {
    status: inner.status,
    statusText: inner.statusMessage ?? "",
    headers: inner.headerList,
    body,
  };
}

/**
 * Takes a handler's `Response` apart.
 *
 * @param res The response.
 * @returns Its parts. The body is a stream unless it is known to be whole.
 */
export function responseParts(res: Response): Parts {
  if (fast !== null) {
    const p = fastParts(res);
    if (p !== null) return p;
  }
  if (res.bodyUsed) throw new TypeError("Response body already consumed");
  return {
    status: res.status,
    statusText: res.statusText,
    headers: res.headers,
    body: res.body,
  };
}
