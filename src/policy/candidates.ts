// The actions a selector may choose from this tick: hold, ±1..k replicas per stage, ± GPU-core
// steps per stage. Each carries a prior in -1..1 from a queueing view of the state (scale up what is
// hot, trim what is idle, around the operating point's load target), which the bandit starts from
// and learned rewards then override. Pure.
import { stageHeadroom, type BottleneckResult } from './bottleneck.js';
import type { Anticipation } from './forecast.js';
import type { PipelineObservation, PipelineSpec, ScalingAction, StageAllocation, StageSpec } from '../core/ports.js';
import { cutFreesGpu, jointCutFreesGpu, packedGpus, riseFitsBilledGpus, shareCeiling, shareClamped } from './packing.js';
import { TUNING } from './tuning.js';
import type { Candidate } from './types.js';

/** Replica bounds of a stage: the pipeline's and the HPA's, whichever is tighter. */
export function replicaBounds(stage: StageSpec, alloc: StageAllocation | undefined): { lo: number; hi: number } {
  const lo = Math.max(stage.minReplicas, alloc?.hpa?.minReplicas ?? 0);
  const hi = Math.min(stage.maxReplicas, alloc?.hpa?.maxReplicas ?? Infinity);
  return { lo, hi: Math.max(lo, hi) };
}

const TARGET = TUNING.target;
const SAFE_AFTER_DOWN = TUNING.safeAfterDown;
/** Hot stays below saturation whatever the operating point: above 1 the floors act. */
const hotAt = (headroom: number) => Math.min(0.95, TUNING.hot * headroom);

/** Prior of a change that takes a stage from load/capacity p to `after`; `headroom` scales the targets (stageHeadroom). */
function changePrior(p: number | null, after: number | null, up: boolean, hot: boolean, calm: boolean, headroom = 1): number {
  if (p === null || after === null) return -0.5;
  if (up) return hot ? 0.8 - 0.8 * Math.abs(after - TARGET * headroom) : -0.4;
  if (!calm || after >= SAFE_AFTER_DOWN * headroom) return -0.5;
  // Below the target, the idler the stage stays after the cut, the less the cut risks; above it, the closer to the limit, the more.
  return after < TARGET * headroom ? 0.6 - 0.2 * (TARGET * headroom - after) : 0.6 - 0.8 * (after - TARGET * headroom);
}

