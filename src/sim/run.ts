// The runner: one scenario (pipeline x workload x controller x seed) from start to finish.
// It builds the simulation and the ports, calls the controller every intervalMs of virtual time
// (letting it sleep in virtual time), scores its bottleneck reports against the ground truth and
// returns the run's measures. This is the API the policy benchmark calls:
//   runScenario({ pipeline: 'nlp-chain', workload: 'diurnal', controller: (ports) => myController(ports), seed: 1, durationMs: 3_600_000 })
import { ConfigError, ValidationError, errorMessage } from '../common/errors.js';
import type { Clock, ClusterPort, Controller, MetricsPort, PipelineSpec, TickReport } from '../core/ports.js';
import { BUILTIN_PIPELINES, builtinPipeline } from './builtin-pipelines.js';
import { BUILTIN_WORKLOADS, builtinWorkload } from './builtin-workloads.js';
import { VirtualClock } from './clock.js';
import { SimCluster } from './cluster.js';
import { quantile } from './histogram.js';
import { SimMetrics } from './metrics.js';
import type { ClusterShape } from './placement.js';
import { loadPipelineFile, pipelineSpec, type PipelineModel } from './pipeline.js';
import { Simulation, type ScrapeBucket } from './simulator.js';
import { buildWorkload, loadWorkloadFile, type Workload, type WorkloadFile } from './workload.js';

/**
 * What only the oracle and static-peak baselines may read: the model and the future workload.
 * A fair controller (SAIR, HPA, KEDA-like, threshold, VPA-like) must use the ports alone.
 */
export interface SimKnowledge {
  model: PipelineModel;
  workload: Workload;
  durationMs: number;
}

/** The deployment as it stands at time 0; callable only while the factory runs. */
export interface SimProvisioning {
  /** Start a stage with `replicas` Ready replicas (and, for GPU stages, this share in percent). */
  provision(stage: number, replicas: number, gpuCores?: number): void;
}

export interface SimPorts {
  cluster: ClusterPort;
  metrics: MetricsPort;
  clock: Clock;
  /** The pipeline as `cluster.listPipelines()` returns it. */
  pipeline: PipelineSpec;
  knowledge: SimKnowledge;
  /** The starting allocation; without a call, each stage starts at its `replicas.initial`. */
  initial: SimProvisioning;
}

export type ControllerFactory = (ports: SimPorts) => Controller;

export interface ScenarioOptions {
  /** A built-in pipeline name, a YAML file path, or a model. */
  pipeline: string | PipelineModel;
  /** A built-in workload name, a YAML file path, a validated workload file, or a workload. */
  workload: string | WorkloadFile | Workload;
  controller: ControllerFactory;
  seed?: number;
  durationMs: number;
  /** Prometheus-like scrape interval (default 15 s), query window (default 30 s) and extra lag (default 0). */
  scrapeIntervalMs?: number;
  windowMs?: number;
  lagMs?: number;
  /** Called with the fraction done, at most once per scrape. */
  onProgress?: (fraction: number) => void;
}

export interface StageResult {
  index: number;
  name: string;
  kind: 'cpu' | 'gpu';
  /** Busy fraction of ready replicas over the run. */
  utilization: number | null;
  meanReplicas: number;
  meanReadyReplicas: number;
  /** Mean GPU share of this stage's replicas, percent; null for CPU stages. */
  meanGpuCores: number | null;
  /** Mean replicas Pending because no GPU had room for them (counted in meanReplicas too). */
  meanPendingReplicas: number;
  /** Share changes the node agent clamped because the replica's GPU had no room for all of it. */
  clampedShareChanges: number;
  arrivals: number;
  completions: number;
  drops: number;
  throughputPerS: number;
  meanWaitMs: number | null;
  meanSojournMs: number | null;
  /** Time-average number of items in the stage (Little's L). */
  meanInStage: number;
  /** Items leaving the stage per second, served or discarded unserved (Little's lambda). */
  departuresPerS: number;
  /** Mean time in the stage over every departure (Little's W), ms. */
  meanTimeInStageMs: number | null;
  /** Fraction of ticks at which this stage was the ground-truth bottleneck. */
  bottleneckShare: number;
}

