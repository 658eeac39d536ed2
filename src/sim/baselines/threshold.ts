// Threshold scaling, the paper's simplest baseline: every 30 s, a stage above the high
// utilization mark gets one more replica and one below the low mark one fewer, with a per-stage
// cooldown after each change. It names the most utilized stage as the bottleneck, the naive
// detector SAIR's detection is compared with.
import type { Clock, ClusterPort, Controller, MetricsPort, PipelineSpec, ScalingAction, TickReport } from '../../core/ports.js';

export interface ThresholdOptions {
  high?: number;
  low?: number;
  cooldownMs?: number;
}

export function createThresholdController(ports: { cluster: ClusterPort; metrics: MetricsPort; clock: Clock }, opts: ThresholdOptions = {}): Controller {
  const high = opts.high ?? 0.8;
  const low = opts.low ?? 0.3;
  const cooldown = opts.cooldownMs ?? 60_000;
  const lastChange = new Map<number, number>();
  return {
    name: 'threshold',
    intervalMs: 30_000,
    async tick(pipeline: PipelineSpec): Promise<TickReport> {
      const now = ports.clock.now();
      const obs = await ports.metrics.observe(pipeline);
      const actions: ScalingAction[] = [];
      let bottleneck: number | null = null;
      let worst = -1;
      for (const stage of pipeline.stages) {
        const u = obs.stages[stage.index]!.utilization;
        if (u === null) continue;
        if (u > worst) {
          worst = u;
          bottleneck = stage.index;
        }
        const current = obs.allocation[stage.index]!.replicas;
        if (now - (lastChange.get(stage.index) ?? -Infinity) < cooldown) continue;
        const next = u > high ? current + 1 : u < low ? current - 1 : current;
        const bounded = Math.min(stage.maxReplicas, Math.max(Math.max(1, stage.minReplicas), next));
        if (bounded !== current) {
          await ports.cluster.apply(pipeline.id, { kind: 'replicas', stage: stage.index, replicas: bounded });
          lastChange.set(stage.index, now);
          actions.push({ kind: 'replicas', stage: stage.index, replicas: bounded });
        }
      }
      return { pipelineId: pipeline.id, time: now, actions, bottleneck };
    },
  };
}
