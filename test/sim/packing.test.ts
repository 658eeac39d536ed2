// The simulator's cluster packs GPU replicas onto whole GPUs (src/sim/placement.ts, used by
// src/sim/simulator.ts): hand-made cases of placement, Pending for room, clamped share rises, the
// two costs and a GPU stranded by a scale-down (nothing repacks; the benches' strandedGpus counts
// it); and a conservation check (no GPU above 100 %) at every scrape of long runs.
import { describe, expect, it } from '@jest/globals';
import type { Controller, PipelineSpec, TickReport } from '../../src/core/ports.js';
import { BASELINES } from '../../src/sim/baselines/index.js';
import { builtinPipeline } from '../../src/sim/builtin-pipelines.js';
import { builtinWorkload } from '../../src/sim/builtin-workloads.js';
import { VirtualClock } from '../../src/sim/clock.js';
import { SimCluster } from '../../src/sim/cluster.js';
import { SimMetrics } from '../../src/sim/metrics.js';
import { parsePipeline, pipelineSpec, type PipelineModel } from '../../src/sim/pipeline.js';
import { Rng } from '../../src/sim/rng.js';
import { runScenario, type ControllerFactory } from '../../src/sim/run.js';
import { Simulation } from '../../src/sim/simulator.js';
import { parseWorkload } from '../../src/sim/workload.js';
import { clusterFlag, onCluster, suiteCells } from '../../bench/cells.js';
import { strandedGpus } from '../../bench/stranded.js';

const COST = { gpuHour: 2, replicaHour: 0.1 };

/** One GPU stage at 40 % on one node of two GPUs, no scheduling delay, 1 s cold start. */
function twoGpus(initial: number, cluster: Record<string, unknown> = { gpuNodes: 1, gpusPerNode: 2 }): PipelineModel {
  return parsePipeline({
    name: 'packed',
    sloP99Ms: 1000,
    cost: COST,
    schedulingDelayMs: 0,
    cluster,
    stages: [
      {
        name: 'gpu',
        kind: 'gpu',
        service: { baseMs: 5, perItemMs: 1 },
        coldStartMs: 1000,
        replicas: { min: 0, initial, max: 8 },
        gpuCores: { initial: 40 },
      },
    ],
  });
}

function simOf(pipeline: PipelineModel): Simulation {
  const workload = parseWorkload({ kind: 'poisson', rate: 1 }, { referenceRate: 1, seed: 1 });
  return new Simulation({ pipeline, workload, seed: 1, durationMs: 3_600_000, scrapeIntervalMs: 15_000 });
}

