// Prometheus metrics of the device plugin and node agent (served on :9400): per allocation (a
// pod's GPU container, labelled by namespace, pod and container, never by UID) the GPU core share
// limit, what its pod asks for, use, memory quota and use, kernel and throttled time (from the
// shims' usage slots in its state file) and the slots it holds; per GPU utilization, memory,
// health and slots in use (from NVML and the kubelet's PodResources); clamps of share increases.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { errorMessage } from '../common/errors.js';
import type { AllocationRef, AllocationUsage } from './agent.js';
import type { Gpu } from './gpus.js';
import { parseSlotId } from './slots.js';

export interface MetricSources {
  gpus(): readonly Gpu[];
  slotsPerGpu: number;
  /** Every allocation the kubelet lists, with its limits and usage. */
  allocations(): Promise<AllocationUsage[]>;
  /** The slot ids of an allocation. */
  slotIds(id: string): readonly string[];
  /** Wall clock in ns (injected so tests control the rate window). */
  nowNs?: () => bigint;
}

const POD = ['namespace', 'pod', 'container'] as const;
const GPU = ['gpu', 'uuid'] as const;

export class DevicePluginMetrics {
  readonly registry: Registry;
  private readonly g: Record<string, Gauge<string>>;
  private readonly kernelSeconds: Counter<string>;
  private readonly throttledSeconds: Counter<string>;
  private readonly clamps: Counter<string>;
  private readonly deletionCosts: Counter<string>;
  /** Last seen kernel/throttled ns per allocation and pid, to turn the shim's totals into rates. */
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
      coresLimit: gauge('sair_device_plugin_pod_gpu_cores_limit_percent', 'GPU core share enforced for the container, percent of one GPU', POD),
      coresRequested: gauge('sair_device_plugin_pod_gpu_cores_requested_percent', 'GPU core share the pod asks for (above the limit while its GPU has no room)', POD),
      coresUsed: gauge('sair_device_plugin_pod_gpu_cores_used_percent', 'GPU time used by the pod since the previous scrape, percent of one GPU', POD),
      memQuota: gauge('sair_device_plugin_pod_gpu_memory_quota_bytes', 'GPU memory quota of the pod (0 = none)', POD),
      memUsed: gauge('sair_device_plugin_pod_gpu_memory_used_bytes', 'GPU memory the pod holds, summed over its running processes', POD),
      processes: gauge('sair_device_plugin_pod_gpu_processes', 'Running processes of the pod registered in its control file', POD),
      containerSlots: gauge('sair_device_plugin_container_gpu_slots', 'sair.dev/gpu slots held by a container, per GPU', ['namespace', 'pod', 'container', 'uuid']),
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
    this.clamps = new Counter({
      name: 'sair_device_plugin_gpu_share_clamps_total',
      help: 'Share increases cut to what was left on the GPU (the shares on one GPU never sum past 100 %)',
      labelNames: [...POD],
      registers: [this.registry],
    });
    this.deletionCosts = new Counter({
      name: 'sair_device_plugin_pod_deletion_cost_writes_total',
      help: 'controller.kubernetes.io/pod-deletion-cost annotations written to GPU pods (result: written or failed)',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.throttledSeconds = new Counter({
      name: 'sair_device_plugin_pod_gpu_throttled_seconds_total',
      help: 'Time the pod\'s kernel launches waited for the core limiter',
      labelNames: [...POD],
      registers: [this.registry],
    });
  }

  /** Counts a clamp reported by the node agent. */
  clamped(ref: AllocationRef): void {
    this.clamps.inc({ namespace: ref.namespace, pod: ref.pod, container: ref.container });
  }

  /** Counts a pod-deletion-cost the node agent wrote, or failed to. */
  deletionCost(result: 'written' | 'failed'): void {
    this.deletionCosts.inc({ result });
  }

  /** Reads every source and sets the metrics; called before each scrape. */
  async refresh(): Promise<void> {
    const now = this.sources.nowNs?.() ?? BigInt(Date.now()) * 1_000_000n;
    const allocations = await this.sources.allocations();
    for (const g of Object.values(this.g)) g.reset();
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

    const seen = new Set<string>();
    const inUse = new Map<string, number>();
    for (const a of allocations) {
      const l = { namespace: a.namespace, pod: a.pod, container: a.container };
      this.podLabels.set(a.id, l);
      this.g.coresLimit!.set(l, a.limits.gpuCores);
      this.g.coresRequested!.set(l, a.requestedGpuCores);
      this.g.memQuota!.set(l, Number(a.limits.memoryBytes));
      const live = a.slots.filter((x) => x.live);
      this.g.memUsed!.set(l, Number(live.reduce((s, x) => s + x.memoryBytes, 0n)));
      this.g.processes!.set(l, live.length);
      let busyNs = 0n;
      let windowNs = 0n;
      for (const slot of a.slots) {
        const key = `${a.id}/${slot.pid}`;
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
      const perGpu = new Map<string, number>();
      for (const id of this.sources.slotIds(a.id)) {
        const uuid = parseSlotId(id)?.uuid;
        if (!uuid) continue;
        perGpu.set(uuid, (perGpu.get(uuid) ?? 0) + 1);
        inUse.set(uuid, (inUse.get(uuid) ?? 0) + 1);
      }
      for (const [uuid, n] of perGpu) this.g.containerSlots!.set({ ...l, uuid }, n);
    }
    for (const key of this.last.keys()) if (!seen.has(key)) this.last.delete(key);
    const ids = new Set(allocations.map((a) => a.id));
    for (const [id, l] of this.podLabels) {
      if (ids.has(id)) continue;
      this.kernelSeconds.remove(l);
      this.throttledSeconds.remove(l);
      this.podLabels.delete(id);
    }
    for (const gpu of gpus) this.g.slotsInUse!.set({ gpu: String(gpu.index), uuid: gpu.uuid }, inUse.get(gpu.uuid) ?? 0);
  }

  /** Serves /metrics and /healthz on `port` (0 = any free port); resolves with the bound server. */
  async listen(port: number, host: string): Promise<Server> {
    const server = createServer((req, res) => {
      if (req.url === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      }
      if (req.url !== '/metrics' && !req.url?.startsWith('/metrics?')) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try /metrics\n');
        return;
      }
      this.refresh()
        .catch((err: unknown) => this.log.error({ err: errorMessage(err) }, 'metrics refresh failed'))
        .then(() => this.registry.metrics())
        .then((text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text))
        .catch((err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.log.info({ host, port: (server.address() as AddressInfo).port }, 'metrics listening');
    return server;
  }
}
