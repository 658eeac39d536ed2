// The scenario generator: the same seed gives the same scenario; the scenarios vary in every way
// the generator promises; they pass the YAML files' validation and survive a YAML round trip; a
// generous static allocation meets each SLO at the peak and the smallest one does not.
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from '@jest/globals';
import { createStaticController } from '../../src/sim/baselines/static.js';
import { generateScenario, generateSuite, scenarioYaml, WORKLOAD_SHAPES, type GeneratedScenario } from '../../src/sim/generator.js';
import { parsePipeline } from '../../src/sim/pipeline.js';
import { runScenario } from '../../src/sim/run.js';
import { validate } from '../../src/sim/schema.js';
import { buildWorkload, parseWorkload, workloadFileSchema } from '../../src/sim/workload.js';

const fifty = generateSuite(1, 50);
const isDag = (g: GeneratedScenario): boolean => g.pipeline.stages.some((s) => s.upstream.length > 1 || s.downstream.length > 1) || g.pipeline.stages.filter((s) => s.upstream.length === 0).length > 1;

describe('scenario generator', () => {
  it('gives the same scenario for the same seed, another for another, named gen-<seed>', () => {
    expect(generateScenario(17)).toEqual(generateScenario(17));
    expect(scenarioYaml(generateScenario(17))).toEqual(scenarioYaml(generateScenario(17)));
    expect(generateScenario(17).name).toBe('gen-17');
    expect(generateScenario(17).workload.name).toBe(`gen-17-${generateScenario(17).shape}`);
    expect(generateScenario(18)).not.toEqual(generateScenario(17));
    expect(generateSuite(1000, 3).map((g) => g.name)).toEqual(['gen-1000', 'gen-1001', 'gen-1002']);
    expect(() => generateScenario(-1)).toThrow('generator seed -1 is not an integer >= 0');
  });

  it('varies over 50 seeds: 2-6 stages, chains and DAGs, CPU/GPU mixes, cold starts 5-300 s, every workload shape', () => {
    const counts = new Set(fifty.map((g) => g.pipeline.stages.length));
    expect([...counts].sort()).toEqual([2, 3, 4, 5, 6]);
    const dags = fifty.filter(isDag).length;
    expect(dags).toBeGreaterThanOrEqual(10);
    expect(50 - dags).toBeGreaterThanOrEqual(10);
    const gpuStages = fifty.map((g) => g.pipeline.stages.filter((s) => s.kind === 'gpu').length);
    expect(gpuStages.filter((n) => n > 0).length).toBeGreaterThanOrEqual(40);
    expect(gpuStages.some((n) => n === 0)).toBe(true);
    expect(fifty.some((g) => g.pipeline.stages.every((s) => s.kind === 'gpu'))).toBe(true);
    const stages = fifty.flatMap((g) => g.pipeline.stages);
    const cold = stages.map((s) => s.coldStartMs);
    expect(Math.min(...cold)).toBeGreaterThanOrEqual(5000);
    expect(Math.min(...cold)).toBeLessThan(7000);
    expect(Math.max(...cold)).toBeLessThanOrEqual(300_000);
    expect(Math.max(...cold)).toBeGreaterThan(250_000);
    const median = (xs: number[]): number => xs.sort((a, b) => a - b)[xs.length >> 1]!;
    expect(median(stages.filter((s) => s.kind === 'gpu').map((s) => s.coldStartMs))).toBeGreaterThan(3 * median(stages.filter((s) => s.kind === 'cpu').map((s) => s.coldStartMs)));
    for (const s of stages.filter((x) => x.kind === 'gpu')) {
      expect(s.maxBatch).toBeGreaterThanOrEqual(4);
      expect(s.service.baseMs).toBeGreaterThan(0);
      expect(s.service.perItemMs).toBeGreaterThan(0);
    }
    expect(new Set(fifty.map((g) => g.shape))).toEqual(new Set(WORKLOAD_SHAPES));
    expect(new Set(fifty.filter((g) => g.shape === 'mmpp').map((g) => (g.workload.kind === 'mmpp' ? g.workload.rates.length : 0)))).toEqual(new Set([2, 3]));
    const flash = fifty.filter((g) => g.shape === 'flash-crowd').map((g) => (g.workload.kind === 'trace' ? g.workload.points! : []));
    for (const points of flash) {
      const jump = points.findIndex((p, i) => i > 0 && p[1] > 2.5 * points[i - 1]![1]);
      expect(points[jump]![1] / points[jump - 1]![1]).toBeGreaterThanOrEqual(3 - 1e-3);
      expect(points[jump]![1] / points[jump - 1]![1]).toBeLessThanOrEqual(10 + 1e-3);
    }
  });

  it('passes the YAML files’ validation, and the written YAML loads back to the same model', () => {
    for (const g of fifty) {
      const yaml = scenarioYaml(g);
      expect(parsePipeline(parseYaml(yaml.pipeline), 'p.yaml')).toEqual(g.pipeline);
      expect(parsePipeline(structuredClone(g.pipelineFile), 'p.yaml')).toEqual(g.pipeline);
      expect(validate(workloadFileSchema, parseYaml(yaml.workload), 'w.yaml')).toEqual(g.workload);
      const opts = { referenceRate: g.pipeline.referenceRate, seed: 4 };
      const a = buildWorkload(g.workload, opts);
      const b = parseWorkload(parseYaml(yaml.workload), opts);
      const times = Array.from({ length: 500 }, (_, i) => i * 7_000);
      expect(times.map((t) => b.rate.at(t))).toEqual(times.map((t) => a.rate.at(t)));
      // peakRelative is the shape's highest rate; within an hour a random MMPP path may not reach it.
      const peak = g.peakRelative * g.pipeline.referenceRate;
      expect(a.peakRate(3_600_000)).toBeLessThanOrEqual(peak * (1 + 1e-9));
      if (g.shape !== 'mmpp') expect(a.peakRate(3_600_000)).toBeGreaterThan(0.99 * peak);
      expect(g.pipeline.sloP99Ms).toBeGreaterThan(0);
      for (const s of g.pipeline.stages) expect(s.replicas.max).toBeGreaterThan(s.replicas.initial);
    }
  });

  it('is feasible with every replica at a full GPU and not trivial with the fewest, at the peak rate (30 seeds)', async () => {
    // A static allocation faces a constant peak as the worst moment of any shape; Poisson arrivals.
    const attainment: { max: number; min: number }[] = [];
    for (const g of fifty.slice(0, 30)) {
      const peak = { kind: 'poisson' as const, rate: g.peakRelative * g.pipeline.referenceRate, relative: false, name: 'peak' };
      const stages = g.pipeline.stages;
      const generous = await runScenario({
        pipeline: g.pipeline,
        workload: peak,
        durationMs: 60_000,
        controller: (p) => createStaticController(p, { replicas: stages.map((s) => s.replicas.max), gpuCores: stages.map((s) => s.gpuCores?.max ?? null) }),
      });
      const fewest = await runScenario({ pipeline: g.pipeline, workload: peak, durationMs: 40_000, controller: (p) => createStaticController(p, { replicas: 'min' }) });
      attainment.push({ max: generous.sloAttainment, min: fewest.sloAttainment });
    }
    expect(attainment.filter((a) => a.max < 0.95)).toEqual([]);
    expect(attainment.filter((a) => a.min < 0.95).length).toBeGreaterThanOrEqual(25);
  }, 60_000);
});
