// Baselines running in the simulator: behaviour a user comparing autoscalers would notice.
import { describe, expect, it } from '@jest/globals';
import { BASELINES } from '../../../src/sim/baselines/index.js';
import { cheapestPipelinePlan, cheapestPlan } from '../../../src/sim/baselines/oracle.js';
import { builtinPipeline } from '../../../src/sim/builtin-pipelines.js';
import { maxThroughputPerReplica, parsePipeline } from '../../../src/sim/pipeline.js';
import { runScenario } from '../../../src/sim/run.js';

const single = parsePipeline({
  name: 'single',
  sloP99Ms: 200,
  schedulingDelayMs: 1000,
  stages: [{ name: 'work', kind: 'cpu', service: { baseMs: 0, perItemMs: 50 }, coldStartMs: 10_000, replicas: { min: 1, initial: 2, max: 40 } }],
});

describe('baselines in the simulator', () => {
  it('HPA scales up a stage under a spike within its rate limits and holds the scale-down for 300 s', async () => {
    // 20/s, 5x for ten minutes from t = 300 s: 20 replicas of 20/s each at 60 % would need ~9, then ~42 (capped at 40).
    const r = await runScenario({
      pipeline: single,
      workload: { kind: 'spike', base: 10, multiplier: 5, atSeconds: 300, durationSeconds: 600, relative: false },
      controller: BASELINES['hpa']!.factory,
      seed: 2,
      durationMs: 1_800_000,
    });
    const at = (s: number) => r.timeline.find((p) => p.t === s * 1000)!.replicas[0]!;
    expect(at(285)).toBeLessThanOrEqual(2);
    expect(at(420)).toBeGreaterThan(10);
    for (let i = 1; i < r.timeline.length; i++) {
      const prev = r.timeline[i - 1]!.replicas[0]!;
      expect(r.timeline[i]!.replicas[0]!).toBeLessThanOrEqual(Math.max(prev + 4, 2 * prev));
    }
    const peak = at(885);
    expect(at(1125)).toBe(peak); // spike over at 900 s; the window still holds the high recommendations
    expect(at(1500)).toBeLessThan(peak);
  }, 30_000);

  it('the oracle meets the SLO for less than static-peak, and a detector that always names one stage is scored against the truth', async () => {
    const run = (name: string) => runScenario({ pipeline: 'video-analytics', workload: 'diurnal', controller: BASELINES[name]!.factory, seed: 1, durationMs: 3_600_000 });
    const oracle = await run('oracle');
    const peak = await run('static-peak');
    expect(oracle.sloViolationRate).toBeLessThan(0.01);
    expect(peak.sloViolationRate).toBeLessThan(0.01);
    expect(oracle.cost.dollars).toBeLessThan(0.7 * peak.cost.dollars);
    // The oracle names the bottleneck with the ground-truth rule, so it scores 100 %.
    expect(oracle.bottleneck.accuracy).toBe(1);
    expect(oracle.bottleneck.reportedTicks).toBe(oracle.ticks);
    expect(peak.bottleneck.accuracy).toBeNull();

    const fixed = await runScenario({
      pipeline: 'rag',
      workload: 'diurnal',
      controller: (p) => {
        const hpa = BASELINES['hpa']!.factory(p);
        return { name: 'always-1', intervalMs: hpa.intervalMs, tick: async (spec) => ({ ...(await hpa.tick(spec)), bottleneck: 1 }) };
      },
      seed: 1,
      durationMs: 3_600_000,
    });
    const truthOne = fixed.bottleneck.groundTruth.filter((g) => g === 1).length / fixed.ticks;
    expect(fixed.bottleneck.accuracy).toBeCloseTo(truthOne, 10);
    expect(truthOne).toBeGreaterThan(0);
    expect(truthOne).toBeLessThan(1);
  }, 30_000);

  it('moves the ground-truth bottleneck between stages of the NLP chain as load and allocation change', async () => {
    const r = await runScenario({ pipeline: 'nlp-chain', workload: 'diurnal', controller: BASELINES['hpa']!.factory, seed: 1, durationMs: 1_800_000 });
    expect(r.stages.filter((s) => s.bottleneckShare > 0.1).length).toBeGreaterThanOrEqual(2);
  }, 30_000);

  it('static under-provisioning drops requests and reports P99 as infinite; threshold and VPA act on their signals', async () => {
    const stat = await runScenario({ pipeline: 'rag', workload: 'spike', controller: BASELINES['static-min']!.factory, seed: 1, durationMs: 1_800_000 });
    expect(stat.requests.dropped).toBeGreaterThan(0);
    expect(stat.latency.p99Ms).toBe(Infinity);
    const vpa = await runScenario({ pipeline: 'rag', workload: 'spike', controller: BASELINES['vpa']!.factory, seed: 1, durationMs: 1_800_000 });
    const gen = vpa.stages.find((s) => s.name === 'generate')!;
    expect(gen.meanGpuCores!).toBeGreaterThan(60);
    expect(gen.meanReplicas).toBeCloseTo(2, 5);
    const th = await runScenario({ pipeline: 'rag', workload: 'spike', controller: BASELINES['threshold']!.factory, seed: 1, durationMs: 1_800_000 });
    expect(th.stages.find((s) => s.name === 'generate')!.meanReplicas).toBeGreaterThan(2);
    expect(th.bottleneck.reportedTicks).toBeGreaterThan(0);
    const keda = await runScenario({ pipeline: 'rag', workload: 'spike', controller: BASELINES['keda']!.factory, seed: 1, durationMs: 1_800_000 });
    expect(Math.max(...keda.timeline.map((p) => p.replicas[3]!))).toBeGreaterThan(2);
  }, 30_000);
});

