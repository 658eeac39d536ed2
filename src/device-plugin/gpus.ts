// The node's GPUs: discovery, health and usage, from NVML or from a fake backend (`--fake-gpus N`).
// A GPU is unhealthy while its NVML queries fail (GPU_IS_LOST, ...), healthy again once they
// succeed; listeners hear about every health change so ListAndWatch can resend the device list.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import type { Nvml, ProcessUtilization } from './nvml.js';

export interface GpuProbe {
  uuid: string;
  name: string;
  memoryTotalBytes: bigint;
  memoryUsedBytes: bigint;
  utilizationPercent: number;
  processes: ProcessUtilization[];
  pciBusId: string;
}

/** Where GPU facts come from. `probe` throws when the device does not answer. */
export interface GpuBackend {
  readonly kind: 'nvml' | 'fake';
  count(): number;
  probe(index: number): GpuProbe;
  close(): void;
}

export interface Gpu {
  index: number;
  uuid: string;
  name: string;
  healthy: boolean;
  /** Why the GPU is unhealthy; undefined while healthy. */
  reason?: string;
  numaNode?: number;
  memoryTotalBytes: bigint;
  memoryUsedBytes: bigint;
  utilizationPercent: number;
  processes: ProcessUtilization[];
}

export function nvmlBackend(nvml: Nvml): GpuBackend {
  // Per device: only samples newer than the last one seen, as NVML's lastSeenTimeStamp intends.
  const lastSampleUs = new Map<number, bigint>();
  return {
    kind: 'nvml',
    count: () => nvml.deviceCount(),
    probe(index) {
      const h = nvml.handleByIndex(index);
      const memory = nvml.memory(h);
      const processes = nvml.processUtilization(h, lastSampleUs.get(index) ?? 0n);
      for (const p of processes) if (p.timeStampUs > (lastSampleUs.get(index) ?? 0n)) lastSampleUs.set(index, p.timeStampUs);
      return {
        uuid: nvml.uuid(h),
        name: nvml.name(h),
        memoryTotalBytes: memory.totalBytes,
        memoryUsedBytes: memory.usedBytes,
        utilizationPercent: nvml.utilization(h).gpuPercent,
        processes,
        pciBusId: nvml.pciBusId(h),
      };
    },
    close: () => nvml.shutdown(),
  };
}

/** `--fake-gpus N`: N idle GPUs with stable UUIDs; `setHealthy` simulates a lost GPU. */
export class FakeGpuBackend implements GpuBackend {
  readonly kind = 'fake';
  private readonly lost = new Set<number>();
  constructor(
    private readonly n: number,
    private readonly memoryBytes: bigint = 16n << 30n,
  ) {}

  count(): number {
    return this.n;
  }

  setHealthy(index: number, healthy: boolean): void {
    if (healthy) this.lost.delete(index);
    else this.lost.add(index);
  }

  probe(index: number): GpuProbe {
    if (index < 0 || index >= this.n) throw new Error(`fake GPU ${index} does not exist (have ${this.n})`);
    if (this.lost.has(index)) throw new Error(`fake GPU ${index}: GPU is lost`);
    return {
      uuid: fakeGpuUuid(index),
      name: 'SAIR fake GPU',
      memoryTotalBytes: this.memoryBytes,
      memoryUsedBytes: 0n,
      utilizationPercent: 0,
      processes: [],
      pciBusId: '',
    };
  }

  close(): void {}
}

export function fakeGpuUuid(index: number): string {
  return `GPU-00000000-0000-4000-8000-${index.toString(16).padStart(12, '0')}`;
}

/** `00000000:3B:00.0` (NVML) -> `0000:3b:00.0` (sysfs). */
export function sysfsPciAddress(busId: string): string {
  const m = /^([0-9a-fA-F]+):([0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7])$/.exec(busId.trim());
  if (!m) return busId.toLowerCase();
  return `${m[1]!.slice(-4).padStart(4, '0')}:${m[2]!}`.toLowerCase();
}

