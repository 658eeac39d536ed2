// Reward by Pareto dominance: the outcome (P99/SLO, cost rate) after an action against the
// reference (the window before it), with a margin ε per dimension from measured noise, so noise
// alone earns 0. Breaking the SLO is always -1. Raw vectors and ε travel with the reward. Pure.
import type { PipelineObservation, PipelineSpec } from '../core/ports.js';
import type { Outcome, Reward } from './types.js';

/** Share of requests allowed to miss the SLO before a window counts as a breach (P99 semantics). */
export const SLO_TOLERANCE = 0.01;

export function outcomeOf(pipeline: PipelineSpec, obs: PipelineObservation): Outcome | null {
  if (obs.p99Ms === null || !Number.isFinite(obs.costRate)) return null;
  return { p99Ratio: obs.p99Ms / pipeline.sloP99Ms, costRate: obs.costRate, sloViolation: obs.sloViolation, arrivalRate: obs.arrivalRate };
}

export function breachesSlo(o: Outcome): boolean {
  return o.p99Ratio > 1 || (o.sloViolation !== null && o.sloViolation > SLO_TOLERANCE);
}

export interface Epsilon {
  p99Ratio: number;
  costRate: number;
}

/**
 * ε from the last windows: the median absolute change between consecutive windows (a robust
 * noise scale), never below a floor (5 % of the SLO, 2 % of the mean cost).
 */
export function estimateEpsilon(history: readonly Outcome[]): Epsilon {
  const p99Floor = 0.05;
  const meanCost = history.length > 0 ? history.reduce((s, o) => s + o.costRate, 0) / history.length : 0;
  const costFloor = Math.max(0.02 * meanCost, 1e-9);
  if (history.length < 3) return { p99Ratio: p99Floor, costRate: costFloor };
  const dp: number[] = [];
  const dc: number[] = [];
  for (let i = 1; i < history.length; i++) {
    // Huge P99 jumps (breaches, drops) are load changes, not noise; cap them so ε stays a noise scale.
    dp.push(Math.min(Math.abs(history[i]!.p99Ratio - history[i - 1]!.p99Ratio), 1));
    dc.push(Math.abs(history[i]!.costRate - history[i - 1]!.costRate));
  }
  return { p99Ratio: Math.max(p99Floor, median(dp)), costRate: Math.max(costFloor, median(dc)) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** a ε-dominates b: no worse than b + ε in every dimension and better than b - ε in at least one. */
export function dominates(a: Outcome, b: Outcome, eps: Epsilon): boolean {
  const p = Math.min(a.p99Ratio, 1e6);
  const q = Math.min(b.p99Ratio, 1e6);
  const noWorse = p <= q + eps.p99Ratio && a.costRate <= b.costRate + eps.costRate;
  const better = p < q - eps.p99Ratio || a.costRate < b.costRate - eps.costRate;
  return noWorse && better;
}

export function computeReward(outcome: Outcome, reference: Outcome, epsilon: Epsilon): Reward {
  const base = { outcome, reference, epsilon: { ...epsilon } };
  if (breachesSlo(outcome)) return { ...base, value: -1, why: 'slo-breach' };
  if (dominates(outcome, reference, epsilon)) return { ...base, value: 1, why: 'dominates' };
  if (dominates(reference, outcome, epsilon)) return { ...base, value: -1, why: 'dominated' };
  return { ...base, value: 0, why: 'incomparable' };
}
