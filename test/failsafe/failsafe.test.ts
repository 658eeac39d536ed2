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
import { hpa, namespace } from '../policy-server/k8s/helpers.js';

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
    api.remove('leases', 'sair-system', 'sair-policy');
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

  function failsafe(afterMs: number, now?: () => number) {
    return new Failsafe({
      clients: api.clients(),
      logger,
      registry: createRegistry('failsafe', { defaultMetrics: false }),
      leaseNamespace: 'sair-system',
      leaseNames: ['sair-policy'],
      afterMs,
      callTimeoutMs: 2_000,
      identity: 'failsafe-test',
      ...(now ? { now } : {}),
    });
  }

  async function leader(): Promise<LeaderElector> {
    const e = new LeaderElector({
      coordination: api.clients('sair-system').coordination,
      namespace: 'sair-system',
      name: 'sair-policy',
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
    expect(JSON.parse(restored.metadata!.annotations!['sair.dev/failsafe']!)).toMatchObject({ reason: expect.stringContaining('lease') });
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
});
