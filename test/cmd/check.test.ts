// `sair check` against the fake API server and fake Prometheus: a healthy install passes every
// check, and each way an install can go wrong fails (or warns) the check that
// covers it, with a fix. The cluster is what `kubectl apply -k manifests/` stores (the built
// MutatingWebhookConfiguration, a Secret from `sair certs`' own generator) plus what the cluster's
// controllers and kubelets would write: node status, pods with their conditions, the Lease.
import { jest } from '@jest/globals';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { command } from '../../src/cmd/check.js';
import { runChecks, type CheckResult } from '../../src/check/checks.js';
import { observeCluster, QUERIES } from '../../src/check/observe.js';
import { generateCertificates, serviceDnsNames } from '../../src/webhook/certs.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { startFakePrometheus, type FakePrometheus } from '../support/fake-prometheus.js';
import { kustomizeBuild } from '../support/manifests.js';

const NS = 'sair-system';
const b64 = (s: string) => Buffer.from(s).toString('base64');
const certs = generateCertificates({ commonName: 'sair-webhook', dnsNames: serviceDnsNames('sair-webhook', NS), validityDays: 365 });
const otherCa = generateCertificates({ commonName: 'other', dnsNames: ['other'], validityDays: 365 });
const mwc = kustomizeBuild(path.resolve('manifests')).find((o) => o.kind === 'MutatingWebhookConfiguration') as unknown as k8s.V1MutatingWebhookConfiguration;

function pod(name: string, app: string, node: string, ready = true, extra: Partial<k8s.V1PodStatus> = {}): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: NS, labels: { 'app.kubernetes.io/name': app } },
    spec: { nodeName: node, containers: [{ name: 'c', image: 'registry.example.com/sair:0.1.0' }] },
    status: { phase: 'Running', conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }], ...extra },
  };
}

function node(name: string, labels: Record<string, string>, allocatable: Record<string, string>): k8s.V1Node {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels }, status: { capacity: allocatable, allocatable } };
}

/** A cluster where SAIR is installed and working. */
function healthy(api: FakeApiServer, prom: FakePrometheus): void {
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'privileged' } } });
  api.seed(node('gpu-node-1', { 'sair.dev/gpu-node': 'true' }, { cpu: '32', 'sair.dev/gpu': '20' }));
  api.seed(node('gpu-node-2', {}, { cpu: '32', 'nvidia.com/gpu': '4' }));
  api.seed(pod('sair-device-plugin-x7k2p', 'sair-device-plugin', 'gpu-node-1'));
  api.seed(pod('sair-webhook-6f8d7c5b9-p2r4t', 'sair-webhook', 'gpu-node-2'));
  api.seed(pod('sair-policy-7b9c5d4f6-k8x2n', 'sair-policy', 'gpu-node-2'));
  api.seed({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'sair-webhook', namespace: NS }, spec: { selector: { 'app.kubernetes.io/name': 'sair-webhook' }, ports: [{ name: 'https', port: 443 }] } });
  api.seed({ ...mwc, webhooks: mwc.webhooks!.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: b64(certs.caCert) } })) });
  api.seed({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'sair-webhook-tls', namespace: NS, labels: { 'app.kubernetes.io/managed-by': 'sair-certs' } }, data: { 'tls.crt': b64(certs.cert), 'tls.key': b64(certs.key), 'ca.crt': b64(certs.caCert) } });
  api.seed({ apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sair-certs', namespace: NS } });
  api.seed({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'sair-policy', namespace: NS }, data: { SAIR_PROMETHEUS_URL: prom.url } });
  const now = new Date().toISOString();
  api.seed({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'sair-policy', namespace: NS }, spec: { holderIdentity: 'sair-policy-7b9c5d4f6-k8x2n', leaseDurationSeconds: 15, renewTime: now, acquireTime: now } });
  prom.reset();
  prom.on(QUERIES.devicePlugins, { vector: [{ value: '1' }] });
  prom.on(QUERIES.policyServers, { vector: [{ value: '2' }] });
}