export interface TimelinePoint {
  /** Scrape time, ms from the start. */
  t: number;
  arrivalRate: number;
  throughput: number;
  p99Ms: number | null;
  sloViolation: number | null;
  /** Share-priced $/hour at the scrape (every replica at its share of gpuHour). */
  costRate: number;
  /** Packed $/hour at the scrape (whole GPUs in use, replicas placed). */
  packedCostRate: number;
  /** GPUs hosting at least one replica. */
  gpusInUse: number;
  /** Per stage, replicas Pending because no GPU has room. */
  pendingReplicas: number[];
  replicas: number[];
  readyReplicas: number[];
  gpuCores: (number | null)[];
  queue: number[];
}

export interface RunCost {
  dollars: number;
  per1kRequests: number | null;
  meanRatePerHour: number;
}

export interface RunResult {
  pipeline: string;
  workload: string;
  controller: string;
  seed: number;
  durationMs: number;
  sloP99Ms: number;
  requests: { arrived: number; completed: number; dropped: number; inSystem: number; staleInSystem: number };
  /** End-to-end latency over finished requests; drops and requests stuck past the SLO count as infinite. */
  latency: { p50Ms: number; p95Ms: number; p99Ms: number; meanMs: number | null };
  sloViolationRate: number;
  sloAttainment: number;
  /**
   * Share-priced cost (what every figure before packing was): each replica that exists costs
   * replicaHour + gpuHour x share. `packed` is the cost as a cluster bills it: gpuHour for each
   * whole GPU hosting at least one replica, replicaHour for each replica placed.
   */
  cost: RunCost & { packed: RunCost };
  /** The cluster the GPU replicas were packed onto, and how full it got. */
  cluster: {
    gpuNodes: ClusterShape['gpuNodes'];
    gpusPerNode: number;
    slotPercent: number;
    placement: 'binpack' | 'spread';
    meanGpusInUse: number;
    peakGpusInUse: number;
    /** Mean replicas Pending for lack of GPU room, over all stages. */
    meanPendingReplicas: number;
    clampedShareChanges: number;
  };
  stages: StageResult[];
  bottleneck: {
    /** Ground-truth bottleneck stage at each tick. */
    groundTruth: number[];
    /** What the controller reported at each tick (null where it did not say). */
    reported: (number | null)[];
    /** Matches over ticks where the controller named a stage; null when it never did. */
    accuracy: number | null;
    reportedTicks: number;
  };
  ticks: number;
  tickErrors: number;
  lastTickError?: string;
  events: number;
  wallMs: number;
  timeline: TimelinePoint[];
}

/** Resolve a pipeline argument: a built-in name or a YAML file. */
export function resolvePipelineArg(arg: string | PipelineModel): PipelineModel {
  if (typeof arg !== 'string') return arg;
  const builtin = builtinPipeline(arg);
  if (builtin) return builtin;
  if (!/[./]/.test(arg)) {
    throw new ConfigError([new ValidationError('--pipeline', `a built-in pipeline (${BUILTIN_PIPELINES.join(', ')}) or a YAML file path`, arg)]);
  }
  return loadPipelineFile(arg);
}

/** Resolve a workload argument for a pipeline: a built-in name, a YAML file, a validated file or a workload. */
export function resolveWorkloadArg(arg: string | WorkloadFile | Workload, model: PipelineModel, seed: number): Workload {
  if (typeof arg === 'object') return isWorkload(arg) ? arg : buildWorkload(arg, { referenceRate: model.referenceRate, seed }, arg.name ?? arg.kind);
  const builtin = builtinWorkload(arg, { referenceRate: model.referenceRate, seed });
  if (builtin) return builtin;
  if (!/[./]/.test(arg)) {
    throw new ConfigError([new ValidationError('--workload', `a built-in workload (${BUILTIN_WORKLOADS.join(', ')}) or a YAML file path`, arg)]);
  }
  return loadWorkloadFile(arg, { referenceRate: model.referenceRate, seed });
}

function isWorkload(w: WorkloadFile | Workload): w is Workload {
  return typeof (w as Workload).arrivals === 'function';
}

