// The failsafe against the fake API server: HPAs SAIR took over get their own behavior back once no
// leader renews the Lease for the failsafe delay, and are taken over again when a leader returns;
// an HPA whose namespace opts out, or that is labelled sair.dev/inject=false, is released for good.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { takeOver, type HpaObject } from '../../src/common/hpa-takeover.js';
import { createLogger } from '../../src/common/logger.js';
import { createRegistry } from '../../src/common/metrics.js';
import { Failsafe } from '../../src/failsafe/failsafe.js';
import { LeaderElector } from '../../src/policy-server/k8s/leader.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { hpaPipelineId, shardName, shardOf } from '../../src/core/shards.js';
import { hpa, namespace, pipeline } from '../policy-server/k8s/helpers.js';

const logger = createLogger('test', 'silent');
const userBehavior = { scaleDown: { stabilizationWindowSeconds: 60, selectPolicy: 'Max' } };

describe('failsafe', () => {
  let api: FakeApiServer;
  let electors: LeaderElector[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  });
  afterEach(async () => {
    await Promise.all(electors.map((e) => e.stop({ release: false })));
    electors = [];
    for (const l of api.list<k8s.V1Lease>('leases', 'sair-system')) api.remove('leases', 'sair-system', l.metadata!.name!);
    for (const p of api.list<{ metadata: { name: string } }>('inferencepipelines', 'ml')) api.remove('inferencepipelines', 'ml', p.metadata.name);
    for (const h of api.list<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers')) api.remove('horizontalpodautoscalers', h.metadata!.namespace, h.metadata!.name!);
  });
  afterAll(async () => {
    await api.close();
  });

  /** An HPA as the webhook leaves it: taken over, the user's behavior in the annotation. */
  function seedTakenOver(ns: string, name: string, labels: Record<string, string> = {}) {
    const raw = hpa(ns, name, name, 1, 10, labels);
    raw.spec!.behavior = userBehavior;
    api.seed(takeOver(raw as unknown as HpaObject).object);
  }

  const stored = (ns: string, name: string) => api.get<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers', ns, name)!;

  function failsafe(afterMs: number, now?: () => number, shards = 1) {
    return new Failsafe({
      clients: api.clients(),
      logger,
      registry: createRegistry('failsafe', { defaultMetrics: false }),
      leaseNamespace: 'sair-system',
      leaseName: 'sair-policy',
      shards,
      afterMs,
      callTimeoutMs: 2_000,
      identity: 'failsafe-test',
      ...(now ? { now } : {}),
    });
  }

  async function leader(name = 'sair-policy'): Promise<LeaderElector> {
    const e = new LeaderElector({
      coordination: api.clients('sair-system').coordination,
      namespace: 'sair-system',
      name,
      identity: 'policy-a',
      leaseDurationSeconds: 1,
      renewDeadlineMs: 800,
      retryPeriodMs: 100,
      logger,
    });
    electors.push(e);
    e.start();
    while (!e.isLeader()) await new Promise((r) => setTimeout(r, 20));
    return e;
  }

  it('hands taken-over HPAs their behavior back once the lease goes unrenewed, and takes them over when a leader returns', async () => {
    api.seed(namespace('ml', true));
    seedTakenOver('ml', 'web');
    const elector = await leader();
    let clock = Date.now();
    const f = failsafe(180_000, () => clock);

    expect((await f.pass()).changes).toEqual([]);
    await elector.stop({ release: false });
    const lastRenewal = new Date(String(api.get<k8s.V1Lease>('leases', 'sair-system', 'sair-policy')!.spec!.renewTime)).getTime();
    // Ages run from when the failsafe saw the record change (its own clock): it sees the last one now.
    clock = lastRenewal;
    await f.pass();

    clock = lastRenewal + 170_000;
    expect((await f.pass()).liveness.alive).toBe(true);
    expect(stored('ml', 'web').spec!.behavior?.scaleUp?.selectPolicy).toBe('Disabled');

    clock = lastRenewal + 181_000;
    const pass = await f.pass();
    expect(pass.liveness.alive).toBe(false);
    expect(pass.changes).toEqual([{ hpa: 'ml/web', action: 'suspend', outcome: 'ok' }]);
    const restored = stored('ml', 'web');
    expect(restored.spec!.behavior).toEqual(userBehavior);
    expect(JSON.parse(restored.metadata!.annotations!['sair.dev/failsafe']!)).toMatchObject({ reason: expect.stringContaining('Lease sair-policy') });
    const events = api.list<k8s.CoreV1Event>('events', 'ml');
    expect(events.map((e) => e.reason)).toContain('SairFailsafe');
    // Level-based: another pass changes nothing.
    expect((await f.pass()).changes).toEqual([]);

    await leader();
    clock = Date.now() + 200_000;
    const back = await f.pass();
    expect(back.liveness.alive).toBe(true);
    expect(back.changes).toEqual([{ hpa: 'ml/web', action: 'take-over', outcome: 'ok' }]);
    const again = stored('ml', 'web');
    expect(again.spec!.behavior).toMatchObject({ scaleUp: { selectPolicy: 'Disabled' }, scaleDown: { selectPolicy: 'Disabled', stabilizationWindowSeconds: 60 } });
    expect(JSON.parse(again.metadata!.annotations!['sair.dev/original-behavior']!)).toEqual(userBehavior);
    expect(again.metadata!.annotations!['sair.dev/failsafe']).toBeUndefined();
  });

  it('with no Lease at all (SAIR never started, or was removed) it restores after the delay counted from its own start', async () => {
    api.seed(namespace('ml', true));
    seedTakenOver('ml', 'web');
    let clock = 1_000_000;
    const f = failsafe(60_000, () => clock);
    expect((await f.pass()).changes).toEqual([]);
    clock += 61_000;
    expect((await f.pass()).changes).toEqual([{ hpa: 'ml/web', action: 'suspend', outcome: 'ok' }]);
  });

  it('releases for good an HPA labelled sair.dev/inject=false or in a namespace that lost its opt-in label, leader or not', async () => {
    api.seed(namespace('ml', true));
    api.seed(namespace('old', false));
    seedTakenOver('ml', 'opted-out', { 'sair.dev/managed': 'true', 'sair.dev/inject': 'false' });
    seedTakenOver('old', 'web');
    await leader();
    const pass = await failsafe(180_000).pass();
    expect(pass.liveness.alive).toBe(true);
    expect(pass.changes.sort((a, b) => a.hpa.localeCompare(b.hpa))).toEqual([
      { hpa: 'ml/opted-out', action: 'release', outcome: 'ok' },
      { hpa: 'old/web', action: 'release', outcome: 'ok' },
    ]);
    for (const [ns, name] of [['ml', 'opted-out'], ['old', 'web']] as const) {
      const h = stored(ns, name);
      expect(h.spec!.behavior).toEqual(userBehavior);
      expect(h.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/original-behavior');
      expect(h.metadata!.labels ?? {}).not.toHaveProperty('sair.dev/managed');
    }
  });

  it('a write that races another writer gets a 409 and is left to the next pass', async () => {
    api.seed(namespace('ml', true));
    seedTakenOver('ml', 'web');
    let clock = 1_000_000;
    const f = failsafe(1_000, () => clock);
    await f.pass();
    clock += 5_000;
    api.injectFault({ verb: 'update', resource: 'horizontalpodautoscalers', status: 409 });
    expect((await f.pass()).changes).toEqual([{ hpa: 'ml/web', action: 'suspend', outcome: 'conflict' }]);
    expect((await f.pass()).changes).toEqual([{ hpa: 'ml/web', action: 'suspend', outcome: 'ok' }]);
  });

  it("with shards, only the HPAs a lapsed shard decides for get their behavior back, a pipeline's by the pipeline's shard too", async () => {
    const SHARDS = 4;
    api.seed(namespace('ml', true));
    const names = Array.from({ length: 16 }, (_, i) => `web-${i}`);
    const shard = (name: string) => shardOf(hpaPipelineId('ml', name), SHARDS);
    const lapsing = shard('web-0');
    const same = names.find((n) => shard(n) === lapsing)!;
    const other = names.find((n) => shard(n) !== lapsing)!;
    // A pipeline of the lapsing shard names the Deployment of an HPA whose own id is in another.
    const pipelineName = Array.from({ length: 32 }, (_, i) => `vid-${i}`).find((n) => shardOf(`ml/${n}`, SHARDS) === lapsing)!;
    const claimed = names.find((n) => shard(n) !== lapsing && n !== other)!;
    api.seed(pipeline('ml', pipelineName, { slo: { p99Ms: 300 }, stages: [{ name: 's', deployment: claimed }] }));
    for (const n of new Set([same, other, claimed])) seedTakenOver('ml', n);
    const electors = new Map<number, LeaderElector>();
    for (let i = 0; i < SHARDS; i++) electors.set(i, await leader(shardName('sair-policy', i, SHARDS)));
    let clock = Date.now();
    const f = failsafe(180_000, () => clock, SHARDS);
    expect((await f.pass()).changes).toEqual([]);
    await electors.get(lapsing)!.stop({ release: false });
    await f.pass();
    // The other shards are renewed in real time (every 100 ms): the next pass sees their records change.
    await new Promise((r) => setTimeout(r, 300));
    clock += 181_000;
    const pass = await f.pass();
    expect(pass.changes.sort((a, b) => a.hpa.localeCompare(b.hpa))).toEqual(
      [same, claimed].sort().map((n) => ({ hpa: `ml/${n}`, action: 'suspend', outcome: 'ok' })),
    );
    expect(JSON.parse(stored('ml', same).metadata!.annotations!['sair.dev/failsafe']!).reason).toContain(shardName('sair-policy', lapsing, SHARDS));
    expect(stored('ml', other).spec!.behavior?.scaleUp?.selectPolicy).toBe('Disabled');
  });
});
