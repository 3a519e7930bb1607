// Copyright 2026 the connctx authors. MIT license.
// Owns: the `Request` a handler receives, for every protocol — a lazily
// materialised facade over a parsed head (`Head`) and its exchange.
//
// `new Request(...)` costs microseconds (URL parsing, Headers, AbortSignal).
// Most handlers read the method, the URL and a header or two, so the server
// hands them this object instead: `instanceof Request` holds, and method, url,
// headers, body, signal and the body readers are answered from the parsed
// head without building a real `Request`. Anything else (clone(), cache, a
// platform API that reads the request's internal slots, such as
// `fetch(request)` or `new Request(request)`) materialises a real `Request`
// once, on first use, and delegates to it.

/** What the facade reads of a request head (HTTP/1.1's parsed head, or
 * HTTP/2's pseudo-headers mapped onto it). */
export interface Head {
  method: string;
  /** The request target as sent (origin-form path and query for HTTP/2). */
  target: string;
  /** 0 origin-form, 1 absolute-form, 2 asterisk-form, 3 authority-form. */
  form: number;
  /** Lower-cased names and values, alternating, in order of arrival. */
  headers: string[];
}

/** What the request needs from its exchange. */
export interface RequestSource {
  /** The request's body stream, created on first use; `null` if none. */
  body(): ReadableStream<Uint8Array> | null;
  /** The request's cancellation signal, created on first use. */
  signal(): AbortSignal;
}

const decoder = new TextDecoder();

const SIMPLE_TARGET = /^\/[A-Za-z0-9\-._~!$&()*+,;=:@\/%]*(\?[A-Za-z0-9\-._~!$&()*+,;=:@\/?%]*)?$/;
const DOT_SEGMENT = /\/\.|%2e/i;

function normalize(u: string): string {
  try {
    return new URL(u).href;
  } catch {
    // The parser only lets through targets a URL can hold; keep the raw
    // string rather than throwing from a getter.
    return u;
  }
}

/** The per-request object handlers receive as `request`. */
export class IncomingRequest {
  readonly #head: Head;
  readonly #src: RequestSource;
  #url: string | undefined;
  readonly #base: string;
  #headers: Headers | undefined = undefined;
  #body: ReadableStream<Uint8Array> | null | undefined = undefined;
  #used = false;
  #real: Request | undefined = undefined;

  constructor(head: Head, base: string, src: RequestSource) {
    this.#head = head;
    this.#base = base;
    this.#src = src;
  }

  get method(): string {
    return this.#head.method;
  }

  get url(): string {
    let u = this.#url;
    if (u === undefined) {
      const h = this.#head;
      if (h.form === 0) {
        u = this.#base + h.target;
        // Most targets are already what the URL parser would make of them;
        // only parse the others (dot segments, characters it escapes).
        if (!SIMPLE_TARGET.test(h.target) || DOT_SEGMENT.test(h.target)) u = normalize(u);
      } else if (h.form === 1) u = normalize(h.target);
      else u = this.#base + "/";
      this.#url = u;
    }
    return u;
  }

  get headers(): Headers {
    let h = this.#headers;
    if (h === undefined) {
      h = new Headers();
      const raw = this.#head.headers;
      for (let i = 0; i < raw.length; i += 2) h.append(raw[i], raw[i + 1]);
      this.#headers = h;
    }
    return h;
  }

