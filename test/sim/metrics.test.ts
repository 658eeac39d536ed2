// The Prometheus-like metrics port: data appear only at scrapes, aggregated over the window.
import { describe, expect, it } from '@jest/globals';
import { SimCluster } from '../../src/sim/cluster.js';
import { SimMetrics } from '../../src/sim/metrics.js';
import { parsePipeline, pipelineSpec } from '../../src/sim/pipeline.js';
import { Simulation } from '../../src/sim/simulator.js';
import { parseWorkload } from '../../src/sim/workload.js';

function setup(rate: number, replicas: number[]) {
  const pipeline = parsePipeline({
    name: 'm',
    sloP99Ms: 100,
    requestTimeoutMs: 2000,
    stages: [
      { name: 'a', kind: 'cpu', service: { baseMs: 0, perItemMs: 10 }, replicas: { min: 0, initial: replicas[0]!, max: 10 } },
      { name: 'b', kind: 'gpu', service: { baseMs: 4, perItemMs: 1 }, maxBatch: 8, batchTimeoutMs: 5, replicas: { min: 0, initial: replicas[1]!, max: 10 }, gpuCores: { initial: 50 } },
    ],
  });
  const spec = pipelineSpec(pipeline);
  const workload = parseWorkload({ kind: 'poisson', rate }, { referenceRate: 1, seed: 1 });
  const holder: { metrics?: SimMetrics } = {};
  const sim = new Simulation({ pipeline, workload, seed: 3, durationMs: 600_000, scrapeIntervalMs: 15_000, onScrape: (b) => holder.metrics?.record(b) });
  const cluster = new SimCluster(sim, spec);
  const metrics = new SimMetrics(sim, cluster, spec, { scrapeIntervalMs: 15_000, windowMs: 30_000, lagMs: 0 });
  holder.metrics = metrics;
  return { sim, spec, cluster, metrics };
}

describe('SimMetrics', () => {
  it('has no data before the first scrape, then lags to the last scrape and covers the window', async () => {
    const { sim, spec, metrics } = setup(50, [1, 1]);
    sim.runUntil(10_000);
    const empty = await metrics.observe(spec);
    expect(empty.windowMs).toBe(0);
    expect(empty.p99Ms).toBeNull();
    expect(empty.stages[0]!.utilization).toBeNull();
    expect(empty.allocation[1]).toEqual({ replicas: 1, readyReplicas: 1, gpuCores: 50, pendingReplicas: 0, clampedReplicas: 0 });

    sim.runUntil(20_000);
    const first = await metrics.observe(spec);
    expect(first.time).toBe(15_000);
    expect(first.windowMs).toBe(15_000);

    // The newest scrape interval alone (irate): what the window adds to the first scrape's count.
    sim.runUntil(35_000);
    const second = await metrics.observe(spec);
    expect(second.recentWindowMs).toBe(15_000);
    expect(second.recentArrivalRate! * 15 + first.arrivalRate! * 15).toBeCloseTo(second.arrivalRate! * 30, 6);

    sim.runUntil(59_000);
    const o = await metrics.observe(spec);
    expect(o.time).toBe(45_000);
    expect(o.windowMs).toBe(30_000);
    expect(o.arrivalRate!).toBeGreaterThan(40);
    expect(o.arrivalRate!).toBeLessThan(60);
    // Stage a: 50/s x 10 ms = 0.5 busy; its capacity is 100 per busy second.
    expect(o.stages[0]!.utilization!).toBeGreaterThan(0.4);
    expect(o.stages[0]!.utilization!).toBeLessThan(0.6);
    expect(o.stages[0]!.capacityPerReplica!).toBeGreaterThan(90);
    expect(o.stages[0]!.capacityPerReplica!).toBeLessThan(110);
    expect(o.stages[0]!.latencyP99Ms!).toBeGreaterThan(o.stages[0]!.latencyP50Ms!);
    expect(o.sloViolation!).toBeLessThan(0.5);
    // Packed: two replicas and the one whole GPU the 50 % replica sits on; share-priced: half a GPU.
    expect(o.costRate).toBeCloseTo(2 * 0.05 + 1 * 2.5, 10);
    expect(o.shareCostRate).toBeCloseTo(2 * 0.05 + 0.5 * 2.5, 10);
    // No cluster section: two 8-GPU nodes, one GPU per replica stage b's bounds allow (10).
    expect(o.gpuPacking).toEqual({ gpus: [{ used: 50, free: 50 }], idleGpus: 15 });
    expect(o.billedGpus).toBe(1);
    await expect(metrics.observe({ ...spec, id: 'other' })).rejects.toThrow(/no series for pipeline other/);
  });

  it('shows an overloaded stage: growing queue, drops, infinite P99; and missing utilization without ready replicas', async () => {
    const { sim, spec, metrics } = setup(150, [1, 0]);
    sim.runUntil(20_000);
    // 50/s more than stage a serves; requests older than the 2 s timeout are dropped at the head.
    expect((await metrics.observe(spec)).stages[0]!.queueGrowth!).toBeGreaterThan(10);
    sim.runUntil(120_000);
    const o = await metrics.observe(spec);
    expect(o.stages[0]!.queueLength!).toBeGreaterThan(100);
    expect(o.stages[0]!.dropRate!).toBeGreaterThan(0);
    expect(o.stages[0]!.utilization!).toBeGreaterThan(0.99);
    expect(o.stages[1]!.utilization).toBeNull();
    expect(o.stages[1]!.throughput).toBe(0);
    // Stage b has no replica at all; its waiting requests still time out, at the scrapes.
    expect(o.stages[1]!.dropRate!).toBeGreaterThan(10);
    expect(sim.arrived).toBe(sim.completed + sim.dropped + sim.inSystem);
    expect(o.p99Ms).toBe(Infinity);
    expect(o.sloViolation).toBe(1);
  });

  it('reports mean batch size and mean batch service time over the window, like Triton counters', async () => {
    const { sim, spec, metrics } = setup(200, [3, 1]);
    sim.runUntil(59_000);
    const o = await metrics.observe(spec);
    // Stage a serves one item per batch in 10 ms.
    expect(o.stages[0]!.batchSize).toBe(1);
    expect(o.stages[0]!.batchServiceMs!).toBeGreaterThan(9.5);
    expect(o.stages[0]!.batchServiceMs!).toBeLessThan(10.5);
    // Stage b batches (up to 8) at a 50 % share: t(b) = (4 + b) / 0.5 ms, with 10 % noise per batch.
    const b = o.stages[1]!.batchSize!;
    expect(b).toBeGreaterThan(1);
    expect(b).toBeLessThanOrEqual(8);
    expect(o.stages[1]!.batchServiceMs! / ((4 + b) / 0.5)).toBeGreaterThan(0.95);
    expect(o.stages[1]!.batchServiceMs! / ((4 + b) / 0.5)).toBeLessThan(1.05);
    // No batch finished in the window: no figure rather than a zero.
    const idle = setup(0.001, [1, 1]);
    idle.sim.runUntil(59_000);
    const none = await idle.metrics.observe(idle.spec);
    expect(none.stages[1]!.batchSize).toBeNull();
    expect(none.stages[1]!.batchServiceMs).toBeNull();
  });
});
