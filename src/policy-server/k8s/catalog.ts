// The pipeline catalog: what SAIR autoscales, read from the informer caches. InferencePipelines
// in opted-in namespaces, and each taken-over HPA on a Deployment no pipeline claims as a
// single-stage pipeline. Reads only: it never writes to the cluster (invalid specs are reported
// by the reporter from its own queue).
import type * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../../common/errors.js';
import { parseGpuCores } from '../../common/gpu-quota.js';
import { suspensionOf, type HpaObject } from '../../common/hpa-takeover.js';
import type { PipelineSpec } from '../../core/ports.js';
import { hpaPipelineId } from '../../core/shards.js';
import { ANNOTATION_CURRENT_GPU_CORES, ANNOTATION_GPU_CORES, ANNOTATION_METRICS_PRESET, ANNOTATION_MODE, ANNOTATION_SLO_P99_MS, LABEL_INJECT, LABEL_MANAGED } from '../../core/names.js';
import type { PipelineMetricsSource } from '../prometheus/metrics-port.js';
import type { PolicyInformers } from './informers.js';
import { METRIC_PRESETS, parseInferencePipeline, toPipelineSpec, type InferencePipeline, type MetricPreset } from './pipeline-resource.js';

export interface HpaDefaults {
  sloP99Ms: number;
  tickSeconds: number;
  cost: { gpuHour: number; replicaHour: number };
  gpuCores: { min: number; max: number; step: number };
  mode: 'Active' | 'DryRun';
}

