// The node agent on one in-process GPU node (test/support/gpu-node.ts): the fake API server
// through client-node's informer, the fake kubelet's PodResources telling which pod holds which
// slots, the real device plugin making each allocation's files. Limits follow the pods'
// annotations live; invalid values keep the last good limits and raise an Event; shares on one
// GPU never sum past 100 % (a clamped increase is reported); allocations the kubelet no longer
// lists lose their files; usage is read back from the state files.
import { existsSync } from 'node:fs';
import type * as k8s from '@kubernetes/client-node';
import { EVENT_REASON_INVALID_QUOTA, EVENT_REASON_SHARE_CLAMPED } from '../../src/device-plugin/agent.js';
import { readLimitsFile, type ControlLimits } from '../../src/device-plugin/control-file.js';
import { POD_DELETION_COST, SAIR_DELETION_COST } from '../../src/device-plugin/deletion-cost.js';
import { gpusOfSlots } from '../../src/device-plugin/slots.js';
import { RESOURCE_SAIR_GPU } from '../../src/core/names.js';
import { GpuNode, slotPod } from '../support/gpu-node.js';
import { eventually } from '../support/eventually.js';
import { holdSlotLock, writeUsageSlot } from './usage-slot.js';

const GiB = 1n << 30n;
let node: GpuNode;

afterEach(async () => node?.close());

const limitsOf = async (pod: string): Promise<ControlLimits> => readLimitsFile((await node.allocationOf(pod)).limits).limits;
const annotate = (name: string, annotations: Record<string, string>) =>
  node.api.clients('ml').core.patchNamespacedPod({ name, namespace: 'ml', body: [{ op: 'add', path: '/metadata/annotations', value: annotations }] });
/** A slot pod of a ReplicaSet, the only kind whose pod-deletion-cost the agent keeps. */
const owned = (name: string, slots: number, annotations: Record<string, string> = {}): k8s.V1Pod => {
  const pod = slotPod(name, annotations, slots);
  pod.metadata!.ownerReferences = [{ apiVersion: 'apps/v1', kind: 'ReplicaSet', name: 'infer-7c9f', uid: 'rs-uid', controller: true }];
  return pod;
};
const events = async (reason: string): Promise<k8s.CoreV1Event[]> =>
  (await node.api.clients('ml').core.listNamespacedEvent({ namespace: 'ml' })).items.filter((e) => e.reason === reason);

it('starts an allocation at its slots\' share and follows its pod\'s annotations live', async () => {
  node = await GpuNode.start({ slotsPerGpu: 10 });
  await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30', 'sair.dev/gpu-memory': '8Gi' }));
  await node.admit(slotPod('b', {}, 2));
  // Before the agent knows the pods: what Allocate wrote, the slots' share.
  expect(await limitsOf('a')).toEqual({ gpuCores: 10, memoryBytes: (16n * GiB) / 10n });
  await node.agent.start();
  expect(await limitsOf('a')).toEqual({ gpuCores: 30, memoryBytes: 8n * GiB });
  expect(await limitsOf('b')).toEqual({ gpuCores: 20, memoryBytes: (16n * GiB * 2n) / 10n });
  const changedAt = Date.now();
  await annotate('a', { 'sair.dev/gpu-cores': '55', 'sair.dev/gpu-memory': '8Gi' });
  await eventually(async () => ((await limitsOf('a')).gpuCores === 55 ? true : undefined), 1_000, 'the new share in the limits file');
  expect(Date.now() - changedAt).toBeLessThan(1_000);
}, 20_000);

it('keeps the last good limits when an annotation turns invalid, and says so once in an Event', async () => {
  node = await GpuNode.start();
  await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30' }));
  await node.agent.start();
  await annotate('a', { 'sair.dev/gpu-cores': 'lots' });
  const [event] = await eventually(async () => ((await events(EVENT_REASON_INVALID_QUOTA)).length > 0 ? events(EVENT_REASON_INVALID_QUOTA) : undefined), 3_000, 'the Event');
  expect(event!.message).toContain('sair.dev/gpu-cores: "lots" is not an integer from 1 to 100');
  expect(event!.involvedObject).toMatchObject({ kind: 'Pod', name: 'a' });
  await new Promise((r) => setTimeout(r, 300));
  expect((await events(EVENT_REASON_INVALID_QUOTA)).length).toBe(1);
  expect((await limitsOf('a')).gpuCores).toBe(30);
}, 20_000);

