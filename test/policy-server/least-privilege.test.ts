// The policy server's least privilege, enforced by the API server: the RBAC and the
// ValidatingAdmissionPolicy of manifests/policy, applied to the fake API server, which authorizes
// the sair-policy ServiceAccount's token by the stored bindings and evaluates the policy's CEL as
// kube-apiserver does. The writes a decision makes pass; any other write is refused with 403.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { resolveLlmSettings } from '../../src/policy-server/k8s/llm-settings.js';
import { MERGE_PATCH, STRATEGIC_MERGE_PATCH, type KubeClients } from '../../src/common/k8s.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { expectRefused } from '../support/refused.js';
import { kustomizeBuild } from '../support/manifests.js';
import { deployment, namespace, pipeline, pod } from './k8s/helpers.js';

const annotate = (annotations: Record<string, string>) => ({ metadata: { annotations } });

describe('policy server least privilege (manifests/policy) enforced by the API server', () => {
  let api: FakeApiServer;
  let sa: KubeClients;
  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'kube-system', 'sair-system'], strictAuthentication: true });
    for (const o of kustomizeBuild(path.resolve('manifests/crds'))) api.seed(o);
    for (const o of kustomizeBuild(path.resolve('manifests/policy'))) if (!['Deployment', 'PodDisruptionBudget', 'NetworkPolicy'].includes(o.kind)) api.seed(o);
    api.seed(namespace('ml', true));
    api.seed(namespace('other', false));
    for (const ns of ['ml', 'other', 'kube-system']) {
      api.seed(deployment(ns, 'web', 2, 50));
      api.seed(pod(ns, 'web', 'a', 50));
    }
    api.seed(pipeline('ml', 'video', { slo: { p99Ms: 800 }, stages: [{ name: 'web', deployment: 'web', maxReplicas: 4 }] }));
    sa = api.clients('sair-system', api.tokenFor('sair-system', 'sair-policy'));
  });
  afterAll(async () => {
    await api.close();
  });

  it('campaigns for its Leases: the single one, a shard Lease and its member Lease, created, renewed, listed and deleted', async () => {
    for (const name of ['sair-policy', 'sair-policy-shard-2-of-6', 'sair-policy-member-sair-policy-7c9f8-x2x4q']) {
      const created = await sa.coordination.createNamespacedLease({ namespace: 'sair-system', body: { metadata: { name }, spec: { holderIdentity: 'sair-policy-7c9f8-x2x4q' } } });
      await sa.coordination.replaceNamespacedLease({ name, namespace: 'sair-system', body: { ...created, spec: { ...created.spec, leaseDurationSeconds: 15 } } });
    }
    expect((await sa.coordination.listNamespacedLease({ namespace: 'sair-system' })).items.map((l) => l.metadata!.name).sort()).toEqual([
      'sair-policy',
      'sair-policy-member-sair-policy-7c9f8-x2x4q',
      'sair-policy-shard-2-of-6',
    ]);
    await sa.coordination.deleteNamespacedLease({ name: 'sair-policy-member-sair-policy-7c9f8-x2x4q', namespace: 'sair-system' });
  });

  describe('in an opted-in namespace it may do what a decision does', () => {
    it('scale a Deployment through deployments/scale', async () => {
      const scale = await sa.apps.readNamespacedDeploymentScale({ name: 'web', namespace: 'ml' });
      await sa.apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: 'ml', body: { ...scale, spec: { replicas: 3 } } });
      expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'web')?.spec?.replicas).toBe(3);
    });

    it('set the share annotations of a Deployment and of its pods', async () => {
      await sa.apps.patchNamespacedDeployment({ name: 'web', namespace: 'ml', body: annotate({ 'sair.dev/current-gpu-cores': '40' }) }, MERGE_PATCH);
      await sa.core.patchNamespacedPod({ name: 'web-7c9f8-a', namespace: 'ml', body: annotate({ 'sair.dev/gpu-cores': '40' }) }, MERGE_PATCH);
      expect(api.get<k8s.V1Pod>('pods', 'ml', 'web-7c9f8-a')?.metadata?.annotations?.['sair.dev/gpu-cores']).toBe('40');
    });

    it('write pipeline status and its Events', async () => {
      await sa.custom.patchNamespacedCustomObjectStatus(
        { group: 'sair.dev', version: 'v1alpha1', namespace: 'ml', plural: 'inferencepipelines', name: 'video', body: { status: { observedGeneration: 1 } } },
        MERGE_PATCH,
      );
      const event = {
        metadata: { name: 'video.sair1', namespace: 'ml' },
        involvedObject: { apiVersion: 'sair.dev/v1alpha1', kind: 'InferencePipeline', name: 'video', namespace: 'ml' },
        reason: 'Scaled',
        message: 'web: 2 -> 3 replicas',
        type: 'Normal',
        source: { component: 'sair-policy' },
        reportingComponent: 'sair.dev/policy',
        reportingInstance: 'sair-policy-0',
      };
      await sa.core.createNamespacedEvent({ namespace: 'ml', body: event });
      await sa.core.patchNamespacedEvent({ name: 'video.sair1', namespace: 'ml', body: { count: 2 } }, MERGE_PATCH);
    });
  });

  describe('anything else is refused with 403 and what to do', () => {
    it('a Deployment in a namespace that is not opted in', async () => {
      const scale = await sa.apps.readNamespacedDeploymentScale({ name: 'web', namespace: 'other' });
      await expectRefused(
        sa.apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: 'other', body: { ...scale, spec: { replicas: 5 } } }),
        /ValidatingAdmissionPolicy 'sair-policy-least-privilege' .* namespace other is not one: run `kubectl label namespace/,
      );
      await expectRefused(
        sa.apps.patchNamespacedDeployment({ name: 'web', namespace: 'other', body: annotate({ 'sair.dev/current-gpu-cores': '40' }) }, MERGE_PATCH),
        /sair.dev\/enabled=true/,
      );
      expect(api.get<k8s.V1Deployment>('deployments.apps', 'other', 'web')?.spec?.replicas).toBe(2);
    });

    it('anything in kube-system', async () => {
      await expectRefused(
        sa.core.patchNamespacedPod({ name: 'web-7c9f8-a', namespace: 'kube-system', body: annotate({ 'sair.dev/gpu-cores': '10' }) }, MERGE_PATCH),
        /namespace kube-system is not one/,
      );
    });

    it("a pod's image, labels or another annotation, and a Deployment's spec", async () => {
      const only = /only through its sair.dev\/gpu-cores annotation; every other field must stay as it is/;
      await expectRefused(
        sa.core.patchNamespacedPod({ name: 'web-7c9f8-a', namespace: 'ml', body: { spec: { containers: [{ name: 'main', image: 'evil/miner:1' }] } } }, STRATEGIC_MERGE_PATCH),
        only,
      );
      await expectRefused(sa.core.patchNamespacedPod({ name: 'web-7c9f8-a', namespace: 'ml', body: { metadata: { labels: { app: 'x' } } } }, MERGE_PATCH), only);
      await expectRefused(sa.core.patchNamespacedPod({ name: 'web-7c9f8-a', namespace: 'ml', body: annotate({ 'sair.dev/gpu-memory': '1Gi' }) }, MERGE_PATCH), only);
      await expectRefused(
        sa.apps.patchNamespacedDeployment({ name: 'web', namespace: 'ml', body: { spec: { replicas: 8 } } }, MERGE_PATCH),
        /only through its sair.dev\/current-gpu-cores annotation/,
      );
      await expectRefused(
        sa.apps.patchNamespacedDeployment({ name: 'web', namespace: 'ml', body: annotate({ 'sair.dev/gpu-cores': '100' }) }, MERGE_PATCH),
        /only through its sair.dev\/current-gpu-cores annotation/,
      );
      expect(api.get<k8s.V1Pod>('pods', 'ml', 'web-7c9f8-a')?.spec?.containers[0]?.image).toBe('example/serve:1');
    });

    it("an Event posing as another component", async () => {
      const event = {
        metadata: { name: 'web.fake', namespace: 'ml' },
        involvedObject: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web', namespace: 'ml' },
        reason: 'ScalingReplicaSet',
        message: 'Scaled up',
        type: 'Normal',
        reportingComponent: 'deployment-controller',
      };
      await expectRefused(sa.core.createNamespacedEvent({ namespace: 'ml', body: event }), /reportingComponent sair.dev\/policy only/);
    });

    it("another component's Lease in sair-system", async () => {
      await expectRefused(
        sa.coordination.createNamespacedLease({ namespace: 'sair-system', body: { metadata: { name: 'sair-failsafe' }, spec: { holderIdentity: 'sair-policy-0' } } }),
        /writes only its Leases \(sair-policy, sair-policy-shard-\*, sair-policy-member-\*\)/,
      );
    });

    it('its own settings in sair-system: only the Leases and the snapshot ConfigMaps', async () => {
      await sa.core.createNamespacedConfigMap({ namespace: 'sair-system', body: { metadata: { name: 'sair-policy-snapshot', labels: { 'sair.dev/snapshot': 'sair-policy-snapshot' } }, data: { index: '{}' } } });
      await expectRefused(
        sa.core.replaceNamespacedConfigMap({ name: 'sair-policy', namespace: 'sair-system', body: { metadata: { name: 'sair-policy', namespace: 'sair-system', labels: { 'sair.dev/snapshot': 'x' } }, data: { SAIR_LLM_ALLOWED_ENDPOINTS: 'http://' } } }),
        /only its Leases .* and its snapshot ConfigMaps/,
      );
      expect(api.get<k8s.V1ConfigMap>('configmaps', 'sair-system', 'sair-policy')?.data?.SAIR_LLM_ALLOWED_ENDPOINTS).toBeUndefined();
    });
  });

  it("reads a pipeline's own LLM ConfigMap and Secret only where sair-policy-llm-reader is bound, and says how to bind it", async () => {
    api.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'team-llm', namespace: 'ml' }, data: { baseUrl: 'http://vllm.ml:8000/v1', model: 'm' } });
    api.seed({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'team-llm', namespace: 'ml' }, data: { apiKey: Buffer.from('sk-team').toString('base64') } });
    const ref = { namespace: 'ml', configMap: 'team-llm', secret: { name: 'team-llm', key: 'apiKey' } };
    await expect(resolveLlmSettings(sa.core, ref)).rejects.toThrow(
      /read ConfigMap ml\/team-llm: HTTP 403: .*kubectl -n ml create rolebinding sair-policy-llm --clusterrole=sair-policy-llm-reader --serviceaccount=sair-system:sair-policy/,
    );
    api.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'sair-policy-llm', namespace: 'ml' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sair-policy-llm-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'sair-policy', namespace: 'sair-system' }],
    });
    await expect(resolveLlmSettings(sa.core, ref)).resolves.toEqual({ baseUrl: 'http://vllm.ml:8000/v1', model: 'm', apiKey: 'sk-team' });
  });
});
