// The node agent: keeps each allocation's limits file in line with its pod's sair.dev/gpu-cores
// and sair.dev/gpu-memory annotations. The kubelet's PodResources API says which pod and container
// hold which slots (so which allocation); an informer on the node's pods gives their annotations.
// A reconcile is idempotent: it rewrites changed limits in place (the shim picks them up live),
// keeps the last good limits when an annotation turns invalid, clamps an increase that would take
// a GPU past 100 %, and reports both once, as an Event and a log line. It also keeps each
// ReplicaSet pod's pod-deletion-cost at the share its namespace holds besides it on its GPU (deletion-cost.ts), so a
// scale-down frees GPUs where it can. It never reads a file a pod can write except through
// readExactFile, and never on the event loop.
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import { MERGE_PATCH } from '../common/k8s.js';
import { checkGpuQuota } from '../common/gpu-quota.js';
import { readLimitsFile, writeLimits, parseState, STATE_FILE_SIZE, type ControlLimits, type UsageSlot } from './control-file.js';
import { readExactFile } from './exact-file.js';
import { liveSlots } from './slot-liveness.js';
import { AllocationFiles, allocationId } from './allocations.js';
import type { ContainerSlots, PodResourcesSource } from './pod-resources.js';
import { gpusOfSlots, slotShare } from './slots.js';
import { freeShare, grantShares, type ShareClaim } from './share-budget.js';
import { deletionCostPatch, deletionCosts } from './deletion-cost.js';
import { API_GROUP, RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE } from '../core/names.js';
import type { GpuLedger, LedgerEntry } from './gpu-ledger.js';

export const EVENT_REASON_INVALID_QUOTA = 'InvalidGpuQuota';
export const EVENT_REASON_SHARE_CLAMPED = 'GpuShareClamped';
const COMPONENT = 'sair-device-plugin';

export interface AgentOptions {
  nodeName: string;
  /** How often every allocation is reconciled again, besides pod changes. */
  resyncMs: number;
  /** Delay before restarting a failed watch. */
  restartMs?: number;
  slotsPerGpu: number;
  /** A GPU's memory, for the slots' share of it; 0n when unknown. */
  gpuMemory: (uuid: string) => bigint;
  /** How long an allocation directory the kubelet does not list is kept: Allocate comes before the
   *  pod's container is listed. Default 60 s. */
  orphanGraceMs?: number;
  /** Told every whole GPU and slot allocation the kubelet lists, so the plugin servers agree on who holds each GPU. */
  ledger?: GpuLedger;
}

export interface AllocationRef {
  id: string;
  namespace: string;
  pod: string;
  container: string;
}

export interface LiveUsageSlot extends UsageSlot {
  /** Whether the owning process still runs (holds its slot lock); true when that cannot be told. */
  live: boolean;
}

export interface AllocationUsage extends AllocationRef {
  limits: ControlLimits;
  /** The share the pod asks for; above limits.gpuCores when the GPU had no more room. */
  requestedGpuCores: number;
  slots: LiveUsageSlot[];
}

export interface AgentEvents {
  /** Called once per clamp reported (for the metric). */
  onClamp?: (ref: AllocationRef) => void;
  /** Called for each pod-deletion-cost written, or that failed to be. */
  onDeletionCost?: (result: 'written' | 'failed') => void;
}

interface Held extends AllocationRef {
  gpus: string[];
  slotIds: string[];
  limits: ControlLimits;
  requestedGpuCores: number;
  /** The last invalid annotation values reported, so a resync does not repeat the Event. */
  reported?: string;
  /** The last clamp reported (desired/room), likewise. */
  clampReported?: string;
}

