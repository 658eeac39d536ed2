// decide(): ε-exploration tries only one-step candidates the queueing prior finds plausible (prior >= 0),
// so a random scale-up of an idle GPU stage, or two replicas at once, is never explored; the bandit
// still sees every candidate.
import { detectBottleneck } from '../../src/policy/bottleneck.js';
import { generateCandidates } from '../../src/policy/candidates.js';
import { decide } from '../../src/policy/decide.js';
import { seededRandom } from '../../src/policy/random.js';
import { createBanditSelector } from '../../src/policy/selectors/bandit.js';
import { policySettings } from '../../src/policy/settings.js';
import { observation, pipeline } from './fixtures.js';

const spec = pipeline();
// Calm: every stage well under its target, P99 far under the SLO.
const obs = observation(
  [
    { arrival: 20, perReplica: 80, replicas: 3 },
    { arrival: 20, perReplica: 30, replicas: 3, gpuCores: 50 },
    { arrival: 20, perReplica: 100, replicas: 3 },
  ],
  { p99Ms: 100 },
);
const bn = detectBottleneck(spec, obs);
const candidates = generateCandidates(spec, obs, bn, 4);

describe('decide', () => {
  it('explores only one-step candidates whose prior is not negative', async () => {
    const settings = policySettings({ exploration: { epsilon: 1 } });
    const oneStep = (id: string) => /^s\d+([+-]1|:gpu[+-]|:pack)$/.test(id);
    const plausible = new Set(candidates.filter((c) => c.key !== 'hold' && c.prior >= 0 && oneStep(c.id)).map((c) => c.id));
    expect(plausible.size).toBeGreaterThan(0);
    expect(candidates.some((c) => c.prior < 0 && c.id.startsWith('s1+'))).toBe(true);
    // Plausible but bigger moves exist (a trim by two, a share cut of several steps) and are not explored.
    expect(candidates.some((c) => c.prior >= 0 && c.key !== 'hold' && !oneStep(c.id))).toBe(true);
    const random = seededRandom(5);
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = await decide(
        { pipeline: spec, obs, bn, candidates, stats: new Map(), now: 1_000_000 },
        { bandit: createBanditSelector({ exploration: 0.2, random }), settings, random },
      );
      expect(d.selector).toBe('explore');
      seen.add(d.proposed);
    }
    expect([...seen].every((id) => plausible.has(id))).toBe(true);
  }, 10_000);

  it('falls back to hold, naming why, when no selector answers with a candidate', async () => {
    const settings = policySettings({ exploration: { epsilon: 0 } });
    const broken = { name: 'bandit' as const, choose: async () => ({ candidateId: 'nope', reason: '' }) };
    const d = await decide({ pipeline: spec, obs, bn, candidates, stats: new Map(), now: 1_000_000 }, { bandit: broken, settings, random: seededRandom(1) });
    expect(d.selector).toBe('hold');
    expect(d.chosen.key).toBe('hold');
    expect(d.fallbackReason).toMatch(/invalid-action: "nope" is not a candidate/);
  });
});
