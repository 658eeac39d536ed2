// Guardrails between the selector and the cluster. Whatever was proposed, what is applied stays
// within the pipeline's and the HPA's bounds, moves at most maxStep replicas, respects per-stage
// cooldowns and the scale-down stabilization window, scales the bottleneck up at once when the
// SLO breaks, and holds (never scales down) when metrics are missing. Pure: the caller keeps the state.
import { GPU_CUT_MAX_PRESSURE, shareOf, type BottleneckResult } from './bottleneck.js';
import { replicaBounds } from './candidates.js';
import type { Anticipation } from './forecast.js';
import type { PipelineObservation, PipelineSpec, ScalingAction, StageAllocation } from '../core/ports.js';
import { SLO_TOLERANCE } from './reward.js';
import type { PolicySettings } from './settings.js';

/** Per-pipeline memory of the guard: last changes and recent needs per stage. */
export interface GuardState {
  lastUp: Map<number, number>;
  lastChange: Map<number, number>;
  /** Per stage: replicas needed x GPU share (1 for CPU stages), so a share change does not distort the peak. */
  needs: Map<number, { time: number; units: number }[]>;
  /** Per stage: offered load in replicas at a full GPU share and full batches (pressure x ready x share). */
  fullBatchUnits: Map<number, { time: number; units: number }[]>;
  /** The pipeline's P99 over its SLO, per tick, over the stabilization window. */
  p99Ratios: { time: number; ratio: number }[];
  /** Per stage: the full-batch load/capacity a GPU cut may go to this tick (gpuCutLimit). */
  cutLimits: number[];
  /** Per GPU stage: the replicas its surge reserve asks for this tick (0: none; surgeReserveReplicas). */
  reserves: number[];
  /**
   * Per GPU stage: the GPU units (replicas x share) to spread over the replicas the reserve added,
   * once they are ready, and the share they were added at (a spread after any other share change is dropped).
   */
  rebalance: Map<number, { units: number; gpuCores: number }>;
}

export function newGuardState(): GuardState {
  return { lastUp: new Map(), lastChange: new Map(), needs: new Map(), fullBatchUnits: new Map(), p99Ratios: [], cutLimits: [], reserves: [], rebalance: new Map() };
}

export interface GuardResult {
  actions: ScalingAction[];
  notes: string[];
  emergency: boolean;
  /** Whether an applied action is the guard's own urgent one (an emergency, a forecast peak, the surge reserve), not the selector's. */
  forced: boolean;
  /** GuardState.rebalance after this tick: the caller stores it once it acts on this result. */
  rebalance: GuardState['rebalance'];
}

export type GuardSettings = Pick<PolicySettings, 'cooldowns' | 'maxStep'>;

/** Load/capacity an emergency aims for. */
const EMERGENCY_TARGET = 0.7;

/** A proposed change; urgent ones (SLO emergencies) skip the scale-up cooldown. */
type Wanted = Exclude<ScalingAction, { kind: 'hold' }> & { urgent: boolean; rebalance?: boolean };

/** Ask urgently for at least `value` replicas or GPU cores of a stage; a proposal of the same kind gives way to the larger of the two. */
function demandAtLeast(wanted: Wanted[], stage: number, kind: 'replicas' | 'gpuCores', value: number): void {
  const at = wanted.findIndex((a) => a.stage === stage && a.kind === kind);
  const mine = at >= 0 ? wanted.splice(at, 1)[0]! : undefined;
  const asked = mine === undefined ? 0 : mine.kind === 'replicas' ? mine.replicas : mine.gpuCores;
  wanted.push(
    kind === 'replicas'
      ? { kind, stage, replicas: Math.max(value, asked), urgent: true }
      : { kind, stage, gpuCores: Math.max(value, asked), urgent: true },
  );
}

export function metricsMissing(obs: PipelineObservation, bn: BottleneckResult): boolean {
  return obs.p99Ms === null || obs.stages.length === 0 || bn.pressure.some((p) => p === null);
}

