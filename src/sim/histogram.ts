// Log-bucketed latency histograms, as a Prometheus histogram would keep them but much finer: 32
// buckets per doubling (at most 3.1 % wide) from 10 µs to about 10^7 ms. The bucket comes from
// the bits of the double (exponent and top mantissa bits), which is much cheaper than a log on
// the hot path. Quantiles report a bucket's upper edge, so they err on the slow side.

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);
/** Index of the 32-bit word holding the sign, exponent and top mantissa bits. */
const HI = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0;
const LO = 1 - HI;
const SHIFT = 20 - 5; // keep 5 of the 20 mantissa bits in the high word: 32 buckets per octave

function key(ms: number): number {
  f64[0] = ms;
  return u32[HI]! >>> SHIFT;
}

const MIN_MS = 0.01;
const MIN_KEY = key(MIN_MS);
export const HISTOGRAM_BUCKETS = 1000;

export function newHistogram(): Uint32Array {
  return new Uint32Array(HISTOGRAM_BUCKETS);
}

export function bucketOf(ms: number): number {
  if (!(ms > MIN_MS)) return 0;
  const i = key(ms) - MIN_KEY + 1;
  return i < HISTOGRAM_BUCKETS ? i : HISTOGRAM_BUCKETS - 1;
}

/** The smallest value of the next bucket: every sample in `bucket` is below it. */
export function upperEdge(bucket: number): number {
  if (bucket === 0) return MIN_MS;
  u32[HI] = (MIN_KEY + bucket) << SHIFT;
  u32[LO] = 0;
  return f64[0]!;
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