describe('sair check', () => {
  let api: FakeApiServer;
  let prom: FakePrometheus;

  const check = async (server = api, prometheusUrl?: string) => runChecks(await observeCluster(server.clients(), { namespace: NS, prometheusUrl, timeoutMs: 1_000, now: new Date() }));
  const one = async (id: string, server = api, prometheusUrl?: string): Promise<CheckResult> => (await check(server, prometheusUrl)).find((r) => r.id === id)!;

  beforeAll(async () => {
    api = await startFakeApiServer({ version: { major: '1', minor: '36', gitVersion: 'v1.36.2' } });
    prom = await startFakePrometheus();
  });
  afterAll(async () => {
    await Promise.all([api.close(), prom.close()]);
  });
  beforeEach(() => healthy(api, prom));

  it('passes every check on a healthy install, reading Prometheus from ConfigMap sair-policy', async () => {
    const results = await check();
    expect(results.filter((r) => r.status !== 'ok')).toEqual([]);
    expect(results.map((r) => r.id)).toEqual(['kubernetes-version', 'gpu-nodes', 'gpu-ownership', 'pod-security', 'images', 'device-plugin', 'certificates', 'webhook', 'prometheus', 'policy-leader']);
    expect(prom.queries).toEqual(expect.arrayContaining(Object.values(QUERIES)));
  });

  it('the command prints one line per check and exits 0, or 1 when a check fails', async () => {
    const out = jest.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await command.run(['--kube-api-server', api.url], {})).toBe(0);
      expect(String(out.mock.calls.at(-1)![0])).toMatch(/√ kubernetes-version +Kubernetes v1\.36\.2 is supported \(1\.35 to 1\.37\)[\s\S]*Status: 0 failed, 0 warning\(s\), 10 passed/);
      api.remove('leases', NS, 'sair-policy');
      expect(await command.run(['--kube-api-server', api.url], {})).toBe(1);
      expect(String(out.mock.calls.at(-1)![0])).toMatch(/× policy-leader +no policy server holds Lease sair-system\/sair-policy[^\n]*\n +fix: kubectl -n sair-system get pods/);
    } finally {
      out.mockRestore();
    }
  });

  it('fails a Kubernetes older than the supported range and warns on a newer one', async () => {
    for (const [minor, status, text] of [['34', 'fail', 'upgrade the cluster to 1.35'], ['38', 'warn', 'it should work']] as const) {
      const other = await startFakeApiServer({ version: { major: '1', minor, gitVersion: `v1.${minor}.0` } });
      try {
        expect(await one('kubernetes-version', other)).toMatchObject({ status, fix: expect.stringContaining(text) });
      } finally {
        await other.close();
      }
    }
  });

  it('fails when no node is labelled for SAIR, naming a GPU node to label', async () => {
    api.seed(node('gpu-node-1', {}, { cpu: '32', 'nvidia.com/gpu': '2' }));
    expect(await one('gpu-nodes')).toMatchObject({ status: 'fail', fix: expect.stringContaining('kubectl label node gpu-node-1 sair.dev/gpu-node=true') });
  });

  it('fails when the NVIDIA device plugin also hands out the GPUs of a SAIR node, naming its pod and the GPU Operator label', async () => {
    api.seed(node('gpu-node-1', { 'sair.dev/gpu-node': 'true' }, { cpu: '32', 'sair.dev/gpu': '20', 'nvidia.com/gpu': '2' }));
    api.seed({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'nvidia-device-plugin-daemonset-q8w2z', namespace: 'kube-system' }, spec: { nodeName: 'gpu-node-1', containers: [{ name: 'nvidia-device-plugin-ctr', image: 'nvcr.io/nvidia/k8s-device-plugin:v0.17.0' }] } });
    try {
      const r = await one('gpu-ownership');
      expect(r.status).toBe('fail');
      expect(r.message).toContain('gpu-node-1 also advertise nvidia.com/gpu from another device plugin (kube-system/nvidia-device-plugin-daemonset-q8w2z)');
      expect(r.fix).toContain('kubectl label node gpu-node-1 nvidia.com/gpu.deploy.device-plugin=false');
    } finally {
      api.remove('pods', 'kube-system', 'nvidia-device-plugin-daemonset-q8w2z');
    }
  });

  it('fails Pod Security levels that refuse the device plugin', async () => {
    api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS, labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } } });
    expect(await one('pod-security')).toMatchObject({ status: 'fail', message: expect.stringContaining('enforces Pod Security level baseline'), fix: `kubectl label namespace ${NS} pod-security.kubernetes.io/enforce=privileged --overwrite` });
  });

  it('fails when pods cannot pull the image, pointing at npm run image and images:', async () => {
    api.seed(pod('sair-webhook-6f8d7c5b9-p2r4t', 'sair-webhook', 'gpu-node-2', false, { containerStatuses: [{ name: 'webhook', image: 'registry.example.com/sair:0.1.0', imageID: '', ready: false, restartCount: 0, state: { waiting: { reason: 'ImagePullBackOff' } } }] }));
    expect(await one('images')).toMatchObject({ status: 'fail', message: expect.stringContaining('registry.example.com/sair:0.1.0: ImagePullBackOff'), fix: expect.stringContaining('images: in manifests/kustomization.yaml') });
  });

  it('fails when the device plugin has not registered sair.dev/gpu, with its pod\'s state', async () => {
    api.seed(node('gpu-node-1', { 'sair.dev/gpu-node': 'true' }, { cpu: '32' }));
    api.seed(pod('sair-device-plugin-x7k2p', 'sair-device-plugin', 'gpu-node-1', false));
    expect(await one('device-plugin')).toMatchObject({ status: 'fail', message: expect.stringContaining('gpu-node-1 (pod sair-device-plugin-x7k2p not ready: Running)'), fix: expect.stringContaining('logs -l app.kubernetes.io/name=sair-device-plugin') });
  });

  it('fails a caBundle that does not trust the serving certificate, and a webhook with no ready pod', async () => {
    api.seed({ ...mwc, webhooks: mwc.webhooks!.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: b64(otherCa.caCert) } })) });
    expect(await one('webhook')).toMatchObject({ status: 'fail', message: expect.stringContaining('does not trust the serving certificate'), fix: expect.stringContaining('create job --from=cronjob/sair-certs-renew') });
    healthy(api, prom);
    api.seed(pod('sair-webhook-6f8d7c5b9-p2r4t', 'sair-webhook', 'gpu-node-2', false));
    expect(await one('webhook')).toMatchObject({ status: 'fail', message: 'no ready pod behind Service sair-webhook (1 pod(s))' });
  });

  it('fails when the certs Job has not written the Secret', async () => {
    api.remove('secrets', NS, 'sair-webhook-tls');
    expect(await one('certificates')).toMatchObject({ status: 'fail', fix: `kubectl -n ${NS} logs job/sair-certs` });
  });

  describe('with cert-manager', () => {
    const annotated = () => api.seed({ ...mwc, metadata: { ...mwc.metadata, annotations: { 'cert-manager.io/inject-ca-from': 'sair-system/sair-webhook' } }, webhooks: mwc.webhooks!.map((w) => ({ ...w, clientConfig: { ...w.clientConfig, caBundle: b64(certs.caCert) } })) });

    it('fails two writers of the Secret (cert-manager and the certs Job)', async () => {
      annotated();
      expect(await one('certificates')).toMatchObject({ status: 'fail', message: expect.stringContaining('both cert-manager'), fix: expect.stringContaining('remove components/certs-job') });
    });

    it('fails when cert-manager is not installed, and passes once its Certificate is ready', async () => {
      annotated();
      api.remove('serviceaccounts', NS, 'sair-certs');
      api.seed({ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/tls', metadata: { name: 'sair-webhook-tls', namespace: NS, annotations: { 'cert-manager.io/certificate-name': 'sair-webhook' } }, data: { 'tls.crt': b64(certs.cert), 'tls.key': b64(certs.key) } });
      expect(await one('certificates')).toMatchObject({ status: 'fail', message: expect.stringContaining('cert-manager is not installed') });
      // client-node's models name the field x_kubernetes_preserve_unknown_fields and drop the wire name.
      const crd = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', metadata: { name: 'certificates.cert-manager.io' }, spec: { group: 'cert-manager.io', scope: 'Namespaced', names: { kind: 'Certificate', plural: 'certificates', singular: 'certificate', listKind: 'CertificateList' }, versions: [{ name: 'v1', served: true, storage: true, subresources: { status: {} }, schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } } }] } };
      await api.clients().kc.makeApiClient((await import('@kubernetes/client-node')).ApiextensionsV1Api).createCustomResourceDefinition({ body: crd as k8s.V1CustomResourceDefinition });
      try {
        // cert-manager writes a Certificate's conditions through the status subresource (a create drops status).
        const { custom } = api.clients();
        const ref = { group: 'cert-manager.io', version: 'v1', namespace: NS, plural: 'certificates', name: 'sair-webhook' };
        const setReady = async (condition: Record<string, string>) => {
          const current = (await custom.getNamespacedCustomObject(ref)) as Record<string, unknown>;
          await custom.replaceNamespacedCustomObjectStatus({ ...ref, body: { ...current, status: { conditions: [{ type: 'Ready', ...condition }] } } });
        };
        api.seed({ apiVersion: 'cert-manager.io/v1', kind: 'Certificate', metadata: { name: 'sair-webhook', namespace: NS }, spec: { secretName: 'sair-webhook-tls' } });
        await setReady({ status: 'False', message: 'Issuing certificate as Secret does not exist' });
        expect(await one('certificates')).toMatchObject({ status: 'fail', message: 'Certificate sair-webhook is not ready: Issuing certificate as Secret does not exist' });
        await setReady({ status: 'True' });
        expect(await one('certificates')).toMatchObject({ status: 'ok' });
        expect(await one('webhook')).toMatchObject({ status: 'ok' });
      } finally {
        api.remove('customresourcedefinitions.apiextensions.k8s.io', undefined, 'certificates.cert-manager.io');
      }
    });
  });

  it('fails a Prometheus it cannot reach or that lacks SAIR\'s series, and warns when honor_labels is off', async () => {
    const gone = await startFakePrometheus();
    const url = gone.url;
    await gone.close();
    expect(await one('prometheus', api, url)).toMatchObject({ status: 'fail', fix: expect.stringContaining('port-forward svc/prometheus-operated 9090') });
    prom.reset();
    prom.on(QUERIES.policyServers, { vector: [{ value: '2' }] });
    expect(await one('prometheus')).toMatchObject({ status: 'fail', message: expect.stringContaining("no series from SAIR's device plugin"), fix: expect.stringContaining('components/prometheus-operator') });
    healthy(api, prom);
    prom.on(QUERIES.exportedLabels, { vector: [{ value: '3' }] });
    expect(await one('prometheus')).toMatchObject({ status: 'warn', fix: expect.stringContaining('honor_labels: true') });
  });

  it('fails when no policy server holds the Lease, or its holder stopped renewing', async () => {
    const stale = new Date(Date.now() - 60_000).toISOString();
    api.seed({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'sair-policy', namespace: NS }, spec: { holderIdentity: 'sair-policy-7b9c5d4f6-k8x2n', leaseDurationSeconds: 15, renewTime: stale, acquireTime: stale } });
    expect(await one('policy-leader')).toMatchObject({ status: 'fail', message: expect.stringContaining('longer than its 15 s') });
  });
});
