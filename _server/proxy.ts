// Copyright 2026 the connctx authors. MIT license.
// The PROXY protocol (HAProxy), versions 1 and 2: the header a load balancer
// (haproxy, nginx `proxy_protocol`, AWS NLB, ...) sends before the first byte
// of the client's data, carrying the client's original address.
//
// Spec: https://www.haproxy.org/download/2.6/doc/proxy-protocol.txt
//
// `parseProxyHeader` is a pure function over the connection's read buffer: it
// returns `null` while the header is incomplete (read more and call again),
// the header's end and addresses once it is complete, and throws a
// `ProxyHeaderError` as soon as the bytes cannot be a valid header (the
// connection should then be closed: a server configured for the PROXY
// protocol must not guess). It never looks past the header, so the bytes that
// follow stay in the buffer for HTTP.

/** Longest version 1 header, CRLF included (spec §2.1). */
export const PROXY_V1_MAX_BYTES = 107;

/** Largest version 2 payload (addresses and TLVs) accepted; the wire format
 * allows 65 535. Real senders stay far below (haproxy's TLVs, AWS' VPC
 * endpoint id, GCP's PSC id are tens to hundreds of bytes). */
export const PROXY_V2_MAX_PAYLOAD = 4096;

/** Thrown for bytes that are not a valid PROXY protocol header. */
export class ProxyHeaderError extends Error {
  /** @param message What is wrong. */
  constructor(message: string) {
    super(`invalid PROXY protocol header: ${message}`);
    this.name = "ProxyHeaderError";
  }
}

/** A complete PROXY header. */
export interface ProxyHeader {
  /** Offset just past the header: the first byte of the client's data. */
  end: number;
  /** The original client's address; absent for `UNKNOWN`, `LOCAL`, `AF_UNSPEC`
   * and `AF_UNIX` (use the connection's own addresses). */
  remoteAddr?: Deno.NetAddr;
  /** The address the client connected to (on the proxy); absent as above. */
  localAddr?: Deno.NetAddr;
}

/** "PROXY " */
const V1_SIG = [0x50, 0x52, 0x4f, 0x58, 0x59, 0x20];
/** \r\n\r\n\0\r\nQUIT\n */
const V2_SIG = [0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a];
const V2_HEAD = 16;

/**
 * Parses a PROXY protocol header (v1 or v2) at `buf[start..end)`.
 *
 * @param buf The read buffer.
 * @param start Offset of the connection's first byte.
 * @param end Offset just past the last byte read so far.
 * @returns The header, or `null` if more bytes are needed.
 * @throws {ProxyHeaderError} If the bytes are not a valid header.
 */
export function parseProxyHeader(
  buf: Uint8Array,
  start: number,
  end: number,
): ProxyHeader | null {
  const avail = end - start;
  if (avail <= 0) return null;
  if (buf[start] === V1_SIG[0]) {
    if (!hasPrefix(buf, start, end, V1_SIG)) throw new ProxyHeaderError("bad v1 signature");
    if (avail < V1_SIG.length) return null;
    return parseV1(buf, start, end);
  }
  if (buf[start] === V2_SIG[0]) {
    if (!hasPrefix(buf, start, end, V2_SIG)) throw new ProxyHeaderError("bad v2 signature");
    if (avail < V2_HEAD) return null;
    return parseV2(buf, start, end);
  }
  throw new ProxyHeaderError("no PROXY signature");
}

/** Whether the available bytes agree with `sig` (as far as they go). */
function hasPrefix(buf: Uint8Array, start: number, end: number, sig: number[]): boolean {
  const n = Math.min(end - start, sig.length);
  for (let i = 0; i < n; i++) if (buf[start + i] !== sig[i]) return false;
  return true;
}

// ---------------------------------------------------------------------------
// Version 1: "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"

