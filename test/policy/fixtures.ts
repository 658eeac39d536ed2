// Builders for pipelines and observations shaped like the ones the simulator and the Prometheus
// adapter produce, so each test states only the numbers it is about.
import type { PipelineObservation, PipelineSpec, StageAllocation, StageMetrics } from '../../src/core/ports.js';

export function pipeline(overrides: Partial<PipelineSpec> = {}): PipelineSpec {
  return {
    id: 'ml/demo',
    stages: [
      { index: 0, name: 'pre', minReplicas: 1, maxReplicas: 10, upstream: [] },
      { index: 1, name: 'infer', minReplicas: 1, maxReplicas: 8, gpuCores: { min: 10, max: 100, step: 10 }, upstream: [0] },
      { index: 2, name: 'post', minReplicas: 1, maxReplicas: 10, upstream: [1] },
    ],
    sloP99Ms: 500,
    cost: { gpuHour: 2.5, replicaHour: 0.1 },
    tickSeconds: 30,
    mode: 'Active',
    ...overrides,
  };
}

/** The same pipeline with its stage 2 on a GPU too: two GPU stages, whose replicas may share GPUs. */
export function twoGpuPipeline(): PipelineSpec {
  const p = pipeline();
  p.stages[2] = { ...p.stages[2]!, gpuCores: { min: 10, max: 100, step: 10 } };
  return p;
}

export interface StageLoad {
  /** Offered load per second. */
  arrival: number;
  /** Per-replica capacity per second. */
  perReplica: number;
  replicas: number;
  ready?: number;
  gpuCores?: number | null;
  queueGrowth?: number;
  latencyP50Ms?: number;
  hpa?: StageAllocation['hpa'];
}

export function stageMetrics(s: StageLoad): StageMetrics {
  const ready = s.ready ?? s.replicas;
  const cap = s.perReplica * ready;
  return {
    arrivalRate: s.arrival,
    throughput: Math.min(s.arrival, cap),
    queueLength: s.arrival > cap ? (s.arrival - cap) * 30 : 0,
    queueGrowth: s.queueGrowth ?? Math.max(0, s.arrival - cap),
    utilization: cap > 0 ? Math.min(1, s.arrival / cap) : 0,
    latencyP50Ms: s.latencyP50Ms ?? 20,
    latencyP99Ms: (s.latencyP50Ms ?? 20) * 3,
    capacityPerReplica: s.perReplica,
    dropRate: 0,
  };
}

export function observation(stages: StageLoad[], extra: Partial<PipelineObservation> = {}): PipelineObservation {
  return {
    time: 0,
    windowMs: 30_000,
    stages: stages.map(stageMetrics),
    allocation: stages.map((s) => ({ replicas: s.replicas, readyReplicas: s.ready ?? s.replicas, gpuCores: s.gpuCores ?? null, hpa: s.hpa })),
    p99Ms: 300,
    arrivalRate: stages[0]?.arrival ?? 0,
    sloViolation: 0,
    costRate: 1,
    ...extra,
  };
}