describe('GPU packing in the simulator', () => {
  it('packs three replicas at 40 % onto two GPUs and bills the two whole GPUs', () => {
    const sim = simOf(twoGpus(3));
    expect(sim.gpuPacking()).toEqual({ gpus: [{ used: 80, free: 20 }, { used: 40, free: 60 }], idleGpus: 0 });
    expect(sim.packedCostRate).toBeCloseTo(2 * COST.gpuHour + 3 * COST.replicaHour, 12);
    expect(sim.costRate).toBeCloseTo(3 * (COST.replicaHour + 0.4 * COST.gpuHour), 12);
  });

  it('leaves a replica with no room Pending (not ready, not billed) and places it when shares free up', () => {
    const sim = simOf(twoGpus(3));
    sim.runUntil(10_000);
    sim.setReplicas(0, 5);
    expect(sim.allocation(0)).toMatchObject({ replicas: 5, readyReplicas: 3, pendingReplicas: 1 });
    sim.runUntil(20_000);
    // The fourth started on GPU 1; the fifth still waits, and costs nothing packed.
    expect(sim.allocation(0)).toMatchObject({ readyReplicas: 4, pendingReplicas: 1 });
    expect(sim.gpuPacking().gpus).toEqual([{ used: 80, free: 20 }, { used: 80, free: 20 }]);
    expect(sim.packedCostRate).toBeCloseTo(2 * COST.gpuHour + 4 * COST.replicaHour, 12);
    // Share-priced, as before packing, charges every replica that exists.
    expect(sim.costRate).toBeCloseTo(5 * (COST.replicaHour + 0.4 * COST.gpuHour), 12);

    sim.setGpuCores(0, 30);
    expect(sim.allocation(0)).toMatchObject({ pendingReplicas: 0, readyReplicas: 4 });
    expect(sim.gpuPacking().gpus).toEqual([{ used: 90, free: 10 }, { used: 60, free: 40 }]);
    sim.runUntil(30_000);
    expect(sim.allocation(0)).toMatchObject({ readyReplicas: 5, pendingReplicas: 0 });
  });

  it('places a Pending replica when another leaves, and scales a Pending one down first', () => {
    const sim = simOf(twoGpus(4, { gpuNodes: 1, gpusPerNode: 2 }));
    sim.setReplicas(0, 6);
    expect(sim.allocation(0).pendingReplicas).toBe(2);
    sim.setReplicas(0, 5);
    // The ReplicaSet removes an unscheduled replica before any other.
    expect(sim.allocation(0)).toMatchObject({ replicas: 5, readyReplicas: 4, pendingReplicas: 1 });
    sim.setReplicas(0, 4);
    expect(sim.allocation(0)).toMatchObject({ readyReplicas: 4, pendingReplicas: 0 });
    sim.setReplicas(0, 5);
    expect(sim.allocation(0).pendingReplicas).toBe(1);
    sim.setReplicas(0, 3);
    expect(sim.allocation(0)).toMatchObject({ replicas: 3, readyReplicas: 3, pendingReplicas: 0 });
    sim.setReplicas(0, 4);
    expect(sim.allocation(0).pendingReplicas).toBe(0);
  });

  it('clamps a share rise a GPU has no room for, and gives the rest when room frees up', () => {
    const sim = simOf(twoGpus(4));
    sim.runUntil(1000);
    sim.setGpuCores(0, 60);
    // On each GPU the first replica gets 60 %, the second what is left: 40 %.
    expect(sim.allocation(0)).toMatchObject({ gpuCores: 60, clampedReplicas: 2 });
    expect(sim.gpuPacking().gpus).toEqual([{ used: 100, free: 0 }, { used: 100, free: 0 }]);
    expect(sim.stageTotals(0).clamps).toBe(2);
    // The cluster port reports it as the Prometheus adapter does: the least share enforced, and the one asked.
    const spec = pipelineSpec(twoGpus(4));
    expect(new SimCluster(sim, spec).currentAllocation()[0]).toMatchObject({ gpuCores: 40, gpuCoresAsked: 60, clampedReplicas: 2 });
    sim.setGpuCores(0, 50);
    expect(sim.allocation(0)).toMatchObject({ clampedReplicas: 0 });
    expect(new SimCluster(sim, spec).currentAllocation()[0]).not.toHaveProperty('gpuCoresAsked');
    expect(sim.gpuPacking().gpus).toEqual([{ used: 100, free: 0 }, { used: 100, free: 0 }]);

    // Two stages on one GPU: a clamped replica gets its full share when its neighbour leaves.
    const pipeline = parsePipeline({
      name: 'neighbours',
      sloP99Ms: 1000,
      cluster: { gpuNodes: 1, gpusPerNode: 1 },
      stages: ['x', 'y'].map((name) => ({ name, kind: 'gpu', service: { baseMs: 5, perItemMs: 1 }, replicas: { min: 0, initial: 1, max: 2 }, gpuCores: { initial: 40 } })),
    });
    const two = simOf(pipeline);
    two.setGpuCores(0, 80);
    expect(two.allocation(0)).toMatchObject({ gpuCores: 80, clampedReplicas: 1 });
    expect(two.gpuPacking().gpus).toEqual([{ used: 100, free: 0 }]);
    two.setReplicas(1, 0);
    expect(two.allocation(0)).toMatchObject({ clampedReplicas: 0 });
    expect(two.gpuPacking().gpus).toEqual([{ used: 80, free: 20 }]);
  });

  it('adds a GPU for a new replica on an autoscaled or unlimited cluster; only the unlimited one moves a replica whose share rise does not fit', () => {
    const autoscaled = simOf(twoGpus(2, { gpuNodes: 'autoscaled', gpusPerNode: 1 }));
    autoscaled.setReplicas(0, 3);
    expect(autoscaled.gpuPacking()).toEqual({ gpus: [{ used: 80, free: 20 }, { used: 40, free: 60 }], idleGpus: Infinity });
    expect(autoscaled.allocation(0).pendingReplicas).toBe(0);
    autoscaled.setGpuCores(0, 60);
    // Running replicas stay put, as under a node agent: one of the two on GPU 0 runs clamped at 40 %.
    expect(autoscaled.allocation(0)).toMatchObject({ gpuCores: 60, enforcedGpuCores: 40, clampedReplicas: 1 });
    expect(autoscaled.gpuPacking().gpus).toEqual([{ used: 100, free: 0 }, { used: 60, free: 40 }]);

    const unlimited = simOf(twoGpus(2, { gpuNodes: 'unlimited', gpusPerNode: 1 }));
    unlimited.setReplicas(0, 3);
    unlimited.setGpuCores(0, 60);
    // The idealized cluster moves the replica that does not fit to a third GPU instead.
    expect(unlimited.allocation(0)).toMatchObject({ gpuCores: 60, enforcedGpuCores: 60, clampedReplicas: 0 });
    expect(unlimited.gpuPacking().gpus.map((g) => g.used).sort()).toEqual([60, 60, 60]);
  });

  it('runs the benches\' cells on the nodes --cluster names, and refuses any other', () => {
    expect(onCluster('nlp-chain', clusterFlag(undefined))).toBe('nlp-chain');
    const moved = onCluster('nlp-chain', clusterFlag('autoscaled')) as PipelineModel;
    expect(moved.cluster).toEqual({ ...builtinPipeline('nlp-chain')!.cluster, gpuNodes: 'autoscaled' });
    expect(moved.stages).toEqual(builtinPipeline('nlp-chain')!.stages);
    expect(() => clusterFlag('8')).toThrow('--cluster: "8" is not "autoscaled" or "unlimited"');
    expect(() => onCluster('nope', 'autoscaled')).toThrow('--pipelines: "nope" is not the names of built-in pipelines');
  });

  it('names the benches\' cells: the built-in suites, generated scenarios by seed, and refuses a bad seed range', () => {
    expect(suiteCells(['paper', 'issue'])).toHaveLength(24);
    expect(suiteCells(['generated'], undefined, undefined, '1012:1014')).toEqual([['gen', '1012'], ['gen', '1013'], ['gen', '1014']]);
    expect(suiteCells(['paper', 'generated'])).toHaveLength(12 + 12);
    expect(suiteCells(['generated'], ['rag'], ['spike'], 'x')).toEqual([['rag', 'spike']]);
    expect(() => suiteCells(['generated'], undefined, undefined, '1011:1000')).toThrow('--generated-seeds: "1011:1000" is not FROM:TO');
    expect(() => suiteCells(['generated'], undefined, undefined, '1000')).toThrow('--generated-seeds');
  });

  it('keeps share-priced figures and counts GPUs with an unlimited cluster', async () => {
    const run = (cluster: Record<string, unknown>) =>
      runScenario({ pipeline: twoGpus(3, cluster), workload: { kind: 'poisson', rate: 20, relative: false }, controller: BASELINES['hpa']!.factory, seed: 2, durationMs: 900_000 });
    const unlimited = await run({ gpuNodes: 'unlimited', gpusPerNode: 2 });
    const big = await run({ gpuNodes: 8, gpusPerNode: 2 });
    expect(unlimited.cost.dollars).toBe(big.cost.dollars);
    expect(unlimited.cost.packed.dollars).toBe(big.cost.packed.dollars);
    expect(unlimited.cluster.meanPendingReplicas).toBe(0);
    expect(unlimited.cost.packed.dollars).toBeGreaterThan(unlimited.cost.dollars);
    const spread = await run({ gpuNodes: 'unlimited', gpusPerNode: 2, placement: 'spread' });
    expect(spread.cost.dollars).toBe(unlimited.cost.dollars);
    expect(spread.cluster.meanGpusInUse).toBeCloseTo(spread.stages[0]!.meanReplicas, 6);
    expect(spread.cost.packed.dollars).toBeGreaterThan(unlimited.cost.packed.dollars);
  });

  it('scales down the ready replica whose GPU it leaves emptiest, as the node agent\'s pod-deletion-cost makes a ReplicaSet do', () => {
    const sim = simOf(twoGpus(1));
    sim.setGpuCores(0, 70);
    sim.setReplicas(0, 2); // 70 % does not fit beside the first: the second goes to GPU 1
    sim.runUntil(5000);
    sim.setGpuCores(0, 40);
    sim.setReplicas(0, 3); // the newest goes beside the first, on GPU 0, and is the last one ready
    sim.runUntil(10_000);
    expect(sim.gpuPacking().gpus).toEqual([{ used: 80, free: 20 }, { used: 40, free: 60 }]);
    expect(sim.allocation(0).readyReplicas).toBe(3);
    sim.setReplicas(0, 2);
    // Not the newest: the one alone on GPU 1 (deletion cost 0 against 40), so GPU 1 is free.
    expect(sim.gpuPacking()).toEqual({ gpus: [{ used: 80, free: 20 }], idleGpus: 1 });
  });

  it('repacks nothing after a scale-down: the GPU left stranded stays billed, and the benches count it', async () => {
    // x: two replicas at 40 %, y: one at 30 %; binpack puts both x on GPU 0 and y on GPU 1.
    const pipeline = parsePipeline({
      name: 'strand',
      sloP99Ms: 1000,
      cost: COST,
      schedulingDelayMs: 0,
      cluster: { gpuNodes: 'unlimited', gpusPerNode: 8 },
      stages: [
        { name: 'x', kind: 'gpu', service: { baseMs: 5, perItemMs: 1 }, replicas: { min: 1, initial: 2, max: 2 }, gpuCores: { initial: 40 } },
        { name: 'y', kind: 'gpu', service: { baseMs: 5, perItemMs: 1 }, replicas: { min: 1, initial: 1, max: 1 }, gpuCores: { initial: 30 } },
      ],
    });
    /** Scales x to one replica at its first tick (60 s), or never. */
    const trimmer =
      (trim: boolean): ControllerFactory =>
      ({ cluster }) => ({
        name: trim ? 'trim' : 'hold',
        intervalMs: 60_000,
        async tick(p): Promise<TickReport> {
          if (trim) await cluster.apply(p.id, { kind: 'replicas', stage: 0, replicas: 1 });
          return { pipelineId: p.id, time: 0, actions: [], bottleneck: null };
        },
      });
    const run = (trim: boolean) => runScenario({ pipeline, workload: { kind: 'poisson', rate: 5, relative: false }, controller: trimmer(trim), seed: 1, durationMs: 600_000 });
    const trimmed = await run(true);
    const last = trimmed.timeline.at(-1)!;
    // 40 % and 30 % would share one GPU, but the replica on GPU 1 never moves: two stay billed.
    expect(last).toMatchObject({ replicas: [1, 1], gpusInUse: 2 });
    expect(last.packedCostRate).toBeCloseTo(2 * COST.gpuHour + 2 * COST.replicaHour, 12);
    // Stranded from the first tick to the end: about nine tenths of the scrapes.
    expect(strandedGpus(trimmed)).toBeGreaterThan(0.85);
    expect(strandedGpus(trimmed)).toBeLessThan(1);
    // Two GPUs that 110 % of shares need are not stranded.
    expect(strandedGpus(await run(false))).toBe(0);
  });
});

