// End to end without a cluster: the real manifests' MutatingWebhookConfiguration in the fake API
// server, `sair certs` filling the Secret and caBundle, the webhook serving that Secret, and
// objects created through client-node as a user would (the fake calls webhooks the way
// kube-apiserver does: selectors, AdmissionReview v1 over HTTPS trusting the caBundle, JSONPatch).
import { readFileSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { startWebhookBehind } from './helpers.js';

const SHIM = '/usr/local/sair/lib/libsair-cuda.so';

let api: FakeApiServer;
let webhook: Awaited<ReturnType<typeof startWebhookBehind>> | undefined;

beforeAll(async () => {
  let port = 0;
  api = await startFakeApiServer({
    namespaces: ['default', 'sair-system', 'ml', 'other'],
    admission: { resolveService: (svc) => `https://localhost:${port}${svc.path ?? '/'}` },
  });
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml', labels: { 'sair.dev/enabled': 'true' } } });
  api.seed(parse(readFileSync('manifests/webhook/base/mutatingwebhookconfiguration.yaml', 'utf8')) as object);
  webhook = await startWebhookBehind(api);
  port = webhook.port;
});

afterAll(async () => {
  await webhook?.stop();
  await api?.close();
});

function gpuPod(name: string, extra: { labels?: Record<string, string>; annotations?: Record<string, string> } = {}): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...extra },
    spec: {
      containers: [
        { name: 'pre', image: 'pre:1' },
        { name: 'infer', image: 'infer:1', env: [{ name: 'LD_PRELOAD', value: '/opt/libjemalloc.so' }], resources: { limits: { 'nvidia.com/gpu': '1' } } },
      ],
    },
  };
}

const env = (pod: k8s.V1Pod, container: number): Record<string, string | undefined> =>
  Object.fromEntries((pod.spec!.containers[container]!.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom?.fieldRef?.fieldPath]));

describe('webhook behind the (fake) API server', () => {
  it('injects a GPU pod created in an opted-in namespace', async () => {
    const created = await api.clients('ml').core.createNamespacedPod({ namespace: 'ml', body: gpuPod('bert-0', { annotations: { 'sair.dev/gpu-cores': '25', 'sair.dev/gpu-memory': '4Gi' } }) });
    expect(created.metadata!.annotations!['sair.dev/injected']).toBe('true');
    expect(env(created, 0)).toEqual({});
    expect(env(created, 1)).toMatchObject({
      LD_PRELOAD: `${SHIM}:/opt/libjemalloc.so`,
      SAIR_GPU_CORES: '25',
      SAIR_GPU_MEMORY: String(4 * 1024 ** 3),
    });
    expect(created.spec!.containers[1]!.resources!.limits).toEqual({ 'sair.dev/gpu': '1' });
    // Only the ServiceAccount admission plugin's token volume: the webhook adds no hostPath.
    expect(created.spec!.volumes!.map((v) => [v.name, v.hostPath?.path])).toEqual([[expect.stringMatching(/^kube-api-access-[a-z0-9]{5}$/), undefined]]);
  });

  it('leaves namespaces that did not opt in and pods labelled sair.dev/inject=false alone', async () => {
    const elsewhere = await api.clients('other').core.createNamespacedPod({ namespace: 'other', body: gpuPod('p') });
    expect(elsewhere.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/injected');
    expect(env(elsewhere, 1)).toEqual({ LD_PRELOAD: '/opt/libjemalloc.so' });
    const optedOut = await api.clients('ml').core.createNamespacedPod({ namespace: 'ml', body: gpuPod('out', { labels: { 'sair.dev/inject': 'false' }, annotations: { 'sair.dev/gpu-cores': 'bad' } }) });
    expect(env(optedOut, 1)).toEqual({ LD_PRELOAD: '/opt/libjemalloc.so' });
  });

  it('rejects an invalid quota annotation with a message naming it', async () => {
    await expect(
      api.clients('ml').core.createNamespacedPod({ namespace: 'ml', body: gpuPod('bad', { annotations: { 'sair.dev/gpu-memory': '4 gigs' } }) }),
    ).rejects.toMatchObject({ code: 400, body: expect.stringContaining('sair.dev/gpu-memory: \\"4 gigs\\" is not a Kubernetes quantity greater than 0') });
  });

  it('takes over an HPA and gives its behavior back when it is labelled sair.dev/inject=false', async () => {
    const { autoscaling } = api.clients('ml');
    const body: k8s.V2HorizontalPodAutoscaler = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: 'bert' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'bert' }, minReplicas: 1, maxReplicas: 8 },
    };
    const created = await autoscaling.createNamespacedHorizontalPodAutoscaler({ namespace: 'ml', body });
    expect(created.spec!.behavior!.scaleUp!.selectPolicy).toBe('Disabled');
    expect(created.spec!.behavior!.scaleDown!.selectPolicy).toBe('Disabled');
    expect(created.metadata!.labels!['sair.dev/managed']).toBe('true');
    expect(created.metadata!.annotations!['sair.dev/original-behavior']).toBe('null');

    created.metadata!.labels!['sair.dev/inject'] = 'false';
    const released = await autoscaling.replaceNamespacedHorizontalPodAutoscaler({ name: 'bert', namespace: 'ml', body: created });
    expect(released.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/original-behavior');
    expect(released.metadata!.labels).not.toHaveProperty('sair.dev/managed');
    expect(released.spec!.behavior?.scaleUp?.selectPolicy).not.toBe('Disabled');
  });
});
