// Seeded scenario generator for held-out evaluation: from one seed, a random pipeline (2-6 stages,
// chain or DAG, CPU/GPU mix, batching, cold starts, bounds, an SLO that a sensible allocation meets,
// cost, reference rate) and a random workload in units of its reference rate. Pure: no I/O; the
// output is what the YAML files hold and passes the same validation (docs/simulator.md).
import { Document, isScalar, visit } from 'yaml';
import { longestPath, maxThroughputPerReplica, pipelineFileSchema, resolvePipeline, type PipelineFile, type PipelineModel, type StageModel } from './pipeline.js';
import { Rng } from './rng.js';
import { validate } from './schema.js';
import { workloadFileSchema, type WorkloadFile } from './workload.js';

export const WORKLOAD_SHAPES = ['flash-crowd', 'sawtooth', 'mmpp', 'diurnal', 'trace'] as const;
export type WorkloadShape = (typeof WORKLOAD_SHAPES)[number];

/** Seeds kept for reporting, never looked at while tuning (docs/simulator.md, "Generated scenarios"). */
export const HELD_OUT_SEEDS = { from: 1000, to: 1099 } as const;

export interface GeneratedScenario {
  /** `gen-<seed>`: the pipeline's name; the workload is `gen-<seed>-<shape>`. */
  name: string;
  seed: number;
  shape: WorkloadShape;
  /** The pipeline as its YAML file holds it (validated, defaults filled in). */
  pipelineFile: PipelineFile;
  pipeline: PipelineModel;
  /** Relative to the pipeline's referenceRate (validated). */
  workload: WorkloadFile;
  /** The workload's highest rate, in units of the reference rate. */
  peakRelative: number;
}

/** The generator's ranges, each with the reason for it. */
const G = {
  /** Stage counts, inclusive: from a two-stage pre/infer pair to a RAG-sized pipeline. */
  stages: [2, 6],
  /** Fraction of pipelines that are DAGs (fan-out/fan-in) rather than chains, when there are 3+ stages. */
  dagShare: 0.5,
  /** Fraction of pipelines without a GPU stage (pre/post-processing services exist). */
  cpuOnlyShare: 0.1,
  /** Chance that a stage is on a GPU, when the pipeline has GPUs. */
  gpuStageShare: 0.45,
  /** CPU per-item time, ms (log-uniform): 1 ms parsing to 40 ms video decode. */
  cpuPerItemMs: [1, 40],
  /** GPU batch base time at a full GPU, ms (log-uniform): small encoders to LLM steps. */
  gpuBaseMs: [3, 150],
  /** GPU per-item time as a fraction of the base: batching pays off, more for some models. */
  gpuPerItemOfBase: [0.05, 0.6],
  maxBatches: [4, 8, 16, 32],
  /** Cold starts, seconds (log-uniform): CPU containers start fast, GPU ones load weights. */
  cpuColdStartS: [5, 40],
  gpuColdStartS: [20, 300],
  /** Highest reference rate, requests per second: keeps a one-hour run to a few seconds of CPU. */
  maxReferenceRate: 80,
  /** Utilization of each stage at the reference rate under its initial allocation: tight, as the built-ins are. */
  initialUtilization: [0.65, 1.0],
  /** Utilization at the workload's peak with every replica at the full share: a generous allocation holds. */
  maxUtilization: [0.45, 0.6],
  /** SLO as a multiple of the critical path's full-batch time at a full GPU (the built-ins are 3-5x). */
  sloFactor: [3, 5],
  sloFloorMs: 20,
  gpuHour: [1.2, 4],
  replicaHour: [0.02, 0.15],
  schedulingDelayMs: [1000, 5000],
} as const;

const CPU_NAMES = ['decode', 'tokenize', 'resize', 'parse', 'retrieve', 'filter', 'aggregate', 'format', 'resample', 'normalize'];
const GPU_NAMES = ['embed', 'detect', 'classify', 'rerank', 'generate', 'transcribe', 'segment', 'upscale', 'caption', 'ocr'];

/** The generator's own stream, apart from the simulator's (which a run seeds with its run seed). */
const streamFor = (seed: number): Rng => new Rng((Math.imul(seed >>> 0, 0x9e3779b1) ^ 0x47454e) >>> 0);

