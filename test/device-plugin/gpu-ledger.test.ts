// One owner per GPU. The ledger alone (claims, the kubelet's list, the grace period), then whole
// and shared pods mixed on one in-process GPU node (test/support/gpu-node.ts: both plugins on one
// ledger, the fake kubelet with PodResources, the node agent): a GPU with a slot in use is not
// offered whole, a GPU held whole offers no slots, and freeing either makes the other available.
import type * as k8s from '@kubernetes/client-node';
import { GpuLedger } from '../../src/device-plugin/gpu-ledger.js';
import { fakeGpuUuid } from '../../src/device-plugin/gpus.js';
import type { Device } from '../../src/device-plugin/proto.js';
import { RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE } from '../../src/core/names.js';
import { GpuNode, slotPod } from '../support/gpu-node.js';

const g0 = fakeGpuUuid(0);
const g1 = fakeGpuUuid(1);

describe('GpuLedger', () => {
  it('refuses a GPU held the other way, keeps an unlisted claim for the grace period, and follows the kubelet\'s list', () => {
    const ledger = new GpuLedger(1000);
    let changes = 0;
    ledger.onChange(() => changes++);
    ledger.claim({ use: 'slots', ids: [`${g0}::0`], gpus: [g0] }, 0);
    expect(ledger.useOf(g0)).toBe('slots');
    expect(changes).toBe(1);
    ledger.claim({ use: 'slots', ids: [`${g0}::1`], gpus: [g0] }, 0);
    expect(changes).toBe(1);
    expect(() => ledger.claim({ use: 'whole', ids: [g0], gpus: [g0] }, 0)).toThrow(
      `devices_ids: GPU ${g0} is shared: some of its sair.dev/gpu slots are allocated, so it cannot be allocated whole until that pod ends`,
    );
    ledger.claim({ use: 'whole', ids: [g1], gpus: [g1] }, 0);
    expect(() => ledger.check({ use: 'slots', ids: [`${g1}::0`], gpus: [g1] })).toThrow(`GPU ${g1} is allocated whole (sair.dev/gpu-whole)`);

    // The kubelet lists one slot claim: it stays while listed; the unlisted ones last the grace period.
    ledger.observe([{ use: 'slots', ids: [`${g0}::0`], gpus: [g0] }], 500);
    expect([ledger.useOf(g0), ledger.useOf(g1)]).toEqual(['slots', 'whole']);
    ledger.observe([{ use: 'slots', ids: [`${g0}::0`], gpus: [g0] }], 1000);
    expect([ledger.useOf(g0), ledger.useOf(g1)]).toEqual(['slots', undefined]);
    ledger.observe([], 1001);
    expect(ledger.useOf(g0)).toBeUndefined();
    expect(changes).toBe(4);
  });
});

function wholePod(name: string, gpus = 1): k8s.V1Pod {
  return {
    metadata: { name, namespace: 'ml' },
    spec: { containers: [{ name: 'main', image: 'example.com/train:1', resources: { limits: { [RESOURCE_SAIR_GPU_WHOLE]: String(gpus) } } }] },
  };
}

const healthy = (devices: Device[]): string[] => devices.filter((d) => d.health === 'Healthy').map((d) => d.ID);
const gpuOfSlot = (id: string): string => id.split('::')[0]!;

describe('whole and shared GPUs on one node', () => {
  let node: GpuNode;
  afterEach(async () => node?.close());

  it('never hands out a GPU whole and shared at once, and frees each for the other', async () => {
    node = await GpuNode.start({ gpus: 2, slotsPerGpu: 4, wholeGpus: true });
    await node.agent.start();
    const { kubelet } = node;
    await kubelet.waitForDevices((d) => healthy(d).length === 2, RESOURCE_SAIR_GPU_WHOLE);

    // A shared slot in use: its GPU is no longer offered whole.
    const shared = await node.admit(slotPod('shared'));
    const sharedGpu = shared.get('main')!.envs['SAIR_GPU_UUID']!;
    const otherGpu = sharedGpu === g0 ? g1 : g0;
    await kubelet.waitForDevices((d) => healthy(d).join() === otherGpu, RESOURCE_SAIR_GPU_WHOLE);

    // A whole GPU: the other one, with its GPU only (no limiter); its slots are no longer offered.
    const whole = (await node.admit(wholePod('train'))).get('main')!;
    expect(whole.envs).toEqual({ NVIDIA_VISIBLE_DEVICES: otherGpu, SAIR_GPU_UUID: otherGpu });
    expect(whole.cdi_devices).toEqual([{ name: `nvidia.com/gpu=${otherGpu}` }]);
    expect(whole.mounts).toEqual([]);
    const slots = await kubelet.waitForDevices((d) => healthy(d).every((id) => gpuOfSlot(id) === sharedGpu), RESOURCE_SAIR_GPU);
    expect(healthy(slots)).toHaveLength(4);
    await expect(node.admit(wholePod('train-2'))).rejects.toThrow(`requested 1 of ${RESOURCE_SAIR_GPU_WHOLE}, 0 available`);
    // More shared pods go to the shared GPU.
    expect((await node.admit(slotPod('shared-2'))).get('main')!.envs['SAIR_GPU_UUID']).toBe(sharedGpu);

    // A kubelet that offered a device anyway (a race with ListAndWatch) is refused, naming the GPU.
    await expect(kubelet.allocate({ container_requests: [{ devices_ids: [sharedGpu] }] }, RESOURCE_SAIR_GPU_WHOLE)).rejects.toMatchObject({
      details: expect.stringContaining(`GPU ${sharedGpu} is shared`),
    });
    await expect(kubelet.allocate({ container_requests: [{ devices_ids: [`${otherGpu}::0`] }] }, RESOURCE_SAIR_GPU)).rejects.toMatchObject({
      details: expect.stringContaining(`GPU ${otherGpu} is allocated whole`),
    });

    // Freeing: once the kubelet no longer lists the pods, each GPU is offered the other way again.
    await node.agent.reconcileNow();
    kubelet.removePod('ml', 'shared');
    kubelet.removePod('ml', 'shared-2');
    // The GPU held whole stays Healthy on its own list (it is in use, not gone) and its slots stay unavailable.
    await kubelet.waitForDevices((d) => healthy(d).length === 2, RESOURCE_SAIR_GPU_WHOLE);
    expect(healthy(kubelet.latestDevicesOf(RESOURCE_SAIR_GPU)!).every((id) => gpuOfSlot(id) === sharedGpu)).toBe(true);
    kubelet.removePod('ml', 'train');
    await kubelet.waitForDevices((d) => healthy(d).length === 8, RESOURCE_SAIR_GPU);
  }, 20_000);
});
