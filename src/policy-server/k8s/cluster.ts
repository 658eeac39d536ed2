// ClusterPort for Kubernetes, put together from four parts that each do one job: the catalog
// (what is autoscaled, from the informer caches; reads only), the actuator (scale subresource,
// GPU shares), the share reconciler (pods to their stage's share, from a keyed work queue) and the
// reporter (status with stable conditions, aggregated Events). Only the holder of a valid lease
// for the pipeline's shard writes for it; a standby keeps its caches warm.
import type * as k8s from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { UpstreamError, errorMessage } from '../../common/errors.js';
import type { KubeClients } from '../../common/k8s.js';
import type { ClusterPort, PipelineSpec, ScalingAction, StageAllocation, TickReport } from '../../core/ports.js';
import type { DecisionRecord } from '../../policy/types.js';
import type { PipelineMetricsSource } from '../prometheus/metrics-port.js';
import { Actuator } from './actuator.js';
import { PipelineCatalog, type HpaDefaults, type Managed } from './catalog.js';
import type { GuardFor } from './guard.js';
import type { PolicyInformers } from './informers.js';
import type { InferencePipeline } from './pipeline-resource.js';
import { Reporter } from './reporter.js';
import { DEFAULT_RETRY, type RetryOptions } from './retry.js';
import { ShareReconciler } from './share-reconciler.js';

export type { HpaDefaults } from './catalog.js';
export { ALWAYS_LEADING, type GuardFor, type WriteGuard } from './guard.js';

export interface KubeClusterDeps {
  clients: KubeClients;
  informers: PolicyInformers;
  logger: Logger;
  registry: Registry;
  /** Shown in Events as the reporting instance (the pod name). */
  identity: string;
  hpaDefaults: HpaDefaults;
  /** Server-wide dry run (the controller then applies nothing); shown in Events and status. */
  dryRun: boolean;
  /** Options for each write for a pipeline: refused unless this replica holds its shard's lease, valid at that moment. */
  guardFor: GuardFor;
  retry?: RetryOptions;
  /** Repeats of an Event reason on one object are written at most this often (default 5 min). */
  eventIntervalMs?: number;
}

export function describeAction(a: ScalingAction, stageNames: readonly string[]): string {
  if (a.kind === 'hold') return 'hold';
  const stage = stageNames[a.stage] ?? `stage ${a.stage}`;
  return a.kind === 'replicas' ? `${stage}: replicas -> ${a.replicas}` : `${stage}: gpu-cores -> ${a.gpuCores}%`;
}

export class KubeCluster implements ClusterPort {
  readonly catalog: PipelineCatalog;
  readonly shares: ShareReconciler;
  readonly reporter: Reporter;
  private readonly actuator: Actuator;
  /** Set when this replica starts leading: the next listing resyncs the queues. */
  private resync = false;

  constructor(private readonly d: KubeClusterDeps) {
    const retry: RetryOptions = {
      ...(d.retry ?? DEFAULT_RETRY),
      onRetry: (err, attempt) => d.logger.warn({ err: err.message, status: err.status, attempt }, 'API call failed; retrying'),
    };
    const writes = new Counter({
      name: 'sair_policy_cluster_writes_total',
      help: 'Writes to the API server by kind (scale, pod-share, status, event) and outcome',
      labelNames: ['kind', 'outcome'],
      registers: [d.registry],
    });
    this.catalog = new PipelineCatalog(d.informers, d.hpaDefaults);
    const common = { clients: d.clients, informers: d.informers, guardFor: d.guardFor, retry, logger: d.logger, writes };
    this.shares = new ShareReconciler({ ...common, catalog: this.catalog });
    this.reporter = new Reporter({ ...common, identity: d.identity, eventIntervalMs: d.eventIntervalMs });
    this.actuator = new Actuator({ ...common, catalog: this.catalog, shares: this.shares });
  }

  /** Called when this replica starts or stops leading (gains or loses a shard). */
  setActive(active: boolean): void {
    this.resync = active;
  }

  stop(): void {
    this.shares.stop();
    this.reporter.stop();
  }

  metricsSource(pipelineId: string): PipelineMetricsSource | undefined {
    return this.catalog.get(pipelineId)?.metrics;
  }

  /** Pipelines that exist but are not autoscaled (invalid, or an HPA suspended), with the reason. */
  invalidPipelines(): Map<string, string> {
    return this.catalog.refusedPipelines();
  }

  /** The LLM reference of an InferencePipeline, if it names one. */
  llmReference(pipelineId: string): InferencePipeline['spec']['llm'] {
    return this.catalog.get(pipelineId)?.resource?.spec.llm;
  }

  async listPipelines(): Promise<PipelineSpec[]> {
    const specs = this.catalog.refresh();
    if (this.resync) {
      // Pods created and specs changed while another replica led, or while none did.
      this.resync = false;
      this.shares.resync();
      this.reporter.resync();
    }
    return specs;
  }

  private get(pipelineId: string): Managed {
    const m = this.catalog.get(pipelineId);
    if (!m) throw new UpstreamError('kube-apiserver', `pipeline ${pipelineId} is not managed (deleted, invalid, or its namespace lacks sair.dev/enabled=true)`, 404);
    return m;
  }

