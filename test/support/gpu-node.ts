// One GPU node in-process, for the node agent's and the security tests: the real device plugin
// and node agent on fake GPUs, the fake kubelet (device plugin API and PodResources, real unix
// sockets) and the fake API server. admit() is what the scheduler and the kubelet do for a pod:
// store it bound to the node, then allocate its containers their slots. With `wholeGpus` the
// whole-GPU plugin serves beside the slots one, both on one ledger that the agent keeps.
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../src/common/logger.js';
import { RESOURCE_SAIR_GPU } from '../../src/core/names.js';
import { NodeAgent } from '../../src/device-plugin/agent.js';
import { AllocationFiles, allocationId } from '../../src/device-plugin/allocations.js';
import { FakeGpuBackend, GpuInventory } from '../../src/device-plugin/gpus.js';
import { DevicePluginServer, PLUGIN_OPTIONS } from '../../src/device-plugin/plugin.js';
import { GpuLedger } from '../../src/device-plugin/gpu-ledger.js';
import { PodResourcesClient } from '../../src/device-plugin/pod-resources.js';
import type { ContainerAllocateResponse } from '../../src/device-plugin/proto.js';
import { Registrar } from '../../src/device-plugin/registration.js';
import { startFakeApiServer, type FakeApiServer } from './fake-apiserver.js';
import { FakeKubelet } from './fake-kubelet.js';

export const NODE = 'gpu-node-1';

export interface GpuNodeOptions {
  gpus?: number;
  slotsPerGpu?: number;
  orphanGraceMs?: number;
  hostLibDir?: string;
  /** Also serve sair.dev/gpu-whole. */
  wholeGpus?: boolean;
}

export class GpuNode {
  readonly log = createLogger('device-plugin', 'silent');
  clamps: { namespace: string; pod: string; container: string }[] = [];
  agent!: NodeAgent;
  /** The whole-GPU plugin and its registrar, with `wholeGpus`. */
  whole: { plugin: DevicePluginServer; registrar: Registrar } | undefined;
  private constructor(
    readonly dir: string,
    readonly api: FakeApiServer,
    readonly kubelet: FakeKubelet,
    readonly files: AllocationFiles,
    readonly plugin: DevicePluginServer,
    private readonly registrar: Registrar,
    readonly podResources: PodResourcesClient,
    readonly inventory: GpuInventory,
    readonly opts: GpuNodeOptions,
    readonly ledger: GpuLedger,
  ) {}

  static async start(opts: GpuNodeOptions = {}): Promise<GpuNode> {
    const dir = mkdtempSync(join(tmpdir(), 'sair-node-'));
    const api = await startFakeApiServer({ namespaces: ['default', 'ml'] });
    for (const d of ['device-plugins', 'pod-resources']) mkdirSync(join(dir, d));
    const kubelet = await FakeKubelet.start(join(dir, 'device-plugins'), { podResourcesDir: join(dir, 'pod-resources') });
    const inventory = new GpuInventory(new FakeGpuBackend(opts.gpus ?? 1), createLogger('device-plugin', 'silent'), join(dir, 'no-sysfs'));
    inventory.discover();
    const files = new AllocationFiles(join(dir, 'alloc'));
    const ledger = new GpuLedger();
    const started: { node?: GpuNode } = {};
    const plugin = new DevicePluginServer(
      {
        socketPath: join(dir, 'device-plugins', 'sair-gpu.sock'),
        slotsPerGpu: opts.slotsPerGpu ?? 10,
        hostLibDir: opts.hostLibDir ?? '/var/lib/sair/lib',
        containerLibDir: '/usr/local/sair/lib',
        allocations: files,
        freeShare: (uuid) => started.node?.agent.freeShare(uuid) ?? 100,
        ledger,
      },
      inventory,
      createLogger('device-plugin', 'silent'),
    );
    const registrar = new Registrar(plugin, { resourceName: RESOURCE_SAIR_GPU, options: PLUGIN_OPTIONS }, createLogger('device-plugin', 'silent'));
    await registrar.start();
    await kubelet.waitForDevices((d) => d.length > 0);
    const podResources = new PodResourcesClient(join(dir, 'pod-resources', 'kubelet.sock'));
    const node = new GpuNode(dir, api, kubelet, files, plugin, registrar, podResources, inventory, opts, ledger);
    if (opts.wholeGpus) {
      const whole = new DevicePluginServer(
        { socketPath: join(dir, 'device-plugins', 'sair-gpu-whole.sock'), slotsPerGpu: opts.slotsPerGpu ?? 10, hostLibDir: '/var/lib/sair/lib', containerLibDir: '/usr/local/sair/lib', allocations: files, use: 'whole', ledger },
        inventory,
        node.log,
      );
      node.whole = { plugin: whole, registrar: new Registrar(whole, { resourceName: whole.resourceName, options: PLUGIN_OPTIONS }, node.log) };
      await node.whole.registrar.start();
      await kubelet.waitForDevices((d) => d.length > 0, whole.resourceName);
    }
    node.agent = node.newAgent();
    started.node = node;
    return node;
  }

  newAgent(): NodeAgent {
    const clients = this.api.clients('ml');
    return new NodeAgent(
      clients.kc,
      clients,
      this.podResources,
      this.files,
      {
        nodeName: NODE,
        resyncMs: 100,
        restartMs: 100,
        slotsPerGpu: this.opts.slotsPerGpu ?? 10,
        gpuMemory: (uuid) => this.inventory.byUuid(uuid)?.memoryTotalBytes ?? 0n,
        orphanGraceMs: this.opts.orphanGraceMs ?? 60_000,
        ledger: this.ledger,
      },
      this.log,
      { onClamp: (ref) => this.clamps.push({ namespace: ref.namespace, pod: ref.pod, container: ref.container }) },
    );
  }

  /** Stores the pod bound to this node and admits it at the kubelet; the Allocate answers by container. */
  async admit(pod: k8s.V1Pod): Promise<Map<string, ContainerAllocateResponse>> {
    const stored = this.api.seed<k8s.V1Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      ...pod,
      metadata: { namespace: 'ml', ...pod.metadata },
      spec: { ...pod.spec!, nodeName: NODE },
      status: { phase: 'Running' },
    });
    return this.kubelet.admitPod(stored);
  }

  /** The limits file of a pod's container (from its slots, as the kubelet reports them). */
  async allocationOf(pod: string, container = 'main'): Promise<{ id: string; limits: string; state: string }> {
    const held = (await this.podResources.list(RESOURCE_SAIR_GPU)).find((c) => c.pod === pod && c.container === container);
    if (!held) throw new Error(`the kubelet lists no ${RESOURCE_SAIR_GPU} for ${pod}/${container}`);
    const id = allocationId(held.slotIds);
    return { id, ...this.files.paths(id) };
  }

  async close(): Promise<void> {
    await this.agent.stop();
    await this.registrar.stop();
    await this.plugin.close();
    await this.whole?.registrar.stop();
    await this.whole?.plugin.close();
    this.podResources.close();
    await this.kubelet.close();
    await this.api.close();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A pod with one container holding `slots` sair.dev/gpu slots and these annotations. */
export function slotPod(name: string, annotations: Record<string, string> = {}, slots = 1): k8s.V1Pod {
  return {
    metadata: { name, namespace: 'ml', annotations },
    spec: { containers: [{ name: 'main', image: 'example.com/infer:1', resources: { limits: { [RESOURCE_SAIR_GPU]: String(slots) } } }] },
  };
}
