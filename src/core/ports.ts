// The ports between a controller (SAIR's ICRL policy or a baseline) and the world. The cluster
// adapters (src/policy-server/k8s/, src/policy-server/prometheus/) and the simulator (src/sim/) both implement
// them, so the benchmark runs the same controller code that runs in a cluster.
// Units: time in ms since the epoch of the clock, rates per second, latency in ms, cost in $/hour.

/** Virtual time in the simulator, wall time in a cluster. */
export interface Clock {
  now(): number;
  /** Resolves after `ms` of this clock's time. */
  sleep(ms: number): Promise<void>;
}

export interface GpuCoresBounds {
  /** Percent of one GPU's SM time, 1..100. */
  min: number;
  max: number;
  step: number;
}

export interface StageSpec {
  /** Position in `PipelineSpec.stages`; prompts and logs use it instead of names. */
  index: number;
  /** Deployment name in a cluster; a label in the simulator. */
  name: string;
  minReplicas: number;
  maxReplicas: number;
  /** Present when the stage runs on a shared GPU and its share may be changed. */
  gpuCores?: GpuCoresBounds;
  /** Stages this one consumes from (DAG edges); empty for entry stages. */
  upstream: number[];
  /** Most items the stage's server puts in one batch (1 = no batching); absent when unknown. */
  maxBatch?: number;
}

export interface CostModel {
  /**
   * Dollars per GPU-hour. A cluster bills whole GPUs: each GPU hosting at least one replica costs
   * this (packed cost). Where packing is unknown a replica at 30 % is charged 0.3 × this (share-priced).
   */
  gpuHour: number;
  /** Dollars per replica-hour, for CPU and memory. */
  replicaHour: number;
}

export interface PipelineSpec {
  /** `namespace/name` in a cluster. */
  id: string;
  stages: StageSpec[];
  sloP99Ms: number;
  cost: CostModel;
  tickSeconds: number;
  mode: 'Active' | 'DryRun';
}

/** What the cluster currently runs for one stage. */
export interface StageAllocation {
  /** Replicas asked for (the scale subresource's spec.replicas). */
  replicas: number;
  readyReplicas: number;
  /** Current GPU core share of each replica, percent, as enforced; null for CPU-only stages. */
  gpuCores: number | null;
  /** The share SAIR asked for, where the node agent enforces less (a GPU had no room for it). */
  gpuCoresAsked?: number;
  /** Bounds imposed from outside the pipeline spec, e.g. the HPA's min/max and recommendation. */
  hpa?: { minReplicas: number; maxReplicas: number; desiredReplicas?: number };
  /**
   * Replicas asked for that are Pending because no GPU has room for their share (unschedulable):
   * not ready, not serving, not billed. Absent where the cluster cannot tell.
   */
  pendingReplicas?: number;
  /**
   * Replicas enforced below `gpuCores` because their GPU had no room for all of it (the node agent
   * clamps a share rise to what the GPU has free). Absent where the cluster cannot tell.
   */
  clampedReplicas?: number;
}

/** How a pipeline's GPU replicas sit on whole GPUs, where the cluster can tell. */
export interface GpuPacking {
  /** Each GPU hosting at least one of the pipeline's replicas: share in use and free, percent (free counts whole slots). */
  gpus: { used: number; free: number }[];
  /** GPUs with nothing on them that a new replica could go to; null when the cluster adds nodes without bound. */
  idleGpus: number | null;
}