/** A controller that moves replicas and shares at random within bounds every 20 s: share rises that often cannot fit. */
function randomController(spec: PipelineSpec, cluster: SimCluster, seed: number): Controller {
  const rng = new Rng(seed);
  return {
    name: 'random',
    intervalMs: 20_000,
    async tick(p): Promise<TickReport> {
      for (const s of spec.stages) {
        if (rng.uniform() < 0.5) await cluster.apply(p.id, { kind: 'replicas', stage: s.index, replicas: s.minReplicas + Math.floor(rng.uniform() * (s.maxReplicas - s.minReplicas + 1)) });
        if (s.gpuCores && rng.uniform() < 0.5) {
          const steps = Math.floor((s.gpuCores.max - s.gpuCores.min) / s.gpuCores.step);
          await cluster.apply(p.id, { kind: 'gpuCores', stage: s.index, gpuCores: s.gpuCores.min + s.gpuCores.step * Math.floor(rng.uniform() * (steps + 1)) });
        }
      }
      return { pipelineId: p.id, time: 0, actions: [], bottleneck: null };
    },
  };
}

/** Drive a controller like runScenario does, checking every GPU's shares at every scrape. */
async function checkedRun(model: PipelineModel, controller: ControllerFactory | 'random', durationMs: number) {
  const seed = 3;
  const workload = builtinWorkload('bursty', { referenceRate: model.referenceRate, seed })!;
  const spec = pipelineSpec(model);
  const stats = { scrapes: 0, maxUsed: 0, pendingScrapes: 0, peakGpus: 0 };
  const holder: { metrics?: SimMetrics } = {};
  const sim: Simulation = new Simulation({
    pipeline: model,
    workload,
    seed,
    durationMs,
    scrapeIntervalMs: 15_000,
    keepLatencies: false,
    onScrape: (b) => {
      holder.metrics?.record(b);
      const packing = sim.gpuPacking();
      stats.scrapes++;
      for (const g of packing.gpus) {
        stats.maxUsed = Math.max(stats.maxUsed, g.used);
        // Enforced shares never exceed what the replicas occupy, and that never exceeds the GPU.
        expect(g.used).toBeLessThanOrEqual(100 - g.free + 1e-9);
        expect(g.free).toBeGreaterThanOrEqual(0);
      }
      expect(packing.gpus.length).toBe(b.gpusInUse);
      expect(b.gpusInUse).toBeLessThanOrEqual(sim.gpus.capacity);
      stats.peakGpus = Math.max(stats.peakGpus, b.gpusInUse);
      if (b.pendingReplicas.some((n) => n > 0)) stats.pendingScrapes++;
    },
  });
  const cluster = new SimCluster(sim, spec);
  const metrics = new SimMetrics(sim, cluster, spec, { scrapeIntervalMs: 15_000, windowMs: 30_000, lagMs: 0 });
  holder.metrics = metrics;
  const clock = new VirtualClock(() => sim.now);
  const ctl =
    controller === 'random'
      ? randomController(spec, cluster, seed)
      : controller({ cluster, metrics, clock, pipeline: structuredClone(spec), knowledge: { model, workload, durationMs }, initial: { provision: () => undefined } });
  for (let t = ctl.intervalMs; t < durationMs; t += ctl.intervalMs) {
    sim.runUntil(t);
    await ctl.tick(structuredClone(spec));
  }
  sim.finish();
  const clamps = model.stages.reduce((n, s) => n + sim.stageTotals(s.index).clamps, 0);
  expect(sim.arrived).toBe(sim.completed + sim.dropped + sim.inSystem);
  return { ...stats, clamps };
}

