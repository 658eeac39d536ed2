// Prometheus metrics of the device plugin and node agent (served on :9400): per pod the GPU core
// share limit and use, memory quota and use, kernel and throttled time (from the shim's usage
// slots in each control file); per container the slots it holds (from the kubelet checkpoint);
// per GPU utilization, memory, health and slots in use (from NVML).
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { errorMessage } from '../common/errors.js';
import type { PodUsage } from './agent.js';
import type { ContainerSlots } from './checkpoint.js';
import type { Gpu } from './gpus.js';
import { parseSlotId } from './slots.js';

export interface MetricSources {
  gpus(): readonly Gpu[];
  slotsPerGpu: number;
  pods(): PodUsage[];
  /** Slots held per container; throws when the kubelet's record cannot be read. */
  allocations(): ContainerSlots[];
  /** Wall clock in ns (injected so tests control the rate window). */
  nowNs?: () => bigint;
}

const POD = ['namespace', 'pod', 'uid'] as const;
const GPU = ['gpu', 'uuid'] as const;

export class DevicePluginMetrics {
  readonly registry: Registry;
  private readonly g: Record<string, Gauge<string>>;
  private readonly kernelSeconds: Counter<string>;
  private readonly throttledSeconds: Counter<string>;
  /** Last seen kernel/throttled ns per pod uid and pid, to turn the shim's totals into rates. */
  private readonly podLabels = new Map<string, Record<(typeof POD)[number], string>>();
  private readonly last = new Map<string, { kernelNs: bigint; throttledNs: bigint; atNs: bigint }>();

  constructor(
    private readonly sources: MetricSources,
    private readonly log: Logger,
  ) {
    this.registry = createRegistry('device-plugin');
    const gauge = (name: string, help: string, labels: readonly string[]): Gauge<string> =>
      new Gauge({ name, help, labelNames: [...labels], registers: [this.registry] });
    this.g = {
      coresLimit: gauge('sair_device_plugin_pod_gpu_cores_limit_percent', 'GPU core share limit of the pod, percent of one GPU', POD),
      coresUsed: gauge('sair_device_plugin_pod_gpu_cores_used_percent', 'GPU time used by the pod since the previous scrape, percent of one GPU', POD),
      memQuota: gauge('sair_device_plugin_pod_gpu_memory_quota_bytes', 'GPU memory quota of the pod (0 = none)', POD),
      memUsed: gauge('sair_device_plugin_pod_gpu_memory_used_bytes', 'GPU memory the pod holds, summed over its running processes', POD),
      processes: gauge('sair_device_plugin_pod_gpu_processes', 'Running processes of the pod registered in its control file', POD),
      containerSlots: gauge('sair_device_plugin_container_gpu_slots', 'sair.dev/gpu slots held by a container, per GPU', ['namespace', 'pod', 'uid', 'container', 'uuid']),
      gpuUtil: gauge('sair_device_plugin_gpu_utilization_percent', 'GPU utilization reported by NVML', GPU),
      gpuMemUsed: gauge('sair_device_plugin_gpu_memory_used_bytes', 'GPU memory in use reported by NVML', GPU),
      gpuMemTotal: gauge('sair_device_plugin_gpu_memory_total_bytes', 'GPU memory size reported by NVML', GPU),
      gpuHealthy: gauge('sair_device_plugin_gpu_healthy', '1 while the GPU answers NVML queries', GPU),
      slotsTotal: gauge('sair_device_plugin_gpu_slots', 'sair.dev/gpu slots advertised for the GPU', GPU),
      slotsInUse: gauge('sair_device_plugin_gpu_slots_in_use', 'sair.dev/gpu slots of the GPU allocated to containers', GPU),
    };
    this.kernelSeconds = new Counter({
      name: 'sair_device_plugin_pod_gpu_kernel_seconds_total',
      help: 'GPU time charged to the pod by the shim core limiter',
      labelNames: [...POD],
      registers: [this.registry],
    });
    this.throttledSeconds = new Counter({
      name: 'sair_device_plugin_pod_gpu_throttled_seconds_total',
      help: 'Time the pod\'s kernel launches waited for the core limiter',
      labelNames: [...POD],
      registers: [this.registry],
    });
  }