/** One stage's metrics over the last observation window. Null means the metric is missing. */
export interface StageMetrics {
  /** Offered load: requests (or batches' items) arriving per second. */
  arrivalRate: number | null;
  /** Completions per second. */
  throughput: number | null;
  /** Requests waiting, at the end of the window. */
  queueLength: number | null;
  /** d(queue)/dt over the window, requests per second. */
  queueGrowth: number | null;
  /** Busy fraction of ready replicas, 0..1 (the HPA's utilization signal). */
  utilization: number | null;
  /** Time spent in this stage (queue + service), ms. */
  latencyP50Ms: number | null;
  latencyP99Ms: number | null;
  /** Measured completions per second per ready replica when busy (service capacity). */
  capacityPerReplica: number | null;
  /** Requests dropped per second (timeouts, full queues). */
  dropRate: number | null;
  /** Mean items per executed batch over the window (batching servers: Triton, vLLM); absent or null when not exported. */
  batchSize?: number | null;
  /** Mean service (compute) time of one executed batch over the window, ms; absent or null when not exported. */
  batchServiceMs?: number | null;
}

export interface PipelineObservation {
  /** Clock time at the end of the window. */
  time: number;
  windowMs: number;
  stages: StageMetrics[];
  allocation: StageAllocation[];
  /** End-to-end P99 latency, ms; drops count as infinite latency. */
  p99Ms: number | null;
  /** Requests entering the pipeline per second. */
  arrivalRate: number | null;
  /**
   * Requests entering per second over the newest scrape interval alone (Prometheus irate), and
   * that interval's length, where the source can say. A surge shows here at its full size while
   * it fills only part of the window: at a 30 s window, half of it a tick earlier.
   */
  recentArrivalRate?: number | null;
  recentWindowMs?: number;
  /** Fraction of requests in the window that missed the SLO or were dropped. */
  sloViolation: number | null;
  /**
   * Current spend, $/hour: packed (whole GPUs in use × gpuHour + replicas × replicaHour) where the
   * cluster tells how many GPUs the replicas hold (`billedGpus` present), else share-priced.
   */
  costRate: number;
  /**
   * Whole GPUs the pipeline's GPU replicas hold, as a cluster bills them, where the cluster can tell
   * (the simulator's placement; the device plugin's slot metric in production).
   */
  billedGpus?: number;
  /** Share-priced spend, $/hour: replicas × (replicaHour + gpuHour × share), what costRate was before packing. */
  shareCostRate?: number;
  /** How GPU replicas sit on each GPU, where the cluster tells (the simulator; the Prometheus adapter gives only billedGpus). */
  gpuPacking?: GpuPacking;
}

export interface MetricsPort {
  observe(pipeline: PipelineSpec): Promise<PipelineObservation>;
}

/** A change to one stage, as absolute targets so that applying it twice is harmless. */
export type ScalingAction =
  | { kind: 'hold' }
  | { kind: 'replicas'; stage: number; replicas: number }
  | { kind: 'gpuCores'; stage: number; gpuCores: number };

/** What a controller reports each tick; the simulator scores `bottleneck` against ground truth. */
export interface TickReport {
  pipelineId: string;
  time: number;
  actions: ScalingAction[];
  /** Stage index the controller believes limits the pipeline, or null when it does not say. */
  bottleneck: number | null;
  reason?: string;
}

export interface ClusterPort {
  listPipelines(): Promise<PipelineSpec[]>;
  allocation(pipelineId: string): Promise<StageAllocation[]>;
  /** Apply absolute targets; rejects with an UpstreamError when the cluster refuses. */
  apply(pipelineId: string, action: ScalingAction): Promise<void>;
  /** Publish what was decided (status, Event); never changes the allocation. */
  report(pipelineId: string, report: TickReport): Promise<void>;
}

/** SAIR and every baseline share this shape; the simulator and `sair policy` drive it. */
export interface Controller {
  readonly name: string;
  /** How often the driver calls tick, in clock ms. */
  readonly intervalMs: number;
  tick(pipeline: PipelineSpec): Promise<TickReport>;
}

/**
 * Where the experience snapshot lives between leaders: bytes in, bytes out. `save` replaces the
 * whole snapshot atomically (a reader sees the old one or the new one, never a mix) and is refused
 * unless the caller holds a valid lease; `load` gives the latest, or null when there is none.
 */
export interface SnapshotStore {
  load(): Promise<Uint8Array | null>;
  save(data: Uint8Array): Promise<void>;
}
