// manifests/device-plugin/admission-policy.yaml on the fake API server, which evaluates
// ValidatingAdmissionPolicies as kube-apiserver does: a pod that asks for sair.dev/gpu outside an
// opted-in namespace, or labelled sair.dev/inject=false, is refused with a message that says how to
// opt in; everything else passes.
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { ANNOTATION_GPU_CORES, LABEL_ENABLED, LABEL_INJECT, RESOURCE_NVIDIA_GPU, RESOURCE_SAIR_GPU } from '../../src/core/names.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { readYaml } from '../support/manifests.js';

let api: FakeApiServer;

beforeAll(async () => {
  api = await startFakeApiServer({ namespaces: ['default', 'kube-system', 'sair-system'] });
  for (const o of readYaml(path.resolve('manifests/device-plugin/admission-policy.yaml'))) api.seed(o);
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml', labels: { [LABEL_ENABLED]: 'true' } } });
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } });
});

afterAll(() => api.close());

function pod(name: string, resource: string, labels: Record<string, string> = {}, init = false): k8s.V1Pod {
  const container = { name: 'main', image: 'example.com/infer:1', resources: { limits: { [resource]: '1' } } };
  return {
    metadata: { name, labels, annotations: { [ANNOTATION_GPU_CORES]: '30' } },
    spec: init
      ? { initContainers: [{ ...container, name: 'warmup' }], containers: [{ name: 'main', image: 'example.com/infer:1' }] }
      : { containers: [container] },
  };
}

async function create(namespace: string, body: k8s.V1Pod): Promise<{ code: number; message: string }> {
  try {
    await api.clients(namespace).core.createNamespacedPod({ namespace, body });
    return { code: 201, message: '' };
  } catch (err) {
    const e = err as { code: number; body: string };
    return { code: e.code, message: (JSON.parse(e.body) as { message: string }).message };
  }
}

describe('the sair.dev/gpu admission policy', () => {
  it('refuses a slot in a namespace that is not opted in, saying how to opt in', async () => {
    const r = await create('plain', pod('direct', RESOURCE_SAIR_GPU));
    expect(r.code).toBe(403);
    expect(r.message).toContain('container(s) main ask for sair.dev/gpu');
    expect(r.message).toContain('kubectl label namespace plain sair.dev/enabled=true');
    expect(api.get('pods', 'plain', 'direct')).toBeUndefined();
  });

  it('looks at init containers too', async () => {
    const r = await create('plain', pod('init', RESOURCE_SAIR_GPU, {}, true));
    expect(r.code).toBe(403);
    expect(r.message).toContain('container(s) warmup ask for sair.dev/gpu');
  });

  it('refuses a slot for a pod labelled sair.dev/inject=false, even in an opted-in namespace', async () => {
    const r = await create('ml', pod('opted-out', RESOURCE_SAIR_GPU, { [LABEL_INJECT]: 'false' }));
    expect(r.code).toBe(403);
    expect(r.message).toContain('metadata.labels[sair.dev/inject]');
    expect(r.message).toContain('remove the label');
  });

  it('refuses a slot in kube-system, which is never opted in', async () => {
    expect((await create('kube-system', pod('system', RESOURCE_SAIR_GPU))).code).toBe(403);
  });

  it('admits a slot in an opted-in namespace, and whole GPUs anywhere', async () => {
    expect(await create('ml', pod('shared', RESOURCE_SAIR_GPU))).toEqual({ code: 201, message: '' });
    expect(await create('plain', pod('whole', RESOURCE_NVIDIA_GPU))).toEqual({ code: 201, message: '' });
    expect(await create('plain', { metadata: { name: 'cpu' }, spec: { containers: [{ name: 'c', image: 'example.com/c:1' }] } })).toEqual({ code: 201, message: '' });
  });
});
