// The normalizer between the selector and the cluster, shaped like the HPA's: it only limits.
// Whatever was chosen (lifted to the floors), what is applied stays within the pipeline's and the
// HPA's bounds, moves at most maxStep replicas, respects per-stage cooldowns (floors skip the
// scale-up cooldown), never gives capacity back during an SLO breach, keeps scale-downs and GPU cuts
// above the stabilization window's peak need, and holds everything when metrics are missing. It
// never creates a change. Also here: the window memory it judges by (recordNeeds). Pure: the caller
// keeps the state.
import { shareOf, type BottleneckResult } from './bottleneck.js';
import { replicaBounds } from './candidates.js';
import type { Wanted } from './floors.js';
import type { Anticipation } from './forecast.js';
import type { PipelineObservation, PipelineSpec, ScalingAction } from '../core/ports.js';
import { SLO_TOLERANCE } from './reward.js';
import type { PolicySettings } from './settings.js';
import { TUNING } from './tuning.js';
import type { SourcedAction } from './types.js';

/** Per-pipeline memory of the normalizer and the floors: last changes and recent needs per stage. */
export interface WindowState {
  lastUp: Map<number, number>;
  lastChange: Map<number, number>;
  /** Per stage: replicas needed x GPU share (1 for CPU stages), so a share change does not distort the peak. */
  needs: Map<number, { time: number; units: number }[]>;
  /** Per stage: offered load in replicas at a full GPU share and full batches (pressure x ready x share). */
  fullBatchUnits: Map<number, { time: number; units: number }[]>;
  /** The pipeline's P99 over its SLO, per tick, over the stabilization window. */
  p99Ratios: { time: number; ratio: number }[];
  /** Per stage: the full-batch load/capacity a GPU share cut may go to this tick (gpuCutLimit). */
  cutLimits: number[];
  /** Per stage: the same for a replica trim, which a cold start undoes (operating-point.ts, trimBases). */
  trimLimits: number[];
  /** Per GPU stage: the replicas its surge reserve asks for this tick (0: none; surgeReserveReplicas). */
  reserves: number[];
  /** Per stage, when the cluster last applied a repack of it (candidates.ts, repackable). */
  repacks: Map<number, number>;
  /** Per GPU stage: its share (the one asked, percent) per tick over TUNING.usualShareMemoryMs. */
  shares: Map<number, { time: number; units: number }[]>;
  /** Per stage: the share it usually holds (usualShare), this tick; null for CPU stages and before an hour is seen. */
  usualShares: (number | null)[];
  /** Per GPU stage: the share cuts toward which save a GPU together (operating-point.ts, packShares); empty with learning off. */
  packShares: (number | null)[];
}

export function newWindowState(): WindowState {
  return { lastUp: new Map(), lastChange: new Map(), needs: new Map(), fullBatchUnits: new Map(), p99Ratios: [], cutLimits: [], trimLimits: [], reserves: [], repacks: new Map(), shares: new Map(), usualShares: [], packShares: [] };
}

export interface NormalizeResult {
  actions: SourcedAction[];
  notes: string[];
}

export type NormalizeSettings = Pick<PolicySettings, 'cooldowns' | 'maxStep'>;

export function metricsMissing(obs: PipelineObservation, bn: BottleneckResult): boolean {
  return obs.p99Ms === null || obs.stages.length === 0 || bn.pressure.some((p) => p === null);
}

export function sloBreached(pipeline: PipelineSpec, obs: PipelineObservation): boolean {
  return (obs.p99Ms !== null && obs.p99Ms > pipeline.sloP99Ms) || (obs.sloViolation !== null && obs.sloViolation > SLO_TOLERANCE);
}

/** What the latency-budget cut limit needs (gpuCutLimit); without it every cut stops at the base limit (TUNING.gpuCutMaxPressure). */
export interface LatencyBudget {
  sloP99Ms: number;
  /** The share of the SLO a cut may take P99 to (settings.p99Budget). */
  p99Budget: number;
}

/**
 * Remember each stage's need for the stabilization window and work out this tick's cut limits;
 * call once per tick before the floors, the candidates and the normalizer.
 */
