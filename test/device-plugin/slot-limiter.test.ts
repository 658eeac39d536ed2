// Issue 23: a slot is limited even when no SAIR webhook touched its pod. A pod that asks for
// sair.dev/gpu with no SAIR env of its own gets a slot from the real device plugin through the
// fake kubelet; its container, started with what the kubelet and runtime would give it (the
// Allocate envs and mounts, test/support/e2e-node.ts) on the fake GPU, runs at the slot's share.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../src/common/logger.js';
import { RESOURCE_SAIR_GPU, SHIM_MOUNT_DIR } from '../../src/core/names.js';
import { FakeGpuBackend, GpuInventory } from '../../src/device-plugin/gpus.js';
import { DevicePluginServer, PLUGIN_OPTIONS } from '../../src/device-plugin/plugin.js';
import { AllocationFiles } from '../../src/device-plugin/allocations.js';
import { Registrar } from '../../src/device-plugin/registration.js';
import { containerView } from '../support/e2e-node.js';
import { FakeKubelet } from '../support/fake-kubelet.js';
import { BUILD_DIR, Driver, FAKE_LIB_DIR, freshGpuDir } from '../native/programs.js';

const log = createLogger('device-plugin', 'silent');
const SLOTS_PER_GPU = 4;

let dir: string;
let gpuDir: string;
let kubelet: FakeKubelet;
let plugin: DevicePluginServer;
let registrar: Registrar;
let driver: Driver | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sair-slot-'));
  gpuDir = freshGpuDir();
  kubelet = await FakeKubelet.start(dir);
  const inventory = new GpuInventory(new FakeGpuBackend(1), log, join(dir, 'no-sysfs'));
  inventory.discover();
  // The host's shim directory is the build's, where the installer would have put the library.
  plugin = new DevicePluginServer(
    { socketPath: join(dir, 'sair-gpu.sock'), slotsPerGpu: SLOTS_PER_GPU, hostLibDir: BUILD_DIR, containerLibDir: SHIM_MOUNT_DIR, allocations: new AllocationFiles(join(dir, 'alloc')) },
    inventory,
    log,
  );
  registrar = new Registrar(plugin, { resourceName: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS }, log);
  await registrar.start();
});

afterAll(async () => {
  await driver?.kill();
  await registrar.stop();
  await plugin.close();
  await kubelet.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(gpuDir, { recursive: true, force: true });
});

it('runs a container that asked for sair.dev/gpu directly at its slot\'s share on the fake GPU', async () => {
  const devices = await kubelet.waitForDevices((d) => d.length === SLOTS_PER_GPU);
  const allocation = await kubelet.allocate({ container_requests: [{ devices_ids: [devices[0]!.ID] }] });
  const pod: k8s.V1Pod = {
    metadata: { name: 'direct', namespace: 'plain', uid: 'b3c1e0f2-0000-4000-8000-000000000001' },
    spec: { containers: [{ name: 'main', image: 'example.com/infer:1', resources: { limits: { [RESOURCE_SAIR_GPU]: '1' } } }] },
  };
  const view = containerView(pod, 'main', { hostRoot: dir, allocated: allocation.container_responses[0] });
  expect(view.containerEnv).toMatchObject({ LD_PRELOAD: `${SHIM_MOUNT_DIR}/libsair-cuda.so`, SAIR_GPU_CORES: '25' });

  driver = await Driver.start({ ...view.env, PATH: '/usr/bin:/bin', LD_LIBRARY_PATH: FAKE_LIB_DIR, FAKE_GPU_DIR: gpuDir });
  // 1 ms kernels back to back for 1.5 s: unlimited, the process would hold the whole GPU.
  const reply = await driver.send('run 1000 1500 1 kernel');
  const share = reply.share as number;
  // One slot of four is 25 % of the GPU; the shared machine only ever makes the program slower.
  expect(share).toBeGreaterThan(0.15);
  expect(share).toBeLessThan(0.3);
}, 30_000);