it('clamps an increase that would take the GPU past 100 %, reports it, and grants it once there is room', async () => {
  node = await GpuNode.start();
  await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '70' }));
  await node.admit(slotPod('b', { 'sair.dev/gpu-cores': '20' }));
  await node.agent.start();
  expect((await limitsOf('a')).gpuCores + (await limitsOf('b')).gpuCores).toBeLessThanOrEqual(100);
  expect((await limitsOf('a')).gpuCores).toBe(70);
  await annotate('b', { 'sair.dev/gpu-cores': '50' });
  const [event] = await eventually(async () => ((await events(EVENT_REASON_SHARE_CLAMPED)).length > 0 ? events(EVENT_REASON_SHARE_CLAMPED) : undefined), 3_000, 'the clamp Event');
  expect(event!.message).toMatch(/asks for 50 %, but GPU .* has 30 % left/);
  expect((await limitsOf('b')).gpuCores).toBe(30);
  expect(node.clamps).toEqual([{ namespace: 'ml', pod: 'b', container: 'main' }]);
  const usage = await node.agent.usage();
  expect(usage.find((u) => u.pod === 'b')).toMatchObject({ requestedGpuCores: 50, limits: { gpuCores: 30 } });
  await annotate('a', { 'sair.dev/gpu-cores': '40' });
  await eventually(async () => ((await limitsOf('b')).gpuCores === 50 ? true : undefined), 3_000, 'the clamped share granted');
  expect((await limitsOf('a')).gpuCores).toBe(40);
}, 20_000);

it('removes the files of an allocation the kubelet no longer lists', async () => {
  node = await GpuNode.start({ orphanGraceMs: 0 });
  await node.admit(slotPod('a'));
  await node.agent.start();
  const { dir } = node.files.paths((await node.allocationOf('a')).id);
  expect(existsSync(dir)).toBe(true);
  node.kubelet.removePod('ml', 'a');
  await eventually(() => (existsSync(dir) ? undefined : true), 3_000, 'the allocation directory removed');
}, 20_000);

it('reads each allocation\'s usage back from its state file, telling running processes from dead ones', async () => {
  node = await GpuNode.start();
  await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30' }));
  await node.agent.start();
  const { state } = await node.allocationOf('a');
  writeUsageSlot(state, 0, { pid: 7, memoryBytes: 1n << 20n, kernelNs: 5n, throttledNs: 1n, heartbeatNs: 9n });
  writeUsageSlot(state, 1, { pid: 8, memoryBytes: 2n << 20n, kernelNs: 6n, throttledNs: 2n, heartbeatNs: 9n });
  const release = holdSlotLock(state, 0);
  try {
    const [u] = await node.agent.usage();
    expect(u).toMatchObject({ namespace: 'ml', pod: 'a', container: 'main', limits: { gpuCores: 30 } });
    expect(u!.slots.map((s) => [s.pid, s.live])).toEqual([
      [7, true],
      [8, false],
    ]);
  } finally {
    release();
  }
}, 20_000);

