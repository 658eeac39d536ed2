// PromQL templates per stage: presets for common serving stacks and the device plugin's per-pod
// GPU metrics. Placeholders: {namespace}, {pods} (a regex matching the Deployment's pods),
// {selector} (extra matchers, with a leading comma when set) and {window} (a range like 60s).
import type { MetricPreset, StageQueryField } from '../k8s/pipeline-resource.js';

export type StageQueries = Partial<Record<StageQueryField, string>>;

const SEL = 'namespace="{namespace}",pod=~"{pods}"{selector}';

/**
 * GPU time the stage's pods used, in GPUs (1 = one whole GPU busy), from the device plugin's
 * per-pod counter (src/device-plugin/metrics.ts). Only namespace and pod: the device plugin's
 * series carry no serving-stack labels, so the stage's extra selector does not apply. Its
 * `namespace` and `pod` name the GPU pod; a scrape without honor_labels (honorLabels) keeps them
 * as exported_namespace and exported_pod under the device plugin pod's own, so the second arm
 * reads those: the query answers whichever way Prometheus scrapes.
 */
export const GPU_UTILIZATION_QUERY =
  'sum(rate(sair_device_plugin_pod_gpu_kernel_seconds_total{namespace="{namespace}",pod=~"{pods}"}[{window}]))' +
  ' or sum(rate(sair_device_plugin_pod_gpu_kernel_seconds_total{exported_namespace="{namespace}",exported_pod=~"{pods}"}[{window}]))';

/**
 * The GPU core share the node agents enforce for the stage's pods, percent: the lowest of them. It
 * is below the share SAIR asked for when a GPU had no room (the node agent clamps increases so a
 * GPU's shares never pass 100 %); both label spellings, as for GPU_UTILIZATION_QUERY.
 */
export const GPU_CORES_ENFORCED_QUERY =
  'min(sair_device_plugin_pod_gpu_cores_limit_percent{namespace="{namespace}",pod=~"{pods}"})' +
  ' or min(sair_device_plugin_pod_gpu_cores_limit_percent{exported_namespace="{namespace}",exported_pod=~"{pods}"})';

/**
 * How many of the stage's pods run clamped: enforced below the share asked ({asked}, percent), each
 * waiting for room on its GPU. No pod below answers nothing (count of an empty vector); both label
 * spellings, as above.
 */
const GPU_CORES_CLAMPED_QUERY =
  'count(sair_device_plugin_pod_gpu_cores_limit_percent{namespace="{namespace}",pod=~"{pods}"} < {asked})' +
  ' or count(sair_device_plugin_pod_gpu_cores_limit_percent{exported_namespace="{namespace}",exported_pod=~"{pods}"} < {asked})';

/** GPU_CORES_CLAMPED_QUERY for a stage's pods asked `asked` percent. */
export const clampedPodsQuery = (v: TemplateValues, asked: number): string => render(GPU_CORES_CLAMPED_QUERY, v).replaceAll('{asked}', String(asked));

const quantile = (q: number, bucket: string) => `1000 * histogram_quantile(${q}, sum by (le) (rate(${bucket}{${SEL}}[{window}])))`;