export function recordNeeds(
  state: WindowState,
  bn: BottleneckResult,
  obs: PipelineObservation,
  now: number,
  windowMs: number,
  budget: LatencyBudget | null = null,
  surgeReserve = 0,
  /** Per stage, the base limits (full-batch load/capacity) the operating point has learned for share cuts and replica trims; TUNING.gpuCutMaxPressure where absent. */
  bases: { cut?: readonly number[]; trim?: readonly number[] } = {},
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
  state.cutLimits = obs.allocation.map((_, i) => gpuCutLimit(state, i, obs, budget?.p99Budget ?? 0, bases.cut?.[i] ?? TUNING.gpuCutMaxPressure));
  state.trimLimits = obs.allocation.map((_, i) => gpuCutLimit(state, i, obs, budget?.p99Budget ?? 0, bases.trim?.[i] ?? TUNING.gpuCutMaxPressure));
  state.reserves = obs.allocation.map((a, i) => (a.gpuCores === null ? 0 : surgeReserveReplicas(state.fullBatchUnits.get(i) ?? [], now, surgeReserve)));
  state.usualShares = obs.allocation.map((a, i) => {
    if (a.gpuCores === null) return null;
    const list = state.shares.get(i) ?? [];
    keepWindow(list, { time: now, units: a.gpuCoresAsked ?? a.gpuCores }, now, TUNING.usualShareMemoryMs);
    state.shares.set(i, list);
    // An hour of ticks, to within a window: a spike every 40 minutes is not in the first 20.
    return now - list[0]!.time >= TUNING.usualShareMemoryMs - obs.windowMs ? usualShare(list) : null;
  });
}

/** The share a stage held at or under in TUNING.usualShareQuantile of its ticks: what its rises for a few minutes do not reach. */
export function usualShare(samples: readonly { units: number }[]): number | null {
  if (samples.length === 0) return null;
  const sorted = samples.map((s) => s.units).sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.floor(TUNING.usualShareQuantile * sorted.length))]!;
}

/**
 * Replicas a GPU stage keeps so that a surge of `factor` times its load is met by raising shares
 * alone, with no cold start: factor x its median full-batch load of the last two minutes, in
 * replicas at a whole GPU (the largest share). 0 with no factor or too few samples. The median,
 * so one noisy window does not size it (a start-up minute of busy-time estimates still can).
 */
export function surgeReserveReplicas(units: readonly { time: number; units: number }[], now: number, factor: number): number {
  if (!(factor > 0)) return 0;
  const recent = units.filter((u) => u.time >= now - TUNING.reserveWindowMs).map((u) => u.units);
  if (recent.length < TUNING.reserveMinSamples) return 0;
  recent.sort((x, y) => x - y);
  return Math.ceil(factor * recent[recent.length >> 1]! - 1e-9);
}

/**
 * How deep a GPU stage may be cut: the base limit (the stage's learned operating point), or, with
 * a P99 budget (`fraction` of the SLO, settings.p99Budget, off by default), deeper where P99 leaves room. On a batching GPU stage
 * both the full-batch load/capacity and the batch time (most of P99) grow as 1/share, so P99 per
 * unit of load/capacity, measured at the stage's current allocation (means since its last change),
 * predicts P99 at a deeper cut; the limit is the load/capacity at which that prediction reaches the
 * budget. With a budget of 0.5, a text-generation stage at 0.49 with a 3 s SLO and a P99 of 0.9 s
 * may run at 0.75; a BERT stage at half its SLO stays at 0.4. A breach since the last change (a
 * ratio over 1) or too few samples keep the base limit.
 */
function gpuCutLimit(state: WindowState, stage: number, obs: PipelineObservation, fraction: number, base: number): number {
  const alloc = obs.allocation[stage];
  if (!alloc || alloc.gpuCores === null || !(fraction > 0)) return base;
  const settled = settledMeans(state, stage);
  const capacity = alloc.replicas * shareOf(alloc.gpuCores);
  if (!settled || !(capacity > 0)) return base;
  const pressure = settled.units / capacity;
  if (!(pressure > 0)) return base;
  return Math.min(TUNING.gpuCutSlackMaxPressure, Math.max(base, (fraction * pressure) / settled.ratio));
}

/**
 * Mean P99/SLO and full-batch load of a stage since its last change, or null with too few samples
 * or a breach among them (then nothing vouches for spending latency).
 */
