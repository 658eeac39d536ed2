// Which stage limits the pipeline this tick. The score of a stage is its offered load over its
// service capacity (queue growth counts as extra load); latency share breaks near-ties. Batching
// stages serve more per busy second under load (bigger batches), so a window at low load
// understates their capacity; a capacity memory keeps the best rate seen per unit of GPU share,
// decaying slowly, and the detector uses it. Pure: the caller keeps the memory.
import type { PipelineObservation, PipelineSpec, StageMetrics } from './ports.js';

export interface BottleneckResult {
  /** Stage index, or null when no stage has enough metrics to say. */
  stage: number | null;
  /** Per stage: offered load / capacity (1 = saturated), null where unknown. */
  pressure: (number | null)[];
  /** Per stage: replicas needed to serve the offered load at the target utilization, null where unknown. */
  needed: (number | null)[];
}

/** Throughput one ready replica serves when busy; estimated from throughput/utilization when not reported. */
export function capacityPerReplica(m: StageMetrics, readyReplicas: number): number | null {
  if (m.capacityPerReplica !== null && m.capacityPerReplica > 0) return m.capacityPerReplica;
  if (m.throughput !== null && m.utilization !== null && m.utilization > 0.05 && readyReplicas > 0) {
    return m.throughput / (m.utilization * readyReplicas);
  }
  return null;
}

/** Offered load: arrivals, plus the backlog growth that arrivals alone hide when upstream queues. */
export function offeredLoad(m: StageMetrics): number | null {
  if (m.arrivalRate === null) return null;
  return m.arrivalRate + Math.max(0, m.queueGrowth ?? 0);
}

/** Per stage: best observed completions per busy second per replica, at a full GPU for GPU stages. */
export type CapacityMemory = (number | null)[];

const CAPACITY_DECAY = 0.9995;

const shareOf = (gpuCores: number | null | undefined) => (gpuCores ? gpuCores / 100 : 1);

/** Fold this window's measured capacities into the memory (call once per observation). */
export function rememberCapacity(mem: CapacityMemory, obs: PipelineObservation): void {
  obs.stages.forEach((m, i) => {
    const alloc = obs.allocation[i];
    const measured = alloc ? capacityPerReplica(m, alloc.readyReplicas) : null;
    const prev = mem[i] ?? null;
    if (measured === null || !Number.isFinite(measured)) {
      mem[i] = prev;
      return;
    }
    const normalized = measured / shareOf(alloc?.gpuCores);
    mem[i] = prev === null ? normalized : Math.max(prev * CAPACITY_DECAY, normalized);
  });
}

export function detectBottleneck(
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  memory: CapacityMemory = [],
  targetUtilization = 0.7,
): BottleneckResult {
  const pressure: (number | null)[] = [];
  const needed: (number | null)[] = [];
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
      continue;
    }
    const ready = Math.max(alloc.readyReplicas, 0);
    const measured = capacityPerReplica(m, ready);
    const remembered = memory[i] ?? null;
    const perReplica = remembered !== null ? Math.max(measured ?? 0, remembered * shareOf(alloc.gpuCores)) : measured;
    // What the pipeline offers this stage: its own arrivals, or the entry rate when a stage upstream holds work back.
    const own = offeredLoad(m);
    const load = own === null ? null : Math.max(own, obs.arrivalRate ?? 0);
    let p: number | null;
    if (perReplica !== null && load !== null) {
      p = ready > 0 ? load / (perReplica * ready) : load > 0 ? Infinity : 0;
      needed.push(Math.max(1, Math.ceil(load / (perReplica * targetUtilization))));
    } else {
      p = m.utilization;
      needed.push(null);
    }
    pressure.push(p);
    if (p === null) continue;
    // A small latency-share term separates stages that are equally loaded.
    const share = totalLatency > 0 ? (m.latencyP50Ms ?? 0) / totalLatency : 0;
    const score = Math.min(p, 1e6) + 0.05 * share;
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return { stage: best, pressure, needed };
}
