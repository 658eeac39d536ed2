// What kube-apiserver does to a Pod besides storing it, each after the source it follows:
// - defaulting on decode (pkg/apis/core/v1/defaults.go SetDefaults_Pod, SetDefaults_PodSpec,
//   SetDefaults_Container): requests copied from limits where unset (Pods only, not templates),
//   restartPolicy, dnsPolicy, terminationGracePeriodSeconds, schedulerName, securityContext,
//   enableServiceLinks, terminationMessagePath/Policy, imagePullPolicy, port protocols;
// - the ServiceAccount admission plugin on CREATE (plugin/pkg/admission/serviceaccount/admission.go):
//   serviceAccountName "default", and the projected `kube-api-access-<5 chars>` volume mounted
//   read-only at /var/run/secrets/kubernetes.io/serviceaccount in every container without a mount
//   there, unless automountServiceAccountToken is false;
// - built-in validation (pkg/apis/core/validation/validation.go ValidatePodCreate, the parts named in
//   validatePod below), answered as 422 Invalid with one cause per error;
// - graceful deletion (pkg/registry/core/pod/strategy.go CheckGracefulDelete).
// Left out: the ServiceAccount's existence check (no ServiceAccount controller runs here, so no
// `default` ServiceAccount exists), DefaultTolerationSeconds and Priority admission, pod update
// validation (which spec fields may change), quantity canonicalisation.
import { randomInt } from 'node:crypto';
import type { KubeObject } from './resources.js';
import type { SchemaCause } from './schema.js';

type Json = Record<string, unknown>;
interface Container extends Json {
  name?: string;
  image?: string;
  resources?: { limits?: Record<string, string | number>; requests?: Record<string, string | number> };
  volumeMounts?: { name?: string; mountPath?: string }[];
  ports?: Json[];
}
interface PodSpec extends Json {
  containers?: Container[];
  initContainers?: Container[];
  volumes?: ({ name?: string } & Json)[];
}

export const TOKEN_MOUNT_PATH = '/var/run/secrets/kubernetes.io/serviceaccount';
const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';

function specOf(pod: KubeObject): PodSpec {
  return (pod.spec ??= {}) as PodSpec;
}

function containersOf(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])];
}

/** kubelet's default: Always for :latest or no tag, IfNotPresent for any other tag or a digest. */
function pullPolicy(image: string): string {
  if (image.includes('@')) return 'IfNotPresent';
  const last = image.slice(image.lastIndexOf('/') + 1);
  const tag = last.includes(':') ? last.slice(last.indexOf(':') + 1) : '';
  return tag === '' || tag === 'latest' ? 'Always' : 'IfNotPresent';
}

/** Scheme defaulting of a Pod, run on every decode and again after each webhook's patch. */
export function defaultPod(pod: KubeObject): void {
  const spec = specOf(pod);
  spec.restartPolicy ??= 'Always';
  spec.dnsPolicy ??= 'ClusterFirst';
  spec.terminationGracePeriodSeconds ??= 30;
  spec.schedulerName ??= 'default-scheduler';
  spec.securityContext ??= {};
  spec.enableServiceLinks ??= true;
  for (const c of containersOf(spec)) {
    c.terminationMessagePath ??= '/dev/termination-log';
    c.terminationMessagePolicy ??= 'File';
    if (typeof c.image === 'string') c.imagePullPolicy ??= pullPolicy(c.image);
    for (const p of c.ports ?? []) p.protocol ??= 'TCP';
    const limits = c.resources?.limits;
    if (limits && Object.keys(limits).length > 0) {
      const requests = (c.resources!.requests ??= {});
      for (const [k, v] of Object.entries(limits)) requests[k] ??= v;
    }
  }
}

/** The ServiceAccount admission plugin on a Pod CREATE. */
export function admitServiceAccount(pod: KubeObject): void {
  const spec = specOf(pod);
  if (pod.metadata?.annotations?.['kubernetes.io/config.mirror'] !== undefined) return;
  spec.serviceAccountName ||= 'default';
  // The v1 form keeps the deprecated alias in step.
  spec.serviceAccount = spec.serviceAccountName;
  if (spec.automountServiceAccountToken === false) return;
  const volumes = (spec.volumes ??= []);
  const existing = volumes.find(
    (v) => typeof v.name === 'string' && v.name.startsWith('kube-api-access-') && v.projected,
  );
  const name =
    existing?.name ??
    `kube-api-access-${Array.from({ length: 5 }, () => NAME_CHARS[randomInt(NAME_CHARS.length)]).join('')}`;
  let needed = false;
  for (const c of containersOf(spec)) {
    const mounts = (c.volumeMounts ??= []);
    if (mounts.some((m) => m.mountPath === TOKEN_MOUNT_PATH)) continue;
    mounts.push({ name, readOnly: true, mountPath: TOKEN_MOUNT_PATH } as { name: string; mountPath: string });
    needed = true;
  }
  if (needed && !existing) {
    volumes.push({
      name,
      projected: {
        defaultMode: 420,
        sources: [
          { serviceAccountToken: { expirationSeconds: 3607, path: 'token' } },
          { configMap: { name: 'kube-root-ca.crt', items: [{ key: 'ca.crt', path: 'ca.crt' }] } },
          {
            downwardAPI: {
              items: [{ path: 'namespace', fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } }],
            },
          },
        ],
      },
    });
  }
}

