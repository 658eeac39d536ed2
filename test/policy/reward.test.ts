import { computeReward } from '../../src/policy/reward.js';
import type { Outcome } from '../../src/policy/types.js';

const o = (p99Ratio: number, costRate: number, sloViolation: number | null = 0): Outcome => ({ p99Ratio, costRate, sloViolation });
const eps = { p99Ratio: 0.05, costRate: 0.05 };

describe('reward by Pareto dominance', () => {
  it('is +1 when the outcome dominates beyond ε, -1 when dominated, 0 for a trade-off', () => {
    expect(computeReward(o(0.5, 1.0), o(0.7, 1.0), eps).value).toBe(1);
    expect(computeReward(o(0.6, 0.8), o(0.6, 1.0), eps).value).toBe(1);
    expect(computeReward(o(0.8, 1.2), o(0.6, 1.0), eps).value).toBe(-1);
    expect(computeReward(o(0.4, 1.5), o(0.6, 1.0), eps)).toMatchObject({ value: 0, why: 'incomparable' });
  });

  it('treats differences within ε as noise', () => {
    expect(computeReward(o(0.62, 1.02), o(0.6, 1.0), eps).value).toBe(0);
    expect(computeReward(o(0.62, 1.02), o(0.6, 1.0), { p99Ratio: 0.01, costRate: 0.01 }).value).toBe(-1);
  });

  it('is always -1 when the SLO breaks, even if everything improved', () => {
    expect(computeReward(o(1.2, 0.5), o(3, 2), eps)).toMatchObject({ value: -1, why: 'slo-breach' });
    expect(computeReward(o(0.9, 0.5, 0.05), o(0.95, 2), eps).value).toBe(-1);
  });

  it('keeps the raw vectors and ε so the reward can be recomputed', () => {
    const r = computeReward(o(0.5, 1), o(0.7, 1), eps);
    expect(r.outcome).toEqual(o(0.5, 1));
    expect(r.reference).toEqual(o(0.7, 1));
    expect(computeReward(r.outcome, r.reference, r.epsilon)).toEqual(r);
  });
});
