// The failsafe's least privilege, enforced by the API server: the RBAC and the
// ValidatingAdmissionPolicy of manifests/failsafe, applied to the fake API server, which
// authorizes the sair-failsafe ServiceAccount's token by the stored bindings and evaluates the
// policy's CEL as kube-apiserver does. Every change the failsafe makes (take-over, suspension,
// release) is admitted; any other write is refused with 403, even with RBAC widened by mistake.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { takeOver, type HpaObject } from '../../src/common/hpa-takeover.js';
import type { KubeClients } from '../../src/common/k8s.js';
import { createLogger } from '../../src/common/logger.js';
import { createRegistry } from '../../src/common/metrics.js';
import { Failsafe } from '../../src/failsafe/failsafe.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { expectRefused } from '../support/refused.js';
import { kustomizeBuild } from '../support/manifests.js';
import { hpa, namespace } from '../policy-server/k8s/helpers.js';

type Hpa = k8s.V2HorizontalPodAutoscaler;
const HPAS = 'horizontalpodautoscalers.autoscaling';

/** An HPA as a user writes it, with its own behavior (or none), taken over by the webhook unless `raw`. */
function userHpa(ns: string, name: string, behavior: k8s.V2HorizontalPodAutoscalerBehavior | undefined, labels: Record<string, string> = {}, raw = false): Hpa {
  const h = hpa(ns, name, name, 1, 10, labels);
  if (behavior) h.spec!.behavior = behavior;
  else delete h.spec!.behavior;
  return raw ? h : (takeOver(h as unknown as HpaObject).object as unknown as Hpa);
}

