// ClusterPort for Kubernetes. Reads come from informer caches; writes go through the API:
// replicas via the deployments/scale subresource (read-modify-write with resourceVersion, so a
// concurrent writer gives a 409 that is retried), GPU share by patching `sair.dev/gpu-cores` on the
// stage's pods (new pods are reconciled to the stage's current share, which is kept on the
// Deployment so a new leader knows it), status via the status subresource, one Event per decision.
import * as k8s from '@kubernetes/client-node';
import { Counter, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { UpstreamError, errorMessage } from '../../common/errors.js';
import { suspensionOf, type HpaObject } from '../../common/hpa-takeover.js';
import { parseGpuCores } from '../../common/gpu-quota.js';
import type { KubeClients } from '../../common/k8s.js';
import type { ClusterPort, PipelineSpec, ScalingAction, StageAllocation, TickReport } from '../../core/ports.js';
import type { DecisionRecord } from '../../policy/types.js';
import type { PipelineMetricsSource } from '../prometheus/metrics-port.js';
import type { MetricPreset } from './pipeline-resource.js';
import { GROUP, KIND, METRIC_PRESETS, PLURAL, VERSION, parseInferencePipeline, toPipelineSpec, type InferencePipeline, type PipelineStatus } from './pipeline-resource.js';
import type { PolicyInformers } from './informers.js';
import { ANNOTATION_CURRENT_GPU_CORES, ANNOTATION_GPU_CORES, ANNOTATION_METRICS_PRESET, ANNOTATION_MODE, ANNOTATION_SLO_P99_MS, LABEL_INJECT, LABEL_MANAGED } from '../../core/names.js';
import { DEFAULT_RETRY, withRetry, type RetryOptions } from './retry.js';


const MERGE = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);

export interface HpaDefaults {
  sloP99Ms: number;
  tickSeconds: number;
  cost: { gpuHour: number; replicaHour: number };
  gpuCores: { min: number; max: number; step: number };
  mode: 'Active' | 'DryRun';
}

type CallOptions = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;

/** Who may write now: the leader elector (its lease valid at this moment), or always without election. */
export interface WriteGuard {
  /** Per-call options for one write; throws a 503 UpstreamError when this replica may not write now. */
  writeOptions(opt?: CallOptions): CallOptions;
}

/** Without leader election this replica always leads. */
export const ALWAYS_LEADING: WriteGuard = { writeOptions: (opt) => opt ?? {} };

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
  /** Options for each write: refused unless this replica holds a valid lease at that moment. */
  guard: WriteGuard;
  retry?: RetryOptions;
}

interface Managed {
  spec: PipelineSpec;
  kind: 'pipeline' | 'hpa';
  namespace: string;
  /** Object name: the InferencePipeline, or the HPA. */
  name: string;
  uid: string | undefined;
  generation: number | undefined;
  /** Stage names (InferencePipeline) used in status; Deployment names otherwise. */
  stageNames: string[];
  metrics: PipelineMetricsSource;
  resource?: InferencePipeline;
}

const annotations = (o: k8s.KubernetesObject) => o.metadata?.annotations ?? {};
const labels = (o: k8s.KubernetesObject) => o.metadata?.labels ?? {};

function selectorMatches(selector: k8s.V1LabelSelector | undefined, podLabels: Record<string, string>): boolean {
  if (!selector) return false;
  for (const [k, v] of Object.entries(selector.matchLabels ?? {})) if (podLabels[k] !== v) return false;
  for (const e of selector.matchExpressions ?? []) {
    const has = e.key in podLabels;
    const val = podLabels[e.key];
    if (e.operator === 'In' && !(has && e.values?.includes(val!))) return false;
    if (e.operator === 'NotIn' && has && e.values?.includes(val!)) return false;
    if (e.operator === 'Exists' && !has) return false;
    if (e.operator === 'DoesNotExist' && has) return false;
  }
  return true;
}

export function describeAction(a: ScalingAction, stageNames: readonly string[]): string {
  if (a.kind === 'hold') return 'hold';
  const stage = stageNames[a.stage] ?? `stage ${a.stage}`;
  return a.kind === 'replicas' ? `${stage}: replicas -> ${a.replicas}` : `${stage}: gpu-cores -> ${a.gpuCores}%`;
}

