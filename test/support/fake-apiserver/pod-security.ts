// Pod Security admission as kube-apiserver's built-in PodSecurity plugin runs it
// (k8s.io/pod-security-admission: admission/admission.go, policy/check_*.go): the namespace's
// `pod-security.kubernetes.io/enforce` label picks the level; a Pod CREATE, or an UPDATE that
// changes the spec, that fails a check of that level is 403 Forbidden
// `pods "x" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "v")`,
// every failed check as `reason (detail)`, joined by ", ", in the library's order. The `warn` label
// gives the same text as a warning: `would violate PodSecurity "...": ...`.
// Checks: the baseline level's hostNamespaces, hostPorts, privileged, capabilities_baseline and
// hostPathVolumes. Left out: the other baseline checks (AppArmor, SELinux, procMount, seccomp
// Unconfined, sysctls, Windows hostProcess, probe/lifecycle hosts) and every restricted-only
// check, so `restricted` is enforced as baseline; exemptions; workload templates (warnings only on
// a real server).
import type { KubeObject } from './resources.js';

interface Container {
  name?: string;
  securityContext?: { privileged?: boolean; capabilities?: { add?: string[] } };
  ports?: { hostPort?: number }[];
}
interface PodSpec {
  hostNetwork?: boolean;
  hostPID?: boolean;
  hostIPC?: boolean;
  volumes?: { name?: string; hostPath?: object }[];
  containers?: Container[];
  initContainers?: Container[];
  ephemeralContainers?: Container[];
}

interface Failure {
  reason: string;
  detail: string;
}

type Check = (spec: PodSpec) => Failure | undefined;

const LEVELS = ['privileged', 'baseline', 'restricted'] as const;
const BASELINE_CAPABILITIES = new Set([
  'AUDIT_WRITE',
  'CHOWN',
  'DAC_OVERRIDE',
  'FOWNER',
  'FSETID',
  'KILL',
  'MKNOD',
  'NET_BIND_SERVICE',
  'SETFCAP',
  'SETGID',
  'SETPCAP',
  'SETUID',
  'SYS_CHROOT',
]);

const joinQuote = (items: string[]): string => (items.length ? `"${items.join('", "')}"` : '');
const pluralize = (one: string, many: string, n: number): string => (n === 1 ? one : many);

/** Every container the library visits: init, regular, ephemeral. */
function containers(spec: PodSpec): Container[] {
  return [...(spec.initContainers ?? []), ...(spec.containers ?? []), ...(spec.ephemeralContainers ?? [])];
}

const hostNamespaces: Check = (spec) => {
  const used = [spec.hostIPC && 'hostIPC', spec.hostNetwork && 'hostNetwork', spec.hostPID && 'hostPID'];
  const names = used.filter((n): n is string => typeof n === 'string');
  return names.length ? { reason: 'host namespaces', detail: names.join(', ') } : undefined;
};

const hostPorts: Check = (spec) => {
  const bad: string[] = [];
  const ports = new Set<string>();
  for (const c of containers(spec)) {
    const used = (c.ports ?? []).filter((p) => (p.hostPort ?? 0) !== 0);
    for (const p of used) ports.add(String(p.hostPort));
    if (used.length) bad.push(c.name ?? '');
  }
  if (!bad.length) return undefined;
  const sorted = [...ports].sort();
  return {
    reason: 'hostPort',
    detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} ${pluralize('uses', 'use', bad.length)} ${pluralize('hostPort', 'hostPorts', sorted.length)} ${sorted.join(', ')}`,
  };
};

const privileged: Check = (spec) => {
  const bad = containers(spec)
    .filter((c) => c.securityContext?.privileged === true)
    .map((c) => c.name ?? '');
  return bad.length
    ? {
        reason: 'privileged',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must not set securityContext.privileged=true`,
      }
    : undefined;
};

const capabilitiesBaseline: Check = (spec) => {
  const bad: string[] = [];
  const caps = new Set<string>();
  for (const c of containers(spec)) {
    const extra = (c.securityContext?.capabilities?.add ?? []).filter((a) => !BASELINE_CAPABILITIES.has(a));
    for (const a of extra) caps.add(a);
    if (extra.length) bad.push(c.name ?? '');
  }
  return bad.length
    ? {
        reason: 'non-default capabilities',
        detail: `${pluralize('container', 'containers', bad.length)} ${joinQuote(bad)} must not include ${joinQuote([...caps].sort())} in securityContext.capabilities.add`,
      }
    : undefined;
};

const hostPathVolumes: Check = (spec) => {
  const names = (spec.volumes ?? []).filter((v) => v.hostPath).map((v) => v.name ?? '');
  return names.length
    ? { reason: 'hostPath volumes', detail: `${pluralize('volume', 'volumes', names.length)} ${joinQuote(names)}` }
    : undefined;
};

/** The library's order: the baseline checks by file name, then the ones restricted replaces. */
const BASELINE_CHECKS: Check[] = [hostNamespaces, hostPorts, privileged, capabilitiesBaseline, hostPathVolumes];

export interface PodSecurityResult {
  /** The 403 message when the enforce level refuses the pod. */
  forbidden?: string;
  warnings: string[];
}

function levelOf(labels: Record<string, string>, mode: 'enforce' | 'warn'): string | undefined {
  const level = labels[`pod-security.kubernetes.io/${mode}`];
  if (!level || !(LEVELS as readonly string[]).includes(level) || level === 'privileged') return undefined;
  return `${level}:${labels[`pod-security.kubernetes.io/${mode}-version`] ?? 'latest'}`;
}

function violations(spec: PodSpec): string {
  return BASELINE_CHECKS.map((check) => check(spec))
    .filter((f): f is Failure => f !== undefined)
    .map((f) => (f.detail ? `${f.reason} (${f.detail})` : f.reason))
    .join(', ');
}

/** Evaluates a Pod write against its namespace's labels; `old` is the stored pod on UPDATE. */
export function checkPodSecurity(
  pod: KubeObject,
  old: KubeObject | undefined,
  namespaceLabels: Record<string, string> | undefined,
): PodSecurityResult {
  const labels = namespaceLabels ?? {};
  // Updates that leave the spec as it was (labels, annotations) are not evaluated.
  if (old && JSON.stringify(old.spec) === JSON.stringify(pod.spec)) return { warnings: [] };
  const found = violations((pod.spec ?? {}) as PodSpec);
  if (!found) return { warnings: [] };
  const enforce = levelOf(labels, 'enforce');
  const warn = levelOf(labels, 'warn');
  return {
    forbidden: enforce && `violates PodSecurity "${enforce}": ${found}`,
    warnings: warn && !enforce ? [`would violate PodSecurity "${warn}": ${found}`] : [],
  };
}
