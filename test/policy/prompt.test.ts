import { detectBottleneck } from '../../src/policy/bottleneck.js';
import { generateCandidates } from '../../src/policy/candidates.js';
import { ExperienceBuffer, features } from '../../src/policy/experience.js';
import type { Anticipation } from '../../src/policy/forecast.js';
import { buildPrompt, estimateTokens, experienceRowTokens, SYSTEM_PROMPT } from '../../src/policy/prompt.js';
import { seededRandom } from '../../src/policy/random.js';
import { retrieve } from '../../src/policy/retrieval.js';
import { observation, pipeline } from './fixtures.js';

const spec = pipeline();
function promptFor(arrival: number, exposeNames = false, anticipation: Anticipation | null = null, recentArrivalRate: number | null = null) {
  const obs = observation(
    [
      { arrival, perReplica: 80, replicas: 2 },
      { arrival, perReplica: 30, replicas: 3, gpuCores: 50 },
      { arrival, perReplica: 100, replicas: 2 },
    ],
    { recentArrivalRate, recentWindowMs: 15_000 },
  );
  const bn = detectBottleneck(spec, obs);
  const candidates = generateCandidates(spec, obs, bn, 4);
  return buildPrompt({ pipeline: spec, obs, bn, candidates, stats: new Map(), rows: [], exposeNames, anticipation });
}

function filledBuffer(n: number) {
  const b = new ExperienceBuffer({ maxEntries: 10_000, maxBytes: 64 << 20 });
  const r = seededRandom(3);
  const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
  for (let i = 0; i < n; i++) {
    b.add('ml/demo', {
      time: i,
      features: features(1, [r() * 1.5, r() * 1.5, r() * 1.5], r() * 1.5),
      actionKey: ['hold', 's1+1', 's1-1', 's0+1'][i % 4]!,
      reward: ([-1, 0, 1] as const)[Math.floor(r() * 3)]!,
      outcome: out,
      reference: out,
      epsilon: { p99Ratio: 0.05, costRate: 0.02 },
    });
  }
  return b;
}