export class KubeCluster implements ClusterPort {
  private managed = new Map<string, Managed>();
  private invalid = new Map<string, string>();
  private active = false;
  /** Pods are reconciled once after this replica starts leading and knows its pipelines. */
  private reconcileAll = false;
  private readonly writes: Counter;
  private readonly retry: RetryOptions;

  constructor(private readonly d: KubeClusterDeps) {
    this.retry = {
      ...(d.retry ?? DEFAULT_RETRY),
      onRetry: (err, attempt) => d.logger.warn({ err: err.message, status: err.status, attempt }, 'API call failed; retrying'),
    };
    this.writes = new Counter({
      name: 'sair_policy_cluster_writes_total',
      help: 'Writes to the API server by kind (scale, pod-share, status, event) and outcome',
      labelNames: ['kind', 'outcome'],
      registers: [d.registry],
    });
    const onPod = (pod: k8s.V1Pod) => void this.reconcilePod(pod);
    d.informers.pods.informer.on(k8s.ADD, onPod);
    d.informers.pods.informer.on(k8s.UPDATE, onPod);
  }

  /** Only the leader writes; a standby keeps its caches warm. */
  setActive(active: boolean): void {
    this.active = active;
    this.reconcileAll = active;
  }

  /** Stage queries for the Prometheus port. */
  metricsSource(pipelineId: string): PipelineMetricsSource | undefined {
    return this.managed.get(pipelineId)?.metrics;
  }

  /** Pipelines that failed validation, with the reason, for /api/pipelines. */
  invalidPipelines(): Map<string, string> {
    return new Map(this.invalid);
  }

  /** The LLM reference of an InferencePipeline, if it names one. */
  llmReference(pipelineId: string): InferencePipeline['spec']['llm'] {
    return this.managed.get(pipelineId)?.resource?.spec.llm;
  }

  /**
   * The controller reports before its decision record is complete; the runtime hands the record
   * here afterwards, so status also shows the P99 and cost the decision was made on.
   */
  async publishDecision(record: DecisionRecord): Promise<void> {
    const m = this.managed.get(record.pipelineId);
    if (!m || m.kind !== 'pipeline') return;
    await this.writeStatus(record.pipelineId, m, {
      p99Ms: record.p99Ms === null ? null : Math.round(record.p99Ms * 10) / 10,
      costRate: Math.round(record.costRate * 1e4) / 1e4,
      lastDecision: { id: record.id, time: new Date(record.time).toISOString(), action: this.actionText(m, record.applied, record.dryRun), reason: record.reason.slice(0, 500), applied: !record.dryRun },
    });
  }

  private actionText(m: Managed, actions: readonly ScalingAction[], dry: boolean): string {
    const real = actions.filter((a) => a.kind !== 'hold');
    const text = real.length === 0 ? 'hold' : real.map((a) => describeAction(a, m.stageNames)).join(', ');
    return dry ? `dry-run: ${text}` : text;
  }

  private enabledNamespaces(): Set<string> {
    return new Set(this.d.informers.namespaces.informer.list().map((n) => n.metadata?.name ?? ''));
  }

