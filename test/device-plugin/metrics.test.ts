// Metrics as Prometheus scrapes them over HTTP, from fake GPUs and allocations with their usage.
// Series name pods by namespace, pod and container, never by UID.
import { mkdtempSync, rmSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/logger.js';
import type { AllocationUsage } from '../../src/device-plugin/agent.js';
import { FakeGpuBackend, GpuInventory, fakeGpuUuid } from '../../src/device-plugin/gpus.js';
import { DevicePluginMetrics } from '../../src/device-plugin/metrics.js';

const log = createLogger('device-plugin', 'silent');
const G0 = fakeGpuUuid(0);
const G1 = fakeGpuUuid(1);

function value(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(labels));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('device plugin metrics', () => {
  let dir: string;
  let server: Server | undefined;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sair-metrics-'))));
  afterEach(async () => {
    if (server) await new Promise((r) => server!.close(r));
    server = undefined;
    rmSync(dir, { recursive: true, force: true });
  });

  it('exports per-container limits and use, slots and per-GPU state on /metrics', async () => {
    const backend = new FakeGpuBackend(2, 16n << 30n);
    const inventory = new GpuInventory(backend, log, dir);
    inventory.discover();
    backend.setHealthy(1, false);
    inventory.refresh();
    let nowNs = 1_000_000_000_000n;
    const pod: AllocationUsage = {
      id: 'a1',
      namespace: 'ml',
      pod: 'bert-0',
      container: 'infer',
      limits: { gpuCores: 30, memoryBytes: 4n << 30n },
      requestedGpuCores: 45,
      slots: [
        { pid: 7, memoryBytes: 1n << 30n, kernelNs: 10_000_000_000n, throttledNs: 2_000_000_000n, heartbeatNs: 0n, live: true },
        // A crashed process's slot: its memory is back with the driver, its past GPU time still counts.
        { pid: 9, memoryBytes: 3n << 30n, kernelNs: 1_000_000_000n, throttledNs: 0n, heartbeatNs: 0n, live: false },
      ],
    };
    let pods = [pod];
    const metrics = new DevicePluginMetrics(
      { gpus: () => inventory.list(), slotsPerGpu: 4, allocations: () => Promise.resolve(pods), slotIds: () => [`${G0}::0`, `${G0}::1`], nowNs: () => nowNs },
      log,
    );
    server = await metrics.listen(0, '127.0.0.1');
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

    await fetch(url); // first scrape: the baseline for rates
    nowNs += 2_000_000_000n; // 2 s later the pod has had 0.6 s of GPU time and waited 0.5 s
    pod.slots = [{ ...pod.slots[0]!, kernelNs: 10_600_000_000n, throttledNs: 2_500_000_000n }, pod.slots[1]!];
    const text = await (await fetch(url)).text();

    const p = 'namespace="ml",pod="bert-0",container="infer"';
    expect(text).not.toMatch(/[{,]uid=/);
    expect(value(text, 'sair_device_plugin_pod_gpu_cores_limit_percent', p)).toBe(30);
    expect(value(text, 'sair_device_plugin_pod_gpu_cores_requested_percent', p)).toBe(45);
    expect(value(text, 'sair_device_plugin_pod_gpu_cores_used_percent', p)).toBeCloseTo(30, 6);
    expect(value(text, 'sair_device_plugin_pod_gpu_memory_quota_bytes', p)).toBe(4 * 2 ** 30);
    expect(value(text, 'sair_device_plugin_pod_gpu_memory_used_bytes', p)).toBe(2 ** 30);
    expect(value(text, 'sair_device_plugin_pod_gpu_processes', p)).toBe(1);
    expect(value(text, 'sair_device_plugin_pod_gpu_kernel_seconds_total', p)).toBeCloseTo(0.6, 6);
    expect(value(text, 'sair_device_plugin_pod_gpu_throttled_seconds_total', p)).toBeCloseTo(0.5, 6);
    expect(value(text, 'sair_device_plugin_container_gpu_slots', `container="infer",uuid="${G0}"`)).toBe(2);
    expect(value(text, 'sair_device_plugin_gpu_slots_in_use', `gpu="0",uuid="${G0}"`)).toBe(2);
    expect(value(text, 'sair_device_plugin_gpu_slots_in_use', `gpu="1",uuid="${G1}"`)).toBe(0);
    expect(value(text, 'sair_device_plugin_gpu_slots', `gpu="0"`)).toBe(4);
    expect(value(text, 'sair_device_plugin_gpu_memory_total_bytes', `gpu="0"`)).toBe(16 * 2 ** 30);
    expect(value(text, 'sair_device_plugin_gpu_utilization_percent', `gpu="0"`)).toBe(0);
    expect(value(text, 'sair_device_plugin_gpu_healthy', `gpu="0"`)).toBe(1);
    expect(value(text, 'sair_device_plugin_gpu_healthy', `gpu="1"`)).toBe(0);

    metrics.clamped({ id: 'a1', namespace: 'ml', pod: 'bert-0', container: 'infer' });
    expect(value(await (await fetch(url)).text(), 'sair_device_plugin_gpu_share_clamps_total', p)).toBe(1);

    // The pod goes away: its series go too.
    pods = [];
    const gone = await (await fetch(url)).text();
    expect(gone).toContain('sair_device_plugin_gpu_healthy{');
    expect(gone).not.toContain('sair_device_plugin_pod_gpu_cores_limit_percent{namespace="ml",pod="bert-0"');
  });
});
