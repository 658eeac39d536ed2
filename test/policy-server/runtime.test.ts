// The loop that drives a controller, on a manual clock with in-memory ports (a test double of a
// ClusterPort: the runtime only lists pipelines and reads allocations through it).
import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../src/common/logger.js';
import { createRegistry } from '../../src/common/metrics.js';
import { PolicyHistory } from '../../src/policy-server/api/history.js';
import type { ClusterPort, Controller, PipelineSpec, TickReport } from '../../src/core/ports.js';
import { PolicyRuntime, nextTickAfter, singleShard, type Ownership } from '../../src/policy-server/runtime.js';
import type { DecisionRecord } from '../../src/policy/types.js';

const spec = (id: string, tickSeconds: number): PipelineSpec => ({
  id,
  stages: [{ index: 0, name: 'a', minReplicas: 1, maxReplicas: 3, upstream: [] }],
  sloP99Ms: 100,
  cost: { gpuHour: 1, replicaHour: 0.1 },
  tickSeconds,
  mode: 'Active',
});

/**
 * The scheduled ticks of a pipeline whose last tick started at `from`: on its phase, each an
 * interval after the one before; `everyMs` is how often the test runs a pass (a tick starts at the
 * first pass at or after its due time).
 */
function onPhase(id: string, intervalMs: number, from: number, until: number, everyMs = 1_000): number[] {
  const out: number[] = [];
  for (let due = nextTickAfter(id, from, intervalMs); Math.ceil(due / everyMs) * everyMs <= until; due += intervalMs) out.push(Math.ceil(due / everyMs) * everyMs);
  return out;
}

interface Options {
  /** Which shards are held; default: one shard, held while setLeader(true). */
  ownership?: Ownership;
  beforeLeading?: (gained: readonly number[]) => Promise<void>;
  /** A tick of this pipeline waits until the returned function is called. */
  stuck?: string;
}

/** `p99` gives the P99 (ms) each pipeline's decision records; without an entry it records none. */
function setup(pipelines: PipelineSpec[], failing: Set<string>, p99 = new Map<string, number | null>(), o: Options = {}) {
  let now = 0;
  let unstick: () => void = () => undefined;
  const stuck = new Promise<void>((resolve) => (unstick = resolve));
  const ticks: { id: string; at: number }[] = [];
  let lists = 0;
  const cluster: ClusterPort = {
    listPipelines: async () => {
      lists++;
      return pipelines;
    },
    allocation: async () => [{ replicas: 1, readyReplicas: 1, gpuCores: null }],
    apply: async () => undefined,
    report: async () => undefined,
  };
  const controller: Controller = {
    name: 'test',
    intervalMs: 30_000,
    async tick(p): Promise<TickReport> {
      ticks.push({ id: p.id, at: now });
      if (p.id === o.stuck) await stuck;
      if (failing.has(p.id)) throw new Error(`metrics for ${p.id} unavailable`);
      if (p99.has(p.id)) runtime.onDecision({ pipelineId: p.id, p99Ms: p99.get(p.id)! } as DecisionRecord);
      return { pipelineId: p.id, time: now, actions: [], bottleneck: 0 };
    },
  };
  let leader = true;
  const history = new PolicyHistory();
  const registry = createRegistry('policy', { defaultMetrics: false });
  const runtime = new PolicyRuntime({
    cluster,
    controller,
    // Sleeping moves the manual clock on, so the loop started by start() runs in virtual time.
    clock: {
      now: () => now,
      sleep: async (ms) => {
        now += ms;
        await new Promise((r) => setImmediate(r));
      },
    },
    logger: createLogger('test', 'silent'),
    registry,
    history,
    ownership: o.ownership ?? singleShard(() => leader),
    pollMs: 1_000,
    backoff: { baseMs: 1_000, maxMs: 8_000 },
    beforeLeading: o.beforeLeading,
  });
  return {
    runtime,
    history,
    registry,
    ticks,
    lists: () => lists,
    setLeader: (l: boolean) => (leader = l),
    now: () => now,
    unstick: () => unstick(),
    /** Run one pass at each second from the current time up to `until`. */
    async runTo(until: number) {
      for (; now <= until; now += 1_000) await runtime.pass();
      now = until;
    },
  };
}