  async listPipelines(): Promise<PipelineSpec[]> {
    const enabled = this.enabledNamespaces();
    const next = new Map<string, Managed>();
    const claimed = new Set<string>();
    const invalid = new Map<string, string>();
    for (const raw of this.d.informers.pipelines.informer.list()) {
      const ns = raw.metadata?.namespace ?? '';
      if (!enabled.has(ns)) continue;
      const id = `${ns}/${raw.metadata?.name ?? ''}`;
      let p: InferencePipeline;
      try {
        p = parseInferencePipeline(raw);
      } catch (err) {
        invalid.set(id, errorMessage(err));
        if (this.invalid.get(id) !== errorMessage(err)) {
          this.d.logger.error({ pipeline: id, err: errorMessage(err) }, 'invalid InferencePipeline; not autoscaled');
          void this.writeStatus(id, { kind: 'pipeline', namespace: ns, name: raw.metadata?.name ?? '' }, {
            conditions: [condition('Valid', 'False', 'InvalidSpec', errorMessage(err))],
          });
        }
        continue;
      }
      const spec = toPipelineSpec(p);
      p.spec.stages.forEach((s) => claimed.add(`${ns}/${s.deployment}`));
      next.set(spec.id, {
        spec,
        kind: 'pipeline',
        namespace: ns,
        name: p.name,
        uid: raw.metadata?.uid,
        generation: p.generation,
        stageNames: p.spec.stages.map((s) => s.name),
        resource: p,
        metrics: {
          stages: p.spec.stages.map((s) => ({ namespace: ns, deployment: s.deployment, preset: s.metrics.preset, selector: s.metrics.selector, queries: s.metrics.queries })),
          p99Query: p.spec.metrics.p99Query,
          sloViolationQuery: p.spec.metrics.sloViolationQuery,
        },
      });
    }
    for (const hpa of this.d.informers.hpas.informer.list()) {
      const m = this.fromHpa(hpa, enabled, claimed);
      if (m) next.set(m.spec.id, m);
    }
    this.managed = next;
    this.invalid = invalid;
    if (this.reconcileAll) {
      // Pods created while another replica led, or while none did.
      this.reconcileAll = false;
      for (const pod of this.d.informers.pods.informer.list()) void this.reconcilePod(pod);
    }
    return [...next.values()].map((m) => m.spec);
  }

  /** Every SAIR-managed HPA on a Deployment that no pipeline claims is a single-stage pipeline. */
  private fromHpa(hpa: k8s.V2HorizontalPodAutoscaler, enabled: Set<string>, claimed: Set<string>): Managed | undefined {
    const ns = hpa.metadata?.namespace ?? '';
    const name = hpa.metadata?.name ?? '';
    const target = hpa.spec?.scaleTargetRef;
    const isManaged = labels(hpa)[LABEL_MANAGED] === 'true' || annotations(hpa)[LABEL_MANAGED] === 'true';
    // A suspended HPA scales on its own until the failsafe takes it over again.
    if (!enabled.has(ns) || !isManaged || labels(hpa)[LABEL_INJECT] === 'false' || suspensionOf(hpa as unknown as HpaObject)) return undefined;
    if (!target || target.kind !== 'Deployment' || claimed.has(`${ns}/${target.name}`)) return undefined;
    const deployment = this.d.informers.deployments.informer.get(target.name, ns);
    if (!deployment) return undefined;
    const a = annotations(hpa);
    const defaults = this.d.hpaDefaults;
    const slo = Number(a[ANNOTATION_SLO_P99_MS]);
    const preset = (METRIC_PRESETS as readonly string[]).includes(a[ANNOTATION_METRICS_PRESET] ?? '') ? (a[ANNOTATION_METRICS_PRESET] as MetricPreset) : 'generic';
    const onGpu = ANNOTATION_GPU_CORES in (deployment.spec?.template.metadata?.annotations ?? {});
    const id = `${ns}/hpa:${name}`;
    return {
      kind: 'hpa',
      namespace: ns,
      name,
      uid: hpa.metadata?.uid,
      generation: undefined,
      stageNames: [target.name],
      metrics: { stages: [{ namespace: ns, deployment: target.name, preset }] },
      spec: {
        id,
        stages: [
          {
            index: 0,
            name: target.name,
            minReplicas: hpa.spec?.minReplicas ?? 1,
            maxReplicas: hpa.spec?.maxReplicas ?? 1,
            ...(onGpu ? { gpuCores: { ...defaults.gpuCores } } : {}),
            upstream: [],
          },
        ],
        sloP99Ms: Number.isFinite(slo) && slo > 0 ? slo : defaults.sloP99Ms,
        cost: { ...defaults.cost },
        tickSeconds: defaults.tickSeconds,
        mode: a[ANNOTATION_MODE] === 'DryRun' || a[ANNOTATION_MODE] === 'Active' ? a[ANNOTATION_MODE] : defaults.mode,
      },
    };
  }