function parseV1(buf: Uint8Array, start: number, end: number): ProxyHeader | null {
  const limit = Math.min(end, start + PROXY_V1_MAX_BYTES);
  let lf = -1;
  for (let i = start + V1_SIG.length; i < limit; i++) {
    const b = buf[i];
    if (b === 0x0a) {
      lf = i;
      break;
    }
    // Printable US-ASCII and the CR that must precede the LF.
    if ((b < 0x20 || b > 0x7e) && b !== 0x0d) throw new ProxyHeaderError("v1: bad byte");
  }
  if (lf === -1) {
    if (end - start >= PROXY_V1_MAX_BYTES) {
      throw new ProxyHeaderError(`v1: longer than ${PROXY_V1_MAX_BYTES} bytes`);
    }
    return null;
  }
  if (buf[lf - 1] !== 0x0d) throw new ProxyHeaderError("v1: line must end with CRLF");
  let line = "";
  for (let i = start + V1_SIG.length; i < lf - 1; i++) line += String.fromCharCode(buf[i]);
  if (line.includes("\r")) throw new ProxyHeaderError("v1: stray CR");
  const headerEnd = lf + 1;
  const parts = line.split(" ");
  const proto = parts[0];
  // UNKNOWN: the rest of the line is to be ignored (spec §2.1).
  if (proto === "UNKNOWN") return { end: headerEnd };
  if (proto !== "TCP4" && proto !== "TCP6") {
    throw new ProxyHeaderError(`v1: unknown protocol ${JSON.stringify(proto)}`);
  }
  if (parts.length !== 5) throw new ProxyHeaderError("v1: expected 4 fields after the protocol");
  const [, src, dst, sport, dport] = parts;
  const parse = proto === "TCP4" ? parseIPv4 : parseIPv6Text;
  const srcHost = parse(src);
  const dstHost = parse(dst);
  if (srcHost === null || dstHost === null) {
    throw new ProxyHeaderError(`v1: bad ${proto === "TCP4" ? "IPv4" : "IPv6"} address`);
  }
  return {
    end: headerEnd,
    remoteAddr: { transport: "tcp", hostname: srcHost, port: parsePort(sport) },
    localAddr: { transport: "tcp", hostname: dstHost, port: parsePort(dport) },
  };
}

function parsePort(s: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) throw new ProxyHeaderError("v1: bad port");
  const n = Number(s);
  if (n > 65535) throw new ProxyHeaderError("v1: port out of range");
  return n;
}

/** A dotted-quad IPv4 address (no leading zeros), or `null`. */
function parseIPv4(s: string): string | null {
  const m = /^(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})\.(0|[1-9][0-9]{0,2})$/
    .exec(s);
  if (m === null) return null;
  for (let i = 1; i <= 4; i++) if (Number(m[i]) > 255) return null;
  return s;
}

/** A textual IPv6 address (RFC 4291 §2.2) in canonical form (RFC 5952), or
 * `null`. */
function parseIPv6Text(s: string): string | null {
  if (s.length < 2 || s.length > 45) return null;
  const groups: number[] = [];
  let tail: number[] = [];
  const dbl = s.indexOf("::");
  if (dbl !== -1 && s.indexOf("::", dbl + 1) !== -1) return null;
  const head = dbl === -1 ? s : s.slice(0, dbl);
  const rest = dbl === -1 ? "" : s.slice(dbl + 2);
  const parseSide = (part: string, out: number[], allowV4: boolean): boolean => {
    if (part === "") return true;
    const fields = part.split(":");
    for (let i = 0; i < fields.length; i++) {
      const f = fields[i];
      if (allowV4 && i === fields.length - 1 && f.includes(".")) {
        if (parseIPv4(f) === null) return false;
        const [a, b, c, d] = f.split(".").map(Number);
        out.push((a << 8) | b, (c << 8) | d);
        continue;
      }
      if (!/^[0-9a-fA-F]{1,4}$/.test(f)) return false;
      out.push(parseInt(f, 16));
    }
    return true;
  };
  if (!parseSide(head, groups, dbl === -1)) return null;
  if (!parseSide(rest, tail, true)) return null;
  if (dbl === -1) {
    if (groups.length !== 8) return null;
  } else {
    const fill = 8 - groups.length - tail.length;
    if (fill < 1) return null;
    tail = [...new Array(fill).fill(0), ...tail];
  }
  const all = groups.concat(tail);
  const bytes = new Uint8Array(16);
  for (let i = 0; i < 8; i++) {
    bytes[2 * i] = all[i] >> 8;
    bytes[2 * i + 1] = all[i] & 0xff;
  }
  return formatIPv6(bytes, 0);
}

