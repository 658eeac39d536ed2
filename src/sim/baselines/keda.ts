// KEDA-like scaling on queue length: KEDA polls the queue every 30 s and feeds it to an HPA as an
// External metric with an AverageValue target (items waiting per replica); the HPA syncs every
// 15 s on the last polled value, with the default behavior (so the 300 s scale-down
// stabilization applies). Replicas only; no GPU shares, no bottleneck named.
import type { Clock, ClusterPort, Controller, MetricsPort, PipelineSpec, ScalingAction, TickReport } from '../../core/ports.js';
import { DEFAULT_BEHAVIOR, DEFAULT_TOLERANCE, HpaState, replicasForExternalAverage } from './hpa-algorithm.js';

export interface KedaOptions {
  /** Items waiting per replica (the trigger's target value). */
  queuePerReplica?: number;
  pollingIntervalMs?: number;
}

export function createKedaController(ports: { cluster: ClusterPort; metrics: MetricsPort; clock: Clock }, opts: KedaOptions = {}): Controller {
  const perReplica = opts.queuePerReplica ?? 10;
  const polling = opts.pollingIntervalMs ?? 30_000;
  const states = new Map<number, HpaState>();
  let lastPoll = -Infinity;
  let polled: (number | null)[] = [];
  return {
    name: 'keda',
    intervalMs: 15_000,
    async tick(pipeline: PipelineSpec): Promise<TickReport> {
      const now = ports.clock.now();
      const obs = await ports.metrics.observe(pipeline);
      if (now - lastPoll >= polling) {
        polled = obs.stages.map((s) => s.queueLength);
        lastPoll = now;
      }
      const actions: ScalingAction[] = [];
      for (const stage of pipeline.stages) {
        const alloc = obs.allocation[stage.index]!;
        const current = alloc.replicas;
        const minReplicas = Math.max(1, stage.minReplicas);
        const queue = polled[stage.index];
        if (current === 0 || queue === null || queue === undefined) continue;
        let state = states.get(stage.index);
        if (!state) states.set(stage.index, (state = new HpaState(DEFAULT_BEHAVIOR)));
        let desired = replicasForExternalAverage({ currentReplicas: current, total: queue, targetPerPod: perReplica, tolerance: DEFAULT_TOLERANCE });
        desired = state.normalize(now, current, desired, minReplicas, stage.maxReplicas);
        if (desired !== current) {
          await ports.cluster.apply(pipeline.id, { kind: 'replicas', stage: stage.index, replicas: desired });
          state.recordScale(now, current, desired);
          actions.push({ kind: 'replicas', stage: stage.index, replicas: desired });
        }
      }
      return { pipelineId: pipeline.id, time: now, actions, bottleneck: null };
    },
  };
}
