// docs/quickstart.md, command by command, against the fake API server: each `kubectl` line of the
// doc's shell blocks goes through test/docs/kubectl.ts (client-node), each `npx sair check` runs the
// real command here (pointed at the fake API server and Prometheus), each `npm run image` is checked
// for the docker commands it would run (no Docker engine here), the YAML it applies is the
// doc's own, and after each section the test checks what the doc says happened. Where the doc's
// cluster would do something on its own, the test does it with the real parts, as processes with
// the args and env of what `kubectl apply -k` stored: the sair-certs Job and the sair-webhook
// Deployment after the install, a pod from the Deployment's template for the ReplicaSet controller,
// and the sair-policy Deployment (envFrom ConfigMap sair-policy) on a simulated load for the
// dashboard and DryRun steps. Each of those processes uses its ServiceAccount's token, so the RBAC
// that `kubectl apply -k` stored decides what it may do.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { jest } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { imageCommands, parseImageArgs } from '../../scripts/image.js';
import { command as checkCommand } from '../../src/cmd/check.js';
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
import { kustomizeBuild, yamlDocs } from '../support/manifests.js';
import { Kubectl, codeBlocks, docFiles, shellWords, type Obj } from './kubectl.js';
import { eventually } from '../support/eventually.js';

const ROOT = resolve(import.meta.dirname, '../..');
const DOC = readFileSync(resolve(ROOT, 'docs/quickstart.md'), 'utf8');
const SECTIONS = [
  '1. Check the cluster',
  '2. Build the image and choose the components',
  '3. Install with kustomize',
  '4. Opt a namespace in',
  '5. Give a GPU pod a quota',
  '6. Define an InferencePipeline',
  '7. Point the policy server at an LLM',
  '8. Watch the dashboard',
  '9. Switch to DryRun',
  '10. Uninstall',
];
const PKG = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { version: string };

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
/** This machine as the cluster's node: its "/" for hostPath and pod volumes, and the kubeconfigs of in-cluster clients. */
let host: string;
let prom: FakePrometheus;
let llm: FakeLlm;
let policy: SairProcess | undefined;
/** Where the webhook Service resolves to once the test has started the webhook. */
let webhookPort = 0;
const ran: string[] = [];
/** What each `npx sair check` of the doc printed, in order. */
const checks: string[] = [];

/**
 * `sair check` as the doc runs it, in this process, with flags that point it at the fake API server
 * and Prometheus instead of the kubeconfig and the in-cluster URL.
 */
async function sairCheck(args: string[]): Promise<void> {
  const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    await checkCommand.run([...args, '--kube-api-server', api.url, '--prometheus-url', prom.url], {});
    checks.push(out.mock.calls.map((c) => String(c[0])).join(''));
  } finally {
    out.mockRestore();
  }
}

/** The kubeconfig of a pod of ServiceAccount sair-system/`serviceAccount`: the API server and the SA's token. */
function kubeconfigFor(serviceAccount: string): string {
  const file = join(host, `kubeconfig-${serviceAccount}`);
  writeFileSync(file, api.kubeConfig('sair-system', api.tokenFor('sair-system', serviceAccount)).exportConfig());
  return file;
}

async function runSection(section: string): Promise<void> {
  for (const line of commands(section)) {
    const [tool, ...args] = shellWords(line);
    if (tool === 'kubectl') {
      const r = await kubectl.run(line);
      if (r.ran) ran.push(line);
    } else if (tool === 'curl') {
      // Sent by the dashboard step itself, at the port the policy server got here.
    } else if (tool === 'npx' && args[0] === 'sair' && args[1] === 'check') {
      await sairCheck(args.slice(2));
    } else if (tool === 'npm' && args[0] === 'run' && args[1] === 'image') {
      // No Docker engine here: the doc's arguments must give the docker commands the script runs.
      const o = parseImageArgs(args.slice(args.indexOf('--') + 1), PKG.version);
      expect(imageCommands(o, { buildx: true })).toEqual([expect.arrayContaining(['docker', 'buildx', 'build', '--push'])]);
    } else if (!(tool === 'npm' && args[0] === 'ci')) throw new Error(`docs/quickstart.md: no way to run here: ${line}`);
  }
}

