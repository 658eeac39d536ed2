// Reward by Pareto dominance: an outcome (P99/SLO, cost rate) against a reference (credit.ts: the
// mean outcome of the decision's state), with a margin ε per dimension from the state's spread, so
// noise alone earns 0. Breaking the SLO is always -1. Raw vectors and ε travel with the reward. Pure.
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
