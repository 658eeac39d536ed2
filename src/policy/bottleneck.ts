// Which stage limits the pipeline this tick. The score of a stage is its offered load over its
// service capacity (queue growth counts as extra load); queue growth, then latency share, break
// near-ties. Capacity is what a replica serves at FULL batches. Where the stage's server exports
// batch counts and compute time (StageMetrics.batchSize/batchServiceMs) and its maxBatch is known,
// a per-stage service-time model t(b) = a + c*b (service-model.ts) gives it as maxBatch / t(maxBatch).
// Otherwise throughput / busy time estimates it; that understates a batching stage's capacity at low
// load (small batches), so a capacity memory keeps the best rate seen per unit of GPU share,
// decaying slowly. Pure: the caller keeps the memory.
import type { PipelineObservation, PipelineSpec, StageMetrics } from '../core/ports.js';
import { emptyServiceModel, fullBatchCapacity, observeService, type ServiceModel } from './service-model.js';
import { TUNING } from './tuning.js';

export interface BottleneckResult {
  /** Stage index, or null when no stage has enough metrics to say. */
  stage: number | null;
  /** Per stage: offered load / capacity (1 = saturated), null where unknown. */
  pressure: (number | null)[];
  /** Per stage: replicas needed to serve the offered load at the target utilization, null where unknown. */
  needed: (number | null)[];
  /**
   * Per stage: load/capacity counting the queued backlog as extra load to be drained within
   * TUNING.backlogDrainS (>= pressure); what an emergency sizes for, so a burst's queue is worked off
   * instead of merely no longer growing. Absent where the caller built the result by hand.
   */
  drainPressure?: (number | null)[];
  /** The surge factor every stage's load was scaled by this tick (surgeFactor; 1 for none). Absent where built by hand. */
  surge?: number;
  /** Per stage: the offered load in items/s (surge included), null where unknown. Absent where built by hand. */
  load?: (number | null)[];
  /** Per stage: the fraction of the target utilization it is sized at this tick (headroomAt). Absent where built by hand. */
  headroom?: number[];
}


/** Throughput one ready replica serves when busy; estimated from throughput/utilization when not reported. */
export function capacityPerReplica(m: StageMetrics, readyReplicas: number): number | null {
  if (m.capacityPerReplica !== null && m.capacityPerReplica > 0) return m.capacityPerReplica;
  if (m.throughput !== null && m.utilization !== null && m.utilization > 0.05 && readyReplicas > 0) {
    return m.throughput / (m.utilization * readyReplicas);
  }
  return null;
}

/**
 * Offered load: arrivals (times `surge`, surgeFactor), plus the backlog growth that arrivals alone
 * hide when upstream queues.
 */
export function offeredLoad(m: StageMetrics, surge = 1): number | null {
  if (m.arrivalRate === null) return null;
  return m.arrivalRate * surge + Math.max(0, m.queueGrowth ?? 0);
}

/** What the detector learns across ticks, per stage (index = stage). */
export interface CapacityMemory {
  /** Best observed completions per busy second per replica, at a full GPU for GPU stages. */
  best: (number | null)[];
  /** Batch service-time model at a full GPU, where the stage reports batch data. */
  service: ServiceModel[];
  /** GPU share last seen and the observation time it was first seen at (batches in a window that spans a change ran at mixed shares). */
  share: { gpuCores: number | null; since: number }[];
}

export const newCapacityMemory = (): CapacityMemory => ({ best: [], service: [], share: [] });


/** A replica's share of one GPU as a fraction; CPU stages and unknown shares count as whole. */
export const shareOf = (gpuCores: number | null | undefined) => (gpuCores ? gpuCores / 100 : 1);

/** Fold this window's measured capacities into the memory (call once per observation). */
export function rememberCapacity(mem: CapacityMemory, obs: PipelineObservation): void {
  obs.stages.forEach((m, i) => {
    const alloc = obs.allocation[i];
    const measured = alloc ? capacityPerReplica(m, alloc.readyReplicas) : null;
    const share = shareOf(alloc?.gpuCores);
    const gpuCores = alloc?.gpuCores ?? null;
    const seen = mem.share[i];
    if (!seen || seen.gpuCores !== gpuCores) mem.share[i] = { gpuCores, since: seen ? obs.time : -Infinity };
    const steady = obs.time - obs.windowMs >= mem.share[i]!.since;
    if (steady && m.batchSize != null && m.batchServiceMs != null) {
      mem.service[i] = observeService(mem.service[i] ?? emptyServiceModel(), m.batchSize, m.batchServiceMs * share);
    }
    const prev = mem.best[i] ?? null;
    if (measured === null || !Number.isFinite(measured)) {
      mem.best[i] = prev;
      return;
    }
    const normalized = measured / share;
    mem.best[i] = prev === null ? normalized : Math.max(prev * TUNING.capacityDecay, normalized);
  });
}


/**
 * Per ready replica at its current share, items per second: `saturation`, what it serves at full
 * batches (from the service-time model where it can say, else the busy-time estimate lifted by the
 * capacity memory), and `busy`, what it serves per busy second at the batch sizes the current load
 * makes (the busy-time estimate). Load over `saturation` says which stage limits the pipeline;
 * `busy` sizes replicas for a target utilization, as an HPA would, so a batching stage is not
 * run near full batches, where its latency is at its worst.
 */
export function replicaCapacity(
  maxBatch: number | undefined,
  m: StageMetrics,
  gpuCores: number | null,
  ready: number,
  memory: CapacityMemory,
  i: number,
): { saturation: number | null; busy: number | null } {
  const share = shareOf(gpuCores);
  const measured = capacityPerReplica(m, ready);
  const remembered = memory.best[i] ?? null;
  const busy = remembered !== null ? Math.max(measured ?? 0, remembered * share) : measured;
  const model = memory.service[i];
  const modelled = model && maxBatch !== undefined ? fullBatchCapacity(model, maxBatch) : null;
  return { saturation: modelled !== null ? modelled * share : busy, busy };
}



