// Each GPU stage's cut depth moves only at an episode's end, deeper after calm episodes in which its
// limit held a trim back, back after violating episodes it ran hot in; a replica trim past the
// default needs the recent peak covered by share alone or a forecast, and a share cut past it a
// stage whose replica bound could carry that peak again.
import type { BottleneckResult } from '../../src/policy/bottleneck.js';
import { cutBases, cutLimitAt, loadOperating, newOperatingState, nextEpisode, observeTick, packShares, saveOperating, shareCutBases, surgePeaks, trimBases, type OperatingState } from '../../src/policy/operating-point.js';
import { TUNING } from '../../src/policy/tuning.js';
import type { PipelineObservation } from '../../src/core/ports.js';
import { observation, pipeline, twoGpuPipeline } from './fixtures.js';

const E = TUNING.operatingEpisodeMs;
const spec = pipeline();
const DEFAULT = TUNING.gpuCutMaxPressure;

/** Stage 1 (GPU): `replicas` at `gpuCores` %, running at full-batch load/capacity `pressure`. */
function tick(replicas: number, gpuCores: number, pressure: number, extra: Partial<PipelineObservation> = {}) {
  const obs = observation(
    [
      { arrival: 40, perReplica: 80, replicas: 1 },
      { arrival: 40, perReplica: 30, replicas, gpuCores },
      { arrival: 40, perReplica: 100, replicas: 1 },
    ],
    { p99Ms: 200, ...extra },
  );
  const bn: BottleneckResult = { stage: 1, pressure: [0.3, pressure, 0.2], needed: [1, replicas, 1] };
  return { obs, bn };
}

/** `n` more episodes of ticks every 15 s, each tick from `at(k)` (k: the episode). */
function episodes(s: OperatingState, n: number, at: (k: number) => { obs: PipelineObservation; bn: BottleneckResult }, learning = true, anticipating = false): string[] {
  const notes: string[] = [];
  if (s.episodeStart === null) nextEpisode(s, 0, learning);
  const start = s.episodeStart!;
  for (let k = 0; k < n; k++) {
    for (let t = 0; t < E; t += 15_000) {
      const { obs, bn } = at(k);
      observeTick(s, spec, obs, bn, anticipating);
    }
    notes.push(...nextEpisode(s, start + (k + 1) * E, learning));
  }
  return notes;
}

const depthOf = (s: OperatingState) => s.stages[1]?.depth ?? 0;

/**
 * A state that has seen an hour of light load (2 x 60 % at 0.1, nothing held back): a share cut past
 * the default needs the recent peak known.
 */
function seenHour(): OperatingState {
  const s = newOperatingState();
  episodes(s, TUNING.surgeMemoryEpisodes, () => tick(2, 60, 0.1));
  expect(depthOf(s)).toBe(0);
  return s;
}

