// Safety needs as floors on a stage's capacity: an SLO breach or a saturated stage, a recurring
// burst the forecast sees coming, and the opt-in surge reserve each say how much GPU share or how
// many replicas a stage must have at least. A floor is never an action of its own: every candidate
// the selector is offered is lifted to the floors (liftToFloors), so the selector still chooses
// what else to do, and the record says which applied change a floor produced. Pure.
import type { BottleneckResult } from './bottleneck.js';
import type { Anticipation } from './forecast.js';
import type { WindowState } from './normalize.js';
import type { PipelineObservation, PipelineSpec, ScalingAction, StageAllocation } from '../core/ports.js';
import { shareCeiling } from './packing.js';
import { TUNING } from './tuning.js';
import type { ActionSource } from './types.js';

/** At least `value` replicas or GPU cores for a stage, and why. */
export interface Floor {
  stage: number;
  kind: 'replicas' | 'gpuCores';
  value: number;
  why: string;
  /**
   * An emergency that raised the stage's share sized its replicas at the new share: a selector's
   * larger replica count, sized at the old share, is capped to this floor's.
   */
  capsSelector?: boolean;
}

/** A change on its way to the normalizer, with who asked for it. */
export type Wanted = Exclude<ScalingAction, { kind: 'hold' }> & {
  /** Urgent changes (a floor, or a selector's change that meets one) skip the scale-up cooldown. */
  urgent: boolean;
  source: Exclude<ActionSource, 'normalizer'>;
};

/** Replicas that run a stage now at full-batch load/capacity `pressure` at the emergency target. */
const replicasAtTarget = (alloc: StageAllocation, pressure: number): number =>
  Math.ceil((Math.max(alloc.readyReplicas, 1) * pressure) / TUNING.emergencyTarget - 1e-9);

/** Raise or add a floor: two floors of the same kind on a stage keep the larger. */
function raise(out: Floor[], f: Floor): void {
  const at = out.findIndex((x) => x.stage === f.stage && x.kind === f.kind);
  if (at < 0) out.push(f);
  else if (f.value > out[at]!.value) out[at] = { ...f, capsSelector: f.capsSelector ?? out[at]!.capsSelector };
}

function emergencyFloors(pipeline: PipelineSpec, obs: PipelineObservation, bn: BottleneckResult, breach: boolean, out: Floor[]): void {
  // A saturated stage's queue only grows, so it is an emergency before the SLO breaks. Every
  // saturated stage (and on a breach the bottleneck) gets what its load needs: first more GPU share
  // where it has one (applied at once, no cold start), then replicas for the rest.
  for (let i = 0; i < obs.allocation.length; i++) {
    const alloc = obs.allocation[i]!;
    const p0 = bn.pressure[i] ?? 0;
    if (!(breach && i === bn.stage) && p0 <= 1) continue;
    const label = breach ? 'SLO breach' : 'saturation';
    // On a breach the queue is what breaks the SLO: size for the load plus the queued backlog.
    const p = breach ? Math.max(p0, bn.drainPressure?.[i] ?? p0) : p0;
    const backlogFactor = p0 > 0 ? p / p0 : 1;
    const g = pipeline.stages[i]?.gpuCores;
    let shareFactor = 1;
    const ceiling = g ? shareCeiling(g.max, alloc) : 0;
    if (g && alloc.gpuCores !== null && alloc.gpuCores < ceiling && p > 0) {
      const share = Math.min(ceiling, Math.max(alloc.gpuCores + g.step, Math.ceil((alloc.gpuCores * p) / TUNING.emergencyTarget / g.step) * g.step));
      raise(out, { stage: i, kind: 'gpuCores', value: share, why: `${label}: GPU share of stage ${i} to at least ${share}%` });
      shareFactor = alloc.gpuCores / share;
      if (p * shareFactor <= TUNING.emergencyTarget + TUNING.emergencyShareSlack) continue;
    }
    // A GPU stage is sized by its full-batch load; a CPU stage by its utilization-based need.
    const need = g && alloc.gpuCores !== null ? replicasAtTarget(alloc, p * shareFactor) : Math.ceil((bn.needed[i] ?? alloc.replicas + 1) * backlogFactor * shareFactor - 1e-9);
    const allReady = alloc.readyReplicas >= alloc.replicas;
    // One more replica for a breached bottleneck that is still short of capacity at the target.
    const short = p > TUNING.emergencyTarget;
    const target = Math.max(need, i === bn.stage && allReady && shareFactor === 1 && short ? alloc.replicas + 1 : alloc.replicas);
    if (target <= alloc.replicas) continue;
    raise(out, { stage: i, kind: 'replicas', value: target, why: `${label}: stage ${i} to at least ${target} replicas`, ...(shareFactor < 1 ? { capsSelector: true } : {}) });
  }
}

