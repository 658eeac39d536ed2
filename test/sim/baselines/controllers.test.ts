// Baselines running in the simulator: behaviour a user comparing autoscalers would notice.
import { describe, expect, it } from '@jest/globals';
import { BASELINES } from '../../../src/sim/baselines/index.js';
import { parsePipeline } from '../../../src/sim/pipeline.js';
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