describe('PolicyRuntime', () => {
  it('ticks each pipeline on its own interval, on a phase of its own', async () => {
    const t = setup([spec('ml/fast', 10), spec('ml/slow', 30)], new Set());
    await t.runTo(60_000);
    const fast = [0, ...onPhase('ml/fast', 10_000, 0, 60_000)];
    const slow = [0, ...onPhase('ml/slow', 30_000, 0, 60_000)];
    expect(t.ticks.filter((x) => x.id === 'ml/fast').map((x) => x.at)).toEqual(fast);
    expect(t.ticks.filter((x) => x.id === 'ml/slow').map((x) => x.at)).toEqual(slow);
    expect(fast.length).toBeGreaterThanOrEqual(6);
    // Started together, they do not stay together.
    expect(fast[1]! % 10_000).not.toBe(slow[1]! % 10_000);
    expect(t.history.list().map((v) => [v.id, v.ticks])).toEqual([
      ['ml/fast', fast.length],
      ['ml/slow', slow.length],
    ]);
  });

  it('never dies on one pipeline: the failing one backs off exponentially, the others go on', async () => {
    const failing = new Set(['ml/broken']);
    const t = setup([spec('ml/broken', 10), spec('ml/fine', 10)], failing);
    await t.runTo(20_000);
    // 0, then +1 s, +2 s, +4 s, +8 s (the cap), +8 s.
    expect(t.ticks.filter((x) => x.id === 'ml/broken').map((x) => x.at)).toEqual([0, 1_000, 3_000, 7_000, 15_000]);
    expect(t.ticks.filter((x) => x.id === 'ml/fine').map((x) => x.at)).toEqual([0, ...onPhase('ml/fine', 10_000, 0, 20_000)]);
    expect(t.history.list().find((v) => v.id === 'ml/broken')!.lastError).toEqual({ time: 15_000, message: 'metrics for ml/broken unavailable' });
    // Once it works again it is back on its interval.
    failing.clear();
    await t.runTo(45_000);
    expect(t.ticks.filter((x) => x.id === 'ml/broken' && x.at > 15_000).map((x) => x.at)).toEqual([23_000, ...onPhase('ml/broken', 10_000, 23_000, 45_000)]);
    expect(t.history.list().find((v) => v.id === 'ml/broken')!.lastError).toBeNull();
  });

  it('does nothing while it does not lead, and a new leader ticks every pipeline at once', async () => {
    const t = setup([spec('ml/a', 30)], new Set());
    t.setLeader(false);
    await t.runTo(5_000);
    expect(t.ticks).toEqual([]);
    expect(t.lists()).toBe(0);
    t.setLeader(true);
    await t.runtime.pass();
    expect(t.ticks).toEqual([{ id: 'ml/a', at: 5_000 }]);
  });

  it('forgets pipelines that are gone', async () => {
    const pipelines = [spec('ml/a', 10), spec('ml/b', 10)];
    const t = setup(pipelines, new Set());
    await t.runTo(0);
    pipelines.pop();
    await t.runTo(10_000);
    expect(t.history.list().map((v) => v.id)).toEqual(['ml/a']);
  });

  it("exports each pipeline's P99 and SLO while it leads, for the SLO alert", async () => {
    const p99 = new Map<string, number | null>([['ml/a', 180], ['ml/b', null]]);
    const pipelines = [spec('ml/a', 10), spec('ml/b', 10)];
    const t = setup(pipelines, new Set(), p99);
    const series = async () =>
      (await t.registry.getMetricsAsJSON())
        .filter((m) => m.name.startsWith('sair_policy_pipeline_'))
        .flatMap((m) => m.values.map((v) => `${m.name}{${String(v.labels.pipeline)}} ${v.value}`))
        .sort();
    await t.runTo(0);
    // ml/b measured no P99: no series, so nothing alerts on a guess.
    expect(await series()).toEqual(['sair_policy_pipeline_p99_seconds{ml/a} 0.18', 'sair_policy_pipeline_slo_seconds{ml/a} 0.1', 'sair_policy_pipeline_slo_seconds{ml/b} 0.1']);
    p99.set('ml/a', Infinity);
    pipelines.pop();
    await t.runTo(10_000);
    expect(await series()).toEqual(['sair_policy_pipeline_p99_seconds{ml/a} Infinity', 'sair_policy_pipeline_slo_seconds{ml/a} 0.1']);
    t.setLeader(false);
    await t.runTo(11_000);
    expect(await series()).toEqual([]);
  });

  it('ticks only the pipelines of the shards it holds; a shard gained loads first, then ticks its pipelines at once', async () => {
    const pipelines = [spec('ml/a', 30), spec('ml/b', 30), spec('ml/c', 30)];
    const shardOf = (id: string) => (id === 'ml/b' ? 1 : 0);
    let held = new Set([0]);
    const loaded: { shards: readonly number[]; at: number; ticksBefore: number }[] = [];
    const t = setup(pipelines, new Set(), undefined, {
      ownership: { held: () => held, shardOf },
      beforeLeading: async (shards) => {
        loaded.push({ shards, at: t.now(), ticksBefore: t.ticks.length });
      },
    });
    await t.runTo(5_000);
    expect(t.ticks).toEqual([
      { id: 'ml/a', at: 0 },
      { id: 'ml/c', at: 0 },
    ]);
    expect(t.history.list().map((v) => v.id)).toEqual(['ml/a', 'ml/c']);
    held = new Set([0, 1]);
    await t.runTo(6_000);
    expect(loaded).toEqual([
      { shards: [0], at: 0, ticksBefore: 0 },
      { shards: [1], at: 5_000, ticksBefore: 2 },
    ]);
    expect(t.ticks.slice(2)).toEqual([{ id: 'ml/b', at: 5_000 }]);
    // Shard 0 lost: its pipelines stop ticking; shard 1's go on on their schedule.
    held = new Set([1]);
    await t.runTo(40_000);
    expect(t.ticks.slice(3)).toEqual(onPhase('ml/b', 30_000, 5_000, 40_000).map((at) => ({ id: 'ml/b', at })));
  });

  it('a slow tick does not hold back the others: each starts at its due time', async () => {
    const t = setup([spec('ml/slow', 10), spec('ml/fast', 10)], new Set(), undefined, { stuck: 'ml/slow' });
    t.runtime.start();
    for (let i = 0; i < 10_000 && t.now() <= 60_000; i++) await new Promise((r) => setImmediate(r));
    t.unstick();
    await t.runtime.stop();
    expect(t.ticks.filter((x) => x.id === 'ml/fast' && x.at <= 60_000).map((x) => x.at)).toEqual([0, ...onPhase('ml/fast', 10_000, 0, 60_000, 1)]);
    expect(t.ticks.filter((x) => x.id === 'ml/slow').map((x) => x.at)).toEqual([0]);
    // Every scheduled tick started within 10 ms of its due time (first ticks are not scheduled).
    const text = await t.registry.getSingleMetricAsString('sair_policy_tick_lag_seconds');
    const count = Number(/_count\{[^}]*\} (\d+)/.exec(text)![1]);
    expect(count).toBeGreaterThanOrEqual(onPhase('ml/fast', 10_000, 0, 60_000, 1).length);
    expect(Number(/_bucket\{le="0.01"[^}]*\} (\d+)/.exec(text)![1])).toBe(count);
  });
});
