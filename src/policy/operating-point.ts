// How deep each GPU stage may be cut, learned from the pipeline's own outcomes. The cut limit is
// the full-batch load/capacity a replica trim or a share cut may leave the stage at: by default
// TUNING.gpuCutMaxPressure, a depth that is safe for any batching stage but leaves most stages
// with far more GPU than they need. Each stage keeps a depth from 0 (that default) to 1
// (TUNING.gpuCutSlackMaxPressure, past which batches fill and queues start):
//
// - an episode (TUNING.operatingEpisodeMs) without violating windows, in which the limit was what
//   held back a trim or a cut of the stage that would have lowered the bill (a replica fewer, or a
//   share cut that lets the pipeline's replicas pack onto fewer whole GPUs, alone or with the other
//   GPU stages' cuts toward their pack shares: packShares) while P99 was calm, moves the depth one
//   step deeper;
// - an episode with violating windows, in which the stage ran past the default limit, moves it two
//   steps back, and the depth it was at becomes a ceiling (one step under it) that lifts again
//   slowly, so a stage that was burnt once does not probe the same depth every few minutes.
//
// Violations in an episode in which a stage stayed within the default are not its depth's doing
// (a first surge, a cold start) and do not move it.
//
// A replica trim is not undone at once (a new replica takes a cold start). So a trim goes past the
// default only where the replicas left could meet the largest load of the last hour (an hour seen)
// by raising their shares alone, or where a forecast sees the recurring peak coming and its floor
// adds replicas ahead of it. A share cut is undone at the next tick only where its GPU still has the
// room: a cut that frees a GPU gives that room away, and a node agent clamps a rise that finds none.
// So a share cut goes past the default only where replicas up to the stage's bound, at the cut
// share, could meet that peak again (cutRecoverable); neither moves the depth before an hour is seen.
//
// A cheap (CPU) stage has no depth but a surge reserve: it runs at a third of the target load
// (TUNING.cheapHeadroom) so that a burst it has not seen finds it ready. Once a whole memory of
// episodes (an hour) has shown the largest load it must carry, it keeps only what meets that peak at
// the emergency's target (bottleneck.ts, headroomAt): under a steady load, no reserve. An episode
// with violating windows in which it ran with less than the default reserve clears that memory, so
// the default is back for the next hour.
//
// Learning off keeps every stage at the default (the ablation). Pure.
import { stageHeadroom, type BottleneckResult } from './bottleneck.js';
import { replicaBounds } from './candidates.js';
import { cutFreesGpu, jointCutFreesGpu, packedGpus } from './packing.js';
import type { PipelineObservation, PipelineSpec, StageAllocation, StageSpec } from '../core/ports.js';
import { sloBreached } from './normalize.js';
import type { OperatingSnapshot } from './snapshot-file.js';
import { TUNING } from './tuning.js';

export interface StageDepth {
  /** 0: the default cut limit; 1: the deepest (TUNING.gpuCutSlackMaxPressure). */
  depth: number;
  /** The depth may not rise past this (1 until a violation is blamed on the stage). */
  ceiling: number;
  /** This episode: the limit held back a trim or cut that would have lowered the bill, while P99 was calm. */
  bound: boolean;
  /** This episode: the stage ran past the default limit. */
  used: boolean;
  /**
   * Largest load of this episode and of the ones before, newest last: for a GPU stage full-batch
   * load (replicas at a whole GPU), for a cheap stage items/s.
   */
  peak: number;
  peaks: number[];
  /** A cheap stage, whose reserve the memory of peaks sizes. */
  cheap?: boolean;
  /** This episode: the cheap stage ran with less than its default reserve. */
  reserveUsed?: boolean;
}

export interface OperatingState {
  /** Per stage, by index; CPU stages keep depth 0. */
  stages: StageDepth[];
  episodeStart: number | null;
  /** This episode saw a window with SLO violations over the tolerance. */
  violated: boolean;
}

export function newOperatingState(): OperatingState {
  return { stages: [], episodeStart: null, violated: false };
}

const stageAt = (s: OperatingState, i: number): StageDepth => (s.stages[i] ??= { depth: 0, ceiling: 1, bound: false, used: false, peak: 0, peaks: [] });

