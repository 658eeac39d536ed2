// Device plugin timings on this machine, with the same fakes the tests use (fake kubelet on unix
// sockets, in-process fake API server, --fake-gpus): how long an annotation change takes to reach
// a container's limits file (target: 1 s), how long re-registration takes after a kubelet
// restart (target: 5 s), the Allocate / GetPreferredAllocation round trip, and a PodResources List
// (which the node agent calls on every reconcile) with 40 pods on the node. Prints figures; the
// last line is the summary.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../src/common/logger.js';
import { readLimitsFile } from '../src/device-plugin/control-file.js';
import { AllocationFiles } from '../src/device-plugin/allocations.js';
import { FakeGpuBackend, GpuInventory, fakeGpuUuid } from '../src/device-plugin/gpus.js';
import { DevicePluginServer, PLUGIN_OPTIONS } from '../src/device-plugin/plugin.js';
import { RESOURCE_SAIR_GPU } from '../src/core/names.js';
import { Registrar } from '../src/device-plugin/registration.js';
import { FakeKubelet } from '../test/support/fake-kubelet.js';
import { GpuNode, slotPod } from '../test/support/gpu-node.js';

const log = createLogger('device-plugin', 'silent');

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;
}

function summary(ms: number[]): { p50: number; p99: number; max: number } {
  const s = [...ms].sort((a, b) => a - b);
  return { p50: quantile(s, 0.5), p99: quantile(s, 0.99), max: s.at(-1)! };
}

const fmt = (x: number): string => x.toFixed(2);

async function untilTrue(test: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!test()) {
    if (performance.now() > deadline) throw new Error(`not within ${timeoutMs} ms`);
    await new Promise((r) => setImmediate(r));
  }
}

async function annotationLatency(changes: number): Promise<number[]> {
  const node = await GpuNode.start();
  await node.admit(slotPod('p', { 'sair.dev/gpu-cores': '1' }));
  await node.agent.start();
  const file = (await node.allocationOf('p')).limits;
  const { core } = node.api.clients('ml');
  const cores = (): number => {
    try {
      return readLimitsFile(file).limits.gpuCores;
    } catch {
      return 0;
    }
  };
  await untilTrue(() => cores() === 1, 5000);
  const out: number[] = [];
  for (let i = 0; i < changes; i++) {
    const value = 2 + (i % 98);
    const t0 = performance.now();
    await core.patchNamespacedPod({ name: 'p', namespace: 'ml', body: [{ op: 'replace', path: '/metadata/annotations/sair.dev~1gpu-cores', value: String(value) }] });
    await untilTrue(() => cores() === value, 5000);
    out.push(performance.now() - t0);
  }
  await node.close();
  return out;
}

async function podResourcesLookup(pods: number, calls: number): Promise<number[]> {
  const node = await GpuNode.start({ gpus: 4, slotsPerGpu: 10 });
  for (let i = 0; i < pods; i++) await node.admit(slotPod(`p${i}`, { 'sair.dev/gpu-cores': '2' }));
  const out: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await node.podResources.list(RESOURCE_SAIR_GPU);
    out.push(performance.now() - t0);
  }
  await node.close();
  return out;
}

async function pluginTimings(restarts: number, calls: number): Promise<{ reregister: number[]; allocate: number[]; preferred: number[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'sair-bench-dp-'));
  const kubelet = await FakeKubelet.start(dir);
  const inventory = new GpuInventory(new FakeGpuBackend(8), log, join(dir, 'sys'));
  inventory.discover();
  const plugin = new DevicePluginServer(
    { socketPath: join(dir, 'sair-gpu.sock'), slotsPerGpu: 10, hostLibDir: '/var/lib/sair/lib', containerLibDir: '/usr/local/sair/lib', allocations: new AllocationFiles(join(dir, 'alloc')) },
    inventory,
    log,
  );
  const registrar = new Registrar(plugin, { resourceName: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS }, log);
  await registrar.start();
  await kubelet.waitForRegistrations(1);

  const reregister: number[] = [];
  for (let i = 0; i < restarts; i++) {
    const t0 = performance.now();
    await kubelet.restart();
    await kubelet.waitForRegistrations(i + 2);
    reregister.push(performance.now() - t0);
  }

  const available = Array.from({ length: 8 }, (_, g) => Array.from({ length: 10 }, (_, k) => `${fakeGpuUuid(g)}::${k}`)).flat();
  const allocate: number[] = [];
  const preferred: number[] = [];
  for (let i = 0; i < calls; i++) {
    let t0 = performance.now();
    await kubelet.getPreferredAllocation({ container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: [], allocation_size: 2 }] });
    preferred.push(performance.now() - t0);
    t0 = performance.now();
    await kubelet.allocate({ container_requests: [{ devices_ids: [available[i % 80]!] }] });
    allocate.push(performance.now() - t0);
  }
  await registrar.stop();
  await plugin.close();
  await kubelet.close();
  rmSync(dir, { recursive: true, force: true });
  return { reregister, allocate, preferred };
}

const annotation = summary(await annotationLatency(100));
console.log(`annotation change -> limits file (100 changes): p50 ${fmt(annotation.p50)} ms, p99 ${fmt(annotation.p99)} ms, max ${fmt(annotation.max)} ms`);
const t = await pluginTimings(10, 1000);
const rereg = summary(t.reregister);
const alloc = summary(t.allocate);
const pref = summary(t.preferred);
console.log(`kubelet restart -> re-registered (10 restarts): p50 ${fmt(rereg.p50)} ms, max ${fmt(rereg.max)} ms`);
console.log(`Allocate round trip (1000 calls): p50 ${fmt(alloc.p50)} ms, p99 ${fmt(alloc.p99)} ms`);
console.log(`GetPreferredAllocation over 80 slots (1000 calls): p50 ${fmt(pref.p50)} ms, p99 ${fmt(pref.p99)} ms`);
const lookup = summary(await podResourcesLookup(40, 1000));
console.log(`PodResources List with 40 pods (1000 calls): p50 ${fmt(lookup.p50)} ms, p99 ${fmt(lookup.p99)} ms`);
console.log('targets: annotation -> limits file within 1000 ms; re-registration within 5000 ms');
// The same `summary: key=value` last line as every other bench.
console.log(
  `summary: annotation_to_file_p99_ms=${fmt(annotation.p99)} reregistration_max_ms=${fmt(rereg.max)} allocate_p99_ms=${fmt(alloc.p99)} podresources_lookup_p99_ms=${fmt(lookup.p99)}`,
);