describe('prompt', () => {
  it('keeps the prefix byte-identical between calls in different states', () => {
    const a = promptFor(50);
    const b = promptFor(120);
    expect(a.system).toBe(SYSTEM_PROMPT);
    const prefix = (s: string) => s.slice(0, s.indexOf('\nSTATE'));
    expect(prefix(a.user)).toBe(prefix(b.user));
    expect(prefix(a.user).length).toBeGreaterThan(100);
    expect(a.user).not.toBe(b.user);
    expect(a.hash).not.toBe(b.hash);
    expect(promptFor(50).hash).toBe(a.hash);
  });

  it('uses stage indices, not names, unless asked to', () => {
    expect(promptFor(50).user).not.toMatch(/infer|pre\b|post\b/);
    expect(promptFor(50, true).user).toMatch(/stage 1 \(infer\)/);
  });

  it('tells the model about a surge the window shows only in part, and nothing for noise', () => {
    expect(promptFor(50, false, null, 52).user).not.toMatch(/surge/);
    const surging = promptFor(50, false, null, 100);
    expect(surging.user).toMatch(/^surge: 100\.0 req\/s in the newest 15 s, x2\.00 the window's rate/m);
    const prefix = (s: string) => s.slice(0, s.indexOf('\nSTATE'));
    expect(prefix(surging.user)).toBe(prefix(promptFor(50).user));
  });

  it('tells the model about a recurring load after the fixed prefix, and nothing when there is none', () => {
    const plain = promptFor(50);
    expect(plain.user).not.toMatch(/recurring load/);
    const due = promptFor(50, false, { periodMs: 600_000, confidence: 0.85, shareFactor: 1, replicaFactor: 3.5 });
    expect(due.user).toMatch(/^recurring load: period 600 s \(confidence 0\.85\); expected peak arrival x1\.00 of now soon, x3\.50 within a cold start/m);
    const prefix = (s: string) => s.slice(0, s.indexOf('\nSTATE'));
    expect(prefix(due.user)).toBe(prefix(plain.user));
  });

  it('says when the cluster bills whole GPUs (after the fixed prefix, nothing where it bills shares) and when a stage runs clamped', () => {
    const shares = promptFor(50);
    expect(shares.user).toMatch(/^cost: .* x GPU share, unless STATE says the cluster bills whole GPUs$/m);
    expect(shares.user).not.toMatch(/^billing:/m);
    const loads = [
      { arrival: 50, perReplica: 80, replicas: 2 },
      { arrival: 50, perReplica: 30, replicas: 2, gpuCores: 40 },
      { arrival: 50, perReplica: 100, replicas: 2 },
    ];
    const obs = observation(loads, { billedGpus: 2 });
    const bn = detectBottleneck(spec, obs);
    const packed = buildPrompt({ pipeline: spec, obs, bn, candidates: generateCandidates(spec, obs, bn, 4), stats: new Map(), rows: [], exposeNames: false });
    expect(packed.user).toMatch(/^billing: whole GPUs, 2 in use at 2\.5 \$\/GPU-hour \(a share cut saves only where the replicas then fit on fewer GPUs or it frees room another stage waits for; a rise that fits the GPUs in use costs nothing\)$/m);
    const prefix = (s: string) => s.slice(0, s.indexOf('\nSTATE'));
    expect(prefix(packed.user)).toBe(prefix(shares.user));
    expect(packed.user).not.toMatch(/no room on its GPU/);
    // A stage the node agents clamp says so beside its enforced share.
    const clampedObs = { ...obs, allocation: obs.allocation.map((a, i) => (i === 1 ? { ...a, gpuCoresAsked: (a.gpuCores ?? 0) + 20 } : a)) };
    const clamped = buildPrompt({ pipeline: spec, obs: clampedObs, bn, candidates: generateCandidates(spec, clampedObs, bn, 4), stats: new Map(), rows: [], exposeNames: false });
    expect(clamped.user).toMatch(new RegExp(`^stage 1: replicas \\d+ \\(ready \\d+\\); gpu ${obs.allocation[1]!.gpuCores} \\(asked ${obs.allocation[1]!.gpuCores! + 20}: no room on its GPU\\);`, 'm'));
  });

  it('lists every candidate by id', () => {
    const p = promptFor(100);
    expect(p.user).toMatch(/^CANDIDATES\nhold: hold: change nothing\ns0\+1: /m);
  });
});

describe('retrieval', () => {
  const f = features(1, [0.5, 1.0, 0.4], 0.9);
  it('stays within the token budget and mixes similar and surprising rows', () => {
    const b = filledBuffer(800);
    const r = retrieve(b, 'ml/demo', f, ['hold', 's1+1', 's1-1', 's0+1'], { tokenBudget: 600, contextSampling: 0, random: seededRandom(1), rowTokens: experienceRowTokens });
    expect(r.tokens).toBeLessThanOrEqual(600);
    expect(r.tokens).toBeGreaterThan(500);
    expect(r.rows.reduce((s, e) => s + experienceRowTokens(e), 0)).toBe(r.tokens);
    expect(new Set(r.rows).size).toBe(r.rows.length);
    const maxSurprise = Math.max(...r.rows.map((e) => e.surprisal));
    expect(r.rows.some((e) => e.surprisal === maxSurprise)).toBe(true);
    expect(r.stats.get('s1+1')!.n).toBeGreaterThan(0);
  });

  it('thins rows at random, reproducibly for a seed', () => {
    const b = filledBuffer(500);
    const opts = (seed: number) => ({ tokenBudget: 100_000, contextSampling: 0.5, random: seededRandom(seed), rowTokens: experienceRowTokens });
    const all = retrieve(b, 'ml/demo', f, ['hold', 's1+1'], { ...opts(1), contextSampling: 0 }).rows.length;
    const thinned = retrieve(b, 'ml/demo', f, ['hold', 's1+1'], opts(1)).rows;
    expect(thinned.length).toBeLessThan(all * 0.7);
    expect(thinned.length).toBeGreaterThan(all * 0.3);
    expect(retrieve(b, 'ml/demo', f, ['hold', 's1+1'], opts(1)).rows).toEqual(thinned);
  });

  it('gives every selector the statistics of the rows it retrieved, so the order of retrieval matters', () => {
    const b = filledBuffer(800);
    const keys = ['hold', 's1+1', 's1-1', 's0+1'];
    const byMode = (mode: 'surprisal' | 'recency' | 'random') =>
      retrieve(b, 'ml/demo', f, keys, { tokenBudget: 400, contextSampling: 0, random: seededRandom(1), rowTokens: experienceRowTokens, mode });
    for (const mode of ['surprisal', 'recency', 'random'] as const) {
      const r = byMode(mode);
      // The statistics count exactly the retrieved rows (each weighted by its similarity, at most 1).
      const n = [...r.stats.values()].reduce((x, st) => x + st.n, 0);
      expect(n).toBeGreaterThan(0);
      expect(n).toBeLessThanOrEqual(r.rows.length + 1e-9);
      expect(new Set(r.stats.keys())).toEqual(new Set(r.rows.map((e) => e.actionKey)));
    }
    const recent = byMode('recency').rows;
    expect(recent.map((e) => e.time)).toEqual([...recent.map((e) => e.time)].sort((x, y) => y - x));
    expect(byMode('random').rows).not.toEqual(byMode('surprisal').rows);
  });

  it('estimates tokens at about four characters each', () => {
    expect(estimateTokens('abcdefgh')).toBe(2);
  });
});