// ---------------------------------------------------------------------------
// Version 2: a 16-byte binary head, then addresses and TLVs.

function parseV2(buf: Uint8Array, start: number, end: number): ProxyHeader | null {
  const verCmd = buf[start + 12];
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError(`v2: unsupported version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd !== 0 && cmd !== 1) throw new ProxyHeaderError(`v2: unknown command ${cmd}`);
  const fam = buf[start + 13];
  const len = (buf[start + 14] << 8) | buf[start + 15];
  if (len > PROXY_V2_MAX_PAYLOAD) {
    throw new ProxyHeaderError(`v2: payload of ${len} bytes exceeds ${PROXY_V2_MAX_PAYLOAD}`);
  }
  if (cmd === 1) {
    // PROXY: the family must be one the spec defines, with room for it.
    const need = FAMILY_LENGTH.get(fam);
    if (need === undefined) {
      throw new ProxyHeaderError(`v2: unknown family/protocol 0x${fam.toString(16)}`);
    }
    if (len < need) throw new ProxyHeaderError("v2: payload too short for its addresses");
  }
  const headerEnd = start + V2_HEAD + len;
  if (end < headerEnd) return null;
  // LOCAL (health checks from the proxy itself): use the real endpoints and
  // ignore the family (spec §2.2). AF_UNSPEC and AF_UNIX: same.
  if (cmd === 0) return { end: headerEnd };
  const transport = (fam & 0x0f) === 2 ? "udp" : "tcp";
  const p = start + V2_HEAD;
  switch (fam >> 4) {
    case 1:
      return {
        end: headerEnd,
        remoteAddr: { transport, hostname: formatIPv4(buf, p), port: u16(buf, p + 8) },
        localAddr: { transport, hostname: formatIPv4(buf, p + 4), port: u16(buf, p + 10) },
      };
    case 2:
      return {
        end: headerEnd,
        remoteAddr: { transport, hostname: formatIPv6(buf, p), port: u16(buf, p + 32) },
        localAddr: { transport, hostname: formatIPv6(buf, p + 16), port: u16(buf, p + 34) },
      };
    default:
      return { end: headerEnd };
  }
}

/** Address block sizes of the family/protocol bytes defined by the spec. */
const FAMILY_LENGTH = new Map<number, number>([
  [0x00, 0], // AF_UNSPEC, UNSPEC
  [0x11, 12], // TCP over IPv4
  [0x12, 12], // UDP over IPv4
  [0x21, 36], // TCP over IPv6
  [0x22, 36], // UDP over IPv6
  [0x31, 216], // AF_UNIX stream
  [0x32, 216], // AF_UNIX datagram
]);

function u16(buf: Uint8Array, p: number): number {
  return (buf[p] << 8) | buf[p + 1];
}

function formatIPv4(buf: Uint8Array, p: number): string {
  return `${buf[p]}.${buf[p + 1]}.${buf[p + 2]}.${buf[p + 3]}`;
}

/** RFC 5952 text of the 16 bytes at `buf[p]`: lowercase, the longest run of
 * two or more zero groups as `::` (the first on a tie), IPv4-mapped
 * addresses as `::ffff:a.b.c.d` (as Deno prints them). */
function formatIPv6(buf: Uint8Array, p: number): string {
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(u16(buf, p + 2 * i));
  if (g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff) {
    return `::ffff:${formatIPv4(buf, p + 12)}`;
  }
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (a: number[]) => a.map((x) => x.toString(16)).join(":");
  if (best === -1) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}
