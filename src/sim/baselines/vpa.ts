// VPA-like vertical scaling of GPU shares: every 60 s (the recommender's cadence) each GPU stage's
// share is resized toward the one that would put its utilization at the target, rounded to the
// stage's step and kept in its bounds, once the gap exceeds the tolerance. Shares change in place
// (as SAIR's control file allows, like in-place pod resize), replicas never change.
import type { Clock, ClusterPort, Controller, MetricsPort, PipelineSpec, ScalingAction, TickReport } from '../../core/ports.js';

export interface VpaOptions {
  targetUtilization?: number;
  tolerance?: number;
  intervalMs?: number;
}

export function createVpaController(ports: { cluster: ClusterPort; metrics: MetricsPort; clock: Clock }, opts: VpaOptions = {}): Controller {
  const target = opts.targetUtilization ?? 0.6;
  const tolerance = opts.tolerance ?? 0.1;
  return {
    name: 'vpa',
    intervalMs: opts.intervalMs ?? 60_000,
    async tick(pipeline: PipelineSpec): Promise<TickReport> {
      const now = ports.clock.now();
      const obs = await ports.metrics.observe(pipeline);
      const actions: ScalingAction[] = [];
      for (const stage of pipeline.stages) {
        const bounds = stage.gpuCores;
        const cores = obs.allocation[stage.index]!.gpuCores;
        const u = obs.stages[stage.index]!.utilization;
        if (!bounds || cores === null || u === null) continue;
        const ratio = u / target;
        if (Math.abs(1 - ratio) <= tolerance) continue;
        const raw = cores * ratio;
        const stepped = Math.round(raw / bounds.step) * bounds.step;
        const next = Math.min(bounds.max, Math.max(bounds.min, stepped));
        if (next !== cores) {
          await ports.cluster.apply(pipeline.id, { kind: 'gpuCores', stage: stage.index, gpuCores: next });
          actions.push({ kind: 'gpuCores', stage: stage.index, gpuCores: next });
        }
      }
      return { pipelineId: pipeline.id, time: now, actions, bottleneck: null };
    },
  };
}