export interface Managed {
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

export function selectorMatches(selector: k8s.V1LabelSelector | undefined, podLabels: Record<string, string>): boolean {
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

export class PipelineCatalog {
  private managed = new Map<string, Managed>();
  private refused = new Map<string, string>();
  /** `namespace/deployment` of each managed stage -> the id of the pipeline it belongs to. */
  private owners = new Map<string, string>();

  constructor(
    private readonly informers: PolicyInformers,
    private readonly hpaDefaults: HpaDefaults,
  ) {}

  /** Re-read the caches: the pipelines to tick now. */
  refresh(): PipelineSpec[] {
    const enabled = this.enabledNamespaces();
    const next = new Map<string, Managed>();
    const claimed = new Set<string>();
    const refused = new Map<string, string>();
    for (const raw of this.informers.pipelines.informer.list()) {
      const ns = raw.metadata?.namespace ?? '';
      if (!enabled.has(ns)) continue;
      const id = `${ns}/${raw.metadata?.name ?? ''}`;
      let p: InferencePipeline;
      try {
        p = parseInferencePipeline(raw);
      } catch (err) {
        refused.set(id, errorMessage(err));
        continue;
      }
      p.spec.stages.forEach((s) => claimed.add(`${ns}/${s.deployment}`));
      const suspended = p.spec.stages.map((s) => this.hpaFor(ns, s.deployment, true)).find((h) => h && suspensionOf(h as unknown as HpaObject));
      if (suspended) {
        refused.set(id, `HPA ${ns}/${suspended.metadata?.name ?? ''} scales on its own while the failsafe has it suspended; waiting for it to be taken over again`);
        continue;
      }
      const spec = toPipelineSpec(p);
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
          namespace: ns,
          stages: p.spec.stages.map((s) => ({ namespace: ns, deployment: s.deployment, preset: s.metrics.preset, selector: s.metrics.selector, queries: s.metrics.queries })),
          p99Query: p.spec.metrics.p99Query,
          sloViolationQuery: p.spec.metrics.sloViolationQuery,
        },
      });
    }
    for (const hpa of this.informers.hpas.informer.list()) {
      const m = this.fromHpa(hpa, enabled, claimed);
      if (m) next.set(m.spec.id, m);
    }
    this.managed = next;
    this.refused = refused;
    this.owners = new Map([...next.values()].flatMap((m) => m.spec.stages.map((s) => [`${m.namespace}/${s.name}`, m.spec.id] as const)));
    return [...next.values()].map((m) => m.spec);
  }

  get(pipelineId: string): Managed | undefined {
    return this.managed.get(pipelineId);
  }

  /** The pipeline a Deployment is a stage of, if it is managed. */
  stageOwner(namespace: string, deployment: string): string | undefined {
    return this.owners.get(`${namespace}/${deployment}`);
  }

  all(): IterableIterator<Managed> {
    return this.managed.values();
  }

  /** Pipelines that exist but are not autoscaled, with the reason, for /api/pipelines. */
  refusedPipelines(): Map<string, string> {
    return new Map(this.refused);
  }

  /** Namespaces labelled sair.dev/enabled=true whose caches have listed (before that a Deployment could look missing). */
  enabledNamespaces(): Set<string> {
    return new Set(
      this.informers.namespaces.informer
        .list()
        .map((n) => n.metadata?.name ?? '')
        .filter((ns) => this.informers.namespaceSynced(ns)),
    );
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
    const deployment = this.informers.deployments.informer.get(target.name, ns);
    if (!deployment) return undefined;
    const a = annotations(hpa);
    const defaults = this.hpaDefaults;
    const slo = Number(a[ANNOTATION_SLO_P99_MS]);
    const preset = (METRIC_PRESETS as readonly string[]).includes(a[ANNOTATION_METRICS_PRESET] ?? '') ? (a[ANNOTATION_METRICS_PRESET] as MetricPreset) : 'generic';
    const onGpu = ANNOTATION_GPU_CORES in (deployment.spec?.template.metadata?.annotations ?? {});
    return {
      kind: 'hpa',
      namespace: ns,
      name,
      uid: hpa.metadata?.uid,
      generation: undefined,
      stageNames: [target.name],
      metrics: { namespace: ns, stages: [{ namespace: ns, deployment: target.name, preset }] },
      spec: {
        id: hpaPipelineId(ns, name),
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

  /** The HPA on a Deployment (opted-out ones ignored); with `includeSuspended`, suspended ones too. */
  hpaFor(namespace: string, deployment: string, includeSuspended = false): k8s.V2HorizontalPodAutoscaler | undefined {
    return this.informers.hpas.informer
      .list(namespace)
      .find(
        (h) =>
          h.spec?.scaleTargetRef.kind === 'Deployment' &&
          h.spec.scaleTargetRef.name === deployment &&
          labels(h)[LABEL_INJECT] !== 'false' &&
          (includeSuspended || !suspensionOf(h as unknown as HpaObject)),
      );
  }

  deployment(namespace: string, name: string): k8s.V1Deployment | undefined {
    return this.informers.deployments.informer.get(name, namespace);
  }

  /** The share a stage's pods should run at: the one SAIR set, else the template's, else 100 % on a GPU stage. */
  stageShare(dep: k8s.V1Deployment | undefined, onGpu: boolean): number | null {
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

  /** Live pods of a Deployment, from the cache of SAIR-managed pods. */
  podsOf(namespace: string, deployment: string): k8s.V1Pod[] {
    const dep = this.deployment(namespace, deployment);
    if (!dep) return [];
    return this.informers.pods.informer.list(namespace).filter((p) => !p.metadata?.deletionTimestamp && selectorMatches(dep.spec?.selector, labels(p)));
  }

  /** `namespace/deployment` of each managed GPU stage (not in dry run) whose selector matches the pod. */
  gpuStagesOf(pod: k8s.V1Pod): string[] {
    const ns = pod.metadata?.namespace ?? '';
    const out: string[] = [];
    for (const m of this.managed.values()) {
      if (m.namespace !== ns || m.spec.mode === 'DryRun') continue;
      for (const stage of m.spec.stages) {
        const dep = stage.gpuCores && this.deployment(ns, stage.name);
        if (dep && selectorMatches(dep.spec?.selector, labels(pod))) out.push(`${ns}/${stage.name}`);
      }
    }
    return out;
  }

  /** `namespace/deployment` of every managed GPU stage (not in dry run). */
  gpuStages(): string[] {
    const out = new Set<string>();
    for (const m of this.managed.values()) {
      if (m.spec.mode === 'DryRun') continue;
      for (const s of m.spec.stages) if (s.gpuCores) out.add(`${m.namespace}/${s.name}`);
    }
    return [...out];
  }
}