describe('operating point (GPU cut depth)', () => {
  it('starts every stage at the default limit and keeps it with learning off', () => {
    const s = newOperatingState();
    expect(cutBases(s, 3, true)).toEqual([DEFAULT, DEFAULT, DEFAULT]);
    // A stage whose share cut the default limit holds back (0.35 -> 0.39 at 90 %, 0.7 at one replica fewer).
    episodes(s, 6, () => tick(2, 100, 0.35), false);
    expect(depthOf(s)).toBe(0);
    expect(cutBases(s, 3, false)[1]).toBe(DEFAULT);
  });

  it('goes one step deeper per calm episode in which the limit held a cut back, and no deeper than that needs', () => {
    const s = seenHour();
    // Two replicas at 60 % fill two GPUs; at 50 % they share one. At 0.35 that cut would leave 0.42:
    // past the default, within one step.
    const notes = episodes(s, 3, () => tick(2, 60, 0.35));
    expect(depthOf(s)).toBe(TUNING.operatingStep);
    expect(notes).toEqual([`stage 1: GPU cut limit ${cutLimitAt(TUNING.operatingStep).toFixed(2)} (was ${DEFAULT.toFixed(2)})`]);
    // At 0.6 the cut would leave 0.72: four steps, to the deepest.
    episodes(s, 6, () => tick(2, 60, 0.6));
    expect(depthOf(s)).toBe(1);
    expect(cutBases(s, 3, true)[1]).toBeCloseTo(TUNING.gpuCutSlackMaxPressure);
  });

  it('does not move where the limit holds nothing back, where the cut would free no GPU, or while P99 is not calm', () => {
    const idle = seenHour();
    // 0.1 at 60 %: a cut to 50 % leaves 0.12, well within the default.
    episodes(idle, 4, () => tick(2, 60, 0.1));
    expect(depthOf(idle)).toBe(0);
    // Two replicas at 100 % cut to 90 % still fill two GPUs: the bill is the same.
    const whole = seenHour();
    episodes(whole, 4, () => tick(2, 100, 0.38));
    expect(depthOf(whole)).toBe(0);
    const hot = seenHour();
    episodes(hot, 4, () => tick(2, 60, 0.35, { p99Ms: 450 }));
    expect(depthOf(hot)).toBe(0);
  });

  it('backs off two steps after a violating episode it ran past the default in, and sets a ceiling that lifts slowly', () => {
    const s = seenHour();
    episodes(s, 4, () => tick(2, 60, 0.6));
    expect(depthOf(s)).toBe(1);
    // Running at 0.6 (past the default 0.4) with 5 % of requests over the SLO.
    episodes(s, 1, () => tick(2, 60, 0.6, { sloViolation: 0.05 }));
    expect(depthOf(s)).toBeCloseTo(1 - 2 * TUNING.operatingStep);
    expect(s.stages[1]!.ceiling).toBeCloseTo(1 - TUNING.operatingStep);
    // Calm episodes climb back no faster than the ceiling lifts.
    episodes(s, 3, () => tick(2, 60, 0.6));
    expect(depthOf(s)).toBeCloseTo(1 - TUNING.operatingStep + 3 * TUNING.operatingCeilingLift);
  });

  it('blames no violation on a stage that stayed within the default', () => {
    const s = seenHour();
    episodes(s, 2, () => tick(2, 60, 0.35));
    const before = depthOf(s);
    expect(before).toBeGreaterThan(0);
    episodes(s, 1, () => tick(2, 60, 0.3, { sloViolation: 0.2, p99Ms: 900 }));
    expect(depthOf(s)).toBe(before);
  });

  it('lets a replica trim past the default only where the replicas left meet the recent peak by share alone, or a forecast is in force', () => {
    const s = newOperatingState();
    // Three replicas at 40 % running at 0.38: 0.46 GPUs of load; one episode at 3x that (a surge, 1.37 GPUs).
    const hour = TUNING.surgeMemoryEpisodes;
    episodes(s, hour - 1, (k) => (k === 0 ? tick(3, 40, 1.14) : tick(3, 40, 0.38)));
    // A depth learned before (within the first hour nothing deepens it: no peak is known yet).
    s.stages[1]!.depth = 0.5;
    const { obs } = tick(3, 40, 0.38);
    expect(cutBases(s, 3, true)[1]).toBeGreaterThan(DEFAULT);
    // Not before an hour has been seen: the peak may not have come yet.
    expect(trimBases(s, spec, obs, true, false)[1]).toBe(DEFAULT);
    episodes(s, 1, () => tick(3, 40, 0.38));
    // Two replicas at 100 % x 0.7 = 1.4 GPUs >= 1.37: the learned limit applies to a trim.
    expect(trimBases(s, spec, obs, true, false)[1]).toBe(cutBases(s, 3, true)[1]);
    // Against a peak two replicas cannot meet, a trim keeps the default unless a forecast is in force.
    const surged = newOperatingState();
    episodes(surged, hour, (k) => (k === 0 ? tick(3, 40, 1.5) : tick(3, 40, 0.38)));
    surged.stages[1]!.depth = 0.5;
    expect(cutBases(surged, 3, true)[1]).toBeGreaterThan(DEFAULT);
    expect(trimBases(surged, spec, obs, true, false)[1]).toBe(DEFAULT);
    expect(trimBases(surged, spec, obs, true, true)[1]).toBe(cutBases(surged, 3, true)[1]);
    // The peak is forgotten after an hour of episodes.
    episodes(surged, TUNING.surgeMemoryEpisodes, () => tick(3, 40, 0.38));
    expect(trimBases(surged, spec, obs, true, false)[1]).toBe(cutBases(surged, 3, true)[1]);
  });

  it('applies a learned share-cut limit only where the cut it allows frees a GPU', () => {
    const s = seenHour();
    episodes(s, 6, () => tick(2, 60, 0.6));
    const learned = cutBases(s, 3, true)[1]!;
    expect(learned).toBeGreaterThan(DEFAULT);
    // 2 x 60 % at 0.6: cutting to the learned limit (to 50 %) packs both onto one GPU.
    const two = tick(2, 60, 0.6);
    expect(shareCutBases(s, spec, two.obs, two.bn, true)[1]).toBe(learned);
    // 2 x 100 % at 0.3: the learned limit would allow 50 %, which packs them onto one GPU too.
    const full = tick(2, 100, 0.3);
    expect(shareCutBases(s, spec, full.obs, full.bn, true)[1]).toBe(learned);
    // 2 x 100 % at 0.6: the learned limit allows 90 % at most, still two GPUs: the default holds.
    const busy = tick(2, 100, 0.6);
    expect(shareCutBases(s, spec, busy.obs, busy.bn, true)[1]).toBe(DEFAULT);
    expect(shareCutBases(s, spec, two.obs, two.bn, false)[1]).toBe(DEFAULT);
  });

  it('cuts a share past the default only where replicas up to the bound could meet the recent peak again', () => {
    // A cut that frees a GPU gives its room away; a rise back may then be clamped, so the capacity
    // must be one that replicas (at most 8 here) can restore.
    const early = newOperatingState();
    episodes(early, 6, () => tick(2, 60, 0.6));
    // Not before an hour has been seen: the peak may not have come yet.
    expect(depthOf(early)).toBe(0);
    const two = tick(2, 60, 0.6);
    const surged = seenHour();
    // One episode at 8 x 40 % and 1.0: 3.2 GPUs of load. Eight replicas at 50 % carry 2.8 at the
    // emergency target: the cut to 50 % that would pack the two replicas onto one GPU is not taken,
    // and the limit that held it back is not the one to deepen.
    episodes(surged, 1, () => tick(8, 40, 1));
    episodes(surged, 6, () => tick(2, 60, 0.6));
    expect(depthOf(surged)).toBe(0);
    surged.stages[1]!.depth = 1;
    expect(shareCutBases(surged, spec, two.obs, two.bn, true)[1]).toBe(DEFAULT);
    // Once that peak has left the hour's memory, the learned limit applies again.
    episodes(surged, TUNING.surgeMemoryEpisodes, () => tick(2, 60, 0.6));
    expect(shareCutBases(surged, spec, two.obs, two.bn, true)[1]).toBe(cutLimitAt(1));
  });

  it('learns the depths two GPU stages need to pack onto one GPU together, where neither cut alone frees one', () => {
    // embed-like at 70 % and classify-like at 100 %, one replica each: two GPUs. Their peaks (0.12
    // and 0.45 GPUs of full-batch load) fit one GPU at 20 % and 60 % at the deepest limit (0.75).
    const twoGpu = twoGpuPipeline();
    const at = (embed: number, classify: number, replicas = 1) => {
      const obs = observation(
        [
          { arrival: 40, perReplica: 80, replicas: 1 },
          { arrival: 40, perReplica: 30, replicas: 1, gpuCores: 70 },
          { arrival: 40, perReplica: 30, replicas, gpuCores: 100 },
        ],
        { p99Ms: 200 },
      );
      const bn: BottleneckResult = { stage: 2, pressure: [0.3, embed, classify], needed: [1, 1, replicas] };
      return { obs, bn };
    };
    const run = (s: OperatingState, n: number, replicas = 1) => {
      if (s.episodeStart === null) nextEpisode(s, 0, true);
      const start = s.episodeStart!;
      for (let k = 0; k < n; k++) {
        // Each episode: a burst (0.17 and 0.45) and a lull.
        for (let t = 0; t < E; t += 15_000) {
          const { obs, bn } = t < E / 2 ? at(0.17, 0.45, replicas) : at(0.05, 0.13, replicas);
          observeTick(s, twoGpu, obs, bn, false);
        }
        nextEpisode(s, start + (k + 1) * E, true);
      }
    };
    const s = newOperatingState();
    run(s, TUNING.surgeMemoryEpisodes - 1);
    // Not before an hour is seen.
    expect(packShares(s, twoGpu, at(0.05, 0.13).obs)).toEqual([null, null, null]);
    expect(s.stages[2]!.depth).toBe(0);
    run(s, 1);
    expect(packShares(s, twoGpu, at(0.05, 0.13).obs)).toEqual([null, 20, 60]);
    // A peak one replica could not carry at its largest share at that limit gives no pack share.
    const heavy = newOperatingState();
    run(heavy, TUNING.surgeMemoryEpisodes);
    heavy.stages[2]!.peaks.push(0.8);
    expect(packShares(heavy, twoGpu, at(0.05, 0.13).obs)[2]).toBeNull();
    // From then on classify's one-step cut in a burst is a step toward the pack that its limit holds
    // back, so its depth deepens; and the learned limits apply to the cuts toward the pack.
    run(s, 4);
    expect(s.stages[2]!.depth).toBeGreaterThan(0);
    const lull = at(0.05, 0.13);
    expect(shareCutBases(s, twoGpu, lull.obs, lull.bn, true)[2]).toBe(cutLimitAt(s.stages[2]!.depth));
    expect(shareCutBases(s, twoGpu, lull.obs, lull.bn, false)[2]).toBe(DEFAULT);
    // A stage with several replicas has no pack share (its replicas, not a fraction of a GPU, are
    // what a burst leaves behind), so the same load on two classify replicas deepens nothing.
    const several = newOperatingState();
    run(several, TUNING.surgeMemoryEpisodes + 4, 2);
    expect(packShares(several, twoGpu, at(0.05, 0.13, 2).obs)[2]).toBeNull();
    expect(several.stages[2]!.depth).toBe(0);
  });
});

