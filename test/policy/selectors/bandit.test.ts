import { seededRandom } from '../../../src/policy/random.js';
import { createBanditSelector } from '../../../src/policy/selectors/bandit.js';
import type { Candidate, StageStat } from '../../../src/policy/types.js';

const cand = (id: string, prior: number): Candidate => ({ id, key: id, actions: [], describe: id, prior });
const stat = (key: string, n: number, meanReward: number): StageStat => ({ key, n, meanReward, pPositive: Math.max(0, meanReward), pNegative: Math.max(0, -meanReward) });
const input = (candidates: Candidate[], stats: StageStat[]) => ({
  pipelineId: 'p',
  candidates,
  stats: new Map(stats.map((s) => [s.key, s])),
  bottleneck: 1,
  signal: new AbortController().signal,
});

describe('bandit selector (UCB)', () => {
  it('starts from the priors', async () => {
    const b = createBanditSelector({ exploration: 0.2, random: seededRandom(1) });
    expect((await b.choose(input([cand('hold', 0.1), cand('s1+1', 0.6)], []))).candidateId).toBe('s1+1');
  });

  it('lets learned rewards override a wrong prior once they outnumber its weight (100 by default)', async () => {
    const b = createBanditSelector({ exploration: 0.2, random: seededRandom(1) });
    const sel = await b.choose(input([cand('hold', 0.1), cand('s1+1', 0.6)], [stat('s1+1', 200, -0.8), stat('hold', 200, 0.5)]));
    expect(sel.candidateId).toBe('hold');
    expect(sel.reason).toMatch(/UCB/);
  });

  it('weighs the prior as priorWeight experiences: a very large weight ignores what was learned', async () => {
    const learned = [stat('s1+1', 20, -0.8), stat('hold', 20, 0.5)];
    const priorsOnly = createBanditSelector({ exploration: 0, priorWeight: 1e6, random: seededRandom(1) });
    expect((await priorsOnly.choose(input([cand('hold', 0.1), cand('s1+1', 0.6)], learned))).candidateId).toBe('s1+1');
    const light = createBanditSelector({ exploration: 0, priorWeight: 0.5, random: seededRandom(1) });
    expect((await light.choose(input([cand('hold', 0.1), cand('s1+1', 0.6)], [stat('s1+1', 1, -0.8), stat('hold', 1, 0.5)]))).candidateId).toBe('hold');
  });

  it('counts the prior in the bonus too, so a long memory does not make untried actions win on it alone', async () => {
    // 5,000 experiences of similar states, 10 of the share increase (all 0: trade-offs), none of the replica.
    const b = createBanditSelector({ exploration: 0.3, random: seededRandom(1) });
    const sel = await b.choose(input([cand('s1:gpu+', 0.85), cand('s1+1', 0.55), cand('hold', 0)], [stat('s1:gpu+', 10, 0), stat('hold', 4_990, 0.1)]));
    // Without the prior in the bonus's denominator: 0.55 + 0.3 x sqrt(ln 5,001) = 1.43 for the untried replica
    // against 0.77 + 0.26 for the share. With it: 0.64 against 0.85.
    expect(sel.candidateId).toBe('s1:gpu+');
  });

  it('explores a rarely tried action when the bonus is large', async () => {
    const b = createBanditSelector({ exploration: 2, random: seededRandom(1) });
    const sel = await b.choose(input([cand('hold', 0.2), cand('s0-1', 0.1)], [stat('hold', 200, 0.2)]));
    expect(sel.candidateId).toBe('s0-1');
  });

  it('is reproducible for a seed when candidates tie', async () => {
    const pick = async (seed: number) => {
      const b = createBanditSelector({ exploration: 0, random: seededRandom(seed) });
      const out: string[] = [];
      for (let i = 0; i < 10; i++) out.push((await b.choose(input([cand('a', 0), cand('b', 0), cand('c', 0)], []))).candidateId);
      return out;
    };
    expect(await pick(7)).toEqual(await pick(7));
    expect(new Set(await pick(7)).size).toBeGreaterThan(1);
  });
});

describe('banditEstimates', () => {
  it('gives the mean and the bonus the bandit ranks by, for the LLM gate', async () => {
    const { banditEstimates } = await import('../../../src/policy/selectors/bandit.js');
    const [a, b] = banditEstimates([cand('hold', 0.1), cand('s1+1', 0.6)], new Map([['hold', stat('hold', 100, 0.5)]]), { exploration: 0.2 });
    expect(a!.mean).toBeCloseTo((0.1 * 100 + 0.5 * 100) / 200);
    expect(a!.halfWidth).toBeCloseTo(0.2 * Math.sqrt(Math.log(101) / 201));
    expect(b).toMatchObject({ n: 0, mean: 0.6 });
  });
});
