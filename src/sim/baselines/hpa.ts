// Kubernetes HPA v2 as a controller on the ports: one HPA per stage, each syncing every 15 s on
// the stage's utilization (busy fraction of ready replicas: CPU for CPU stages, GPU SM time for
// GPU stages) with the default behavior. Not-ready replicas (pending, starting) count as
// unready pods; a stage with no metric at all is left alone, as the HPA does when
// it cannot get metrics. It never changes GPU shares and does not name a bottleneck.
import type { Controller, MetricsPort, ClusterPort, PipelineSpec, ScalingAction, TickReport, Clock } from '../../core/ports.js';
import { DEFAULT_BEHAVIOR, DEFAULT_TOLERANCE, HpaState, replicasForPerPodTarget, type HpaBehavior } from './hpa-algorithm.js';

export interface HpaOptions {
  /** Target utilization, 0..1 (averageUtilization / 100). */
  targetUtilization?: number;
  tolerance?: number;
  behavior?: HpaBehavior;
  syncPeriodMs?: number;
}

export function createHpaController(ports: { cluster: ClusterPort; metrics: MetricsPort; clock: Clock }, opts: HpaOptions = {}): Controller {
  const target = opts.targetUtilization ?? 0.6;
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  const behavior = opts.behavior ?? DEFAULT_BEHAVIOR;
  const states = new Map<number, HpaState>();
  return {
    name: 'hpa',
    intervalMs: opts.syncPeriodMs ?? 15_000,
    async tick(pipeline: PipelineSpec): Promise<TickReport> {
      const now = ports.clock.now();
      const obs = await ports.metrics.observe(pipeline);
      const actions: ScalingAction[] = [];
      const notes: string[] = [];
      for (const stage of pipeline.stages) {
        const alloc = obs.allocation[stage.index]!;
        const minReplicas = Math.max(1, alloc.hpa?.minReplicas ?? stage.minReplicas);
        const maxReplicas = alloc.hpa?.maxReplicas ?? stage.maxReplicas;
        const current = alloc.replicas;
        // An HPA whose target is scaled to zero is inactive.
        if (current === 0) continue;
        let state = states.get(stage.index);
        if (!state) states.set(stage.index, (state = new HpaState(behavior)));
        let desired: number;
        if (current > maxReplicas) desired = maxReplicas;
        else if (current < minReplicas) desired = minReplicas;
        else {
          const usage = obs.stages[stage.index]!.utilization;
          const ready = Math.min(alloc.readyReplicas, current);
          if (usage === null || ready === 0) {
            notes.push(`stage ${stage.index}: no utilization metric from a ready pod (FailedGetResourceMetric)`);
            continue;
          }
          desired = replicasForPerPodTarget({ currentReplicas: current, readyPods: ready, unreadyPods: Math.max(0, current - ready), usage, target, tolerance });
          desired = state.normalize(now, current, desired, minReplicas, maxReplicas);
        }
        if (desired !== current) {
          await ports.cluster.apply(pipeline.id, { kind: 'replicas', stage: stage.index, replicas: desired });
          state.recordScale(now, current, desired);
          actions.push({ kind: 'replicas', stage: stage.index, replicas: desired });
        }
      }
      return { pipelineId: pipeline.id, time: now, actions, bottleneck: null, ...(notes.length > 0 ? { reason: notes.join('; ') } : {}) };
    },
  };
}
