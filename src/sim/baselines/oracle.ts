// The oracle: it reads SimKnowledge (the stage models and the future workload), which no real
// controller can, and every 15 s sets each stage to the cheapest (replicas, GPU share) whose
// full-batch capacity keeps the peak rate of the coming lead time (scheduling + cold start + one
// interval) under the target utilization. Pre-scaling ahead of cold starts with exact knowledge
// of the future makes its cost a practical lower bound for controllers that meet the SLO. It names
// the bottleneck with the ground-truth rule, which checks the scoring end to end.
import type { Controller, PipelineSpec, ScalingAction, TickReport } from '../../core/ports.js';
import { batchTimeMs, maxThroughputPerReplica, type PipelineModel, type StageModel } from '../pipeline.js';
import type { SimPorts } from '../run.js';

export interface OracleOptions {
  targetUtilization?: number;
  intervalMs?: number;
}

interface Plan {
  replicas: number;
  gpuCores: number | null;
}

/**
 * The cheapest allocation of one stage whose capacity at `target` utilization covers `rate` and
 * whose full batch (plus the batch timeout) fits the stage's share of the SLO, `budgetMs`.
 */
export function cheapestPlan(stage: StageModel, rate: number, target: number, cost: { gpuHour: number; replicaHour: number }, budgetMs = Infinity): Plan {
  const min = Math.max(1, stage.replicas.min);
  const max = stage.replicas.max;
  if (!stage.gpuCores) {
    const n = Math.ceil(rate / (maxThroughputPerReplica(stage, 1) * target));
    return { replicas: Math.min(max, Math.max(min, n)), gpuCores: null };
  }
  const g = stage.gpuCores;
  let best: Plan | null = null;
  let bestCost = Infinity;
  for (let cores = g.min; cores <= g.max; cores += g.step) {
    if (batchTimeMs(stage, stage.maxBatch, cores / 100) + stage.batchTimeoutMs > budgetMs) continue;
    const n = Math.max(min, Math.ceil(rate / (maxThroughputPerReplica(stage, cores / 100) * target)));
    if (n > max) continue;
    const c = n * (cost.replicaHour + (cost.gpuHour * cores) / 100);
    if (c < bestCost) {
      bestCost = c;
      best = { replicas: n, gpuCores: cores };
    }
  }
  if (best) return best;
  // Nothing fits the budget or the bounds: the full share, as many replicas as the rate needs.
  const n = Math.ceil(rate / (maxThroughputPerReplica(stage, g.max / 100) * target));
  return { replicas: Math.min(max, Math.max(min, n)), gpuCores: g.max };
}

/** Stages on the longest path through the graph. */
function depth(model: PipelineModel): number {
  const d: number[] = [];
  for (const s of model.stages) d[s.index] = 1 + Math.max(0, ...s.upstream.map((u) => d[u] ?? 0));
  return Math.max(...d);
}

export function createOracleController(ports: SimPorts, opts: OracleOptions = {}): Controller {
  const { model, workload, durationMs } = ports.knowledge;
  const target = opts.targetUtilization ?? 0.75;
  const interval = opts.intervalMs ?? 15_000;
  const budget = model.sloP99Ms / depth(model);
  const peakAhead = (from: number, stage: StageModel): number => {
    const until = Math.min(durationMs, from + model.schedulingDelayMs + stage.coldStartMs * 1.3 + 2 * interval);
    let m = 0;
    for (let t = from; t <= until; t += 1000) m = Math.max(m, workload.rate.at(t));
    return m;
  };
  for (const stage of model.stages) {
    const plan = cheapestPlan(stage, peakAhead(0, stage), target, model.cost, budget);
    ports.initial.provision(stage.index, plan.replicas, plan.gpuCores ?? undefined);
  }
  return {
    name: 'oracle',
    intervalMs: interval,
    async tick(pipeline: PipelineSpec): Promise<TickReport> {
      const now = ports.clock.now();
      const alloc = await ports.cluster.allocation(pipeline.id);
      // Ground-truth rule on the allocation as found: highest expected load over ready capacity.
      const lambda = Math.max(workload.meanRate(Math.max(0, now - interval), now), 1e-9);
      let bottleneck = 0;
      let worst = -1;
      for (const stage of model.stages) {
        const a = alloc[stage.index]!;
        const cap = a.readyReplicas * maxThroughputPerReplica(stage, (a.gpuCores ?? 100) / 100);
        const ratio = cap > 0 ? lambda / cap : Infinity;
        if (ratio > worst) {
          worst = ratio;
          bottleneck = stage.index;
        }
      }
      const actions: ScalingAction[] = [];
      for (const stage of model.stages) {
        const plan = cheapestPlan(stage, peakAhead(now, stage), target, model.cost, budget);
        const a = alloc[stage.index]!;
        // A lower share waits until the planned replicas are ready, so capacity never dips.
        const lowerTooSoon = plan.gpuCores !== null && a.gpuCores !== null && plan.gpuCores < a.gpuCores && a.readyReplicas < plan.replicas;
        if (plan.gpuCores !== null && a.gpuCores !== null && plan.gpuCores !== a.gpuCores && !lowerTooSoon) {
          actions.push({ kind: 'gpuCores', stage: stage.index, gpuCores: plan.gpuCores });
        }
        if (plan.replicas !== a.replicas) actions.push({ kind: 'replicas', stage: stage.index, replicas: plan.replicas });
      }
      for (const action of actions) await ports.cluster.apply(pipeline.id, action);
      return { pipelineId: pipeline.id, time: now, actions, bottleneck };
    },
  };
}