export class NodeAgent {
  private held = new Map<string, Held>();
  private informer: k8s.ListWatch<k8s.V1Pod> | undefined;
  private resync: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  private stopped = false;
  private running: Promise<void> | undefined;
  private again = false;
  /** Deletion costs being written (`namespace/pod` -> value), so a resync before the informer sees them does not write again. */
  private costsInFlight = new Map<string, string>();

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly clients: { core: k8s.CoreV1Api; custom: k8s.CustomObjectsApi },
    private readonly podResources: PodResourcesSource,
    private readonly files: AllocationFiles,
    private readonly opts: AgentOptions,
    private readonly log: Logger,
    private readonly events: AgentEvents = {},
  ) {}

  /** Lists the node's pods, reconciles the allocations, then watches. */
  async start(): Promise<void> {
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    const informer = new k8s.ListWatch<k8s.V1Pod>(
      '/api/v1/pods',
      new k8s.Watch(this.kc),
      () => this.clients.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on('add', () => this.kick());
    informer.on('update', () => this.kick());
    informer.on('delete', () => this.kick());
    let failures = 0;
    informer.on('error', (err) => {
      if (this.stopped) return;
      // A failed list or watch stops the informer; restart it with backoff (restartMs doubling, up to 30 s).
      const delay = Math.min((this.opts.restartMs ?? 1000) * 2 ** failures++, 30_000);
      this.log.error({ err: errorMessage(err), retryInMs: delay }, 'pod watch failed; restarting');
      this.restart = setTimeout(() => {
        if (this.stopped) return;
        informer
          .start()
          .then(() => {
            if (informer.latestResourceVersion() !== '') failures = 0;
          })
          .catch((e: unknown) => this.log.error({ err: errorMessage(e) }, 'pod watch restart failed'));
      }, delay);
    });
    this.informer = informer;
    await informer.start();
    await this.reconcileNow();
    this.resync = setInterval(() => this.kick(), this.opts.resyncMs);
    this.log.info({ node: this.opts.nodeName, pods: informer.list().length, root: this.files.root }, 'node agent watching pods and allocations');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    if (this.restart) clearTimeout(this.restart);
    await this.informer?.stop();
    await this.running;
  }

  /** The slot ids of an allocation the kubelet lists; [] when unknown. */
  slotIds(id: string): readonly string[] {
    return this.held.get(id)?.slotIds ?? [];
  }

  /** Share still free on a GPU: what Allocate may give a new allocation there. */
  freeShare(uuid: string): number {
    return freeShare([...this.held.values()].map((h) => ({ gpus: h.gpus, gpuCores: h.limits.gpuCores })), uuid);
  }

  /** Schedules a reconcile; calls that come while one runs are folded into one more. */
  kick(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.reconcileNow().finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  /** One reconcile of every allocation the kubelet lists. Never throws. */
  async reconcileNow(): Promise<void> {
    let listed: ContainerSlots[];
    try {
      const byResource = await this.podResources.listByResource([RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE]);
      listed = byResource.get(RESOURCE_SAIR_GPU)!;
      this.opts.ledger?.observe(ledgerEntries(listed, byResource.get(RESOURCE_SAIR_GPU_WHOLE)!), Date.now());
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'kubelet PodResources unreachable; allocations keep their limits, retried at the next resync');
      return;
    }
    const pods = new Map((this.informer?.list() ?? []).map((p) => [`${p.metadata?.namespace}/${p.metadata?.name}`, p]));
    const next = new Map<string, Held>();
    const claims: ShareClaim[] = [];
    const memory = new Map<string, bigint>();
    for (const c of listed) {
      const id = allocationId(c.slotIds);
      const prev = this.held.get(id);
      let current: ControlLimits;
      try {
        current = readLimitsFile(this.files.paths(id).limits).limits;
      } catch (err) {
        this.log.warn({ allocation: id, namespace: c.namespace, pod: c.pod, err: errorMessage(err) }, 'allocation has no readable limits file; left alone');
        continue;
      }
      const held: Held = {
        id,
        namespace: c.namespace,
        pod: c.pod,
        container: c.container,
        slotIds: c.slotIds,
        gpus: gpusOfSlots(c.slotIds).uuids,
        limits: current,
        requestedGpuCores: prev?.requestedGpuCores ?? current.gpuCores,
        ...(prev?.reported !== undefined ? { reported: prev.reported } : {}),
        ...(prev?.clampReported !== undefined ? { clampReported: prev.clampReported } : {}),
      };
      next.set(id, held);
      const wanted = this.wanted(held, pods.get(`${c.namespace}/${c.pod}`));
      held.requestedGpuCores = wanted.gpuCores;
      claims.push({ id, gpus: held.gpus, current: current.gpuCores, desired: wanted.gpuCores });
      memory.set(id, wanted.memoryBytes);
    }
    const grants = grantShares(claims);
    for (const held of next.values()) {
      const grant = grants.get(held.id)!;
      const limits = { gpuCores: grant.granted, memoryBytes: memory.get(held.id)! };
      const pod = pods.get(`${held.namespace}/${held.pod}`);
      if (grant.clamped) this.reportClamp(held, grant.clamped, pod);
      else delete held.clampReported;
      this.apply(held, limits);
    }
    this.held = next;
    this.collectGarbage(next);
    this.keepDeletionCosts(next, pods);
  }

  /**
   * Sets each ReplicaSet pod's pod-deletion-cost to the share the rest of its namespace holds on its GPU, where it
   * differs and no one else owns the cost. A failed write is logged and tried again at the next
   * reconcile. The writes are not awaited: a slow API server must not hold up the limits.
   */
  private keepDeletionCosts(held: Map<string, Held>, pods: Map<string, k8s.V1Pod>): void {
    const costs = deletionCosts([...held.values()].map((h) => ({ namespace: h.namespace, pod: h.pod, gpus: h.gpus, gpuCores: h.limits.gpuCores })));
    for (const key of this.costsInFlight.keys()) if (!costs.has(key)) this.costsInFlight.delete(key);
    for (const [key, cost] of costs) {
      const pod = pods.get(key);
      // Only a ReplicaSet reads the cost; a bare pod or a StatefulSet's is left untouched.
      if (!pod?.metadata?.ownerReferences?.some((o) => o.kind === 'ReplicaSet' && o.controller)) continue;
      const patch = deletionCostPatch(pod.metadata.annotations, cost);
      if (!patch) {
        this.costsInFlight.delete(key); // the informer shows it written (or someone else owns it)
        continue;
      }
      if (this.costsInFlight.get(key) === String(cost)) continue;
      this.costsInFlight.set(key, String(cost));
      void this.writeDeletionCost(pod, patch, key);
    }
  }

  private async writeDeletionCost(pod: k8s.V1Pod, annotations: Record<string, string>, key: string): Promise<void> {
    const fields = { namespace: pod.metadata!.namespace!, pod: pod.metadata!.name!, annotations };
    try {
      await this.clients.core.patchNamespacedPod(
        { name: fields.pod, namespace: fields.namespace, body: { metadata: { annotations } } },
        MERGE_PATCH,
      );
      this.events.onDeletionCost?.('written');
      this.log.debug(fields, 'pod-deletion-cost set');
    } catch (err) {
      this.events.onDeletionCost?.('failed');
      // A refusal (RBAC or the deletion-cost policy) comes back the same every time: this value is
      // not tried again, only a changed cost is. Anything else is retried at the next reconcile.
      if ((err as { code?: unknown }).code === 403) {
        this.log.error(
          { ...fields, err: errorMessage(err) },
          'the API server refused the pod-deletion-cost (it needs manifests/device-plugin RBAC and its deletion-cost policy, and a ServiceAccount token bound to this node: Kubernetes 1.30+); scale-downs there remove the newest replica',
        );
        return;
      }
      this.costsInFlight.delete(key);
      this.log.error({ ...fields, err: errorMessage(err) }, 'could not set the pod-deletion-cost; retried at the next reconcile');
    }
  }

  /** What the pod asks for: its annotations, or the slots' share for what it does not name; the
   *  last good limits while an annotation is invalid. */
  private wanted(held: Held, pod: k8s.V1Pod | undefined): ControlLimits {
    if (!pod) return held.limits;
    const share = slotShare(held.slotIds, this.opts.slotsPerGpu, this.opts.gpuMemory);
    const check = checkGpuQuota(pod.metadata?.annotations);
    if (check.ok) {
      delete held.reported;
      return {
        gpuCores: check.quota.coresSet ? check.quota.gpuCores : share.gpuCores,
        memoryBytes: check.quota.memorySet ? check.quota.memoryBytes : share.memoryBytes,
      };
    }
    const problem = check.errors.map((e) => e.message).join('; ');
    if (held.reported !== problem) {
      held.reported = problem;
      const kept = `keeping the last good limits (gpu-cores ${held.limits.gpuCores}, gpu-memory ${held.limits.memoryBytes} bytes)`;
      this.log.warn({ allocation: held.id, namespace: held.namespace, pod: held.pod, problem }, `invalid GPU quota annotation; ${kept}`);
      void this.event(pod, { kind: 'Pod', name: held.pod, uid: pod.metadata?.uid }, EVENT_REASON_INVALID_QUOTA, `${problem}; ${kept}`);
    }
    return held.limits;
  }

  /** Writes `limits` in place when they differ from what the file holds. */
  private apply(held: Held, limits: ControlLimits): void {
    if (limits.gpuCores === held.limits.gpuCores && limits.memoryBytes === held.limits.memoryBytes) return;
    const fields = { allocation: held.id, namespace: held.namespace, pod: held.pod, container: held.container };
    try {
      writeLimits(this.files.paths(held.id).limits, limits);
      held.limits = limits;
      this.log.info({ ...fields, gpuCores: limits.gpuCores, memoryBytes: limits.memoryBytes.toString() }, 'GPU limits changed live');
    } catch (err) {
      this.log.error({ ...fields, err: errorMessage(err) }, 'limits write failed; retried at the next resync');
    }
  }

  private reportClamp(held: Held, clamp: { desired: number; room: number }, pod: k8s.V1Pod | undefined): void {
    const key = `${clamp.desired}/${clamp.room}`;
    if (held.clampReported === key) return;
    held.clampReported = key;
    const message = `sair.dev/gpu-cores asks for ${clamp.desired} %, but GPU ${held.gpus.join(',')} has ${Math.max(0, clamp.room)} % left for container ${held.container} (the shares on one GPU never sum past 100 %); enforcing ${Math.max(1, Math.min(clamp.desired, clamp.room))} % until others give some back`;
    this.log.warn({ allocation: held.id, namespace: held.namespace, pod: held.pod, desired: clamp.desired, room: clamp.room }, 'GPU share increase clamped');
    this.events.onClamp?.(held);
    if (!pod) return;
    void this.event(pod, { kind: 'Pod', name: held.pod, uid: pod.metadata?.uid }, EVENT_REASON_SHARE_CLAMPED, message);
    void this.pipelineOf(pod).then((name) => {
      if (name) void this.event(pod, { kind: 'InferencePipeline', apiVersion: `${API_GROUP}/v1alpha1`, name }, EVENT_REASON_SHARE_CLAMPED, `stage pod ${held.pod}: ${message}`);
    });
  }

  /** The InferencePipeline whose stage runs this pod's Deployment (pod -> ReplicaSet by owner, minus the template hash). */
  private async pipelineOf(pod: k8s.V1Pod): Promise<string | undefined> {
    const rs = pod.metadata?.ownerReferences?.find((o) => o.kind === 'ReplicaSet')?.name;
    const hash = pod.metadata?.labels?.['pod-template-hash'];
    if (!rs || !hash || !rs.endsWith(`-${hash}`)) return undefined;
    const deployment = rs.slice(0, -hash.length - 1);
    try {
      const list = (await this.clients.custom.listNamespacedCustomObject({
        group: API_GROUP,
        version: 'v1alpha1',
        namespace: pod.metadata!.namespace!,
        plural: 'inferencepipelines',
      })) as { items?: { metadata?: { name?: string }; spec?: { stages?: { deployment?: string }[] } }[] };
      return list.items?.find((p) => p.spec?.stages?.some((s) => s.deployment === deployment))?.metadata?.name;
    } catch (err) {
      this.log.warn({ namespace: pod.metadata?.namespace, err: errorMessage(err) }, 'could not look up the pod\'s InferencePipeline');
      return undefined;
    }
  }

  /** Removes the directories of allocations the kubelet no longer lists, past the grace period. */
  private collectGarbage(live: Map<string, Held>): void {
    const grace = this.opts.orphanGraceMs ?? 60_000;
    for (const { id, ageMs } of this.files.list(Date.now())) {
      if (live.has(id) || ageMs < grace) continue;
      this.files.remove(id);
      this.log.info({ allocation: id }, 'removed the files of an allocation the kubelet no longer lists');
    }
  }

  /** The allocations, with their limits and their shims' usage slots (read safely, off the event loop). */
  async usage(): Promise<AllocationUsage[]> {
    const out: AllocationUsage[] = [];
    for (const h of this.held.values()) {
      const path = this.files.paths(h.id).state;
      try {
        const slots = await readExactFile(path, STATE_FILE_SIZE, ({ bytes, fd }) => {
          const live = liveSlots(fd);
          return parseState(path, bytes).map(({ index, slot }) => ({ ...slot, live: live ? live.has(index) : true }));
        });
        out.push({ id: h.id, namespace: h.namespace, pod: h.pod, container: h.container, limits: h.limits, requestedGpuCores: h.requestedGpuCores, slots });
      } catch (err) {
        this.log.warn({ allocation: h.id, namespace: h.namespace, pod: h.pod, err: errorMessage(err) }, 'state file unreadable; its usage is not reported');
        out.push({ id: h.id, namespace: h.namespace, pod: h.pod, container: h.container, limits: h.limits, requestedGpuCores: h.requestedGpuCores, slots: [] });
      }
    }
    return out;
  }

  private async event(pod: k8s.V1Pod, about: { kind: string; name: string; uid?: string; apiVersion?: string }, reason: string, message: string): Promise<void> {
    const namespace = pod.metadata?.namespace ?? 'default';
    const now = new Date();
    try {
      await this.clients.core.createNamespacedEvent({
        namespace,
        body: {
          metadata: { name: `${about.name}.${(BigInt(now.getTime()) * 1_000_000n).toString(16)}`, namespace },
          involvedObject: { apiVersion: about.apiVersion ?? 'v1', kind: about.kind, name: about.name, namespace, ...(about.uid ? { uid: about.uid } : {}) },
          reason,
          message,
          type: 'Warning',
          source: { component: COMPONENT, host: this.opts.nodeName },
          reportingComponent: COMPONENT,
          reportingInstance: this.opts.nodeName,
          firstTimestamp: now,
          lastTimestamp: now,
          count: 1,
        },
      });
    } catch (err) {
      this.log.error({ namespace, name: about.name, reason, err: errorMessage(err) }, 'could not create an Event');
    }
  }
}

/** What the kubelet lists, as the ledger counts it: each container's slots or whole GPUs. */
function ledgerEntries(slots: readonly ContainerSlots[], whole: readonly ContainerSlots[]): LedgerEntry[] {
  return [
    ...slots.map((c) => ({ use: 'slots' as const, ids: c.slotIds, gpus: gpusOfSlots(c.slotIds).uuids })),
    ...whole.map((c) => ({ use: 'whole' as const, ids: c.slotIds, gpus: c.slotIds })),
  ];
}