describe('failsafe least privilege (manifests/failsafe) enforced by the API server', () => {
  let api: FakeApiServer;
  let fs: KubeClients;
  let clock = 1_000_000;
  let failsafe: Failsafe;

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'], strictAuthentication: true });
    for (const o of kustomizeBuild(path.resolve('manifests/failsafe'))) if (o.kind !== 'Deployment' && o.kind !== 'PodDisruptionBudget') api.seed(o);
    api.seed(namespace('ml', true));
    api.seed(namespace('gone', false));
    api.seed(userHpa('ml', 'web', { scaleDown: { stabilizationWindowSeconds: 60 } }));
    api.seed(userHpa('ml', 'bare', undefined));
    api.seed(userHpa('ml', 'fresh', undefined, {}, true));
    api.seed(userHpa('ml', 'optout', { scaleDown: { stabilizationWindowSeconds: 60 } }, { 'sair.dev/inject': 'false' }));
    api.seed(userHpa('gone', 'web', { scaleDown: { stabilizationWindowSeconds: 60 } }));
    api.seed(userHpa('gone', 'plain', undefined, {}, true));
    fs = api.clients('sair-system', api.tokenFor('sair-system', 'sair-failsafe'));
    failsafe = new Failsafe({
      clients: fs,
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
  });
  afterAll(async () => {
    await api.close();
  });

  const current = (ns: string, name: string) => structuredClone(api.get<Hpa>(HPAS, ns, name)!);
  const annotations = (ns: string, name: string) => current(ns, name).metadata?.annotations ?? {};
  const replace = (body: Hpa) => fs.autoscaling.replaceNamespacedHorizontalPodAutoscaler({ name: body.metadata!.name!, namespace: body.metadata!.namespace!, body });

  describe('every change the failsafe makes is admitted', () => {
    it('releases HPAs where the namespace lost its label or the HPA opted out, and takes over an unmarked one', async () => {
      const pass = await failsafe.pass();
      expect(pass.changes).toEqual(
        expect.arrayContaining([
          { hpa: 'ml/fresh', action: 'take-over', outcome: 'ok' },
          { hpa: 'ml/optout', action: 'release', outcome: 'ok' },
          { hpa: 'gone/web', action: 'release', outcome: 'ok' },
        ]),
      );
      expect(pass.changes).toHaveLength(3);
      expect(current('gone', 'web').spec?.behavior?.scaleDown?.selectPolicy).not.toBe('Disabled');
      expect(annotations('gone', 'web')).toEqual({});
      expect(current('ml', 'fresh').spec?.behavior?.scaleUp?.selectPolicy).toBe('Disabled');
    });

    it('suspends every taken-over HPA when no leader renews the Lease, and takes them over when one does', async () => {
      clock += 61_000;
      const suspended = await failsafe.pass();
      expect(suspended.changes.map((c) => [c.hpa, c.action, c.outcome]).sort()).toEqual([
        ['ml/bare', 'suspend', 'ok'],
        ['ml/fresh', 'suspend', 'ok'],
        ['ml/web', 'suspend', 'ok'],
      ]);
      expect(current('ml', 'bare').spec?.behavior).toBeUndefined();
      expect(current('ml', 'web').spec?.behavior?.scaleDown?.stabilizationWindowSeconds).toBe(60);
      api.seed({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'sair-policy', namespace: 'sair-system' }, spec: { holderIdentity: 'policy-0', renewTime: new Date(clock).toISOString() } });
      clock += 1_000;
      const back = await failsafe.pass();
      expect(back.changes.map((c) => [c.hpa, c.action, c.outcome]).sort()).toEqual([
        ['ml/bare', 'take-over', 'ok'],
        ['ml/fresh', 'take-over', 'ok'],
        ['ml/web', 'take-over', 'ok'],
      ]);
      expect(annotations('ml', 'bare')['sair.dev/original-behavior']).toBe('null');
    });
  });

  describe('anything else is refused with 403 and what is allowed', () => {
    const onlyBehavior = /ValidatingAdmissionPolicy 'sair-failsafe-least-privilege' .* may change only spec.behavior and the SAIR marks/;
    const onlyAs = /changes HPA .* only to take it over .*, to suspend it .* or to release it/;

    it("an HPA's bounds, target, metrics, or another label or annotation", async () => {
      const bounds = current('ml', 'web');
      bounds.spec!.maxReplicas = 1000;
      await expectRefused(replace(bounds), onlyBehavior);
      const min = current('ml', 'web');
      min.spec!.minReplicas = 0;
      await expectRefused(replace(min), onlyBehavior);
      const target = current('ml', 'web');
      target.spec!.scaleTargetRef.name = 'other';
      await expectRefused(replace(target), onlyBehavior);
      const metrics = current('ml', 'web');
      metrics.spec!.metrics = [];
      await expectRefused(replace(metrics), onlyBehavior);
      const label = current('ml', 'web');
      label.metadata!.labels = { ...label.metadata!.labels, team: 'x' };
      await expectRefused(replace(label), onlyBehavior);
      const annotation = current('gone', 'plain');
      annotation.metadata!.annotations = { 'sair.dev/slo-p99-ms': '1' };
      await expectRefused(replace(annotation), onlyBehavior);
      expect(current('ml', 'web').spec?.maxReplicas).toBe(10);
    });

    it('a take-over that leaves a direction enabled, or in a namespace that is not opted in', async () => {
      const enabled = current('ml', 'web');
      enabled.spec!.behavior!.scaleUp!.selectPolicy = 'Max';
      await expectRefused(replace(enabled), onlyAs);
      const elsewhere = takeOver(current('gone', 'plain') as unknown as HpaObject).object as unknown as Hpa;
      await expectRefused(replace(elsewhere), onlyAs);
      const unrecorded = current('gone', 'plain');
      unrecorded.spec!.behavior = { scaleUp: { selectPolicy: 'Disabled' }, scaleDown: { selectPolicy: 'Disabled' } };
      await expectRefused(replace(unrecorded), onlyAs);
    });

    it('a release in an opted-in namespace, and a hand-back of a behavior the HPA never had', async () => {
      const release = current('ml', 'web');
      for (const k of ['sair.dev/original-behavior', 'sair.dev/managed']) delete release.metadata!.annotations![k];
      delete release.metadata!.labels!['sair.dev/managed'];
      await expectRefused(replace(release), onlyAs);
      const invented = current('ml', 'bare');
      invented.metadata!.annotations!['sair.dev/failsafe'] = JSON.stringify({ reason: 'x', since: '' });
      invented.spec!.behavior = { scaleUp: { selectPolicy: 'Max', policies: [{ type: 'Percent', value: 900, periodSeconds: 15 }] } };
      await expectRefused(replace(invented), onlyAs);
    });

    it('an Event posing as another component', async () => {
      const event = {
        metadata: { name: 'web.fake', namespace: 'ml' },
        involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'ml' },
        reason: 'ScalingReplicaSet',
        message: 'Scaled up',
        type: 'Normal',
        reportingComponent: 'deployment-controller',
      };
      await expectRefused(fs.core.createNamespacedEvent({ namespace: 'ml', body: event }), /Events about HorizontalPodAutoscalers as reportingComponent sair.dev\/failsafe only/);
    });

    it('creates, deletes and other kinds even if RBAC granted them by mistake', async () => {
      api.seed({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'too-much' }, rules: [{ apiGroups: ['*'], resources: ['*'], verbs: ['*'] }] });
      api.seed({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'too-much' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'too-much' },
        subjects: [{ kind: 'ServiceAccount', name: 'sair-failsafe', namespace: 'sair-system' }],
      });
      const only = /only updates HorizontalPodAutoscalers and creates Events; it may not/;
      await expectRefused(fs.autoscaling.deleteNamespacedHorizontalPodAutoscaler({ name: 'web', namespace: 'ml' }), /may not DELETE horizontalpodautoscalers.autoscaling ml\/web/);
      await expectRefused(fs.autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: 'ml', body: userHpa('ml', 'new', undefined) }), only);
      const status = current('ml', 'web');
      status.status = { currentReplicas: 5, desiredReplicas: 9 };
      await expectRefused(fs.autoscaling.replaceNamespacedHorizontalPodAutoscalerStatus({ name: 'web', namespace: 'ml', body: status }), /horizontalpodautoscalers.autoscaling\/status/);
      await expectRefused(fs.core.createNamespacedConfigMap({ namespace: 'ml', body: { metadata: { name: 'x' } } }), only);
      expect(api.get<Hpa>(HPAS, 'ml', 'web')).toBeDefined();
    });
  });
});