/** The NUMA node of a PCI device from sysfs; undefined when unknown (-1, missing, no bus id). */
export function numaNodeOf(busId: string, sysfsRoot: string): number | undefined {
  if (busId === '') return undefined;
  try {
    const text = readFileSync(join(sysfsRoot, 'bus', 'pci', 'devices', sysfsPciAddress(busId), 'numa_node'), 'utf8');
    const node = Number(text.trim());
    return Number.isInteger(node) && node >= 0 ? node : undefined;
  } catch {
    return undefined;
  }
}

export type HealthListener = (gpus: readonly Gpu[]) => void;

export class GpuInventory {
  private gpus: Gpu[] = [];
  private readonly listeners = new Set<HealthListener>();

  constructor(
    private readonly backend: GpuBackend,
    private readonly log: Logger,
    private readonly sysfsRoot = '/sys',
  ) {}

  get kind(): 'nvml' | 'fake' {
    return this.backend.kind;
  }

  /** Finds the GPUs once at start; a GPU that does not answer is listed unhealthy. */
  discover(): readonly Gpu[] {
    const count = this.backend.count();
    this.gpus = [];
    for (let index = 0; index < count; index++) {
      try {
        const p = this.backend.probe(index);
        const gpu: Gpu = {
          index,
          uuid: p.uuid,
          name: p.name,
          healthy: true,
          memoryTotalBytes: p.memoryTotalBytes,
          memoryUsedBytes: p.memoryUsedBytes,
          utilizationPercent: p.utilizationPercent,
          processes: p.processes,
        };
        const numa = numaNodeOf(p.pciBusId, this.sysfsRoot);
        if (numa !== undefined) gpu.numaNode = numa;
        this.gpus.push(gpu);
      } catch (err) {
        // The UUID is unknown while the GPU does not answer; its index names it instead.
        this.gpus.push({
          index,
          uuid: `GPU-index-${index}`,
          name: 'unknown',
          healthy: false,
          reason: errorMessage(err),
          memoryTotalBytes: 0n,
          memoryUsedBytes: 0n,
          utilizationPercent: 0,
          processes: [],
        });
        this.log.warn({ gpu: index, err: errorMessage(err) }, 'GPU does not answer at discovery; listed unhealthy');
      }
    }
    this.log.info({ backend: this.backend.kind, gpus: this.gpus.map((g) => ({ index: g.index, uuid: g.uuid, healthy: g.healthy })) }, 'GPUs discovered');
    return this.gpus;
  }

  list(): readonly Gpu[] {
    return this.gpus;
  }

  byUuid(uuid: string): Gpu | undefined {
    return this.gpus.find((g) => g.uuid === uuid);
  }

  onHealthChange(listener: HealthListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Polls every GPU; tells the listeners when any GPU's health changed. */
  refresh(): void {
    let changed = false;
    for (const gpu of this.gpus) {
      try {
        const p = this.backend.probe(gpu.index);
        gpu.memoryTotalBytes = p.memoryTotalBytes;
        gpu.memoryUsedBytes = p.memoryUsedBytes;
        gpu.utilizationPercent = p.utilizationPercent;
        gpu.processes = p.processes;
        if (!gpu.healthy) {
          gpu.healthy = true;
          delete gpu.reason;
          changed = true;
          this.log.info({ gpu: gpu.index, uuid: gpu.uuid }, 'GPU healthy again');
        }
      } catch (err) {
        gpu.processes = [];
        if (gpu.healthy) {
          gpu.healthy = false;
          gpu.reason = errorMessage(err);
          changed = true;
          this.log.error({ gpu: gpu.index, uuid: gpu.uuid, err: gpu.reason }, 'GPU unhealthy');
        }
      }
    }
    if (changed) for (const listener of this.listeners) listener(this.gpus);
  }

  close(): void {
    this.backend.close();
  }
}