beforeAll(async () => {
  host = mkdtempSync(join(tmpdir(), 'sair-quickstart-'));
  api = await startFakeApiServer({
    version: { major: '1', minor: '36', gitVersion: 'v1.36.2' },
    namespaces: ['default', 'kube-system'],
    simulateDeployments: true,
    admission: { resolveService: (svc) => `https://localhost:${webhookPort}${svc.path ?? '/'}` },
  });
  // The cluster's GPU node.
  api.seed({ apiVersion: 'v1', kind: 'Node', metadata: { name: 'gpu-node-1', labels: { 'kubernetes.io/hostname': 'gpu-node-1' } } });
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
  it('has the ten sections, and every command in it is kubectl, npx sair, npm (run here) or curl against the policy server', () => {
    expect(codeBlocks(DOC).map((b) => b.section).filter((s, i, a) => s && a.indexOf(s) === i)).toEqual(SECTIONS);
    for (const s of SECTIONS) {
      for (const line of commands(s)) expect(shellWords(line)[0]).toMatch(/^(kubectl|curl|npx|npm)$/);
    }
  });

  it('1. sair check before the install: the version passes, and it says SAIR is not installed', async () => {
    await runSection(SECTIONS[0]!);
    expect(checks[0]).toMatch(/√ kubernetes-version +Kubernetes v1\.36\.2 is supported/);
    expect(checks[0]).toMatch(/× gpu-nodes +no node is labelled sair\.dev\/gpu-node=true/);
    expect(checks[0]).toMatch(/× pod-security +namespace sair-system does not exist: SAIR is not installed\n +fix: kubectl apply -k manifests\//);
  });

  it('2. the image command is one the script accepts; the components the doc shows build', async () => {
    await runSection(SECTIONS[1]!);
    const shown = codeBlocks(DOC).find((b) => b.section === SECTIONS[1] && b.lang === 'yaml')!.body;
    const { components } = yamlDocs<{ components: string[] }>(shown, 'the doc')[0]!;
    const built = kustomizeBuild(resolve(ROOT, 'manifests'), { components });
    expect(built.some((o) => o.kind === 'ServiceMonitor')).toBe(true);
    expect(built.some((o) => o.kind === 'Job')).toBe(false);
  });

  it('3. installs with kustomize: every object of manifests/ validates, and the node is labelled for the device plugin', async () => {
    await runSection(SECTIONS[2]!);
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
    expect(node.metadata!.labels).toMatchObject({ 'nvidia.com/gpu.deploy.device-plugin': 'false' });
    // sair check after the apply: what the install itself decides passes; the rest waits for pods.
    for (const id of ['kubernetes-version', 'gpu-nodes', 'gpu-ownership', 'pod-security']) expect(checks[1]).toMatch(new RegExp(`√ ${id} `));

    // The cluster then runs the sair-certs Job (its args; the certificate also names localhost, where
    // this machine reaches the Service) and the webhook Deployment as stored, Secret sair-webhook-tls mounted.
    const job = built.find((o) => o.kind === 'Job') as Obj & k8s.V1Job;
    const [command, ...args] = job.spec!.template.spec!.containers[0]!.args!;
    const certsJob = SairProcess.start(command!, [...args, '--extra-names', 'localhost'], { KUBECONFIG: kubeconfigFor(job.spec!.template.spec!.serviceAccountName!) });
    expect(await certsJob.waitForExit(60_000)).toEqual({ code: 0, signal: null });
    const deployment = api.get<k8s.V1Deployment>('deployments.apps', 'sair-system', 'sair-webhook')!;
    const view = containerView(podOf(deployment, 'sair-webhook-6f8d7c5b9-p2r4t', 'gpu-node-1'), 'webhook', { hostRoot: host, secrets: (name) => api.get<k8s.V1Secret>('secrets', 'sair-system', name)?.data });
    webhook = SairProcess.start('webhook', ['--port', '0', '--metrics-port', '0', '--host', '127.0.0.1'], view.env);
    webhookPort = (await webhook.waitForLog((l) => l.msg === 'webhook listening', 60_000, 'the webhook to listen'))['port'] as number;
  }, 30_000);

  it('4. opts the namespace in', async () => {
    await runSection(SECTIONS[3]!);
    expect(api.get<k8s.V1Namespace>('namespaces', undefined, 'ml')!.metadata!.labels).toMatchObject({ 'sair.dev/enabled': 'true' });
  });

  it('5. a pod from the annotated template gets the shim and its quota; the HPA is taken over; a bad value is refused as the doc says', async () => {
    await runSection(SECTIONS[4]!);
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

  it('5b. an opted-in namespace may enforce Pod Security baseline: the injected pod needs no hostPath', async () => {
    expect(api.get<k8s.V1Namespace>('namespaces', undefined, 'ml')!.metadata!.labels).toMatchObject({ 'pod-security.kubernetes.io/enforce': 'baseline' });
    const template = api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'encode')!.spec!.template;
    const pod = await api.clients('ml').core.createNamespacedPod({ namespace: 'ml', body: { metadata: { name: 'encode-baseline', annotations: template.metadata!.annotations }, spec: template.spec! } });
    expect(pod.metadata!.annotations).toMatchObject({ 'sair.dev/injected': 'true' });
    expect((pod.spec!.volumes ?? []).filter((v) => v.hostPath)).toEqual([]);
  });

  it('6. the InferencePipeline is stored and is one the policy server accepts', async () => {
    await runSection(SECTIONS[5]!);
    const stored = api.get('inferencepipelines.sair.dev', 'ml', 'captioner');
    const spec = toPipelineSpec(parseInferencePipeline(stored));
    expect(spec).toMatchObject({ id: 'ml/captioner', sloP99Ms: 500, mode: 'Active', stages: [{ name: 'encode', gpuCores: { min: 10, max: 90, step: 20 } }, { name: 'decode', upstream: [0] }] });
  });

  it('7. the LLM endpoint, model and key reach the policy server through ConfigMap and Secret sair-llm', async () => {
    await runSection(SECTIONS[6]!);
    const llmSettings = await resolveLlmSettings(api.clients().core, { namespace: 'sair-system', configMap: 'sair-llm', secret: { name: 'sair-llm', key: 'apiKey' } });
    expect(llmSettings).toMatchObject({ baseUrl: 'http://vllm.llm.svc:8000/v1', model: 'Qwen/Qwen2.5-7B-Instruct', apiKey: 'sk-replace-me' });
    const data = api.get<k8s.V1ConfigMap>('configmaps', 'sair-system', 'sair-policy')!.data!;
    expect(loadPolicyConfig(data, [])).toMatchObject({ llmConfigMap: 'sair-llm', llmSecret: 'sair-llm' });
    const restarted = api.get<k8s.V1Deployment>('deployments.apps', 'sair-system', 'sair-policy')!;
    expect(restarted.spec!.template.metadata!.annotations).toHaveProperty(['kubectl.kubernetes.io/restartedAt']);
  });

  it('8 and 9. in DryRun the policy server decides and reports (Event, status, the dashboard API) and changes nothing', async () => {
    await runSection(SECTIONS[7]!);
    await runSection(SECTIONS[8]!);
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
    policy = SairProcess.start('policy', ['--prometheus-url', prom.url, '--llm-base-url', llm.url, '--port', '0', '--host', '127.0.0.1'], { ...view.env, KUBECONFIG: kubeconfigFor('sair-policy') });
    const port = (await policy.waitForLog((l) => l.msg === 'HTTP API listening', 60_000, 'the HTTP API'))['port'] as number;

    const event = await eventually(
      async () => (await api.clients('ml').core.listNamespacedEvent({ namespace: 'ml', fieldSelector: 'reason=DryRunDecision' })).items[0],
      40_000,
      'a DryRunDecision Event',
    );
    expect(event.involvedObject).toMatchObject({ kind: 'InferencePipeline', name: 'captioner' });
    // The doc's curl, at the port the policy server got here.
    const curl = commands(SECTIONS[7]!).find((l) => l.startsWith('curl'))!;
    const url = shellWords(curl).find((w) => w.startsWith('http'))!.replace('127.0.0.1:8080', `127.0.0.1:${port}`);
    const decisions = await eventually(async () => {
      // The doc's $(kubectl -n ml create token sair-viewer): a token of that ServiceAccount.
      const body = (await (await fetch(url, { headers: { authorization: `Bearer ${api.tokenFor('ml', 'sair-viewer')}` } })).json()) as { decisions: DecisionRecord[] };
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

  it('10. uninstall gives the HPA its behavior back and removes SAIR', async () => {
    const original = JSON.parse(api.get<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers.autoscaling', 'ml', 'decode')!.metadata!.annotations!['sair.dev/original-behavior']!) as object;
    await runSection(SECTIONS[9]!);
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
    // The Job and the policy server worked with their ServiceAccounts' tokens, within the RBAC the doc installed.
    const users = new Set(api.requests.map((r) => r.user));
    for (const sa of ['sair-certs', 'sair-policy']) expect(users).toContain(`system:serviceaccount:sair-system:${sa}`);
    expect(api.requests.filter((r) => r.user?.startsWith('system:serviceaccount:') && (r.status === 401 || r.status === 403))).toEqual([]);
  }, 30_000);
});