function forecastFloors(pipeline: PipelineSpec, obs: PipelineObservation, bn: BottleneckResult, f: Anticipation, out: Floor[]): void {
  // A recurring burst due within the lead times is met before it arrives: GPU share (no cold start)
  // within the share lead, replicas (cold start) within the replica lead, each sized for the
  // forecast load at the emergency's target.
  const why = (lead: number) => `forecast: load x${lead.toFixed(1)} due (period ${Math.round(f.periodMs / 1000)} s)`;
  for (let i = 0; i < obs.allocation.length; i++) {
    const alloc = obs.allocation[i]!;
    const p = bn.pressure[i];
    const g = pipeline.stages[i]?.gpuCores;
    if (p === null || p === undefined || !(p > 0)) continue;
    let target = alloc.replicas;
    if (g && alloc.gpuCores !== null) {
      const ceiling = shareCeiling(g.max, alloc);
      const atShare = p * f.shareFactor;
      if (f.shareFactor > 1 && atShare > TUNING.anticipateAbove && alloc.gpuCores < ceiling) {
        const share = Math.min(ceiling, Math.ceil((alloc.gpuCores * atShare) / TUNING.emergencyTarget / g.step) * g.step);
        raise(out, { stage: i, kind: 'gpuCores', value: share, why: `${why(f.shareFactor)}: GPU share of stage ${i} to at least ${share}%` });
      }
      // Replicas for what the largest share the stage can be given cannot cover.
      const atMax = (p * f.replicaFactor * alloc.gpuCores) / ceiling;
      if (f.replicaFactor > 1 && atMax > TUNING.anticipateAbove) target = replicasAtTarget(alloc, atMax);
    } else {
      const need = bn.needed[i];
      if (f.replicaFactor > 1 && need !== null && need !== undefined) target = Math.ceil(need * f.replicaFactor - 1e-9);
    }
    if (target > alloc.replicas) raise(out, { stage: i, kind: 'replicas', value: target, why: `${why(f.replicaFactor)}: stage ${i} to at least ${target} replicas` });
  }
}

function reserveFloors(pipeline: PipelineSpec, obs: PipelineObservation, state: WindowState, out: Floor[]): void {
  // The opt-in surge reserve keeps GPU stages on enough replicas that a surge is met by raising
  // shares alone; the selector decides how far to cut each replica's share.
  for (let i = 0; i < obs.allocation.length; i++) {
    const alloc = obs.allocation[i]!;
    const want = state.reserves[i] ?? 0;
    if (!pipeline.stages[i]?.gpuCores || alloc.gpuCores === null || alloc.readyReplicas < alloc.replicas || want <= alloc.replicas) continue;
    raise(out, { stage: i, kind: 'replicas', value: want, why: `surge reserve: stage ${i} to at least ${want} replicas` });
  }
}

/** This tick's floors; none when metrics are missing (the normalizer then holds everything). */
export function computeFloors(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  state: WindowState,
  opts: { breach: boolean; anticipation: Anticipation | null },
): Floor[] {
  const out: Floor[] = [];
  const saturated = bn.pressure.some((p) => p !== null && p > 1);
  if (opts.breach || saturated) emergencyFloors(pipeline, obs, bn, opts.breach, out);
  if (!opts.breach) {
    reserveFloors(pipeline, obs, state, out);
    if (opts.anticipation) forecastFloors(pipeline, obs, bn, opts.anticipation, out);
  }
  return out;
}

/** Whether the allocation already meets a floor. */
function met(f: Floor, obs: PipelineObservation): boolean {
  const alloc = obs.allocation[f.stage];
  if (!alloc) return true;
  return f.kind === 'replicas' ? alloc.replicas >= f.value : alloc.gpuCores !== null && alloc.gpuCores >= f.value;
}

/** The floors the current allocation does not meet: where one binds, holding is no option. */
export const unmetFloors = (floors: readonly Floor[], obs: PipelineObservation): Floor[] => floors.filter((f) => !met(f, obs));

/**
 * A candidate's actions lifted to the floors: a change the selector asked for that reaches a floor
 * stays the selector's (and becomes urgent); a floor it does not reach is the floor's.
 */
export function liftToFloors(actions: readonly ScalingAction[], floors: readonly Floor[], obs: PipelineObservation): Wanted[] {
  const wanted: Wanted[] = actions
    .filter((a): a is Exclude<ScalingAction, { kind: 'hold' }> => a.kind !== 'hold')
    .map((a) => ({ ...a, urgent: false, source: 'selector' as const }));
  for (const f of unmetFloors(floors, obs)) {
    const mine = wanted.find((a) => a.stage === f.stage && a.kind === f.kind);
    if (!mine) {
      wanted.push(f.kind === 'replicas' ? { kind: 'replicas', stage: f.stage, replicas: f.value, urgent: true, source: 'floor' } : { kind: 'gpuCores', stage: f.stage, gpuCores: f.value, urgent: true, source: 'floor' });
      continue;
    }
    const asked = mine.kind === 'replicas' ? mine.replicas : mine.gpuCores;
    if (asked >= f.value) {
      mine.urgent = true;
      if (f.capsSelector && mine.kind === 'replicas') mine.replicas = f.value;
    } else {
      if (mine.kind === 'replicas') mine.replicas = f.value;
      else mine.gpuCores = f.value;
      mine.urgent = true;
      mine.source = 'floor';
    }
  }
  return wanted;
}