describe('the oracle\'s plan', () => {
  // nlp-chain: tokenize (CPU) -> embed (GPU) -> classify (GPU) -> postprocess (CPU), 250 ms SLO.
  const chain = builtinPipeline('nlp-chain')!;
  const rates = [100, 100, 100, 100];

  it('split evenly, holds each GPU stage to a quarter of the SLO; along the path, lets the fast CPU stages\' part go to them', () => {
    const even = chain.stages.map((s, i) => cheapestPlan(s, rates[i]!, 0.75, chain.cost, chain.sloP99Ms / 4));
    const path = cheapestPipelinePlan(chain.stages, rates, 0.75, chain.cost, chain.sloP99Ms);
    const gpuShare = (plans: { replicas: number; gpuCores: number | null }[]) => plans.reduce((s, p) => s + p.replicas * (p.gpuCores ?? 0), 0);
    // Even: classify's full batch (36 ms at a whole GPU, plus 10 ms timeout) within 62.5 ms needs 70 %.
    expect(even[2]!.gpuCores).toBe(70);
    expect(gpuShare(even)).toBeGreaterThan(100);
    expect(gpuShare(path)).toBeLessThanOrEqual(100);
    expect(gpuShare(path)).toBeLessThan(gpuShare(even));
    // Every stage still carries its rate at the target, and the path's full batches fit 60 % of the SLO.
    for (const [i, p] of path.entries()) expect(p.replicas * maxThroughputPerReplica(chain.stages[i]!, (p.gpuCores ?? 100) / 100) * 0.75).toBeGreaterThanOrEqual(rates[i]!);
    const batchMs = (i: number) => (chain.stages[i]!.service.baseMs + chain.stages[i]!.service.perItemMs * chain.stages[i]!.maxBatch) / (path[i]!.gpuCores! / 100) + chain.stages[i]!.batchTimeoutMs;
    expect(batchMs(1) + batchMs(2)).toBeLessThanOrEqual(0.6 * chain.sloP99Ms);
  });

  it('keeps the even split where no plan along the path costs less', () => {
    // One GPU stage: the even split gives it the whole SLO, the path 60 % of it.
    const alone = parsePipeline({
      name: 'alone',
      sloP99Ms: 100,
      stages: [{ name: 'model', kind: 'gpu', service: { baseMs: 10, perItemMs: 2 }, maxBatch: 8, batchTimeoutMs: 10, coldStartMs: 30_000, replicas: { min: 1, initial: 1, max: 8 }, gpuCores: { min: 10, max: 100, step: 10, initial: 50 } }],
    });
    const even = [cheapestPlan(alone.stages[0]!, 20, 0.75, alone.cost, 100)];
    // 26 ms at a whole GPU plus 10 ms: 30 % fits the whole SLO (96.7 ms); 60 ms would need 60 %.
    expect(even[0]!.gpuCores).toBe(30);
    expect(cheapestPipelinePlan(alone.stages, [20], 0.75, alone.cost, 100)).toEqual(even);
  });

});
