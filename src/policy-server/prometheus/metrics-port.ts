// MetricsPort over Prometheus: each tick, the stage templates are rendered for the pipeline's
// Deployments. The built-in ones go to Prometheus as one request (TickQueries): a server running
// hundreds of pipelines sends one query per pipeline and tick, not one per stage and field. A
// query that fails, times out or finds no data gives a null field, and the controller holds rather
// than act on a guess. A tenant's own PromQL (its pipeline's p99Query and sloViolationQuery, a
// stage's overrides or extra selector) is confined to the pipeline's namespace first, as it runs
// with the policy server's identity, and is sent alone, so an error in it costs only its field.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';
import type { MetricPreset, StageQueryField } from '../k8s/pipeline-resource.js';
import type { Clock, MetricsPort, PipelineObservation, PipelineSpec, StageAllocation, StageMetrics } from '../../core/ports.js';
import type { PrometheusClient, Series } from './client.js';
import { confineToNamespace } from './confine.js';
import { BATCH_QUERIES, GPU_CORES_ENFORCED_QUERY, clampedPodsQuery, gpusInUseQuery, render, stageQueries, type StageQueries } from './queries.js';

export interface StageMetricsSource {
  namespace: string;
  deployment: string;
  preset: MetricPreset;
  selector?: string;
  queries?: StageQueries;
}

export interface PipelineMetricsSource {
  /** The pipeline's namespace: the only one its own queries may read. */
  namespace: string;
  stages: StageMetricsSource[];
  p99Query?: string;
  sloViolationQuery?: string;
}

export interface PrometheusMetricsDeps {
  client: PrometheusClient;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  /** Where each stage's metrics live (from the InferencePipeline or the HPA). */
  sourceFor(pipelineId: string): PipelineMetricsSource | undefined;
  allocation(pipelineId: string): Promise<StageAllocation[]>;
  /** Range for rate() and friends; at least four scrapes of a 15 s interval. */
  minWindowSeconds?: number;
  /** Short range for the entry rate a surge shows in first (recentArrivalRate): two scrapes of 15 s, the least rate() needs. */
  recentWindowSeconds?: number;
}

/** The sum of the values, or null when there are none or any is missing. */
function sumOfAll(values: readonly (number | null)[]): number | null {
  return values.length > 0 && values.every((v) => v !== null) ? values.reduce<number>((a, b) => a + (b ?? 0), 0) : null;
}

/** Share-priced dollars per hour for an allocation: replicas × (replica price + GPU price × share). */
export function costRate(pipeline: PipelineSpec, allocation: readonly StageAllocation[]): number {
  return allocation.reduce((sum, a) => sum + a.replicas * (pipeline.cost.replicaHour + pipeline.cost.gpuHour * ((a.gpuCores ?? 0) / 100)), 0);
}

/** How long a pipeline's last whole-GPU count stands in for a tick whose query finds none (five 30 s ticks). */
const BILLED_GPUS_HOLD_MS = 150_000;

/** Packed dollars per hour, as a cluster bills it: whole GPUs held × GPU price + replicas × replica price. */
export function packedCostRate(pipeline: PipelineSpec, allocation: readonly StageAllocation[], gpus: number): number {
  return gpus * pipeline.cost.gpuHour + allocation.reduce((sum, a) => sum + a.replicas * pipeline.cost.replicaHour, 0);
}

/** The one value of a query's series; null with none, NaN or ±Inf, and a failure with several. */
function oneValue(values: readonly number[], promql: string, failures: string[]): number | null {
  if (values.length > 1) {
    failures.push(`prometheus: query returned ${values.length} series; aggregate it to one (e.g. sum(...)): ${promql}`);
    return null;
  }
  const v = values[0];
  return v !== undefined && Number.isFinite(v) ? v : null;
}

/** The label that names each arm of a tick's combined query. */
export const ARM_LABEL = 'sair_query';

/**
 * A tick's built-in queries of one pipeline, sent as one PromQL expression: each query becomes
 * `label_replace((query), "sair_query", "<n>", "", "")` (an empty source label matches the empty
 * regex, so every series gets the arm's number) and the arms are joined with `or`, which keeps each
 * arm's series since their label sets differ. Built-in templates all aggregate to one series; an
 * arm that answers with several is reported as the single query would be. One failed request
 * leaves all of the tick's built-in fields missing, and the controller holds.
 */
export class TickQueries {
  private readonly arms: { promql: string; resolve: (v: number | null) => void }[] = [];
  private sent = false;

  constructor(
    private readonly request: (promql: string, failures: string[]) => Promise<Series[] | null>,
    private readonly failures: string[],
  ) {}

