import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { UpstreamError } from '../../../src/common/errors.js';
import { PrometheusClient } from '../../../src/policy-server/prometheus/client.js';
import { costRate, createPrometheusMetrics, type PipelineMetricsSource } from '../../../src/policy-server/prometheus/metrics-port.js';
import { GPU_UTILIZATION_QUERY, podRegex, render } from '../../../src/policy-server/prometheus/queries.js';
import type { PipelineSpec, StageAllocation } from '../../../src/core/ports.js';
import { startFakePrometheus } from '../../support/fake-prometheus.js';
import { useFakePrometheus } from '../../support/use-fake-prometheus.js';

const pipeline: PipelineSpec = {
  id: 'ml/chat',
  stages: [
    { index: 0, name: 'pre', minReplicas: 1, maxReplicas: 5, upstream: [] },
    { index: 1, name: 'llm', minReplicas: 1, maxReplicas: 4, gpuCores: { min: 10, max: 100, step: 10 }, upstream: [0] },
  ],
  sloP99Ms: 800,
  cost: { gpuHour: 2, replicaHour: 0.1 },
  tickSeconds: 30,
  mode: 'Active',
};
const allocation: StageAllocation[] = [
  { replicas: 2, readyReplicas: 2, gpuCores: null },
  { replicas: 2, readyReplicas: 2, gpuCores: 50 },
];
const source: PipelineMetricsSource = {
  namespace: 'ml',
  stages: [
    { namespace: 'ml', deployment: 'pre', preset: 'generic' },
    { namespace: 'ml', deployment: 'llm', preset: 'vllm', selector: 'model_name="llama"' },
  ],
};

