// The failsafe under the RBAC of manifests/failsafe, enforced by the fake API server as the real
// one does (ServiceAccount token, Roles and bindings from the manifests): what it needs is allowed,
// and a write outside its rules is refused with 403.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { takeOver, type HpaObject } from '../../src/common/hpa-takeover.js';
import { createLogger } from '../../src/common/logger.js';
import { createRegistry } from '../../src/common/metrics.js';
import { Failsafe } from '../../src/failsafe/failsafe.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { kustomizeBuild } from '../support/manifests.js';
import { hpa, namespace } from '../policy-server/k8s/helpers.js';

describe('failsafe RBAC (manifests/failsafe) enforced by the API server', () => {
  let api: FakeApiServer;
  let token: string;
  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'], strictAuthentication: true });
    for (const o of kustomizeBuild(path.resolve('manifests/failsafe'))) if (o.kind !== 'Deployment' && o.kind !== 'PodDisruptionBudget') api.seed(o);
    token = api.tokenFor('sair-system', 'sair-failsafe');
    api.seed(namespace('ml', true));
    const raw = hpa('ml', 'web', 'web', 1, 10, {});
    raw.spec!.behavior = { scaleDown: { stabilizationWindowSeconds: 60 } };
    api.seed(takeOver(raw as unknown as HpaObject).object);
  });
  afterAll(async () => {
    await api.close();
  });

  it('may do all it needs: with no Lease for the delay it suspends the HPA and records an Event', async () => {
    let clock = 1_000_000;
    const f = new Failsafe({
      clients: api.clients('sair-system', token),
      logger: createLogger('test', 'silent'),
      registry: createRegistry('failsafe', { defaultMetrics: false }),
      leaseNamespace: 'sair-system',
      leaseName: 'sair-policy',
      shards: 1,
      afterMs: 60_000,
      callTimeoutMs: 2_000,
      identity: 'failsafe-0',
      now: () => clock,
    });
    await f.pass();
    clock += 61_000;
    expect((await f.pass()).changes).toEqual([{ hpa: 'ml/web', action: 'suspend', outcome: 'ok' }]);
    expect(api.list<k8s.CoreV1Event>('events', 'ml').map((e) => e.reason)).toContain('SairFailsafe');
  });

  it('is refused a write outside its rules', async () => {
    const { autoscaling, apps, coordination } = api.clients('sair-system', token);
    await expect(autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'web', namespace: 'ml' })).rejects.toMatchObject({ code: 403 });
    await expect(apps.listNamespacedDeployment({ namespace: 'ml' })).rejects.toMatchObject({ code: 403 });
    const lease = { metadata: { name: 'sair-policy', namespace: 'sair-system' }, spec: { holderIdentity: 'failsafe' } };
    await expect(coordination.createNamespacedLease({ namespace: 'sair-system', body: lease })).rejects.toMatchObject({ code: 403 });
  });
});