/** Whether a whole memory of episodes (TUNING.surgeMemoryEpisodes) has been seen. */
const peaksSeen = (st: StageDepth): boolean => st.peaks.length >= TUNING.surgeMemoryEpisodes;

/** At an episode's end: its peak joins the memory (the oldest leaves a full one) and a new one starts. */
function rememberPeak(st: StageDepth): void {
  st.peaks.push(st.peak);
  if (st.peaks.length > TUNING.surgeMemoryEpisodes) st.peaks.shift();
  st.peak = 0;
}

/** The largest full-batch load a stage carried in the last TUNING.surgeMemoryEpisodes episodes. */
const recentPeak = (st: StageDepth): number => Math.max(st.peak, ...st.peaks);

/**
 * Whether `replicas` replicas of a stage at its largest share meet its recent peak at the emergency
 * target; never before a whole memory of episodes has been seen (a spike every 40 minutes is not in
 * the first 20).
 */
function surgeCovered(st: StageDepth, replicas: number, maxCores: number): boolean {
  return peaksSeen(st) && replicas * (maxCores / 100) * TUNING.emergencyTarget >= recentPeak(st);
}

/**
 * Whether a stage cut to `share` could still meet its recent peak with replicas alone, up to its
 * replica bound. A cut that frees a GPU gives that room away, and a node agent clamps a later rise
 * where the replica's GPU has no room left: the capacity comes back only as replicas, which go where
 * there is room. So a cut past the default must leave a stage that its replica bound can restore.
 */
function cutRecoverable(st: StageDepth | undefined, stage: StageSpec, alloc: StageAllocation, share: number): boolean {
  return st !== undefined && surgeCovered(st, replicaBounds(stage, alloc).hi, share);
}

/**
 * Per stage, the largest load a cheap stage carried over a whole memory of episodes, for sizing its
 * reserve (bottleneck.ts, headroomAt); null while the memory is not full, for other stages, and with
 * learning off.
 */
export function surgePeaks(s: OperatingState, stages: number, learning: boolean): (number | null)[] {
  return Array.from({ length: stages }, (_, i) => {
    const st = s.stages[i];
    return learning && st?.cheap && peaksSeen(st) ? recentPeak(st) : null;
  });
}

/** The cut limit a depth stands for. */
export const cutLimitAt = (depth: number): number => TUNING.gpuCutMaxPressure + depth * (TUNING.gpuCutSlackMaxPressure - TUNING.gpuCutMaxPressure);

/** Per stage, the base cut limit in force for a share cut (the default for a stage not yet seen, and with learning off). */
export function cutBases(s: OperatingState, stages: number, learning: boolean): number[] {
  return Array.from({ length: stages }, (_, i) => cutLimitAt(learning ? (s.stages[i]?.depth ?? 0) : 0));
}

/**
 * Per GPU stage with one replica, the least share it could carry the last hour's peak at, at the
 * deepest cut limit its ceiling allows, where replicas up to its bound could carry that peak again at
 * it (cutRecoverable). Null for CPU stages, before an hour is seen, where that share is past the
 * stage's largest, and for a stage with several replicas: those, not a fraction of a GPU, are what a
 * burst leaves behind and trims give back. Where the pipeline's replicas at these shares would pack
 * onto fewer GPUs, cuts toward them save a GPU together though no one of them does alone (70 % and
 * 100 % fit one GPU at 20 % and 70 %).
 */
export function packShares(s: OperatingState, pipeline: PipelineSpec, obs: PipelineObservation): (number | null)[] {
  return pipeline.stages.map((stage, i) => {
    const st = s.stages[i];
    const g = stage.gpuCores;
    const alloc = obs.allocation[i];
    if (!st || st.cheap || !g || !alloc || alloc.gpuCores === null || alloc.replicas !== 1 || !peaksSeen(st)) return null;
    const share = (recentPeak(st) / cutLimitAt(st.ceiling)) * 100;
    const to = Math.max(g.min, Math.ceil(share / g.step - 1e-9) * g.step);
    // Past its largest share the stage cannot carry that peak on one replica at all: no pack share.
    return to <= g.max && cutRecoverable(st, stage, alloc, to) ? to : null;
  });
}

