// Copyright 2026 the connctx authors. MIT license.
// Command-line parsing and number formatting shared by the benchmark scripts.

/** Parses "3s", "3", "1m" into whole seconds. */
export function parseSeconds(name: string, text: string, min: number): number {
  const m = /^(\d+)(s|m)?$/.exec(text.trim());
  const seconds = m ? Number(m[1]) * (m[2] === "m" ? 60 : 1) : NaN;
  if (!(seconds >= min)) {
    throw new Error(`--${name}: expected whole seconds >= ${min}, got ${text}`);
  }
  return seconds;
}

export function parseCount(name: string, text: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name}: expected a positive integer, got ${text}`);
  }
  return n;
}

export function fmtRps(rps: number): string {
  return Math.round(rps).toLocaleString("en-US");
}

/** Compact req/s for spreads: 57.8k, 1.35k, 950. */
export function fmtK(rps: number): string {
  if (rps >= 10_000) return `${(rps / 1000).toFixed(1)}k`;
  if (rps >= 1_000) return `${(rps / 1000).toFixed(2)}k`;
  return rps.toFixed(0);
}

export function fmtMs(ms: number): string {
  return ms < 10 ? `${ms.toFixed(2)} ms` : `${ms.toFixed(1)} ms`;
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

export function rotate<T>(xs: readonly T[], by: number): T[] {
  const shift = xs.length ? by % xs.length : 0;
  return [...xs.slice(shift), ...xs.slice(0, shift)];
}
