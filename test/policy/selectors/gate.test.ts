// When the LLM is consulted: novel states and close calls only.
import { DEFAULT_NOVELTY_THRESHOLD, novelty, shouldConsult } from '../../../src/policy/selectors/gate.js';

describe('novelty', () => {
  it('is high for a fresh memory and a state never seen, low for a familiar one', () => {
    expect(novelty(0, 0)).toBeCloseTo(Math.log(20));
    expect(novelty(0, 500)).toBeCloseTo(Math.log(520));
    expect(novelty(60, 200)).toBeCloseTo(-Math.log(61 / 220));
    expect(novelty(60, 200)).toBeLessThan(DEFAULT_NOVELTY_THRESHOLD);
    expect(novelty(5, 200)).toBeGreaterThan(DEFAULT_NOVELTY_THRESHOLD);
  });
});

describe('shouldConsult', () => {
  const threshold = DEFAULT_NOVELTY_THRESHOLD;
  it('consults in a novel state whatever the bandit thinks', () => {
    expect(shouldConsult({ novelty: 4, banditTop: [{ mean: 0.9, halfWidth: 0 }, { mean: 0, halfWidth: 0 }], threshold })).toEqual({
      consult: true,
      why: 'novel state: surprisal 4.00 >= 3.00',
    });
  });
  it("consults when the bandit's two best overlap within their uncertainty, in any order", () => {
    const v = shouldConsult({ novelty: 1, banditTop: [{ mean: 0.1, halfWidth: 0.05 }, { mean: 0.5, halfWidth: 0.02 }, { mean: 0.45, halfWidth: 0.04 }], threshold });
    expect(v.consult).toBe(true);
    expect(v.why).toMatch(/within its uncertainty: gap 0\.050 <= 0\.060/);
  });
  it('lets the bandit decide a familiar state with a clear choice', () => {
    const v = shouldConsult({ novelty: 1, banditTop: [{ mean: 0.85, halfWidth: 0.02 }, { mean: 0.4, halfWidth: 0.02 }], threshold });
    expect(v).toEqual({ consult: false, why: 'familiar state (surprisal 1.00) and a clear bandit choice: gap 0.450 > 0.040' });
    expect(shouldConsult({ novelty: 1, banditTop: [{ mean: 0.85, halfWidth: 0.02 }], threshold }).consult).toBe(false);
  });
});
