// Every path by which a tenant could turn GPU sharing against another tenant, tried
// against the real parts: the webhook behind the fake API server (called as kube-apiserver calls
// it, with Pod Security and the manifests' configuration), and the device plugin and node agent
// on one GPU node (fake kubelet with PodResources). Each attack fails with a message naming the
// field, or has no effect.
import { mkfifoSync } from './mkfifo.js';
import { readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, renameSync, statSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { parse } from 'yaml';
import { STATE_FILE_SIZE, readLimitsFile, readStateFile } from '../../src/device-plugin/control-file.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { GpuNode, slotPod } from '../support/gpu-node.js';
import { eventually } from '../support/eventually.js';
import { startWebhookBehind } from '../webhook/helpers.js';

const POLICY_SA = ['sair-system', 'sair-policy'] as const;

describe('the webhook refuses what would undo isolation', () => {
  let api: FakeApiServer;
  let webhook: Awaited<ReturnType<typeof startWebhookBehind>> | undefined;

  beforeAll(async () => {
    let port = 0;
    api = await startFakeApiServer({
      namespaces: ['default', 'kube-system', 'sair-system', 'other'],
      admission: { resolveService: (svc) => `https://localhost:${port}${svc.path ?? '/'}` },
    });
    api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml', labels: { 'sair.dev/enabled': 'true', 'pod-security.kubernetes.io/enforce': 'baseline' } } });
    api.seed(parse(readFileSync('manifests/webhook/base/mutatingwebhookconfiguration.yaml', 'utf8')) as object);
    // Anyone may patch pods here, so only the webhook stands between a user and the annotation.
    api.seed({ apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: 'pods' }, rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['*'] }] });
    for (const [ns, name] of [POLICY_SA, ['ml', 'tenant']] as const) {
      api.seed({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: `pods-${name}` },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pods' },
        subjects: [{ kind: 'ServiceAccount', name, namespace: ns }],
      });
    }
    webhook = await startWebhookBehind(api);
    port = webhook.port;
  });

  afterAll(async () => {
    await webhook?.stop();
    await api?.close();
  });

  const gpuContainer = (extra: Partial<k8s.V1Container> = {}): k8s.V1Container => ({ name: 'infer', image: 'infer:1', resources: { limits: { 'nvidia.com/gpu': '1' } }, ...extra });
  const create = async (name: string, spec: Partial<k8s.V1PodSpec> & { containers: k8s.V1Container[] }, annotations = { 'sair.dev/gpu-cores': '30' }, ns = 'ml'): Promise<string> => {
    try {
      await api.clients(ns).core.createNamespacedPod({ namespace: ns, body: { metadata: { name, annotations }, spec } });
      return 'created';
    } catch (err) {
      return (JSON.parse((err as { body: string }).body) as { message: string }).message;
    }
  };

  it('an injected pod carries no hostPath, so a namespace enforcing Pod Security baseline admits it', async () => {
    expect(await create('ok', { containers: [gpuContainer()] })).toBe('created');
    const pod = api.get<k8s.V1Pod>('pods', 'ml', 'ok')!;
    expect(pod.metadata!.annotations!['sair.dev/injected']).toBe('true');
    expect((pod.spec!.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
  });

  it('a container listing SAIR_* itself (even twice, even with the injected annotation) is denied, naming the field', async () => {
    const twice = await create('twice', { containers: [gpuContainer({ env: [{ name: 'SAIR_GPU_CORES', value: '30' }, { name: 'SAIR_GPU_CORES', value: '100' }] })] });
    expect(twice).toContain('spec.containers[0].env[1].name: SAIR_GPU_CORES is listed twice');
    const forged = await create('forged', { containers: [gpuContainer({ env: [{ name: 'SAIR_STATE_FILE', value: '/tmp/mine' }] })] }, { 'sair.dev/gpu-cores': '30', 'sair.dev/injected': 'true' } as never);
    expect(forged).toContain('spec.containers[0].env[0].name: SAIR_STATE_FILE is set by SAIR');
  });

  it('a second mount over SAIR\'s shim or a SAIR volume name is denied, naming the field', async () => {
    const over = await create('over', { containers: [gpuContainer({ volumeMounts: [{ name: 'w', mountPath: '/usr/local/sair/lib' }] })], volumes: [{ name: 'w', emptyDir: {} }] });
    expect(over).toContain('spec.containers[0].volumeMounts[0].mountPath: /usr/local/sair/lib');
    const named = await create('named', { containers: [gpuContainer()], volumes: [{ name: 'sair-control', emptyDir: {} }] });
    expect(named).toContain('spec.volumes[0].name: "sair-control"');
  });

  it('a hostPath to SAIR\'s files is denied by the webhook, and by Pod Security baseline anyway', async () => {
    const host = await create('host', { containers: [gpuContainer()], volumes: [{ name: 'h', hostPath: { path: '/run/sair' } }] });
    expect(host).toContain('spec.volumes[0].hostPath.path: /run/sair');
  });

  it('a user cannot raise a running pod\'s share by editing its annotation; the policy server can', async () => {
    expect(await create('running', { containers: [gpuContainer()] })).toBe('created');
    const body = [{ op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: '100' }];
    const asTenant = api.clients('ml', api.tokenFor('ml', 'tenant')).core;
    await expect(asTenant.patchNamespacedPod({ name: 'running', namespace: 'ml', body })).rejects.toMatchObject({
      body: expect.stringContaining('metadata.annotations[sair.dev/gpu-cores]: a running pod\'s GPU quota is changed only by the SAIR policy server'),
    });
    const asPolicy = api.clients('ml', api.tokenFor(...POLICY_SA)).core;
    await asPolicy.patchNamespacedPod({ name: 'running', namespace: 'ml', body });
    expect(api.get<k8s.V1Pod>('pods', 'ml', 'running')!.metadata!.annotations!['sair.dev/gpu-cores']).toBe('100');
  });

  it('kube-system and sair-system are never mutated, whatever their labels', async () => {
    for (const ns of ['kube-system', 'sair-system']) {
      await api.clients().core.patchNamespace({ name: ns, body: [{ op: 'add', path: '/metadata/labels/sair.dev~1enabled', value: 'true' }] });
      expect(await create(`sys-${ns}`, { containers: [gpuContainer()] }, undefined, ns)).toBe('created');
      expect(api.get<k8s.V1Pod>('pods', ns, `sys-${ns}`)!.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/injected');
    }
  });
});

describe('the node: no path between allocations, and a pod cannot hang or flood the agent', () => {
  let node: GpuNode;
  afterEach(async () => node?.close());

  it('each container sees only its own files: its limits read-only, its state alone', async () => {
    node = await GpuNode.start();
    const a = (await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30' }))).get('main')!;
    const b = (await node.admit(slotPod('b', { 'sair.dev/gpu-cores': '30' }))).get('main')!;
    const hostPaths = (r: typeof a) => r.mounts.filter((m) => m.container_path.startsWith('/run/sair')).map((m) => m.host_path);
    expect(hostPaths(a).filter((p) => hostPaths(b).includes(p))).toEqual([]);
    expect(a.mounts.find((m) => m.container_path === '/run/sair/limits')!.read_only).toBe(true);
    expect(a.mounts.find((m) => m.container_path === '/usr/local/sair/lib')!.read_only).toBe(true);
    expect(statSync(a.mounts.find((m) => m.container_path === '/run/sair/limits')!.host_path).mode & 0o022).toBe(0);
  });

  it('shares on one GPU never sum past 100 %, whatever the pods ask', async () => {
    node = await GpuNode.start();
    await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '80' }));
    await node.admit(slotPod('b', { 'sair.dev/gpu-cores': '80' }));
    await node.agent.start();
    const sum = async () => readLimitsFile((await node.allocationOf('a')).limits).limits.gpuCores + readLimitsFile((await node.allocationOf('b')).limits).limits.gpuCores;
    expect(await sum()).toBeLessThanOrEqual(100);
    expect(node.clamps.length).toBe(1);
  });

  describe.each([
    ['a FIFO', (p: string) => mkfifoSync(p), /is a FIFO; expected a regular file/],
    ['a symlink to /dev/zero', (p: string) => symlinkSync('/dev/zero', p), /is a symbolic link/],
    ['an oversize (sparse, 1 TiB) file', (p: string) => (writeFileSync(p, ''), truncateSync(p, 2 ** 40)), /is 1099511627776 bytes; expected exactly/],
    ['a file of the wrong size', (p: string) => writeFileSync(p, Buffer.alloc(STATE_FILE_SIZE - 1)), /expected exactly 4160/],
  ])('a state file replaced by %s', (_what, replace, message) => {
    it('is refused at once with a message, and the agent stays responsive', async () => {
      node = await GpuNode.start();
      await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30' }));
      await node.agent.start();
      const { state } = await node.allocationOf('a');
      rmSync(state);
      replace(state);
      await expect(readStateFile(state)).rejects.toThrow(message);
      // The agent's own reads of the allocation fail cleanly, and its event loop keeps turning.
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      const [u] = await node.agent.usage();
      await new Promise((r) => setTimeout(r, 50));
      clearInterval(timer);
      expect(u).toMatchObject({ pod: 'a', slots: [] });
      expect(ticks).toBeGreaterThan(3);
    });
  });

  it('a state file replaced while being read is read whole from the file that was opened, or refused', async () => {
    node = await GpuNode.start();
    await node.admit(slotPod('a'));
    await node.agent.start();
    const { state } = await node.allocationOf('a');
    const reads = Array.from({ length: 50 }, () => readStateFile(state).then(() => 'ok', (e: Error) => e.message));
    for (let i = 0; i < 25; i++) {
      writeFileSync(`${state}.new`, Buffer.alloc(i % 2 ? STATE_FILE_SIZE : 10));
      renameSync(`${state}.new`, state);
    }
    for (const r of await Promise.all(reads)) expect(r === 'ok' || /not a SAIR state file|expected exactly|changed while being read/.test(r)).toBe(true);
    await eventually(async () => ((await node.agent.usage()).length === 1 ? true : undefined), 2_000, 'the agent to still answer');
  });
});
