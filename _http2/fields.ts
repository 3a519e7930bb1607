// Copyright 2026 the connctx authors. MIT license.
// HTTP/2 request field validation (RFC 9113 §8.2, §8.3) and the mapping of
// a decoded field list onto the protocol-independent request head.
//
// A request is malformed (§8.1.1: a stream error of type PROTOCOL_ERROR) if:
//
// - a field name is empty, has upper-case letters, or has characters outside
//   `token` (a colon only as the first character of a pseudo-header);
// - a field value contains NUL, CR or LF, or starts or ends with a space or
//   tab (§8.2.1);
// - a pseudo-header is unknown (`:status` included), repeated, empty, or
//   follows a regular field (§8.3);
// - it carries a connection-specific field (`connection`, `keep-alive`,
//   `proxy-connection`, `transfer-encoding`, `upgrade`) or `te` other than
//   `trailers` (§8.2.2);
// - `:method`, `:scheme` or `:path` is missing, or (CONNECT) `:scheme` or
//   `:path` is present or `:authority` missing (§8.3.1, §8.5);
// - `:authority` carries userinfo or has characters a URI authority can't;
//   `host` differs from `:authority`; `:path` is neither origin-form nor
//   `*` for OPTIONS;
// - `content-length` is not a number, or several disagree.
//
// Trailers (§8.1) must not carry pseudo-headers.
//
// Several `cookie` fields are joined with "; " (§8.2.3) so that `Headers`
// sees one, as an HTTP/1.1 request would carry it.

import { PROTOCOL_ERROR, streamError } from "./frame.ts";

/** A validated request head: what the exchange layer's `Head` needs, plus
 * what HTTP/2 adds. */
export interface H2Head {
  /** `:method`. */
  method: string;
  /** `:path` (origin-form, or `*`); the authority for CONNECT. */
  target: string;
  /** 0 origin-form, 2 asterisk-form, 3 authority-form (CONNECT). */
  form: number;
  /** Regular fields, lower-case names and values alternating; `host`
   * first (from `:authority`) when the request had no `host` field. */
  headers: string[];
  /** `:authority`, or `host` when there is no `:authority`; may be "". */
  authority: string;
  /** `:scheme` ("" for CONNECT). */
  scheme: string;
  /** `content-length`, or -1. */
  contentLength: number;
}

// Token characters (RFC 9110 §5.6.2) without upper case, per char code.
const NAME_OK = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz") {
  NAME_OK[c.charCodeAt(0)] = 1;
}
// Characters of a URI authority (reg-name, IP literal, port), no "@".
const AUTHORITY = /^[A-Za-z0-9\-._~%!$&'()*+,;=:\[\]]*$/;
// Origin-form: a path and an optional query, no fragment, no spaces/controls.
const PATH = /^\/[\x21-\x22\x24-\x7e]*$/;

function malformed(stream: number, why: string): never {
  throw streamError(PROTOCOL_ERROR, stream, `malformed request: ${why}`);
}

function checkName(name: string, stream: number): void {
  const n = name.length;
  if (n === 0) malformed(stream, "empty field name");
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || NAME_OK[c] === 0) {
      malformed(stream, `invalid field name ${JSON.stringify(name)}`);
    }
  }
}

function checkValue(v: string, stream: number): void {
  const n = v.length;
  if (n === 0) return;
  let c = v.charCodeAt(0);
  if (c === 0x20 || c === 0x09) malformed(stream, "field value with leading whitespace");
  c = v.charCodeAt(n - 1);
  if (c === 0x20 || c === 0x09) malformed(stream, "field value with trailing whitespace");
  for (let i = 0; i < n; i++) {
    c = v.charCodeAt(i);
    if (c === 0 || c === 0x0a || c === 0x0d) malformed(stream, "field value with NUL, CR or LF");
  }
}

function parseLength(v: string, stream: number): number {
  if (v.length === 0 || v.length > 15) malformed(stream, "invalid content-length");
  let n = 0;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i) - 48;
    if (c < 0 || c > 9) malformed(stream, "invalid content-length");
    n = n * 10 + c;
  }
  return n;
}

/**
 * Validates a request's decoded fields and maps them to a head.
 *
 * @param fields `[name, value, …]` as HPACK decoded them.
 * @param stream The stream id (for the error).
 * @returns The head.
 * @throws {H2Error} A stream PROTOCOL_ERROR if the request is malformed.
 */