describe('operating point (a cheap stage\'s surge reserve)', () => {
  const M = TUNING.surgeMemoryEpisodes;
  /** Stage 0 (cheap, CPU) carrying `load`/s, sized at `headroom`; `violating` windows this tick. */
  function cpuTick(load: number, headroom = 1 / 3, violating = false) {
    const obs = observation(
      [
        { arrival: load, perReplica: 200, replicas: 2 },
        { arrival: load, perReplica: 300, replicas: 1, gpuCores: 50 },
        { arrival: load, perReplica: 400, replicas: 1 },
      ],
      violating ? { p99Ms: 900, sloViolation: 0.2 } : { p99Ms: 200 },
    );
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.3, 0.2], needed: [1, 1, 1], load: [load, load, load], headroom: [headroom, 1, 1 / 3] };
    return { obs, bn };
  }
  it('knows no peak until a whole memory of episodes is seen, then the largest load in it', () => {
    const s = newOperatingState();
    episodes(s, M - 1, (k) => cpuTick(k === 2 ? 150 : 100));
    expect(surgePeaks(s, 3, true)).toEqual([null, null, null]);
    const notes = episodes(s, 1, () => cpuTick(100));
    expect(surgePeaks(s, 3, true)).toEqual([150, null, 150]);
    expect(notes.some((n) => n.startsWith('stage 0:') && n.includes('peak 150.0/s'))).toBe(true);
    // Learning off: the default reserve, whatever was seen.
    expect(surgePeaks(s, 3, false)).toEqual([null, null, null]);
    // The memory is an hour: the 150 ages out.
    episodes(s, 3, () => cpuTick(100));
    expect(surgePeaks(s, 3, true)[0]).toBe(100);
    // A snapshot keeps it across a restart (the stage is known cheap again at its first tick).
    const back = loadOperating(saveOperating(s));
    observeTick(back, spec, cpuTick(100).obs, cpuTick(100).bn, false);
    expect(surgePeaks(back, 3, true)[0]).toBe(100);
  });

  it('forgets its memory after violations in an episode it ran with less than the default reserve, and only then', () => {
    const s = newOperatingState();
    episodes(s, M, () => cpuTick(100));
    // Violations while it kept the default reserve: not its doing.
    episodes(s, 1, () => cpuTick(100, 1 / 3, true));
    expect(surgePeaks(s, 3, true)[0]).toBe(100);
    // Violations while it ran hotter: the default is back for a whole memory.
    const notes = episodes(s, 1, () => cpuTick(100, 1, true));
    expect(surgePeaks(s, 3, true)[0]).toBeNull();
    expect(notes.some((n) => n.startsWith('stage 0:') && n.includes('default is back'))).toBe(true);
    episodes(s, M - 1, () => cpuTick(100));
    expect(surgePeaks(s, 3, true)[0]).toBeNull();
    episodes(s, 1, () => cpuTick(100));
    expect(surgePeaks(s, 3, true)[0]).toBe(100);
  });
});
