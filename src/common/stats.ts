// Mean and 95 % confidence interval over a few seeds, the one statistics helper for the simulator's
// reports and the benchmarks. Student's t, since a matrix cell has 3 to 30 seeds, not hundreds.

/** Two-sided 95 % Student t critical values for 1..30 degrees of freedom. */
const T95 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086, 2.08, 2.074, 2.069, 2.064, 2.06, 2.056, 2.052, 2.048, 2.045, 2.042];

export interface MeanCi {
  n: number;
  mean: number;
  /** Half-width of the 95 % confidence interval; NaN for one sample, Infinity when a sample is. */
  ci: number;
}

export function meanCi(xs: readonly number[]): MeanCi {
  const n = xs.length;
  if (n === 0) return { n, mean: NaN, ci: NaN };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  if (!Number.isFinite(mean)) return { n, mean, ci: Infinity };
  if (n === 1) return { n, mean, ci: NaN };
  const variance = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1);
  const t = T95[n - 2] ?? 1.96;
  return { n, mean, ci: (t * Math.sqrt(variance)) / Math.sqrt(n) };
}