describe('GPU share conservation over long runs', () => {
  // nlp-chain (embed 20 %, classify 30 %, up to 6 + 8 replicas) on one node of two GPUs, so
  // replicas wait for room and share rises get clamped.
  const tight: PipelineModel = { ...builtinPipeline('nlp-chain')!, cluster: { gpuNodes: 1, gpusPerNode: 2, slotPercent: 10, placement: 'binpack' } };
  const twoHours = 2 * 3_600_000;

  it('never puts more than 100 % on a GPU under the HPA on a bursty load', async () => {
    const s = await checkedRun(tight, BASELINES['hpa']!.factory, twoHours);
    expect(s.scrapes).toBe(480);
    expect(s.pendingScrapes).toBeGreaterThan(0);
    expect(s.peakGpus).toBe(2);
    expect(s.maxUsed).toBeLessThanOrEqual(100);
  }, 60_000);

  it('never puts more than 100 % on a GPU under controllers that change shares', async () => {
    const vpa = await checkedRun(tight, BASELINES['vpa']!.factory, twoHours);
    expect(vpa.maxUsed).toBeLessThanOrEqual(100);
    const random = await checkedRun(tight, 'random', twoHours);
    expect(random.clamps).toBeGreaterThan(0);
    expect(random.pendingScrapes).toBeGreaterThan(0);
    expect(random.maxUsed).toBeLessThanOrEqual(100);
    expect(random.maxUsed).toBeGreaterThan(90);
  }, 60_000);
});
