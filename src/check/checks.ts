// The preflight checks of `sair check`, pure: each takes what was observed of the cluster and says
// ok, warn or fail, with the fix when it is not ok. Order: what the install needs first (version,
// nodes, GPU ownership, Pod Security, images), then what runs (device plugin, certificates,
// webhook, Prometheus, the policy server's leader).
import { X509Certificate } from 'node:crypto';
import { API_GROUP, RESOURCE_NVIDIA_GPU, RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE } from '../core/names.js';
import { KUBERNETES_MAJOR, NEWEST_SUPPORTED_MINOR, OLDEST_SUPPORTED_MINOR, SUPPORTED_KUBERNETES } from '../core/kubernetes-versions.js';
import type { ClusterFacts, PromAnswer } from './facts.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface CheckResult {
  id: string;
  status: CheckStatus;
  message: string;
  /** What to do, when not ok. */
  fix?: string;
}

export const LABEL_GPU_NODE = `${API_GROUP}/gpu-node`;
const WEBHOOK = 'sair-webhook';
const INJECT_CA_FROM = 'cert-manager.io/inject-ca-from';

const ok = (id: string, message: string): CheckResult => ({ id, status: 'ok', message });
const bad = (id: string, status: 'warn' | 'fail', message: string, fix: string): CheckResult => ({ id, status, message, fix });

const quantity = (v: string | undefined) => (v === undefined ? 0 : Number.parseInt(v, 10) || 0);
const gpuNodes = (f: ClusterFacts) => f.nodes.filter((n) => n.metadata?.labels?.[LABEL_GPU_NODE] === 'true');
const nameOf = (o: { metadata?: { name?: string } }) => o.metadata?.name ?? '?';
const podReady = (p: { status?: { conditions?: { type: string; status: string }[] } }) => p.status?.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') ?? false;

export function kubernetesVersion(f: ClusterFacts): CheckResult {
  const id = 'kubernetes-version';
  if ('error' in f.version) return bad(id, 'fail', `could not read the API server's version: ${f.version.error}`, 'check that kubectl reaches the cluster with the current kubeconfig (kubectl version)');
  const major = Number.parseInt(f.version.major, 10);
  const minor = Number.parseInt(f.version.minor, 10);
  const v = f.version.gitVersion;
  if (major !== KUBERNETES_MAJOR || minor < OLDEST_SUPPORTED_MINOR) return bad(id, 'fail', `Kubernetes ${v} is older than SAIR supports (${SUPPORTED_KUBERNETES})`, `upgrade the cluster to ${KUBERNETES_MAJOR}.${OLDEST_SUPPORTED_MINOR} or newer`);
  if (minor > NEWEST_SUPPORTED_MINOR) return bad(id, 'warn', `Kubernetes ${v} is newer than SAIR was checked against (${SUPPORTED_KUBERNETES})`, 'it should work; report what does not at the project');
  return ok(id, `Kubernetes ${v} is supported (${SUPPORTED_KUBERNETES})`);
}

export function nodesLabelled(f: ClusterFacts): CheckResult {
  const id = 'gpu-nodes';
  const labelled = gpuNodes(f);
  if (labelled.length > 0) return ok(id, `${labelled.length} node(s) labelled ${LABEL_GPU_NODE}=true: ${labelled.map(nameOf).join(', ')}`);
  const withGpus = f.nodes.filter((n) => quantity(n.status?.capacity?.[RESOURCE_NVIDIA_GPU]) > 0).map(nameOf);
  return bad(id, 'fail', `no node is labelled ${LABEL_GPU_NODE}=true, so the device plugin runs nowhere`, `label each GPU node whose GPUs SAIR may share: kubectl label node ${withGpus[0] ?? '<gpu-node>'} ${LABEL_GPU_NODE}=true${withGpus.length > 1 ? ` (GPU nodes: ${withGpus.join(', ')})` : ''}`);
}