export async function runScenario(opts: ScenarioOptions): Promise<RunResult> {
  const started = performance.now();
  const seed = opts.seed ?? 1;
  if (!(opts.durationMs > 0)) throw new ConfigError([new ValidationError('durationMs', 'a duration > 0 ms', opts.durationMs)]);
  const model = resolvePipelineArg(opts.pipeline);
  const workload = resolveWorkloadArg(opts.workload, model, seed);
  const scrapeIntervalMs = opts.scrapeIntervalMs ?? 15_000;
  const windowMs = Math.max(opts.windowMs ?? 30_000, scrapeIntervalMs);
  const lagMs = opts.lagMs ?? 0;
  const spec = pipelineSpec(model);

  const timeline: TimelinePoint[] = [];
  let metrics: SimMetrics | null = null;
  const onScrape = (b: ScrapeBucket): void => {
    metrics?.record(b);
    timeline.push(timelinePoint(b, scrapeIntervalMs, sim));
    opts.onProgress?.(b.time / opts.durationMs);
  };
  const sim = new Simulation({ pipeline: model, workload, seed, durationMs: opts.durationMs, scrapeIntervalMs, onScrape });
  const reports: TickReport[] = [];
  const cluster = new SimCluster(sim, spec, (r) => reports.push(r));
  metrics = new SimMetrics(sim, cluster, spec, { scrapeIntervalMs, windowMs, lagMs });
  const clock = new VirtualClock(() => sim.now);
  const initial: SimProvisioning = { provision: (stage, replicas, gpuCores) => sim.provision(stage, replicas, gpuCores) };
  const controller = opts.controller({ cluster, metrics, clock, pipeline: structuredClone(spec), knowledge: { model, workload, durationMs: opts.durationMs }, initial });
  const interval = controller.intervalMs;
  if (!(interval > 0)) throw new ConfigError([new ValidationError('controller.intervalMs', 'a tick interval > 0 ms', interval)]);

  const groundTruth: number[] = [];
  const reported: (number | null)[] = [];
  let ticks = 0;
  let tickErrors = 0;
  let lastTickError: string | undefined;
  let nextTick = interval;
  while (nextTick < opts.durationMs) {
    sim.runUntil(nextTick);
    const tickStart = sim.now;
    const truth = sim.groundTruthBottleneck(tickStart - interval).stage;
    const before = reports.length;
    let report: TickReport | undefined;
    try {
      report = await driveTick(controller.tick(structuredClone(spec)), clock, sim, opts.durationMs);
    } catch (err) {
      tickErrors++;
      lastTickError = errorMessage(err);
    }
    ticks++;
    groundTruth.push(truth);
    // A controller may return its report, publish it through cluster.report, or both.
    const r = report ?? reports[before];
    reported.push(r && Number.isInteger(r.bottleneck) ? r.bottleneck : null);
    nextTick = Math.max(nextTick + interval, sim.now);
    if (sim.now >= opts.durationMs) break;
  }
  sim.finish();
  const closable = controller as Controller & { close?: () => Promise<void> };
  if (typeof closable.close === 'function') await closable.close();

  return summarize({
    sim,
    model,
    workload,
    controller: controller.name,
    seed,
    durationMs: opts.durationMs,
    groundTruth,
    reported,
    ticks,
    tickErrors,
    lastTickError,
    timeline,
    wallMs: performance.now() - started,
  });
}

/**
 * Await a tick while letting it sleep in virtual time: whenever the tick is parked on
 * clock.sleep, advance the simulation to the earliest wake-up and resolve it. Real I/O (an LLM
 * over HTTP) is awaited as is; the simulation does not move while it is in flight.
 */
async function driveTick(tick: Promise<TickReport>, clock: VirtualClock, sim: Simulation, endMs: number): Promise<TickReport> {
  let done = false;
  let failed = false;
  let value: TickReport | undefined;
  let error: unknown;
  const settled = tick.then(
    (v) => {
      done = true;
      value = v;
    },
    (e: unknown) => {
      done = true;
      failed = true;
      error = e;
    },
  );
  for (;;) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (done) break;
    const wake = clock.nextWake();
    if (wake !== Infinity) {
      // A sleep past the end of the run wakes at the end; the run stops there.
      sim.runUntil(Math.min(wake, endMs));
      if (wake > endMs) clock.wakeNext();
      else clock.wakeDue();
      continue;
    }
    await Promise.race([settled, clock.sleepCalled()]);
    if (done) break;
  }
  if (failed) throw error;
  return value!;
}

function timelinePoint(b: ScrapeBucket, intervalMs: number, sim: Simulation): TimelinePoint {
  const seconds = intervalMs / 1000;
  const finished = b.completed + b.dropped;
  return {
    t: b.time,
    arrivalRate: b.arrivals / seconds,
    throughput: b.completed / seconds,
    p99Ms: quantile(b.latency, 0.99, b.dropped),
    sloViolation: finished > 0 ? (b.violations + b.dropped) / finished : null,
    costRate: sim.costRate,
    packedCostRate: sim.packedCostRate,
    gpusInUse: b.gpusInUse,
    pendingReplicas: b.pendingReplicas,
    replicas: b.replicas,
    readyReplicas: b.readyReplicas,
    gpuCores: b.gpuCores,
    queue: b.stages.map((s) => s.queueLength),
  };
}