function settledMeans(state: WindowState, stage: number): { ratio: number; units: number } | null {
  const from = state.lastChange.get(stage) ?? -Infinity;
  const ratios = state.p99Ratios.filter((r) => r.time > from).map((r) => r.ratio);
  const units = (state.fullBatchUnits.get(stage) ?? []).filter((u) => u.time > from).map((u) => u.units);
  if (ratios.length < TUNING.slackMinSamples || units.length < TUNING.slackMinSamples || ratios.some((r) => r > 1)) return null;
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

/**
 * The peak need of a stage since `since`, in replicas at a given GPU share. `floorUnits` is what a
 * forecast expects (replicas x share): with a clear recurring pattern, the forecast replaces the
 * long stabilization window, so capacity kept for the last burst can go until the next one nears.
 */
function peakReplicas(state: WindowState, stage: number, gpuCores: number | null | undefined, since: number, floorUnits = 0): number {
  return Math.ceil(peakSince(state.needs.get(stage) ?? [], since, floorUnits) / shareOf(gpuCores) - 1e-9);
}

/**
 * Whether a GPU stage at `replicas` x `gpuCores` keeps the peak full-batch load since `since` (and
 * `floorUnits`) under this tick's limit for the move: a share cut's, or a replica trim's.
 */
function gpuCutFits(state: WindowState, stage: number, replicas: number, gpuCores: number, since: number, floorUnits: number, move: 'cut' | 'trim'): boolean {
  const list = state.fullBatchUnits.get(stage) ?? [];
  if (list.length === 0) return false;
  const limit = (move === 'trim' ? state.trimLimits[stage] : state.cutLimits[stage]) ?? TUNING.gpuCutMaxPressure;
  return peakSince(list, since, floorUnits) <= limit * replicas * shareOf(gpuCores);
}

/** Per stage, the raised share of a selector's consolidation in `wanted` (a replica trim with a share raise). */
function consolidations(wanted: readonly Wanted[], obs: PipelineObservation): Map<number, number> {
  const packs = new Map<number, number>();
  for (const a of wanted) {
    if (a.kind !== 'replicas' || a.source !== 'selector' || a.urgent || a.replicas >= (obs.allocation[a.stage]?.replicas ?? 0)) continue;
    const raise = wanted.find((b) => b.kind === 'gpuCores' && b.stage === a.stage && b.source === 'selector' && !b.urgent);
    if (raise?.kind === 'gpuCores' && raise.gpuCores > (obs.allocation[a.stage]?.gpuCores ?? Infinity)) packs.set(a.stage, raise.gpuCores);
  }
  return packs;
}

/** Remember applied changes for the cooldowns; call after the actions were applied. */
export function noteApplied(state: WindowState, obs: PipelineObservation, actions: readonly ScalingAction[], now: number): void {
  for (const a of actions) {
    if (a.kind === 'hold') continue;
    const alloc = obs.allocation[a.stage];
    const up = a.kind === 'replicas' ? a.replicas > (alloc?.replicas ?? 0) : a.gpuCores > (alloc?.gpuCores ?? 0);
    if (up) state.lastUp.set(a.stage, now);
    state.lastChange.set(a.stage, now);
  }
}

/**
 * What of `wanted` (the chosen candidate lifted to the floors) may be applied this tick, each change
 * with its source: the selector's or a floor's, or the normalizer's where it cut a change short.
 */
export function normalize(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  wanted: readonly Wanted[],
  state: WindowState,
  now: number,
  settings: NormalizeSettings,
  anticipation: Anticipation | null = null,
): NormalizeResult {
  const notes: string[] = [];
  if (metricsMissing(obs, bn)) return { actions: [], notes: ['metrics missing: hold'] };
  const breach = sloBreached(pipeline, obs);
  const out = new Map<number, SourcedAction[]>();
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

  // A consolidation (the selector's replica trim with a share raise on the same stage) is one move:
  // the trim is judged at the raised share, and both go or neither does.
  const packs = consolidations(wanted, obs);

  for (const a of wanted) {
    const stage = pipeline.stages[a.stage];
    const alloc = obs.allocation[a.stage];
    if (!stage || !alloc) {
      notes.push(`stage ${a.stage}: no such stage, dropped`);
      continue;
    }
    const pack = packs.get(a.stage);
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
        const share = pack ?? alloc.gpuCores;
        const peak = peakReplicas(state, a.stage, share, since, expectedNeed(a.stage));
        const gpuFits = stage.gpuCores !== undefined && share !== null && gpuCutFits(state, a.stage, target, share, since, expectedUnits(a.stage, anticipation?.replicaFactor ?? 1), 'trim');
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
      if (pack !== undefined) {
        if (target !== a.replicas) {
          notes.push(`stage ${a.stage}: consolidation held (the trim is not allowed)`);
          continue;
        }
        push(out, { kind: 'gpuCores', stage: a.stage, gpuCores: pack, source: a.source });
      }
      if (target === cur) continue;
      push(out, { kind: 'replicas', stage: a.stage, replicas: target, source: a.source });
    } else {
      if (pack !== undefined) continue;
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
        if (lastChange !== undefined && now - lastChange < settings.cooldowns.scaleDownMs) {
          notes.push(`stage ${a.stage}: scale-down cooldown`);
          continue;
        }
        // Less share means more replicas needed for the same load; the window's peak must still fit.
        if (!gpuCutFits(state, a.stage, alloc.replicas, target, since, expectedUnits(a.stage, anticipation?.shareFactor ?? 1), 'cut')) {
          notes.push(`stage ${a.stage}: GPU cut stabilized (recent peak needs the share)`);
          continue;
        }
      }
      if (target === cur) continue;
      push(out, { kind: 'gpuCores', stage: a.stage, gpuCores: target, source: a.source });
    }
  }
  return { actions: [...out.values()].flat(), notes };
}

/** One replica action and one GPU action per stage at most; a later one of the same kind wins. */
function push(out: Map<number, SourcedAction[]>, a: SourcedAction): void {
  const list = (out.get(a.stage) ?? []).filter((x) => x.kind !== a.kind);
  list.push(a);
  out.set(a.stage, list);
}
