import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { UpstreamError } from '../../src/common/errors.js';
import { createSairController } from '../../src/policy/controller.js';
import type { ClusterPort, MetricsPort, PipelineObservation, ScalingAction, TickReport } from '../../src/core/ports.js';
import { policySettings, type PolicySettingsInput } from '../../src/policy/settings.js';
import { startFakeLlm } from '../support/fake-llm.js';
import { observation, pipeline } from './fixtures.js';

const hot = () =>
  observation(
    [
      { arrival: 100, perReplica: 80, replicas: 2 },
      { arrival: 100, perReplica: 30, replicas: 2, gpuCores: 50 },
      { arrival: 100, perReplica: 100, replicas: 2 },
    ],
    { p99Ms: 900, sloViolation: 0.2 },
  );
const calm = () =>
  observation(
    [
      { arrival: 40, perReplica: 80, replicas: 2 },
      { arrival: 40, perReplica: 30, replicas: 3, gpuCores: 50 },
      { arrival: 40, perReplica: 100, replicas: 2 },
    ],
    { p99Ms: 200, costRate: 1.2 },
  );

/** A test double for the cluster and metrics ports: records what the controller did. */
function world(obs: () => PipelineObservation, failApply = false) {
  const applied: ScalingAction[] = [];
  const reports: TickReport[] = [];
  let t = 0;
  const cluster: ClusterPort = {
    listPipelines: async () => [pipeline()],
    allocation: async () => obs().allocation,
    apply: async (_id, a) => {
      if (failApply) throw new UpstreamError('kube-apiserver', 'deployments/scale: 403 forbidden', 403);
      applied.push(a);
    },
    report: async (_id, r) => void reports.push(r),
  };
  const metrics: MetricsPort = { observe: async () => ({ ...obs(), time: t }) };
  const clock = { now: () => t, sleep: async (ms: number) => void (t += ms), advance: (ms: number) => (t += ms) };
  return { cluster, metrics, clock, applied, reports };
}

const settings = (extra: PolicySettingsInput = {}) => policySettings({ exploration: { epsilon: 0 }, ...extra });