/** On a SAIR node, only SAIR's device plugin may hand out GPUs: another one would give the same GPUs away twice. */
export function gpuOwnership(f: ClusterFacts): CheckResult {
  const id = 'gpu-ownership';
  const conflicts = gpuNodes(f).filter((n) => quantity(n.status?.allocatable?.[RESOURCE_NVIDIA_GPU]) > 0);
  if (conflicts.length === 0) return ok(id, `no other device plugin advertises ${RESOURCE_NVIDIA_GPU} on SAIR's nodes`);
  const plugins = f.podsOnGpuNodes.filter((p) => conflicts.some((n) => nameOf(n) === p.spec?.nodeName) && (p.spec?.containers ?? []).some((c) => /device-plugin/.test(c.image ?? '') && !/sair/.test(c.image ?? '')));
  const who = plugins.length > 0 ? ` (${plugins.map((p) => `${p.metadata?.namespace}/${nameOf(p)}`).join(', ')})` : '';
  return bad(
    id,
    'fail',
    `${conflicts.map(nameOf).join(', ')} also advertise ${RESOURCE_NVIDIA_GPU} from another device plugin${who}: the same GPUs would be handed out twice`,
    `keep the NVIDIA device plugin off SAIR's nodes: with the GPU Operator, kubectl label node ${nameOf(conflicts[0]!)} nvidia.com/gpu.deploy.device-plugin=false; otherwise give its DaemonSet a node affinity with ${LABEL_GPU_NODE} NotIn ["true"]`,
  );
}

export function podSecurity(f: ClusterFacts): CheckResult {
  const id = 'pod-security';
  if (!f.namespaceObject) return bad(id, 'fail', `namespace ${f.namespace} does not exist: SAIR is not installed`, 'kubectl apply -k manifests/ (see docs/quickstart.md)');
  const enforce = f.namespaceObject.metadata?.labels?.['pod-security.kubernetes.io/enforce'];
  if (enforce === 'privileged') return ok(id, `namespace ${f.namespace} enforces Pod Security level privileged (the device plugin mounts host paths)`);
  return bad(
    id,
    'fail',
    `namespace ${f.namespace} ${enforce ? `enforces Pod Security level ${enforce}` : 'has no pod-security.kubernetes.io/enforce label, so the cluster default applies'}; the device plugin's host paths need privileged`,
    `kubectl label namespace ${f.namespace} pod-security.kubernetes.io/enforce=privileged --overwrite`,
  );
}

export function images(f: ClusterFacts): CheckResult {
  const id = 'images';
  const stuck = f.sairPods.flatMap((p) =>
    (p.status?.containerStatuses ?? [])
      .filter((c) => ['ImagePullBackOff', 'ErrImagePull', 'InvalidImageName'].includes(c.state?.waiting?.reason ?? ''))
      .map((c) => `${nameOf(p)} (${c.image}: ${c.state!.waiting!.reason})`),
  );
  if (stuck.length === 0) return ok(id, `every pod in ${f.namespace} has its image`);
  return bad(id, 'fail', `pods cannot pull SAIR's image: ${stuck.join(', ')}`, 'build and push it (npm run image -- --image <registry>/sair:<tag> --push), set images: in manifests/kustomization.yaml to that name, and kubectl apply -k manifests/ again');
}

export function devicePlugin(f: ClusterFacts): CheckResult {
  const id = 'device-plugin';
  const nodes = gpuNodes(f);
  if (nodes.length === 0) return bad(id, 'fail', 'no SAIR node to check', `label a GPU node ${LABEL_GPU_NODE}=true first`);
  // A GPU held whole makes its slots unallocatable (and the reverse): a node with every GPU busy one
  // way still has the other resource's count, so only both at 0 means no plugin registered.
  const missing = nodes.filter((n) => quantity(n.status?.allocatable?.[RESOURCE_SAIR_GPU]) === 0 && quantity(n.status?.allocatable?.[RESOURCE_SAIR_GPU_WHOLE]) === 0);
  if (missing.length === 0) return ok(id, `${RESOURCE_SAIR_GPU} is allocatable on ${nodes.map((n) => `${nameOf(n)} (${n.status!.allocatable![RESOURCE_SAIR_GPU]})`).join(', ')}`);
  const detail = missing.map((n) => {
    const pod = f.sairPods.find((p) => p.spec?.nodeName === nameOf(n) && p.metadata?.labels?.['app.kubernetes.io/name'] === 'sair-device-plugin');
    return pod ? `${nameOf(n)} (pod ${nameOf(pod)} ${podReady(pod) ? 'ready' : `not ready: ${pod.status?.phase ?? 'unknown'}`})` : `${nameOf(n)} (no device plugin pod)`;
  });
  return bad(id, 'fail', `${RESOURCE_SAIR_GPU} is not allocatable on ${detail.join(', ')}: the device plugin has not registered with the kubelet`, `kubectl -n ${f.namespace} logs -l app.kubernetes.io/name=sair-device-plugin --tail=50 (it says why: no GPU found through NVML, the kubelet socket, ...); docs/device-plugin.md lists what the node needs`);
}