  private get(pipelineId: string): Managed {
    const m = this.managed.get(pipelineId);
    if (!m) throw new UpstreamError('kube-apiserver', `pipeline ${pipelineId} is not managed (deleted, invalid, or its namespace lacks sair.dev/enabled=true)`, 404);
    return m;
  }

  private hpaFor(namespace: string, deployment: string): k8s.V2HorizontalPodAutoscaler | undefined {
    return this.d.informers.hpas.informer
      .list(namespace)
      .find((h) => h.spec?.scaleTargetRef.kind === 'Deployment' && h.spec.scaleTargetRef.name === deployment && labels(h)[LABEL_INJECT] !== 'false');
  }

  /** The share a stage's pods should run at: the one SAIR set, else the template's, else 100 % on a GPU stage. */
  private stageShare(dep: k8s.V1Deployment | undefined, onGpu: boolean): number | null {
    const current = dep && annotations(dep)[ANNOTATION_CURRENT_GPU_CORES];
    const template = dep?.spec?.template.metadata?.annotations?.[ANNOTATION_GPU_CORES];
    for (const v of [current, template]) {
      if (v === undefined) continue;
      try {
        return parseGpuCores(v);
      } catch {
        continue;
      }
    }
    return onGpu ? 100 : null;
  }

  async allocation(pipelineId: string): Promise<StageAllocation[]> {
    const m = this.get(pipelineId);
    return m.spec.stages.map((stage) => {
      const dep = this.d.informers.deployments.informer.get(stage.name, m.namespace);
      const hpa = this.hpaFor(m.namespace, stage.name);
      const alloc: StageAllocation = {
        replicas: dep?.spec?.replicas ?? 0,
        readyReplicas: dep?.status?.readyReplicas ?? 0,
        gpuCores: this.stageShare(dep, stage.gpuCores !== undefined),
      };
      if (hpa?.spec) {
        alloc.hpa = {
          minReplicas: hpa.spec.minReplicas ?? 1,
          maxReplicas: hpa.spec.maxReplicas,
          ...(hpa.status?.desiredReplicas !== undefined ? { desiredReplicas: hpa.status.desiredReplicas } : {}),
        };
      }
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
    this.d.guard.writeOptions();
    const stage = m.spec.stages[action.stage];
    if (!stage) throw new UpstreamError('sair-policy', `pipeline ${pipelineId} has no stage ${action.stage}`, 400);
    try {
      if (action.kind === 'replicas') await this.scale(m, stage.name, stage.minReplicas, stage.maxReplicas, action.replicas, log);
      else {
        if (!stage.gpuCores) throw new UpstreamError('sair-policy', `stage ${action.stage} of ${pipelineId} has no GPU share to change`, 400);
        const target = Math.max(stage.gpuCores.min, Math.min(stage.gpuCores.max, Math.round(action.gpuCores)));
        await this.setShare(m.namespace, stage.name, target, log);
      }
    } catch (err) {
      const e = err instanceof UpstreamError ? err : new UpstreamError('kube-apiserver', errorMessage(err));
      log.error({ action: describeAction(action, m.stageNames), err: e.message, status: e.status }, 'decision could not be applied');
      await this.event(m, 'Warning', 'ScalingFailed', `${describeAction(action, m.stageNames)} failed: ${e.message}`);
      throw e;
    }
  }

  /** Scale subresource, clamped to the stage's bounds and the HPA's: those are hard limits. */
  private async scale(m: Managed, deployment: string, min: number, max: number, wanted: number, log: Logger): Promise<void> {
    const hpa = this.hpaFor(m.namespace, deployment);
    const lo = Math.max(min, hpa?.spec?.minReplicas ?? 0);
    const hi = Math.min(max, hpa?.spec?.maxReplicas ?? Infinity);
    const target = Math.max(lo, Math.min(hi, Math.round(wanted)));
    if (target !== wanted) log.warn({ wanted, target, min: lo, max: hi }, 'replicas clamped to the stage and HPA bounds');
    await withRetry(
      `scale deployment ${m.namespace}/${deployment}`,
      async () => {
        const scale = await this.d.clients.apps.readNamespacedDeploymentScale({ name: deployment, namespace: m.namespace });
        if (scale.spec?.replicas === target) return;
        await this.d.clients.apps.replaceNamespacedDeploymentScale({
          name: deployment,
          namespace: m.namespace,
          body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: deployment, namespace: m.namespace, resourceVersion: scale.metadata?.resourceVersion }, spec: { replicas: target } },
        }, this.d.guard.writeOptions());
        log.info({ from: scale.spec?.replicas, to: target }, 'scaled');
      },
      this.retry,
    ).then(
      () => this.writes.inc({ kind: 'scale', outcome: 'ok' }),
      (err: unknown) => {
        this.writes.inc({ kind: 'scale', outcome: 'error' });
        throw err;
      },
    );
  }

