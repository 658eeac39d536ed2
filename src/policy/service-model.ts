// A stage's batch service-time model t(b) = baseMs + perItemMs * b, learnt online from the
// (mean batch size, mean batch service time) pairs that batching servers export per window
// (Triton: request_success / exec_count and compute_infer_duration_us / exec_count). Times are
// normalised to a full GPU (multiplied by the share the batch ran at), so one model serves every
// share. Weighted least squares with exponential forgetting, so the model follows a stage whose
// service changes (a new model version) without remembering it forever. Pure: every function
// returns a new value and keeps no state of its own.
import { TUNING } from './tuning.js';

/** Weighted sums of an online least-squares fit of t = a + c * b. */
export interface ServiceModel {
  /** Sum of weights (effective number of windows). */
  w: number;
  b: number;
  t: number;
  bb: number;
  bt: number;
  tt: number;
}

export interface ServiceFit {
  /** Fixed cost of one batch at a full GPU, ms (>= 0). */
  baseMs: number;
  /** Added cost per item, ms (>= 0). */
  perItemMs: number;
  /** False when the batch sizes seen are too alike to separate the two terms. */
  identified: boolean;
  /** Weighted mean batch size and mean batch time of the windows seen. */
  meanBatch: number;
  meanMs: number;
  /** Residual variance of one window's mean batch time around the line, ms^2 (floored at 1 % of the mean). */
  residualVar: number;
  /** Variance of the batch sizes seen, weighted; with `weight`, what the slope's precision rests on. */
  batchVar: number;
  weight: number;
}


export const emptyServiceModel = (): ServiceModel => ({ w: 0, b: 0, t: 0, bb: 0, bt: 0, tt: 0 });

/**
 * Fold one window's mean batch size and mean batch time at a full GPU (ms) into the model.
 * Invalid pairs (non-finite, batch < 1, time <= 0) leave it unchanged.
 */
export function observeService(m: ServiceModel, batchSize: number, fullGpuMs: number, decay = TUNING.serviceDecay): ServiceModel {
  if (!Number.isFinite(batchSize) || !Number.isFinite(fullGpuMs) || batchSize < 1 || fullGpuMs <= 0) return m;
  return {
    w: m.w * decay + 1,
    b: m.b * decay + batchSize,
    t: m.t * decay + fullGpuMs,
    bb: m.bb * decay + batchSize * batchSize,
    bt: m.bt * decay + batchSize * fullGpuMs,
    tt: m.tt * decay + fullGpuMs * fullGpuMs,
  };
}

/** The fitted line, constrained to non-negative terms; null before enough windows. */
export function fitService(m: ServiceModel): ServiceFit | null {
  if (m.w < TUNING.serviceMinWeight) return null;
  const mb = m.b / m.w;
  const mt = m.t / m.w;
  const varB = Math.max(0, m.bb / m.w - mb * mb);
  const varT = Math.max(0, m.tt / m.w - mt * mt);
  const cov = m.bt / m.w - mb * mt;
  const floor = (0.01 * mt) ** 2;
  const base = { meanBatch: mb, meanMs: mt, batchVar: varB, weight: m.w };
  // Batch sizes that differ by float noise only carry no slope.
  if (Math.sqrt(varB) < Math.max(0.01, 1e-3 * mb)) {
    return { ...base, baseMs: mt, perItemMs: 0, identified: false, residualVar: Math.max(varT, floor) };
  }
  let perItemMs = cov / varB;
  let baseMs = mt - perItemMs * mb;
  if (perItemMs < 0) {
    // Bigger batches never run faster: the data are noise around a constant.
    perItemMs = 0;
    baseMs = mt;
  } else if (baseMs < 0) {
    // No fixed cost: the line through the origin.
    baseMs = 0;
    perItemMs = m.bt / m.bb;
  }
  // Weighted residual sum of squares of the constrained line, over (weight - 2) degrees of freedom.
  const ssr = Math.max(0, m.tt - 2 * baseMs * m.t - 2 * perItemMs * m.bt + baseMs * baseMs * m.w + 2 * baseMs * perItemMs * m.b + perItemMs * perItemMs * m.bb);
  const residualVar = Math.max(ssr / Math.max(m.w - 2, 1), floor);
  return { ...base, baseMs, perItemMs, identified: true, residualVar };
}

/** Standard error of the fitted mean batch time at batch size `b`, ms (ordinary least-squares prediction). */
export function predictionError(fit: ServiceFit, b: number): number {
  if (!fit.identified || fit.batchVar <= 0) return Infinity;
  const d = b - fit.meanBatch;
  return Math.sqrt(fit.residualVar * (1 / fit.weight + (d * d) / (fit.weight * fit.batchVar)));
}

/**
 * Items per second one replica finishes at a full GPU running full batches of `maxBatch`, or null
 * when the model cannot say: too few windows, or batch sizes too alike (relative to the noise) to
 * extrapolate from where they were seen to `maxBatch`.
 */
export function fullBatchCapacity(m: ServiceModel, maxBatch: number): number | null {
  if (!Number.isInteger(maxBatch) || maxBatch < 1) return null;
  const fit = fitService(m);
  if (fit === null) return null;
  const near = Math.abs(fit.meanBatch - maxBatch) <= Math.max(0.25, 0.05 * maxBatch);
  let t: number;
  if (near) {
    // Seen at (about) full batches: the mean time is the answer, slope or not.
    t = fit.identified ? fit.baseMs + fit.perItemMs * maxBatch : fit.meanMs;
  } else {
    if (!fit.identified) return null;
    t = fit.baseMs + fit.perItemMs * maxBatch;
    if (!(predictionError(fit, maxBatch) <= TUNING.serviceMaxRelativeError * t)) return null;
  }
  return t > 0 ? (1000 * maxBatch) / t : null;
}