export function generateCandidates(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  maxStep: number,
  /**
   * The normalizer's limits this tick (recordNeeds): per stage, how deep a GPU share cut and a
   * replica trim may go (full-batch load/capacity; TUNING.gpuCutMaxPressure where absent), and the
   * replicas a surge reserve keeps; when each stage was last repacked, the share each GPU stage
   * usually holds (normalize.ts, usualShares), and the shares at which they would pack onto fewer
   * GPUs together (operating-point.ts, packShares).
   */
  limits: {
    cutLimits?: readonly number[];
    trimLimits?: readonly number[];
    reserves?: readonly number[];
    repacks?: ReadonlyMap<number, number>;
    usualShares?: readonly (number | null)[];
    packShares?: readonly (number | null)[];
  } = {},
  /**
   * The recurring-load forecast in force (forecast.ts). Candidates are judged on the load it sees
   * coming within each lever's lead (share: at once; replicas: a cold start), the evidence the
   * LLM's prompt shows and the floors act on, so the bandit can meet a due burst itself.
   */
  anticipation: Anticipation | null = null,
): Candidate[] {
  const p99Ratio = obs.p99Ms === null ? null : obs.p99Ms / pipeline.sloP99Ms;
  const calm = p99Ratio !== null && p99Ratio < TUNING.calmP99Ratio;
  const out: Candidate[] = [];
  let pressing = false;
  // Whether the cluster bills whole GPUs (else it prices shares, and every cut saves).
  const billsWhole = obs.billedGpus !== undefined;
  // Room on the GPUs wanted, per stage, in share points: its replicas Pending for room at their
  // share, and its clamped replicas' shortfall. While any is wanted no rise fills the room; and a
  // share cut that frees no GPU still frees room another stage asked for (as much as it asked: a
  // deeper cut is capacity given up for nothing billed), unless the stage cut is short of room
  // itself (the cut would drop its own clamped rise).
  const wanted = obs.allocation.map((a) => (a.pendingReplicas ?? 0) * (a.gpuCores ?? 0) + (shareClamped(a) ? (a.clampedReplicas ?? 1) * (a.gpuCoresAsked! - a.gpuCores!) : 0));
  const totalWanted = wanted.reduce((sum, w) => sum + w, 0);
  const roomWanted = totalWanted > 0;
  // A share rise fills the GPUs already billed only where the pipeline has one GPU stage: the cluster
  // does not say which stages' replicas share a GPU, and the room one stage fills is the room another's
  // next rise needs (then clamped, and met by a replica on a GPU of its own).
  const fillable = billsWhole && !roomWanted && pipeline.stages.filter((s) => s.gpuCores !== undefined).length === 1;
  const packedNow = packedGpus(obs.allocation);
  const held = Math.max(packedNow, obs.billedGpus ?? 0);
  // Shares the GPU stages could be cut to together to pack onto fewer GPUs, where no one cut does
  // alone (learned: operating-point.ts, packShares): a cut toward its share is a saving.
  const packShares = limits.packShares ?? [];
  const jointPack = billsWhole && jointCutFreesGpu(obs.allocation, packShares, packedNow);
  const repacks = limits.repacks ?? new Map<number, number>();
  const repackStage = repackable(pipeline, obs, repacks, limits.usualShares ?? []);
  // A stage repacked within the retry window gives its extra replica back by a trim: a consolidation
  // would keep its capacity (two replicas' worth at twice the share) where the trim returns it.
  const repacking = (i: number) => repackedLately(repacks, i, obs.time);
  for (const stage of pipeline.stages) {
    const i = stage.index;
    const alloc = obs.allocation[i];
    if (!alloc) continue;
    const r = alloc.replicas;
    const ready = Math.max(alloc.readyReplicas, 1);
    const now = bn.pressure[i] ?? null;
    const headroom = bn.headroom?.[i] ?? stageHeadroom(pipeline, i);
    // Load/capacity as each lever will meet it: the forecast's peak within its lead (share: at
    // once; replicas: a cold start), where one is due. A stage is hot where the forecast floors
    // would act (floors.ts): its share where the forecast load passes TUNING.anticipateAbove; its
    // replicas where that load passes it even at the largest share (a GPU stage) or needs more
    // replicas than it has (a CPU stage).
    const shareFactor = Math.max(1, anticipation?.shareFactor ?? 1);
    const replicaFactor = Math.max(1, anticipation?.replicaFactor ?? 1);
    const pShare = now === null ? null : now * shareFactor;
    const g = stage.gpuCores;
    const onGpu = g !== undefined && alloc.gpuCores !== null;
    const ceiling = g === undefined ? 0 : shareCeiling(g.max, alloc);
    // A GPU stage's replicas are for what its largest share cannot carry: where a burst is due at
    // that share, its replica moves are judged, and sized, at the largest share it can be given.
    const atMax = onGpu && now !== null ? (now * replicaFactor * alloc.gpuCores!) / ceiling : null;
    const dueShare = shareFactor > 1 && onGpu && pShare !== null && pShare > TUNING.anticipateAbove;
    const dueNeed = bn.needed[i] == null ? null : Math.ceil(bn.needed[i]! * replicaFactor - 1e-9);
    const dueReplicas = replicaFactor > 1 && (onGpu ? atMax !== null && atMax > TUNING.anticipateAbove : dueNeed !== null && dueNeed > r);
    const p = onGpu && dueReplicas ? atMax : now === null ? null : now * replicaFactor;
    const need = onGpu && dueReplicas ? Math.ceil((ready * atMax!) / (TARGET * headroom) - 1e-9) : dueNeed;
    // A P99 over the SLO from a stage already under its target with its queue worked off is the
    // window's memory of a drained backlog, not a call for capacity (nlp-bert burst: the share
    // raise at the surge's first tick cleared the queue, and the next tick added a replica on the
    // stale P99 that was then held for the stabilization window).
    const drained = now !== null && now < TARGET * headroom && (obs.stages[i]?.queueLength ?? 0) <= (stage.maxBatch ?? 1) * ready;
    const hotNow = (now !== null && now > hotAt(headroom)) || (p99Ratio !== null && p99Ratio > TUNING.hotP99Ratio && bn.stage === i && !drained);
    const hot = hotNow || dueReplicas;
    const hotShare = hotNow || dueShare;
    // Replicas still starting will take their share of the load: while they bring the stage under
    // its target, more replicas only pile onto the same cold start (rag/spike: 2 ready, 4 starting,
    // and one more was added every cooldown until 10).
    const starting = alloc.readyReplicas < r && p !== null && (p * ready) / r < TARGET * headroom;
    const { lo, hi } = replicaBounds(stage, alloc);
    const ups = new Set<number>([1, 2]);
    if (need !== null && need > r) ups.add(Math.min(need - r, maxStep));
    for (const k of [...ups].sort((a, b) => a - b)) {
      if (k > maxStep || r + k > hi) continue;
      let prior = changePrior(p, p === null ? null : (p * ready) / (r + k), true, hot && !starting, calm, headroom);
      // Headroom on a cheap stage comes after relieving a stage that is really short of capacity.
      if (prior > 0 && stageHeadroom(pipeline, i) < 1 && (p === null || p <= TUNING.hot)) prior *= 0.75;
      if (prior > 0.3) pressing = true;
      out.push({ id: `s${i}+${k}`, key: `s${i}+${k}`, actions: [{ kind: 'replicas', stage: i, replicas: r + k }], describe: `stage ${i}: replicas ${r} -> ${r + k}`, prior });
    }
    const downs = new Set<number>([1]);
    if (need !== null && need < r - 1) downs.add(Math.min(r - need, maxStep));
    // A GPU stage is cut no further than its cut limit of its full-batch capacity (the normalizer
    // refuses more), so a cut past it is not offered as a good move.
    const cutLimit = limits.cutLimits?.[i] ?? TUNING.gpuCutMaxPressure;
    const trimLimit = limits.trimLimits?.[i] ?? TUNING.gpuCutMaxPressure;
    const tooDeep = (after: number | null, limit = cutLimit) => stage.gpuCores !== undefined && after !== null && after > limit;
    // No trim below the surge reserve (the normalizer holds it): where it binds, share is the lever.
    const reserve = limits.reserves?.[i] ?? 0;
    for (const k of [...downs].sort((a, b) => a - b)) {
      if (r - k < lo || r - k < reserve) continue;
      const settled = alloc.readyReplicas >= r;
      const after = p === null ? null : (p * ready) / (r - k);
      const prior = settled && !tooDeep(after, trimLimit) ? changePrior(p, after, false, hot, calm, headroom) : -0.5;
      if (prior > 0.3) pressing = true;
      out.push({ id: `s${i}-${k}`, key: `s${i}-${k}`, actions: [{ kind: 'replicas', stage: i, replicas: r - k }], describe: `stage ${i}: replicas ${r} -> ${r - k}`, prior });
    }
    if (g && alloc.gpuCores !== null) {
      // GPU share is the fast lever: the shim applies it at once (no cold start), capacity grows
      // with it at the same cost per unit of capacity, and each batch finishes sooner. So a hot
      // stage prefers more share to more replicas, and a calm one trims replicas before share.
      const cur = alloc.gpuCores;
      const ups = new Set<number>([Math.min(ceiling, cur + g.step)]);
      if (pShare !== null && pShare > 0) ups.add(Math.min(ceiling, cur + g.step * maxStep, Math.ceil((cur * pShare) / (TARGET * headroom) / g.step) * g.step));
      for (const upTo of [...ups].sort((a, b) => a - b)) {
        if (upTo <= cur) continue;
        const base = changePrior(pShare, pShare === null ? null : (pShare * cur) / upTo, true, hotShare, calm, headroom) + (hotShare ? 0.15 : 0);
        // A rise the GPUs already billed hold costs nothing, and is capacity in place when a first
        // burst comes, before any scrape shows it: a good move.
        const fills = fillable && riseFitsBilledGpus(obs.allocation, i, upTo, held);
        const prior = fills ? Math.max(base, TUNING.fillPrior) : base;
        const id = upTo === cur + g.step ? `s${i}:gpu+` : `s${i}:gpu=${upTo}`;
        const describe = `stage ${i}: GPU cores ${cur}% -> ${upTo}%${fills ? ' (fills a GPU already billed)' : ''}`;
        out.push({ id, key: `s${i}:gpu+`, actions: [{ kind: 'gpuCores', stage: i, gpuCores: upTo }], describe, prior });
      }
      // One step down, and (when the stage is idle enough) straight down to the share that brings
      // it to the cut limit, so the share a burst needed is given back in one move after it; at most
      // half of it at once, since each batch takes longer on less share and P99 must show it first.
      const downs = new Set<number>([Math.max(g.min, cur - g.step)]);
      if (pShare !== null && pShare > 0) {
        const half = Math.ceil(cur / 2 / g.step) * g.step;
        downs.add(Math.max(g.min, half, cur - g.step * maxStep, Math.ceil((cur * pShare) / cutLimit / g.step) * g.step));
      }
      const packShare = jointPack ? (packShares[i] ?? null) : null;
      if (packShare !== null) downs.add(Math.max(packShare, cur - g.step * maxStep));
      // Replicas go before share where a replica can go; where it cannot (the rest would run past
      // the cut limit), share is the finer step that gives capacity back.
      const canTrimReplicas = r > lo && r > reserve && !tooDeep(p === null ? null : (p * ready) / (r - 1), trimLimit);
      for (const downTo of [...downs].sort((a, b) => b - a)) {
        if (downTo >= cur) continue;
        const after = pShare === null ? null : (pShare * cur) / downTo;
        // Where the cluster bills whole GPUs, a cut saves only if the replicas then pack onto fewer,
        // or it frees the room another stage waits for.
        // (Where the stage itself wants none, what is wanted is all other stages'.)
        const servesWanted = roomWanted && wanted[i] === 0 && (cur - downTo - g.step) * r < totalWanted;
        const towardPack = packShare !== null && downTo >= packShare;
        const freesAlone = cutFreesGpu(obs.allocation, i, downTo, packedNow);
        const savesNothing = billsWhole && !servesWanted && !towardPack && !freesAlone;
        const good = changePrior(pShare, after, false, hotShare, calm, headroom);
        const prior = canTrimReplicas ? -0.3 : tooDeep(after) ? -0.5 : savesNothing ? Math.min(TUNING.idleCutPrior, good) : good;
        const id = downTo === cur - g.step ? `s${i}:gpu-` : `s${i}:gpu=${downTo}`;
        const note = savesNothing ? ' (frees no GPU)' : towardPack && !freesAlone ? ' (frees a GPU with the other GPU stages cut to their pack shares)' : '';
        const describe = `stage ${i}: GPU cores ${cur}% -> ${downTo}%${note}`;
        out.push({ id, key: `s${i}:gpu-`, actions: [{ kind: 'gpuCores', stage: i, gpuCores: downTo }], describe, prior });
      }
      if (i === repackStage && r + 1 <= hi && !hot && !hotShare && calm && now !== null && now < TARGET && !tooDeep(now, trimLimit)) {
        // The trim that follows is judged at the load the stage carries now, so it is a good move too.
        pressing = true;
        out.push({
          id: `s${i}:repack`,
          key: `s${i}:repack`,
          actions: [{ kind: 'replicas', stage: i, replicas: r + 1 }],
          describe: `stage ${i}: replicas ${r} -> ${r + 1}, then one fewer (repack: the new replica goes to the fullest GPU with room, the trim takes the one alone on its GPU)`,
          prior: TUNING.packPrior,
        });
      }
      const pack = repacking(i) ? null : consolidation(stage, obs, i, lo);
      if (pack) {
        // Same capacity on fewer GPUs, each batch sooner: a good move while the pipeline is calm.
        const prior = calm && !hot && !hotShare ? TUNING.packPrior : -0.5;
        if (prior > 0.3) pressing = true;
        out.push({ id: `s${i}:pack`, key: `s${i}:pack`, actions: pack.actions, describe: pack.describe, prior });
      }
    }
  }
  out.unshift({ id: 'hold', key: 'hold', actions: [], describe: 'hold: change nothing', prior: pressing ? 0 : 0.35 });
  return out;
}

