// The floors and the normalizer together, as the decision step runs them: a proposal is lifted to
// the floors, then limited. Floors and notes are checked here; test/policy/floors.test.ts checks
// who produced each change.
import { detectBottleneck, type BottleneckResult } from '../../src/policy/bottleneck.js';
import { computeFloors, liftToFloors, unmetFloors } from '../../src/policy/floors.js';
import type { Anticipation } from '../../src/policy/forecast.js';
import { newWindowState, normalize, noteApplied, recordNeeds, sloBreached, surgeReserveReplicas, usualShare, type NormalizeSettings, type WindowState } from '../../src/policy/normalize.js';
import type { PipelineObservation, PipelineSpec, ScalingAction } from '../../src/core/ports.js';
import { policySettings } from '../../src/policy/settings.js';
import { observation, pipeline, type StageLoad } from './fixtures.js';

/** Floors, lift and normalizer in the step's order; `emergency` when an SLO or saturation floor binds. */
function guard(
  p: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  proposed: ScalingAction[],
  state: WindowState,
  now: number,
  s: NormalizeSettings,
  anticipation: Anticipation | null = null,
) {
  const floors = computeFloors(p, obs, bn, state, { breach: sloBreached(p, obs), anticipation });
  const n = normalize(p, obs, bn, liftToFloors(proposed, floors, obs), state, now, s, anticipation);
  const unmet = unmetFloors(floors, obs);
  return {
    actions: n.actions.map(({ source: _s, ...a }) => a as ScalingAction),
    sources: n.actions.map((a) => a.source),
    notes: [...unmet.map((f) => f.why), ...n.notes],
    emergency: unmet.some((f) => /breach|saturation/.test(f.why)),
    forced: n.actions.some((a) => a.source === 'floor'),
  };
}

const settings = policySettings({ maxStep: 3, cooldowns: { scaleUpMs: 30_000, scaleDownMs: 60_000, stabilizationMs: 300_000 } });
const spec = pipeline();
const calm = (infer: Partial<StageLoad> = {}): PipelineObservation =>
  observation([{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 4, gpuCores: 50, ...infer }, { arrival: 40, perReplica: 100, replicas: 2 }], {
    p99Ms: 200,
  });

function run(obs: PipelineObservation, proposed: ScalingAction[], state = newWindowState(), now = 1_000_000) {
  const bn = detectBottleneck(spec, obs);
  recordNeeds(state, bn, obs, now, settings.cooldowns.stabilizationMs);
  return guard(spec, obs, bn, proposed, state, now, settings);
}

