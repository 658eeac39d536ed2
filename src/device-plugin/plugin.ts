// The kubelet device plugin service (v1beta1) on a unix socket, one server per resource: either
// each GPU as N `sair.dev/gpu` slots, or each GPU whole as one `sair.dev/gpu-whole` device. It
// streams health and availability changes, prefers one-GPU allocations and tells the kubelet which
// GPU, env and mounts a container gets. Both servers share one GpuLedger, so a GPU is never held
// whole and shared at once. Every shared slot comes with its limiter (the shim preloaded, the
// allocation's own limits file read-only and state file read-write, the slot's share until the node
// agent knows the pod), whether or not the webhook ran; a whole GPU comes with no limiter.
import { mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import type { GpuInventory } from './gpus.js';
import {
  HEALTHY,
  UNHEALTHY,
  loadApi,
  unixTarget,
  type AllocateRequest,
  type AllocateResponse,
  type ContainerAllocateResponse,
  type Device,
  type DevicePluginOptions,
  type Empty,
  type ListAndWatchResponse,
  type PreStartContainerRequest,
  type PreferredAllocationRequest,
  type PreferredAllocationResponse,
} from './proto.js';
import { CDI_KIND_NVIDIA_GPU, ENV, LIMITS_MOUNT_PATH, RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE, SHIM_FILE_NAME, STATE_MOUNT_PATH } from '../core/names.js';
import type { GpuLedger, GpuUse } from './gpu-ledger.js';
import { AllocationFiles, allocationId } from './allocations.js';
import { gpusOfSlots, preferredAllocation, slotShare, slotsOf, type SlotLimits, type SlotPlacement } from './slots.js';


/**
 * How a container is told its GPU: `envvar` sets NVIDIA_VISIBLE_DEVICES for the NVIDIA runtime's
 * legacy mode, `cdi-cri` names the GPU as a CDI device in the CRI request (containerd >= 1.7,
 * CRI-O >= 1.23), `both` does both, so either kind of node gives the container its GPU.
 */
export const DEVICE_LIST_STRATEGIES = ['envvar', 'cdi-cri', 'both'] as const;
export type DeviceListStrategy = (typeof DEVICE_LIST_STRATEGIES)[number];

/**
 * What the container runtime needs to expose `uuids` and nothing else. Under `cdi-cri` alone the
 * env still says `void`, which the NVIDIA runtime reads as "inject nothing": CUDA images set
 * NVIDIA_VISIBLE_DEVICES=all, which a legacy-mode runtime would otherwise honour.
 */
export function gpuDeviceList(uuids: readonly string[], strategy: DeviceListStrategy): { visible: string; cdi: { name: string }[] } {
  const cdi = strategy === 'envvar' ? [] : uuids.map((uuid) => ({ name: `${CDI_KIND_NVIDIA_GPU}=${uuid}` }));
  return { visible: strategy === 'cdi-cri' ? 'void' : uuids.join(','), cdi };
}

export interface PluginOptions {
  /** Absolute path of the plugin's own socket, inside the kubelet's device-plugins directory. */
  socketPath: string;
  slotsPerGpu: number;
  /** Host directory holding libsair-cuda.so, mounted read-only into GPU containers. */
  hostLibDir: string;
  containerLibDir: string;
  /** Where each allocation's limits and state files are made (on the host, as the kubelet mounts them). */
  allocations: AllocationFiles;
  /** Share still free on a GPU (100 minus what the allocations on it hold); 100 when unknown. */
  freeShare?: (uuid: string) => number;
  /** Which GPU a shared request is preferred on; `binpack` when unset. */
  placement?: SlotPlacement;
  /** How the container is told its GPU; `both` when unset. */
  deviceListStrategy?: DeviceListStrategy;
  /** What this server hands out: GPUs as shared slots (default) or whole. */
  use?: GpuUse;
  /** Who holds which GPU, shared with the other server; without it nothing is marked unavailable. */
  ledger?: GpuLedger;
}

export const PLUGIN_OPTIONS: DevicePluginOptions = {
  pre_start_required: false,
  get_preferred_allocation_available: true,
};

export class DevicePluginServer {
  private server: grpc.Server | undefined;
  private readonly streams = new Set<grpc.ServerWritableStream<Empty, ListAndWatchResponse>>();
  private readonly unsubscribe: Array<() => void>;

  constructor(
    private readonly options: PluginOptions,
    private readonly inventory: GpuInventory,
    private readonly log: Logger,
  ) {
    this.unsubscribe = [inventory.onHealthChange(() => this.broadcast())];
    if (options.ledger) this.unsubscribe.push(options.ledger.onChange(() => this.broadcast()));
  }

  private get use(): GpuUse {
    return this.options.use ?? 'slots';
  }

  /** The extended resource this server serves. */
  get resourceName(): string {
    return this.use === 'whole' ? RESOURCE_SAIR_GPU_WHOLE : RESOURCE_SAIR_GPU;
  }

  /** A GPU's devices are available while it is healthy and not held the other way. */
  private available(uuid: string, healthy: boolean): boolean {
    const held = this.options.ledger?.useOf(uuid);
    return healthy && (held === undefined || held === this.use);
  }

  get socketPath(): string {
    return this.options.socketPath;
  }

  /**
   * The kubelet device list: every slot of every GPU (or every GPU, whole), with its NUMA node;
   * Unhealthy when the GPU is, or while the other server holds it (the kubelet then neither offers
   * it nor counts it allocatable).
   */
  devices(): Device[] {
    const gpus = this.inventory.list();
    const units = this.use === 'whole' ? gpus.map((g) => ({ ...g, id: g.uuid })) : slotsOf(gpus, this.options.slotsPerGpu);
    return units.map((u) => ({
      ID: u.id,
      health: this.available(u.uuid, u.healthy) ? HEALTHY : UNHEALTHY,
      topology: u.numaNode === undefined ? null : { nodes: [{ ID: u.numaNode }] },
    }));
  }

  /** Binds the socket (removing a stale one first) and serves until stop(). */
  async start(): Promise<void> {
    const { socketPath } = this.options;
    mkdirSync(dirname(socketPath), { recursive: true });
    rmSync(socketPath, { force: true });
    const api = loadApi();
    const server = new grpc.Server();
    server.addService(api.DevicePlugin.service, {
      GetDevicePluginOptions: (_call: grpc.ServerUnaryCall<Empty, DevicePluginOptions>, cb: grpc.sendUnaryData<DevicePluginOptions>) =>
        cb(null, PLUGIN_OPTIONS),
      ListAndWatch: (call: grpc.ServerWritableStream<Empty, ListAndWatchResponse>) => this.listAndWatch(call),
      GetPreferredAllocation: (
        call: grpc.ServerUnaryCall<PreferredAllocationRequest, PreferredAllocationResponse>,
        cb: grpc.sendUnaryData<PreferredAllocationResponse>,
      ) => cb(null, this.preferred(call.request)),
      Allocate: (call: grpc.ServerUnaryCall<AllocateRequest, AllocateResponse>, cb: grpc.sendUnaryData<AllocateResponse>) => {
        try {
          cb(null, this.allocate(call.request));
        } catch (err) {
          cb({ code: grpc.status.INVALID_ARGUMENT, details: (err as Error).message });
        }
      },
      PreStartContainer: (call: grpc.ServerUnaryCall<PreStartContainerRequest, Empty>, cb: grpc.sendUnaryData<Empty>) => {
        try {
          this.checkHealthy(call.request.devices_ids);
          cb(null, {});
        } catch (err) {
          cb({ code: grpc.status.FAILED_PRECONDITION, details: (err as Error).message });
        }
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixTarget(socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
    this.log.info({ socket: socketPath, devices: this.devices().length }, 'device plugin serving');
  }

  /** Ends the ListAndWatch streams, stops serving and removes the socket. */
  async stop(): Promise<void> {
    for (const stream of this.streams) stream.end();
    this.streams.clear();
    const server = this.server;
    this.server = undefined;
    if (server) {
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 2000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
    }
    rmSync(this.options.socketPath, { force: true });
  }

  /** Stops for good: also stops listening to health changes. */
  async close(): Promise<void> {
    for (const off of this.unsubscribe) off();
    await this.stop();
  }

  private listAndWatch(call: grpc.ServerWritableStream<Empty, ListAndWatchResponse>): void {
    this.streams.add(call);
    const drop = (): void => {
      this.streams.delete(call);
    };
    call.on('cancelled', drop);
    call.on('close', drop);
    call.on('error', drop);
    call.write({ devices: this.devices() });
    this.log.info({ resource: this.resourceName, devices: this.devices().length }, 'kubelet opened ListAndWatch');
  }

  private broadcast(): void {
    const devices = this.devices();
    const unhealthy = devices.filter((d) => d.health !== HEALTHY).length;
    this.log.info({ resource: this.resourceName, devices: devices.length, unhealthy, streams: this.streams.size }, 'device health or availability changed; resending device list');
    for (const stream of this.streams) stream.write({ devices });
  }

  private preferred(req: PreferredAllocationRequest): PreferredAllocationResponse {
    return {
      container_responses: req.container_requests.map((c) => ({
        // Whole GPUs: the must-include ones, then the kubelet's order (nothing to pack).
        deviceIDs:
          this.use === 'whole'
            ? [...new Set([...c.must_include_deviceIDs, ...c.available_deviceIDs])].slice(0, c.allocation_size)
            : preferredAllocation({
                available: c.available_deviceIDs,
                mustInclude: c.must_include_deviceIDs,
                size: c.allocation_size,
                placement: this.options.placement ?? 'binpack',
                slotPercent: 100 / this.options.slotsPerGpu,
                ...(this.options.freeShare ? { freeShare: this.options.freeShare } : {}),
              }),
      })),
    };
  }

  private checkHealthy(ids: readonly string[]): string[] {
    const { uuids, unknown } = this.use === 'whole' ? { uuids: [...new Set(ids)], unknown: [] } : gpusOfSlots(ids);
    if (unknown.length > 0) {
      throw new Error(`devices_ids: ${JSON.stringify(unknown)} are not ${RESOURCE_SAIR_GPU} slot ids (<gpu-uuid>::<slot>)`);
    }
    for (const uuid of uuids) {
      const gpu = this.inventory.byUuid(uuid);
      if (!gpu) throw new Error(`devices_ids: GPU ${uuid} is not on this node`);
      if (!gpu.healthy) throw new Error(`devices_ids: GPU ${uuid} is unhealthy (${gpu.reason ?? 'no answer'})`);
    }
    return uuids;
  }

  /** The slots' share, cut to what is still free on their GPUs; refused when nothing is. */
  private startingLimits(ids: readonly string[], uuids: readonly string[]): SlotLimits {
    const share = slotShare(ids, this.options.slotsPerGpu, (uuid) => this.inventory.byUuid(uuid)?.memoryTotalBytes ?? 0n);
    const free = Math.min(...uuids.map((u) => this.options.freeShare?.(u) ?? 100));
    if (free < 1) {
      throw new Error(`devices_ids: GPU ${uuids.join(',')} has no core share left (its allocations hold 100 %); lower another pod's sair.dev/gpu-cores or use another GPU`);
    }
    return { ...share, gpuCores: Math.min(share.gpuCores, free) };
  }

  private allocate(req: AllocateRequest): AllocateResponse {
    const responses: ContainerAllocateResponse[] = req.container_requests.map((c) => {
      const uuids = this.checkHealthy(c.devices_ids);
      // Checked and claimed with no await in between: a racing Allocate of the other server loses.
      const entry = { use: this.use, ids: c.devices_ids, gpus: uuids };
      if (this.use === 'whole') {
        this.options.ledger?.claim(entry, Date.now());
        return this.wholeResponse(uuids);
      }
      this.options.ledger?.check(entry);
      if (uuids.length > 1) {
        // The kubelet may ignore the preferred allocation; the container then sees every GPU it got.
        this.log.warn({ slots: c.devices_ids, gpus: uuids }, 'allocation spans several GPUs');
      }
      const { visible, cdi } = gpuDeviceList(uuids, this.options.deviceListStrategy ?? 'both');
      const limits = this.startingLimits(c.devices_ids, uuids);
      const id = allocationId(c.devices_ids);
      this.options.ledger?.claim(entry, Date.now());
      const files = this.options.allocations.create(id, limits);
      this.log.info({ allocation: id, slots: c.devices_ids, gpuCores: limits.gpuCores, memoryBytes: limits.memoryBytes.toString() }, 'allocation files created');
      return {
        // The container spec's env comes after these in the kubelet's list and wins (the runtime
        // keeps the last value of a name): the webhook's LD_PRELOAD and limits override these.
        // While the limits file is valid the shim takes its limits from there, not from the env.
        envs: {
          NVIDIA_VISIBLE_DEVICES: visible,
          [ENV.gpuUuid]: uuids.join(','),
          [ENV.preload]: `${this.options.containerLibDir}/${SHIM_FILE_NAME}`,
          [ENV.gpuCores]: String(limits.gpuCores),
          [ENV.gpuMemory]: limits.memoryBytes.toString(),
          [ENV.limitsFile]: LIMITS_MOUNT_PATH,
          [ENV.stateFile]: STATE_MOUNT_PATH,
        },
        mounts: [
          { container_path: this.options.containerLibDir, host_path: this.options.hostLibDir, read_only: true },
          { container_path: LIMITS_MOUNT_PATH, host_path: files.limits, read_only: true },
          { container_path: STATE_MOUNT_PATH, host_path: files.state, read_only: false },
        ],
        devices: [],
        annotations: {},
        cdi_devices: cdi,
      };
    });
    this.log.info({ resource: this.resourceName, containers: req.container_requests.map((c) => c.devices_ids) }, 'allocated');
    return { container_responses: responses };
  }

  /** A whole GPU: the GPU and nothing of SAIR's limiter (no share to keep). */
  private wholeResponse(uuids: readonly string[]): ContainerAllocateResponse {
    const { visible, cdi } = gpuDeviceList(uuids, this.options.deviceListStrategy ?? 'both');
    return {
      envs: { NVIDIA_VISIBLE_DEVICES: visible, [ENV.gpuUuid]: uuids.join(',') },
      mounts: [],
      devices: [],
      annotations: {},
      cdi_devices: cdi,
    };
  }
}
