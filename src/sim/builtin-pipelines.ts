// The built-in pipelines: the paper's four (CPU pre -> GPU inference -> CPU post) and SAIR's own
// four (video analytics with fan-out, audio QA, an NLP chain whose bottleneck moves, RAG).
// Service times are per batch at a full GPU: (baseMs + perItemMs * b) / share. They are
// calibrated so that at the reference rate no stage has much headroom at the initial allocation
// and different stages limit the pipeline as load, replicas and GPU shares change: CPU stages
// scale only with replicas, GPU stages with replicas, share and batch size. They run on an
// unlimited cluster of 8-GPU nodes, binpacked: the packed cost is the whole GPUs billed, and no
// replica waits for room or runs clamped, so every baseline's figures stay those measured before
// packing. A finite cluster (Pending replicas, clamped share rises) is one line in a pipeline file.
import type { PipelineFile } from './pipeline.js';
import { parsePipeline, type PipelineModel } from './pipeline.js';

type StageIn = Omit<PipelineFile['stages'][number], 'service' | 'maxBatch' | 'batchTimeoutMs' | 'queueCapacity' | 'coldStartMs'> & {
  service: { baseMs: number; perItemMs: number; sigma?: number };
  maxBatch?: number;
  batchTimeoutMs?: number;
  coldStartMs?: number;
};

const cpu = (name: string, perItemMs: number, replicas: [number, number, number], extra: Partial<StageIn> = {}): StageIn => ({
  name,
  kind: 'cpu',
  service: { baseMs: 0, perItemMs, sigma: 0.25 },
  coldStartMs: 5000,
  replicas: { min: replicas[0], initial: replicas[1], max: replicas[2] },
  ...extra,
});

const gpu = (
  name: string,
  baseMs: number,
  perItemMs: number,
  batch: [maxBatch: number, timeoutMs: number],
  replicas: [number, number, number],
  share: number,
  coldStartMs: number,
  extra: Partial<StageIn> = {},
): StageIn => ({
  name,
  kind: 'gpu',
  service: { baseMs, perItemMs, sigma: 0.1 },
  maxBatch: batch[0],
  batchTimeoutMs: batch[1],
  coldStartMs,
  replicas: { min: replicas[0], initial: replicas[1], max: replicas[2] },
  gpuCores: { min: 10, max: 100, step: 10, initial: share },
  ...extra,
});

const UNLIMITED = { gpuNodes: 'unlimited', gpusPerNode: 8, slotPercent: 10, placement: 'binpack' } as const;