export function sloBreached(pipeline: PipelineSpec, obs: PipelineObservation): boolean {
  return (obs.p99Ms !== null && obs.p99Ms > pipeline.sloP99Ms) || (obs.sloViolation !== null && obs.sloViolation > SLO_TOLERANCE);
}

/** What the latency-budget cut limit needs (gpuCutLimit); without it every cut stops at GPU_CUT_MAX_PRESSURE. */
export interface LatencyBudget {
  sloP99Ms: number;
  /** The share of the SLO a cut may take P99 to (settings.p99Budget). */
  p99Budget: number;
}

/**
 * Remember each stage's need for the stabilization window and work out this tick's cut limits;
 * call once per tick before generateCandidates() and guard().
 */
export function recordNeeds(
  state: GuardState,
  bn: BottleneckResult,
  obs: PipelineObservation,
  now: number,
  windowMs: number,
  budget: LatencyBudget | null = null,
  surgeReserve = 0,
): void {
  const ratio = budget && obs.p99Ms !== null && Number.isFinite(obs.p99Ms) ? obs.p99Ms / budget.sloP99Ms : null;
  keepWindow(state.p99Ratios, ratio === null ? null : { time: now, ratio }, now, windowMs);
  bn.pressure.forEach((p, i) => {
    const alloc = obs.allocation[i];
    if (p === null || !alloc || !Number.isFinite(p)) return;
    const list = state.fullBatchUnits.get(i) ?? [];
    keepWindow(list, { time: now, units: p * Math.max(alloc.readyReplicas, 0) * shareOf(alloc.gpuCores) }, now, windowMs);
    state.fullBatchUnits.set(i, list);
  });
  bn.needed.forEach((needed, i) => {
    if (needed === null) return;
    const list = state.needs.get(i) ?? [];
    keepWindow(list, { time: now, units: needed * shareOf(obs.allocation[i]?.gpuCores) }, now, windowMs);
    state.needs.set(i, list);
  });
  state.cutLimits = obs.allocation.map((_, i) => gpuCutLimit(state, i, obs, budget?.p99Budget ?? 0));
  state.reserves = obs.allocation.map((a, i) => (a.gpuCores === null ? 0 : surgeReserveReplicas(state.fullBatchUnits.get(i) ?? [], now, surgeReserve)));
}

/** How long a load the surge reserve is sized for must have lasted: the median of these samples. */
const RESERVE_WINDOW_MS = 120_000;
/** Fewer samples than this (a minute at 15 s ticks) and the reserve asks for nothing. */
const RESERVE_MIN_SAMPLES = 4;

/**
 * Replicas a GPU stage keeps so that a surge of `factor` times its load is met by raising shares
 * alone, with no cold start: factor x its median full-batch load of the last two minutes, in
 * replicas at a whole GPU (the largest share). 0 with no factor or too few samples. The median,
 * so one noisy window does not size it (a start-up minute of busy-time estimates still can).
 */
export function surgeReserveReplicas(units: readonly { time: number; units: number }[], now: number, factor: number): number {
  if (!(factor > 0)) return 0;
  const recent = units.filter((u) => u.time >= now - RESERVE_WINDOW_MS).map((u) => u.units);
  if (recent.length < RESERVE_MIN_SAMPLES) return 0;
  recent.sort((x, y) => x - y);
  return Math.ceil(factor * recent[recent.length >> 1]! - 1e-9);
}

/**
 * The surge reserve (settings.surgeReserve): a GPU stage below its reserve gets the replicas, at
 * the share it has (capacity must not dip while they start); once they are ready, the share
 * is spread so that replicas x share is what it was, and the stage costs only the added replicas'
 * overhead more. Pushes onto `wanted` and updates `rebalance` (the pending spreads); returns notes.
 */
