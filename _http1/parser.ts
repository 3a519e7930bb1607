// Copyright 2026 the connctx authors. MIT license.
// Owns: HTTP/1.1 request-head parsing (RFC 9112), pure functions over bytes.
// No I/O; the chunked body decoder is in `chunked.ts`.
//
// Strictness: anything ambiguous is rejected. Bare LF, obs-fold, whitespace
// before a colon, control characters, Transfer-Encoding together with
// Content-Length, and differing duplicate Content-Length values are all 400s.
// List elements (Transfer-Encoding, Connection, Expect) are trimmed of OWS
// (SP and HTAB) only, never of other "whitespace" such as NBSP (0xA0), so
// `chunked\xA0` is not `chunked`. A `#` in the request target, a Host that is
// not `uri-host [":" port]`, and an authority-form target that is not
// `uri-host ":" port` are 400s too.

import { HttpError } from "../_exchange/errors.ts";

export { HttpError };

/** Parser limits. */
export interface Limits {
  /** Largest request head (request line and headers), bytes. */
  maxHeaderBytes: number;
  /** Most header fields. */
  maxHeaderCount: number;
  /** Longest request target, bytes. */
  maxUriBytes: number;
}

/** Defaults used when an option is not given. */
export const DEFAULT_LIMITS: Limits = {
  maxHeaderBytes: 64 * 1024,
  maxHeaderCount: 128,
  maxUriBytes: 8 * 1024,
};

/** A parsed request head. */
export interface RequestHead {
  method: string;
  target: string;
  /** 0 for HTTP/1.0, 1 for HTTP/1.1. */
  minor: number;
  /** Lower-cased names and values, alternating, in order of arrival. */
  headers: string[];
  /** The `Host` value, or `""`. */
  host: string;
  /** -1 if absent. */
  contentLength: number;
  chunked: boolean;
  /** Whether the client wants the connection kept open. */
  keepAlive: boolean;
  /** The `Upgrade` value when `Connection` lists `upgrade` (RFC 9110
   * §7.8), else `""`. */
  upgrade: string;
  expectContinue: boolean;
  /** 0 origin-form, 1 absolute-form, 2 asterisk-form, 3 authority-form. */
  form: number;
  /** Index just past the head's final CRLF. */
  end: number;
}

// Character classes, one table: bit 1 tchar, bit 2 field-value byte
// (VCHAR, SP, HTAB, obs-text), bit 4 request-target byte (VCHAR but `#`: a
// fragment is never sent, and one lets a proxy and this server disagree on
// the path), bit 8 reg-name byte (unreserved, sub-delims, `%`).
/** @internal Character classes shared with the chunked decoder. */
export const T: Uint8Array = new Uint8Array(256);
{
  const tchar = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
  for (let i = 0; i < tchar.length; i++) T[tchar.charCodeAt(i)] |= 1;
  for (let i = 0x20; i < 0x7f; i++) T[i] |= 2;
  T[0x09] |= 2;
  for (let i = 0x80; i < 0x100; i++) T[i] |= 2;
  for (let i = 0x21; i < 0x7f; i++) if (i !== 0x23) T[i] |= 4;
  const host = "!$&'()*+,-.0123456789;=_~abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ%";
  for (let i = 0; i < host.length; i++) T[host.charCodeAt(i)] |= 8;
}

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;

/** Trims OWS (SP, HTAB) only; `String.prototype.trim` also eats NBSP & co. */
function ows(s: string): string {
  let a = 0;
  let b = s.length;
  while (a < b && (s.charCodeAt(a) === SP || s.charCodeAt(a) === HTAB)) a++;
  while (b > a && (s.charCodeAt(b - 1) === SP || s.charCodeAt(b - 1) === HTAB)) b--;
  return a === 0 && b === s.length ? s : s.slice(a, b);
}

/**
 * Where `uri-host` ends in `h` (RFC 3986: IP-literal or reg-name), or -1.
 * IP-literal contents are checked loosely (reg-name bytes and `:`).
 */