describe('Prometheus metrics port', () => {
  const prom = useFakePrometheus();
  const clock = { now: () => 1_000, sleep: async () => undefined };
  const logger = createLogger('test', 'silent');

  function port(timeoutMs = 1_000, src: PipelineMetricsSource = source) {
    return createPrometheusMetrics({
      client: new PrometheusClient({ url: prom().url, timeoutMs }),
      clock,
      logger,
      registry: createRegistry('policy', { defaultMetrics: false }),
      sourceFor: (id) => (id === pipeline.id ? src : undefined),
      allocation: async () => allocation,
    });
  }

  it('renders the stage templates for the Deployment pods and reads vector answers', async () => {
    prom().on(/^sum\(rate\(http_request_duration_seconds_count\{namespace="ml",pod=~"pre-[^"]*"\}/, { vector: [{ value: '40' }] });
    prom().on((q) => q.startsWith('1000 * histogram_quantile(0.99') && q.includes('http_request'), { vector: [{ value: 0.12 }] });
    prom().on('container_cpu_usage_seconds_total', { vector: [{ metric: {}, value: '0.5' }] });
    prom().on('vllm:num_requests_waiting', { vector: [{ value: '6' }] });
    prom().on((q) => q.startsWith('deriv(') && q.includes('vllm:num_requests_waiting'), { vector: [{ value: '0.5' }] });
    prom().on('vllm:e2e_request_latency_seconds_count', { vector: [{ value: '30' }] });
    prom().on((q) => q.includes('histogram_quantile(0.99') && q.includes('vllm'), { vector: [{ value: '400' }] });
    prom().on('sair_device_plugin_pod_gpu_kernel_seconds_total', { vector: [{ value: '0.75' }] });

    const obs = await port().observe(pipeline);

    expect(obs.stages[0]).toMatchObject({ throughput: 40, latencyP99Ms: 0.12, utilization: 0.5, queueLength: null, arrivalRate: 40 });
    expect(obs.stages[0]!.capacityPerReplica).toBeCloseTo(40);
    // GPU stage: 0.75 GPU-seconds per second used of 2 × 50 % granted.
    expect(obs.stages[1]).toMatchObject({ throughput: 30, queueLength: 6, queueGrowth: 0.5, latencyP99Ms: 400, arrivalRate: 30.5, utilization: 0.75 });
    expect(obs.p99Ms).toBeCloseTo(400.12);
    expect(obs.arrivalRate).toBe(40);
    expect(obs.costRate).toBeCloseTo(2 * 0.1 + 2 * (0.1 + 2 * 0.5));
    expect(obs.windowMs).toBe(60_000);
    expect(prom().leaves.some((q) => q.includes('pod=~"llm-[a-z0-9]+-[a-z0-9]+",model_name="llama"'))).toBe(true);
    // The device plugin's series have no serving-stack labels: its query leaves the selector out.
    expect(prom().queries.join('\n')).toContain(
      'label_replace((sum(rate(sair_device_plugin_pod_gpu_kernel_seconds_total{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"}[60s]))' +
        ' or sum(rate(sair_device_plugin_pod_gpu_kernel_seconds_total{exported_namespace="ml",exported_pod=~"llm-[a-z0-9]+-[a-z0-9]+"}[60s]))), "sair_query"',
    );
    expect(prom().leaves.filter((q) => /\{window\}|\{pods\}|\{namespace\}|\{selector\}/.test(q))).toEqual([]);
    // Every rate over the window, except the entry stage's newest-rate query (two 15 s scrapes).
    expect(obs.recentArrivalRate).toBe(40);
    expect(obs.recentWindowMs).toBe(30_000);
    expect(prom().leaves.filter((q) => q.includes('[30s]'))).toEqual(['sum(rate(http_request_duration_seconds_count{namespace="ml",pod=~"pre-[a-z0-9]+-[a-z0-9]+"}[30s]))']);
    expect(prom().leaves.filter((q) => q.includes('rate(') && !q.includes('[30s]')).every((q) => q.includes('[60s]'))).toBe(true);
  });

  it('prices the pipeline as the cluster bills it where the device plugin says which GPUs its pods hold', async () => {
    // Share-priced without the device plugin's slot gauge: 2 x 0.1 + 2 x (0.1 + 2 x 0.5).
    const shares = await port().observe(pipeline);
    expect(shares.costRate).toBeCloseTo(2.4);
    expect(shares).not.toHaveProperty('billedGpus');
    // Its two 50 % replicas on two GPUs: 2 x 2 + 4 replicas x 0.1.
    prom().on('sair_device_plugin_container_gpu_slots', { vector: [{ value: '2' }] });
    const packed = await port().observe(pipeline);
    expect(packed.costRate).toBeCloseTo(4.4);
    expect(packed.shareCostRate).toBeCloseTo(2.4);
    expect(packed.billedGpus).toBe(2);
    expect(prom().queries.join('\n')).toContain(
      'label_replace((count(count by (uuid) (sair_device_plugin_container_gpu_slots{namespace="ml",pod=~"(?:llm-[a-z0-9]+-[a-z0-9]+)"}))' +
        ' or count(count by (uuid) (sair_device_plugin_container_gpu_slots{exported_namespace="ml",exported_pod=~"(?:llm-[a-z0-9]+-[a-z0-9]+)"}))), "sair_query"',
    );
  });

  it('counts the last GPUs held for a few ticks without an answer, so the cost does not jump on one missed scrape', async () => {
    let now = 1_000;
    const ticking = createPrometheusMetrics({
      client: new PrometheusClient({ url: prom().url, timeoutMs: 1_000 }),
      clock: { now: () => now, sleep: async () => undefined },
      logger,
      registry: createRegistry('policy', { defaultMetrics: false }),
      sourceFor: () => source,
      allocation: async () => allocation,
    });
    prom().on('sair_device_plugin_container_gpu_slots', { vector: [{ value: '2' }] });
    expect((await ticking.observe(pipeline)).billedGpus).toBe(2);
    prom().reset();
    now += 60_000;
    const missed = await ticking.observe(pipeline);
    expect(missed.billedGpus).toBe(2);
    expect(missed.costRate).toBeCloseTo(4.4);
    now += 120_000;
    const gone = await ticking.observe(pipeline);
    expect(gone).not.toHaveProperty('billedGpus');
    expect(gone.costRate).toBeCloseTo(2.4);
  });

  it('sees a GPU stage at the share its node agents enforce when a GPU had no room for the one asked', async () => {
    prom().on((q) => q.startsWith('min(sair_device_plugin_pod_gpu_cores_limit_percent'), { vector: [{ value: '30' }] });
    prom().on('sair_device_plugin_pod_gpu_kernel_seconds_total', { vector: [{ value: '0.3' }] });
    const obs = await port().observe(pipeline);
    expect(obs.allocation[1]).toMatchObject({ gpuCores: 30, gpuCoresAsked: 50 });
    expect(obs.allocation[0]).toEqual(allocation[0]);
    // Busy over what is granted at the enforced share: 0.3 of 2 x 30 %.
    expect(obs.stages[1]!.utilization).toBeCloseTo(0.5);
    expect(prom().queries.join('\n')).toContain(
      'label_replace((min(sair_device_plugin_pod_gpu_cores_limit_percent{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"})' +
        ' or min(sair_device_plugin_pod_gpu_cores_limit_percent{exported_namespace="ml",exported_pod=~"llm-[a-z0-9]+-[a-z0-9]+"})), "sair_query"',
    );
    // No count of clamped pods: the lowest share stands for both.
    expect(obs.allocation[1]).not.toHaveProperty('clampedReplicas');
    // A limit at or above the share asked (or none) leaves the allocation as the cluster reports it.
    prom().reset();
    prom().on('sair_device_plugin_pod_gpu_cores_limit_percent', { vector: [{ value: '50' }] });
    expect((await port().observe(pipeline)).allocation).toEqual(allocation);
  });

  it('counts the pods clamped below the share asked', async () => {
    prom().on((q) => q.startsWith('min(sair_device_plugin_pod_gpu_cores_limit_percent'), { vector: [{ value: '30' }] });
    prom().on((q) => q.startsWith('count(sair_device_plugin_pod_gpu_cores_limit_percent'), { vector: [{ value: '1' }] });
    prom().on('sair_device_plugin_pod_gpu_kernel_seconds_total', { vector: [{ value: '0.3' }] });
    const obs = await port().observe(pipeline);
    expect(obs.allocation[1]).toEqual({ ...allocation[1], gpuCores: 30, gpuCoresAsked: 50, clampedReplicas: 1 });
    expect(prom().leaves).toContain('count(sair_device_plugin_pod_gpu_cores_limit_percent{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"} < 50)');
    expect(prom().leaves).toContain('count(sair_device_plugin_pod_gpu_cores_limit_percent{exported_namespace="ml",exported_pod=~"llm-[a-z0-9]+-[a-z0-9]+"} < 50)');
    // Pods of an old ReplicaSet matching too: never more clamped than replicas asked.
    prom().reset();
    prom().on((q) => q.startsWith('min(sair_device_plugin_pod_gpu_cores_limit_percent'), { vector: [{ value: '30' }] });
    prom().on((q) => q.startsWith('count(sair_device_plugin_pod_gpu_cores_limit_percent'), { vector: [{ value: '5' }] });
    expect((await port().observe(pipeline)).allocation[1]).toMatchObject({ clampedReplicas: 2 });
  });

  it('reads mean batch size and batch compute time from Triton counters, and leaves them null for other presets', async () => {
    prom().on((q) => q.startsWith('sum(rate(nv_inference_count') && q.includes('nv_inference_exec_count'), { vector: [{ value: '4' }] });
    prom().on((q) => q.startsWith('sum(rate(nv_inference_compute_infer_duration_us'), { vector: [{ value: '12.5' }] });
    const triton: PipelineMetricsSource = { namespace: 'ml', stages: [source.stages[0]!, { namespace: 'ml', deployment: 'llm', preset: 'triton' }] };
    const obs = await port(1_000, triton).observe(pipeline);
    expect(obs.stages[1]).toMatchObject({ batchSize: 4, batchServiceMs: 12.5 });
    expect(obs.stages[0]).toMatchObject({ batchSize: null, batchServiceMs: null });
    expect(prom().leaves.find((q) => q.includes('nv_inference_exec_count'))).toBe(
      'sum(rate(nv_inference_count{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"}[60s])) / sum(rate(nv_inference_exec_count{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"}[60s]))',
    );
    // A batch size under one item (no executions: NaN, or a broken exporter) feeds nothing.
    prom().reset();
    prom().on('nv_inference_exec_count', { vector: [{ value: '0.5' }] });
    prom().on('nv_inference_compute_infer_duration_us', { vector: [{ value: '12.5' }] });
    const bad = await port(1_000, triton).observe(pipeline);
    expect(bad.stages[1]).toMatchObject({ batchSize: null, batchServiceMs: null });
  });

  it('gives null for empty results and NaN, so the controller holds', async () => {
    prom().on('histogram_quantile', { vector: [{ value: 'NaN' }] });
    const obs = await port().observe(pipeline);
    expect(obs.stages[0]).toMatchObject({ throughput: null, latencyP99Ms: null, utilization: null, arrivalRate: null, capacityPerReplica: null });
    expect(obs.p99Ms).toBeNull();
    expect(obs.arrivalRate).toBeNull();
    // cost comes from the allocation, not from Prometheus
    expect(obs.costRate).toBeGreaterThan(0);
  });

  it("sends the tick's built-in queries as one request, each arm labelled, and the tenant's own alone", async () => {
    prom().on('http_request_duration_seconds_count', { vector: [{ value: '40' }] });
    prom().on('e2e_p99', { scalar: '650' });
    const obs = await port(1_000, { ...source, p99Query: 'e2e_p99' }).observe(pipeline);
    expect(obs.stages[0]!.throughput).toBe(40);
    expect(obs.p99Ms).toBe(650);
    const combined = prom().queries.filter((q) => q.includes('label_replace('));
    expect(combined).toHaveLength(1);
    // The pre stage's five queries, the entry rate over 30 s, the GPU stage's share, its clamped pods
    // and GPU time and the pipeline's GPUs are arms of that request; the queries with the spliced
    // selector and the p99Query are not.
    expect(combined[0]!.match(/label_replace\(\(/g)).toHaveLength(10);
    expect(combined[0]).not.toContain('model_name');
    expect(prom().queries.filter((q) => !q.includes('label_replace(')).every((q) => q.includes('model_name') || q.includes('e2e_p99'))).toBe(true);
  });

  it("a slow tenant query times out alone; a slow built-in one leaves the tick's built-in fields missing", async () => {
    prom().on('http_request_duration_seconds_count', { vector: [{ value: '40' }] });
    prom().on('e2e_p99', { scalar: '650' }, 2_000);
    let started = Date.now();
    let obs = await port(200, { ...source, p99Query: 'e2e_p99' }).observe(pipeline);
    expect(Date.now() - started).toBeLessThan(1_900);
    expect(obs.stages[0]!.throughput).toBe(40);
    expect(obs.p99Ms).toBeNull();

    prom().reset();
    prom().on('http_request_duration_seconds_count', { vector: [{ value: '40' }] });
    prom().on('histogram_quantile(0.99', { vector: [{ value: '100' }] }, 2_000);
    prom().on('e2e_p99', { scalar: '650' });
    started = Date.now();
    obs = await port(200, { ...source, p99Query: 'e2e_p99' }).observe(pipeline);
    expect(Date.now() - started).toBeLessThan(1_900);
    expect(obs.stages[0]).toMatchObject({ throughput: null, latencyP99Ms: null });
    expect(obs.p99Ms).toBe(650);
  });

  it('reports a built-in arm that answers with several series, as a lone query would be', async () => {
    prom().on('http_request_duration_seconds_count', { vector: [{ metric: { pod: 'pre-a-1' }, value: '1' }, { metric: { pod: 'pre-b-2' }, value: '2' }] });
    const warnings: unknown[] = [];
    const metrics = createPrometheusMetrics({
      client: new PrometheusClient({ url: prom().url, timeoutMs: 1_000 }),
      clock,
      logger: { ...logger, warn: (o: unknown) => warnings.push(o) } as typeof logger,
      registry: createRegistry('policy', { defaultMetrics: false }),
      sourceFor: () => source,
      allocation: async () => allocation,
    });
    const obs = await metrics.observe(pipeline);
    expect(obs.stages[0]!.throughput).toBeNull();
    expect(JSON.stringify(warnings)).toContain('returned 2 series; aggregate it to one');
  });

  it('uses the end-to-end query when the pipeline has one, and clamps SLO violation to 0..1', async () => {
    prom().on('e2e_p99', { scalar: '650' });
    prom().on('violations', { vector: [{ value: '1.7' }] });
    const obs = await port(1_000, { ...source, p99Query: 'e2e_p99', sloViolationQuery: 'violations' }).observe(pipeline);
    expect(obs.p99Ms).toBe(650);
    expect(obs.sloViolation).toBe(1);
  });

  it("sends the tenant's own queries confined to the pipeline's namespace", async () => {
    prom().on('e2e_p99', { scalar: '650' });
    const tenant: PipelineMetricsSource = {
      namespace: 'ml',
      stages: [{ namespace: 'ml', deployment: 'pre', preset: 'generic', queries: { throughput: 'sum(rate(reqs_total{namespace=~".*"}[{window}]))' } }, source.stages[1]!],
      p99Query: '1000 * histogram_quantile(0.99, sum by (le) (rate(e2e_p99_bucket{namespace="prod"}[5m])))',
      sloViolationQuery: 'violations / on(pod) group_left total',
    };
    const obs = await port(1_000, tenant).observe(pipeline);
    expect(obs.p99Ms).toBe(650);
    expect(prom().queries).toContain('1000 * histogram_quantile(0.99, sum by (le) (rate(e2e_p99_bucket{namespace="ml"}[5m])))');
    expect(prom().queries).toContain('violations{namespace="ml"} / on(pod) group_left total{namespace="ml"}');
    expect(prom().queries).toContain('sum(rate(reqs_total{namespace="ml"}[60s]))');
    expect(prom().queries.some((q) => q.includes('prod') || q.includes('".*"'))).toBe(false);
  });

  it("confines a preset into which the stage's selector is spliced", async () => {
    const injected: PipelineMetricsSource = {
      namespace: 'ml',
      stages: [source.stages[0]!, { namespace: 'ml', deployment: 'llm', preset: 'vllm', selector: 'namespace="prod"' }],
    };
    await port(1_000, injected).observe(pipeline);
    expect(prom().queries).toContain('sum(vllm:num_requests_waiting{namespace="ml",pod=~"llm-[a-z0-9]+-[a-z0-9]+"})');
    expect(prom().queries.some((q) => q.includes('prod'))).toBe(false);
  });

  it('sends no query it cannot confine, and leaves its field empty', async () => {
    const obs = await port(1_000, { ...source, p99Query: 'e2e{namespace="prod"' }).observe(pipeline);
    expect(obs.p99Ms).toBeNull();
    expect(prom().queries.some((q) => q.startsWith('e2e'))).toBe(false);
  });

  it('rejects a pipeline it has no source for', async () => {
    await expect(port().observe({ ...pipeline, id: 'other/x' })).rejects.toThrow('no metrics source');
  });
});

describe('PrometheusClient', () => {
  const prom = useFakePrometheus();
  const client = () => new PrometheusClient({ url: `${prom().url}/`, timeoutMs: 300 });

  it('reads vector, matrix and scalar results', async () => {
    prom().on('v', { vector: [{ metric: { pod: 'a' }, value: '1' }, { metric: { pod: 'b' }, value: '+Inf' }] });
    prom().on('m', { matrix: [{ values: ['1', '2', '3'] }] });
    prom().on('s', { scalar: '4.5' });
    expect(await client().query('v')).toEqual([
      { metric: { pod: 'a' }, value: 1 },
      { metric: { pod: 'b' }, value: Infinity },
    ]);
    expect(await client().value('m')).toBe(3);
    expect(await client().value('s')).toBe(4.5);
    await expect(client().value('v')).rejects.toThrow('returned 2 series; aggregate it to one');
  });

  it('turns Prometheus errors, bad bodies and timeouts into UpstreamErrors with the reason', async () => {
    prom().on('bad', { error: 'parse error at char 4: unexpected <EOF>' });
    prom().on('busy', { error: 'query queue full', errorType: 'unavailable' });
    prom().on('html', { raw: '<html>bad gateway</html>', status: 502 });
    prom().on('slow', { vector: [] }, 1_000);
    await expect(client().value('bad')).rejects.toMatchObject({ status: 400, message: expect.stringContaining('bad_data: parse error') });
    const busy = await client().value('busy').catch((e: unknown) => e);
    expect(busy).toBeInstanceOf(UpstreamError);
    expect((busy as UpstreamError).status).toBe(503);
    await expect(client().value('html')).rejects.toThrow('HTTP 502: not a Prometheus API response');
    await expect(client().value('slow')).rejects.toThrow('timed out after 300 ms');
  });

  it('keeps at most maxConcurrent queries in flight; the others wait their turn and are answered', async () => {
    prom().on('q', { vector: [{ value: '1' }] }, 200);
    const limited = new PrometheusClient({ url: prom().url, timeoutMs: 2_000, maxConcurrent: 2 });
    const all = Promise.all(Array.from({ length: 5 }, (_, i) => limited.value(`q${i}`)));
    // Half the answer time in, the server has seen only the first two.
    await new Promise((r) => setTimeout(r, 100));
    expect(prom().queries).toEqual(['q0', 'q1']);
    expect(await all).toEqual([1, 1, 1, 1, 1]);
    expect(prom().queries).toHaveLength(5);
  });

  it('reports an unreachable server', async () => {
    const dead = new PrometheusClient({ url: 'http://127.0.0.1:1', timeoutMs: 500 });
    await expect(dead.value('up')).rejects.toThrow('prometheus: request failed');
  });
});

describe('the GPU utilization query, with and without honor_labels', () => {
  // The device plugin's series for pod ml/llm-7d9f-x2k as Prometheus stores it after each kind of
  // scrape: with honor_labels its own namespace and pod stay; without, the target's (the device
  // plugin pod's) take their place and its own move to exported_*.
  const HONORED = { namespace: 'ml', pod: 'llm-7d9f-x2k', instance: '10.0.0.7:9400' };
  const NOT_HONORED = { namespace: 'sair-system', pod: 'sair-device-plugin-4xk2p', exported_namespace: 'ml', exported_pod: 'llm-7d9f-x2k', instance: '10.0.0.7:9400' };

  /** Label matching as PromQL does it (= and =~, fully anchored), on each arm of `a or b`. */
  function answer(query: string, labels: Record<string, string>, value: number): { vector: { value: number }[] } {
    for (const arm of query.split(' or ')) {
      const matchers = [...arm.matchAll(/(\w+)(=~|=)"([^"]*)"/g)];
      const hit = matchers.every(([, name, op, v]) => (op === '=' ? labels[name!] === v : new RegExp(`^(?:${v!.replaceAll('\\\\', '\\')})$`).test(labels[name!] ?? '')));
      if (hit) return { vector: [{ value }] };
    }
    return { vector: [] };
  }

  it.each([
    ['honorLabels: true (the ServiceMonitor, or honor_labels in an annotation scrape)', HONORED],
    ['no honor_labels (exported_namespace, exported_pod)', NOT_HONORED],
  ])('reads the pod\'s GPU time: %s', async (_, labels) => {
    const prom = await startFakePrometheus();
    try {
      prom.on('sair_device_plugin_pod_gpu_kernel_seconds_total', (q) => answer(q, labels, 0.4));
      const query = render(GPU_UTILIZATION_QUERY, { namespace: 'ml', deployment: 'llm', windowSeconds: 60 });
      expect(await new PrometheusClient({ url: prom.url, timeoutMs: 1_000 }).value(query)).toBe(0.4);
      expect(answer(render(GPU_UTILIZATION_QUERY, { namespace: 'ml', deployment: 'other', windowSeconds: 60 }), labels, 1)).toEqual({ vector: [] });
    } finally {
      await prom.close();
    }
  });
});

describe('query templates', () => {
  it('render every placeholder and escape dots in Deployment names', () => {
    expect(podRegex('a.b')).toBe('a\\\\.b-[a-z0-9]+-[a-z0-9]+');
    expect(render('x{namespace="{namespace}",pod=~"{pods}"{selector}}[{window}] {deployment}', { namespace: 'n', deployment: 'd', windowSeconds: 90 })).toBe(
      'x{namespace="n",pod=~"d-[a-z0-9]+-[a-z0-9]+"}[90s] d',
    );
  });
  it('computes cost from replicas and GPU share', () => {
    expect(costRate(pipeline, allocation)).toBeCloseTo(0.2 + 2.2);
  });
});