/** Whether cutting stage `i` to `share` is a step toward the pack packShares sees (`shares`; `joint`: it frees a GPU). */
const towardPack = (joint: boolean, shares: readonly (number | null)[], i: number, share: number): boolean => joint && shares[i] != null && share >= shares[i]!;

/**
 * Per stage, the base cut limit in force for a share cut this tick: the learned one where cutting
 * the share to it would let the pipeline's replicas pack onto fewer GPUs, alone or with the other
 * GPU stages' cuts toward their pack shares (packShares), else the default (a cut that frees no GPU
 * saves nothing on a packed bill and only slows each batch).
 */
export function shareCutBases(
  s: OperatingState,
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  learning: boolean,
  /** packShares for this tick, where the caller has them already. */
  shares = packShares(s, pipeline, obs),
): number[] {
  const limits = cutBases(s, obs.allocation.length, learning);
  const packedNow = packedGpus(obs.allocation);
  const joint = jointCutFreesGpu(obs.allocation, shares, packedNow);
  return limits.map((limit, i) => {
    const g = pipeline.stages[i]?.gpuCores;
    const alloc = obs.allocation[i];
    const p = bn.pressure[i];
    if (limit === TUNING.gpuCutMaxPressure || !g || !alloc || alloc.gpuCores === null || p === null || p === undefined || !(p > 0)) return limit;
    if (joint && shares[i] != null) return limit;
    const to = Math.max(g.min, Math.ceil((alloc.gpuCores * p) / limit / g.step - 1e-9) * g.step);
    return cutFreesGpu(obs.allocation, i, to, packedNow) && cutRecoverable(s.stages[i], pipeline.stages[i]!, alloc, to) ? limit : TUNING.gpuCutMaxPressure;
  });
}

/**
 * Per stage, the base cut limit in force for a replica trim: the learned one where the replicas left
 * meet the last hour's peak by share alone or a forecast is in force (`anticipating`), else the default.
 */
export function trimBases(s: OperatingState, pipeline: PipelineSpec, obs: PipelineObservation, learning: boolean, anticipating: boolean): number[] {
  const shares = cutBases(s, obs.allocation.length, learning);
  return shares.map((limit, i) => {
    const st = s.stages[i];
    const g = pipeline.stages[i]?.gpuCores;
    const alloc = obs.allocation[i];
    if (!st || !g || !alloc || anticipating) return limit;
    return surgeCovered(st, alloc.replicas - 1, g.max) ? limit : TUNING.gpuCutMaxPressure;
  });
}

/**
 * Note one tick: whether there were violations, which GPU stages ran past the default limit, and
 * which could have given capacity back but for their limit (the smallest trim or cut would leave
 * them past it) while P99 was calm.
 */
export function observeTick(s: OperatingState, pipeline: PipelineSpec, obs: PipelineObservation, bn: BottleneckResult, anticipating: boolean): void {
  if (sloBreached(pipeline, obs)) s.violated = true;
  const calm = obs.p99Ms !== null && obs.p99Ms < TUNING.calmP99Ratio * pipeline.sloP99Ms;
  const packedNow = packedGpus(obs.allocation);
  const shares = packShares(s, pipeline, obs);
  const joint = jointCutFreesGpu(obs.allocation, shares, packedNow);
  for (const stage of pipeline.stages) {
    const i = stage.index;
    const alloc = obs.allocation[i];
    const p = bn.pressure[i];
    const g = stage.gpuCores;
    const base = stageHeadroom(pipeline, i);
    const load = bn.load?.[i];
    if (base < 1 && load != null && Number.isFinite(load)) {
      const st = stageAt(s, i);
      st.cheap = true;
      st.peak = Math.max(st.peak, load);
      if ((bn.headroom?.[i] ?? base) > base) st.reserveUsed = true;
      continue;
    }
    if (!g || !alloc || alloc.gpuCores === null || p === null || p === undefined || !Number.isFinite(p)) continue;
    const st = stageAt(s, i);
    const ready = Math.max(alloc.readyReplicas, 1);
    st.peak = Math.max(st.peak, (p * ready * alloc.gpuCores) / 100);
    if (p > TUNING.gpuCutMaxPressure) st.used = true;
    if (!calm || alloc.readyReplicas < alloc.replicas) continue;
    const afters: number[] = [];
    const trimmable = alloc.replicas > replicaBounds(stage, alloc).lo && (anticipating || surgeCovered(st, alloc.replicas - 1, g.max));
    if (trimmable) afters.push((p * ready) / (alloc.replicas - 1));
    // A share cut lowers a packed bill only where the pipeline's replicas then fill fewer GPUs, alone
    // or with the other GPU stages' cuts toward their pack shares.
    const cutTo = Math.max(g.min, alloc.gpuCores - g.step);
    if (towardPack(joint, shares, i, cutTo) || (cutFreesGpu(obs.allocation, i, cutTo, packedNow) && cutRecoverable(st, stage, alloc, cutTo))) {
      afters.push((p * alloc.gpuCores) / cutTo);
    }
    if (afters.length === 0) continue;
    const smallest = Math.min(...afters);
    if (smallest > cutLimitAt(st.depth) && smallest <= TUNING.gpuCutSlackMaxPressure) st.bound = true;
  }
}

