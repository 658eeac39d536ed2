import { detectBottleneck } from '../../src/policy/bottleneck.js';
import { generateCandidates } from '../../src/policy/candidates.js';
import { computeFloors, liftToFloors, type Floor } from '../../src/policy/floors.js';
import { newWindowState, normalize, noteApplied, recordNeeds, sloBreached } from '../../src/policy/normalize.js';
import type { PipelineObservation } from '../../src/core/ports.js';
import { screenCandidates } from '../../src/policy/screen.js';
import { policySettings } from '../../src/policy/settings.js';
import { observation, pipeline, type StageLoad } from './fixtures.js';

const settings = policySettings({ maxStep: 3, cooldowns: { scaleUpMs: 30_000, scaleDownMs: 60_000, stabilizationMs: 300_000 } });
const spec = pipeline();
const calm = (infer: Partial<StageLoad> = {}): PipelineObservation =>
  observation([{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 4, gpuCores: 50, ...infer }, { arrival: 40, perReplica: 100, replicas: 2 }], {
    p99Ms: 200,
  });

describe('screenCandidates', () => {
  const screen = (obs: PipelineObservation, state: ReturnType<typeof newWindowState>, now: number) => {
    const bn = detectBottleneck(spec, obs);
    recordNeeds(state, bn, obs, now, settings.cooldowns.stabilizationMs);
    const floors: Floor[] = computeFloors(spec, obs, bn, state, { breach: sloBreached(spec, obs), anticipation: null });
    const all = generateCandidates(spec, obs, bn, settings.maxStep, state);
    return { all, bn, floors, ...screenCandidates(all, spec, obs, bn, floors, state, now, settings) };
  };

  it('does not offer a trim the normalizer would hold, and offers it again once it would let it through', () => {
    const state = newWindowState();
    // A burst needed 6 replicas of stage 1; they are there and now idle.
    screen(calm({ arrival: 120, replicas: 6 }), state, 1_000_000);
    const idle = calm({ replicas: 6 });
    const during = screen(idle, state, 1_200_000);
    // Every trim of stage 1 is stabilized at the burst's need: not offered, and named.
    const stage1Trims = during.all.filter((c) => /^s1(-\d|:gpu[-=])/.test(c.id)).map((c) => c.id);
    expect(stage1Trims.length).toBeGreaterThan(0);
    expect(during.screened).toEqual(expect.arrayContaining(stage1Trims));
    // Screened is exactly what the normalizer would hold: each screened candidate, run, changes
    // nothing; each trim still offered changes something.
    const applied = (id: string) => normalize(spec, idle, during.bn, liftToFloors(during.all.find((x) => x.id === id)!.actions, during.floors, idle), state, 1_200_000, settings).actions;
    for (const id of during.screened) expect(applied(id)).toEqual([]);
    for (const c of during.candidates.filter((x) => x.id !== 'hold' && /-|:gpu=/.test(x.id))) expect(applied(c.id)).not.toEqual([]);
    // Hold and every change that adds capacity stay offered.
    expect(during.candidates[0]!.id).toBe('hold');
    for (const c of during.all.filter((x) => /\+/.test(x.id))) expect(during.candidates).toContain(c);
    // Once the burst has left the window, the trims are offered again.
    const later = screen(idle, state, 1_400_000);
    expect(later.candidates.some((c) => c.id === 's1-1')).toBe(true);
    expect(later.screened).not.toContain('s1-1');
  });

  it('leaves the window state as it was', () => {
    const state = newWindowState();
    screen(calm({ arrival: 120, replicas: 6 }), state, 1_000_000);
    const before = JSON.stringify([...state.lastChange, ...state.lastUp, state.cutLimits, state.reserves]);
    screen(calm({ replicas: 6 }), state, 1_015_000);
    expect(JSON.stringify([...state.lastChange, ...state.lastUp, state.cutLimits, state.reserves])).toBe(before);
  });

  it('keeps scale-ups in their cooldown and during an emergency', () => {
    const state = newWindowState();
    const hot = observation(
      [{ arrival: 100, perReplica: 80, replicas: 2 }, { arrival: 100, perReplica: 30, replicas: 2, gpuCores: 50 }, { arrival: 100, perReplica: 100, replicas: 2 }],
      { p99Ms: 2_000, sloViolation: 0.3 },
    );
    noteApplied(state, hot, [{ kind: 'replicas', stage: 1, replicas: 3 }], 999_000);
    const r = screen(hot, state, 1_000_000);
    // A breach: the normalizer holds every trim, and the floors meet the smaller scale-ups.
    expect(r.candidates.filter((c) => c.id !== 'hold').every((c) => c.actions.every((a) => a.kind !== 'hold' && (a.kind === 'replicas' ? a.replicas >= hot.allocation[a.stage]!.replicas : a.gpuCores >= hot.allocation[a.stage]!.gpuCores!)))).toBe(true);
    expect(r.candidates.length).toBe(r.all.length - r.screened.length);
    expect(r.all.filter((c) => /\+/.test(c.id)).every((c) => r.candidates.includes(c))).toBe(true);
  });
});