function pemCerts(pem: string): X509Certificate[] {
  return [...pem.matchAll(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g)].map((m) => new X509Certificate(m[0]));
}

export function certificates(f: ClusterFacts): CheckResult {
  const id = 'certificates';
  const certManager = f.webhookConfig?.metadata?.annotations?.[INJECT_CA_FROM] !== undefined;
  const secretByJob = f.webhookSecret?.metadata?.labels?.['app.kubernetes.io/managed-by'] === 'sair-certs';
  if (certManager && (f.certsJobInstalled || secretByJob)) {
    return bad(id, 'fail', `both cert-manager (${INJECT_CA_FROM}) and the sair certs Job write Secret sair-webhook-tls and the caBundle`, `keep one: with cert-manager, kubectl -n ${f.namespace} delete cronjob/sair-certs-renew job/sair-certs serviceaccount/sair-certs and remove components/certs-job from manifests/kustomization.yaml`);
  }
  if (certManager) {
    if (!f.certManagerInstalled) return bad(id, 'fail', 'the webhook expects cert-manager (components/cert-manager) but cert-manager is not installed', 'install cert-manager, or switch manifests/kustomization.yaml to components/certs-job and apply it again');
    const ready = f.certificate?.status?.conditions?.find((c) => c.type === 'Ready');
    if (ready?.status !== 'True') return bad(id, 'fail', `Certificate sair-webhook is not ready${ready?.message ? `: ${ready.message}` : ''}`, `kubectl -n ${f.namespace} describe certificate sair-webhook`);
    return ok(id, 'cert-manager issues the webhook certificate (Certificate sair-webhook is ready)');
  }
  if (!f.webhookSecret) return bad(id, 'fail', 'Secret sair-webhook-tls does not exist: the sair certs Job has not written it', `kubectl -n ${f.namespace} logs job/sair-certs`);
  return ok(id, 'the sair certs Job wrote Secret sair-webhook-tls');
}

/** The caBundle must trust the serving certificate, which must name the Service and be in date; pods must be ready behind the Service. */
export function webhook(f: ClusterFacts): CheckResult {
  const id = 'webhook';
  if (!f.webhookConfig) return bad(id, 'fail', `MutatingWebhookConfiguration ${WEBHOOK} does not exist`, 'kubectl apply -k manifests/');
  const bundles = (f.webhookConfig.webhooks ?? []).map((w) => w.clientConfig.caBundle ?? '');
  if (bundles.some((b) => b === '')) return bad(id, 'fail', `a webhook of ${WEBHOOK} has no caBundle, so the API server cannot call it`, certificatesFix(f));
  const crt = f.webhookSecret?.data?.['tls.crt'];
  if (!crt) return bad(id, 'fail', 'Secret sair-webhook-tls holds no tls.crt', certificatesFix(f));
  let serving: X509Certificate;
  try {
    serving = pemCerts(Buffer.from(crt, 'base64').toString('utf8'))[0]!;
  } catch (err) {
    return bad(id, 'fail', `tls.crt of Secret sair-webhook-tls is not a PEM certificate: ${(err as Error).message}`, certificatesFix(f));
  }
  const host = `${f.webhookConfig.webhooks?.[0]?.clientConfig.service?.name ?? WEBHOOK}.${f.namespace}.svc`;
  if (!serving.checkHost(host)) return bad(id, 'fail', `the serving certificate does not name ${host}`, certificatesFix(f));
  if (new Date(serving.validTo) <= f.now) return bad(id, 'fail', `the serving certificate expired on ${serving.validTo}`, certificatesFix(f));
  for (const b of bundles) {
    const cas = pemCerts(Buffer.from(b, 'base64').toString('utf8'));
    if (!cas.some((ca) => serving.verify(ca.publicKey))) return bad(id, 'fail', `the caBundle of ${WEBHOOK} does not trust the serving certificate in Secret sair-webhook-tls`, certificatesFix(f));
  }
  const selector = f.webhookService?.spec?.selector ?? {};
  const pods = f.sairPods.filter((p) => Object.entries(selector).every(([k, v]) => p.metadata?.labels?.[k] === v) && Object.keys(selector).length > 0);
  const ready = pods.filter(podReady);
  if (ready.length === 0) return bad(id, 'fail', `no ready pod behind Service ${WEBHOOK} (${pods.length} pod(s))`, `kubectl -n ${f.namespace} describe pods -l app.kubernetes.io/name=${WEBHOOK}; pods are created with no SAIR changes while it is down (failurePolicy Ignore)`);
  return ok(id, `${ready.length} webhook pod(s) ready; the caBundle trusts the certificate for ${host}, valid until ${serving.validTo}`);
}

