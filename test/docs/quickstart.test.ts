// docs/quickstart.md, command by command, against the fake API server: each `kubectl` line of the
// doc's shell blocks goes through test/docs/kubectl.ts (client-node), the YAML it applies is the
// doc's own, and after each section the test checks what the doc says happened. Where the doc's
// cluster would do something on its own, the test does it with the real parts, as processes with
// the args and env of what `kubectl apply -k` stored: the sair-certs Job and the sair-webhook
// Deployment after the install, a pod from the Deployment's template for the ReplicaSet controller,
// and the sair-policy Deployment (envFrom ConfigMap sair-policy) on a simulated load for the
// dashboard and DryRun steps.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { resolveLlmSettings } from '../../src/policy-server/k8s/llm-settings.js';
import { parseInferencePipeline, toPipelineSpec } from '../../src/policy-server/k8s/pipeline-resource.js';
import { loadPolicyConfig } from '../../src/cmd/policy.js';
import type { DecisionRecord } from '../../src/policy/types.js';
import { SimulatedLoad } from '../support/e2e-load.js';
import { containerView, podOf } from '../support/e2e-node.js';
import { SairProcess } from '../support/e2e-process.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { startFakeLlm, type FakeLlm } from '../support/fake-llm.js';
import { startFakePrometheus, type FakePrometheus } from '../support/fake-prometheus.js';
import { kustomizeBuild } from '../support/manifests.js';
import { Kubectl, codeBlocks, docFiles, shellWords, type Obj } from './kubectl.js';
import { eventually } from '../support/eventually.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DOC = readFileSync(resolve(ROOT, 'docs/quickstart.md'), 'utf8');
const SECTIONS = [
  '1. Install with kustomize',
  '2. Opt a namespace in',
  '3. Give a GPU pod a quota',
  '4. Define an InferencePipeline',
  '5. Point the policy server at an LLM',
  '6. Watch the dashboard',
  '7. Switch to DryRun',
  '8. Uninstall',
];

/** Shell lines of a section, in order. */
function commands(section: string): string[] {
  return codeBlocks(DOC)
    .filter((b) => b.section === section && b.lang === 'sh')
    .flatMap((b) => b.body.split('\n'))
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}


let api: FakeApiServer;
let kubectl: Kubectl;
let webhook: SairProcess | undefined;
/** This machine as the cluster's node: its "/" for hostPath and pod volumes, and a kubeconfig for in-cluster clients. */
let host: string;
let prom: FakePrometheus;
let llm: FakeLlm;
let policy: SairProcess | undefined;
/** Where the webhook Service resolves to once the test has started the webhook. */
let webhookPort = 0;
const ran: string[] = [];

async function runSection(section: string): Promise<void> {
  for (const line of commands(section)) {
    if (!line.startsWith('kubectl ')) continue;
    const r = await kubectl.run(line);
    if (r.ran) ran.push(line);
  }
}

beforeAll(async () => {
  host = mkdtempSync(join(tmpdir(), 'sair-quickstart-'));
  api = await startFakeApiServer({
    namespaces: ['default', 'kube-system'],
    simulateDeployments: true,
    admission: { resolveService: (svc) => `https://localhost:${webhookPort}${svc.path ?? '/'}` },
  });
  // The cluster's GPU node.
  api.seed({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'gpu-node-1', labels: { 'kubernetes.io/hostname': 'gpu-node-1' } } });
  writeFileSync(join(host, 'kubeconfig'), api.kubeConfig().exportConfig());
  kubectl = new Kubectl(api.kubeConfig(), docFiles(DOC), ROOT);
  prom = await startFakePrometheus();
  llm = await startFakeLlm();
});

afterAll(async () => {
  await Promise.all([policy?.stop('SIGTERM'), webhook?.stop('SIGTERM')]);
  await Promise.all([api?.close(), prom?.close(), llm?.close()]);
  if (host) rmSync(host, { recursive: true, force: true });
}, 30_000);