describe('floors and normalizer', () => {
  it('clamps to the pipeline bounds and the tighter HPA bounds', () => {
    expect(run(calm(), [{ kind: 'replicas', stage: 1, replicas: 50 }]).actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 7 }]);
    const hpa = calm({ hpa: { minReplicas: 2, maxReplicas: 5 } });
    const r = run(hpa, [{ kind: 'replicas', stage: 1, replicas: 7 }]);
    expect(r.actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 5 }]);
    expect(r.notes.join()).toMatch(/bounds 2\.\.5/);
    expect(run(calm({ gpuCores: 80 }), [{ kind: 'gpuCores', stage: 1, gpuCores: 150 }]).actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 100 }]);
    // A GPU change moves at most maxStep GPU steps at once.
    expect(run(calm(), [{ kind: 'gpuCores', stage: 1, gpuCores: 150 }]).actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 80 }]);
  });

  it('limits the step to maxStep', () => {
    const r = run(calm(), [{ kind: 'replicas', stage: 0, replicas: 9 }]);
    expect(r.actions).toEqual([{ kind: 'replicas', stage: 0, replicas: 5 }]);
    // Limited, but still the selector's choice.
    expect(r.forced).toBe(false);
  });

  it('enforces per-stage cooldowns', () => {
    const state = newWindowState();
    const obs = calm();
    noteApplied(state, obs, [{ kind: 'replicas', stage: 1, replicas: 5 }], 1_000_000);
    expect(run(obs, [{ kind: 'replicas', stage: 1, replicas: 5 }], state, 1_010_000).notes).toContain('stage 1: scale-up cooldown');
    expect(run(obs, [{ kind: 'replicas', stage: 0, replicas: 3 }], state, 1_010_000).actions).toHaveLength(1);
    expect(run(obs, [{ kind: 'replicas', stage: 1, replicas: 5 }], state, 1_031_000).actions).toHaveLength(1);
    expect(run(obs, [{ kind: 'replicas', stage: 1, replicas: 3 }], state, 1_031_000).notes).toContain('stage 1: scale-down cooldown');
  });

  it('stabilizes scale-down at the highest need in the window', () => {
    const state = newWindowState();
    // A burst five minutes ago needed 6 replicas of stage 1 (ceil(120 / (30 * 0.7))).
    run(calm({ arrival: 120, replicas: 6 }), [], state, 1_000_000);
    const r = run(calm({ replicas: 6 }), [{ kind: 'replicas', stage: 1, replicas: 2 }], state, 1_200_000);
    expect(r.actions).toEqual([]);
    expect(r.notes.join()).toMatch(/stabilized at 6/);
    // Once the burst leaves the window, the scale-down goes through.
    expect(run(calm({ replicas: 6 }), [{ kind: 'replicas', stage: 1, replicas: 4 }], state, 1_400_000).actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 4 }]);
  });

  it('scales a CPU bottleneck up at once on an SLO breach, cooldown or not', () => {
    const state = newWindowState();
    const hot = observation(
      [{ arrival: 100, perReplica: 30, replicas: 2 }, { arrival: 100, perReplica: 300, replicas: 1, gpuCores: 50 }, { arrival: 100, perReplica: 100, replicas: 2 }],
      { p99Ms: 2_000, sloViolation: 0.3 },
    );
    noteApplied(state, hot, [{ kind: 'replicas', stage: 0, replicas: 2 }], 999_000);
    const r = run(hot, [], state);
    expect(r.actions).toEqual([{ kind: 'replicas', stage: 0, replicas: 5 }]);
  });

  it('scales the bottleneck up at once on an SLO breach, cooldown or not, and never down', () => {
    const state = newWindowState();
    const hot = observation(
      [{ arrival: 100, perReplica: 80, replicas: 2 }, { arrival: 100, perReplica: 30, replicas: 2, gpuCores: 50 }, { arrival: 100, perReplica: 100, replicas: 2 }],
      { p99Ms: 2_000, sloViolation: 0.3 },
    );
    noteApplied(state, hot, [{ kind: 'replicas', stage: 1, replicas: 3 }], 999_000);
    const r = run(hot, [{ kind: 'replicas', stage: 2, replicas: 1 }], state);
    expect(r.emergency).toBe(true);
    // GPU share first (instant, past the step limit), then replicas for what share cannot cover:
    // the load (140/s with the queue's growth) plus its 1,200 queued items drained within 20 s.
    expect(r.actions).toEqual([
      { kind: 'gpuCores', stage: 1, gpuCores: 100 },
      { kind: 'replicas', stage: 1, replicas: 5 },
    ]);
    expect(r.notes).toContain('stage 2: no scale-down during an SLO breach');
    // The floors' changes: the selector did not choose them, so they are not learned.
    expect(r.forced).toBe(true);
    expect(r.sources).toEqual(['floor', 'floor']);
  });

  it('sizes a GPU stage on a breach by its full-batch load, not by its utilization-based need', () => {
    const state = newWindowState();
    const obs = observation(
      [{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 1, gpuCores: 100 }, { arrival: 40, perReplica: 100, replicas: 2 }],
      { p99Ms: 2_000, sloViolation: 0.3 },
    );
    // The window still holds the breach a share increase has just ended: at full batches stage 1
    // runs at 0.6 of its capacity, though its busy small batches make it look like 2 replicas' worth.
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.6, 0.2], needed: [1, 2, 1], drainPressure: [0.3, 0.6, 0.2] };
    recordNeeds(state, bn, obs, 1_000_000, settings.cooldowns.stabilizationMs);
    expect(guard(spec, obs, bn, [], state, 1_000_000, settings).actions).toEqual([]);
    // Past the emergency's target, it gets what its full-batch load needs at 0.7: ceil(1.1 / 0.7) = 2.
    const short: BottleneckResult = { ...bn, pressure: [0.3, 1.1, 0.2], drainPressure: [0.3, 1.1, 0.2] };
    expect(guard(spec, obs, short, [], newWindowState(), 1_000_000, settings).actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 2 }]);
  });

  it('treats a saturated stage as an emergency before the SLO breaks', () => {
    const state = newWindowState();
    const saturated = observation(
      [{ arrival: 100, perReplica: 30, replicas: 2 }, { arrival: 100, perReplica: 300, replicas: 1, gpuCores: 50 }, { arrival: 100, perReplica: 100, replicas: 2 }],
      { p99Ms: 300, sloViolation: 0 },
    );
    noteApplied(state, saturated, [{ kind: 'replicas', stage: 0, replicas: 2 }], 999_000);
    const r = run(saturated, [{ kind: 'replicas', stage: 2, replicas: 3 }], state);
    expect(r.emergency).toBe(true);
    expect(r.actions).toEqual([
      { kind: 'replicas', stage: 2, replicas: 3 },
      { kind: 'replicas', stage: 0, replicas: 5 },
    ]);
    expect(r.notes).toContain('saturation: stage 0 to at least 20 replicas');
    expect(r.notes).toContain('stage 0: step limited to 3');
    expect(r.sources).toEqual(['selector', 'floor']);
  });

  it('makes a scale-up the selector already chose urgent on a breach, past the cooldown', () => {
    const state = newWindowState();
    const obs = observation(
      [{ arrival: 100, perReplica: 80, replicas: 2 }, { arrival: 100, perReplica: 300, replicas: 1, gpuCores: 100 }, { arrival: 100, perReplica: 200, replicas: 1 }],
      { p99Ms: 900 },
    );
    noteApplied(state, obs, [{ kind: 'replicas', stage: 0, replicas: 2 }], 999_000);
    // The emergency alone would ask for 3; the selector's 4 is more and goes through as the emergency's scale-up.
    const bn: BottleneckResult = { stage: 0, pressure: [0.9, 0.3, 0.5], needed: [3, 1, 1], drainPressure: [0.9, 0.3, 0.5] };
    const r = guard(spec, obs, bn, [{ kind: 'replicas', stage: 0, replicas: 4 }], state, 1_000_000, settings);
    expect(r.emergency).toBe(true);
    expect(r.actions).toEqual([{ kind: 'replicas', stage: 0, replicas: 4 }]);
    expect(r.sources).toEqual(['selector']);
    expect(r.notes).not.toContain('stage 0: scale-up cooldown');
  });

  it('caps the selector\'s scale-up of a GPU stage at the emergency\'s count once the emergency has raised its share', () => {
    const obs = observation(
      [{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 2, gpuCores: 70 }, { arrival: 40, perReplica: 100, replicas: 2 }],
      { p99Ms: 900 },
    );
    // Stage 1 at 1.5 of its full-batch capacity at 70 %: share to 100 % leaves 1.05, so ceil(2 x 1.05 / 0.7) = 3 replicas.
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 1.5, 0.2], needed: [1, 5, 1], drainPressure: [0.3, 1.5, 0.2] };
    const r = guard(spec, obs, bn, [{ kind: 'replicas', stage: 1, replicas: 5 }], newWindowState(), 1_000_000, settings);
    expect(r.actions).toEqual([
      { kind: 'replicas', stage: 1, replicas: 3 },
      { kind: 'gpuCores', stage: 1, gpuCores: 100 },
    ]);
    // Without a share increase (already at 100 %), the selector's larger count stands.
    const full = observation(
      [{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 2, gpuCores: 100 }, { arrival: 40, perReplica: 100, replicas: 2 }],
      { p99Ms: 900 },
    );
    expect(guard(spec, full, bn, [{ kind: 'replicas', stage: 1, replicas: 5 }], newWindowState(), 1_000_000, settings).actions).toEqual([
      { kind: 'replicas', stage: 1, replicas: 5 },
    ]);
  });

  describe('surge reserve', () => {
    // Stage 1: 2 replicas at 60 % running at 0.3 of their full-batch capacity = 0.36 GPUs of load.
    const obs = calm({ replicas: 2, gpuCores: 60 });
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.3, 0.2], needed: [1, 2, 1] };
    const minuteOf = (state: WindowState, factor: number, at = obs) => {
      for (let t = 940_000; t <= 1_000_000; t += 15_000) recordNeeds(state, bn, at, t, settings.cooldowns.stabilizationMs, null, factor);
    };

    it('sizes the reserve from the median load of the last two minutes, and asks nothing without a minute of samples', () => {
      expect(surgeReserveReplicas([], 0, 4)).toBe(0);
      const units = [0.36, 0.36, 5, 0.36].map((u, k) => ({ time: 1_000_000 - k * 15_000, units: u }));
      // ceil(4 x 0.36) = 2 replicas at a whole GPU; the one-window 5 is not the median.
      expect(surgeReserveReplicas(units, 1_000_000, 4)).toBe(2);
      expect(surgeReserveReplicas(units, 1_000_000, 10)).toBe(4);
      expect(surgeReserveReplicas(units.slice(0, 3), 1_000_000, 10)).toBe(0);
      expect(surgeReserveReplicas(units, 1_000_000, 0)).toBe(0);
    });

    it('is a floor on a GPU stage\'s replicas, added at the share the stage has; how far to cut the share is the selector\'s', () => {
      const state = newWindowState();
      minuteOf(state, 10);
      // 10 x 0.36 = 3.6: at least 4 replicas, at 60 % until the selector cuts the share.
      const add = guard(spec, obs, bn, [], state, 1_000_000, settings);
      expect(add.actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 4 }]);
      expect(add.forced).toBe(true);
      expect(add.notes).toContain('surge reserve: stage 1 to at least 4 replicas');
      // Ready, with the same GPU units over 4 replicas: nothing more is added, and no share is cut for the selector.
      const ready = calm({ replicas: 4, gpuCores: 60 });
      noteApplied(state, obs, add.actions, 1_000_000);
      const after = guard(spec, ready, bn, [], state, 1_015_000, settings);
      expect(after.actions).toEqual([]);
      expect(after.notes.some((n) => n.includes('surge reserve'))).toBe(false);
    });

    it('holds replica trims at the reserve, and keeps none when it is off', () => {
      const state = newWindowState();
      const four = calm({ replicas: 4, gpuCores: 30 });
      minuteOf(state, 10, four);
      const trim = guard(spec, four, bn, [{ kind: 'replicas', stage: 1, replicas: 2 }], state, 1_000_000, settings);
      expect(trim.actions).toEqual([]);
      expect(trim.notes).toContain('stage 1: scale-down held at the surge reserve of 4');
      const off = newWindowState();
      minuteOf(off, 0);
      expect(guard(spec, obs, bn, [], off, 1_000_000, settings).actions).toEqual([]);
    });
  });

  it('cuts a batching GPU stage by its full-batch load, not by utilization, which small batches keep high', () => {
    const obs = calm({ replicas: 2, gpuCores: 60 });
    const cut = (pressure: number) => {
      const state = newWindowState();
      // Utilization says 4 replicas at 60 %; at full batches the stage runs at `pressure`.
      const bn: BottleneckResult = { stage: 1, pressure: [0.3, pressure, 0.2], needed: [1, 4, 1] };
      recordNeeds(state, bn, obs, 1_000_000, settings.cooldowns.stabilizationMs);
      return guard(spec, obs, bn, [{ kind: 'gpuCores', stage: 1, gpuCores: 50 }], state, 1_000_000, settings);
    };
    // Peak 0.3 x 2 x 0.6 = 0.36 GPUs of full-batch load; 2 replicas at 50 % (1 GPU) run it at 0.36 <= 0.4.
    expect(cut(0.3).actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 50 }]);
    // 0.55 x 2 x 0.6 = 0.66 would run the cut capacity above 0.4: refused.
    const refused = cut(0.55);
    expect(refused.actions).toEqual([]);
    expect(refused.notes).toContain('stage 1: GPU cut stabilized (recent peak needs the share)');
  });

  describe('a consolidation (a replica trim with a share raise on one stage)', () => {
    // Stage 1: 3 replicas at 60 % at 0.3 of their full-batch capacity.
    const obs = calm({ replicas: 3, gpuCores: 60 });
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.3, 0.2], needed: [1, 3, 1] };
    const pack: ScalingAction[] = [
      { kind: 'replicas', stage: 1, replicas: 2 },
      { kind: 'gpuCores', stage: 1, gpuCores: 90 },
    ];

    it('is judged at the raised share and applied whole, past the share step limit', () => {
      const state = newWindowState();
      recordNeeds(state, bn, obs, 1_000_000, settings.cooldowns.stabilizationMs);
      // Judged at 60 % the trim would leave 0.45 > 0.4; at 90 % the stage keeps 0.3.
      expect(guard(spec, obs, bn, [pack[0]!], state, 1_000_000, settings).actions).toEqual([]);
      const r = guard(spec, obs, bn, pack, state, 1_000_000, settings);
      expect(r.actions).toEqual([
        { kind: 'gpuCores', stage: 1, gpuCores: 90 },
        { kind: 'replicas', stage: 1, replicas: 2 },
      ]);
      expect(r.sources).toEqual(['selector', 'selector']);
    });

    it('goes neither half where the trim is not allowed', () => {
      // In its cooldown.
      const cooling = newWindowState();
      recordNeeds(cooling, bn, obs, 1_000_000, settings.cooldowns.stabilizationMs);
      noteApplied(cooling, obs, [{ kind: 'gpuCores', stage: 1, gpuCores: 50 }], 990_000);
      const r = guard(spec, obs, bn, pack, cooling, 1_000_000, settings);
      expect(r.actions).toEqual([]);
      expect(r.notes).toContain('stage 1: scale-down cooldown');
      // Against a recent peak that two replicas at 90 % cannot keep within the limit.
      const peaked = newWindowState();
      recordNeeds(peaked, { ...bn, pressure: [0.3, 0.9, 0.2], needed: [1, 5, 1] }, obs, 940_000, settings.cooldowns.stabilizationMs);
      recordNeeds(peaked, bn, obs, 1_000_000, settings.cooldowns.stabilizationMs);
      const held = guard(spec, obs, bn, pack, peaked, 1_000_000, settings);
      expect(held.actions).toEqual([]);
      expect(held.notes).toContain('stage 1: consolidation held (the trim is not allowed)');
    });
  });

  describe('with a P99 budget', () => {
    // Stage 1: 2 replicas at 60 %, full-batch load 0.55 x 2 x 0.6 = 0.66 GPUs; the SLO is 500 ms.
    const obs = (p99Ms: number) => ({ ...calm({ replicas: 2, gpuCores: 60 }), p99Ms });
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.55, 0.2], needed: [1, 4, 1] };
    const budget = { sloP99Ms: 500, p99Budget: 0.5 };
    /** `ticks` ticks 15 s apart at `p99Ms`, then a proposal to cut stage 1 to `gpuCores`. */
    const cutAfter = (ticks: number, p99Ms: number | number[], gpuCores: number, state = newWindowState()) => {
      const p99s = Array.isArray(p99Ms) ? p99Ms : Array<number>(ticks).fill(p99Ms);
      let now = 1_000_000;
      for (const p of p99s) recordNeeds(state, bn, obs(p), (now += 15_000), settings.cooldowns.stabilizationMs, budget);
      return { state, result: guard(spec, obs(p99s.at(-1)!), bn, [{ kind: 'gpuCores', stage: 1, gpuCores }], state, now, settings) };
    };

    it('cuts a GPU stage past 0.4 of its full-batch capacity where P99 leaves room in the SLO', () => {
      // P99 at 0.2 of the SLO with the stage at 0.55: 0.5 x 0.55 / 0.2 is past the 0.75 cap, so the limit is 0.75.
      const { state, result } = cutAfter(4, 100, 50);
      expect(state.cutLimits[1]).toBe(0.75);
      // At 50 %, 0.66 / 1.0 = 0.66 <= 0.75.
      expect(result.actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 50 }]);
      // At 40 %, 0.66 / 0.8 = 0.83: past the cap, however loose the SLO.
      expect(cutAfter(4, 100, 40).result.actions).toEqual([]);
    });

    it('sets the limit where P99, scaled with the load/capacity, would reach the budget', () => {
      // P99 at 0.5 of the SLO: 0.5 x 0.55 / 0.5 = 0.55; a cut to 50 % (0.66) is refused.
      const { state, result } = cutAfter(4, 250, 50);
      expect(state.cutLimits[1]).toBeCloseTo(0.55);
      expect(result.actions).toEqual([]);
      expect(result.notes).toContain('stage 1: GPU cut stabilized (recent peak needs the share)');
      // P99 near the SLO: never below the base limit.
      expect(cutAfter(4, 450, 50).state.cutLimits[1]).toBe(0.4);
    });

    it('keeps the base limit without a minute of samples, after a breach, after a change, or with no budget', () => {
      expect(cutAfter(3, 100, 50).result.actions).toEqual([]);
      expect(cutAfter(5, [600, 100, 100, 100, 100], 50).state.cutLimits[1]).toBe(0.4);
      // Samples from before the stage's last change say nothing about its present allocation.
      const changed = newWindowState();
      noteApplied(changed, obs(100), [{ kind: 'gpuCores', stage: 1, gpuCores: 60 }], 1_040_000);
      expect(cutAfter(4, 100, 50, changed).state.cutLimits[1]).toBe(0.4);
      const state = newWindowState();
      for (let t = 1; t <= 5; t++) recordNeeds(state, bn, obs(100), 1_000_000 + t * 15_000, settings.cooldowns.stabilizationMs);
      expect(state.cutLimits[1]).toBe(0.4);
    });
  });

  describe('with a forecast of recurring load', () => {
    const due = (shareFactor: number, replicaFactor = shareFactor): Anticipation => ({ periodMs: 600_000, confidence: 0.9, shareFactor, replicaFactor });
    const withForecast = (obs: PipelineObservation, proposed: ScalingAction[], f: Anticipation, state = newWindowState(), now = 1_000_000) => {
      const bn = detectBottleneck(spec, obs);
      recordNeeds(state, bn, obs, now, settings.cooldowns.stabilizationMs);
      return guard(spec, obs, bn, proposed, state, now, settings, f);
    };

    it('raises GPU share ahead of a burst due within the share lead, past the cooldown', () => {
      const state = newWindowState();
      const obs = calm();
      noteApplied(state, obs, [{ kind: 'gpuCores', stage: 1, gpuCores: 50 }], 990_000);
      // Stage 1 runs at 40 / (30 x 4) = 0.33; x3 = 1.0 of today's share, so 50 % -> ceil(50 x 1.0 / 0.7) = 80 %.
      const r = withForecast(obs, [], due(3, 3), state);
      expect(r.actions).toContainEqual({ kind: 'gpuCores', stage: 1, gpuCores: 80 });
      expect(r.forced).toBe(true);
      expect(r.notes.join('\n')).toMatch(/forecast: load x3\.0 due \(period 600 s\): GPU share of stage 1 to at least 80%/);
      // Nothing is due: nothing changes.
      expect(withForecast(obs, [], due(1)).actions).toEqual([]);
    });

    it('adds replicas ahead of time for what the largest share cannot cover, and sizes CPU stages for the forecast load', () => {
      // x5 at the full share: 0.33 x 5 x 50/100 = 0.83 > 0.75, so ceil(4 x 0.83 / 0.7) = 5 replicas.
      const r = withForecast(calm(), [], due(1, 5));
      expect(r.actions).toContainEqual({ kind: 'replicas', stage: 1, replicas: 5 });
      // Stage 0 needs ceil(40 / (80 x 0.7 / 3)) = 3 today (a cheap stage keeps 3x headroom); x5 = 15, at most maxStep (3) more.
      expect(r.actions).toContainEqual({ kind: 'replicas', stage: 0, replicas: 5 });
      expect(r.actions.some((a) => a.kind === 'gpuCores')).toBe(false);
    });

    it('leaves a breach to the emergency', () => {
      const breach = observation([{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 4, gpuCores: 50 }, { arrival: 40, perReplica: 100, replicas: 2 }], {
        p99Ms: 900,
      });
      expect(withForecast(breach, [], due(3)).notes.join()).not.toMatch(/forecast/);
    });

    it('lets capacity kept for the last burst go once the scale-down cooldown has passed, unless the next one is due', () => {
      const burst = calm({ arrival: 120, replicas: 6 });
      const after = (f: Anticipation | null, now: number) => {
        const state = newWindowState();
        withForecast(burst, [], due(1), state, 1_000_000);
        const obs = calm({ replicas: 6 });
        const bn = detectBottleneck(spec, obs);
        recordNeeds(state, bn, obs, now, settings.cooldowns.stabilizationMs);
        return guard(spec, obs, bn, [{ kind: 'replicas', stage: 1, replicas: 4 }], state, now, settings, f);
      };
      // Without a forecast the burst's 6 replicas stay for the stabilization window (5 minutes here).
      expect(after(null, 1_120_000).actions).toEqual([]);
      // With a clear period and nothing due, only the last scale-down cooldown's peak counts.
      expect(after(due(1), 1_120_000).actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 4 }]);
      // But not within the cooldown of the burst, nor when the next burst is due within the replica lead.
      expect(after(due(1), 1_030_000).actions).toEqual([]);
      const dueSoon = after(due(1, 3), 1_120_000);
      expect(dueSoon.actions.filter((a) => a.kind !== 'hold' && a.stage === 1)).toEqual([]);
      expect(dueSoon.notes).toContain('stage 1: scale-down stabilized at 6');
    });
  });

  it('holds, never scales down, when metrics are missing', () => {
    const obs = calm();
    obs.p99Ms = null;
    const r = run(obs, [{ kind: 'replicas', stage: 1, replicas: 1 }]);
    expect(r).toEqual({ actions: [], sources: [], notes: ['metrics missing: hold'], emergency: false, forced: false });
    const noStage = calm();
    noStage.stages[2] = { ...noStage.stages[2]!, arrivalRate: null, utilization: null };
    expect(run(noStage, [{ kind: 'replicas', stage: 0, replicas: 1 }]).actions).toEqual([]);
  });
});