  /** Reads every source and sets the metrics; called before each scrape. */
  refresh(): void {
    for (const g of Object.values(this.g)) g.reset();
    const now = this.sources.nowNs?.() ?? BigInt(Date.now()) * 1_000_000n;
    const gpus = this.sources.gpus();
    for (const gpu of gpus) {
      const l = { gpu: String(gpu.index), uuid: gpu.uuid };
      this.g.gpuHealthy!.set(l, gpu.healthy ? 1 : 0);
      this.g.slotsTotal!.set(l, this.sources.slotsPerGpu);
      this.g.slotsInUse!.set(l, 0);
      if (!gpu.healthy) continue;
      this.g.gpuUtil!.set(l, gpu.utilizationPercent);
      this.g.gpuMemUsed!.set(l, Number(gpu.memoryUsedBytes));
      this.g.gpuMemTotal!.set(l, Number(gpu.memoryTotalBytes));
    }

    const pods = this.sources.pods();
    const byUid = new Map(pods.map((p) => [p.uid, p]));
    const seen = new Set<string>();
    for (const pod of pods) {
      const l = { namespace: pod.namespace, pod: pod.name, uid: pod.uid };
      this.podLabels.set(pod.uid, l);
      this.g.coresLimit!.set(l, pod.limits.gpuCores);
      this.g.memQuota!.set(l, Number(pod.limits.memoryBytes));
      const live = pod.slots.filter((x) => x.live);
      this.g.memUsed!.set(l, Number(live.reduce((s, x) => s + x.memoryBytes, 0n)));
      this.g.processes!.set(l, live.length);
      let busyNs = 0n;
      let windowNs = 0n;
      for (const slot of pod.slots) {
        const key = `${pod.uid}/${slot.pid}`;
        seen.add(key);
        const prev = this.last.get(key);
        this.last.set(key, { kernelNs: slot.kernelNs, throttledNs: slot.throttledNs, atNs: now });
        // A first sight or a reused slot (totals went down) starts a new baseline.
        if (!prev || slot.kernelNs < prev.kernelNs || slot.throttledNs < prev.throttledNs) continue;
        busyNs += slot.kernelNs - prev.kernelNs;
        windowNs = now - prev.atNs > windowNs ? now - prev.atNs : windowNs;
        this.kernelSeconds.inc(l, Number(slot.kernelNs - prev.kernelNs) / 1e9);
        this.throttledSeconds.inc(l, Number(slot.throttledNs - prev.throttledNs) / 1e9);
      }
      this.g.coresUsed!.set(l, windowNs > 0n ? (Number(busyNs) / Number(windowNs)) * 100 : 0);
    }
    for (const key of this.last.keys()) if (!seen.has(key)) this.last.delete(key);
    for (const [uid, l] of this.podLabels) {
      if (byUid.has(uid)) continue;
      this.kernelSeconds.remove(l);
      this.throttledSeconds.remove(l);
      this.podLabels.delete(uid);
    }

    let allocations: ContainerSlots[] = [];
    try {
      allocations = this.sources.allocations();
    } catch (err) {
      this.log.warn({ err: errorMessage(err) }, 'kubelet checkpoint unreadable; slots in use not reported');
    }
    const inUse = new Map<string, number>();
    for (const a of allocations) {
      const perGpu = new Map<string, number>();
      for (const id of a.slotIds) {
        const uuid = parseSlotId(id)?.uuid;
        if (!uuid) continue;
        perGpu.set(uuid, (perGpu.get(uuid) ?? 0) + 1);
        inUse.set(uuid, (inUse.get(uuid) ?? 0) + 1);
      }
      const pod = byUid.get(a.podUid);
      for (const [uuid, n] of perGpu) {
        this.g.containerSlots!.set({ namespace: pod?.namespace ?? '', pod: pod?.name ?? '', uid: a.podUid, container: a.container, uuid }, n);
      }
    }
    for (const gpu of gpus) this.g.slotsInUse!.set({ gpu: String(gpu.index), uuid: gpu.uuid }, inUse.get(gpu.uuid) ?? 0);
  }

  /** Serves /metrics and /healthz on `port` (0 = any free port); resolves with the bound server. */
  async listen(port: number, host = '0.0.0.0'): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (req.url !== '/metrics' && !req.url?.startsWith('/metrics?')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
        return;
      }
      try {
        this.refresh();
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'metrics refresh failed');
      }
      this.registry
        .metrics()
        .then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
        .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.log.info({ port: (server.address() as AddressInfo).port }, 'metrics listening');
    return server;
  }
}
