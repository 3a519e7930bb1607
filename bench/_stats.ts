// Order statistics shared by bench/run.ts and bench/idle_memory.ts. Every
// published figure is a median with its spread; nothing reports a best run.

/** Median, quartiles and extremes of a sample. */
export interface Summary {
  n: number;
  median: number;
  /** First quartile (25th percentile). */
  q1: number;
  /** Third quartile (75th percentile). */
  q3: number;
  min: number;
  max: number;
}

/**
 * The `p`-quantile (0 ≤ p ≤ 1) of an ascending array, interpolating linearly
 * between the two nearest ranks (the usual "type 7" definition, as in R and
 * NumPy's default).
 */
export function quantileSorted(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const pos = (sorted.length - 1) * p;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo);
}

/** Median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  return quantileSorted([...xs].sort((a, b) => a - b), 0.5);
}

/** Summarises `xs`: n, median, quartiles, min and max (NaN when empty). */
export function summarize(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return {
    n: s.length,
    median: quantileSorted(s, 0.5),
    q1: quantileSorted(s, 0.25),
    q3: quantileSorted(s, 0.75),
    min: s.length ? s[0] : NaN,
    max: s.length ? s[s.length - 1] : NaN,
  };
}

/** Interquartile range as ± half of it, in percent of the median. */
export function iqrPercent(s: Summary): number {
  return ((s.q3 - s.q1) / 2 / s.median) * 100;
}
