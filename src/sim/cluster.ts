// ClusterPort over the simulation: the same contract as the Kubernetes adapter. Actions are
// absolute targets, applied at once to the desired state; replicas then take the scheduling delay
// and the cold start to become ready, and a new GPU share applies to batches that start after it
// (the node agent rewrites the control file live). Invalid requests are refused with an
// UpstreamError carrying the status the API server would give (404 unknown, 422 invalid). GPU
// stages also say how many replicas wait for GPU room and how many run clamped below their share.
import { UpstreamError } from '../common/errors.js';
import type { ClusterPort, PipelineSpec, ScalingAction, StageAllocation, TickReport } from '../core/ports.js';
import type { Simulation } from './simulator.js';

export class SimCluster implements ClusterPort {
  readonly reports: TickReport[] = [];
  readonly applied: { time: number; action: ScalingAction }[] = [];

  constructor(
    private readonly sim: Simulation,
    private readonly spec: PipelineSpec,
    private readonly onReport?: (report: TickReport) => void,
  ) {}

  listPipelines(): Promise<PipelineSpec[]> {
    return Promise.resolve([structuredClone(this.spec)]);
  }

  allocation(pipelineId: string): Promise<StageAllocation[]> {
    try {
      this.check(pipelineId);
    } catch (err) {
      return Promise.reject(err);
    }
    return Promise.resolve(this.currentAllocation());
  }

  currentAllocation(): StageAllocation[] {
    return this.spec.stages.map((s) => {
      const a = this.sim.allocation(s.index);
      if (a.gpuCores === null) return { replicas: a.replicas, readyReplicas: a.readyReplicas, gpuCores: a.gpuCores };
      // As the Prometheus adapter reports it: the share the node agents enforce, and the one asked
      // for where a replica's GPU had no room for it.
      const clamped = a.enforcedGpuCores !== null && a.enforcedGpuCores < a.gpuCores;
      return {
        replicas: a.replicas,
        readyReplicas: a.readyReplicas,
        gpuCores: clamped ? a.enforcedGpuCores : a.gpuCores,
        ...(clamped ? { gpuCoresAsked: a.gpuCores } : {}),
        pendingReplicas: a.pendingReplicas,
        clampedReplicas: a.clampedReplicas,
      };
    });
  }

  apply(pipelineId: string, action: ScalingAction): Promise<void> {
    try {
      this.check(pipelineId);
      if (action.kind === 'hold') return Promise.resolve();
      const stage = this.spec.stages[action.stage];
      if (!Number.isInteger(action.stage) || stage === undefined) {
        throw new UpstreamError('simulated cluster', `stage ${action.stage} does not exist; stages are 0..${this.spec.stages.length - 1}`, 404);
      }
      if (action.kind === 'replicas') {
        if (!Number.isInteger(action.replicas) || action.replicas < 0) {
          throw new UpstreamError('simulated cluster', `stage ${action.stage}: replicas ${action.replicas} is not an integer >= 0`, 422);
        }
        this.sim.setReplicas(action.stage, action.replicas);
      } else if (action.kind === 'gpuCores') {
        if (stage.gpuCores === undefined) {
          throw new UpstreamError('simulated cluster', `stage ${action.stage} (${stage.name}) has no GPU share to change`, 422);
        }
        if (!Number.isInteger(action.gpuCores) || action.gpuCores < 1 || action.gpuCores > 100) {
          throw new UpstreamError('simulated cluster', `stage ${action.stage}: gpuCores ${action.gpuCores} is not an integer from 1 to 100`, 422);
        }
        this.sim.setGpuCores(action.stage, action.gpuCores);
      } else {
        throw new UpstreamError('simulated cluster', `unknown action kind ${JSON.stringify((action as { kind: unknown }).kind)}`, 422);
      }
      this.applied.push({ time: this.sim.now, action: { ...action } });
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  report(pipelineId: string, report: TickReport): Promise<void> {
    try {
      this.check(pipelineId);
    } catch (err) {
      return Promise.reject(err);
    }
    this.reports.push(report);
    this.onReport?.(report);
    return Promise.resolve();
  }

  private check(pipelineId: string): void {
    if (pipelineId !== this.spec.id) throw new UpstreamError('simulated cluster', `pipeline ${pipelineId} not found; this simulation runs ${this.spec.id}`, 404);
  }
}
