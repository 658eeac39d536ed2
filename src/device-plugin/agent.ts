// The node agent: watches the pods on this node and keeps one control file per injected pod in
// <controlRoot>/<podUID>/control, holding the limits from its sair.dev/gpu-cores and
// sair.dev/gpu-memory annotations. A reconcile is idempotent: it creates a missing or corrupt
// file, rewrites changed limits in place (the shim picks them up live), and keeps the last good
// limits when an annotation turns invalid, reporting that once as an Event and a log line.
import { chmodSync, lstatSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import { checkGpuQuota } from '../common/gpu-quota.js';
import {
  CONTROL_FILE_NAME,
  createControlFile,
  readControlFile,
  writeLimits,
  type ControlLimits,
  type UsageSlot,
} from './control-file.js';
import { slotOwners } from './slot-liveness.js';
import { ANNOTATION_INJECTED } from '../core/names.js';

export const EVENT_REASON_INVALID_QUOTA = 'InvalidGpuQuota';
const COMPONENT = 'sair-device-plugin';
const UID = /^[0-9a-zA-Z][-0-9a-zA-Z]{0,62}$/;

export interface AgentOptions {
  nodeName: string;
  /** Host directory holding one directory per pod UID (/run/sair/pods). */
  controlRoot: string;
  /** How often every pod is reconciled again, to repair deleted or corrupted files. */
  resyncMs: number;
  /** Delay before restarting a failed watch. */
  restartMs?: number;
}

export interface PodRef {
  uid: string;
  namespace: string;
  name: string;
}

export interface LiveUsageSlot extends UsageSlot {
  /** Whether the owning process still runs (holds its slot lock); true when that cannot be told. */
  live: boolean;
}

export interface PodUsage extends PodRef {
  limits: ControlLimits;
  slots: LiveUsageSlot[];
}

interface Tracked extends PodRef {
  limits?: ControlLimits;
  /** The last invalid annotation values reported, so a resync does not repeat the Event. */
  reported?: string;
}

function sameLimits(a: ControlLimits, b: ControlLimits): boolean {
  return a.gpuCores === b.gpuCores && a.memoryBytes === b.memoryBytes;
}

export class NodeAgent {
  private readonly tracked = new Map<string, Tracked>();
  private informer: k8s.ListWatch<k8s.V1Pod> | undefined;
  private resync: NodeJS.Timeout | undefined;
  private restart: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    private readonly kc: k8s.KubeConfig,
    private readonly core: k8s.CoreV1Api,
    private readonly opts: AgentOptions,
    private readonly log: Logger,
  ) {}

  /** Lists the node's pods, reconciles them, removes directories of pods that are gone, then watches. */
  async start(): Promise<void> {
    mkdirSync(this.opts.controlRoot, { recursive: true, mode: 0o755 });
    const fieldSelector = `spec.nodeName=${this.opts.nodeName}`;
    const informer = new k8s.ListWatch<k8s.V1Pod>(
      '/api/v1/pods',
      new k8s.Watch(this.kc),
      () => this.core.listPodForAllNamespaces({ fieldSelector }),
      false,
      undefined,
      fieldSelector,
    );
    informer.on('add', (pod) => this.reconcile(pod));
    informer.on('update', (pod) => this.reconcile(pod));
    informer.on('delete', (pod) => this.forget(pod));
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
    this.collectGarbage();
    this.resync = setInterval(() => this.resyncAll(), this.opts.resyncMs);
    this.log.info({ node: this.opts.nodeName, pods: informer.list().length, root: this.opts.controlRoot }, 'node agent watching pods');
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.resync) clearInterval(this.resync);
    if (this.restart) clearTimeout(this.restart);
    await this.informer?.stop();
  }

  /** Pods with a control file, with their limits and the shim's usage slots. */
  usage(): PodUsage[] {
    const out: PodUsage[] = [];
    for (const t of this.tracked.values()) {
      if (!t.limits) continue;
      try {
        const path = this.controlFile(t.uid);
        const file = readControlFile(path);
        const owners = slotOwners(path);
        // A process that claimed a slot between the two reads makes them disagree: then liveness is unknown.
        const aligned = owners !== undefined && owners.occupied.length === file.slots.length;
        const slots = file.slots.map((slot, k) => ({ ...slot, live: aligned ? owners.live.has(owners.occupied[k]!) : true }));
        out.push({ uid: t.uid, namespace: t.namespace, name: t.name, limits: file.limits, slots });
      } catch (err) {
        this.log.debug({ uid: t.uid, err: errorMessage(err) }, 'control file unreadable; repaired at the next resync');
      }
    }
    return out;
  }

  private controlDir(uid: string): string {
    return join(this.opts.controlRoot, uid);
  }

  private controlFile(uid: string): string {
    return join(this.controlDir(uid), CONTROL_FILE_NAME);
  }

  private resyncAll(): void {
    for (const pod of this.informer?.list() ?? []) this.reconcile(pod);
    this.collectGarbage();
  }

  /** Removes directories under the control root that belong to no injected pod on this node. */
  private collectGarbage(): void {
    // Only against a listed cache: with the API server unreachable every pod would look gone.
    if (!this.informer || this.informer.latestResourceVersion() === '') return;
    const live = new Set((this.informer?.list() ?? []).map((p) => p.metadata?.uid));
    let names: string[];
    try {
      names = readdirSync(this.opts.controlRoot);
    } catch {
      mkdirSync(this.opts.controlRoot, { recursive: true, mode: 0o755 });
      return;
    }
    for (const name of names) {
      if (live.has(name) && this.tracked.has(name)) continue;
      if (!UID.test(name)) continue;
      rmSync(this.controlDir(name), { recursive: true, force: true });
      this.log.info({ uid: name }, 'removed control directory of a pod no longer on this node');
    }
  }

  /** Brings one pod's control file in line with its annotations. Never throws. */
  reconcile(pod: k8s.V1Pod): void {
    const meta = pod.metadata;
    const uid = meta?.uid;
    if (!meta || !uid || !UID.test(uid)) return;
    const ref: PodRef = { uid, namespace: meta.namespace ?? 'default', name: meta.name ?? '' };
    const injected = meta.annotations?.[ANNOTATION_INJECTED] === 'true';
    const done = pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed';
    if (!injected || done || meta.deletionTimestamp) {
      if (this.tracked.has(uid) && (done || !injected)) this.forget(pod);
      return;
    }
    const t: Tracked = this.tracked.get(uid) ?? { ...ref };
    this.tracked.set(uid, t);
    try {
      const check = checkGpuQuota(meta.annotations);
      let limits: ControlLimits | undefined;
      if (check.ok) {
        limits = { gpuCores: check.quota.gpuCores, memoryBytes: check.quota.memoryBytes };
        delete t.reported;
      } else {
        const problem = check.errors.map((e) => e.message).join('; ');
        limits = t.limits ?? this.limitsOnDisk(uid);
        if (t.reported !== problem) {
          t.reported = problem;
          const kept = limits ? `keeping the last good limits (gpu-cores ${limits.gpuCores}, gpu-memory ${limits.memoryBytes} bytes)` : 'no good limits known; the shim keeps the limits from its environment';
          this.log.warn({ uid, namespace: ref.namespace, pod: ref.name, problem }, `invalid GPU quota annotation; ${kept}`);
          void this.report(ref, `${problem}; ${kept}`);
        }
        if (!limits) return;
      }
      this.ensureFile(ref, limits);
      t.limits = limits;
    } catch (err) {
      this.log.error({ uid, namespace: ref.namespace, pod: ref.name, err: errorMessage(err) }, 'control file update failed; retried at the next resync');
    }
  }

  private limitsOnDisk(uid: string): ControlLimits | undefined {
    try {
      return readControlFile(this.controlFile(uid)).limits;
    } catch {
      return undefined;
    }
  }

  private ensureFile(ref: PodRef, limits: ControlLimits): void {
    const dir = this.controlDir(ref.uid);
    const file = this.controlFile(ref.uid);
    let dirOk: boolean;
    try {
      const st = lstatSync(dir);
      dirOk = st.isDirectory();
      if (!dirOk) rmSync(dir, { recursive: true, force: true });
      // The kubelet may have made it first (subPathExpr), with a mode the pod's non-root processes cannot enter.
      else if ((st.mode & 0o777) !== 0o755) chmodSync(dir, 0o755);
    } catch {
      dirOk = false;
    }
    // mkdir's mode is masked by the umask; chmod makes it exact.
    if (!dirOk) {
      mkdirSync(dir, { recursive: true });
      chmodSync(dir, 0o755);
    }

    let current: ControlLimits | undefined;
    let problem: string | undefined;
    try {
      current = readControlFile(file).limits;
    } catch (err) {
      problem = (err as NodeJS.ErrnoException).code === 'ENOENT' ? undefined : errorMessage(err);
      if (problem) rmSync(file, { recursive: true, force: true });
    }
    if (current === undefined) {
      createControlFile(file, limits);
      const fields = { uid: ref.uid, namespace: ref.namespace, pod: ref.name, gpuCores: limits.gpuCores, memoryBytes: limits.memoryBytes.toString() };
      if (problem) this.log.warn({ ...fields, problem }, 'control file was corrupt; recreated');
      else this.log.info(fields, dirOk ? 'control file created' : 'control directory and file created');
    } else if (!sameLimits(current, limits)) {
      writeLimits(file, limits);
      this.log.info(
        { uid: ref.uid, namespace: ref.namespace, pod: ref.name, gpuCores: limits.gpuCores, memoryBytes: limits.memoryBytes.toString() },
        'GPU limits changed live',
      );
    }
  }

  private forget(pod: k8s.V1Pod): void {
    const uid = pod.metadata?.uid;
    if (!uid || !UID.test(uid)) return;
    const had = this.tracked.delete(uid);
    rmSync(this.controlDir(uid), { recursive: true, force: true });
    if (had) this.log.info({ uid, namespace: pod.metadata?.namespace, pod: pod.metadata?.name }, 'pod gone; control directory removed');
  }

  private async report(ref: PodRef, message: string): Promise<void> {
    const now = new Date();
    try {
      await this.core.createNamespacedEvent({
        namespace: ref.namespace,
        body: {
          metadata: { name: `${ref.name}.${(BigInt(now.getTime()) * 1_000_000n).toString(16)}`, namespace: ref.namespace },
          involvedObject: { apiVersion: 'v1', kind: 'Pod', name: ref.name, namespace: ref.namespace, uid: ref.uid },
          reason: EVENT_REASON_INVALID_QUOTA,
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
      this.log.error({ uid: ref.uid, err: errorMessage(err) }, 'could not create the Event for an invalid GPU quota');
    }
  }
}