/**
 * How much of a stage's target utilization to use, from the cost model: capacity on a stage
 * without a GPU costs only `replicaHour`, a small fraction of a GPU's price, so such a stage is
 * sized at a third of the target utilization. A burst then finds its CPU stages ready at
 * almost no cost, and only the GPU stages, whose share can rise at once, need to react.
 */
export function stageHeadroom(pipeline: PipelineSpec, stage: number): number {
  const s = pipeline.stages[stage];
  if (!s || s.gpuCores) return 1;
  const { gpuHour, replicaHour } = pipeline.cost;
  return gpuHour > 0 && replicaHour < TUNING.cheapStageCost * gpuHour ? TUNING.cheapHeadroom : 1;
}

/**
 * The headroom a stage is sized at this tick. A cheap stage keeps its default reserve (stageHeadroom)
 * until it has learned, from a whole memory of its own loads (`peak`: the largest it carried, null
 * while the memory is not full or learning is off), how large a surge it must expect: then only what
 * meets that peak at the emergency's target, which under a steady load is no reserve at all. A load
 * past the peak by a surge's margin is ground not seen, where the default reserve is back.
 */
export function headroomAt(base: number, load: number | null, peak: number | null, targetUtilization: number): number {
  if (base >= 1 || peak === null || !(peak > 0) || load === null || load > TUNING.surgeRatio * peak) return base;
  return Math.min(1, Math.max(base, (load * TUNING.emergencyTarget) / (peak * targetUtilization)));
}

/**
 * How much the entry rate of the newest scrape interval exceeds the window's, where that is a
 * surge and not noise; else 1. A window-long rate shows a surge at half its size in its first
 * tick, so stages were sized for half of it one tick late (text-generation burst: at 555 s the
 * decoder read 0.8 of its capacity while 22 req/s arrived against 20, and waited a tick).
 */
export function surgeFactor(obs: PipelineObservation): number {
  const rate = obs.arrivalRate;
  const recent = obs.recentArrivalRate;
  const ms = obs.recentWindowMs;
  if (rate == null || recent == null || ms === undefined || !(rate > 0) || !(ms > 0) || !(recent >= TUNING.surgeRatio * rate)) return 1;
  const seconds = ms / 1000;
  const z = ((recent - rate) * seconds) / Math.sqrt(rate * seconds);
  return z >= TUNING.surgeZ ? recent / rate : 1;
}

export function detectBottleneck(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  memory: CapacityMemory = newCapacityMemory(),
  targetUtilization = 0.7,
  /** Per stage, the largest load a whole memory of episodes saw (operating-point.ts, surgePeaks); none: the default headroom. */
  peaks: readonly (number | null)[] = [],
): BottleneckResult {
  const pressure: (number | null)[] = [];
  const needed: (number | null)[] = [];
  const drainPressure: (number | null)[] = [];
  const loads: (number | null)[] = [];
  const headroom: number[] = [];
  // A surge the window shows only in part reaches every stage: scale each stage's load by it.
  const surge = surgeFactor(obs);
  let totalLatency = 0;
  for (const m of obs.stages) totalLatency += m.latencyP50Ms ?? 0;
  let best: number | null = null;
  let bestScore = -Infinity;
  for (let i = 0; i < pipeline.stages.length; i++) {
    const m = obs.stages[i];
    const alloc = obs.allocation[i];
    if (!m || !alloc) {
      pressure.push(null);
      needed.push(null);
      drainPressure.push(null);
      loads.push(null);
      headroom.push(stageHeadroom(pipeline, i));
      continue;
    }
    const ready = Math.max(alloc.readyReplicas, 0);
    const { saturation: perReplica, busy } = replicaCapacity(pipeline.stages[i]?.maxBatch, m, alloc.gpuCores, ready, memory, i);
    // What the pipeline offers this stage: its own arrivals, or the entry rate when a stage upstream holds work back.
    const own = offeredLoad(m, surge);
    const load = own === null ? null : Math.max(own, (obs.arrivalRate ?? 0) * surge);
    const h = headroomAt(stageHeadroom(pipeline, i), load, peaks[i] ?? null, targetUtilization);
    loads.push(load);
    headroom.push(h);
    let p: number | null;
    if (perReplica !== null && load !== null) {
      p = ready > 0 ? load / (perReplica * ready) : load > 0 ? Infinity : 0;
      needed.push(Math.max(1, Math.ceil(load / ((busy ?? perReplica) * targetUtilization * h))));
    } else {
      p = m.utilization;
      needed.push(null);
    }
    pressure.push(p);
    const backlog = Math.max(0, m.queueLength ?? 0) / TUNING.backlogDrainS;
    drainPressure.push(p !== null && load !== null && load > 0 ? p * ((load + backlog) / load) : p);
    if (p === null) continue;
    // Small terms separate stages that are equally loaded: first a growing queue (relative to
    // the stage's capacity), then the share of the pipeline's latency spent in the stage.
    const share = totalLatency > 0 ? (m.latencyP50Ms ?? 0) / totalLatency : 0;
    const capacity = perReplica !== null ? perReplica * ready : 0;
    const growth = capacity > 0 ? Math.min(1, Math.max(0, m.queueGrowth ?? 0) / capacity) : 0;
    const score = Math.min(p, 1e6) + TUNING.tieGrowth * growth + TUNING.tieLatency * share;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return { stage: best, pressure, needed, drainPressure, surge, load: loads, headroom };
}
