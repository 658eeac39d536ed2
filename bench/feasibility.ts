// The search behind bench:policy's feasibility block: which static allocations to try in a cell
// whose load does not change over time, and what each costs. Pure: the bench runs the candidates.
// Under stationary load a static allocation is about the best any controller can hold, so the
// lowest P99 among them within a budget shows which P99 targets are within reach at all.
import { builtinWorkloadFile } from '../src/sim/builtin-workloads.js';
import { maxThroughputPerReplica, type PipelineModel, type StageModel } from '../src/sim/pipeline.js';
import { GpuPool } from '../src/sim/placement.js';

/** What createStaticController takes: replicas per stage, GPU share in percent (null on CPU stages). */
export interface Allocation {
  replicas: number[];
  gpuCores: (number | null)[];
}

/**
 * CPU stages are sized for these utilizations of a replica's capacity at the mean rate. The
 * lowest is there because a CPU replica costs little: in nlp-bert/poisson a second postprocess
 * replica (0.05 $/h) takes about 0.7 ms off a P99 of 38 ms, which decides a close call.
 */
export const CPU_UTILIZATIONS = [0.6, 0.3, 0.15, 0.05];
/** Built-in workload kinds whose rate does not change over time. */
export const STATIONARY_KINDS = ['poisson', 'constant', 'gamma'];

/** Why a workload gets no feasibility search, or null when it gets one. */
export function notStationary(workload: string): string | null {
  const kind = builtinWorkloadFile(workload)?.kind;
  if (kind === undefined) return 'not a built-in workload, so its stationarity is unknown';
  if (!STATIONARY_KINDS.includes(kind)) {
    return `${kind} load varies over time, so a static allocation is not the best a controller can do and bounds nothing`;
  }
  return null;
}

const share = (a: Allocation, i: number): number => (a.gpuCores[i] ?? 100) / 100;

/** Share-priced dollars per hour: replicas x (replicaHour + gpuHour x share on GPU stages). */
export function allocationCost(model: PipelineModel, a: Allocation): number {
  const { gpuHour, replicaHour } = model.cost;
  return model.stages.reduce(
    (sum, s, i) => sum + a.replicas[i]! * (replicaHour + (s.kind === 'gpu' ? gpuHour * share(a, i) : 0)),
    0,
  );
}

/**
 * Packed dollars per hour, as a cluster bills it and the bench's targets count it: the GPU
 * replicas placed stage by stage on the model's cluster (as a static start places them), each
 * whole GPU in use at gpuHour, each replica placed at replicaHour.
 */
export function packedAllocationCost(model: PipelineModel, a: Allocation): number {
  const { gpuHour, replicaHour } = model.cost;
  const pool = new GpuPool(model.cluster);
  let placed = 0;
  model.stages.forEach((s, i) => {
    for (let k = 0; k < a.replicas[i]!; k++) {
      if (s.kind !== 'gpu' || pool.place(pool.occupancyOf(a.gpuCores[i] ?? 100)) >= 0) placed++;
    }
  });
  return placed * replicaHour + pool.gpusInUse * gpuHour;
}

/** Requests per second the pipeline finishes at full batches: its slowest stage (every stage sees every request). */
export function allocationCapacity(model: PipelineModel, a: Allocation): number {
  return Math.min(...model.stages.map((s, i) => a.replicas[i]! * maxThroughputPerReplica(s, share(a, i))));
}

/** Every stage at its most replicas and largest share: the lowest P99 at any cost. */
export function largestAllocation(model: PipelineModel): Allocation {
  return {
    replicas: model.stages.map((s) => s.replicas.max),
    gpuCores: model.stages.map((s) => s.gpuCores?.max ?? null),
  };
}

export function describeAllocation(model: PipelineModel, a: Allocation): string {
  return model.stages
    .map((s, i) =>
      s.kind === 'gpu' ? `${s.name} ${a.replicas[i]}x${a.gpuCores[i]}%` : `${s.name} ${a.replicas[i]}`,
    )
    .join(', ');
}

const clampReplicas = (s: StageModel, n: number) => Math.min(s.replicas.max, Math.max(s.replicas.min, 1, n));

