// The status and Event reporter. Status goes through the pipeline's status subresource, and a
// condition keeps its lastTransitionTime while its status stays the same (as
// meta.SetStatusCondition does). Events are aggregated per object and reason, as client-go's
// event correlator does: the first is created at once, repeats within the interval are folded
// into it and written as one count and lastTimestamp update at most once per interval. An
// invalid spec is reported from its own queue, driven by the pipeline informer, so listing
// pipelines never writes.
import * as k8s from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import { NotLeaderError, UpstreamError, errorMessage } from '../../common/errors.js';
import type { KubeClients } from '../../common/k8s.js';
import { MERGE_PATCH } from '../../common/k8s.js';
import type { Logger } from '../../common/logger.js';
import type { Managed } from './catalog.js';
import type { GuardFor } from './guard.js';
import type { PolicyInformers } from './informers.js';
import { GROUP, KIND, PLURAL, VERSION, parseInferencePipeline, type PipelineStatus } from './pipeline-resource.js';
import { withRetry, type RetryOptions } from './retry.js';
import { WorkQueue } from './work-queue.js';

export type Condition = NonNullable<PipelineStatus['conditions']>[number];
type Target = Pick<Managed, 'namespace' | 'name' | 'kind'> & { uid?: string };

/** Condition entries for a status write: lastTransitionTime kept from `existing` unless the status changed. */
export function mergeConditions(existing: readonly Condition[] | undefined, next: readonly Omit<Condition, 'lastTransitionTime'>[], now: string): Condition[] {
  return next.map((c) => {
    const before = existing?.find((e) => e.type === c.type);
    return { ...c, message: c.message.slice(0, 500), lastTransitionTime: before && before.status === c.status ? before.lastTransitionTime : now };
  });
}

interface Series {
  eventName: string;
  count: number;
  lastWriteAt: number;
  message: string;
}

export interface ReporterDeps {
  clients: KubeClients;
  informers: PolicyInformers;
  guardFor: GuardFor;
  retry: RetryOptions;
  logger: Logger;
  writes: Counter;
  /** The reporting instance in Events (the pod name). */
  identity: string;
  /** Repeats of one object's reason are written at most this often (default 5 min). */
  eventIntervalMs?: number;
  now?: () => number;
}

export class Reporter {
  private readonly series = new Map<string, Series>();
  private prunedAt = 0;
  private readonly now: () => number;
  private readonly intervalMs: number;
  readonly invalidQueue: WorkQueue<string>;

  constructor(private readonly d: ReporterDeps) {
    this.now = d.now ?? Date.now;
    this.intervalMs = d.eventIntervalMs ?? 300_000;
    this.invalidQueue = new WorkQueue({ name: 'invalid-spec', handle: (key) => this.reportIfInvalid(key), concurrency: 2, logger: d.logger, isPermanent: (err) => err instanceof NotLeaderError });
    const onPipeline = (raw: k8s.KubernetesObject) => this.invalidQueue.add(`${raw.metadata?.namespace ?? ''}/${raw.metadata?.name ?? ''}`);
    d.informers.pipelines.informer.on(k8s.ADD, onPipeline);
    d.informers.pipelines.informer.on(k8s.UPDATE, onPipeline);
  }

  /** Every pipeline once, after this replica starts leading. */
  resync(): void {
    for (const raw of this.d.informers.pipelines.informer.list()) this.invalidQueue.add(`${raw.metadata?.namespace ?? ''}/${raw.metadata?.name ?? ''}`);
  }

  stop(): void {
    this.invalidQueue.stop();
  }

  private existingConditions(namespace: string, name: string): Condition[] | undefined {
    const raw = this.d.informers.pipelines.informer.get(name, namespace) as { status?: { conditions?: Condition[] } } | undefined;
    return raw?.status?.conditions;
  }

  /** Write status; `conditions` without times get them from the cache. Failures are logged and counted. */
  async status(pipelineId: string, target: Target, status: Omit<PipelineStatus, 'conditions'>, conditions?: Omit<Condition, 'lastTransitionTime'>[]): Promise<void> {
    const body: PipelineStatus = { ...status };
    if (conditions) body.conditions = mergeConditions(this.existingConditions(target.namespace, target.name), conditions, new Date(this.now()).toISOString());
    try {
      await withRetry(
        `status of ${pipelineId}`,
        () =>
          this.d.clients.custom.patchNamespacedCustomObjectStatus(
            { group: GROUP, version: VERSION, plural: PLURAL, namespace: target.namespace, name: target.name, body: { status: body } },
            this.d.guardFor(pipelineId).writeOptions(MERGE_PATCH),
          ),
        this.d.retry,
      );
      this.d.writes.inc({ kind: 'status', outcome: 'ok' });
    } catch (err) {
      this.d.writes.inc({ kind: 'status', outcome: 'error' });
      if (!(err instanceof NotLeaderError)) this.d.logger.error({ pipeline: pipelineId, err: errorMessage(err) }, 'status write failed');
    }
  }