describe('docs/quickstart.md', () => {
  it('has the eight sections, and every command in it is kubectl (run here) or curl against the policy server', () => {
    expect(codeBlocks(DOC).map((b) => b.section).filter((s, i, a) => s && a.indexOf(s) === i)).toEqual(SECTIONS);
    for (const s of SECTIONS) {
      for (const line of commands(s)) expect(shellWords(line)[0]).toMatch(/^(kubectl|curl)$/);
    }
  });

  it('1. installs with kustomize: every object of manifests/ validates, and the node is labelled for the device plugin', async () => {
    await runSection(SECTIONS[0]!);
    const built = kustomizeBuild(resolve(ROOT, 'manifests'));
    const names = built.map((o) => `${o.kind}/${o.metadata.name}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'Namespace/sair-system',
        'CustomResourceDefinition/inferencepipelines.sair.dev',
        'MutatingWebhookConfiguration/sair-webhook',
        'Deployment/sair-webhook',
        'Job/sair-certs',
        'Deployment/sair-policy',
        'ConfigMap/sair-policy',
        'DaemonSet/sair-device-plugin',
      ]),
    );
    expect(api.get('mutatingwebhookconfigurations.admissionregistration.k8s.io', undefined, 'sair-webhook')).toBeDefined();
    expect(api.get('deployments.apps', 'sair-system', 'sair-policy')).toBeDefined();
    // The DaemonSet lands on the node the doc labels.
    const ds = built.find((o) => o.kind === 'DaemonSet')!.spec as { template: { spec: { nodeSelector: Record<string, string> } } };
    const node = api.get<k8s.V1Node>('nodes', undefined, 'gpu-node-1')!;
    expect(node.metadata!.labels).toMatchObject(ds.template.spec.nodeSelector);

    // The cluster then runs the sair-certs Job (its args; the certificate also names localhost, where
    // this machine reaches the Service) and the webhook Deployment as stored, Secret sair-webhook-tls mounted.
    const job = built.find((o) => o.kind === 'Job') as Obj & k8s.V1Job;
    const [command, ...args] = job.spec!.template.spec!.containers[0]!.args!;
    const certsJob = SairProcess.start(command!, [...args, '--extra-names', 'localhost'], { KUBECONFIG: join(host, 'kubeconfig') });
    expect(await certsJob.waitForExit(60_000)).toEqual({ code: 0, signal: null });
    const deployment = api.get<k8s.V1Deployment>('deployments.apps', 'sair-system', 'sair-webhook')!;
    const view = containerView(podOf(deployment, 'sair-webhook-6f8d7c5b9-p2r4t', 'gpu-node-1'), 'webhook', { hostRoot: host, secrets: (name) => api.get<k8s.V1Secret>('secrets', 'sair-system', name)?.data });
    webhook = SairProcess.start('webhook', ['--port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], view.env);
    webhookPort = (await webhook.waitForLog((l) => l.msg === 'webhook listening', 60_000, 'the webhook to listen'))['port'] as number;
  }, 30_000);

  it('2. opts the namespace in', async () => {
    await runSection(SECTIONS[1]!);
    expect(api.get<k8s.V1Namespace>('namespaces', undefined, 'ml')!.metadata!.labels).toMatchObject({ 'sair.dev/enabled': 'true' });
  });

  it('3. a pod from the annotated template gets the shim and its quota; the HPA is taken over; a bad value is refused as the doc says', async () => {
    await runSection(SECTIONS[2]!);
    const template = api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'encode')!.spec!.template;
    // What the ReplicaSet controller creates from the template.
    const { core } = api.clients('ml');
    const pod = await core.createNamespacedPod({ namespace: 'ml', body: { metadata: { generateName: 'encode-5d8f7c9b4-', labels: template.metadata!.labels, annotations: template.metadata!.annotations }, spec: template.spec! } });
    expect(pod.metadata!.annotations).toMatchObject({ 'sair.dev/injected': 'true' });
    const c = pod.spec!.containers[0]!;
    const env = Object.fromEntries((c.env ?? []).map((e) => [e.name, e.value]));
    expect(env).toMatchObject({ LD_PRELOAD: '/usr/local/sair/lib/libsair-cuda.so', SAIR_GPU_CORES: '30', SAIR_GPU_MEMORY: '2147483648' });
    expect(c.resources!.limits).toEqual({ 'sair.dev/gpu': '1' });
    // No hostPath: the namespace enforces Pod Security baseline, and the pod passed it.
    expect((pod.spec!.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
    expect(api.get<k8s.V1Namespace>('namespaces', undefined, 'ml')!.metadata!.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'baseline' });

    const hpa = api.get<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers.autoscaling', 'ml', 'decode')!;
    expect(hpa.spec!.behavior!.scaleUp!.selectPolicy).toBe('Disabled');
    expect(hpa.spec!.behavior!.scaleDown!.selectPolicy).toBe('Disabled');
    expect(hpa.metadata!.labels).toMatchObject({ 'sair.dev/managed': 'true' });
    expect(JSON.parse(hpa.metadata!.annotations!['sair.dev/original-behavior']!)).toMatchObject({ scaleDown: { stabilizationWindowSeconds: 300 } });

    const quoted = /\(`(sair\.dev\/gpu-memory: "4 gigs" [^`]+)`\)/.exec(DOC)![1]!;
    const bad = { metadata: { name: 'bad', annotations: { ...template.metadata!.annotations, 'sair.dev/gpu-memory': '4 gigs' } }, spec: template.spec! };
    const refused = await core.createNamespacedPod({ namespace: 'ml', body: bad }).then(
      () => undefined,
      (err: { code: number; body: string }) => err,
    );
    expect(refused?.code).toBe(400);
    expect((JSON.parse(refused!.body) as { message: string }).message).toContain(quoted);
  }, 30_000);

  it('4. the InferencePipeline is stored and is one the policy server accepts', async () => {
    await runSection(SECTIONS[3]!);
    const stored = api.get('inferencepipelines.sair.dev', 'ml', 'captioner');
    const spec = toPipelineSpec(parseInferencePipeline(stored));
    expect(spec).toMatchObject({ id: 'ml/captioner', sloP99Ms: 500, mode: 'Active', stages: [{ name: 'encode', gpuCores: { min: 10, max: 90, step: 20 } }, { name: 'decode', upstream: [0] }] });
  });

  it('5. the LLM endpoint, model and key reach the policy server through ConfigMap and Secret sair-llm', async () => {
    await runSection(SECTIONS[4]!);
    const llmSettings = await resolveLlmSettings(api.clients().core, { namespace: 'sair-system', configMap: 'sair-llm', secret: { name: 'sair-llm', key: 'apiKey' } });
    expect(llmSettings).toMatchObject({ baseUrl: 'http://vllm.llm.svc:8000/v1', model: 'Qwen/Qwen2.5-7B-Instruct', apiKey: 'sk-replace-me' });
    const data = api.get<k8s.V1ConfigMap>('configmaps', 'sair-system', 'sair-policy')!.data!;
    expect(loadPolicyConfig(data, [])).toMatchObject({ llmConfigMap: 'sair-llm', llmSecret: 'sair-llm' });
    const restarted = api.get<k8s.V1Deployment>('deployments.apps', 'sair-system', 'sair-policy')!;
    expect(restarted.spec!.template.metadata!.annotations).toHaveProperty(['kubectl.kubernetes.io/restartedAt']);
  });

  it('6 and 7. in DryRun the policy server decides and reports (Event, status, the dashboard API) and changes nothing', async () => {
    await runSection(SECTIONS[5]!);
    await runSection(SECTIONS[6]!);
    expect(api.get<{ spec: { mode: string } }>('inferencepipelines.sair.dev', 'ml', 'captioner')!.spec.mode).toBe('DryRun');

    // encode saturated: 57 req/s offered to one replica that serves 60 at its 30% share.
    const load = new SimulatedLoad(
      [
        { deployment: 'encode', ratePerReplica: 200, baseLatencyMs: 10 },
        { deployment: 'decode', ratePerReplica: 300, baseLatencyMs: 5 },
      ],
      () => [
        { readyReplicas: api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'encode')!.status?.readyReplicas ?? 0, gpuCores: 30 },
        { readyReplicas: api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'decode')!.status?.readyReplicas ?? 0, gpuCores: null },
      ],
      57,
    );
    load.serve(prom);
    const before = api.requests.length;
    // The sair-policy Deployment as stored (restarted in step 5): envFrom ConfigMap sair-policy, which
    // names ConfigMap and Secret sair-llm. On this machine the API server, Prometheus and the doc's
    // vLLM are at other addresses: the flags say where (they win over env and the ConfigMap).
    const deployment = api.get<k8s.V1Deployment>('deployments.apps', 'sair-system', 'sair-policy')!;
    const view = containerView(podOf(deployment, 'sair-policy-7b9c5d4f6-k8x2n', 'gpu-node-1'), 'policy', {
      hostRoot: host,
      configMaps: (name) => api.get<k8s.V1ConfigMap>('configmaps', 'sair-system', name)?.data,
    });
    policy = SairProcess.start('policy', ['--kube-api-server', api.url, '--prometheus-url', prom.url, '--llm-base-url', llm.url, '--port', '0', '--host', '127.0.0.1'], view.env);
    const port = (await policy.waitForLog((l) => l.msg === 'HTTP API listening', 60_000, 'the HTTP API'))['port'] as number;

    const event = await eventually(
      async () => (await api.clients('ml').core.listNamespacedEvent({ namespace: 'ml', fieldSelector: 'reason=DryRunDecision' })).items[0],
      40_000,
      'a DryRunDecision Event',
    );
    expect(event.involvedObject).toMatchObject({ kind: 'InferencePipeline', name: 'captioner' });
    // The doc's curl, at the port the policy server got here.
    const curl = commands(SECTIONS[5]!).find((l) => l.startsWith('curl'))!;
    const url = shellWords(curl).find((w) => w.startsWith('http'))!.replace('127.0.0.1:8080', `127.0.0.1:${port}`);
    const decisions = await eventually(async () => {
      const body = (await (await fetch(url)).json()) as { decisions: DecisionRecord[] };
      return body.decisions.length > 0 ? body.decisions : undefined;
    }, 10_000, 'a decision at /api/decisions');
    expect(decisions[0]).toMatchObject({ pipelineId: 'ml/captioner', dryRun: true, selector: 'llm', bottleneck: 0 });
    // The LLM was called with the model from ConfigMap sair-llm and the key from Secret sair-llm.
    expect(llm.requests[0]!.body.model).toBe('Qwen/Qwen2.5-7B-Instruct');
    expect(llm.requests[0]!.headers.authorization).toBe('Bearer sk-replace-me');
    expect(await (await fetch(`http://127.0.0.1:${port}/`)).text()).toContain('<html');
    const status = await eventually(() => api.get<{ status?: { lastDecision?: { action: string } } }>('inferencepipelines.sair.dev', 'ml', 'captioner')!.status?.lastDecision, 10_000, 'the status');
    expect(status.action).toMatch(/^dry-run: /);

    // Nothing changed: no scale, no pod or Deployment annotation, replicas as they were.
    const writes = api.requests.slice(before).filter((r) => (r.verb === 'update' || r.verb === 'patch') && (r.resource === 'deployments.apps' || r.resource === 'pods'));
    expect(writes).toEqual([]);
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'encode')!.spec!.replicas).toBe(1);
    await policy.stop('SIGTERM');
    policy = undefined;
  }, 90_000);

  it('8. uninstall gives the HPA its behavior back and removes SAIR', async () => {
    const original = JSON.parse(api.get<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers.autoscaling', 'ml', 'decode')!.metadata!.annotations!['sair.dev/original-behavior']!) as object;
    await runSection(SECTIONS[7]!);
    const hpa = api.get<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers.autoscaling', 'ml', 'decode')!;
    expect(hpa.spec!.behavior).toEqual(original);
    expect(hpa.spec!.behavior!.scaleDown!.selectPolicy).not.toBe('Disabled');
    expect(hpa.metadata!.labels ?? {}).not.toHaveProperty('sair.dev/managed');
    expect(hpa.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/original-behavior');

    expect(api.get('mutatingwebhookconfigurations.admissionregistration.k8s.io', undefined, 'sair-webhook')).toBeUndefined();
    expect(api.get('customresourcedefinitions.apiextensions.k8s.io', undefined, 'inferencepipelines.sair.dev')).toBeUndefined();
    expect(api.get('namespaces', undefined, 'sair-system')).toBeUndefined();
    expect(api.get<k8s.V1Namespace>('namespaces', undefined, 'ml')!.metadata!.labels ?? {}).not.toHaveProperty('sair.dev/enabled');
    // A GPU pod created now is left as it is.
    const template = api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'encode')!.spec!.template;
    const pod = await api.clients('ml').core.createNamespacedPod({ namespace: 'ml', body: { metadata: { name: 'after', annotations: template.metadata!.annotations }, spec: template.spec! } });
    expect(pod.metadata!.annotations ?? {}).not.toHaveProperty('sair.dev/injected');
    // Every kubectl command of the doc that changes something was run; only reads were not.
    const changing = SECTIONS.flatMap(commands).filter((l) => l.startsWith('kubectl ') && !['get', 'port-forward'].includes(shellWords(l).find((w, i) => i > 0 && !w.startsWith('-') && shellWords(l)[i - 1] !== '-n')!));
    expect(ran).toEqual(changing);
  }, 30_000);
});