function reserveActions(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  state: GuardState,
  rebalance: GuardState['rebalance'],
  wanted: Wanted[],
): string[] {
  const notes: string[] = [];
  for (let i = 0; i < obs.allocation.length; i++) {
    const alloc = obs.allocation[i]!;
    const stage = pipeline.stages[i];
    const g = stage?.gpuCores;
    if (!stage || !g || alloc.gpuCores === null || alloc.readyReplicas < alloc.replicas) continue;
    const pending = rebalance.get(i);
    if (pending !== undefined) {
      rebalance.delete(i);
      // An emergency or a forecast changed the share meanwhile: what it sized for stands.
      if (pending.gpuCores !== alloc.gpuCores) continue;
      const share = Math.min(alloc.gpuCores, Math.max(g.min, Math.ceil((pending.units * 100) / alloc.replicas / g.step - 1e-9) * g.step));
      if (share >= alloc.gpuCores) continue;
      // The spread replaces whatever share change the selector asked for this tick.
      for (let k = wanted.length - 1; k >= 0; k--) if (wanted[k]!.stage === i && wanted[k]!.kind === 'gpuCores') wanted.splice(k, 1);
      wanted.push({ kind: 'gpuCores', stage: i, gpuCores: share, urgent: true, rebalance: true });
      notes.push(`surge reserve: stage ${i} share to ${share}% across ${alloc.replicas} replicas`);
      continue;
    }
    const want = Math.min(replicaBounds(stage, alloc).hi, state.reserves[i] ?? 0);
    const mine = wanted.find((a) => a.stage === i && a.kind === 'replicas');
    if (want <= alloc.replicas || (mine && mine.kind === 'replicas' && mine.replicas >= want)) continue;
    demandAtLeast(wanted, i, 'replicas', want);
    rebalance.set(i, { units: alloc.replicas * shareOf(alloc.gpuCores), gpuCores: alloc.gpuCores });
    notes.push(`surge reserve: stage ${i} to ${want} replicas`);
  }
  return notes;
}

/** Ticks at an unchanged allocation before P99 may vouch for a deeper cut: a minute at 15 s ticks. */
const SLACK_MIN_SAMPLES = 4;
/** No cut goes past this full-batch load/capacity, however loose the SLO: above it batches fill and queues start. */
const GPU_CUT_SLACK_MAX_PRESSURE = 0.75;

/**
 * How deep a GPU stage may be cut: GPU_CUT_MAX_PRESSURE, or, with a P99 budget (`fraction` of the
 * SLO, settings.p99Budget, off by default), deeper where P99 leaves room. On a batching GPU stage
 * both the full-batch load/capacity and the batch time (most of P99) grow as 1/share, so P99 per
 * unit of load/capacity, measured at the stage's current allocation (means since its last change),
 * predicts P99 at a deeper cut; the limit is the load/capacity at which that prediction reaches the
 * budget. With a budget of 0.5, a text-generation stage at 0.49 with a 3 s SLO and a P99 of 0.9 s
 * may run at 0.75; a BERT stage at half its SLO stays at 0.4. A breach since the last change (a
 * ratio over 1) or too few samples keep the base limit.
 */
function gpuCutLimit(state: GuardState, stage: number, obs: PipelineObservation, fraction: number): number {
  const alloc = obs.allocation[stage];
  if (!alloc || alloc.gpuCores === null || !(fraction > 0)) return GPU_CUT_MAX_PRESSURE;
  const settled = settledMeans(state, stage);
  const capacity = alloc.replicas * shareOf(alloc.gpuCores);
  if (!settled || !(capacity > 0)) return GPU_CUT_MAX_PRESSURE;
  const pressure = settled.units / capacity;
  if (!(pressure > 0)) return GPU_CUT_MAX_PRESSURE;
  return Math.min(GPU_CUT_SLACK_MAX_PRESSURE, Math.max(GPU_CUT_MAX_PRESSURE, (fraction * pressure) / settled.ratio));
}