class Draw {
  constructor(private readonly rng: Rng) {}
  uniform(lo: number, hi: number): number {
    return lo + (hi - lo) * this.rng.uniform();
  }
  logUniform(lo: number, hi: number): number {
    return Math.exp(this.uniform(Math.log(lo), Math.log(hi)));
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.rng.uniform() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.rng.uniform() < p;
  }
  pick<T>(xs: readonly T[]): T {
    return xs[this.int(0, xs.length - 1)]!;
  }
  normal(): number {
    return this.rng.normal();
  }
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

/** Layer widths (a chain is all ones) and each stage's upstream indices, stages in layer order. */
function topology(d: Draw, n: number): { dag: boolean; upstream: number[][] } {
  const dag = n >= 3 && d.chance(G.dagShare);
  const layers = dag ? d.int(2, n - 1) : n;
  const widths = new Array<number>(layers).fill(1);
  for (let extra = n - layers; extra > 0; ) {
    const l = d.int(0, layers - 1);
    if (widths[l]! < 3) {
      widths[l]!++;
      extra--;
    }
  }
  const byLayer: number[][] = [];
  let next = 0;
  for (const w of widths) byLayer.push(Array.from({ length: w }, () => next++));
  const upstream: number[][] = Array.from({ length: n }, () => []);
  for (let l = 1; l < layers; l++) {
    const prev = byLayer[l - 1]!;
    for (const s of byLayer[l]!) {
      const ups = prev.filter(() => d.chance(0.5));
      upstream[s] = ups.length > 0 ? ups : [d.pick(prev)];
    }
    // Every stage of the previous layer feeds the next one, so only the last layer holds sinks.
    for (const p of prev) if (!byLayer[l]!.some((s) => upstream[s]!.includes(p))) upstream[d.pick(byLayer[l]!)]!.push(p);
  }
  for (const ups of upstream) ups.sort((a, b) => a - b);
  return { dag, upstream };
}

type StageFile = PipelineFile['stages'][number];

function drawStage(d: Draw, name: string, gpu: boolean): Omit<StageFile, 'upstream' | 'replicas'> {
  if (!gpu) {
    return {
      name,
      kind: 'cpu',
      service: { baseMs: 0, perItemMs: round(d.logUniform(G.cpuPerItemMs[0], G.cpuPerItemMs[1]), 1), sigma: round(d.uniform(0.15, 0.35), 2), distribution: 'lognormal' },
      maxBatch: 1,
      batchTimeoutMs: 0,
      queueCapacity: 100000,
      coldStartMs: Math.round(d.logUniform(G.cpuColdStartS[0], G.cpuColdStartS[1])) * 1000,
    };
  }
  const baseMs = round(d.logUniform(G.gpuBaseMs[0], G.gpuBaseMs[1]), 1);
  return {
    name,
    kind: 'gpu',
    service: { baseMs, perItemMs: Math.max(0.05, round(baseMs * d.uniform(G.gpuPerItemOfBase[0], G.gpuPerItemOfBase[1]), 2)), sigma: round(d.uniform(0.05, 0.15), 2), distribution: 'lognormal' },
    maxBatch: d.pick(G.maxBatches),
    batchTimeoutMs: Math.round(Math.min(50, Math.max(2, baseMs * d.uniform(0.3, 1)))),
    queueCapacity: 100000,
    coldStartMs: Math.round(d.logUniform(G.gpuColdStartS[0], G.gpuColdStartS[1])) * 1000,
    gpuCores: { min: 10, max: 100, step: 10, initial: 10 * d.int(2, 6) },
  };
}

/** A workload in units of the reference rate, and its peak. */
function drawWorkload(d: Draw, shape: WorkloadShape, name: string): { file: Record<string, unknown>; peak: number } {
  const base = { name, relative: true };
  switch (shape) {
    case 'flash-crowd': {
      // A sudden x3-x10 jump, held for 1-5 minutes, decaying exponentially; repeated each period.
      const period = 60 * d.int(30, 60);
      const rate = round(d.uniform(0.6, 1), 3);
      const peak = round(rate * d.uniform(3, 10), 3);
      const at = Math.round(period * d.uniform(0.1, 0.45));
      const end = at + 1 + Math.round(d.uniform(60, 300));
      const tau = d.uniform(120, 480);
      const points: [number, number][] = [[0, rate], [at, rate], [at + 1, peak], [end, peak]];
      for (let j = 1; end + j * 60 < period; j++) points.push([end + j * 60, round(rate + (peak - rate) * Math.exp((-j * 60) / tau), 3)]);
      points.push([period, rate]);
      return { file: { ...base, kind: 'trace', points, loop: true, description: `flash crowd: ${rate}x jumps to ${peak}x at ${at} s, decays (tau ${Math.round(tau)} s); every ${period} s` }, peak };
    }
    case 'sawtooth': {
      const period = 60 * d.int(5, 20);
      const low = round(d.uniform(0.3, 0.8), 3);
      const high = round(d.uniform(1.8, 3), 3);
      return { file: { ...base, kind: 'trace', points: [[0, low], [period, high]], loop: true, description: `sawtooth: ${low}x rising to ${high}x over ${period} s, then dropping` }, peak: high };
    }
    case 'mmpp': {
      const three = d.chance(0.5);
      const rates = three ? [d.uniform(0.3, 0.6), d.uniform(0.9, 1.4), d.uniform(2.5, 5)] : [d.uniform(0.4, 0.8), d.uniform(2, 3.5)];
      const sojourns = three ? [d.uniform(180, 600), d.uniform(120, 400), d.uniform(45, 180)] : [d.uniform(180, 600), d.uniform(60, 240)];
      const r = rates.map((x) => round(x, 3));
      return { file: { ...base, kind: 'mmpp', rates: r, meanSojournSeconds: sojourns.map((x) => Math.round(x)), description: `MMPP-${r.length}: ${r.join('x / ')}x` }, peak: Math.max(...r) };
    }
    case 'diurnal': {
      const mean = round(d.uniform(1.1, 1.4), 3);
      const amplitude = round(d.uniform(0.6, 0.85), 3);
      const periodSeconds = 60 * d.int(20, 60);
      const phaseSeconds = d.int(0, periodSeconds - 1);
      return { file: { ...base, kind: 'diurnal', mean, amplitude, periodSeconds, phaseSeconds, description: `compressed day: ${mean}x ± ${Math.round(100 * amplitude)} %, period ${periodSeconds} s` }, peak: mean * (1 + amplitude) };
    }
    case 'trace': {
      // A mean-reverting random walk of the log rate, replayed as steps or as ramps, scaled to its peak.
      const steps = d.chance(0.5);
      const points: [number, number][] = [];
      let x = 0;
      let t = 0;
      while (t < 3600) {
        const dt = Math.round(d.uniform(30, 120));
        const r = Math.exp(x);
        points.push([t, r]);
        if (steps) points.push([t + dt - 1, r]);
        t += dt;
        x = 0.8 * x + 0.5 * d.normal();
      }
      const top = Math.max(...points.map((p) => p[1]));
      const peak = round(d.uniform(2, 3.5), 3);
      const scaled = points.map(([s, r]): [number, number] => [s, round(Math.max(0.1, (r * peak) / top), 3)]);
      return { file: { ...base, kind: 'trace', points: scaled, loop: true, description: `replayed ${steps ? 'piecewise-constant' : 'piecewise-linear'} trace, ${scaled.length} points, peak ${peak}x` }, peak: Math.max(...scaled.map((p) => p[1])) };
    }
  }
}

/** Longest path through the graph, each stage weighted by its full-batch time at a full GPU plus its batch timeout. */
function criticalPathMs(stages: readonly StageModel[]): number {
  return longestPath(stages, (s) => s.service.baseMs + s.service.perItemMs * s.maxBatch + s.batchTimeoutMs);
}

const initialShare = (s: StageModel): number => (s.gpuCores ? s.gpuCores.initial / 100 : 1);

/**
 * The reference rate: the slowest stage at its initial share, with 1-3 replicas, runs at the
 * initial utilization. A pipeline too fast for the rate cap gets every service time stretched
 * (in place), which keeps the stages' proportions.
 */
function fitReferenceRate(d: Draw, stages: StageModel[]): number {
  const replicas = d.int(1, 3);
  const utilization = d.uniform(G.initialUtilization[0], G.initialUtilization[1]);
  const fit = (): number => replicas * utilization * Math.min(...stages.map((s) => maxThroughputPerReplica(s, initialShare(s))));
  const raw = fit();
  if (raw > G.maxReferenceRate) {
    const stretch = raw / G.maxReferenceRate;
    for (const s of stages) s.service = { ...s.service, baseMs: round(s.service.baseMs * stretch, 2), perItemMs: round(s.service.perItemMs * stretch, 2) };
  }
  return Math.max(1, Math.round(fit()));
}

/** The scenario for one seed: the same seed gives the same scenario, on any machine. */
export function generateScenario(seed: number): GeneratedScenario {
  if (!Number.isInteger(seed) || seed < 0) throw new RangeError(`generator seed ${seed} is not an integer >= 0`);
  const d = new Draw(streamFor(seed));
  const name = `gen-${seed}`;
  const n = d.int(G.stages[0], G.stages[1]);
  const { dag, upstream } = topology(d, n);
  const gpu = new Array<boolean>(n).fill(false);
  if (!d.chance(G.cpuOnlyShare)) {
    for (let i = 0; i < n; i++) gpu[i] = d.chance(G.gpuStageShare);
    if (!gpu.includes(true)) gpu[d.int(0, n - 1)] = true;
  }
  const cpuNames = [...CPU_NAMES];
  const gpuNames = [...GPU_NAMES];
  const stages = gpu.map((g) => {
    const pool = g ? gpuNames : cpuNames;
    return drawStage(d, pool.splice(d.int(0, pool.length - 1), 1)[0]!, g);
  });
  const models = stages.map((s, i): StageModel => ({ ...s, index: i, upstream: upstream[i]!, downstream: [], replicas: { min: 1, initial: 1, max: 1 } }));
  const referenceRate = fitReferenceRate(d, models);
  const shape = d.pick(WORKLOAD_SHAPES);
  const workload = drawWorkload(d, shape, `${name}-${shape}`);
  const peakRate = workload.peak * referenceRate;
  const full = models.map((m) => {
    const initial = Math.max(1, Math.round(referenceRate / (maxThroughputPerReplica(m, initialShare(m)) * d.uniform(G.initialUtilization[0], G.initialUtilization[1]))));
    const atPeak = Math.ceil(peakRate / (maxThroughputPerReplica(m, 1) * d.uniform(G.maxUtilization[0], G.maxUtilization[1])));
    return { ...m, replicas: { min: 1, initial, max: Math.max(initial + 1, atPeak) } };
  });
  const slo = Math.max(G.sloFloorMs, Math.ceil((criticalPathMs(full) * d.uniform(G.sloFactor[0], G.sloFactor[1])) / 10) * 10);
  const pipelineInput = {
    name,
    description: `Generated (seed ${seed}): ${n} stages, ${dag ? 'a DAG' : 'a chain'}, ${gpu.filter(Boolean).length} on GPUs.`,
    sloP99Ms: slo,
    referenceRate,
    cost: { gpuHour: round(d.uniform(G.gpuHour[0], G.gpuHour[1]), 2), replicaHour: round(d.uniform(G.replicaHour[0], G.replicaHour[1]), 3) },
    tickSeconds: 30,
    schedulingDelayMs: 100 * Math.round(d.uniform(G.schedulingDelayMs[0], G.schedulingDelayMs[1]) / 100),
    stages: full.map(({ index, upstream: ups, downstream: _d, ...s }) => ({ ...s, ...(index === 0 ? {} : { upstream: ups.map((u) => full[u]!.name) }) })),
  };
  const source = `generated scenario ${seed}`;
  const pipelineFile = validate(pipelineFileSchema, pipelineInput, source);
  const pipeline = resolvePipeline(pipelineFile, source);
  return { name, seed, shape, pipelineFile, pipeline, workload: validate(workloadFileSchema, workload.file, source), peakRelative: workload.peak };
}

/** `count` scenarios from `fromSeed` on: gen-<fromSeed> .. gen-<fromSeed + count - 1>. */
export function generateSuite(fromSeed: number, count: number): GeneratedScenario[] {
  return Array.from({ length: count }, (_, i) => generateScenario(fromSeed + i));
}

/** A scenario as the two YAML files `--pipeline` and `--workload` read back to the same model. */
export function scenarioYaml(scenario: GeneratedScenario): { pipeline: string; workload: string } {
  const text = (value: unknown, what: string): string => {
    const doc = new Document(value);
    doc.commentBefore = ` ${what} of generated scenario ${scenario.name} (npx sair simulate --generate ${scenario.seed})`;
    // Lists of numbers (rate points, MMPP rates) read best on one line.
    visit(doc, {
      Seq(_, node) {
        if (node.items.every((item) => isScalar(item))) node.flow = true;
      },
    });
    return doc.toString({ lineWidth: 0 });
  };
  return { pipeline: text(scenario.pipelineFile, 'Pipeline'), workload: text(scenario.workload, 'Workload') };
}