  private async reportIfInvalid(key: string): Promise<void> {
    const [namespace, name] = key.split('/') as [string, string];
    const raw = this.d.informers.pipelines.informer.get(name, namespace);
    if (!raw) return;
    let message: string;
    try {
      parseInferencePipeline(raw);
      return;
    } catch (err) {
      message = errorMessage(err);
    }
    const valid = this.existingConditions(namespace, name)?.find((c) => c.type === 'Valid');
    if (valid?.status === 'False' && valid.message === message.slice(0, 500)) return;
    this.d.logger.error({ pipeline: key, err: message }, 'invalid InferencePipeline; not autoscaled');
    this.d.guardFor(key).writeOptions();
    await this.status(key, { kind: 'pipeline', namespace, name }, {}, [{ type: 'Valid', status: 'False', reason: 'InvalidSpec', message }]);
  }

  /**
   * An Event on the pipeline (or HPA), folded into the last one of the same reason and `series`
   * within the interval. `series` tells changes apart (each distinct action is an Event of its
   * own); repeats of one, and every Hold, fold.
   */
  async event(m: Managed, type: 'Normal' | 'Warning', reason: string, message: string, series = ''): Promise<void> {
    const key = `${m.kind}/${m.namespace}/${m.name}|${type}|${reason}|${series}`;
    const now = this.now();
    this.prune(now);
    const s = this.series.get(key);
    if (s && now - s.lastWriteAt < this.intervalMs) {
      s.count++;
      s.message = message;
      return;
    }
    try {
      if (s && (await this.bump(m, s, message, now))) return;
      await this.create(m, key, type, reason, message, now);
    } catch (err) {
      this.d.writes.inc({ kind: 'event', outcome: 'error' });
      if (!(err instanceof NotLeaderError)) this.d.logger.error({ pipeline: m.spec.id, reason, err: errorMessage(err) }, 'event write failed');
    }
  }

  /** Series older than an hour are forgotten: the next Event of that reason starts a new one. Once a minute, not per Event. */
  private prune(now: number): void {
    if (now - this.prunedAt < 60_000) return;
    this.prunedAt = now;
    for (const [k, s] of this.series) if (now - s.lastWriteAt > 3_600_000) this.series.delete(k);
  }

  private async bump(m: Managed, s: Series, message: string, now: number): Promise<boolean> {
    const count = s.count + 1;
    try {
      await withRetry(
        `event for ${m.spec.id}`,
        () =>
          this.d.clients.core.patchNamespacedEvent(
            { name: s.eventName, namespace: m.namespace, body: { count, lastTimestamp: new Date(now), message } },
            this.d.guardFor(m.spec.id).writeOptions(MERGE_PATCH),
          ),
        this.d.retry,
      );
    } catch (err) {
      // Expired (Events live an hour by default) or deleted: start a new series.
      if (err instanceof UpstreamError && err.status === 404) return false;
      throw err;
    }
    Object.assign(s, { count, lastWriteAt: now, message });
    this.d.writes.inc({ kind: 'event', outcome: 'ok' });
    return true;
  }

  private async create(m: Managed, key: string, type: 'Normal' | 'Warning', reason: string, message: string, now: number): Promise<void> {
    const at = new Date(now);
    const involved: k8s.V1ObjectReference =
      m.kind === 'pipeline'
        ? { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name: m.name, namespace: m.namespace, uid: m.uid }
        : { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: m.name, namespace: m.namespace, uid: m.uid };
    const eventName = `${m.name}.${now.toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`;
    await withRetry(
      `event for ${m.spec.id}`,
      () =>
        this.d.clients.core.createNamespacedEvent(
          {
            namespace: m.namespace,
            body: {
              apiVersion: 'v1',
              kind: 'Event',
              metadata: { name: eventName, namespace: m.namespace },
              involvedObject: involved,
              type,
              reason,
              message,
              count: 1,
              firstTimestamp: at,
              lastTimestamp: at,
              source: { component: 'sair-policy' },
              reportingComponent: 'sair.dev/policy',
              reportingInstance: this.d.identity,
              action: 'Autoscale',
            },
          },
          this.d.guardFor(m.spec.id).writeOptions(),
        ),
      this.d.retry,
    );
    this.series.set(key, { eventName, count: 1, lastWriteAt: now, message });
    this.d.writes.inc({ kind: 'event', outcome: 'ok' });
  }
}