export const PRESETS: Record<MetricPreset, StageQueries> = {
  // Any server that exports a Prometheus request-duration histogram (prometheus client defaults).
  generic: {
    throughput: `sum(rate(http_request_duration_seconds_count{${SEL}}[{window}]))`,
    latencyP50Ms: quantile(0.5, 'http_request_duration_seconds_bucket'),
    latencyP99Ms: quantile(0.99, 'http_request_duration_seconds_bucket'),
    dropRate: `sum(rate(http_request_duration_seconds_count{${SEL},code=~"5..|429"}[{window}])) or vector(0)`,
    utilization:
      `sum(rate(container_cpu_usage_seconds_total{${SEL},container!=""}[{window}]))` +
      ` / sum(kube_pod_container_resource_requests{${SEL},resource="cpu"})`,
    gpuUtilization: GPU_UTILIZATION_QUERY,
  },
  // vLLM's OpenAI-compatible server (metrics prefixed `vllm:`).
  vllm: {
    throughput: `sum(rate(vllm:e2e_request_latency_seconds_count{${SEL}}[{window}]))`,
    queueLength: `sum(vllm:num_requests_waiting{${SEL}})`,
    latencyP50Ms: quantile(0.5, 'vllm:e2e_request_latency_seconds_bucket'),
    latencyP99Ms: quantile(0.99, 'vllm:e2e_request_latency_seconds_bucket'),
    utilization: `avg(vllm:gpu_cache_usage_perc{${SEL}})`,
    gpuUtilization: GPU_UTILIZATION_QUERY,
  },
  // NVIDIA Triton Inference Server (durations are cumulative microsecond counters).
  triton: {
    throughput: `sum(rate(nv_inference_request_success{${SEL}}[{window}]))`,
    dropRate: `sum(rate(nv_inference_request_failure{${SEL}}[{window}]))`,
    queueLength: `sum(nv_inference_pending_request_count{${SEL}})`,
    latencyP50Ms:
      `sum(rate(nv_inference_request_duration_us{${SEL}}[{window}]))` +
      ` / sum(rate(nv_inference_request_success{${SEL}}[{window}])) / 1000`,
    latencyP99Ms: `max(nv_inference_request_summary_us{${SEL},quantile="0.99"}) / 1000`,
    utilization: `avg(nv_gpu_utilization{${SEL}})`,
    gpuUtilization: GPU_UTILIZATION_QUERY,
  },
};

/** Per-batch queries, for presets whose server exports batch execution counters. */
export interface BatchQueries {
  /** Mean items per executed batch over the window. */
  batchSize: string;
  /** Mean compute time of one executed batch over the window, ms. */
  batchServiceMs: string;
}

export const BATCH_QUERIES: Partial<Record<MetricPreset, BatchQueries>> = {
  // Triton: inference count / execution count is the mean dynamic batch size (Triton's metrics
  // docs). Compute time is charged to every request of an execution, so compute time over
  // inferences is the mean time of the execution an item rode in (item-weighted).
  triton: {
    batchSize: `sum(rate(nv_inference_count{${SEL}}[{window}])) / sum(rate(nv_inference_exec_count{${SEL}}[{window}]))`,
    batchServiceMs: `sum(rate(nv_inference_compute_infer_duration_us{${SEL}}[{window}])) / sum(rate(nv_inference_count{${SEL}}[{window}])) / 1000`,
  },
};

export interface TemplateValues {
  namespace: string;
  deployment: string;
  selector?: string;
  windowSeconds: number;
}

/**
 * Whole GPUs that the pipeline's GPU stages' pods hold slots on, as a cluster bills them: the
 * distinct GPU UUIDs of the device plugin's per-container slot gauge. {pods} here is the
 * alternation of the GPU stages' pod regexes (gpusInUseQuery); both label spellings, as above.
 */
export const GPUS_IN_USE_QUERY =
  'count(count by (uuid) (sair_device_plugin_container_gpu_slots{namespace="{namespace}",pod=~"{pods}"}))' +
  ' or count(count by (uuid) (sair_device_plugin_container_gpu_slots{exported_namespace="{namespace}",exported_pod=~"{pods}"}))';

/** GPUS_IN_USE_QUERY for the pods of these Deployments in one namespace. */
export function gpusInUseQuery(namespace: string, deployments: readonly string[]): string {
  const pods = deployments.map((d) => `(?:${podRegex(d)})`).join('|');
  return GPUS_IN_USE_QUERY.replaceAll('{namespace}', namespace).replaceAll('{pods}', pods);
}

/** Pods of a Deployment are named <deployment>-<replicaset hash>-<suffix>. */
export function podRegex(deployment: string): string {
  return `${deployment.replace(/[.]/g, '\\\\.')}-[a-z0-9]+-[a-z0-9]+`;
}

export function render(template: string, v: TemplateValues): string {
  const selector = v.selector && v.selector.trim() ? `,${v.selector.trim().replace(/^,/, '')}` : '';
  return template
    .replaceAll('{namespace}', v.namespace)
    .replaceAll('{pods}', podRegex(v.deployment))
    .replaceAll('{deployment}', v.deployment)
    .replaceAll('{selector}', selector)
    .replaceAll('{window}', `${v.windowSeconds}s`);
}

/** The preset with the stage's overrides on top. */
export function stageQueries(preset: MetricPreset, overrides: StageQueries | undefined): StageQueries {
  return { ...PRESETS[preset], ...(overrides ?? {}) };
}