  add(promql: string): Promise<number | null> {
    if (this.sent) throw new Error('TickQueries: a query was added after the tick was sent');
    return new Promise((resolve) => this.arms.push({ promql, resolve }));
  }

  /** The combined expression; exported for the tests that check it against Prometheus's grammar. */
  static combine(queries: readonly string[]): string {
    return queries.map((q, i) => `label_replace((${q}), "${ARM_LABEL}", "${i}", "", "")`).join(' or ');
  }

  async send(): Promise<void> {
    this.sent = true;
    if (this.arms.length === 0) return;
    const series = await this.request(TickQueries.combine(this.arms.map((a) => a.promql)), this.failures);
    const byArm = new Map<string, number[]>();
    for (const s of series ?? []) {
      const arm = s.metric[ARM_LABEL] ?? '';
      byArm.set(arm, [...(byArm.get(arm) ?? []), s.value]);
    }
    this.arms.forEach((a, i) => a.resolve(series === null ? null : oneValue(byArm.get(String(i)) ?? [], a.promql, this.failures)));
  }
}

export function createPrometheusMetrics(deps: PrometheusMetricsDeps): MetricsPort {
  const queries = new Counter({
    name: 'sair_policy_prometheus_queries_total',
    help: "Prometheus requests by outcome (ok, empty, error); a tick's built-in queries of one pipeline go as one request",
    labelNames: ['outcome'],
    registers: [deps.registry],
  });
  const duration = new Histogram({
    name: 'sair_policy_prometheus_query_duration_seconds',
    help: 'Prometheus query latency',
    buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [deps.registry],
  });

  /** Every series a query answers with, or null (and a failure) when it fails. */
  async function request(promql: string, failures: string[]): Promise<Series[] | null> {
    const end = duration.startTimer();
    try {
      const series = await deps.client.query(promql);
      queries.inc({ outcome: series.length === 0 ? 'empty' : 'ok' });
      return series;
    } catch (err) {
      queries.inc({ outcome: 'error' });
      failures.push(errorMessage(err));
      return null;
    } finally {
      end();
    }
  }

  /** A query that aggregates to one series: its value, null with no data. */
  async function run(promql: string, failures: string[]): Promise<number | null> {
    const series = await request(promql, failures);
    return series === null ? null : oneValue(series.map((s) => s.value), promql, failures);
  }

  /** The tenant's query confined to `namespace`, or null (and a failure) when it cannot be confined. */
  function confined(promql: string, namespace: string, field: string, failures: string[]): string | null {
    try {
      return confineToNamespace(promql, namespace, field);
    } catch (err) {
      failures.push(errorMessage(err));
      return null;
    }
  }

  /**
   * A stage's query templates, the values they are rendered with, each field's rendered query (null
   * where the stage has none) and its value. The tenant's text is confined: an override always, a
   * preset when the stage's selector is spliced into it.
   */
  function stageQuery(source: StageMetricsSource, windowSeconds: number, tick: TickQueries, failures: string[]) {
    const templates = stageQueries(source.preset, source.queries);
    const values = { namespace: source.namespace, deployment: source.deployment, selector: source.selector, windowSeconds };
    /** The rendered query, null where it cannot be confined; `own` when it holds the tenant's text. */
    const tenant = (template: string, field: string, override = false): { promql: string | null; own: boolean } => {
      const promql = render(template, values);
      const own = override || (!!source.selector?.trim() && template.includes('{selector}'));
      const where = override ? `metrics.queries.${field}` : `metrics.selector (in the ${field} query)`;
      return { promql: own ? confined(promql, source.namespace, `stage ${source.deployment}: ${where}`, failures) : promql, own };
    };
    const text = (field: StageQueryField) => {
      const t = templates[field];
      return t ? tenant(t, field, source.queries?.[field] !== undefined) : { promql: null, own: false };
    };
    /** The tenant's text alone, the built-in text with the tick's other queries. */
    const ask = ({ promql, own }: { promql: string | null; own: boolean }): Promise<number | null> =>
      promql === null ? Promise.resolve(null) : own ? run(promql, failures) : tick.add(promql);
    const q = (field: StageQueryField): Promise<number | null> => ask(text(field));
    return { templates, tenant, text, ask, q };
  }

  /**
   * A stage's metrics. Every query is asked before the first await, so the tick's built-in ones
   * are all in `tick` when it is sent. `alloc` is the stage's allocation as the cluster reports it
   * (it says whether the stage has a GPU share); `enforced` resolves to it at the enforced share.
   */
  async function stage(
    source: StageMetricsSource,
    alloc: StageAllocation | undefined,
    enforced: Promise<StageAllocation | undefined>,
    windowSeconds: number,
    tick: TickQueries,
    failures: string[],
  ): Promise<StageMetrics> {
    const { tenant, text, ask, q } = stageQuery(source, windowSeconds, tick, failures);
    const queue = text('queueLength');
    const batch = BATCH_QUERIES[source.preset];
    const none = { promql: null, own: false };
    const [arrival, throughput, queueLength, utilization, p50, p99, dropRate, gpu, queueGrowth, batchSize, batchServiceMs, atEnforced] = await Promise.all([
      q('arrivalRate'),
      q('throughput'),
      q('queueLength'),
      q('utilization'),
      q('latencyP50Ms'),
      q('latencyP99Ms'),
      q('dropRate'),
      alloc?.gpuCores != null ? q('gpuUtilization') : Promise.resolve(null),
      ask(queue.promql !== null ? { ...queue, promql: `deriv((${queue.promql})[${windowSeconds}s:])` } : none),
      ask(batch ? tenant(batch.batchSize, 'batchSize') : none),
      ask(batch ? tenant(batch.batchServiceMs, 'batchServiceMs') : none),
      enforced,
    ]);
    const ready = atEnforced?.readyReplicas ?? 0;
    // On a shared GPU the busy fraction is GPU time used over GPU time granted.
    const grantedGpus = atEnforced?.gpuCores != null ? (ready * atEnforced.gpuCores) / 100 : 0;
    const busy = gpu !== null && grantedGpus > 0 ? Math.min(1, gpu / grantedGpus) : utilization;
    const arrivalRate = arrival ?? (throughput !== null ? throughput + Math.max(0, queueGrowth ?? 0) : null);
    const capacityPerReplica = throughput !== null && busy !== null && busy > 0.05 && ready > 0 ? throughput / (ready * busy) : null;
    return {
      arrivalRate,
      throughput,
      queueLength,
      queueGrowth,
      utilization: busy === null ? null : Math.max(0, Math.min(1, busy)),
      latencyP50Ms: p50,
      latencyP99Ms: p99,
      capacityPerReplica,
      dropRate,
      // Only a sensible pair feeds the service-time model: at least one item per batch, some time.
      batchSize: batchSize !== null && batchSize >= 1 && batchServiceMs !== null && batchServiceMs > 0 ? batchSize : null,
      batchServiceMs: batchSize !== null && batchSize >= 1 && batchServiceMs !== null && batchServiceMs > 0 ? batchServiceMs : null,
    };
  }

  /**
   * The allocation with each GPU stage's share as the node agents enforce it: where a GPU had no
   * room for a raise, the agent clamped it, and the step must see the share the pods really run at
   * (its next decision then sizes replicas, not share, for the rest), with how many pods run
   * clamped: the room the stage waits for, which a cut of another stage may free. No series: the
   * asked share.
   */
  function enforced(source: PipelineMetricsSource, allocation: StageAllocation[], tick: TickQueries): Promise<StageAllocation>[] {
    return allocation.map(async (a, i) => {
      const s = source.stages[i];
      if (a.gpuCores === null || !s) return a;
      const at = { namespace: s.namespace, deployment: s.deployment, windowSeconds: 0 };
      const limitAsked = tick.add(render(GPU_CORES_ENFORCED_QUERY, at));
      const clampedAsked = tick.add(clampedPodsQuery(at, a.gpuCores));
      const [limit, clamped] = await Promise.all([limitAsked, clampedAsked]);
      if (limit == null || a.gpuCores === null || !(limit > 0) || limit >= a.gpuCores) return a;
      // Pods of a ReplicaSet on its way out may match too: never more clamped than replicas asked.
      const count = clamped != null && clamped >= 1 ? { clampedReplicas: Math.min(Math.round(clamped), a.replicas) } : {};
      return { ...a, gpuCores: limit, gpuCoresAsked: a.gpuCores, ...count };
    });
  }

  /**
   * An entry stage's arrival rate over the short range: its arrival query, or its throughput query
   * where it has none (an entry stage with room serves what arrives).
   */
  function recentArrival(source: StageMetricsSource, windowSeconds: number, tick: TickQueries, failures: string[]): Promise<number | null> {
    const { templates, q } = stageQuery(source, windowSeconds, tick, failures);
    return q(templates.arrivalRate != null ? 'arrivalRate' : 'throughput');
  }

  /** The last whole-GPU count each pipeline had, and when: a tick without one reuses it for a while. */
  const lastBilled = new Map<string, { gpus: number; at: number }>();
  /**
   * The GPUs a pipeline's pods hold this tick. A tick whose query finds nothing, after ticks that
   * did, reuses the last count for up to BILLED_GPUS_HOLD_MS, so the cost the reward compares does
   * not jump between packed and share-priced on one missed scrape; past that it is share-priced.
   */
  function billedGpus(pipelineId: string, now: number | null, failures: string[]): number | null {
    const t = deps.clock.now();
    if (now !== null && Number.isInteger(now) && now >= 0) {
      lastBilled.set(pipelineId, { gpus: now, at: t });
      return now;
    }
    const last = lastBilled.get(pipelineId);
    if (!last) return null;
    if (t - last.at > BILLED_GPUS_HOLD_MS) {
      lastBilled.delete(pipelineId);
      failures.push(`prometheus: no sair_device_plugin_container_gpu_slots for the pipeline's pods for ${Math.round((t - last.at) / 1000)} s; its cost is share-priced until the device plugin's metrics come back`);
      return null;
    }
    failures.push(`prometheus: no sair_device_plugin_container_gpu_slots for the pipeline's pods this tick; the cost counts the last ${last.gpus} GPUs`);
    return last.gpus;
  }

  return {
    async observe(pipeline: PipelineSpec): Promise<PipelineObservation> {
      const source = deps.sourceFor(pipeline.id);
      if (!source) throw new Error(`pipeline ${pipeline.id}: no metrics source (not an InferencePipeline or SAIR-managed HPA)`);
      const windowSeconds = Math.max(deps.minWindowSeconds ?? 60, pipeline.tickSeconds * 2);
      const failures: string[] = [];
      const reported = await deps.allocation(pipeline.id);
      const entryStages = pipeline.stages.filter((s) => s.upstream.length === 0);
      const recentSeconds = Math.min(deps.recentWindowSeconds ?? 30, windowSeconds);
      const own = (promql: string | undefined, field: string): Promise<number | null> => {
        const q = promql ? confined(promql, source.namespace, field, failures) : null;
        return q !== null ? run(q, failures) : Promise.resolve(null);
      };
      // Every query is asked first, then the tick's built-in ones go out as one request.
      const tick = new TickQueries(request, failures);
      const enforcedAllocation = enforced(source, reported, tick);
      const stagesAsked = Promise.all(source.stages.map((s, i) => stage(s, reported[i], enforcedAllocation[i] ?? Promise.resolve(reported[i]), windowSeconds, tick, failures)));
      const recentAsked = Promise.all(
        entryStages.map((s) => (source.stages[s.index] ? recentArrival(source.stages[s.index]!, recentSeconds, tick, failures) : Promise.resolve(null))),
      );
      const ownAsked = Promise.all([own(source.p99Query, 'spec.metrics.p99Query'), own(source.sloViolationQuery, 'spec.metrics.sloViolationQuery')]);
      // The whole GPUs the GPU stages' pods hold, from the device plugin: the bill, where it answers.
      const gpuStages = source.stages.filter((s, i) => reported[i]?.gpuCores != null && s.namespace === source.namespace);
      const gpusAsked = gpuStages.length > 0 ? tick.add(gpusInUseQuery(source.namespace, gpuStages.map((s) => s.deployment))) : Promise.resolve(null);
      await tick.send();
      const [allocation, stages, recent, [p99Direct, sloViolation], gpusNow] = await Promise.all([Promise.all(enforcedAllocation), stagesAsked, recentAsked, ownAsked, gpusAsked]);
      const gpus = billedGpus(pipeline.id, gpusNow, failures);
      const shareCost = costRate(pipeline, allocation);
      // Without an end-to-end query the sum of stage P99s bounds the pipeline's P99 from above.
      const stageP99s = stages.map((s) => s.latencyP99Ms);
      const p99Ms = source.p99Query ? p99Direct : stageP99s.every((v) => v !== null) ? stageP99s.reduce<number>((a, b) => a + (b ?? 0), 0) : null;
      const arrivalRate = sumOfAll(entryStages.map((s) => stages[s.index]?.arrivalRate ?? null));
      const recentArrivalRate = sumOfAll(recent);
      if (failures.length > 0) {
        deps.logger.warn({ pipeline: pipeline.id, failed: failures.length, first: failures[0] }, 'prometheus queries failed; those metrics are missing this tick');
      }
      return {
        time: deps.clock.now(),
        windowMs: windowSeconds * 1000,
        stages,
        allocation,
        p99Ms,
        arrivalRate,
        recentArrivalRate,
        recentWindowMs: recentSeconds * 1000,
        sloViolation: sloViolation === null ? null : Math.max(0, Math.min(1, sloViolation)),
        // Packed where the device plugin says which GPUs the pods hold (no per-GPU detail: gpuPacking
        // stays absent); share-priced where it does not answer.
        costRate: gpus !== null ? packedCostRate(pipeline, allocation, gpus) : shareCost,
        shareCostRate: shareCost,
        ...(gpus !== null ? { billedGpus: gpus } : {}),
      };
    },
  };
}