  private podsOf(namespace: string, deployment: string): k8s.V1Pod[] {
    const dep = this.d.informers.deployments.informer.get(deployment, namespace);
    if (!dep) return [];
    return this.d.informers.pods.informer
      .list(namespace)
      .filter((p) => !p.metadata?.deletionTimestamp && selectorMatches(dep.spec?.selector, labels(p)));
  }

  private async setShare(namespace: string, deployment: string, cores: number, log: Logger): Promise<void> {
    await withRetry(
      `annotate deployment ${namespace}/${deployment}`,
      () =>
        this.d.clients.apps.patchNamespacedDeployment(
          { name: deployment, namespace, body: { metadata: { annotations: { [ANNOTATION_CURRENT_GPU_CORES]: String(cores) } } } },
          this.d.guard.writeOptions(MERGE),
        ),
      this.retry,
    );
    const pods = this.podsOf(namespace, deployment).filter((p) => annotations(p)[ANNOTATION_GPU_CORES] !== String(cores));
    const results = await Promise.allSettled(pods.map((p) => this.patchPodShare(namespace, p.metadata?.name ?? '', cores)));
    const failed = results.filter((r) => r.status === 'rejected');
    log.info({ gpuCores: cores, pods: pods.length, failed: failed.length }, 'GPU share set');
    if (failed.length > 0) throw (failed[0] as PromiseRejectedResult).reason;
  }

  private async patchPodShare(namespace: string, name: string, cores: number): Promise<void> {
    try {
      await withRetry(
        `annotate pod ${namespace}/${name}`,
        () => this.d.clients.core.patchNamespacedPod({ name, namespace, body: { metadata: { annotations: { [ANNOTATION_GPU_CORES]: String(cores) } } } }, this.d.guard.writeOptions(MERGE)),
        this.retry,
      );
      this.writes.inc({ kind: 'pod-share', outcome: 'ok' });
    } catch (err) {
      // A pod deleted meanwhile needs no share.
      if ((err as UpstreamError).status === 404) return;
      this.writes.inc({ kind: 'pod-share', outcome: 'error' });
      throw err;
    }
  }

  /** A pod of a managed GPU stage that runs at another share than the stage's gets the stage's. */
  private async reconcilePod(pod: k8s.V1Pod): Promise<void> {
    if (!this.active || pod.metadata?.deletionTimestamp) return;
    const ns = pod.metadata?.namespace ?? '';
    for (const m of this.managed.values()) {
      if (m.namespace !== ns || m.spec.mode === 'DryRun') continue;
      for (const stage of m.spec.stages) {
        if (!stage.gpuCores) continue;
        const dep = this.d.informers.deployments.informer.get(stage.name, ns);
        const current = dep && annotations(dep)[ANNOTATION_CURRENT_GPU_CORES];
        if (!current || !selectorMatches(dep.spec?.selector, labels(pod))) continue;
        if (annotations(pod)[ANNOTATION_GPU_CORES] === current) return;
        try {
          await this.patchPodShare(ns, pod.metadata?.name ?? '', Number(current));
          this.d.logger.info({ pipeline: m.spec.id, pod: pod.metadata?.name, gpuCores: Number(current) }, 'new pod reconciled to the stage GPU share');
        } catch (err) {
          this.d.logger.error({ pipeline: m.spec.id, pod: pod.metadata?.name, err: errorMessage(err) }, 'could not set the GPU share of a new pod');
        }
        return;
      }
    }
  }