/** Whether stage `stage` was repacked within TUNING.repackRetryMs of `now` (`repacks`: stage -> when). */
const repackedLately = (repacks: ReadonlyMap<number, number>, stage: number, now: number): boolean =>
  now - (repacks.get(stage) ?? -Infinity) < TUNING.repackRetryMs;

/**
 * The GPU stage to repack, or null. Where the cluster says the pipeline's GPU replicas hold more
 * whole GPUs than they would pack onto (a share rise moved a replica to a GPU of its own, or a
 * scale-down left one alone), one replica more of a stage lands on the fullest GPU with room (the
 * device plugin's and the simulator's binpack placement), and the trim that follows removes the
 * replica its GPU is left emptiest by (the node agent's pod-deletion-cost): the one alone, whose GPU
 * goes back. Only where the replicas would still pack onto fewer GPUs than they hold with every GPU
 * stage at the share it usually holds (`usualShares`, where above its share now; none before an hour
 * is seen): the room a repack fills is the room a stage's next rise needs, and a rise that finds none
 * moves or clamps a replica, so beside a stage whose share climbs for hours a day a repack gives
 * nothing back for long, while beside one that rises for a spike's minutes it does. Only with every
 * GPU replica ready and none waiting for room or clamped. The cluster does not say which replica sits
 * alone, so the stage is the one with the smallest share (the likeliest to fit beside others) not
 * repacked within TUNING.repackRetryMs (`repacks`): a replica that found no room beside the others
 * paid a cold start for nothing, and the next try is another stage's.
 */
