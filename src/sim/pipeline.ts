// Pipeline models: a stage graph (chain or DAG with fan-out and fan-in) with a batching service
// model per stage. Users describe their own in YAML; the zod schema below validates it and its
// errors name the field and the accepted form. The built-in pipelines live in builtin-pipelines.ts.
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, ValidationError } from '../common/errors.js';
import type { PipelineSpec, StageSpec } from '../core/ports.js';
import type { ClusterShape } from './placement.js';
import { name, num, parseYamlText, validate } from './schema.js';

const serviceSchema = z
  .object({
    /** Fixed cost of one batch at a full GPU (or one CPU replica), ms. */
    baseMs: num.atLeast(0),
    /** Added cost per item in the batch, ms. */
    perItemMs: num.atLeast(0),
    /** Sigma of the lognormal noise factor (mean 1); 0 for none. */
    sigma: num.atLeast(0, 3).default(0.1),
    /** `exponential` makes the batch time exponential with the same mean (queueing-theory checks). */
    distribution: z.enum(['lognormal', 'exponential'], { error: '"lognormal" or "exponential"' }).default('lognormal'),
  })
  .strict()
  .refine((s) => s.baseMs + s.perItemMs > 0, { error: 'baseMs + perItemMs > 0', path: ['perItemMs'] });

const gpuCoresSchema = z
  .object({
    min: num.int(1, 100).default(10),
    max: num.int(1, 100).default(100),
    step: num.int(1, 100).default(10),
    initial: num.int(1, 100),
  })
  .strict()
  .refine((g) => g.min <= g.initial && g.initial <= g.max, { error: 'min <= initial <= max', path: ['initial'] });

const stageSchema = z
  .object({
    name: name(),
    kind: z.enum(['cpu', 'gpu'], { error: '"cpu" or "gpu"' }),
    /** Names of the stages this one consumes from; omitted = the previous stage (a chain). */
    upstream: z.array(name(), { error: 'a list of stage names' }).optional(),
    service: serviceSchema,
    maxBatch: num.int(1, 4096).default(1),
    batchTimeoutMs: num.atLeast(0).default(0),
    /** Requests waiting beyond this are dropped on arrival. */
    queueCapacity: num.int(1).default(100000),
    coldStartMs: num.atLeast(0).default(5000),
    replicas: z
      .object({ min: num.int(0), max: num.int(1), initial: num.int(0) })
      .strict()
      .refine((r) => r.min <= r.initial && r.initial <= r.max, { error: 'min <= initial <= max', path: ['initial'] }),
    gpuCores: gpuCoresSchema.optional(),
  })
  .strict()
  .refine((s) => (s.kind === 'gpu') === (s.gpuCores !== undefined), {
    error: 'gpuCores given exactly when kind is "gpu"',
    path: ['gpuCores'],
  });

const NODES_FORM = 'an integer >= 1, "autoscaled" or "unlimited" (absent: one GPU per replica at every GPU stage\'s replicas.max, on gpusPerNode-GPU nodes)';
const SLOT_FORM = 'an integer from 1 to 100 that divides 100 (100 / the device plugin\'s --slots-per-gpu)';

/**
 * The GPU nodes the pipeline runs on. Absent, or without gpuNodes: nodes enough for one GPU per
 * replica at every GPU stage's replicas.max (NODES_FORM says so in errors), so no replica the
 * bounds allow waits for room; share rises can still be clamped where replicas share a GPU.
 */
const clusterSchema = z
  .object({
    gpuNodes: z
      .union([z.number({ error: NODES_FORM }).int({ error: NODES_FORM }).min(1, { error: NODES_FORM }), z.enum(['autoscaled', 'unlimited'], { error: NODES_FORM })], { error: NODES_FORM })
      .optional(),
    gpusPerNode: num.int(1, 64).default(8),
    slotPercent: z
      .number({ error: SLOT_FORM })
      .int({ error: SLOT_FORM })
      .min(1, { error: SLOT_FORM })
      .max(100, { error: SLOT_FORM })
      .refine((p) => 100 % p === 0, { error: SLOT_FORM })
      .default(10),
    placement: z.enum(['binpack', 'spread'], { error: '"binpack" or "spread"' }).default('binpack'),
  })
  .strict();

export const pipelineFileSchema = z
  .object({
    name: name(),
    description: z.string({ error: 'a string' }).default(''),
    sloP99Ms: num.positive(),
    /** A request older than this is dropped when a stage would start serving it. */
    requestTimeoutMs: num.positive().optional(),
    /** Requests per second that the built-in relative workloads call 1.0. */
    referenceRate: num.positive().default(50),
    cost: z
      .object({ gpuHour: num.atLeast(0).default(2.5), replicaHour: num.atLeast(0).default(0.05) })
      .strict()
      .default({ gpuHour: 2.5, replicaHour: 0.05 }),
    tickSeconds: num.positive().default(30),
    /** Time from a replica being asked for to its container starting (scheduling, image pull). */
    schedulingDelayMs: num.atLeast(0).default(2000),
    cluster: clusterSchema.optional(),
    stages: z.array(stageSchema, { error: 'a list of stages' }).min(1, { error: 'at least one stage' }).max(64, { error: 'at most 64 stages' }),
  })
  .strict();

