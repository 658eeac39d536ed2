// Validity of the engine against queueing theory and its own bookkeeping: Erlang-C for an M/M/c
// stage, Little's law per stage, conservation of requests, determinism, and fan-out/fan-in.
import { describe, expect, it } from '@jest/globals';
import { createStaticController } from '../../src/sim/baselines/static.js';
import { BASELINES } from '../../src/sim/baselines/index.js';
import { parsePipeline } from '../../src/sim/pipeline.js';
import { runScenario } from '../../src/sim/run.js';
import { Simulation } from '../../src/sim/simulator.js';
import { parseWorkload, type RateFunction, type Workload } from '../../src/sim/workload.js';

function erlangCWaitMs(lambdaPerS: number, serviceMs: number, c: number): number {
  const mu = 1000 / serviceMs;
  const a = lambdaPerS / mu;
  let sum = 0;
  let term = 1;
  for (let k = 0; k < c; k++) {
    if (k > 0) term *= a / k;
    sum += term;
  }
  const top = ((term * a) / c) * (c / (c - a));
  const pWait = top / (sum + top);
  return (1000 * pWait) / (c * mu - lambdaPerS);
}

const mmc = (c: number, serviceMs: number) =>
  parsePipeline({
    name: 'mmc',
    sloP99Ms: 1e9,
    requestTimeoutMs: 1e12,
    stages: [
      {
        name: 'server',
        kind: 'cpu',
        service: { baseMs: 0, perItemMs: serviceMs, sigma: 0, distribution: 'exponential' },
        replicas: { min: c, initial: c, max: c },
      },
    ],
  });

