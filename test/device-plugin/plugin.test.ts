// The device plugin and its registration against a fake kubelet on real unix sockets.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/logger.js';
import { FakeGpuBackend, GpuInventory, fakeGpuUuid } from '../../src/device-plugin/gpus.js';
import { DevicePluginServer, PLUGIN_OPTIONS, type DeviceListStrategy } from '../../src/device-plugin/plugin.js';
import { AllocationFiles, allocationId } from '../../src/device-plugin/allocations.js';
import { readLimitsFile } from '../../src/device-plugin/control-file.js';
import { RESOURCE_SAIR_GPU } from '../../src/core/names.js';
import { Registrar, register } from '../../src/device-plugin/registration.js';
import { FakeKubelet } from '../support/fake-kubelet.js';

const log = createLogger('device-plugin', 'silent');

/** `promise`, or a rejection naming `what` once `ms` have passed (the bound the plugin promises). */
function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} took more than ${ms} ms`)), ms)));
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

describe('device plugin with a fake kubelet', () => {
  let dir: string;
  let kubelet: FakeKubelet;
  let backend: FakeGpuBackend;
  let inventory: GpuInventory;
  let plugin: DevicePluginServer;
  let registrar: Registrar;
  let free = 100;

  beforeEach(async () => {
    free = 100;
    dir = mkdtempSync(join(tmpdir(), 'sair-dp-'));
    kubelet = await FakeKubelet.start(dir);
    backend = new FakeGpuBackend(2);
    inventory = new GpuInventory(backend, log, join(dir, 'no-sysfs'));
    inventory.discover();
    plugin = new DevicePluginServer(
      {
        socketPath: join(dir, 'sair-gpu.sock'),
        slotsPerGpu: 4,
        hostLibDir: '/var/lib/sair/lib',
        containerLibDir: '/usr/local/sair/lib',
        allocations: new AllocationFiles(join(dir, 'alloc')),
        freeShare: () => free,
      },
      inventory,
      log,
    );
    // Production timings (1 s poll and retry), so the 5 s re-registration bound is checked as shipped.
    registrar = new Registrar(plugin, { resourceName: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS }, log);
  });

  afterEach(async () => {
    await registrar.stop();
    await plugin.close();
    await kubelet.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('registers and lists N healthy slots per GPU', async () => {
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    const reg = kubelet.registrations[0]!;
    expect(reg.request).toMatchObject({ version: 'v1beta1', endpoint: 'sair-gpu.sock', resource_name: 'sair.dev/gpu' });
    expect(reg.options).toEqual({ pre_start_required: false, get_preferred_allocation_available: true });
    const devices = await kubelet.waitForDevices((d) => d.length > 0);
    expect(devices).toHaveLength(8);
    expect(devices.every((d) => d.health === 'Healthy')).toBe(true);
    expect(devices.map((d) => d.ID)).toContain(`${fakeGpuUuid(1)}::3`);
  }, 15000);

  it('resends the list when a GPU goes unhealthy and again when it recovers', async () => {
    await registrar.start();
    await kubelet.waitForDevices((d) => d.length === 8);
    backend.setHealthy(1, false);
    inventory.refresh();
    const sick = await kubelet.waitForDevices((d) => d.some((x) => x.health === 'Unhealthy'));
    expect(sick.filter((d) => d.health === 'Unhealthy').map((d) => d.ID)).toEqual([0, 1, 2, 3].map((k) => `${fakeGpuUuid(1)}::${k}`));
    backend.setHealthy(1, true);
    inventory.refresh();
    await kubelet.waitForDevices((d) => d.length === 8 && d.every((x) => x.health === 'Healthy') && kubelet.deviceLists.indexOf(d) > kubelet.deviceLists.indexOf(sick));
    await expect(kubelet.preStartContainer({ devices_ids: [`${fakeGpuUuid(1)}::0`] })).resolves.toEqual({});
  }, 15000);

  it('prefers one GPU, by default the fullest that has room', async () => {
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    const g0 = fakeGpuUuid(0);
    const g1 = fakeGpuUuid(1);
    const res = await kubelet.getPreferredAllocation({
      container_requests: [
        // GPU 0 has 3 free slots, GPU 1 has 2: a request for 2 goes to GPU 1, fewer slots left idle.
        { available_deviceIDs: [`${g1}::0`, `${g0}::1`, `${g1}::3`, `${g0}::2`, `${g0}::3`], must_include_deviceIDs: [], allocation_size: 2 },
        // A must-include slot pins the request to its GPU.
        { available_deviceIDs: [`${g0}::0`, `${g0}::1`, `${g0}::2`, `${g1}::2`, `${g1}::3`], must_include_deviceIDs: [`${g1}::3`], allocation_size: 2 },
      ],
    });
    expect(res.container_responses[0]!.deviceIDs).toEqual([`${g1}::0`, `${g1}::3`]);
    expect(res.container_responses[1]!.deviceIDs.sort()).toEqual([`${g1}::2`, `${g1}::3`]);
  }, 15000);

  it('allocates the GPU UUID, the shim preloaded, and the allocation\'s own limits (read-only, the slots\' share) and state files; rejects foreign ids and unhealthy GPUs', async () => {
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    const g1 = fakeGpuUuid(1);
    const res = await kubelet.allocate({ container_requests: [{ devices_ids: [`${g1}::0`, `${g1}::1`] }] });
    expect(res.container_responses).toHaveLength(1);
    const c = res.container_responses[0]!;
    // 2 of the GPU's 4 slots: half its time and half its 16 GiB.
    expect(c.envs).toEqual({
      NVIDIA_VISIBLE_DEVICES: g1,
      SAIR_GPU_UUID: g1,
      LD_PRELOAD: '/usr/local/sair/lib/libsair-cuda.so',
      SAIR_GPU_CORES: '50',
      SAIR_GPU_MEMORY: String(8 * 1024 ** 3),
      SAIR_LIMITS_FILE: '/run/sair/limits',
      SAIR_STATE_FILE: '/run/sair/state',
    });
    const id = allocationId([`${g1}::1`, `${g1}::0`]);
    expect(c.mounts).toEqual([
      { container_path: '/usr/local/sair/lib', host_path: '/var/lib/sair/lib', read_only: true },
      { container_path: '/run/sair/limits', host_path: join(dir, 'alloc', id, 'limits'), read_only: true },
      { container_path: '/run/sair/state', host_path: join(dir, 'alloc', id, 'state'), read_only: false },
    ]);
    expect(readLimitsFile(join(dir, 'alloc', id, 'limits')).limits).toEqual({ gpuCores: 50, memoryBytes: 8n << 30n });
    // The GPU also as a CDI device, named as the NVIDIA Container Toolkit's spec names it (default strategy: both).
    expect(c.cdi_devices).toEqual([{ name: `nvidia.com/gpu=${g1}` }]);
    expect(c.devices).toEqual([]);

    // What the other allocations on the GPU leave caps the starting share; nothing left is a refusal.
    free = 20;
    const capped = await kubelet.allocate({ container_requests: [{ devices_ids: [`${g1}::2`, `${g1}::3`] }] });
    expect(capped.container_responses[0]!.envs['SAIR_GPU_CORES']).toBe('20');
    free = 0;
    await expect(kubelet.allocate({ container_requests: [{ devices_ids: [`${g1}::2`] }] })).rejects.toMatchObject({
      details: expect.stringContaining('has no core share left'),
    });
    free = 100;

    await expect(kubelet.allocate({ container_requests: [{ devices_ids: ['nvidia0'] }] })).rejects.toMatchObject({
      details: expect.stringContaining('not sair.dev/gpu slot ids'),
    });
    backend.setHealthy(1, false);
    inventory.refresh();
    await expect(kubelet.allocate({ container_requests: [{ devices_ids: [`${g1}::0`] }] })).rejects.toMatchObject({
      details: expect.stringContaining('unhealthy'),
    });
  }, 15000);

  it.each<[DeviceListStrategy, string, string[]]>([
    ['envvar', 'GPU', []],
    ['cdi-cri', 'void', ['GPU']],
    ['both', 'GPU', ['GPU']],
  ])('with --device-list-strategy %s, Allocate sets NVIDIA_VISIBLE_DEVICES=%s and CDI devices %j', async (strategy, visible, cdi) => {
    await registrar.stop();
    await plugin.close();
    plugin = new DevicePluginServer(
      { socketPath: join(dir, 'sair-gpu.sock'), slotsPerGpu: 4, hostLibDir: '/var/lib/sair/lib', containerLibDir: '/usr/local/sair/lib', allocations: new AllocationFiles(join(dir, 'alloc')), deviceListStrategy: strategy },
      inventory,
      log,
    );
    registrar = new Registrar(plugin, { resourceName: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS }, log);
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    const g0 = fakeGpuUuid(0);
    const c = (await kubelet.allocate({ container_requests: [{ devices_ids: [`${g0}::0`] }] })).container_responses[0]!;
    const named = (x: string): string => x.replace('GPU', g0);
    expect(c.envs['NVIDIA_VISIBLE_DEVICES']).toBe(named(visible));
    expect(c.envs['SAIR_GPU_UUID']).toBe(g0);
    expect(c.cdi_devices).toEqual(cdi.map((n) => ({ name: `nvidia.com/gpu=${named(n)}` })));
  }, 15000);

  it('re-registers after a kubelet restart that recreates kubelet.sock and deletes the plugin socket', async () => {
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    await kubelet.restart();
    await within(5000, 're-registration after a kubelet restart', kubelet.waitForRegistrations(2));
    const devices = await kubelet.waitForDevices((d) => d.length === 8);
    expect(devices).toHaveLength(8);
    expect(registrar.registrations).toBe(2);
  }, 15000);

  it('re-registers when only kubelet.sock is recreated', async () => {
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    await kubelet.restart({ keepPluginSockets: true });
    await within(5000, 're-registration after kubelet.sock was recreated', kubelet.waitForRegistrations(2));
    await expect(kubelet.waitForDevices((d) => d.length === 8)).resolves.toHaveLength(8);
  }, 15000);

  it('removes a stale socket file before binding', async () => {
    writeFileSync(join(dir, 'sair-gpu.sock'), 'left over by a crashed plugin');
    await registrar.start();
    await kubelet.waitForRegistrations(1);
    await expect(kubelet.waitForDevices((d) => d.length === 8)).resolves.toHaveLength(8);
  }, 15000);

  it('passes on the kubelet\'s refusal of a bad version or resource name', async () => {
    await expect(register(kubelet.socketPath, { version: 'v1alpha', endpoint: 'x.sock', resource_name: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS })).rejects.toThrow(
      /Register with .*kubelet\.sock failed: Requested device plugin version v1alpha is not supported/,
    );
    await expect(register(kubelet.socketPath, { version: 'v1beta1', endpoint: 'x.sock', resource_name: 'gpu', options: PLUGIN_OPTIONS })).rejects.toThrow(
      'the ResourceName "gpu" is invalid',
    );
    expect(kubelet.registrations).toHaveLength(0);
  }, 15000);

  it('keeps retrying until a kubelet appears', async () => {
    await kubelet.close();
    await registrar.start();
    expect(registrar.registrations).toBe(0);
    kubelet = await FakeKubelet.start(dir);
    await kubelet.waitForRegistrations(1);
    expect(registrar.registrations).toBe(1);
  }, 15000);
});
