// MetricsPort over the simulation, shaped like Prometheus: counters are scraped every
// scrapeIntervalMs, and an observation aggregates the last windowMs of complete scrapes, as a
// rate(...[window]) query would. Data become visible only at scrape times (plus lagMs, e.g. a
// rule-evaluation delay), so a controller sees the world up to one scrape interval late. The cost
// rate and GPU packing are the cluster's state now, as the allocation is.
import type { MetricsPort, PipelineObservation, PipelineSpec, StageMetrics } from '../core/ports.js';
import { UpstreamError } from '../common/errors.js';
import type { SimCluster } from './cluster.js';
import { addInto, newHistogram, quantile } from './histogram.js';
import type { ScrapeBucket, Simulation } from './simulator.js';

export interface MetricsOptions {
  scrapeIntervalMs: number;
  windowMs: number;
  lagMs: number;
}

export class SimMetrics implements MetricsPort {
  private readonly buckets: ScrapeBucket[] = [];
  private readonly keep: number;

  constructor(
    private readonly sim: Simulation,
    private readonly cluster: SimCluster,
    private readonly spec: PipelineSpec,
    private readonly opts: MetricsOptions,
  ) {
    this.keep = Math.ceil(opts.windowMs / opts.scrapeIntervalMs) + Math.ceil(opts.lagMs / opts.scrapeIntervalMs) + 2;
  }

  /** Fed by the simulation at every scrape. */
  record(bucket: ScrapeBucket): void {
    this.buckets.push(bucket);
    if (this.buckets.length > this.keep) this.buckets.shift();
  }

  observe(pipeline: PipelineSpec): Promise<PipelineObservation> {
    if (pipeline.id !== this.spec.id) {
      return Promise.reject(new UpstreamError('simulated Prometheus', `no series for pipeline ${pipeline.id}; this simulation runs ${this.spec.id}`, 404));
    }
    return Promise.resolve(this.observeNow());
  }

  observeNow(): PipelineObservation {
    const visibleUntil = this.sim.now - this.opts.lagMs;
    let last = this.buckets.length - 1;
    while (last >= 0 && this.buckets[last]!.time > visibleUntil) last--;
    const n = this.spec.stages.length;
    const allocation = this.cluster.currentAllocation();
    const packing = this.sim.gpuPacking();
    const costs = {
      costRate: this.sim.packedCostRate,
      shareCostRate: this.sim.costRate,
      billedGpus: packing.gpus.length,
      gpuPacking: { gpus: packing.gpus, idleGpus: Number.isFinite(packing.idleGpus) ? packing.idleGpus : null },
    };
    if (last < 0) {
      return {
        time: this.sim.now,
        windowMs: 0,
        stages: Array.from({ length: n }, () => emptyStage()),
        allocation,
        p99Ms: null,
        arrivalRate: null,
        sloViolation: null,
        ...costs,
      };
    }
    const end = this.buckets[last]!;
    const startTime = Math.max(0, end.time - this.opts.windowMs);
    let first = last;
    while (first > 0 && this.buckets[first - 1]!.time > startTime) first--;
    const window = this.buckets.slice(first, last + 1);
    const before = first > 0 && this.buckets[first - 1]!.time === startTime ? this.buckets[first - 1] : undefined;
    const windowMs = end.time - (window[0]!.time - this.opts.scrapeIntervalMs);
    const seconds = windowMs / 1000;

    const stages: StageMetrics[] = [];
    for (let s = 0; s < n; s++) {
      let arrivals = 0;
      let completions = 0;
      let drops = 0;
      let busyReady = 0;
      let busyAll = 0;
      let ready = 0;
      let batchesDone = 0;
      let batchItems = 0;
      let batchServiceMs = 0;
      const hist = newHistogram();
      for (const b of window) {
        const sb = b.stages[s]!;
        arrivals += sb.arrivals;
        completions += sb.completions;
        drops += sb.drops;
        busyReady += sb.busyReadyMs;
        busyAll += sb.busyAllMs;
        ready += sb.readyMs;
        batchesDone += sb.batchesDone;
        batchItems += sb.batchItems;
        batchServiceMs += sb.batchServiceMs;
        addInto(hist, sb.latency);
      }
      const queueEnd = end.stages[s]!.queueLength;
      const queueStart = before ? before.stages[s]!.queueLength : window[0]!.index === 1 ? 0 : null;
      stages.push({
        arrivalRate: arrivals / seconds,
        throughput: completions / seconds,
        queueLength: queueEnd,
        queueGrowth: queueStart === null ? null : (queueEnd - queueStart) / seconds,
        // Like the HPA's resource metrics: missing when no pod was ready to report.
        utilization: ready > 0 ? Math.min(1, busyReady / ready) : null,
        latencyP50Ms: quantile(hist, 0.5),
        latencyP99Ms: quantile(hist, 0.99),
        capacityPerReplica: busyAll > 0 ? completions / (busyAll / 1000) : null,
        dropRate: drops / seconds,
        // Like Triton's execution count and compute duration counters: batches finished in the window.
        batchSize: batchesDone > 0 ? batchItems / batchesDone : null,
        batchServiceMs: batchesDone > 0 ? batchServiceMs / batchesDone : null,
      });
    }
    let arrivals = 0;
    let completed = 0;
    let dropped = 0;
    let violations = 0;
    const e2e = newHistogram();
    for (const b of window) {
      arrivals += b.arrivals;
      completed += b.completed;
      dropped += b.dropped;
      violations += b.violations;
      addInto(e2e, b.latency);
    }
    const finished = completed + dropped;
    return {
      time: end.time,
      windowMs,
      stages,
      allocation,
      p99Ms: quantile(e2e, 0.99, dropped),
      arrivalRate: arrivals / seconds,
      recentArrivalRate: end.arrivals / (this.opts.scrapeIntervalMs / 1000),
      recentWindowMs: this.opts.scrapeIntervalMs,
      sloViolation: finished > 0 ? (violations + dropped) / finished : null,
      ...costs,
    };
  }
}

function emptyStage(): StageMetrics {
  return {
    arrivalRate: null,
    throughput: null,
    queueLength: null,
    queueGrowth: null,
    utilization: null,
    latencyP50Ms: null,
    latencyP99Ms: null,
    capacityPerReplica: null,
    dropRate: null,
    batchSize: null,
    batchServiceMs: null,
  };
}
