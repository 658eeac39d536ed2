// MetricsPort over Prometheus: each tick, the stage templates are rendered for the pipeline's
// Deployments and run concurrently. A query that fails, times out or finds no data gives a null
// field, and the controller holds rather than act on a guess. A tenant's own PromQL (its
// pipeline's p99Query and sloViolationQuery, a stage's overrides or extra selector) is confined
// to the pipeline's namespace first: it runs with the policy server's identity.
import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';
import type { MetricPreset, StageQueryField } from '../k8s/pipeline-resource.js';
import type { Clock, MetricsPort, PipelineObservation, PipelineSpec, StageAllocation, StageMetrics } from '../../core/ports.js';
import type { PrometheusClient } from './client.js';
import { confineToNamespace } from './confine.js';
import { BATCH_QUERIES, GPU_CORES_ENFORCED_QUERY, render, stageQueries, type StageQueries } from './queries.js';

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

export function createPrometheusMetrics(deps: PrometheusMetricsDeps): MetricsPort {
  const queries = new Counter({
    name: 'sair_policy_prometheus_queries_total',
    help: 'Prometheus queries by outcome (ok, empty, error)',
    labelNames: ['outcome'],
    registers: [deps.registry],
  });
  const duration = new Histogram({
    name: 'sair_policy_prometheus_query_duration_seconds',
    help: 'Prometheus query latency',
    buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [deps.registry],
  });

  async function run(promql: string, failures: string[]): Promise<number | null> {
    const end = duration.startTimer();
    try {
      const v = await deps.client.value(promql);
      queries.inc({ outcome: v === null ? 'empty' : 'ok' });
      return v;
    } catch (err) {
      queries.inc({ outcome: 'error' });
      failures.push(errorMessage(err));
      return null;
    } finally {
      end();
    }
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
  function stageQuery(source: StageMetricsSource, windowSeconds: number, failures: string[]) {
    const templates = stageQueries(source.preset, source.queries);
    const values = { namespace: source.namespace, deployment: source.deployment, selector: source.selector, windowSeconds };
    const tenant = (template: string, field: string, override = false): string | null => {
      const promql = render(template, values);
      const own = override || (!!source.selector?.trim() && template.includes('{selector}'));
      const where = override ? `metrics.queries.${field}` : `metrics.selector (in the ${field} query)`;
      return own ? confined(promql, source.namespace, `stage ${source.deployment}: ${where}`, failures) : promql;
    };
    const text = (field: StageQueryField): string | null => {
      const t = templates[field];
      return t ? tenant(t, field, source.queries?.[field] !== undefined) : null;
    };
    const q = (field: StageQueryField): Promise<number | null> => {
      const promql = text(field);
      return promql !== null ? run(promql, failures) : Promise.resolve(null);
    };
    return { templates, tenant, text, q };
  }

  async function stage(source: StageMetricsSource, alloc: StageAllocation | undefined, windowSeconds: number, failures: string[]): Promise<StageMetrics> {
    const { tenant, text, q } = stageQuery(source, windowSeconds, failures);
    const queue = text('queueLength');
    const batch = BATCH_QUERIES[source.preset];
    const batchSizeQuery = batch ? tenant(batch.batchSize, 'batchSize') : null;
    const batchServiceQuery = batch ? tenant(batch.batchServiceMs, 'batchServiceMs') : null;
    const [arrival, throughput, queueLength, utilization, p50, p99, dropRate, gpu, queueGrowth, batchSize, batchServiceMs] = await Promise.all([
      q('arrivalRate'),
      q('throughput'),
      q('queueLength'),
      q('utilization'),
      q('latencyP50Ms'),
      q('latencyP99Ms'),
      q('dropRate'),
      alloc?.gpuCores != null ? q('gpuUtilization') : Promise.resolve(null),
      queue !== null ? run(`deriv((${queue})[${windowSeconds}s:])`, failures) : Promise.resolve(null),
      batchSizeQuery !== null ? run(batchSizeQuery, failures) : Promise.resolve(null),
      batchServiceQuery !== null ? run(batchServiceQuery, failures) : Promise.resolve(null),
    ]);
    const ready = alloc?.readyReplicas ?? 0;
    // On a shared GPU the busy fraction is GPU time used over GPU time granted.
    const granted = alloc?.gpuCores != null ? (ready * alloc.gpuCores) / 100 : 0;
    const busy = gpu !== null && granted > 0 ? Math.min(1, gpu / granted) : utilization;
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
   * (its next decision then sizes replicas, not share, for the rest). No series: the asked share.
   */
  async function enforced(source: PipelineMetricsSource, allocation: StageAllocation[], failures: string[]): Promise<StageAllocation[]> {
    const limits = await Promise.all(
      allocation.map((a, i) => {
        const s = source.stages[i];
        if (a.gpuCores === null || !s) return Promise.resolve(null);
        return run(render(GPU_CORES_ENFORCED_QUERY, { namespace: s.namespace, deployment: s.deployment, windowSeconds: 0 }), failures);
      }),
    );
    return allocation.map((a, i) => {
      const limit = limits[i];
      return limit != null && a.gpuCores !== null && limit > 0 && limit < a.gpuCores ? { ...a, gpuCores: limit, gpuCoresAsked: a.gpuCores } : a;
    });
  }

  /**
   * An entry stage's arrival rate over the short range: its arrival query, or its throughput query
   * where it has none (an entry stage with room serves what arrives).
   */
  function recentArrival(source: StageMetricsSource, windowSeconds: number, failures: string[]): Promise<number | null> {
    const { templates, q } = stageQuery(source, windowSeconds, failures);
    return q(templates.arrivalRate != null ? 'arrivalRate' : 'throughput');
  }

  return {
    async observe(pipeline: PipelineSpec): Promise<PipelineObservation> {
      const source = deps.sourceFor(pipeline.id);
      if (!source) throw new Error(`pipeline ${pipeline.id}: no metrics source (not an InferencePipeline or SAIR-managed HPA)`);
      const windowSeconds = Math.max(deps.minWindowSeconds ?? 60, pipeline.tickSeconds * 2);
      const failures: string[] = [];
      const allocation = await enforced(source, await deps.allocation(pipeline.id), failures);
      const entryStages = pipeline.stages.filter((s) => s.upstream.length === 0);
      const recentSeconds = Math.min(deps.recentWindowSeconds ?? 30, windowSeconds);
      // The short-range entry rates go out with the stage queries, not a round trip after them.
      const [stages, recent] = await Promise.all([
        Promise.all(source.stages.map((s, i) => stage(s, allocation[i], windowSeconds, failures))),
        Promise.all(entryStages.map((s) => (source.stages[s.index] ? recentArrival(source.stages[s.index]!, recentSeconds, failures) : Promise.resolve(null)))),
      ]);
      const own = (promql: string | undefined, field: string): Promise<number | null> => {
        const q = promql ? confined(promql, source.namespace, field, failures) : null;
        return q !== null ? run(q, failures) : Promise.resolve(null);
      };
      const [p99Direct, sloViolation] = await Promise.all([own(source.p99Query, 'spec.metrics.p99Query'), own(source.sloViolationQuery, 'spec.metrics.sloViolationQuery')]);
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
        // No per-GPU packing here yet (the device plugin's metrics count slots per GPU, not which
        // pipeline's shares fill them), so the cost is share-priced and gpuPacking is absent.
        costRate: costRate(pipeline, allocation),
        shareCostRate: costRate(pipeline, allocation),
      };
    },
  };
}