/**
 * At an episode's end, move each stage's depth by what the episode showed and start the next one;
 * returns a note per stage whose limit changed. `learning` false keeps the defaults.
 */
export function nextEpisode(s: OperatingState, now: number, learning: boolean): string[] {
  if (s.episodeStart === null) {
    s.episodeStart = now;
    return [];
  }
  if (now - s.episodeStart < TUNING.operatingEpisodeMs) return [];
  const notes: string[] = [];
  s.stages.forEach((st, i) => {
    const was = st.depth;
    if (st.cheap) {
      const seen = peaksSeen(st);
      if (learning && s.violated && st.reserveUsed) {
        st.peaks = [];
        st.peak = 0;
        notes.push(`stage ${i}: violations while it ran with less than its default reserve; the default is back for ${memoryMinutes()} minutes`);
      } else {
        rememberPeak(st);
        if (learning && !seen && peaksSeen(st)) {
          notes.push(`stage ${i}: ${memoryMinutes()} minutes of load seen (peak ${recentPeak(st).toFixed(1)}/s); its reserve is sized for that peak`);
        }
      }
      st.reserveUsed = false;
      return;
    }
    if (learning) {
      if (s.violated && st.used && st.depth > 0) {
        st.ceiling = Math.max(0, st.depth - TUNING.operatingStep);
        st.depth = Math.max(0, st.depth - 2 * TUNING.operatingStep);
      } else if (!s.violated) {
        st.ceiling = Math.min(1, st.ceiling + TUNING.operatingCeilingLift);
        if (st.bound) st.depth = Math.min(st.ceiling, st.depth + TUNING.operatingStep);
      }
    }
    st.bound = false;
    st.used = false;
    rememberPeak(st);
    if (st.depth !== was) notes.push(`stage ${i}: GPU cut limit ${cutLimitAt(st.depth).toFixed(2)} (was ${cutLimitAt(was).toFixed(2)})`);
  });
  s.episodeStart = now;
  s.violated = false;
  return notes;
}

/** How long a whole memory of episodes is, in minutes. */
const memoryMinutes = (): number => Math.round((TUNING.surgeMemoryEpisodes * TUNING.operatingEpisodeMs) / 60_000);

/** What of a pipeline's operating state a snapshot keeps: each stage's depth, ceiling and hour of peaks. */
export function saveOperating(s: OperatingState): OperatingSnapshot[string] {
  return { stages: Array.from(s.stages, (st) => (st ? { depth: st.depth, ceiling: st.ceiling, peaks: [...st.peaks, st.peak] } : null)) };
}

/** An operating state from a snapshot's part (saveOperating), a new episode starting. */
export function loadOperating(saved: OperatingSnapshot[string]): OperatingState {
  const s = newOperatingState();
  saved.stages.forEach((st, i) => {
    if (!st) return;
    s.stages[i] = { depth: st.depth, ceiling: st.ceiling, bound: false, used: false, peak: 0, peaks: st.peaks.slice(-TUNING.surgeMemoryEpisodes) };
  });
  return s;
}