/**
 * Mean P99/SLO and full-batch load of a stage since its last change, or null with too few samples
 * or a breach among them (then nothing vouches for spending latency).
 */
function settledMeans(state: GuardState, stage: number): { ratio: number; units: number } | null {
  const from = state.lastChange.get(stage) ?? -Infinity;
  const ratios = state.p99Ratios.filter((r) => r.time > from).map((r) => r.ratio);
  const units = (state.fullBatchUnits.get(stage) ?? []).filter((u) => u.time > from).map((u) => u.units);
  if (ratios.length < SLACK_MIN_SAMPLES || units.length < SLACK_MIN_SAMPLES || ratios.some((r) => r > 1)) return null;
  const ratio = mean(ratios);
  return ratio > 0 ? { ratio, units: mean(units) } : null;
}

const mean = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Append `sample` (when given) and drop what is older than the window. */
function keepWindow<T extends { time: number }>(list: T[], sample: T | null, now: number, windowMs: number): void {
  if (sample) list.push(sample);
  while (list.length > 0 && list[0]!.time < now - windowMs) list.shift();
}

/** The largest `units` of the samples since `since`, and at least `floor`. */
function peakSince(list: readonly { time: number; units: number }[], since: number, floor: number): number {
  let units = floor;
  for (const n of list) if (n.time >= since) units = Math.max(units, n.units);
  return units;
}

/** Replicas that run a stage now at full-batch load/capacity `pressure` at EMERGENCY_TARGET. */
const replicasAtTarget = (alloc: StageAllocation, pressure: number): number =>
  Math.ceil((Math.max(alloc.readyReplicas, 1) * pressure) / EMERGENCY_TARGET - 1e-9);

/**
 * The peak need of a stage since `since`, in replicas at a given GPU share. `floorUnits` is what a
 * forecast expects (replicas x share): with a clear recurring pattern, the forecast replaces the
 * long stabilization window, so capacity kept for the last burst can go until the next one nears.
 */
function peakReplicas(state: GuardState, stage: number, gpuCores: number | null | undefined, since: number, floorUnits = 0): number {
  return Math.ceil(peakSince(state.needs.get(stage) ?? [], since, floorUnits) / shareOf(gpuCores) - 1e-9);
}

/** Whether a GPU stage at `replicas` x `gpuCores` keeps the peak full-batch load since `since` (and `floorUnits`) under this tick's cut limit. */
function gpuCutFits(state: GuardState, stage: number, replicas: number, gpuCores: number, since: number, floorUnits: number): boolean {
  const list = state.fullBatchUnits.get(stage) ?? [];
  if (list.length === 0) return false;
  return peakSince(list, since, floorUnits) <= (state.cutLimits[stage] ?? GPU_CUT_MAX_PRESSURE) * replicas * shareOf(gpuCores);
}

/** Full-batch load/capacity above which a forecast load is met ahead of time. */
const ANTICIPATE_ABOVE = 0.75;

/** Remember applied changes for the cooldowns; call after the actions were applied. */
export function noteApplied(state: GuardState, obs: PipelineObservation, actions: readonly ScalingAction[], now: number): void {
  for (const a of actions) {
    if (a.kind === 'hold') continue;
    const alloc = obs.allocation[a.stage];
    const up = a.kind === 'replicas' ? a.replicas > (alloc?.replicas ?? 0) : a.gpuCores > (alloc?.gpuCores ?? 0);
    if (up) state.lastUp.set(a.stage, now);
    state.lastChange.set(a.stage, now);
  }
}