export type PipelineFile = z.output<typeof pipelineFileSchema>;
export type StageFile = PipelineFile['stages'][number];

export interface StageModel extends Omit<StageFile, 'upstream'> {
  index: number;
  upstream: number[];
  downstream: number[];
}

export interface PipelineModel extends Omit<PipelineFile, 'stages' | 'requestTimeoutMs' | 'cluster'> {
  requestTimeoutMs: number;
  cluster: ClusterShape;
  stages: StageModel[];
}

/** The cluster a file declares, with the default node count where it names none. */
export function resolveCluster(file: PipelineFile): ClusterShape {
  const c = file.cluster ?? clusterSchema.parse({});
  const gpuReplicas = file.stages.reduce((n, s) => n + (s.kind === 'gpu' ? s.replicas.max : 0), 0);
  const gpuNodes = c.gpuNodes ?? Math.max(1, Math.ceil(gpuReplicas / c.gpusPerNode));
  return { gpuNodes, gpusPerNode: c.gpusPerNode, slotPercent: c.slotPercent, placement: c.placement };
}

/** Resolve stage names into indices and check the graph: unique names, known upstreams, no cycles. */
export function resolvePipeline(file: PipelineFile, source = 'pipeline'): PipelineModel {
  const index = new Map<string, number>();
  const problems: ValidationError[] = [];
  file.stages.forEach((s, i) => {
    if (index.has(s.name)) problems.push(new ValidationError(`${source}: stages[${i}].name`, 'a name used by no other stage', s.name));
    index.set(s.name, i);
  });
  const stages: StageModel[] = file.stages.map((s, i) => {
    const names = s.upstream ?? (i === 0 ? [] : [file.stages[i - 1]!.name]);
    const upstream: number[] = [];
    names.forEach((n, j) => {
      const u = index.get(n);
      if (u === undefined || u === i) {
        problems.push(new ValidationError(`${source}: stages[${i}].upstream[${j}]`, 'the name of another stage', n));
      } else if (!upstream.includes(u)) upstream.push(u);
    });
    return { ...s, index: i, upstream, downstream: [] };
  });
  if (problems.length > 0) throw new ConfigError(problems);
  for (const s of stages) for (const u of s.upstream) stages[u]!.downstream.push(s.index);
  // Kahn's algorithm: every stage must be reachable in a topological order.
  const indeg = stages.map((s) => s.upstream.length);
  const queue = stages.filter((s) => s.upstream.length === 0).map((s) => s.index);
  let seen = 0;
  while (queue.length > 0) {
    const i = queue.shift()!;
    seen++;
    for (const d of stages[i]!.downstream) if (--indeg[d]! === 0) queue.push(d);
  }
  if (seen !== stages.length) {
    throw new ConfigError([new ValidationError(`${source}: stages[].upstream`, 'a graph without cycles', stages.filter((_, i) => indeg[i]! > 0).map((s) => s.name).join(' -> '))]);
  }
  const { stages: _s, requestTimeoutMs, cluster: _c, ...rest } = file;
  return { ...rest, requestTimeoutMs: requestTimeoutMs ?? Math.max(10 * file.sloP99Ms, 10000), cluster: resolveCluster(file), stages };
}

export function parsePipeline(input: unknown, source = 'pipeline'): PipelineModel {
  return resolvePipeline(validate(pipelineFileSchema, input, source), source);
}

export function loadPipelineFile(path: string): PipelineModel {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([new ValidationError('--pipeline', 'a built-in pipeline name or a readable YAML file', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)]);
  }
  return parsePipeline(parseYamlText(text, path), path);
}

/** Mean time of one batch of `b` items at GPU share `share` (0..1], ms. */
export function batchTimeMs(stage: StageModel, b: number, share: number): number {
  return (stage.service.baseMs + stage.service.perItemMs * b) / share;
}

/**
 * The heaviest path through the stage graph, each stage weighing `weight(stage)`: the stages are in
 * topological order, so each one's upstream is already summed when it is reached.
 */
export function longestPath(stages: readonly StageModel[], weight: (stage: StageModel) => number): number {
  const finish: number[] = [];
  for (const s of stages) finish[s.index] = weight(s) + Math.max(0, ...s.upstream.map((u) => finish[u] ?? 0));
  return Math.max(...finish);
}

/** Most items per second one replica can finish: full batches back to back. */
export function maxThroughputPerReplica(stage: StageModel, share: number): number {
  return (1000 * stage.maxBatch) / batchTimeMs(stage, stage.maxBatch, share);
}

/** The controller's view of a pipeline model (ports.ts). */
export function pipelineSpec(model: PipelineModel): PipelineSpec {
  const stages: StageSpec[] = model.stages.map((s) => ({
    index: s.index,
    name: s.name,
    minReplicas: s.replicas.min,
    maxReplicas: s.replicas.max,
    ...(s.gpuCores ? { gpuCores: { min: s.gpuCores.min, max: s.gpuCores.max, step: s.gpuCores.step } } : {}),
    upstream: [...s.upstream],
    maxBatch: s.maxBatch,
  }));
  return { id: `sim/${model.name}`, stages, sloP99Ms: model.sloP99Ms, cost: { ...model.cost }, tickSeconds: model.tickSeconds, mode: 'Active' };
}
