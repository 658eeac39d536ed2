// Credit over a horizon against the state's value: the load is in the state, so the same outcome
// after a burst is not blamed on the action that met it.
import { awaitCredit, creditTick, horizonOutcome, MAX_PENDING, newCreditState } from '../../src/policy/credit.js';
import type { Outcome } from '../../src/policy/types.js';

const o = (costRate: number, p99Ratio = 0.5, sloViolation = 0): Outcome => ({ costRate, p99Ratio, sloViolation });
const H = 90_000;

describe('credit', () => {
  it('judges a horizon by its mean outcome, with an unbounded P99 capped', () => {
    expect(horizonOutcome([o(2), { ...o(4, 1.5, 0.02), arrivalRate: 100 }])).toEqual({ costRate: 3, p99Ratio: 1, sloViolation: 0.01 });
    expect(horizonOutcome([o(2, Infinity), o(2, 0)]).p99Ratio).toBe(5);
  });

  it('judges a decision once its horizon has passed, on the windows after it only', () => {
    const s = newCreditState<string>();
    awaitCredit(s, 0, 'calm', 'd1');
    expect(creditTick(s, o(100), 0, H)).toEqual([]); // the decision's own window measured the time before it
    expect(creditTick(s, o(1), 30_000, H)).toEqual([]);
    expect(creditTick(s, o(1), 60_000, H)).toEqual([]);
    const [c] = creditTick(s, o(1), 90_000, H);
    expect(c!.payload).toBe('d1');
    expect(c!.reward.outcome.costRate).toBe(1);
    // Nothing to compare with in a state seen for the first time.
    expect(c!.reward.value).toBe(0);
    expect(s.pending).toEqual([]);
  });

  const judge = (s: ReturnType<typeof newCreditState<string>>, t0: number, key: string, cost: number, p99 = 0.5, viol = 0) => {
    awaitCredit(s, t0, key, `${key}@${t0}`);
    let out = creditTick(s, o(cost, p99, viol), t0 + 30_000, H);
    out = [...out, ...creditTick(s, o(cost, p99, viol), t0 + 60_000, H)];
    return [...out, ...creditTick(s, o(cost, p99, viol), t0 + 90_000, H)].find((c) => c.payload === `${key}@${t0}`)!;
  };

  it('rewards what beats the state\'s usual outcome and punishes what it dominates', () => {
    const s = newCreditState<string>();
    for (let k = 0; k < 5; k++) judge(s, k * 100_000, 'busy', 3 + (k % 2) * 0.1);
    const cheaper = judge(s, 600_000, 'busy', 2);
    expect(cheaper.reward.value).toBe(1);
    const dearer = judge(s, 700_000, 'busy', 4);
    expect(dearer.reward.value).toBe(-1);
    // A cost that moves within the state's own noise earns 0.
    expect(judge(s, 800_000, 'busy', 3.02).reward.value).toBe(0);
  });

  it('keeps states apart: the same cost is good in a busy state and bad in a quiet one', () => {
    const s = newCreditState<string>();
    for (let k = 0; k < 4; k++) judge(s, k * 100_000, 'busy', 3);
    for (let k = 0; k < 4; k++) judge(s, 500_000 + k * 100_000, 'quiet', 1);
    expect(judge(s, 1_000_000, 'busy', 2).reward.value).toBe(1);
    expect(judge(s, 1_100_000, 'quiet', 2).reward.value).toBe(-1);
  });

  it('keeps at most MAX_PENDING decisions waiting while no outcome arrives (metrics missing)', () => {
    const s = newCreditState<number>();
    for (let k = 0; k < MAX_PENDING + 10; k++) awaitCredit(s, k * 15_000, 'calm', k);
    expect(s.pending).toHaveLength(MAX_PENDING);
    expect(s.pending[0]!.payload).toBe(10);
  });

  it('gives -1 to a horizon that breaks the SLO, however cheap', () => {
    const s = newCreditState<string>();
    for (let k = 0; k < 4; k++) judge(s, k * 100_000, 'busy', 3);
    expect(judge(s, 500_000, 'busy', 1, 1.4, 0.05).reward).toMatchObject({ value: -1, why: 'slo-breach' });
  });
});