export function repackable(pipeline: PipelineSpec, obs: PipelineObservation, repacks: ReadonlyMap<number, number> = new Map(), usualShares: readonly (number | null)[] = []): number | null {
  if (obs.billedGpus === undefined) return null;
  // Before an hour of shares is seen, nothing says which rises are usual: no repack.
  if (obs.allocation.some((a, i) => a.gpuCores !== null && usualShares[i] == null)) return null;
  const usual = obs.allocation.map((a, i) => (a.gpuCores === null ? a : { ...a, gpuCores: Math.max(a.gpuCores, usualShares[i]!) }));
  if (obs.billedGpus <= packedGpus(usual)) return null;
  let best: number | null = null;
  for (const stage of pipeline.stages) {
    const a = obs.allocation[stage.index];
    if (!stage.gpuCores || !a || a.gpuCores === null) continue;
    if (a.readyReplicas < a.replicas || (a.pendingReplicas ?? 0) > 0 || shareClamped(a)) return null;
    if (repackedLately(repacks, stage.index, obs.time)) continue;
    if (best === null || a.gpuCores < obs.allocation[best]!.gpuCores!) best = stage.index;
  }
  return best;
}

/**
 * One replica fewer with the share raised to keep the stage's capacity (capacity grows with share),
 * offered only where the pipeline's replicas then pack onto fewer whole GPUs than they hold. Null where the share
 * cannot rise that far (shareCeiling), the replicas are at their floor or still starting, or no GPU is freed.
 */
