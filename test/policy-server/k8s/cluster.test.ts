// The cluster adapter against the in-process fake API server, through the real client-node, and
// the whole tick (runtime -> SAIR controller -> Prometheus port -> cluster adapter) end to end.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { UpstreamError } from '../../../src/common/errors.js';
import { policySettings } from '../../../src/policy/settings.js';
import { KubeCluster, type WriteGuard } from '../../../src/policy-server/k8s/cluster.js';
import { NotLeaderError } from '../../../src/common/errors.js';

/** The lease holder's guard, switched by the test. */
let leading = true;
const guard: WriteGuard = {
  writeOptions: (opt) => {
    if (!leading) throw new NotLeaderError('sair-system/sair-policy');
    return opt ?? {};
  },
};
import { createPolicyInformers, type PolicyInformers } from '../../../src/policy-server/k8s/informers.js';
import { PrometheusClient } from '../../../src/policy-server/prometheus/client.js';
import { createPrometheusMetrics } from '../../../src/policy-server/prometheus/metrics-port.js';
import { createPolicyLoop } from '../../../src/policy-server/wiring.js';
import { singleShard } from '../../../src/policy-server/runtime.js';
import { PolicyHistory } from '../../../src/policy-server/api/history.js';
import type { Clock } from '../../../src/core/ports.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { startFakePrometheus, type FakePrometheus } from '../../support/fake-prometheus.js';
import { deployment, hpa, namespace, pipeline, pod, until, writes } from './helpers.js';

const logger = createLogger('test', 'silent');
const clock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
const fastRetry = { attempts: 4, baseDelayMs: 5, maxDelayMs: 20 };
const hpaDefaults = { sloP99Ms: 500, tickSeconds: 30, cost: { gpuHour: 2.5, replicaHour: 0.05 }, gpuCores: { min: 10, max: 100, step: 10 }, mode: 'Active' as const };

const chatSpec = (mode: 'Active' | 'DryRun') => ({
  mode,
  slo: { p99Ms: 800 },
  stages: [
    { name: 'pre', deployment: 'pre', minReplicas: 1, maxReplicas: 5 },
    { name: 'llm', deployment: 'llm', minReplicas: 1, maxReplicas: 6, gpuCores: { min: 10, max: 100, step: 10 }, metrics: { preset: 'vllm' } },
  ],
});

/** Prometheus answers for a pipeline whose GPU stage is saturated and over the SLO. */
function saturatedLlm(prom: FakePrometheus) {
  const isPre = (q: string) => q.includes('pod=~"pre-');
  const isLlm = (q: string) => q.includes('pod=~"llm-');
  prom.on((q) => isPre(q) && q.includes('http_request_duration_seconds_count') && !q.includes('code=~'), { vector: [{ value: '50' }] });
  prom.on((q) => isPre(q) && q.includes('code=~'), { vector: [{ value: '0' }] });
  prom.on((q) => isPre(q) && q.includes('container_cpu_usage_seconds_total'), { vector: [{ value: '0.3' }] });
  prom.on((q) => isPre(q) && q.includes('histogram_quantile'), { vector: [{ value: '20' }] });
  prom.on((q) => isLlm(q) && q.includes('vllm:e2e_request_latency_seconds_count'), { vector: [{ value: '20' }] });
  prom.on((q) => isLlm(q) && q.startsWith('sum(vllm:num_requests_waiting'), { vector: [{ value: '40' }] });
  prom.on((q) => isLlm(q) && q.startsWith('deriv('), { vector: [{ value: '5' }] });
  prom.on((q) => isLlm(q) && q.includes('histogram_quantile'), { vector: [{ value: '2000' }] });
  prom.on((q) => isLlm(q) && q.includes('vllm:gpu_cache_usage_perc'), { vector: [{ value: '0.95' }] });
  prom.on((q) => isLlm(q) && q.includes('sair_device_plugin_pod_gpu_kernel_seconds_total'), { vector: [{ value: '1' }] });
}

