// Static replicas: the allocation never changes. `static` keeps each stage at a fixed count
// (its initial, its minimum, or a given list); `static-peak` is sized once, from the model and the
// workload's known peak, so that every stage stays below a target utilization at the peak. The
// latter reads SimKnowledge (it is told the peak), as an operator provisioning for peak would be.
import type { Clock, Controller, PipelineSpec, TickReport } from '../../core/ports.js';
import { maxThroughputPerReplica } from '../pipeline.js';
import type { SimPorts } from '../run.js';

export interface StaticOptions {
  /** `initial` (default): each stage's initial replicas; `min`: its minimum; or a count per stage. */
  replicas?: 'initial' | 'min' | number[];
  /** GPU share per stage in percent (null for CPU stages); default: the stage's initial share. */
  gpuCores?: (number | null)[];
  name?: string;
}

class StaticController implements Controller {
  readonly intervalMs = 30_000;
  constructor(
    readonly name: string,
    private readonly clock: Clock,
  ) {}
  tick(pipeline: PipelineSpec): Promise<TickReport> {
    return Promise.resolve({ pipelineId: pipeline.id, time: this.clock.now(), actions: [], bottleneck: null, reason: 'static allocation' });
  }
}

export function createStaticController(ports: SimPorts, opts: StaticOptions = {}): Controller {
  const { model } = ports.knowledge;
  const mode = opts.replicas ?? 'initial';
  model.stages.forEach((s, i) => {
    const n = Array.isArray(mode) ? mode[i] ?? s.replicas.initial : mode === 'min' ? Math.max(s.replicas.min, 1) : s.replicas.initial;
    ports.initial.provision(i, n, opts.gpuCores?.[i] ?? undefined);
  });
  return new StaticController(opts.name ?? (mode === 'min' ? 'static-min' : 'static'), ports.clock);
}

/** Replicas (and the stage's maximum GPU share) sized so that the peak load runs at `targetUtilization`. */
export function createStaticPeakController(ports: SimPorts, opts: { targetUtilization?: number } = {}): Controller {
  const { model, workload, durationMs } = ports.knowledge;
  const target = opts.targetUtilization ?? 0.7;
  const peak = workload.peakRate(durationMs);
  for (const s of model.stages) {
    const share = s.gpuCores ? s.gpuCores.max / 100 : 1;
    const need = Math.ceil(peak / (maxThroughputPerReplica(s, share) * target));
    const n = Math.min(s.replicas.max, Math.max(s.replicas.min, 1, need));
    ports.initial.provision(s.index, n, s.gpuCores ? s.gpuCores.max : undefined);
  }
  return new StaticController('static-peak', ports.clock);
}