  get body(): ReadableStream<Uint8Array> | null {
    if (this.#real !== undefined) return this.#real.body;
    let b = this.#body;
    if (b === undefined) b = this.#body = this.#src.body();
    return b;
  }

  get bodyUsed(): boolean {
    if (this.#real !== undefined) return this.#real.bodyUsed;
    return this.#used || (this.#body !== undefined && this.#body !== null && this.#body.locked);
  }

  get signal(): AbortSignal {
    return this.#src.signal();
  }

  async bytes(): Promise<Uint8Array<ArrayBuffer>> {
    if (this.#real !== undefined) return await this.#real.bytes();
    const body = this.#take();
    if (body === null) return new Uint8Array(0);
    const chunks: Uint8Array[] = [];
    let n = 0;
    const reader = body.getReader();
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      chunks.push(r.value);
      n += r.value.byteLength;
    }
    if (chunks.length === 1 && chunks[0].buffer instanceof ArrayBuffer) {
      return chunks[0] as Uint8Array<ArrayBuffer>;
    }
    const out = new Uint8Array(n);
    let o = 0;
    for (const c of chunks) {
      out.set(c, o);
      o += c.byteLength;
    }
    return out;
  }

  async arrayBuffer(): Promise<ArrayBuffer> {
    const b = await this.bytes();
    return b.byteOffset === 0 && b.byteLength === b.buffer.byteLength
      ? b.buffer
      : b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength);
  }

  async text(): Promise<string> {
    if (this.#real !== undefined) return await this.#real.text();
    return decoder.decode(await this.bytes());
  }

  async json(): Promise<unknown> {
    return JSON.parse(await this.text());
  }

  async blob(): Promise<Blob> {
    if (this.#real !== undefined) return await this.#real.blob();
    const type = this.headers.get("content-type") ?? "";
    return new Blob([await this.bytes()], { type });
  }

  async formData(): Promise<FormData> {
    return await this.#materialize().formData();
  }

  clone(): Request {
    return this.#materialize().clone();
  }

  #take(): ReadableStream<Uint8Array> | null {
    if (this.bodyUsed) throw new TypeError("Body already consumed");
    const b = this.body;
    this.#used = true;
    return b;
  }

  /** The real `Request`, built once. */
  #materialize(): Request {
    let r = this.#real;
    if (r === undefined) {
      const m = this.#head.method;
      let body: ReadableStream<Uint8Array> | null = null;
      let spent = false;
      if (m !== "GET" && m !== "HEAD") {
        body = this.body;
        if (body !== null && (this.#used || body.locked)) {
          // Already read (or being read) through this facade: the real
          // Request's body must be unusable too, so that clone(), text() and
          // new Request() throw, and other getters still work.
          body = new ReadableStream<Uint8Array>({ start: (c) => c.close() });
          spent = true;
        }
      }
      r = new Request(this.url, {
        method: m,
        headers: this.headers,
        body,
        signal: this.signal,
        // @ts-ignore: `duplex` is required for stream bodies but not in every lib.
        duplex: "half",
      });
      if (spent) {
        // Reading marks the stream disturbed: the Request's bodyUsed is true.
        const reader = r.body!.getReader();
        reader.read().catch(() => {});
        reader.releaseLock();
      }
      this.#real = r;
    }
    return r;
  }

  /** The exchange behind a request the server made, or `undefined`. */
  static sourceOf(req: unknown): RequestSource | undefined {
    return typeof req === "object" && req !== null && #src in req
      ? (req as IncomingRequest).#src
      : undefined;
  }

  /** @internal Used by delegating accessors. */
  static materialize(req: IncomingRequest): Request {
    return req.#materialize();
  }

  [Symbol.for("Deno.customInspect")](
    inspect: (v: unknown, o: unknown) => string,
    options: unknown,
  ): string {
    return `Request ${
      inspect({
        method: this.method,
        url: this.url,
        headers: this.headers,
        bodyUsed: this.bodyUsed,
      }, options)
    }`;
  }
}

// Everything else on Request.prototype, and every internal slot the platform
// reads from a Request (found on a probe instance), delegates to the real
// Request. The brand check of the platform's own functions then passes, so
// `fetch(request)` and `new Request(request)` work.
{
  const proto = IncomingRequest.prototype as unknown as Record<PropertyKey, unknown>;
  for (const name of Object.getOwnPropertyNames(Request.prototype)) {
    if (name === "constructor" || Object.hasOwn(proto, name)) continue;
    const d = Object.getOwnPropertyDescriptor(Request.prototype, name)!;
    if (typeof d.value === "function") {
      Object.defineProperty(proto, name, {
        configurable: true,
        writable: true,
        value(this: IncomingRequest, ...args: unknown[]) {
          const real = IncomingRequest.materialize(this) as unknown as Record<
            string,
            (...a: unknown[]) => unknown
          >;
          return real[name](...args);
        },
      });
    } else if (d.get) {
      Object.defineProperty(proto, name, {
        configurable: true,
        get(this: IncomingRequest) {
          return (IncomingRequest.materialize(this) as unknown as Record<string, unknown>)[name];
        },
      });
    }
  }
  const probe = new Request("http://probe.invalid/");
  for (const s of Object.getOwnPropertySymbols(probe)) {
    const v = (probe as unknown as Record<symbol, unknown>)[s];
    if (v === s) {
      // A brand: a constant the platform compares with itself.
      Object.defineProperty(proto, s, { value: s });
      continue;
    }
    Object.defineProperty(proto, s, {
      configurable: true,
      get(this: IncomingRequest) {
        return (IncomingRequest.materialize(this) as unknown as Record<symbol, unknown>)[s];
      },
      set(this: IncomingRequest, v: unknown) {
        (IncomingRequest.materialize(this) as unknown as Record<symbol, unknown>)[s] = v;
      },
    });
  }
  Object.setPrototypeOf(IncomingRequest.prototype, Request.prototype);
}
