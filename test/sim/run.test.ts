// The runner's contract with controllers: virtual sleep, errors that do not stop the run,
// refusals like the API server's, and reports scored per tick.
import { describe, expect, it } from '@jest/globals';
import { UpstreamError } from '../../src/common/errors.js';
import type { Controller } from '../../src/core/ports.js';
import { runScenario } from '../../src/sim/run.js';

describe('runScenario', () => {
  it('lets a controller sleep in virtual time and act afterwards', async () => {
    const seen: { before: number; after: number }[] = [];
    const r = await runScenario({
      pipeline: 'text-generation',
      workload: 'poisson',
      durationMs: 120_000,
      controller: ({ clock, cluster }) => ({
        name: 'sleepy',
        intervalMs: 30_000,
        async tick(p) {
          const before = clock.now();
          await clock.sleep(1500); // a modelled 1.5 s LLM call
          await clock.sleep(500);
          const after = clock.now();
          seen.push({ before, after });
          await cluster.apply(p.id, { kind: 'replicas', stage: 1, replicas: 3 });
          return { pipelineId: p.id, time: after, actions: [], bottleneck: null };
        },
      }),
    });
    expect(seen.map((s) => s.before)).toEqual([30_000, 60_000, 90_000]);
    expect(seen.map((s) => s.after - s.before)).toEqual([2000, 2000, 2000]);
    expect(r.ticks).toBe(3);
    expect(r.timeline.at(-1)!.replicas[1]).toBe(3);
  });

  it('ends the run when a controller sleeps past its end', async () => {
    let woke = -1;
    const r = await runScenario({
      pipeline: 'rag',
      workload: 'poisson',
      durationMs: 60_000,
      controller: ({ clock }) => ({
        name: 'long-sleeper',
        intervalMs: 50_000,
        async tick(p) {
          await clock.sleep(3_600_000);
          woke = clock.now();
          return { pipelineId: p.id, time: woke, actions: [], bottleneck: null };
        },
      }),
    });
    expect(woke).toBe(60_000);
    expect(r.ticks).toBe(1);
    expect(r.cost.meanRatePerHour).toBeCloseTo(r.timeline.at(-1)!.costRate, 6);
  });

  it('counts failing ticks and carries on; the cluster refuses invalid actions like the API server', async () => {
    const refusals: unknown[] = [];
    let n = 0;
    const r = await runScenario({
      pipeline: 'nlp-bert',
      workload: 'poisson',
      durationMs: 300_000,
      controller: ({ cluster }): Controller => ({
        name: 'flaky',
        intervalMs: 30_000,
        async tick(p) {
          n++;
          for (const bad of [
            { kind: 'replicas', stage: 9, replicas: 1 },
            { kind: 'replicas', stage: 0, replicas: -1 },
            { kind: 'gpuCores', stage: 0, gpuCores: 50 },
            { kind: 'gpuCores', stage: 1, gpuCores: 101 },
          ] as const) {
            await cluster.apply(p.id, bad).catch((e: unknown) => refusals.push(e));
          }
          await cluster.apply('sim/other', { kind: 'hold' }).catch((e: unknown) => refusals.push(e));
          if (n % 2 === 0) throw new Error(`boom ${n}`);
          return { pipelineId: p.id, time: 0, actions: [], bottleneck: 1 };
        },
      }),
    });
    expect(r.ticks).toBe(9);
    expect(r.tickErrors).toBe(4);
    expect(r.lastTickError).toBe('boom 8');
    expect(r.bottleneck.reportedTicks).toBe(5);
    expect(refusals.every((e) => e instanceof UpstreamError)).toBe(true);
    expect((refusals.slice(0, 5) as UpstreamError[]).map((e) => e.status)).toEqual([404, 422, 422, 422, 404]);
    expect((refusals[0] as Error).message).toContain('stage 9 does not exist');
  });

  it('rejects unknown built-ins with the accepted names', async () => {
    const controller = () => ({ name: 'x', intervalMs: 1000, tick: () => Promise.reject(new Error('unused')) });
    await expect(runScenario({ pipeline: 'nope', workload: 'poisson', durationMs: 1000, controller })).rejects.toThrow(/--pipeline: "nope" is not a built-in pipeline \(image-classification/);
    await expect(runScenario({ pipeline: 'rag', workload: 'nope', durationMs: 1000, controller })).rejects.toThrow(/--workload: "nope" is not a built-in workload \(constant/);
  });
});
