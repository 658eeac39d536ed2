// The token budget and the dollar estimate, by clock hour.
import { charge, checkBudget, costDollars, newLedger } from '../../../src/policy/selectors/budget.js';

const H = 3_600_000;
const use = (prompt: number, completion: number, cached = 0) => ({ prompt, completion, cached });

describe('token budget', () => {
  it('counts prompt and completion per pipeline and in all, and starts again each hour', () => {
    const l = newLedger(10 * H);
    const limits = { pipelineTokensPerHour: 1_000, totalTokensPerHour: 1_500 };
    charge(l, 'a', use(800, 100), 10 * H + 1);
    expect(checkBudget(l, 'a', limits, 10 * H + 2)).toEqual({ ok: true });
    charge(l, 'a', use(100, 0), 10 * H + 3);
    const spent = checkBudget(l, 'a', limits, 10 * H + 4);
    expect(spent).toEqual({ ok: false, until: 11 * H, why: 'LLM budget spent: pipeline a used 1000 of its 1000 tokens this hour; the bandit decides until 11:00 UTC' });
    expect(checkBudget(l, 'b', limits, 10 * H + 5).ok).toBe(true);
    charge(l, 'b', use(500, 0), 10 * H + 6);
    expect(checkBudget(l, 'b', limits, 10 * H + 7)).toMatchObject({ ok: false, why: expect.stringMatching(/all pipelines used 1500 of the server's 1500/) });
    expect(checkBudget(l, 'a', limits, 11 * H)).toEqual({ ok: true });
    expect(l.total).toBe(0);
  });
  it('0 means no limit', () => {
    const l = newLedger();
    charge(l, 'a', use(1e9, 1e9), 0);
    expect(checkBudget(l, 'a', { pipelineTokensPerHour: 0, totalTokensPerHour: 0 }, 1)).toEqual({ ok: true });
  });
});

describe('costDollars', () => {
  it('prices cached prompt tokens apart, at the prompt price unless given', () => {
    expect(costDollars(use(1_000_000, 1_000_000, 400_000), { promptPerMTok: 2, completionPerMTok: 8, cachedPerMTok: 0.5 })).toBeCloseTo(1.2 + 0.2 + 8);
    expect(costDollars(use(1_000_000, 0, 400_000), { promptPerMTok: 2, completionPerMTok: 8 })).toBeCloseTo(2);
  });
});