/** CPU replicas per stage for each of CPU_UTILIZATIONS at `rate` (GPU stages 0), without repeats. */
function cpuLevels(model: PipelineModel, rate: number): number[][] {
  const levels = CPU_UTILIZATIONS.map((u) =>
    model.stages.map((s) =>
      s.kind === 'cpu' ? clampReplicas(s, Math.ceil(rate / (maxThroughputPerReplica(s, 1) * u))) : 0,
    ),
  );
  return levels.filter((l, i) => levels.findIndex((m) => m.join() === l.join()) === i);
}

function shares(s: StageModel): number[] {
  const g = s.gpuCores!;
  const out: number[] = [];
  for (let c = g.min; c <= g.max; c += g.step) out.push(c);
  return out;
}

/** `b` has at least the replicas and share of `a` on every stage, and differs. */
function dominates(b: Allocation, a: Allocation): boolean {
  let differs = false;
  for (let i = 0; i < a.replicas.length; i++) {
    if (b.replicas[i]! < a.replicas[i]! || (b.gpuCores[i] ?? 0) < (a.gpuCores[i] ?? 0)) return false;
    if (b.replicas[i] !== a.replicas[i] || b.gpuCores[i] !== a.gpuCores[i]) differs = true;
  }
  return differs;
}

export interface Candidates {
  allocations: Allocation[];
  /** One line on what was searched. */
  method: string;
}

/**
 * Static allocations worth running at mean rate `rate` for at most `budget` $/h: CPU stages at
 * each CPU_UTILIZATIONS level; GPU stages at every replica count and share step (with more than
 * one GPU stage, every GPU stage at the same share step, to keep the product small). Allocations
 * over budget or below the rate at full batches are dropped, then every allocation that another
 * one within budget dominates (no fewer replicas and no smaller share anywhere): more resources
 * never lengthen the simulator's batch waits, queueing or service, so it cannot have a lower P99.
 * If more than `maxRuns` remain, the dearest are kept (P99 falls as the budget is spent).
 */
export function staticCandidates(
  model: PipelineModel,
  rate: number,
  budget: number,
  maxRuns: number,
): Candidates {
  const gpu = model.stages.filter((s) => s.kind === 'gpu');
  const sharedLevel = gpu.length > 1;
  // One GPU stage tries each of its share steps; several share one level, each stage at its first
  // step at or above it.
  const levels = [...new Set(gpu.flatMap(shares))].sort((x, y) => x - y);
  type Option = { stage: number; replicas: number; share: number };
  const combos: Option[][] = gpu.length === 0 ? [[]] : [];
  for (const level of levels) {
    let atLevel: Option[][] = [[]];
    for (const s of gpu) {
      const steps = shares(s);
      const share = steps.find((c) => c >= level) ?? steps[steps.length - 1]!;
      const options: Option[] = [];
      for (let n = clampReplicas(s, 1); n <= s.replicas.max; n++) {
        options.push({ stage: s.index, replicas: n, share });
      }
      atLevel = atLevel.flatMap((combo) => options.map((o) => [...combo, o]));
    }
    combos.push(...atLevel);
  }
  const seen = new Set<string>();
  const all: Allocation[] = [];
  for (const cpu of cpuLevels(model, rate)) {
    for (const combo of combos) {
      const a: Allocation = { replicas: [...cpu], gpuCores: model.stages.map(() => null) };
      for (const o of combo) {
        a.replicas[o.stage] = o.replicas;
        a.gpuCores[o.stage] = o.share;
      }
      const key = JSON.stringify(a);
      if (seen.has(key)) continue;
      seen.add(key);
      if (packedAllocationCost(model, a) <= budget + 1e-9 && allocationCapacity(model, a) >= rate) all.push(a);
    }
  }
  const undominated = all
    .filter((a) => !all.some((b) => dominates(b, a)))
    .sort((x, y) => packedAllocationCost(model, y) - packedAllocationCost(model, x) || allocationCost(model, y) - allocationCost(model, x));
  const kept = undominated.slice(0, maxRuns);
  const gpuSearch = sharedLevel
    ? `all ${gpu.length} GPU stages at one share step, every replica count each`
    : 'GPU replicas x every share step';
  return {
    allocations: kept,
    method: `CPU at ${CPU_UTILIZATIONS.join('/')} utilization x ${gpuSearch}; ${all.length} within cost and capacity, ${undominated.length} not dominated${undominated.length > maxRuns ? `, the ${maxRuns} dearest run` : ''}`,
  };
}
