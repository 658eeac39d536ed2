// Log-bucketed latency histograms (2 % relative resolution from 10 µs to ~10^7 ms), as a
// Prometheus histogram would keep them but much finer. Quantiles report a bucket's upper edge,
// so they err on the slow side by at most 2 %.

const MIN_MS = 0.01;
const GROWTH = 1.02;
const LOG_GROWTH = Math.log(GROWTH);
export const HISTOGRAM_BUCKETS = 1050;

export function newHistogram(): Uint32Array {
  return new Uint32Array(HISTOGRAM_BUCKETS);
}

export function bucketOf(ms: number): number {
  if (ms <= MIN_MS) return 0;
  const i = Math.floor(Math.log(ms / MIN_MS) / LOG_GROWTH) + 1;
  return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS - 1;
}

export function upperEdge(bucket: number): number {
  return MIN_MS * Math.pow(GROWTH, bucket);
}

/**
 * The q-quantile of the samples in `hist` plus `infinite` samples of unbounded latency (drops).
 * Null when there are no samples at all.
 */
export function quantile(hist: Uint32Array, q: number, infinite = 0): number | null {
  let total = infinite;
  for (let i = 0; i < hist.length; i++) total += hist[i]!;
  if (total === 0) return null;
  const rank = Math.ceil(q * total);
  let seen = 0;
  for (let i = 0; i < hist.length; i++) {
    seen += hist[i]!;
    if (seen >= rank) return upperEdge(i);
  }
  return Infinity;
}

export function addInto(target: Uint32Array, source: Uint32Array): void {
  for (let i = 0; i < target.length; i++) target[i]! += source[i]!;
}