function certificatesFix(f: ClusterFacts): string {
  return f.webhookConfig?.metadata?.annotations?.[INJECT_CA_FROM] ? `kubectl -n ${f.namespace} describe certificate sair-webhook (cert-manager's CA injector sets the caBundle)` : `kubectl -n ${f.namespace} create job --from=cronjob/sair-certs-renew sair-certs-now (the sair certs Job rewrites the Secret and the caBundle)`;
}

function count(a: PromAnswer): number | string {
  return 'error' in a ? a.error : (a.value ?? 0);
}

export function prometheus(f: ClusterFacts): CheckResult {
  const id = 'prometheus';
  const p = f.prometheus;
  const devicePlugins = count(p.devicePlugins);
  if (typeof devicePlugins === 'string') return bad(id, 'fail', `Prometheus at ${p.url} did not answer: ${devicePlugins}`, `reach it from here (kubectl -n monitoring port-forward svc/prometheus-operated 9090) and pass --prometheus-url http://127.0.0.1:9090; the policy server reads SAIR_PROMETHEUS_URL in ConfigMap ${f.namespace}/sair-policy`);
  const nodes = gpuNodes(f).length;
  const scrapeFix = `scrape SAIR's pods: with prometheus-operator, add components/prometheus-operator to manifests/kustomization.yaml (and the label your Prometheus selects ServiceMonitors by); otherwise a kubernetes-pods job that follows the prometheus.io/* annotations, with honor_labels: true`;
  if (devicePlugins === 0) return bad(id, 'fail', `Prometheus at ${p.url} has no series from SAIR's device plugin`, scrapeFix);
  const policy = count(p.policyServers);
  if (policy === 0 || typeof policy === 'string') return bad(id, 'fail', `Prometheus at ${p.url} has no series from the policy server`, scrapeFix);
  const exported = count(p.exportedLabels);
  if (typeof exported === 'number' && exported > 0) return bad(id, 'warn', `the device plugin is scraped without honor_labels: ${exported} per-pod GPU series keep the GPU pod's namespace and pod as exported_namespace and exported_pod (SAIR's queries read both; your dashboards may not)`, 'set honor_labels: true on the job that scrapes it (honorLabels: true with prometheus-operator, as components/prometheus-operator does)');
  return ok(id, `Prometheus at ${p.url} scrapes ${devicePlugins} of ${nodes} device plugin pod(s) and ${policy} policy server pod(s)`);
}

export function leader(f: ClusterFacts): CheckResult {
  const id = 'policy-leader';
  const spec = f.lease?.spec;
  const fix = `kubectl -n ${f.namespace} get pods -l app.kubernetes.io/name=sair-policy, then kubectl -n ${f.namespace} logs deploy/sair-policy`;
  if (!spec?.holderIdentity) return bad(id, 'fail', `no policy server holds Lease ${f.namespace}/sair-policy: nothing is autoscaled`, fix);
  const renewed = spec.renewTime ? new Date(spec.renewTime).getTime() : 0;
  const ageS = Math.round((f.now.getTime() - renewed) / 1000);
  if (ageS > (spec.leaseDurationSeconds ?? 15)) return bad(id, 'fail', `Lease ${f.namespace}/sair-policy was last renewed by ${spec.holderIdentity} ${ageS} s ago, longer than its ${spec.leaseDurationSeconds ?? 15} s: no policy server is leading`, fix);
  return ok(id, `${spec.holderIdentity} leads (Lease renewed ${ageS} s ago)`);
}

export const CHECKS = [kubernetesVersion, nodesLabelled, gpuOwnership, podSecurity, images, devicePlugin, certificates, webhook, prometheus, leader];

export function runChecks(f: ClusterFacts): CheckResult[] {
  return CHECKS.map((c) => c(f));
}