it('keeps each ReplicaSet pod\'s pod-deletion-cost at the share others hold on its GPU, and leaves a cost it does not own alone', async () => {
  node = await GpuNode.start({ gpus: 2, slotsPerGpu: 10 });
  await node.admit(owned('a', 3));
  await node.admit(owned('b', 2));
  await node.admit(owned('c', 2));
  await node.admit(slotPod('bare', {}, 1));
  await node.admit(owned('mine', 1, { [POD_DELETION_COST]: '-5' }));
  await node.agent.start();
  // Expected from what the kubelet lists: per pod, the share the other allocations hold on its GPU.
  const listed = await node.podResources.list(RESOURCE_SAIR_GPU);
  const gpuOf = (pod: string) => gpusOfSlots(listed.find((c) => c.pod === pod)!.slotIds).uuids[0]!;
  const others = (pod: string) => listed.filter((c) => c.pod !== pod && gpusOfSlots(c.slotIds).uuids[0] === gpuOf(pod)).reduce((n, c) => n + c.slotIds.length * 10, 0);
  const annotationsOf = (pod: string) => node.api.get<k8s.V1Pod>('pods', 'ml', pod)!.metadata!.annotations ?? {};
  for (const pod of ['a', 'b', 'c']) {
    await eventually(() => (annotationsOf(pod)[POD_DELETION_COST] === String(others(pod)) ? true : undefined), 3_000, `the deletion cost of ${pod}`);
    expect(annotationsOf(pod)[SAIR_DELETION_COST]).toBe(String(others(pod)));
  }
  // Placement packs them (binpack), so some GPU is shared and some cost is above 0.
  expect(['a', 'b', 'c'].some((p) => others(p) > 0)).toBe(true);
  expect(annotationsOf('bare')).not.toHaveProperty(POD_DELETION_COST);
  expect(annotationsOf('mine')[POD_DELETION_COST]).toBe('-5');
  expect(annotationsOf('mine')).not.toHaveProperty(SAIR_DELETION_COST);

  // One leaves: the costs of those that shared its GPU fall.
  const sharer = ['a', 'b', 'c'].find((p) => others(p) > 0)!;
  node.kubelet.removePod('ml', sharer);
  const left = await node.podResources.list(RESOURCE_SAIR_GPU);
  const othersNow = (pod: string) => left.filter((c) => c.pod !== pod && gpusOfSlots(c.slotIds).uuids[0] === gpuOf(pod)).reduce((n, c) => n + c.slotIds.length * 10, 0);
  // Every remaining cost is written (the writes are not awaited, so each is waited for) before the count.
  for (const pod of ['a', 'b', 'c'].filter((p) => p !== sharer)) {
    await eventually(() => (annotationsOf(pod)[POD_DELETION_COST] === String(othersNow(pod)) ? true : undefined), 3_000, `the deletion cost of ${pod} once ${sharer} left`);
  }
  const writes = node.api.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith('/api/v1/namespaces/ml/pods/')).length;
  await new Promise((r) => setTimeout(r, 400));
  // Resyncs every 100 ms write nothing once the costs stand.
  expect(node.api.requests.filter((r) => r.method === 'PATCH' && r.path.startsWith('/api/v1/namespaces/ml/pods/')).length).toBe(writes);
}, 20_000);

it('tries a refused pod-deletion-cost once per value, and retries one that failed for another reason', async () => {
  node = await GpuNode.start({ gpus: 1, slotsPerGpu: 10 });
  await node.admit(owned('a', 2));
  await node.admit(owned('b', 2));
  const patches = () => node.api.requests.filter((r) => r.method === 'PATCH' && r.path === '/api/v1/namespaces/ml/pods/a');
  const refused = node.api.injectFault({ verb: 'patch', resource: 'pods', name: 'a', status: 403, times: 1000 });
  await node.agent.start();
  await new Promise((r) => setTimeout(r, 500)); // five resyncs
  expect(refused.hits).toBe(1);
  expect(patches().length).toBe(1);
  refused.cancel();
  // A server error is retried at the next reconcile, and the cost lands.
  node.api.injectFault({ verb: 'patch', resource: 'pods', name: 'b', status: 500, times: 2 });
  await eventually(() => (node.api.get<k8s.V1Pod>('pods', 'ml', 'b')!.metadata!.annotations?.[POD_DELETION_COST] === '20' ? true : undefined), 3_000, 'b\'s cost after two failures');
}, 20_000);

it('applies a share change at once while a pod-deletion-cost write hangs at the API server', async () => {
  node = await GpuNode.start({ gpus: 1, slotsPerGpu: 10 });
  await node.admit(slotPod('a', { 'sair.dev/gpu-cores': '30' }));
  await node.admit(owned('b', 2));
  const hung = node.api.injectFault({ verb: 'patch', resource: 'pods', name: 'b', delayMs: 5_000, times: 1000 });
  await node.agent.start();
  await eventually(() => (hung.hits > 0 ? true : undefined), 3_000, 'the cost write to reach the API server');
  const changedAt = Date.now();
  await annotate('a', { 'sair.dev/gpu-cores': '45' });
  await eventually(async () => ((await limitsOf('a')).gpuCores === 45 ? true : undefined), 2_000, 'the new share while the write hangs');
  expect(Date.now() - changedAt).toBeLessThan(2_000);
  hung.cancel();
}, 20_000);
