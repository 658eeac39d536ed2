// Simulated load for the end-to-end tests: a queueing model of a pipeline's stages that answers
// the PromQL the policy server's Prometheus MetricsPort sends (generic preset plus an arrivalRate
// override) through test/support/fake-prometheus.ts. The model reads the live allocation each time
// it is asked (replicas from the Deployments, GPU share from the pods), so the series move when the
// policy server acts, as a real Prometheus's would a scrape later. It is a stand-in for traffic and
// for the serving stack's metrics, not for anything SAIR does.
import type { FakePrometheus } from './fake-prometheus.js';

/** The arrivalRate override an InferencePipeline stage carries in these tests (and the quickstart). */
export const ARRIVAL_QUERY = 'sum(rate(app_requests_received_total{namespace="{namespace}",pod=~"{pods}"}[{window}]))';

export interface ModelStage {
  deployment: string;
  /** Requests per second one replica serves at a whole GPU (GPU stages) or flat out (CPU stages). */
  ratePerReplica: number;
  /** P50 in ms of an idle replica. */
  baseLatencyMs: number;
}

export interface LiveAllocation {
  readyReplicas: number;
  /** Percent of a GPU per replica; null for a CPU stage. */
  gpuCores: number | null;
}

export interface StageSeries {
  arrival: number;
  throughput: number;
  utilization: number;
  gpuUsed: number | null;
  p50Ms: number;
  p99Ms: number;
}

/** Stages in a chain: each stage is offered what the one before it served. */
export function modelSeries(stages: readonly ModelStage[], alloc: readonly LiveAllocation[], arrivalRate: number): StageSeries[] {
  const out: StageSeries[] = [];
  let offered = arrivalRate;
  stages.forEach((s, i) => {
    const a = alloc[i] ?? { readyReplicas: 0, gpuCores: null };
    const share = a.gpuCores === null ? 1 : a.gpuCores / 100;
    const capacity = a.readyReplicas * share * s.ratePerReplica;
    const throughput = Math.min(offered, capacity);
    const rho = capacity > 0 ? offered / capacity : Infinity;
    // M/M/1-like growth of the wait as the stage saturates; past saturation the queue grows without bound.
    const p50Ms = rho < 1 ? s.baseLatencyMs * (1 + rho / (2 * (1 - rho))) : 2_000;
    out.push({
      arrival: offered,
      throughput,
      utilization: capacity > 0 ? throughput / capacity : 0,
      gpuUsed: a.gpuCores === null ? null : throughput / s.ratePerReplica,
      p50Ms,
      p99Ms: rho < 1 ? Math.min(3 * p50Ms, 6_000) : 6_000,
    });
    offered = throughput;
  });
  return out;
}

export class SimulatedLoad {
  arrivalRate: number;

  constructor(
    private readonly stages: readonly ModelStage[],
    private readonly allocation: () => LiveAllocation[],
    initialRate: number,
  ) {
    this.arrivalRate = initialRate;
  }

  series(): StageSeries[] {
    return modelSeries(this.stages, this.allocation(), this.arrivalRate);
  }

  /** Answers every stage query of the generic preset (and ARRIVAL_QUERY) on `prom`. */
  serve(prom: FakePrometheus): void {
    prom.on(
      (q) => this.stageOf(q) !== undefined,
      (q) => {
        const s = this.series()[this.stageOf(q)!]!;
        const v = (value: number | null) => ({ vector: value === null ? [] : [{ value }] });
        if (q.includes('app_requests_received_total')) return v(s.arrival);
        if (q.includes('code=~')) return v(0);
        if (q.includes('histogram_quantile(0.5,')) return v(s.p50Ms);
        if (q.includes('histogram_quantile(0.99,')) return v(s.p99Ms);
        if (q.includes('sair_device_plugin_pod_gpu_kernel_seconds_total')) return v(s.gpuUsed);
        if (q.includes('container_cpu_usage_seconds_total')) return v(s.utilization);
        if (q.includes('http_request_duration_seconds_count')) return v(s.throughput);
        return v(null);
      },
    );
  }

  private stageOf(query: string): number | undefined {
    const i = this.stages.findIndex((s) => query.includes(`pod=~"${s.deployment}-`));
    return i < 0 ? undefined : i;
  }
}