export function guard(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  proposed: readonly ScalingAction[],
  state: GuardState,
  now: number,
  settings: GuardSettings,
  anticipation: Anticipation | null = null,
): GuardResult {
  const notes: string[] = [];
  if (metricsMissing(obs, bn)) {
    return { actions: [], notes: ['metrics missing: hold'], emergency: false, forced: false, rebalance: state.rebalance };
  }
  const breach = sloBreached(pipeline, obs);
  const out = new Map<number, ScalingAction[]>();
  let emergency = false;
  let forced = false;
  const rebalance = new Map(state.rebalance);

  const wanted: Wanted[] = proposed
    .filter((a): a is Exclude<ScalingAction, { kind: 'hold' }> => a.kind !== 'hold')
    .map((a) => ({ ...a, urgent: false }));
  const saturated = bn.pressure.some((p) => p !== null && p > 1);
  if (breach || saturated) {
    // A saturated stage's queue only grows, so it is an emergency before the SLO breaks. Every
    // saturated stage (and on a breach the bottleneck) goes straight to what its load needs: first
    // more GPU share where it has one (applied at once, no cold start), then replicas for the rest.
    for (let i = 0; i < obs.allocation.length; i++) {
      const alloc = obs.allocation[i]!;
      const p0 = bn.pressure[i] ?? 0;
      if (!(breach && i === bn.stage) && p0 <= 1) continue;
      // On a breach the queue is what breaks the SLO: size for the load plus the queued backlog,
      // so the queue is worked off, not just kept from growing.
      const p = breach ? Math.max(p0, bn.drainPressure?.[i] ?? p0) : p0;
      const backlogFactor = p0 > 0 ? p / p0 : 1;
      const g = pipeline.stages[i]?.gpuCores;
      let shareFactor = 1;
      if (g && alloc.gpuCores !== null && alloc.gpuCores < g.max && p > 0) {
        const share = Math.min(g.max, Math.max(alloc.gpuCores + g.step, Math.ceil((alloc.gpuCores * p) / EMERGENCY_TARGET / g.step) * g.step));
        demandAtLeast(wanted, i, 'gpuCores', share);
        emergency = true;
        notes.push(`${breach ? 'SLO breach' : 'saturation'}: emergency GPU share of stage ${i} to ${share}%`);
        shareFactor = alloc.gpuCores / share;
        if ((p * shareFactor) <= EMERGENCY_TARGET + 0.15) continue;
      }
      // A GPU stage is sized by its full-batch load, as the guard judges it everywhere else: its
      // utilization-based need counts small batches run back to back as busy (video-multiframe
      // burst: a frame-model replica at 0.6 of its full-batch capacity asked for a second one that
      // came up after the burst and was held for the stabilization window).
      const need =
        g && alloc.gpuCores !== null
          ? replicasAtTarget(alloc, p * shareFactor)
          : Math.ceil((bn.needed[i] ?? alloc.replicas + 1) * backlogFactor * shareFactor - 1e-9);
      const allReady = alloc.readyReplicas >= alloc.replicas;
      // One more replica for a breached bottleneck, unless its capacity already covers the load and
      // the backlog with room to spare: then the breach is the window's memory of a drained queue.
      const short = p > EMERGENCY_TARGET;
      const target = Math.max(need, i === bn.stage && allReady && shareFactor === 1 && short ? alloc.replicas + 1 : alloc.replicas);
      const mine = wanted.find((a) => a.stage === i && a.kind === 'replicas');
      if (target <= alloc.replicas) continue;
      if (mine && mine.kind === 'replicas' && mine.replicas >= target) {
        // The selector already asked for at least this much: it is the emergency's scale-up, past the
        // cooldown. It sized at the share it saw; after this emergency's share increase, the
        // emergency's own count is enough (text-generation burst: +2 at 70 % came on top of 70 -> 100 %,
        // and the 4 replicas at 100 % were held ten minutes for a burst that needed 3).
        if (shareFactor < 1) mine.replicas = target;
        mine.urgent = true;
        emergency = true;
        notes.push(`${breach ? 'SLO breach' : 'saturation'}: emergency scale-up of stage ${i}`);
        continue;
      }
      demandAtLeast(wanted, i, 'replicas', target);
      emergency = true;
      notes.push(`${breach ? 'SLO breach' : 'saturation'}: emergency scale-up of stage ${i}`);
    }
  }

  if (!breach) {
    const reserveNotes = reserveActions(pipeline, obs, state, rebalance, wanted);
    if (reserveNotes.length > 0) forced = true;
    notes.push(...reserveNotes);
  }

  if (anticipation && !breach) {
    // A recurring burst is due within the lead times: meet it before it arrives. GPU share (no cold
    // start) within the share lead, replicas (cold start) within the replica lead, each sized for
    // the forecast load at the emergency's target; nothing here waits for a cooldown.
    const f = anticipation;
    for (let i = 0; i < obs.allocation.length; i++) {
      const alloc = obs.allocation[i]!;
      const p = bn.pressure[i];
      const g = pipeline.stages[i]?.gpuCores;
      if (p === null || p === undefined || !(p > 0)) continue;
      const why = (lead: number) => `forecast: load x${lead.toFixed(1)} due (period ${Math.round(f.periodMs / 1000)} s)`;
      let target = alloc.replicas;
      if (g && alloc.gpuCores !== null) {
        const atShare = p * f.shareFactor;
        if (f.shareFactor > 1 && atShare > ANTICIPATE_ABOVE && alloc.gpuCores < g.max) {
          const share = Math.min(g.max, Math.ceil((alloc.gpuCores * atShare) / EMERGENCY_TARGET / g.step) * g.step);
          demandAtLeast(wanted, i, 'gpuCores', share);
          notes.push(`${why(f.shareFactor)}: GPU share of stage ${i} to ${share}%`);
        }
        // Replicas for what the largest share cannot cover.
        const atMax = (p * f.replicaFactor * alloc.gpuCores) / g.max;
        if (f.replicaFactor > 1 && atMax > ANTICIPATE_ABOVE) target = replicasAtTarget(alloc, atMax);
      } else {
        const need = bn.needed[i];
        if (f.replicaFactor > 1 && need !== null && need !== undefined) target = Math.ceil(need * f.replicaFactor - 1e-9);
      }
      if (target <= alloc.replicas) continue;
      demandAtLeast(wanted, i, 'replicas', target);
      notes.push(`${why(f.replicaFactor)}: stage ${i} to ${target} replicas ahead of it`);
    }
  }
  // With a forecast, scale-downs keep what the forecast load needs and the last scale-down
  // cooldown's peak instead of the whole stabilization window's.
  const since = now - (anticipation ? settings.cooldowns.scaleDownMs : settings.cooldowns.stabilizationMs);
  const expectedUnits = (i: number, factor: number): number => {
    const alloc = obs.allocation[i];
    const p = bn.pressure[i];
    if (!anticipation || !alloc || p === null || p === undefined) return 0;
    return p * Math.max(alloc.readyReplicas, 0) * shareOf(alloc.gpuCores) * factor;
  };
  const expectedNeed = (i: number): number => {
    const need = bn.needed[i];
    return anticipation && need !== null && need !== undefined ? need * anticipation.replicaFactor * shareOf(obs.allocation[i]?.gpuCores) : 0;
  };

  for (const a of wanted) {
    const stage = pipeline.stages[a.stage];
    const alloc = obs.allocation[a.stage];
    if (!stage || !alloc) {
      notes.push(`stage ${a.stage}: no such stage, dropped`);
      continue;
    }
    const lastUp = state.lastUp.get(a.stage);
    const lastChange = state.lastChange.get(a.stage);
    if (a.kind === 'replicas') {
      const { lo, hi } = replicaBounds(stage, alloc);
      let target = Math.min(hi, Math.max(lo, a.replicas));
      if (target !== a.replicas) notes.push(`stage ${a.stage}: replicas ${a.replicas} clamped to bounds ${lo}..${hi}`);
      const cur = alloc.replicas;
      if (Math.abs(target - cur) > settings.maxStep) {
        target = cur + Math.sign(target - cur) * settings.maxStep;
        notes.push(`stage ${a.stage}: step limited to ${settings.maxStep}`);
      }
      if (target > cur) {
        if (!a.urgent && lastUp !== undefined && now - lastUp < settings.cooldowns.scaleUpMs) {
          notes.push(`stage ${a.stage}: scale-up cooldown`);
          continue;
        }
      } else if (target < cur) {
        if (breach) {
          notes.push(`stage ${a.stage}: no scale-down during an SLO breach`);
          continue;
        }
        if (lastChange !== undefined && now - lastChange < settings.cooldowns.scaleDownMs) {
          notes.push(`stage ${a.stage}: scale-down cooldown`);
          continue;
        }
        const peak = peakReplicas(state, a.stage, alloc.gpuCores, since, expectedNeed(a.stage));
        const gpuFits =
          stage.gpuCores !== undefined &&
          alloc.gpuCores !== null &&
          gpuCutFits(state, a.stage, target, alloc.gpuCores, since, expectedUnits(a.stage, anticipation?.replicaFactor ?? 1));
        if (target < peak && !gpuFits) {
          notes.push(`stage ${a.stage}: scale-down stabilized at ${Math.min(peak, cur)}`);
          target = Math.min(peak, cur);
        }
        const reserve = state.reserves[a.stage] ?? 0;
        if (target < reserve) {
          notes.push(`stage ${a.stage}: scale-down held at the surge reserve of ${Math.min(cur, reserve)}`);
          target = Math.min(cur, reserve);
        }
      }
      if (target === cur) continue;
      push(out, { kind: 'replicas', stage: a.stage, replicas: target });
      forced ||= a.urgent;
    } else {
      const g = stage.gpuCores;
      if (!g || alloc.gpuCores === null) {
        notes.push(`stage ${a.stage}: no shared GPU, GPU change dropped`);
        continue;
      }
      let target = Math.min(g.max, Math.max(g.min, a.gpuCores));
      if (target !== a.gpuCores) notes.push(`stage ${a.stage}: GPU cores ${a.gpuCores} clamped to ${g.min}..${g.max}`);
      const cur = alloc.gpuCores;
      const maxDelta = g.step * settings.maxStep;
      if (!a.urgent && Math.abs(target - cur) > maxDelta) target = cur + Math.sign(target - cur) * maxDelta;
      if (target > cur && !a.urgent && lastUp !== undefined && now - lastUp < settings.cooldowns.scaleUpMs) {
        notes.push(`stage ${a.stage}: scale-up cooldown`);
        continue;
      }
      if (target < cur) {
        if (breach) {
          notes.push(`stage ${a.stage}: no GPU cut during an SLO breach`);
          continue;
        }
        if (!a.rebalance && lastChange !== undefined && now - lastChange < settings.cooldowns.scaleDownMs) {
          notes.push(`stage ${a.stage}: scale-down cooldown`);
          continue;
        }
        // Less share means more replicas needed for the same load; the window's peak must still fit.
        // (A reserve's spread keeps replicas x share as it was: nothing to check.)
        if (!a.rebalance && !gpuCutFits(state, a.stage, alloc.replicas, target, since, expectedUnits(a.stage, anticipation?.shareFactor ?? 1))) {
          notes.push(`stage ${a.stage}: GPU cut stabilized (recent peak needs the share)`);
          continue;
        }
      }
      if (target === cur) continue;
      push(out, { kind: 'gpuCores', stage: a.stage, gpuCores: target });
      forced ||= a.urgent;
    }
  }
  return { actions: [...out.values()].flat(), notes, emergency, forced, rebalance };
}

/** One replica action and one GPU action per stage at most; a later one of the same kind wins. */
function push(out: Map<number, ScalingAction[]>, a: Exclude<ScalingAction, { kind: 'hold' }>): void {
  const list = (out.get(a.stage) ?? []).filter((x) => x.kind !== a.kind);
  list.push(a);
  out.set(a.stage, list);
}