const definitions: Record<string, unknown> = {
  'image-classification': {
    name: 'image-classification',
    description: "The paper's image classification: resize/normalize -> MobileNetV2 on a shared GPU -> top-k labels.",
    sloP99Ms: 150,
    referenceRate: 100,
    cluster: UNLIMITED,
    stages: [cpu('preprocess', 6, [1, 1, 10]), gpu('mobilenetv2', 4, 0.8, [32, 5], [1, 1, 8], 30, 30000), cpu('postprocess', 2, [1, 1, 6])],
  },
  'nlp-bert': {
    name: 'nlp-bert',
    description: "The paper's NLP pipeline: tokenize -> BERT-base (seq 128) on a shared GPU -> label mapping.",
    sloP99Ms: 200,
    referenceRate: 80,
    cluster: UNLIMITED,
    stages: [cpu('tokenize', 4, [1, 1, 8]), gpu('bert', 8, 2.5, [16, 8], [1, 1, 8], 40, 40000), cpu('postprocess', 1, [1, 1, 4])],
  },
  'text-generation': {
    name: 'text-generation',
    description: "The paper's text generation: prompt preparation -> Transformer decoder on a shared GPU -> detokenize.",
    sloP99Ms: 3000,
    referenceRate: 10,
    cluster: UNLIMITED,
    stages: [cpu('prepare', 3, [1, 1, 4]), gpu('generate', 150, 60, [8, 30], [1, 2, 10], 50, 60000), cpu('detokenize', 5, [1, 1, 4])],
  },
  'video-multiframe': {
    name: 'video-multiframe',
    description: "The paper's multi-frame video analytics: decode 8 frames -> frame model on a shared GPU -> track/aggregate.",
    sloP99Ms: 2000,
    referenceRate: 10,
    cluster: UNLIMITED,
    stages: [cpu('decode', 40, [1, 1, 10]), gpu('frame-model', 20, 24, [8, 20], [1, 1, 8], 50, 45000), cpu('aggregate', 8, [1, 1, 4])],
  },
  'video-analytics': {
    name: 'video-analytics',
    description: 'Video analytics with fan-out: decode -> {object detection, face recognition, OCR} in parallel -> aggregate; a request completes when all three branches have.',
    sloP99Ms: 800,
    referenceRate: 20,
    cluster: UNLIMITED,
    stages: [
      cpu('decode', 15, [1, 1, 8]),
      gpu('detect', 8, 6, [16, 10], [1, 1, 8], 40, 40000, { upstream: ['decode'] }),
      gpu('faces', 5, 4, [16, 10], [1, 1, 8], 30, 30000, { upstream: ['decode'] }),
      cpu('ocr', 35, [1, 1, 10], { upstream: ['decode'] }),
      cpu('aggregate', 3, [1, 1, 4], { upstream: ['detect', 'faces', 'ocr'] }),
    ],
  },
  'audio-qa': {
    name: 'audio-qa',
    description: 'Spoken question answering: resample -> speech recognition (GPU) -> answer generation (GPU) -> speech synthesis (GPU).',
    sloP99Ms: 4000,
    referenceRate: 8,
    cluster: UNLIMITED,
    stages: [
      cpu('resample', 10, [1, 1, 4]),
      gpu('asr', 60, 35, [8, 40], [1, 1, 8], 50, 45000),
      gpu('answer', 80, 45, [8, 40], [1, 1, 10], 50, 60000),
      gpu('tts', 30, 20, [8, 40], [1, 1, 8], 30, 30000),
    ],
  },
  'nlp-chain': {
    name: 'nlp-chain',
    description: 'An NLP chain whose bottleneck moves: tokenize (CPU) -> embed (GPU) -> classify (GPU) -> postprocess (CPU). The batching GPU stages gain capacity from shares and replicas, the CPU stages only from replicas, so which stage limits changes as an autoscaler follows the load.',
    sloP99Ms: 250,
    referenceRate: 100,
    cluster: UNLIMITED,
    stages: [
      cpu('tokenize', 3, [1, 1, 6]),
      gpu('embed', 6, 0.4, [32, 5], [1, 1, 6], 20, 30000),
      gpu('classify', 12, 1.5, [16, 10], [1, 1, 8], 30, 40000),
      cpu('postprocess', 6, [1, 1, 8]),
    ],
  },
  rag: {
    name: 'rag',
    description: 'Retrieval-augmented generation: embed the query (GPU) -> vector search (CPU) -> rerank (GPU) -> generate (GPU LLM) -> format (CPU).',
    sloP99Ms: 5000,
    referenceRate: 10,
    cluster: UNLIMITED,
    stages: [
      gpu('embed-query', 4, 0.5, [32, 5], [1, 1, 4], 10, 30000),
      cpu('retrieve', 25, [1, 1, 8]),
      gpu('rerank', 10, 4, [16, 10], [1, 1, 6], 30, 30000),
      gpu('generate', 200, 80, [8, 50], [1, 2, 12], 60, 90000),
      cpu('format', 3, [1, 1, 4]),
    ],
  },
};

/** The paper's four pipelines, then SAIR's own four (the `issue` suite). */
export const BUILTIN_PIPELINES = Object.keys(definitions);
export const PAPER_PIPELINES = ['image-classification', 'nlp-bert', 'text-generation', 'video-multiframe'];
export const ISSUE_PIPELINES = ['video-analytics', 'audio-qa', 'nlp-chain', 'rag'];

export function builtinPipeline(name: string): PipelineModel | undefined {
  const def = definitions[name];
  return def === undefined ? undefined : parsePipeline(def, `built-in pipeline ${name}`);
}