  async report(pipelineId: string, report: TickReport): Promise<void> {
    const m = this.managed.get(pipelineId);
    if (!m) return;
    const dry = m.spec.mode === 'DryRun' || this.d.dryRun;
    const action = this.actionText(m, report.actions, dry);
    const bottleneck = report.bottleneck === null ? 'unknown' : (m.stageNames[report.bottleneck] ?? String(report.bottleneck));
    const acted = report.actions.some((a) => a.kind !== 'hold');
    const reason = report.reason ?? '';
    await this.event(m, 'Normal', dry ? 'DryRunDecision' : acted ? 'Scaled' : 'Hold', `${action}; bottleneck: ${bottleneck}${reason ? `; ${reason}` : ''}`.slice(0, 1000));
    if (m.kind !== 'pipeline') return;
    const alloc = await this.allocation(pipelineId).catch(() => []);
    await this.writeStatus(pipelineId, m, {
      observedGeneration: m.generation,
      bottleneck: report.bottleneck,
      bottleneckStage: report.bottleneck === null ? null : (m.stageNames[report.bottleneck] ?? null),
      sloP99Ms: m.spec.sloP99Ms,
      replicas: alloc.map((a) => String(a.replicas)).join('/'),
      lastDecision: { time: new Date(report.time).toISOString(), action, reason: reason.slice(0, 500), applied: !dry },
      conditions: [condition('Valid', 'True', 'SpecAccepted', 'the spec is valid'), condition('Ready', 'True', 'Deciding', `deciding every ${m.spec.tickSeconds}s`)],
    });
  }

  private async writeStatus(pipelineId: string, m: Pick<Managed, 'namespace' | 'name' | 'kind'>, status: PipelineStatus): Promise<void> {
    try {
      await withRetry(
        `status of ${pipelineId}`,
        () =>
          this.d.clients.custom.patchNamespacedCustomObjectStatus(
            { group: GROUP, version: VERSION, plural: PLURAL, namespace: m.namespace, name: m.name, body: { status } },
            this.d.guard.writeOptions(MERGE),
          ),
        this.retry,
      );
      this.writes.inc({ kind: 'status', outcome: 'ok' });
    } catch (err) {
      this.writes.inc({ kind: 'status', outcome: 'error' });
      this.d.logger.error({ pipeline: pipelineId, err: errorMessage(err) }, 'status write failed');
    }
  }

  private async event(m: Managed, type: 'Normal' | 'Warning', reason: string, message: string): Promise<void> {
    const now = new Date();
    const involved: k8s.V1ObjectReference =
      m.kind === 'pipeline'
        ? { apiVersion: `${GROUP}/${VERSION}`, kind: KIND, name: m.name, namespace: m.namespace, uid: m.uid }
        : { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: m.name, namespace: m.namespace, uid: m.uid };
    try {
      await withRetry(
        `event for ${m.spec.id}`,
        () =>
          this.d.clients.core.createNamespacedEvent({
            namespace: m.namespace,
            body: {
              apiVersion: 'v1',
              kind: 'Event',
              metadata: { name: `${m.name}.${now.getTime().toString(16)}${Math.floor(Math.random() * 0xfff).toString(16)}`, namespace: m.namespace },
              involvedObject: involved,
              type,
              reason,
              message,
              count: 1,
              firstTimestamp: now,
              lastTimestamp: now,
              source: { component: 'sair-policy' },
              reportingComponent: 'sair.dev/policy',
              reportingInstance: this.d.identity,
              action: 'Autoscale',
            },
          }, this.d.guard.writeOptions()),
        this.retry,
      );
      this.writes.inc({ kind: 'event', outcome: 'ok' });
    } catch (err) {
      this.writes.inc({ kind: 'event', outcome: 'error' });
      this.d.logger.error({ pipeline: m.spec.id, reason, err: errorMessage(err) }, 'event write failed');
    }
  }
}

function condition(type: string, status: 'True' | 'False', reason: string, message: string) {
  return { type, status, reason, message: message.slice(0, 500), lastTransitionTime: new Date().toISOString() };
}
