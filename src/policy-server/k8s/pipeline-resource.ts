// The InferencePipeline custom resource (sair.dev/v1alpha1): a zod schema that validates what the
// API server hands us (errors name the field and the accepted form) and the conversion to the
// controller's PipelineSpec. manifests/crds/inferencepipeline.yaml is the same schema in OpenAPI v3.
import { z } from 'zod';
import { ValidationError } from '../../common/errors.js';
import type { PipelineSpec, StageSpec } from '../../core/ports.js';

export const GROUP = 'sair.dev';
export const VERSION = 'v1alpha1';
export const PLURAL = 'inferencepipelines';
export const KIND = 'InferencePipeline';

export const METRIC_PRESETS = ['generic', 'vllm', 'triton'] as const;
export type MetricPreset = (typeof METRIC_PRESETS)[number];

/** PromQL overrides, one per StageMetrics field Prometheus can answer. */
export const STAGE_QUERY_FIELDS = [
  'arrivalRate',
  'throughput',
  'queueLength',
  'utilization',
  'latencyP50Ms',
  'latencyP99Ms',
  'dropRate',
  'gpuUtilization',
] as const;
export type StageQueryField = (typeof STAGE_QUERY_FIELDS)[number];

// Spec objects are strict: the API server prunes unknown fields, and a client that sends one (a
// typo such as maxReplica) gets an error naming it instead of a silently ignored setting.
const dnsName = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, 'a DNS-1123 name (lower-case letters, digits, "-" and ".")')
  .max(253);

const stageSchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'a DNS-1123 label').max(63),
    deployment: dnsName,
    upstream: z.array(z.string()).optional(),
    minReplicas: z.number().int().min(0).max(1000).default(1),
    maxReplicas: z.number().int().min(1).max(1000),
    /** The serving stack's largest batch (Triton max_batch_size); lets the policy size capacity at full batches. */
    maxBatch: z.number().int().min(1).max(4096).optional(),
    gpuCores: z
      .strictObject({
        min: z.number().int().min(1).max(100).default(10),
        max: z.number().int().min(1).max(100).default(100),
        step: z.number().int().min(1).max(100).default(10),
      })
      .optional(),
    metrics: z
      .strictObject({
        preset: z.enum(METRIC_PRESETS).default('generic'),
        /** Extra label matchers added to every preset query, e.g. `model_name="llama"`. */
        selector: z.string().optional(),
        queries: z.partialRecord(z.enum(STAGE_QUERY_FIELDS), z.string().min(1)).optional(),
      })
      .prefault({}),
  })
  .refine((s) => s.maxReplicas >= s.minReplicas, { message: 'maxReplicas >= minReplicas', path: ['maxReplicas'] })
  .refine((s) => !s.gpuCores || s.gpuCores.max >= s.gpuCores.min, { message: 'gpuCores.max >= gpuCores.min', path: ['gpuCores', 'max'] });

export const pipelineSpecSchema = z
  .strictObject({
    stages: z.array(stageSchema).min(1).max(32),
    slo: z.strictObject({ p99Ms: z.number().min(1) }),
    cost: z
      .strictObject({ gpuHour: z.number().min(0).default(2.5), replicaHour: z.number().min(0).default(0.05) })
      .prefault({}),
    tickSeconds: z.number().int().min(5).max(3600).default(30),
    mode: z.enum(['Active', 'DryRun']).default('Active'),
    metrics: z
      .strictObject({
        /** End-to-end P99 in ms; without it the sum of the stages' P99s stands in (an upper bound). */
        p99Query: z.string().min(1).optional(),
        sloViolationQuery: z.string().min(1).optional(),
      })
      .prefault({}),
    llm: z
      .strictObject({
        configMapRef: z.strictObject({ name: dnsName }).optional(),
        secretRef: z.strictObject({ name: dnsName, key: z.string().min(1).default('apiKey') }).optional(),
      })
      .optional(),
  })
  .superRefine((spec, ctx) => {
    const names = spec.stages.map((s) => s.name);
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i) ctx.addIssue({ code: 'custom', message: 'a stage name unique in the pipeline', path: ['stages', i, 'name'] });
    });
    spec.stages.forEach((s, i) =>
      (s.upstream ?? []).forEach((u, j) => {
        const at = names.indexOf(u);
        if (at < 0 || at >= i) {
          ctx.addIssue({ code: 'custom', message: 'the name of an earlier stage (stages are listed in topological order)', path: ['stages', i, 'upstream', j] });
        }
      }),
    );
  });

export type InferencePipelineSpec = z.output<typeof pipelineSpecSchema>;
export type StageResource = InferencePipelineSpec['stages'][number];

const objectSchema = z.object({
  apiVersion: z.literal(`${GROUP}/${VERSION}`),
  kind: z.literal(KIND),
  metadata: z.object({ name: z.string().min(1), namespace: z.string().min(1), generation: z.number().optional() }).loose(),
  spec: pipelineSpecSchema,
});

export interface InferencePipeline {
  namespace: string;
  name: string;
  generation: number | undefined;
  spec: InferencePipelineSpec;
}

/** The status the adapter writes through the status subresource. */
export interface PipelineStatus {
  observedGeneration?: number;
  bottleneck?: number | null;
  bottleneckStage?: string | null;
  p99Ms?: number | null;
  sloP99Ms?: number;
  costRate?: number | null;
  replicas?: string;
  lastDecision?: { id?: string; time: string; action: string; reason: string; applied: boolean };
  conditions?: { type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string; lastTransitionTime: string }[];
}

function describePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, p) => (typeof p === 'number' ? `${out}[${p}]` : out ? `${out}.${String(p)}` : String(p)), '');
}

/** Validate a raw object from the API server; throws a ValidationError naming the first bad field. */
export function parseInferencePipeline(raw: unknown): InferencePipeline {
  const result = objectSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    if (issue.code === 'unrecognized_keys') {
      const at = describePath([...issue.path, issue.keys[0]!]);
      const value = [...issue.path, issue.keys[0]!].reduce<unknown>((v, p) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined), raw);
      throw new ValidationError(at, 'a field of InferencePipeline (unknown field: check its spelling against the CRD)', value);
    }
    const value = issue.path.reduce<unknown>((v, p) => (v && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined), raw);
    const accepted = issue.code === 'invalid_type' ? `of type ${issue.expected}` : issue.message;
    throw new ValidationError(describePath(issue.path) || '(object)', accepted, value);
  }
  const { metadata, spec } = result.data;
  return { namespace: metadata.namespace, name: metadata.name, generation: metadata.generation, spec };
}

/** The controller's view: stage indices, DAG edges (default: each stage consumes the previous one). */
export function toPipelineSpec(p: InferencePipeline): PipelineSpec {
  const names = p.spec.stages.map((s) => s.name);
  const stages: StageSpec[] = p.spec.stages.map((s, index) => ({
    index,
    name: s.deployment,
    minReplicas: s.minReplicas,
    maxReplicas: s.maxReplicas,
    ...(s.gpuCores ? { gpuCores: { ...s.gpuCores } } : {}),
    upstream: s.upstream ? s.upstream.map((u) => names.indexOf(u)) : index === 0 ? [] : [index - 1],
    ...(s.maxBatch !== undefined ? { maxBatch: s.maxBatch } : {}),
  }));
  return {
    id: `${p.namespace}/${p.name}`,
    stages,
    sloP99Ms: p.spec.slo.p99Ms,
    cost: { gpuHour: p.spec.cost.gpuHour, replicaHour: p.spec.cost.replicaHour },
    tickSeconds: p.spec.tickSeconds,
    mode: p.spec.mode,
  };
}
