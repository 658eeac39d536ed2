// The node agent against the in-process fake API server, through the real client-node informer:
// control files follow the pods' annotations live, invalid values keep the last good limits and
// raise an Event, deleted pods lose their files, damaged files are repaired.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../src/common/logger.js';
import { NodeAgent } from '../../src/device-plugin/agent.js';
import { createControlFile, readControlFile, type ControlLimits } from '../../src/device-plugin/control-file.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { holdSlotLock, writeUsageSlot } from './usage-slot.js';
import { eventually } from '../support/eventually.js';

const log = createLogger('device-plugin', 'silent');
const NODE = 'gpu-node-1';

function pod(name: string, annotations: Record<string, string>, nodeName = NODE): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'ml', annotations },
    spec: { nodeName, containers: [{ name: 'main', image: 'model:1' }] },
    status: { phase: 'Running' },
  };
}


function limitsOf(file: string): ControlLimits | undefined {
  try {
    return readControlFile(file).limits;
  } catch {
    return undefined;
  }
}

describe('node agent', () => {
  let api: FakeApiServer;
  let root: string;
  let agent: NodeAgent;
  let core: k8s.CoreV1Api;

  const uidOf = (name: string): string => api.get<k8s.V1Pod>('pods', 'ml', name)!.metadata!.uid!;
  const controlOf = (name: string): string => join(root, uidOf(name), 'control');
  const newAgent = (): NodeAgent => {
    const clients = api.clients('ml');
    return new NodeAgent(clients.kc, clients.core, { nodeName: NODE, controlRoot: root, resyncMs: 100, restartMs: 100 }, log);
  };

  beforeEach(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'ml'] });
    core = api.clients('ml').core;
    root = join(mkdtempSync(join(tmpdir(), 'sair-agent-')), 'pods');
  });

  afterEach(async () => {
    await agent?.stop();
    await api.close();
    rmSync(join(root, '..'), { recursive: true, force: true });
  });

  it('writes control files only for injected pods on its node, with limits from the annotations', async () => {
    api.seed(pod('a', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '30', 'sair.dev/gpu-memory': '8Gi' }));
    api.seed(pod('b', { 'sair.dev/injected': 'true' }));
    api.seed(pod('elsewhere', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '50' }, 'gpu-node-2'));
    api.seed(pod('plain', { 'sair.dev/gpu-cores': '50' }));
    agent = newAgent();
    await agent.start();
    expect(readControlFile(controlOf('a')).limits).toEqual({ gpuCores: 30, memoryBytes: 8n << 30n });
    expect(readControlFile(controlOf('b')).limits).toEqual({ gpuCores: 100, memoryBytes: 0n });
    expect(existsSync(join(root, uidOf('elsewhere')))).toBe(false);
    expect(existsSync(join(root, uidOf('plain')))).toBe(false);
  });

  it('carries an annotation change to the control file within 1 s, in place', async () => {
    agent = newAgent();
    await agent.start();
    await core.createNamespacedPod({ namespace: 'ml', body: pod('live', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '20' }) });
    const file = await eventually(() => (existsSync(controlOf('live')) ? controlOf('live') : undefined), 1000, 'the control file');
    const before = readControlFile(file);
    expect(before.limits.gpuCores).toBe(20);

    await core.patchNamespacedPod({
      name: 'live',
      namespace: 'ml',
      body: [
        { op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: '65' },
        { op: 'add', path: '/metadata/annotations/sair.dev~1gpu-memory', value: '512Mi' },
      ],
    });
    await eventually(() => (limitsOf(file)?.gpuCores === 65 ? true : undefined), 1000, 'gpu-cores 65 in the control file');
    const after = readControlFile(file);
    expect(after.limits).toEqual({ gpuCores: 65, memoryBytes: 512n << 20n });
    expect(after.generation).toBeGreaterThan(before.generation);
  });

  it('removes the control directory of a deleted pod', async () => {
    api.seed(pod('gone', { 'sair.dev/injected': 'true' }));
    agent = newAgent();
    await agent.start();
    const dir = join(root, uidOf('gone'));
    expect(existsSync(join(dir, 'control'))).toBe(true);
    // A scheduled pod stays Terminating for its grace period; the kubelet's final DELETE (grace 0) removes it.
    await core.deleteNamespacedPod({ name: 'gone', namespace: 'ml', gracePeriodSeconds: 0 });
    await eventually(() => (existsSync(dir) ? undefined : true), 1000, 'the directory to go');
  });

  it('keeps the last good limits on an invalid annotation and reports it once as an Event', async () => {
    api.seed(pod('bad', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '40' }));
    agent = newAgent();
    await agent.start();
    const file = controlOf('bad');
    await core.patchNamespacedPod({
      name: 'bad',
      namespace: 'ml',
      body: [{ op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: '250' }],
    });
    const events = await eventually(() => {
      const list = api.list<k8s.CoreV1Event>('events', 'ml');
      return list.length > 0 ? list : undefined;
    }, 1000, 'an Event');
    expect(events[0]).toMatchObject({
      reason: 'InvalidGpuQuota',
      type: 'Warning',
      involvedObject: { kind: 'Pod', name: 'bad', namespace: 'ml', uid: uidOf('bad') },
    });
    expect(events[0]!.message).toContain('sair.dev/gpu-cores: "250" is not an integer from 1 to 100');
    expect(events[0]!.message).toContain('keeping the last good limits (gpu-cores 40');
    expect(readControlFile(file).limits.gpuCores).toBe(40);

    // Several resyncs later: still one Event, still the last good limits.
    // (Waiting out resync periods is the point here: nothing else signals that a resync happened.)
    await new Promise((r) => setTimeout(r, 450));
    expect(api.list('events', 'ml')).toHaveLength(1);
    expect(readControlFile(file).limits.gpuCores).toBe(40);

    // Fixed: the new value applies.
    await core.patchNamespacedPod({
      name: 'bad',
      namespace: 'ml',
      body: [{ op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: '55' }],
    });
    await eventually(() => (limitsOf(file)?.gpuCores === 55 ? true : undefined), 1000, 'gpu-cores 55');
  });

  it('after a restart keeps the limits on disk for a pod whose annotation is now invalid', async () => {
    api.seed(pod('p', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '35' }));
    agent = newAgent();
    await agent.start();
    await agent.stop();
    const stored = api.get<k8s.V1Pod>('pods', 'ml', 'p')!;
    api.seed({ ...stored, apiVersion: 'v1', kind: 'Pod', metadata: { ...stored.metadata, annotations: { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': 'lots' } } });
    agent = newAgent();
    await agent.start();
    expect(readControlFile(controlOf('p')).limits.gpuCores).toBe(35);
    await eventually(() => (api.list('events', 'ml').length === 1 ? true : undefined), 1000, 'an Event');
  });

  it('recreates a deleted control directory and a corrupted control file', async () => {
    api.seed(pod('fragile', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '25' }));
    agent = newAgent();
    await agent.start();
    const dir = join(root, uidOf('fragile'));
    rmSync(dir, { recursive: true });
    await eventually(() => (limitsOf(join(dir, 'control'))?.gpuCores === 25 ? true : undefined), 2000, 'the directory to come back');
    expect(statSync(dir).mode & 0o777).toBe(0o755);
    expect(statSync(join(dir, 'control')).mode & 0o777).toBe(0o666);
    chmodSync(dir, 0o700); // as a kubelet-made subPath directory might be
    await eventually(() => ((statSync(dir).mode & 0o777) === 0o755 ? true : undefined), 2000, 'the directory mode to be fixed');
    writeFileSync(join(dir, 'control'), 'garbage');
    await eventually(() => (limitsOf(join(dir, 'control'))?.gpuCores === 25 ? true : undefined), 2000, 'the file to be repaired');
  });

  it('recovers from a failed list and from dropped watches', async () => {
    api.injectFault({ verb: 'list', resource: 'pods', status: 500, times: 2 });
    api.seed(pod('patient', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '15' }));
    mkdirSync(join(root, uidOf('patient')), { recursive: true });
    createControlFile(controlOf('patient'), { gpuCores: 15, memoryBytes: 0n });
    agent = newAgent();
    await agent.start();
    // Nothing listed yet: the running pod's file must not be collected as garbage.
    expect(existsSync(controlOf('patient'))).toBe(true);
    await eventually(() => (limitsOf(controlOf('patient'))?.gpuCores === 15 ? true : undefined), 3000, 'the control file after retries');
    api.dropWatches();
    await core.patchNamespacedPod({
      name: 'patient',
      namespace: 'ml',
      body: [{ op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: '16' }],
    });
    await eventually(() => (limitsOf(controlOf('patient'))?.gpuCores === 16 ? true : undefined), 3000, 'the change after the watch was dropped');
  });

  it('removes directories of pods that are no longer on the node at start', async () => {
    const stale = join(root, '0b9c7a52-0000-4000-8000-000000000001');
    mkdirSync(stale, { recursive: true });
    writeFileSync(join(stale, 'control'), 'old');
    agent = newAgent();
    await agent.start();
    expect(existsSync(stale)).toBe(false);
  });

  it('reads the usage slots the shim writes', async () => {
    api.seed(pod('busy', { 'sair.dev/injected': 'true', 'sair.dev/gpu-cores': '50' }));
    agent = newAgent();
    await agent.start();
    writeUsageSlot(controlOf('busy'), 0, { pid: 4242, memoryBytes: 1n << 30n, kernelNs: 5_000_000n, throttledNs: 1_000_000n, heartbeatNs: 1n });
    writeUsageSlot(controlOf('busy'), 3, { pid: 77, memoryBytes: 2n << 30n, kernelNs: 9n, throttledNs: 0n, heartbeatNs: 1n });
    const release = holdSlotLock(controlOf('busy'), 0); // slot 0's process runs; slot 3's has died
    try {
      const usage = agent.usage();
      expect(usage).toHaveLength(1);
      expect(usage[0]).toMatchObject({ namespace: 'ml', name: 'busy', limits: { gpuCores: 50, memoryBytes: 0n } });
      expect(usage[0]!.slots).toEqual([
        { pid: 4242, memoryBytes: 1n << 30n, kernelNs: 5_000_000n, throttledNs: 1_000_000n, heartbeatNs: 1n, live: true },
        { pid: 77, memoryBytes: 2n << 30n, kernelNs: 9n, throttledNs: 0n, heartbeatNs: 1n, live: false },
      ]);
    } finally {
      release();
    }
    expect(agent.usage()[0]!.slots.map((x) => x.live)).toEqual([false, false]);
  });
});