describe('simulator validity', () => {
  it('an M/M/3 stage matches the Erlang-C mean wait within 3 %', async () => {
    const c = 3;
    const serviceMs = 100;
    const lambda = 21; // rho = 0.7
    const r = await runScenario({
      pipeline: mmc(c, serviceMs),
      workload: { kind: 'poisson', rate: lambda, relative: false },
      controller: (p) => createStaticController(p),
      seed: 5,
      durationMs: 20_000_000,
    });
    const expected = erlangCWaitMs(lambda, serviceMs, c);
    const measured = r.stages[0]!.meanWaitMs!;
    expect(r.requests.arrived).toBeGreaterThan(400_000);
    expect(Math.abs(measured - expected) / expected).toBeLessThan(0.03);
    // Sojourn = wait + service, and the server is busy rho of the time.
    expect(Math.abs(r.stages[0]!.meanSojournMs! - (expected + serviceMs)) / (expected + serviceMs)).toBeLessThan(0.03);
    expect(r.stages[0]!.utilization!).toBeCloseTo(0.7, 1);
  }, 30_000);

  it("holds Little's law per stage and conserves requests, with batching, fan-out and drops", async () => {
    const r = await runScenario({ pipeline: 'video-analytics', workload: 'spike', controller: BASELINES['threshold']!.factory, seed: 3, durationMs: 3_600_000 });
    expect(r.requests.dropped).toBeGreaterThan(0);
    expect(r.requests.arrived).toBe(r.requests.completed + r.requests.inSystem + r.requests.dropped);
    for (const s of r.stages) {
      const L = s.meanInStage;
      const lambdaW = (s.departuresPerS / 1000) * s.meanTimeInStageMs!;
      expect(Math.abs(L - lambdaW) / Math.max(L, 1e-9)).toBeLessThan(0.02);
      // Every item that entered a stage left it, was dropped there, or is still in it.
      expect(s.arrivals).toBeGreaterThanOrEqual(s.completions);
    }
  }, 30_000);

  it('conserves requests at every instant, not just at the end', () => {
    const pipeline = parsePipeline({
      name: 'tight',
      sloP99Ms: 100,
      requestTimeoutMs: 300,
      stages: [
        { name: 'a', kind: 'cpu', service: { baseMs: 0, perItemMs: 20 }, replicas: { min: 1, initial: 1, max: 4 }, queueCapacity: 30 },
        { name: 'b', kind: 'gpu', service: { baseMs: 5, perItemMs: 2 }, maxBatch: 8, batchTimeoutMs: 10, replicas: { min: 1, initial: 1, max: 4 }, gpuCores: { initial: 30 } },
      ],
    });
    const workload = parseWorkload({ kind: 'poisson', rate: 80 }, { referenceRate: 1, seed: 1 });
    const sim = new Simulation({ pipeline, workload, seed: 9, durationMs: 120_000, scrapeIntervalMs: 15_000 });
    for (let t = 1000; t <= 120_000; t += 1000) {
      sim.runUntil(t);
      if (t === 40_000) sim.setReplicas(0, 3);
      if (t === 80_000) sim.setReplicas(0, 1);
      expect(sim.arrived).toBe(sim.completed + sim.dropped + sim.inSystem);
      expect(sim.inSystem).toBeGreaterThanOrEqual(0);
    }
    expect(sim.dropped).toBeGreaterThan(0);
  });

  it('gives the same result for the same seed and a different one for another seed', async () => {
    const run = (seed: number) => runScenario({ pipeline: 'nlp-chain', workload: 'bursty', controller: BASELINES['hpa']!.factory, seed, durationMs: 900_000 });
    const a = await run(4);
    const b = await run(4);
    const c = await run(5);
    const strip = (r: typeof a) => ({ ...r, wallMs: 0 });
    expect(JSON.stringify(strip(a))).toBe(JSON.stringify(strip(b)));
    expect(c.requests.arrived).not.toBe(a.requests.arrived);
  }, 30_000);

  it('completes a fan-out request only when every branch has, then runs the join stage', async () => {
    // Deterministic service: decode 10 ms, branches 20/50/30 ms, join 5 ms; one request at a time.
    const pipeline = parsePipeline({
      name: 'fan',
      sloP99Ms: 1000,
      stages: [
        { name: 'decode', kind: 'cpu', service: { baseMs: 0, perItemMs: 10, sigma: 0 }, replicas: { min: 1, initial: 1, max: 1 } },
        { name: 'x', kind: 'cpu', upstream: ['decode'], service: { baseMs: 0, perItemMs: 20, sigma: 0 }, replicas: { min: 1, initial: 1, max: 1 } },
        { name: 'y', kind: 'cpu', upstream: ['decode'], service: { baseMs: 0, perItemMs: 50, sigma: 0 }, replicas: { min: 1, initial: 1, max: 1 } },
        { name: 'z', kind: 'cpu', upstream: ['decode'], service: { baseMs: 0, perItemMs: 30, sigma: 0 }, replicas: { min: 1, initial: 1, max: 1 } },
        { name: 'join', kind: 'cpu', upstream: ['x', 'y', 'z'], service: { baseMs: 0, perItemMs: 5, sigma: 0 }, replicas: { min: 1, initial: 1, max: 1 } },
      ],
    });
    const r = await runScenario({
      pipeline,
      workload: { kind: 'constant', rate: 1, arrivals: 'uniform', relative: false },
      controller: (p) => createStaticController(p),
      seed: 1,
      durationMs: 60_000,
    });
    expect(r.requests.completed).toBeGreaterThan(50);
    expect(r.latency.p50Ms).toBeCloseTo(65, 6);
    expect(r.latency.p99Ms).toBeCloseTo(65, 6);
    expect(r.stages.map((s) => s.completions)).toEqual(Array(5).fill(r.requests.completed));
  });

  it('batches up to maxBatch, waits at most the batch timeout, and scales service with the GPU share', () => {
    const pipeline = parsePipeline({
      name: 'batch',
      sloP99Ms: 1000,
      stages: [
        { name: 'g', kind: 'gpu', service: { baseMs: 10, perItemMs: 1, sigma: 0 }, maxBatch: 4, batchTimeoutMs: 50, replicas: { min: 1, initial: 1, max: 1 }, gpuCores: { initial: 50 } },
      ],
    });
    const sim = new Simulation({ pipeline, workload: fixedArrivals([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1000]), seed: 1, durationMs: 10_000, scrapeIntervalMs: 15_000 });
    sim.finish();
    // At 50 %: a batch of 4 takes (10 + 4) / 0.5 = 28 ms, of 2 takes 24 ms, of 1 takes 22 ms.
    // Ten at t=0: 4 at once (done 28), 4 when the replica frees (done 56), then the last 2, whose
    // timeout has passed, at once (done 80). The lone request at 1000 waits the 50 ms timeout.
    expect(Array.from(sim.allLatencies())).toEqual([28, 28, 28, 28, 56, 56, 56, 56, 80, 80, 72]);
    expect(sim.stageTotals(0).batches).toBe(4);
  });
});

/** A workload with arrivals at fixed times (ms); its rate is the mean over the run. */
function fixedArrivals(times: number[]): Workload {
  const rate: RateFunction = { at: () => times.length, max: () => times.length };
  return {
    name: 'fixed',
    description: '',
    rate,
    meanRate: () => times.length,
    peakRate: () => times.length,
    arrivals: () => {
      let i = 0;
      return { next: () => (i < times.length ? times[i++]! : Infinity) };
    },
  };
}