  async allocation(pipelineId: string): Promise<StageAllocation[]> {
    const m = this.get(pipelineId);
    return m.spec.stages.map((stage) => {
      const dep = this.catalog.deployment(m.namespace, stage.name);
      const hpa = this.catalog.hpaFor(m.namespace, stage.name);
      const alloc: StageAllocation = {
        replicas: dep?.spec?.replicas ?? 0,
        readyReplicas: dep?.status?.readyReplicas ?? 0,
        gpuCores: this.catalog.stageShare(dep, stage.gpuCores !== undefined),
      };
      if (hpa?.spec) alloc.hpa = hpaBounds(hpa);
      return alloc;
    });
  }

  async apply(pipelineId: string, action: ScalingAction): Promise<void> {
    const m = this.get(pipelineId);
    if (action.kind === 'hold') return;
    const log = this.d.logger.child({ pipeline: pipelineId, stage: action.stage });
    if (m.spec.mode === 'DryRun' || this.d.dryRun) {
      log.info({ action: describeAction(action, m.stageNames) }, 'dry run: not applied');
      return;
    }
    this.d.guardFor(pipelineId).writeOptions();
    const stage = m.spec.stages[action.stage];
    if (!stage) throw new UpstreamError('sair-policy', `pipeline ${pipelineId} has no stage ${action.stage}`, 400);
    try {
      if (action.kind === 'replicas') await this.actuator.scale(m, stage.name, { min: stage.minReplicas, max: stage.maxReplicas }, action.replicas, log);
      else {
        if (!stage.gpuCores) throw new UpstreamError('sair-policy', `stage ${action.stage} of ${pipelineId} has no GPU share to change`, 400);
        const target = Math.max(stage.gpuCores.min, Math.min(stage.gpuCores.max, Math.round(action.gpuCores)));
        await this.actuator.setShare(m, stage.name, target, log);
      }
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError('kube-apiserver', errorMessage(err));
      log.error({ action: describeAction(action, m.stageNames), err: e.message, status: e.status }, 'decision could not be applied');
      await this.reporter.event(m, 'Warning', 'ScalingFailed', `${describeAction(action, m.stageNames)} failed: ${e.message}`, describeAction(action, m.stageNames));
      throw e;
    }
  }

  private actionText(m: Managed, actions: readonly ScalingAction[], dry: boolean): string {
    const real = actions.filter((a) => a.kind !== 'hold');
    const text = real.length === 0 ? 'hold' : real.map((a) => describeAction(a, m.stageNames)).join(', ');
    return dry ? `dry-run: ${text}` : text;
  }

  async report(pipelineId: string, report: TickReport): Promise<void> {
    const m = this.catalog.get(pipelineId);
    if (!m) return;
    const dry = m.spec.mode === 'DryRun' || this.d.dryRun;
    const action = this.actionText(m, report.actions, dry);
    const bottleneck = report.bottleneck === null ? 'unknown' : (m.stageNames[report.bottleneck] ?? String(report.bottleneck));
    const acted = report.actions.some((a) => a.kind !== 'hold');
    const reason = report.reason ?? '';
    await this.reporter.event(m, 'Normal', dry ? 'DryRunDecision' : acted ? 'Scaled' : 'Hold', `${action}; bottleneck: ${bottleneck}${reason ? `; ${reason}` : ''}`.slice(0, 1000), acted ? action : '');
    if (m.kind !== 'pipeline') return;
    const alloc = await this.allocation(pipelineId).catch(() => []);
    await this.reporter.status(
      pipelineId,
      m,
      {
        observedGeneration: m.generation,
        bottleneck: report.bottleneck,
        bottleneckStage: report.bottleneck === null ? null : (m.stageNames[report.bottleneck] ?? null),
        sloP99Ms: m.spec.sloP99Ms,
        replicas: alloc.map((a) => String(a.replicas)).join('/'),
        lastDecision: { time: new Date(report.time).toISOString(), action, reason: reason.slice(0, 500), applied: !dry },
      },
      [
        { type: 'Valid', status: 'True', reason: 'SpecAccepted', message: 'the spec is valid' },
        { type: 'Ready', status: 'True', reason: 'Deciding', message: `deciding every ${m.spec.tickSeconds}s` },
      ],
    );
  }

  /**
   * The controller reports before its decision record is complete; the runtime hands the record
   * here afterwards, so status also shows the P99 and cost the decision was made on.
   */
  async publishDecision(record: DecisionRecord): Promise<void> {
    const m = this.catalog.get(record.pipelineId);
    if (!m || m.kind !== 'pipeline') return;
    await this.reporter.status(record.pipelineId, m, {
      p99Ms: record.p99Ms === null ? null : Math.round(record.p99Ms * 10) / 10,
      costRate: Math.round(record.costRate * 1e4) / 1e4,
      lastDecision: { id: record.id, time: new Date(record.time).toISOString(), action: this.actionText(m, record.applied, record.dryRun), reason: record.reason.slice(0, 500), applied: !record.dryRun },
    });
  }
}

function hpaBounds(hpa: k8s.V2HorizontalPodAutoscaler): NonNullable<StageAllocation['hpa']> {
  return {
    minReplicas: hpa.spec?.minReplicas ?? 1,
    maxReplicas: hpa.spec!.maxReplicas,
    ...(hpa.status?.desiredReplicas !== undefined ? { desiredReplicas: hpa.status.desiredReplicas } : {}),
  };
}