describe('SAIR controller tick', () => {
  it('scales up the saturated stage, reports it as the bottleneck and records the decision', async () => {
    const w = world(hot);
    const registry = new Registry();
    const seen: string[] = [];
    const c = createSairController({ ...w, config: settings(), registry, onDecision: (r) => seen.push(r.id) });
    const report = await c.tick(pipeline());
    expect(report.bottleneck).toBe(1);
    expect(w.reports).toEqual([report]);
    expect(w.applied.some((a) => a.kind === 'replicas' && a.stage === 1 && a.replicas > 2)).toBe(true);
    const [d] = c.recentDecisions(5);
    expect(seen).toEqual([d!.id]);
    expect(d).toMatchObject({ bottleneck: 1, selector: 'bandit', dryRun: false, reward: null, sloP99Ms: 500 });
    expect(d!.candidates).toContain(d!.proposed);
    expect(d!.computeMs).toBeGreaterThan(0);
    const text = await registry.metrics();
    expect(text).toMatch(/sair_policy_decisions_total\{selector="bandit",outcome="applied"\} 1/);
    expect(text).toMatch(/sair_policy_tick_compute_seconds_count 1/);
  });

  /**
   * A tick on `before`, then ticks every 15 s on `after` until the first decision's horizon has
   * passed and it is credited: the controller, that first decision, and the buffer right then.
   */
  async function creditedAfter(before: PipelineObservation, after: PipelineObservation) {
    let obs = before;
    const w = world(() => obs);
    const c = createSairController({ ...w, config: settings() });
    await c.tick(pipeline());
    obs = after;
    for (let k = 0; k < 40; k++) {
      w.clock.advance(15_000);
      await c.tick(pipeline());
      const first = c.recentDecisions(100).at(-1)!;
      if (first.reward) return { c, first, ticks: k + 1, buffer: c.bufferStats() };
    }
    throw new Error('the first decision was never credited');
  }

  it('credits a decision with the mean outcome of the windows after it, and remembers what a selector chose', async () => {
    const { first, ticks, buffer } = await creditedAfter(calm(), { ...calm(), p99Ms: 150 });
    // Six 30 s windows after the decision, at 15 s ticks.
    expect(ticks).toBe(12);
    expect(first.forced).toBe(false);
    expect(first.appliedBy.every((s) => s === 'selector')).toBe(true);
    // The first decision in its kind of state has nothing to be compared with: its own mean is the reference.
    expect(first.reward!.value).toBe(0);
    expect(first.reward!.outcome.p99Ratio).toBeCloseTo(0.3);
    expect(first.reward!.outcome.costRate).toBeCloseTo(1.2);
    expect(buffer).toMatchObject({ cells: 1, experiences: 1 });
  });

  it('logs the credit of what a floor produced on a breach but does not learn it', async () => {
    const { first, buffer } = await creditedAfter(hot(), calm());
    expect(first.forced).toBe(true);
    expect(first.appliedBy).toContain('floor');
    expect(first.floors.join()).toMatch(/SLO breach/);
    expect(first.reward!.outcome.p99Ratio).toBeCloseTo(0.4);
    expect(first.reward!.outcome.costRate).toBeCloseTo(1.2);
    expect(buffer).toMatchObject({ cells: 0, experiences: 0 });
  });

  it('changes nothing in dry-run mode (settings or the pipeline) but still reports', async () => {
    for (const [config, spec] of [
      [settings({ dryRun: true }), pipeline()],
      [settings(), pipeline({ mode: 'DryRun' })],
    ] as const) {
      const w = world(hot);
      const c = createSairController({ ...w, config });
      await c.tick(spec);
      expect(w.applied).toEqual([]);
      expect(w.reports).toHaveLength(1);
      const [d] = c.recentDecisions(1);
      expect(d!.dryRun).toBe(true);
      expect(d!.applied.length).toBeGreaterThan(0);
      expect(d!.guard).toContain('dry run: nothing applied');
    }
  });

  it('does not offer the selector a trim the normalizer would hold, and names it in the decision', async () => {
    let obs = hot();
    const w = world(() => obs);
    const c = createSairController({ ...w, config: settings() });
    await c.tick(pipeline());
    // Stage 1 was just scaled up: a trim now is in its scale-down cooldown.
    w.clock.advance(15_000);
    obs = calm();
    await c.tick(pipeline());
    const [d] = c.recentDecisions(1);
    expect(d!.candidates).not.toContain('s1-1');
    expect(d!.candidates).toContain('hold');
    expect(d!.candidates).toContain(d!.proposed);
    expect(d!.guard.find((n) => n.startsWith('not offered'))).toMatch(/^not offered \(the normalizer would hold them\): .*s1-1/);
  });

  it('holds when metrics are missing', async () => {
    const w = world(() => ({ ...calm(), p99Ms: null }));
    const c = createSairController({ ...w, config: settings() });
    const report = await c.tick(pipeline());
    expect(report.actions).toEqual([]);
    expect(w.applied).toEqual([]);
    expect(c.recentDecisions(1)[0]!.guard).toContain('metrics missing: hold');
  });

  it('records an action the cluster refused instead of failing the tick', async () => {
    const w = world(hot, true);
    const c = createSairController({ ...w, config: settings() });
    const report = await c.tick(pipeline());
    expect(report.actions).toEqual([]);
    expect(c.recentDecisions(1)[0]!.guard.join()).toMatch(/apply failed: kube-apiserver: deployments\/scale: 403/);
  });

  it('snapshots its experience and restores it on start', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-ctl-'));
    const snapshotPath = join(dir, 'experience.json');
    let obs = hot();
    const w = world(() => obs);
    const a = createSairController({ ...w, config: settings(), snapshotPath });
    await a.tick(pipeline());
    obs = calm();
    w.clock.advance(30_000);
    await a.tick(pipeline());
    await a.close();
    const b = createSairController({ ...world(calm), config: settings(), snapshotPath });
    await b.tick(pipeline());
    expect(b.buffer.dump()).toEqual(a.buffer.dump());
    await b.close();
  });

  it('keeps the entry-rate history across a restart, so a recurring load is still forecast', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-ctl-'));
    const snapshotPath = join(dir, 'experience.json');
    // A one-minute burst to 3.5x every ten minutes, for 25 minutes of 15 s ticks.
    let t = 0;
    const burst = () => (t % 600_000 >= 540_000 ? 140 : 40);
    const obs = () => ({ ...calm(), arrivalRate: burst() });
    const w = world(obs);
    const seen: (number | null)[] = [];
    const a = createSairController({ ...w, config: settings(), snapshotPath, onDecision: (r) => seen.push(r.forecast?.periodMs ?? null) });
    for (t = 15_000; t <= 25 * 60_000; t += 15_000) {
      w.clock.advance(15_000);
      await a.tick(pipeline());
    }
    expect(seen.at(-1)).toBe(600_000);
    await a.close();
    const restarted: (number | null)[] = [];
    const w2 = world(obs);
    w2.clock.advance(t);
    const b = createSairController({ ...w2, config: settings(), snapshotPath, onDecision: (r) => restarted.push(r.forecast?.periodMs ?? null) });
    await b.tick(pipeline());
    expect(restarted).toEqual([600_000]);
    await b.close();
  });

  it('keeps each GPU stage\'s learned cut depth across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-ctl-'));
    const snapshotPath = join(dir, 'experience.json');
    // Stage 1: two replicas at 60 % (two GPUs) at 0.6 of their capacity; at 50 % they would share one.
    const packable = () =>
      observation(
        [
          { arrival: 36, perReplica: 80, replicas: 1 },
          { arrival: 36, perReplica: 30, replicas: 2, gpuCores: 60 },
          { arrival: 36, perReplica: 100, replicas: 1 },
        ],
        { p99Ms: 200 },
      );
    const w = world(packable);
    const limits: number[] = [];
    const a = createSairController({ ...w, config: settings(), snapshotPath, onDecision: (r) => limits.push(r.operatingPoint[1]!) });
    // The depth moves only once an hour of load is known (the peak a cut must be recoverable for).
    for (let k = 0; k < 80 * 4; k++) {
      w.clock.advance(15_000);
      await a.tick(pipeline());
    }
    expect(limits[0]).toBe(0.4);
    expect(limits.at(-1)!).toBeGreaterThan(0.4);
    await a.close();
    const restarted: number[] = [];
    const w2 = world(packable);
    w2.clock.advance(81 * 60_000);
    const b = createSairController({ ...w2, config: settings(), snapshotPath, onDecision: (r) => restarted.push(r.operatingPoint[1]!) });
    await b.tick(pipeline());
    expect(restarted).toEqual([limits.at(-1)]);
    await b.close();
  });

  it('asks the LLM when one is configured, and falls back to the bandit when it fails', async () => {
    const llm = await startFakeLlm();
    try {
      const w = world(hot);
      const c = createSairController({
        ...w,
        config: settings({ selector: 'llm', llm: { baseUrl: llm.url, model: 'scripted', timeoutMs: 2_000, maxRetries: 0 } }),
      });
      await c.tick(pipeline());
      llm.script('500');
      w.clock.advance(30_000);
      await c.tick(pipeline());
      const [second, first] = c.recentDecisions(2);
      expect(first).toMatchObject({ selector: 'llm', fallbackReason: null, promptHash: expect.stringMatching(/^[0-9a-f]{16}$/) });
      expect(second!.selector).toBe('bandit');
      expect(second!.fallbackReason).toMatch(/llm: server-error/);
      expect(llm.requests[0]!.body.messages[1]!.content).not.toMatch(/infer/);
    } finally {
      await llm.close();
    }
  });
});