describe('usual share', () => {
  it('is the share a stage stays at or under for nine ticks in ten over the last hour, the one asked where clamped', () => {
    // A spike's three minutes at 80 % in forty at 70 % is not usual; a climb held a third of the time is.
    const spike = [...Array.from({ length: 148 }, () => ({ units: 70 })), ...Array.from({ length: 12 }, () => ({ units: 80 }))];
    expect(usualShare(spike)).toBe(70);
    const climb = [...Array.from({ length: 100 }, () => ({ units: 70 })), ...Array.from({ length: 60 }, () => ({ units: 100 }))];
    expect(usualShare(climb)).toBe(100);
    expect(usualShare([])).toBeNull();

    const spec = pipeline();
    const state = newWindowState();
    const stages: StageLoad[] = [
      { arrival: 10, perReplica: 80, replicas: 1 },
      { arrival: 10, perReplica: 30, replicas: 1, gpuCores: 40 },
      { arrival: 10, perReplica: 100, replicas: 1 },
    ];
    const at = (time: number, asked?: number) => {
      const obs = observation(stages, { time });
      if (asked) obs.allocation[1] = { ...obs.allocation[1]!, gpuCoresAsked: asked, clampedReplicas: 1 };
      recordNeeds(state, detectBottleneck(spec, obs), obs, time, 600_000);
    };
    // Nothing before an hour is seen.
    for (let k = 0; k < 20; k++) at(k * 15_000, 60);
    expect(state.usualShares).toEqual([null, null, null]);
    for (let k = 20; k < 241; k++) at(k * 15_000);
    expect(state.usualShares).toEqual([null, 40, null]);
    // The asked share where a node agent clamps: a twelfth of the hour at 60 % (above) is not usual, a third is.
    for (let k = 241; k < 321; k++) at(k * 15_000, 60);
    expect(state.usualShares[1]).toBe(60);
  });
});