const SUFFIXES: Record<string, number> = {
  n: 1e-9,
  u: 1e-6,
  m: 1e-3,
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** A resource.Quantity's value, or undefined when it does not parse. */
export function quantityValue(q: string | number): number | undefined {
  if (typeof q === 'number') return q;
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(q.trim());
  if (!m) return undefined;
  const base = Number(m[1]);
  return m[2] ? Number(m[1] + m[2]) : base * SUFFIXES[m[3] ?? '']!;
}

/** Overcommit is allowed for native resources (no domain, or kubernetes.io/) other than hugepages. */
function overcommitAllowed(name: string): boolean {
  const native = !name.includes('/') || name.includes('kubernetes.io/');
  return native && !name.startsWith('hugepages-');
}

function validateResources(c: Container, path: string): SchemaCause[] {
  const causes: SchemaCause[] = [];
  const limits = c.resources?.limits ?? {};
  const requests = c.resources?.requests ?? {};
  for (const [name, request] of Object.entries(requests)) {
    const limit = limits[name];
    const r = quantityValue(request);
    if (limit === undefined) {
      if (!overcommitAllowed(name))
        causes.push({
          field: `${path}.resources.limits`,
          message: 'Required value: Limit must be set for non overcommitable resources',
        });
      continue;
    }
    const l = quantityValue(limit);
    if (r === undefined || l === undefined) continue;
    if (r !== l && !overcommitAllowed(name)) {
      causes.push({
        field: `${path}.resources.requests`,
        message: `Invalid value: "${request}": must be equal to ${name} limit of ${limit}`,
      });
    } else if (r > l) {
      causes.push({
        field: `${path}.resources.requests`,
        message: `Invalid value: "${request}": must be less than or equal to ${name} limit of ${limit}`,
      });
    }
  }
  return causes;
}

/**
 * Built-in Pod validation, the checks that SAIR's webhook can break: volume names unique, every
 * volumeMount names a volume, mount paths unique per container, container names unique,
 * requests within limits (equal to them for extended resources).
 */
export function validatePod(pod: KubeObject): SchemaCause[] {
  const spec = specOf(pod);
  const causes: SchemaCause[] = [];
  const volumeNames = new Set<string>();
  (spec.volumes ?? []).forEach((v, i) => {
    if (!v.name) causes.push({ field: `spec.volumes[${i}].name`, message: 'Required value' });
    else if (volumeNames.has(v.name))
      causes.push({ field: `spec.volumes[${i}].name`, message: `Duplicate value: "${v.name}"` });
    else volumeNames.add(v.name);
  });
  if ((spec.containers ?? []).length === 0)
    causes.push({ field: 'spec.containers', message: 'Required value' });
  const containerNames = new Set<string>();
  for (const [kind, list] of [
    ['initContainers', spec.initContainers ?? []],
    ['containers', spec.containers ?? []],
  ] as const) {
    list.forEach((c, i) => {
      const path = `spec.${kind}[${i}]`;
      if (!c.name) causes.push({ field: `${path}.name`, message: 'Required value' });
      else if (containerNames.has(c.name))
        causes.push({ field: `${path}.name`, message: `Duplicate value: "${c.name}"` });
      else containerNames.add(c.name);
      if (!c.image) causes.push({ field: `${path}.image`, message: 'Required value' });
      const mountPaths = new Set<string>();
      (c.volumeMounts ?? []).forEach((m, j) => {
        const mp = `${path}.volumeMounts[${j}]`;
        if (!m.name) causes.push({ field: `${mp}.name`, message: 'Required value' });
        else if (!volumeNames.has(m.name)) causes.push({ field: `${mp}.name`, message: `Not found: "${m.name}"` });
        if (!m.mountPath) causes.push({ field: `${mp}.mountPath`, message: 'Required value' });
        else if (mountPaths.has(m.mountPath))
          causes.push({ field: `${mp}.mountPath`, message: `Invalid value: "${m.mountPath}": must be unique` });
        if (m.mountPath) mountPaths.add(m.mountPath);
      });
      causes.push(...validateResources(c, path));
    });
  }
  return causes;
}

/**
 * The grace period a DELETE gets: the request's gracePeriodSeconds, else the pod's
 * terminationGracePeriodSeconds (a negative one counts as 1); 0 for a pod never scheduled or
 * already finished.
 */
export function gracePeriodOf(pod: KubeObject, requested: number | undefined): number {
  const spec = (pod.spec ?? {}) as { nodeName?: string; terminationGracePeriodSeconds?: number };
  const phase = (pod.status as { phase?: string } | undefined)?.phase;
  if (!spec.nodeName || phase === 'Succeeded' || phase === 'Failed') return 0;
  const period = requested ?? spec.terminationGracePeriodSeconds ?? 30;
  return period < 0 ? 1 : period;
}
