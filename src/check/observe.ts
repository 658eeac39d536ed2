// The I/O of `sair check`: reads what the checks judge from the API server (as the kubeconfig's
// user) and Prometheus, and nothing else. A missing object is a fact (undefined), not an error.
import * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../common/errors.js';
import { statusOf, type KubeClients } from '../common/k8s.js';
import { LABEL_GPU_NODE } from './checks.js';
import type { ClusterFacts, PromAnswer } from './facts.js';

/** The default the policy server's ConfigMap names, when neither the flag nor the ConfigMap does. */
export const DEFAULT_PROMETHEUS_URL = 'http://prometheus-operated.monitoring.svc:9090';

export const QUERIES = {
  devicePlugins: 'count(sair_device_plugin_process_start_time_seconds)',
  policyServers: 'count(sair_policy_process_start_time_seconds)',
  exportedLabels: 'count(sair_device_plugin_pod_gpu_kernel_seconds_total{exported_pod!=""})',
} as const;

async function orMissing<T>(what: string, read: () => Promise<T>): Promise<T | undefined> {
  try {
    return await read();
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw new Error(`reading ${what}: ${errorMessage(err)}`, { cause: err });
  }
}

async function promQuery(url: string, query: string, timeoutMs: number): Promise<PromAnswer> {
  try {
    const res = await fetch(new URL('api/v1/query', url.endsWith('/') ? url : `${url}/`), {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ query }),
      signal: AbortSignal.timeout(timeoutMs),
    });
    const body = (await res.json()) as { status: string; error?: string; data?: { result?: { value: [number, string] }[] } };
    if (body.status !== 'success') return { error: `HTTP ${res.status}: ${body.error ?? 'error'}` };
    const first = body.data?.result?.[0];
    return { value: first ? Number(first.value[1]) : null };
  } catch (err) {
    return { error: errorMessage(err) };
  }
}

export interface ObserveOptions {
  namespace: string;
  /** From the flag; otherwise the policy server's ConfigMap, otherwise the default. */
  prometheusUrl?: string;
  timeoutMs: number;
  now: Date;
}

export async function observeCluster(clients: KubeClients, o: ObserveOptions): Promise<ClusterFacts> {
  const { core } = clients;
  const ns = o.namespace;
  const version = await clients.kc
    .makeApiClient(k8s.VersionApi)
    .getCode()
    .then((v) => ({ major: v.major, minor: v.minor.replace(/\D+$/, ''), gitVersion: v.gitVersion }))
    .catch((err: unknown) => ({ error: errorMessage(err) }));
  const nodes = (await core.listNode()).items;
  const gpuNodes = nodes.filter((n) => n.metadata?.labels?.[LABEL_GPU_NODE] === 'true').map((n) => n.metadata!.name!);
  const podsOnGpuNodes = (await Promise.all(gpuNodes.map((n) => core.listPodForAllNamespaces({ fieldSelector: `spec.nodeName=${n}` })))).flatMap((l) => l.items);
  const namespaceObject = await orMissing(`namespace ${ns}`, () => core.readNamespace({ name: ns }));
  const sairPods = namespaceObject ? (await core.listNamespacedPod({ namespace: ns })).items : [];
  const configMap = namespaceObject ? await orMissing(`ConfigMap ${ns}/sair-policy`, () => core.readNamespacedConfigMap({ name: 'sair-policy', namespace: ns })) : undefined;
  const prometheusUrl = o.prometheusUrl ?? configMap?.data?.['SAIR_PROMETHEUS_URL'] ?? DEFAULT_PROMETHEUS_URL;
  const certManagerInstalled = (await orMissing('CRD certificates.cert-manager.io', () => clients.kc.makeApiClient(k8s.ApiextensionsV1Api).readCustomResourceDefinition({ name: 'certificates.cert-manager.io' }))) !== undefined;
  const [devicePlugins, policyServers, exportedLabels] = await Promise.all([QUERIES.devicePlugins, QUERIES.policyServers, QUERIES.exportedLabels].map((q) => promQuery(prometheusUrl, q, o.timeoutMs)));
  return {
    namespace: ns,
    now: o.now,
    version,
    nodes,
    podsOnGpuNodes,
    sairPods,
    namespaceObject,
    webhookConfig: await orMissing('MutatingWebhookConfiguration sair-webhook', () => clients.admissionregistration.readMutatingWebhookConfiguration({ name: 'sair-webhook' })),
    webhookService: namespaceObject ? await orMissing(`Service ${ns}/sair-webhook`, () => core.readNamespacedService({ name: 'sair-webhook', namespace: ns })) : undefined,
    webhookSecret: namespaceObject ? await orMissing(`Secret ${ns}/sair-webhook-tls`, () => core.readNamespacedSecret({ name: 'sair-webhook-tls', namespace: ns })) : undefined,
    certsJobInstalled: namespaceObject ? (await orMissing(`ServiceAccount ${ns}/sair-certs`, () => core.readNamespacedServiceAccount({ name: 'sair-certs', namespace: ns }))) !== undefined : false,
    certManagerInstalled,
    certificate: certManagerInstalled
      ? ((await orMissing(`Certificate ${ns}/sair-webhook`, () => clients.custom.getNamespacedCustomObject({ group: 'cert-manager.io', version: 'v1', namespace: ns, plural: 'certificates', name: 'sair-webhook' }))) as ClusterFacts['certificate'])
      : undefined,
    lease: namespaceObject ? await orMissing(`Lease ${ns}/sair-policy`, () => clients.coordination.readNamespacedLease({ name: 'sair-policy', namespace: ns })) : undefined,
    prometheus: { url: prometheusUrl, devicePlugins: devicePlugins!, policyServers: policyServers!, exportedLabels: exportedLabels! },
  };
}
