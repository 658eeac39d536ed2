// The node agent's pod updates, confined by the API server: the RBAC and the deletion-cost policy of
// manifests/device-plugin on the fake API server, which authorizes the sair-device-plugin token by
// the stored bindings and evaluates the policy's CEL as kube-apiserver does, with the token bound to
// the agent's pod and node as the kubelet projects it. Setting a pod-deletion-cost on a pod of an
// opted-in namespace on its own node passes; anything else is refused with 403.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { MERGE_PATCH, type KubeClients } from '../../src/common/k8s.js';
import { LABEL_ENABLED } from '../../src/core/names.js';
import { POD_DELETION_COST, SAIR_DELETION_COST } from '../../src/device-plugin/deletion-cost.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { expectRefused } from '../support/refused.js';
import { kustomizeBuild } from '../support/manifests.js';

const NODE = 'gpu-node-1';

function pod(namespace: string, name: string, node: string): k8s.V1Pod & { apiVersion: string; kind: string } {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'infer' }, annotations: { 'sair.dev/gpu-cores': '30' } },
    spec: { nodeName: node, containers: [{ name: 'main', image: 'example.com/infer:1' }] },
  };
}

describe('the node agent\'s pod updates (manifests/device-plugin) enforced by the API server', () => {
  let api: FakeApiServer;
  let agent: KubeClients;
  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'kube-system', 'sair-system'], strictAuthentication: true });
    for (const o of kustomizeBuild(path.resolve('manifests/device-plugin'))) if (o.kind !== 'DaemonSet') api.seed(o);
    api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml', labels: { [LABEL_ENABLED]: 'true' } } });
    api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'other' } });
    api.seed(pod('ml', 'here', NODE));
    api.seed(pod('ml', 'elsewhere', 'gpu-node-2'));
    api.seed(pod('other', 'here', NODE));
    agent = api.clients('sair-system', api.tokenFor('sair-system', 'sair-device-plugin', { pod: 'sair-device-plugin-x7k2p', node: NODE }));
  });
  afterAll(async () => {
    await api.close();
  });

  const patch = (client: KubeClients, namespace: string, name: string, metadata: k8s.V1ObjectMeta) =>
    client.core.patchNamespacedPod({ name, namespace, body: { metadata } }, MERGE_PATCH);

  it('may set and change the deletion cost of a pod on its own node in an opted-in namespace', async () => {
    await patch(agent, 'ml', 'here', { annotations: { [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' } });
    await patch(agent, 'ml', 'here', { annotations: { [POD_DELETION_COST]: '0', [SAIR_DELETION_COST]: '0' } });
    expect(api.get<k8s.V1Pod>('pods', 'ml', 'here')!.metadata!.annotations).toEqual({ 'sair.dev/gpu-cores': '30', [POD_DELETION_COST]: '0', [SAIR_DELETION_COST]: '0' });
  });

  it('may not touch anything else of that pod: other annotations, labels, the spec', async () => {
    const only = /may only change the annotations controller\.kubernetes\.io\/pod-deletion-cost and sair\.dev\/pod-deletion-cost of pod ml\/here/;
    await expectRefused(patch(agent, 'ml', 'here', { annotations: { 'sair.dev/gpu-cores': '100' } }), only);
    await expectRefused(patch(agent, 'ml', 'here', { annotations: { 'sair.dev/gpu-cores': null as unknown as string } }), only);
    await expectRefused(patch(agent, 'ml', 'here', { labels: { app: 'db' } }), only);
    await expectRefused(agent.core.patchNamespacedPod({ name: 'here', namespace: 'ml', body: { spec: { activeDeadlineSeconds: 5 } } }, MERGE_PATCH), only);
    expect(api.get<k8s.V1Pod>('pods', 'ml', 'here')!.metadata!.labels).toEqual({ app: 'infer' });
  });

  it('may not update a pod on another node, or in a namespace not opted in', async () => {
    const cost = { annotations: { [POD_DELETION_COST]: '1', [SAIR_DELETION_COST]: '1' } };
    await expectRefused(patch(agent, 'ml', 'elsewhere', cost), /only update pods on its own node, and ml\/elsewhere is not on the node its token is bound to/);
    await expectRefused(patch(agent, 'other', 'here', cost), /only update pods in namespaces opted in to SAIR \(sair\.dev\/enabled=true\), and other is not/);
    // A token not bound to a node (a copy taken out of the cluster, say) updates no pod at all.
    const unbound = api.clients('sair-system', api.tokenFor('sair-system', 'sair-device-plugin'));
    await expectRefused(patch(unbound, 'ml', 'here', cost), /only update pods on its own node/);
  });

  it('may not create or delete pods, or patch their status (RBAC)', async () => {
    await expectRefused(agent.core.createNamespacedPod({ namespace: 'ml', body: pod('ml', 'new', NODE) }));
    await expectRefused(agent.core.deleteNamespacedPod({ name: 'here', namespace: 'ml' }));
    await expectRefused(agent.core.patchNamespacedPodStatus({ name: 'here', namespace: 'ml', body: { status: { phase: 'Failed' } } }, MERGE_PATCH));
  });
});