export function requestHead(fields: string[], stream: number): H2Head {
  let method = "";
  let scheme = "";
  let path = "";
  let authority = "";
  let hasMethod = false;
  let hasScheme = false;
  let hasPath = false;
  let hasAuthority = false;
  let i = 0;
  const n = fields.length;
  // Pseudo-headers come first.
  for (; i < n; i += 2) {
    const name = fields[i];
    if (name.charCodeAt(0) !== 0x3a) break;
    const value = fields[i + 1];
    switch (name) {
      case ":method":
        if (hasMethod) malformed(stream, "repeated :method");
        hasMethod = true;
        method = value;
        break;
      case ":scheme":
        if (hasScheme) malformed(stream, "repeated :scheme");
        hasScheme = true;
        scheme = value;
        break;
      case ":path":
        if (hasPath) malformed(stream, "repeated :path");
        hasPath = true;
        path = value;
        break;
      case ":authority":
        if (hasAuthority) malformed(stream, "repeated :authority");
        hasAuthority = true;
        authority = value;
        break;
      default:
        malformed(stream, `pseudo-header ${name} not allowed`);
    }
    checkValue(value, stream);
  }
  if (!hasMethod) malformed(stream, "no :method");
  if (method.length === 0) malformed(stream, "empty :method");
  for (let k = 0; k < method.length; k++) {
    const c = method.charCodeAt(k);
    // A method is a token; upper case is allowed there.
    if (c >= 128 || (NAME_OK[c] === 0 && !(c >= 0x41 && c <= 0x5a))) {
      malformed(stream, "invalid :method");
    }
  }
  let form = 0;
  if (method === "CONNECT") {
    if (hasScheme || hasPath) malformed(stream, "CONNECT with :scheme or :path");
    if (!hasAuthority || authority === "") malformed(stream, "CONNECT without :authority");
    form = 3;
  } else {
    if (!hasScheme || scheme === "") malformed(stream, "no :scheme");
    if (!hasPath || path === "") malformed(stream, "no :path");
    if (path === "*") {
      if (method !== "OPTIONS") malformed(stream, ":path * without OPTIONS");
      form = 2;
    } else if (!PATH.test(path)) malformed(stream, "invalid :path");
  }
  if (hasAuthority && !AUTHORITY.test(authority)) malformed(stream, "invalid :authority");

  // Regular fields.
  const headers: string[] = [];
  let contentLength = -1;
  let cookie: string | null = null;
  let host: string | null = null;
  for (; i < n; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    checkName(name, stream);
    checkValue(value, stream);
    switch (name.length) {
      case 2:
        if (name === "te" && value !== "trailers") malformed(stream, "te other than trailers");
        break;
      case 4:
        if (name === "host") {
          if (host !== null && host !== value) malformed(stream, "several host fields");
          host = value;
        }
        break;
      case 6:
        if (name === "cookie") {
          cookie = cookie === null ? value : `${cookie}; ${value}`;
          continue;
        }
        break;
      case 7:
        if (name === "upgrade") malformed(stream, "connection-specific field upgrade");
        break;
      case 10:
        if (name === "connection" || name === "keep-alive") {
          malformed(stream, `connection-specific field ${name}`);
        }
        break;
      case 14:
        if (name === "content-length") {
          const len = parseLength(value, stream);
          if (contentLength !== -1 && contentLength !== len) {
            malformed(stream, "conflicting content-length");
          }
          contentLength = len;
        }
        break;
      case 16:
        if (name === "proxy-connection") malformed(stream, "connection-specific field " + name);
        break;
      case 17:
        if (name === "transfer-encoding") malformed(stream, "connection-specific field " + name);
        break;
    }
    headers.push(name, value);
  }
  if (cookie !== null) headers.push("cookie", cookie);
  if (hasAuthority) {
    if (host !== null && host !== authority) malformed(stream, "host differs from :authority");
    // HTTP/1.1 handlers read Host; give them one.
    if (host === null) headers.unshift("host", authority);
  } else if (host !== null) {
    if (!AUTHORITY.test(host)) malformed(stream, "invalid host");
    authority = host;
  }
  return {
    method,
    target: form === 3 ? authority : path,
    form,
    headers,
    authority,
    scheme,
    contentLength,
  };
}

/**
 * Validates a trailer section (§8.1): regular fields only.
 *
 * @param fields `[name, value, …]`.
 * @param stream The stream id.
 * @throws {H2Error} A stream PROTOCOL_ERROR if malformed.
 */
export function checkTrailers(fields: string[], stream: number): void {
  for (let i = 0; i < fields.length; i += 2) {
    if (fields[i].charCodeAt(0) === 0x3a) malformed(stream, "pseudo-header in trailers");
    checkName(fields[i], stream);
    checkValue(fields[i + 1], stream);
  }
}