interface SummaryInput {
  sim: Simulation;
  model: PipelineModel;
  workload: Workload;
  controller: string;
  seed: number;
  durationMs: number;
  groundTruth: number[];
  reported: (number | null)[];
  ticks: number;
  tickErrors: number;
  lastTickError: string | undefined;
  timeline: TimelinePoint[];
  wallMs: number;
}

function summarize(x: SummaryInput): RunResult {
  const { sim, model } = x;
  const lat = sim.allLatencies().sort();
  const stale = sim.staleInSystem();
  const infinite = sim.dropped + stale;
  const total = lat.length + infinite;
  const pct = (q: number): number => {
    if (total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * total));
    return rank <= lat.length ? lat[rank - 1]! : Infinity;
  };
  let sum = 0;
  for (const v of lat) sum += v;
  const violations = sim.violations + infinite;
  const violationRate = total > 0 ? violations / total : 0;
  const seconds = x.durationMs / 1000;
  const runCost = (dollars: number): RunCost => ({
    dollars,
    per1kRequests: sim.arrived > 0 ? (1000 * dollars) / sim.arrived : null,
    meanRatePerHour: (dollars * 3_600_000) / x.durationMs,
  });

  let reportedTicks = 0;
  let matches = 0;
  x.reported.forEach((r, i) => {
    if (r === null) return;
    reportedTicks++;
    if (r === x.groundTruth[i]) matches++;
  });

  const stages: StageResult[] = model.stages.map((s) => {
    const t = sim.stageTotals(s.index);
    return {
      index: s.index,
      name: s.name,
      kind: s.kind,
      utilization: t.readyMs > 0 ? t.busyReadyMs / t.readyMs : null,
      meanReplicas: t.chargedMs / x.durationMs,
      meanReadyReplicas: t.readyMs / x.durationMs,
      meanGpuCores: s.kind === 'gpu' && t.chargedMs > 0 ? (100 * t.shareMs) / t.chargedMs : null,
      meanPendingReplicas: t.unscheduledMs / x.durationMs,
      clampedShareChanges: t.clamps,
      arrivals: t.arrivals,
      completions: t.completions,
      drops: t.drops,
      throughputPerS: t.completions / seconds,
      meanWaitMs: t.started > 0 ? t.waitSumMs / t.started : null,
      meanSojournMs: t.completions > 0 ? t.sojournSumMs / t.completions : null,
      meanInStage: t.inStageMs / x.durationMs,
      departuresPerS: (t.completions + t.discarded) / seconds,
      meanTimeInStageMs: t.completions + t.discarded > 0 ? (t.sojournSumMs + t.discardedSumMs) / (t.completions + t.discarded) : null,
      bottleneckShare: x.ticks > 0 ? x.groundTruth.filter((g) => g === s.index).length / x.ticks : 0,
    };
  });

  return {
    pipeline: model.name,
    workload: x.workload.name,
    controller: x.controller,
    seed: x.seed,
    durationMs: x.durationMs,
    sloP99Ms: model.sloP99Ms,
    requests: { arrived: sim.arrived, completed: sim.completed, dropped: sim.dropped, inSystem: sim.inSystem, staleInSystem: stale },
    latency: { p50Ms: pct(0.5), p95Ms: pct(0.95), p99Ms: pct(0.99), meanMs: lat.length > 0 ? sum / lat.length : null },
    sloViolationRate: violationRate,
    sloAttainment: 1 - violationRate,
    cost: { ...runCost(sim.cost), packed: runCost(sim.packedCost) },
    cluster: {
      ...model.cluster,
      ...sim.gpuUse(),
      meanPendingReplicas: stages.reduce((n, s) => n + s.meanPendingReplicas, 0),
      clampedShareChanges: stages.reduce((n, s) => n + s.clampedShareChanges, 0),
    },
    stages,
    bottleneck: { groundTruth: x.groundTruth, reported: x.reported, accuracy: reportedTicks > 0 ? matches / reportedTicks : null, reportedTicks },
    ticks: x.ticks,
    tickErrors: x.tickErrors,
    ...(x.lastTickError !== undefined ? { lastTickError: x.lastTickError } : {}),
    events: sim.events,
    wallMs: x.wallMs,
    timeline: x.timeline,
  };
}