describe('Kubernetes cluster adapter', () => {
  let api: FakeApiServer;
  let prom: FakePrometheus;
  let informers: PolicyInformers;
  let cluster: KubeCluster;

  beforeAll(async () => {
    api = await startFakeApiServer();
    prom = await startFakePrometheus();
  });
  afterAll(async () => {
    await prom.close();
    await api.close();
  });

  beforeEach(async () => {
    leading = true;
    prom.reset();
    for (const ns of ['ml', 'other']) api.remove('namespaces', undefined, ns);
    api.seed(namespace('ml', true));
    api.seed(namespace('other', false));
    for (const d of [deployment('ml', 'pre', 2), deployment('ml', 'llm', 2, 50), deployment('ml', 'web', 3), deployment('ml', 'optout', 2), deployment('other', 'web', 2)]) api.seed(d);
    api.seed(pod('ml', 'llm', 'aaaaa', 50));
    api.seed(pod('ml', 'llm', 'bbbbb', 50));
    api.seed(pod('ml', 'pre', 'ccccc'));
    const clients = api.clients('ml');
    informers = createPolicyInformers(clients, logger, { restartDelayMs: 50 });
    await informers.waitForSync(5_000);
    cluster = new KubeCluster({ clients, informers, logger, registry: createRegistry('policy', { defaultMetrics: false }), identity: 'test-0', hpaDefaults, dryRun: false, guardFor: () => guard, retry: fastRetry });
    cluster.setActive(true);
    api.requests.splice(0);
  });
  afterEach(async () => {
    await informers.stop();
    api.clearFaults();
  });

  function runtimeFor() {
    const registry = createRegistry('policy', { defaultMetrics: false });
    const metrics = createPrometheusMetrics({
      client: new PrometheusClient({ url: prom.url, timeoutMs: 1_000 }),
      clock,
      logger,
      registry,
      sourceFor: (id) => cluster.metricsSource(id),
      allocation: (id) => cluster.allocation(id),
    });
    const history = new PolicyHistory();
    const ports = { cluster, metrics, clock, logger, registry, history };
    const { runtime, controller } = createPolicyLoop(ports, policySettings({}), {
      seed: 7,
      ownership: singleShard(() => true),
      pollMs: 1_000,
      backoff: { baseMs: 1_000, maxMs: 60_000 },
      afterDecision: (r) => cluster.publishDecision(r),
    });
    return { runtime, history, controller };
  }

  it('observes a pipeline, decides, scales its bottleneck and reports with an Event and status', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    saturatedLlm(prom);
    const { runtime, history, controller } = runtimeFor();

    await runtime.pass();

    const llm = api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'llm')!;
    const pods = api.list<k8s.V1Pod>('pods', 'ml').filter((p) => p.metadata!.name!.startsWith('llm-'));
    const moreReplicas = llm.spec!.replicas! > 2;
    const moreShare = pods.every((p) => Number(p.metadata!.annotations!['sair.dev/gpu-cores']) > 50);
    expect(moreReplicas || moreShare).toBe(true);
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'pre')!.spec!.replicas).toBe(2);

    const [decision] = controller.recentDecisions(1, 'ml/chat');
    expect(decision!.bottleneck).toBe(1);
    expect(decision!.applied.length).toBeGreaterThan(0);
    if (moreReplicas) expect(writes(api, 'deployments.apps', 'scale')).toHaveLength(1);

    const events = api.list<k8s.CoreV1Event>('events', 'ml');
    expect(events).toEqual(
      expect.arrayContaining([expect.objectContaining({ reason: 'Scaled', type: 'Normal', involvedObject: expect.objectContaining({ kind: 'InferencePipeline', name: 'chat' }) })]),
    );
    expect(events.find((e) => e.reason === 'Scaled')!.message).toContain('bottleneck: llm');

    const status = api.get<{ status: Record<string, unknown> }>('inferencepipelines.sair.dev', 'ml', 'chat')!.status;
    expect(status).toMatchObject({ bottleneck: 1, bottleneckStage: 'llm', sloP99Ms: 800, lastDecision: expect.objectContaining({ id: decision!.id, applied: true }) });
    expect(status.p99Ms).toBeCloseTo(2020);
    expect(status.conditions).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'Ready', status: 'True' })]));

    const [view] = history.list();
    expect(view!.points).toHaveLength(1);
    expect(view!.points[0]!.bottleneck).toBe(1);
  });

  it('DryRun records the decision and changes nothing', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('DryRun')));
    await until(informers.pipelines, (items) => items.length === 1);
    saturatedLlm(prom);
    const { runtime, controller } = runtimeFor();
    const before = api.requests.length;

    await runtime.pass();

    const after = api.requests.slice(before);
    expect(after.filter((r) => (r.resource === 'deployments.apps' || r.resource === 'pods') && r.verb !== 'get' && r.verb !== 'list' && r.verb !== 'watch')).toEqual([]);
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'llm')!.spec!.replicas).toBe(2);
    expect(api.list<k8s.V1Pod>('pods', 'ml').map((p) => p.metadata!.annotations?.['sair.dev/gpu-cores'] ?? null)).toEqual(expect.not.arrayContaining(['60', '70', '80']));
    const [decision] = controller.recentDecisions(1, 'ml/chat');
    expect(decision!.dryRun).toBe(true);
    expect(decision!.applied.length).toBeGreaterThan(0);
    const events = api.list<k8s.CoreV1Event>('events', 'ml');
    expect(events.map((e) => e.reason)).toContain('DryRunDecision');
    expect(events.find((e) => e.reason === 'DryRunDecision')!.message).toMatch(/^dry-run: llm: /);
    const status = api.get<{ status: { lastDecision: { action: string; applied: boolean } } }>('inferencepipelines.sair.dev', 'ml', 'chat')!.status;
    expect(status.lastDecision.applied).toBe(false);
    // And the adapter itself refuses to touch a DryRun pipeline, whoever asks.
    await cluster.apply('ml/chat', { kind: 'replicas', stage: 1, replicas: 5 });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'llm')!.spec!.replicas).toBe(2);
  });

  it('turns SAIR-managed HPAs into single-stage pipelines and keeps the HPA bounds as hard limits', async () => {
    api.seed(hpa('ml', 'web', 'web', 2, 4));
    api.seed(hpa('ml', 'optout', 'optout', 1, 3, { 'sair.dev/managed': 'true', 'sair.dev/inject': 'false' }));
    api.seed(hpa('ml', 'plain', 'pre', 1, 3, {}));
    api.seed(hpa('other', 'web', 'web', 1, 5));
    await until(informers.hpas, (items) => items.length === 3);

    const pipelines = await cluster.listPipelines();
    expect(pipelines.map((p) => p.id)).toEqual(['ml/hpa:web']);
    expect(pipelines[0]!.stages).toEqual([{ index: 0, name: 'web', minReplicas: 2, maxReplicas: 4, upstream: [] }]);
    expect(pipelines[0]!.sloP99Ms).toBe(500);
    expect(await cluster.allocation('ml/hpa:web')).toEqual([{ replicas: 3, readyReplicas: 3, gpuCores: null, hpa: { minReplicas: 2, maxReplicas: 4 } }]);

    await cluster.apply('ml/hpa:web', { kind: 'replicas', stage: 0, replicas: 10 });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'web')!.spec!.replicas).toBe(4);
    await cluster.apply('ml/hpa:web', { kind: 'replicas', stage: 0, replicas: 0 });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'web')!.spec!.replicas).toBe(2);
    // The Deployment in the namespace that did not opt in is untouched.
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'other', 'web')!.spec!.replicas).toBe(2);
  });

  it('a Deployment claimed by a pipeline is not also autoscaled through its HPA, and the HPA bounds still hold', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    api.seed(hpa('ml', 'llm', 'llm', 2, 3));
    await until(informers.pipelines, (items) => items.length === 1);
    await until(informers.hpas, (items) => items.length === 1);
    expect((await cluster.listPipelines()).map((p) => p.id)).toEqual(['ml/chat']);
    await cluster.apply('ml/chat', { kind: 'replicas', stage: 1, replicas: 6 });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'llm')!.spec!.replicas).toBe(3);
  });

  it('retries a 409 on the scale subresource and lands the change', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    const fault = api.injectFault({ verb: 'update', resource: 'deployments.apps', subresource: 'scale', status: 409, times: 2 });
    await cluster.apply('ml/chat', { kind: 'replicas', stage: 0, replicas: 4 });
    expect(fault.hits).toBe(2);
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'pre')!.spec!.replicas).toBe(4);
    expect(writes(api, 'deployments.apps', 'scale').map((r) => r.status)).toEqual([409, 409, 200]);
  });

  it('a change that cannot be applied fails loudly and leaves a Warning Event', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    api.injectFault({ verb: 'update', resource: 'deployments.apps', subresource: 'scale', status: 500, times: 10 });
    const err = await cluster.apply('ml/chat', { kind: 'replicas', stage: 0, replicas: 4 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(UpstreamError);
    expect((err as UpstreamError).status).toBe(500);
    expect((err as Error).message).toContain('scale deployment ml/pre');
    const warning = api.list<k8s.CoreV1Event>('events', 'ml').find((e) => e.reason === 'ScalingFailed');
    expect(warning).toMatchObject({ type: 'Warning', message: expect.stringContaining('pre: replicas -> 4 failed') });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'pre')!.spec!.replicas).toBe(2);
  });

  it('sets a GPU share on the stage pods and reconciles new pods to it', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    await cluster.apply('ml/chat', { kind: 'gpuCores', stage: 1, gpuCores: 70 });
    const share = () => api.list<k8s.V1Pod>('pods', 'ml').map((p) => [p.metadata!.name, p.metadata!.annotations?.['sair.dev/gpu-cores']]);
    expect(share()).toEqual(
      expect.arrayContaining([
        ['llm-7c9f8-aaaaa', '70'],
        ['llm-7c9f8-bbbbb', '70'],
        ['pre-7c9f8-ccccc', undefined],
      ]),
    );
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'llm')!.metadata!.annotations!['sair.dev/current-gpu-cores']).toBe('70');
    await until(informers.deployments, (items) => items.some((d) => d.metadata?.annotations?.['sair.dev/current-gpu-cores'] === '70'));
    expect((await cluster.allocation('ml/chat'))[1]!.gpuCores).toBe(70);

    // A pod the ReplicaSet creates later starts at the template's 50 % and is moved to 70 %.
    api.seed(pod('ml', 'llm', 'ddddd', 50));
    await until(informers.pods, (items) => items.some((p) => p.metadata?.name === 'llm-7c9f8-ddddd' && p.metadata.annotations?.['sair.dev/gpu-cores'] === '70'));
    // Bounds of the stage hold for shares too.
    await cluster.apply('ml/chat', { kind: 'gpuCores', stage: 1, gpuCores: 150 });
    expect(api.get<k8s.V1Pod>('pods', 'ml', 'llm-7c9f8-aaaaa')!.metadata!.annotations!['sair.dev/gpu-cores']).toBe('100');
  });

  it('a new leader moves pods that started meanwhile to the stage share the Deployment records', async () => {
    cluster.setActive(false);
    const llm = deployment('ml', 'llm', 2, 50);
    llm.metadata!.annotations = { 'sair.dev/current-gpu-cores': '30' };
    api.seed(llm);
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await until(informers.deployments, (items) => items.some((d) => d.metadata?.annotations?.['sair.dev/current-gpu-cores'] === '30'));
    await cluster.listPipelines();
    expect(writes(api, 'pods')).toEqual([]);
    cluster.setActive(true);
    await cluster.listPipelines();
    await until(informers.pods, (items) => items.filter((p) => p.metadata?.name?.startsWith('llm-') && p.metadata.annotations?.['sair.dev/gpu-cores'] === '30').length === 2);
    expect(api.get<k8s.V1Pod>('pods', 'ml', 'pre-7c9f8-ccccc')!.metadata!.annotations?.['sair.dev/gpu-cores']).toBeUndefined();
  });

  it('refuses an invalid pipeline with the field and accepted form, in the log and in status', async () => {
    api.seed(pipeline('ml', 'bad', { slo: { p99Ms: 500 }, stages: [{ name: 'a', deployment: 'pre', minReplicas: 3, maxReplicas: 2 }] }));
    await until(informers.pipelines, (items) => items.length === 1);
    expect(await cluster.listPipelines()).toEqual([]);
    expect(cluster.invalidPipelines().get('ml/bad')).toBe('spec.stages[0].maxReplicas: 2 is not maxReplicas >= minReplicas');
    await until(informers.pipelines, (items) => (items[0]?.status as { conditions?: unknown[] } | undefined)?.conditions !== undefined);
    expect(api.get<{ status: { conditions: { type: string; status: string; message: string }[] } }>('inferencepipelines.sair.dev', 'ml', 'bad')!.status.conditions[0]).toMatchObject({
      type: 'Valid',
      status: 'False',
      message: expect.stringContaining('spec.stages[0].maxReplicas'),
    });
  });

  it('a standby changes nothing', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    cluster.setActive(false);
    leading = false;
    await expect(cluster.apply('ml/chat', { kind: 'replicas', stage: 0, replicas: 4 })).rejects.toThrow('not the holder of a valid Lease');
    expect(writes(api, 'deployments.apps', 'scale')).toEqual([]);
  });

  it('listing pipelines never writes, also with an invalid spec; a standby does not report it either', async () => {
    leading = false;
    api.seed(pipeline('ml', 'bad', { slo: { p99Ms: 500 }, stages: [{ name: 'a', deployment: 'pre', minReplicas: 3, maxReplicas: 2 }] }));
    await until(informers.pipelines, (items) => items.length === 1);
    api.requests.splice(0);
    await cluster.listPipelines();
    await cluster.reporter.invalidQueue.idle();
    expect(api.requests.filter((r) => r.verb !== 'watch' && r.verb !== 'list' && r.verb !== 'get')).toEqual([]);
  });

  it('a condition keeps its lastTransitionTime while its status stays the same', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    const report = { pipelineId: 'ml/chat', time: Date.now(), actions: [{ kind: 'hold' as const }], bottleneck: null };
    await cluster.report('ml/chat', report);
    const conditions = () => api.get<{ status: { conditions: { type: string; lastTransitionTime: string }[] } }>('inferencepipelines.sair.dev', 'ml', 'chat')!.status.conditions;
    const first = conditions().find((c) => c.type === 'Ready')!.lastTransitionTime;
    await until(informers.pipelines, (items) => (items[0]?.status as { conditions?: unknown[] } | undefined)?.conditions !== undefined);
    await new Promise((r) => setTimeout(r, 5));
    await cluster.report('ml/chat', { ...report, time: Date.now() });
    expect(conditions().find((c) => c.type === 'Ready')!.lastTransitionTime).toBe(first);
  });

  it('aggregates Events: one per pipeline and reason, not one per tick', async () => {
    api.seed(pipeline('ml', 'chat', chatSpec('Active')));
    await until(informers.pipelines, (items) => items.length === 1);
    await cluster.listPipelines();
    const report = { pipelineId: 'ml/chat', time: Date.now(), actions: [{ kind: 'hold' as const }], bottleneck: null };
    for (let i = 0; i < 5; i++) await cluster.report('ml/chat', report);
    const holds = api.list<k8s.CoreV1Event>('events', 'ml').filter((e) => e.reason === 'Hold' && e.involvedObject.name === 'chat');
    expect(holds).toHaveLength(1);
    expect(writes(api, 'events').filter((w) => w.verb === 'create')).toHaveLength(1);
  });
});