export function consolidation(
  stage: StageSpec,
  obs: PipelineObservation,
  i: number,
  lo: number,
): { actions: ScalingAction[]; describe: string } | null {
  const alloc = obs.allocation[i];
  const g = stage.gpuCores;
  if (!g || !alloc || alloc.gpuCores === null) return null;
  const r = alloc.replicas;
  if (r - 1 < Math.max(lo, 1) || alloc.readyReplicas < r) return null;
  const share = Math.ceil((alloc.gpuCores * r) / (r - 1) / g.step - 1e-9) * g.step;
  if (share > shareCeiling(g.max, alloc)) return null;
  const after = obs.allocation.map((a, k) => (k === i ? { replicas: r - 1, gpuCores: share } : a));
  // Compared with the GPUs the replicas hold, where the cluster says (more than they would pack onto
  // afresh once a scale-down or a moved replica has left one alone): the replica removed is the one
  // its GPU is left emptiest by (the node agent's pod-deletion-cost), so one alone frees its GPU.
  if (packedGpus(after) >= Math.max(packedGpus(obs.allocation), obs.billedGpus ?? 0)) return null;
  return {
    actions: [
      { kind: 'replicas', stage: i, replicas: r - 1 },
      { kind: 'gpuCores', stage: i, gpuCores: share },
    ],
    describe: `stage ${i}: ${r} replicas at ${alloc.gpuCores}% -> ${r - 1} at ${share}% (fewer GPUs, same capacity)`,
  };
}

/** The learning key of what was actually applied: "hold", "s1+2", "s0:gpu-", or keys joined by ",". */
export function actionKeyOf(applied: readonly ScalingAction[], allocation: readonly StageAllocation[]): string {
  const keys: string[] = [];
  const trimmed = new Set(applied.flatMap((a) => (a.kind === 'replicas' && a.replicas < (allocation[a.stage]?.replicas ?? 0) ? [a.stage] : [])));
  for (const a of applied) {
    if (a.kind === 'hold') continue;
    const cur = allocation[a.stage];
    // A trim with a share raise on one stage is a consolidation, learnt under its own key.
    if (trimmed.has(a.stage) && a.kind === 'gpuCores' && a.gpuCores > (cur?.gpuCores ?? Infinity)) {
      keys.push(`s${a.stage}:pack`);
      continue;
    }
    if (trimmed.has(a.stage) && a.kind === 'replicas' && applied.some((b) => b.kind === 'gpuCores' && b.stage === a.stage && b.gpuCores > (cur?.gpuCores ?? Infinity))) continue;
    if (a.kind === 'replicas') {
      const d = a.replicas - (cur?.replicas ?? 0);
      if (d !== 0) keys.push(`s${a.stage}${d > 0 ? '+' : '-'}${Math.abs(d)}`);
    } else {
      const d = a.gpuCores - (cur?.gpuCores ?? 0);
      if (d !== 0) keys.push(`s${a.stage}:gpu${d > 0 ? '+' : '-'}`);
    }
  }
  return keys.length === 0 ? 'hold' : keys.join(',');
}