function hostEnd(h: string): number {
  const n = h.length;
  let i = 0;
  if (n > 0 && h.charCodeAt(0) === 91) {
    i = 1;
    for (; i < n; i++) {
      const c = h.charCodeAt(i);
      if (!(T[c] & 8) && c !== 58) break;
    }
    if (i === 1 || i === n || h.charCodeAt(i) !== 93) return -1;
    return i + 1;
  }
  while (i < n && (T[h.charCodeAt(i)] & 8)) i++;
  return i;
}

/** Whether `s[from..]` is `":" *DIGIT` (or empty, if `portOptional`). */
function portOk(s: string, from: number, portOptional: boolean): boolean {
  if (from === s.length) return portOptional;
  if (s.charCodeAt(from) !== 58) return false;
  for (let i = from + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/** Decodes bytes as Latin-1 (HTTP field values are ISO-8859-1 by tradition). */
export function latin1(buf: Uint8Array, start: number, end: number): string {
  const n = end - start;
  if (n <= 0) return "";
  if (n < 128) {
    let s = "";
    for (let i = start; i < end; i++) s += String.fromCharCode(buf[i]);
    return s;
  }
  let s = "";
  for (let i = start; i < end; i += 8192) {
    s += String.fromCharCode.apply(
      null,
      buf.subarray(i, Math.min(end, i + 8192)) as unknown as number[],
    );
  }
  return s;
}

const ascii = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
/** The head being parsed, decoded whole, when it is ASCII. */
let headText: string | null = null;
let headStart = 0;

/** A field of the head being parsed, as a string. */
function field(buf: Uint8Array, s: number, e: number): string {
  return headText !== null ? headText.slice(s - headStart, e - headStart) : latin1(buf, s, e);
}

function method(buf: Uint8Array, s: number, e: number): string {
  const n = e - s;
  const c = buf[s];
  if (n === 3 && c === 71 && buf[s + 1] === 69 && buf[s + 2] === 84) return "GET";
  if (n === 4 && c === 80 && buf[s + 1] === 79 && buf[s + 2] === 83 && buf[s + 3] === 84) {
    return "POST";
  }
  if (n === 4 && c === 72 && buf[s + 1] === 69 && buf[s + 2] === 65 && buf[s + 3] === 68) {
    return "HEAD";
  }
  return field(buf, s, e);
}

/**
 * Finds the end of a request head in `buf[from, end)`. Returns the index just
 * past the blank line, or -1 if not there yet. `scanFrom` lets callers resume
 * where the last scan stopped, so a head that trickles in byte by byte costs
 * linear time. A blank line ended by bare LF also counts (the parser then
 * rejects it), so such requests fail fast instead of waiting for a timeout.
 */
export function findHeadEnd(buf: Uint8Array, scanFrom: number, end: number): number {
  let i = scanFrom;
  while (i < end) {
    const lf = buf.indexOf(LF, i);
    if (lf === -1 || lf >= end) return -1;
    if (lf + 1 < end && buf[lf + 1] === LF) return lf + 2;
    if (lf + 2 < end && buf[lf + 1] === CR && buf[lf + 2] === LF) return lf + 3;
    if (lf + 2 >= end) return -1;
    i = lf + 1;
  }
  return -1;
}

/** Where a scan should resume after `findHeadEnd` returned -1. */
export function rescanFrom(end: number, start: number): number {
  return Math.max(start, end - 3);
}

function bad(msg: string): never {
  throw new HttpError(400, msg);
}

/**
 * Parses a complete request head in `buf[start, headEnd)`, where `headEnd`
 * came from {@linkcode findHeadEnd}. Throws {@linkcode HttpError}.
 */
export function parseHead(
  buf: Uint8Array,
  start: number,
  headEnd: number,
  limits: Limits,
): RequestHead {
  if (headEnd - start > limits.maxHeaderBytes) {
    throw new HttpError(431, "request header fields too large");
  }
  // One decode of the whole head, then every field is a cheap slice of it.
  // Only for pure ASCII heads (the fatal UTF-8 decode fails on invalid
  // bytes, and any valid multi-byte sequence makes the text shorter), where
  // UTF-8 and Latin-1 agree; other heads decode field by field.
  headText = null;
  if (headEnd - start >= 64) {
    try {
      const t = ascii.decode(buf.subarray(start, headEnd));
      if (t.length === headEnd - start) {
        headText = t;
        headStart = start;
      }
    } catch {
      // Not UTF-8: obs-text bytes; decode as Latin-1 field by field.
    }
  }
  let p = start;
  // RFC 9112 §2.2: ignore empty lines before the request line.
  while (p + 1 < headEnd && buf[p] === CR && buf[p + 1] === LF) p += 2;

  // method SP request-target SP HTTP-version CRLF
  const ms = p;
  while (T[buf[p]] & 1) p++;
  if (p === ms || buf[p] !== SP) bad("malformed request line");
  const m = method(buf, ms, p);
  const ts = ++p;
  while (T[buf[p]] & 4) p++;
  const te = p;
  if (te === ts || buf[p] !== SP) {
    if (buf[p] === CR || buf[p] === LF) bad("malformed request line");
    bad("invalid character in request target");
  }
  if (te - ts > limits.maxUriBytes) throw new HttpError(414, "URI too long");
  p++;
  if (
    buf[p] !== 72 || buf[p + 1] !== 84 || buf[p + 2] !== 84 || buf[p + 3] !== 80 ||
    buf[p + 4] !== 47 || buf[p + 6] !== 46
  ) bad("malformed HTTP version");
  const major = buf[p + 5] - 48;
  const minor = buf[p + 7] - 48;
  if (major < 0 || major > 9 || minor < 0 || minor > 9) bad("malformed HTTP version");
  p += 8;
  if (buf[p] !== CR || buf[p + 1] !== LF) bad("malformed request line");
  p += 2;
  if (major !== 1 || minor > 1) {
    throw new HttpError(505, "HTTP version not supported");
  }
  const target = field(buf, ts, te);
  let form = 0;
  const t0 = buf[ts];
  if (t0 === 47) form = 0;
  else if (te - ts === 1 && t0 === 42) form = 2;
  else if (m === "CONNECT") form = 3;
  else if (/^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(target)) form = 1;
  else bad("invalid request target");
  if (form === 2 && m !== "OPTIONS") bad("asterisk-form is for OPTIONS only");
  if (m === "CONNECT" && form !== 3) bad("CONNECT needs authority-form");
  if (form === 3) {
    // authority-form = uri-host ":" port
    const he = hostEnd(target);
    if (he <= 0 || !portOk(target, he, false)) bad("invalid authority-form target");
  }
  if (form === 1) {
    // http(s)://authority[/path][?query]; no userinfo, a valid host.
    const s = target.indexOf("://");
    const scheme = target.slice(0, s).toLowerCase();
    let ae = s + 3;
    while (ae < target.length && target.charCodeAt(ae) !== 47 && target.charCodeAt(ae) !== 63) ae++;
    const auth = target.slice(s + 3, ae);
    const he = hostEnd(auth);
    if ((scheme !== "http" && scheme !== "https") || he <= 0 || !portOk(auth, he, true)) {
      bad("invalid absolute-form target");
    }
  }

  const headers: string[] = [];
  let host = "";
  let hosts = 0;
  let contentLength = -1;
  let te_ = "";
  let hasTE = false;
  let conn = "";
  let expect = "";
  let upgrade = "";
  let count = 0;
  const last = headEnd - 2; // index of the final CRLF
  while (p < last) {
    // field-name ":" OWS field-value OWS CRLF
    const ns = p;
    while (T[buf[p]] & 1) p++;
    if (buf[p] !== 58) {
      if (p === ns && (buf[p] === SP || buf[p] === HTAB)) bad("obsolete line folding");
      if (buf[p] === SP || buf[p] === HTAB) bad("whitespace before colon");
      bad("invalid header name");
    }
    if (p === ns) bad("empty header name");
    const ne = p++;
    while (buf[p] === SP || buf[p] === HTAB) p++;
    const vs = p;
    while (T[buf[p]] & 2) p++;
    if (buf[p] !== CR) {
      if (buf[p] === LF) bad("bare LF in header");
      bad("invalid character in header value");
    }
    if (buf[p + 1] !== LF) bad("bare CR in header");
    let ve = p;
    while (ve > vs && (buf[ve - 1] === SP || buf[ve - 1] === HTAB)) ve--;
    p += 2;
    if (++count > limits.maxHeaderCount) {
      throw new HttpError(431, "too many header fields");
    }
    const name = field(buf, ns, ne).toLowerCase();
    const value = field(buf, vs, ve);
    headers.push(name, value);
    switch (name) {
      case "host":
        host = value;
        hosts++;
        break;
      case "content-length": {
        const n = parseLength(value);
        if (contentLength !== -1 && n !== contentLength) bad("conflicting Content-Length");
        contentLength = n;
        break;
      }
      case "transfer-encoding":
        te_ = hasTE ? `${te_},${value}` : value;
        hasTE = true;
        break;
      case "connection":
        conn = conn === "" ? value : `${conn},${value}`;
        break;
      case "expect":
        expect = expect === "" ? value : `${expect},${value}`;
        break;
      case "upgrade":
        upgrade = upgrade === "" ? value : `${upgrade},${value}`;
        break;
    }
  }
  if (p !== last || buf[p] !== CR || buf[p + 1] !== LF) bad("malformed header section");

  if (minor === 1) {
    if (hosts !== 1) bad(hosts === 0 ? "missing Host header" : "multiple Host headers");
  } else if (hosts > 1) bad("multiple Host headers");
  if (host !== "" && !portOk(host, hostEnd(host), true)) bad("invalid Host header");

  let chunked = false;
  if (hasTE) {
    if (minor === 0) bad("Transfer-Encoding in an HTTP/1.0 request");
    if (contentLength !== -1) bad("both Transfer-Encoding and Content-Length");
    const codings = te_.split(",");
    for (let i = 0; i < codings.length; i++) {
      const c = ows(codings[i]).toLowerCase();
      if (c === "") bad("empty transfer coding");
      if (c === "chunked") {
        if (i !== codings.length - 1) bad("chunked must be the final transfer coding");
        chunked = true;
      } else if (i === codings.length - 1) {
        bad("final transfer coding is not chunked");
      } else if (!/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(c)) {
        bad("invalid transfer coding");
      } else {
        throw new HttpError(501, `transfer coding "${c}" not implemented`);
      }
    }
  }

  let keepAlive = minor === 1;
  let connUpgrade = false;
  if (conn !== "") {
    const tokens = conn.toLowerCase().split(",");
    let close = false;
    for (let i = 0; i < tokens.length; i++) {
      const tok = ows(tokens[i]);
      if (tok === "close") close = true;
      else if (tok === "keep-alive") keepAlive = true;
      else if (tok === "upgrade") connUpgrade = true;
    }
    if (close) keepAlive = false;
  }
  let expectContinue = false;
  if (expect !== "") {
    const members = expect.toLowerCase().split(",");
    for (let i = 0; i < members.length; i++) {
      if (ows(members[i]) !== "100-continue") throw new HttpError(417, "unsupported expectation");
    }
    expectContinue = minor === 1;
  }
  return {
    method: m,
    target,
    minor,
    headers,
    host,
    contentLength,
    chunked,
    keepAlive,
    upgrade: connUpgrade ? upgrade : "",
    expectContinue,
    form,
    end: headEnd,
  };
}

/** Parses a Content-Length value: 1*DIGIT, at most 15 digits (2^49 bytes). */
export function parseLength(v: string): number {
  if (v.length === 0 || v.length > 15) bad("invalid Content-Length");
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const d = v.charCodeAt(i) - 48;
    if (d < 0 || d > 9) bad("invalid Content-Length");
    n = n * 10 + d;
  }
  return n;
}
