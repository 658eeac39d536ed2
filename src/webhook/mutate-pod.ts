// The pod mutation: gives every container that holds a slot of a shared GPU the CUDA shim
// (LD_PRELOAD) and the limits its pod's annotations name, turns a fractional share of one
// whole GPU into a slot and a whole-GPU request into SAIR's whole-GPU resource, so every GPU on a
// SAIR node is handed out by SAIR's device plugin and counted once. The device plugin mounts the shim and the allocation's files; the webhook
// adds no volumes. It refuses what would undo isolation: SAIR's env or volumes set by the pod.
// Pure: takes a pod, returns a mutated clone or a denial. Idempotent, so a second pass
// (reinvocationPolicy IfNeeded) over its own output passes and changes nothing.
import { ValidationError } from '../common/errors.js';
import {
  ANNOTATION_INJECTED,
  LABEL_MANAGED,
  ENV,
  ENV_PREFIX,
  LABEL_INJECT,
  RESOURCE_NVIDIA_GPU,
  RESOURCE_SAIR_GPU,
  RESOURCE_SAIR_GPU_WHOLE,
  SAIR_CONTAINER_DIRS,
  SAIR_HOST_DIRS,
  SAIR_VOLUMES,
  SHIM_LIBRARY,
  ANNOTATION_GPU_CORES,
  ANNOTATION_GPU_MEMORY,
} from '../core/names.js';
import type { Container, EnvVar, Pod } from './k8s-types.js';
import { parseGpuQuota, type GpuQuota } from '../common/gpu-quota.js';

export type MutationResult<T> =
  | { allowed: true; object: T; warnings: string[] }
  | { allowed: false; code: number; message: string };

/** How many GPUs of a kind a container asks for (limits win over requests); 0 when none. */
function gpuCount(container: Container, resource: string): number {
  const r = container.resources;
  const raw = r?.limits?.[resource] ?? r?.requests?.[resource];
  if (raw === undefined) return 0;
  const n = Number(raw);
  return Number.isFinite(n) && n > 0 ? n : 0;
}

function wantsGpu(container: Container): boolean {
  return [RESOURCE_NVIDIA_GPU, RESOURCE_SAIR_GPU, RESOURCE_SAIR_GPU_WHOLE].some((r) => gpuCount(container, r) > 0);
}

function sameEnv(a: EnvVar, b: EnvVar): boolean {
  if (b.valueFrom) {
    const fa = (a.valueFrom?.fieldRef as { fieldPath?: string } | undefined)?.fieldPath;
    const fb = (b.valueFrom.fieldRef as { fieldPath?: string } | undefined)?.fieldPath;
    return a.value === undefined && fa !== undefined && fa === fb;
  }
  return a.valueFrom === undefined && a.value === b.value;
}

/** Set an env var in place (keeping its position), or append it. */
function upsertEnv(env: EnvVar[], wanted: EnvVar): void {
  const i = env.findIndex((e) => e.name === wanted.name);
  if (i < 0) env.push(wanted);
  else if (!sameEnv(env[i]!, wanted)) env[i] = wanted;
}

/** LD_PRELOAD with the shim first, once; ld.so accepts spaces or colons between entries. */
export function withShimPreload(existing: string | undefined): string {
  const entries = (existing ?? '').split(/[\s:]+/).filter((e) => e.length > 0);
  if (entries[0] === SHIM_LIBRARY && entries.indexOf(SHIM_LIBRARY, 1) < 0) return existing!;
  return [SHIM_LIBRARY, ...entries.filter((e) => e !== SHIM_LIBRARY)].join(':');
}

/** Whether `path` is `dir` or inside it. */
function within(path: string, dir: string): boolean {
  const trim = (x: string): string => x.replace(/\/+$/, '') || '/';
  const p = trim(path);
  const d = trim(dir);
  return p === d || d === '/' || p.startsWith(`${d}/`);
}

/** The SAIR env a slot container gets from the webhook: only what the annotations name. */
function sairEnv(quota: GpuQuota): EnvVar[] {
  const env: EnvVar[] = [];
  if (quota.coresSet) env.push({ name: ENV.gpuCores, value: String(quota.gpuCores) });
  if (quota.memorySet) env.push({ name: ENV.gpuMemory, value: quota.memoryBytes.toString() });
  return env;
}

type Denial = { allowed: false; code: number; message: string };

const deny = (message: string): Denial => ({ allowed: false, code: 403, message });

/**
 * What would undo isolation, named by field: a SAIR_* variable the webhook would not set (or set
 * twice: the kubelet keeps the last), an envFrom prefix in SAIR's namespace, a mount at SAIR's
 * paths in the container. Checked before mutating, on every pass, whatever the pod's annotations say.
 */
function checkContainer(c: Container, path: string, expected: EnvVar[]): Denial | undefined {
  const seen = new Set<string>();
  for (const [i, e] of (c.env ?? []).entries()) {
    const field = `${path}.env[${i}]`;
    if (seen.has(e.name) && (e.name.startsWith(ENV_PREFIX) || e.name === ENV.preload)) {
      return deny(`${field}.name: ${e.name} is listed twice (the kubelet uses the last one); list it once`);
    }
    seen.add(e.name);
    if (!e.name.startsWith(ENV_PREFIX)) continue;
    const ours = expected.find((x) => x.name === e.name);
    if (ours && e.valueFrom === undefined && e.value === ours.value) continue;
    return deny(
      `${field}.name: ${e.name} is set by SAIR, not by the pod; remove it (a container's GPU limits come from the pod's ${ANNOTATION_GPU_CORES} and ${ANNOTATION_GPU_MEMORY} annotations)`,
    );
  }
  for (const [i, f] of (c.envFrom ?? []).entries()) {
    if (f.prefix?.startsWith(ENV_PREFIX)) {
      return deny(`${path}.envFrom[${i}].prefix: "${f.prefix}" would set SAIR's variables, which only SAIR sets; use another prefix`);
    }
  }
  for (const [i, m] of (c.volumeMounts ?? []).entries()) {
    const dir = SAIR_CONTAINER_DIRS.find((d) => within(m.mountPath, d));
    if (dir) return deny(`${path}.volumeMounts[${i}].mountPath: ${m.mountPath} is inside ${dir}, where SAIR mounts the shim and its files; mount elsewhere`);
  }
  return undefined;
}

/** Volumes SAIR owns: its reserved names, and host paths that reach SAIR's host directories. */
function checkVolumes(pod: Pod): Denial | undefined {
  for (const [i, v] of (pod.spec.volumes ?? []).entries()) {
    if ((SAIR_VOLUMES as readonly string[]).includes(v.name)) {
      return deny(`spec.volumes[${i}].name: "${v.name}" is a volume name SAIR reserves; rename the volume`);
    }
    const host = (v.hostPath as { path?: string } | undefined)?.path;
    if (host === undefined) continue;
    const dir = SAIR_HOST_DIRS.find((d) => within(host, d) || within(d, host));
    if (dir) return deny(`spec.volumes[${i}].hostPath.path: ${host} reaches ${dir}, SAIR's files on the node; pods get the shim and their limits from the device plugin, mount nothing of SAIR's`);
  }
  return undefined;
}

function injectContainer(container: Container, quota: GpuQuota, warnings: string[]): void {
  const env = (container.env ??= []);
  for (const e of sairEnv(quota)) upsertEnv(env, e);
  const preload = env.find((e) => e.name === ENV.preload);
  if (preload?.valueFrom) {
    warnings.push(
      `container "${container.name}": LD_PRELOAD comes from valueFrom, so the GPU share cannot be enforced; set it as a plain value`,
    );
  } else {
    upsertEnv(env, { name: ENV.preload, value: withShimPreload(preload?.value) });
  }
}

/** Whether the container holds (or, after conversion, will hold) slots of a shared GPU. */
function holdsSlot(container: Container, quota: GpuQuota): boolean {
  return gpuCount(container, RESOURCE_SAIR_GPU) > 0 || (quota.gpuCores < 100 && gpuCount(container, RESOURCE_NVIDIA_GPU) === 1);
}

/** nvidia.com/gpu becomes `resource` (`count` of it), in limits and requests alike. */
function convertGpu(container: Container, resource: string, count: string): void {
  for (const list of [container.resources?.limits, container.resources?.requests]) {
    if (list && RESOURCE_NVIDIA_GPU in list) {
      delete list[RESOURCE_NVIDIA_GPU];
      list[resource] = count;
    }
  }
}

/**
 * A copy of a GPU container that this module may change: the lists and maps it writes are new,
 * everything else is shared with the input (and never written).
 */
function copyContainer(c: Container): Container {
  const copy: Container = { ...c };
  if (c.env) copy.env = c.env.slice();
  if (c.volumeMounts) copy.volumeMounts = c.volumeMounts.slice();
  if (c.resources) {
    copy.resources = { ...c.resources };
    if (c.resources.limits) copy.resources.limits = { ...c.resources.limits };
    if (c.resources.requests) copy.resources.requests = { ...c.resources.requests };
  }
  return copy;
}

/**
 * Mutate a pod being created. The input is never modified: the result is a copy-on-write clone
 * whose untouched subtrees are the input's own objects, so diffing it against the input only
 * walks what changed (admission latency is dominated by copying and diffing otherwise).
 */
export function mutatePod(pod: Pod): MutationResult<Pod> {
  if (pod.metadata?.labels?.[LABEL_INJECT] === 'false') return { allowed: true, object: pod, warnings: [] };
  let quota: GpuQuota;
  try {
    quota = parseGpuQuota(pod.metadata?.annotations);
  } catch (err) {
    if (err instanceof ValidationError) return { allowed: false, code: 400, message: err.message };
    throw err;
  }
  const lists = [
    ['spec.initContainers', pod.spec.initContainers ?? []],
    ['spec.containers', pod.spec.containers],
  ] as const;
  for (const [path, list] of lists) {
    for (const [i, c] of list.entries()) {
      const denied = checkContainer(c, `${path}[${i}]`, holdsSlot(c, quota) ? sairEnv(quota) : []);
      if (denied) return denied;
    }
  }
  const deniedVolume = checkVolumes(pod);
  if (deniedVolume) return deniedVolume;

  const anyGpu = pod.spec.containers.some(wantsGpu) || (pod.spec.initContainers ?? []).some(wantsGpu);
  const warnings: string[] = [];
  if (!anyGpu) {
    const set = [quota.coresSet && ANNOTATION_GPU_CORES, quota.memorySet && ANNOTATION_GPU_MEMORY].filter(Boolean);
    if (set.length > 0) {
      warnings.push(`${set.join(' and ')} set, but no container asks for ${RESOURCE_NVIDIA_GPU} or ${RESOURCE_SAIR_GPU}; nothing injected`);
    }
    return { allowed: true, object: pod, warnings };
  }
  let injected = false;
  let converted = false;
  const copyGpu = (c: Container): Container => {
    if (!holdsSlot(c, quota)) {
      const whole = gpuCount(c, RESOURCE_NVIDIA_GPU);
      if (whole === 0) return c;
      if (quota.gpuCores < 100 && whole > 1) {
        warnings.push(
          `container "${c.name}" asks for ${whole} whole GPUs; ${ANNOTATION_GPU_CORES}=${quota.gpuCores} is not enforced on whole GPUs: ask for ${RESOURCE_NVIDIA_GPU}: 1 to share a GPU`,
        );
      }
      // Whole GPUs on SAIR's nodes come from SAIR's plugin too, so a GPU is never shared and whole at once.
      const copy = copyContainer(c);
      convertGpu(copy, RESOURCE_SAIR_GPU_WHOLE, String(whole));
      converted = true;
      return copy;
    }
    const copy = copyContainer(c);
    convertGpu(copy, RESOURCE_SAIR_GPU, '1');
    injectContainer(copy, quota, warnings);
    injected = true;
    return copy;
  };
  const out: Pod = { ...pod, spec: { ...pod.spec } };
  if (pod.spec.initContainers) out.spec.initContainers = pod.spec.initContainers.map(copyGpu);
  out.spec.containers = pod.spec.containers.map(copyGpu);
  if (!injected) return { allowed: true, object: converted ? out : pod, warnings };
  // The label lets the policy server watch only the pods SAIR manages (a label selector on its informer).
  out.metadata = { ...pod.metadata, labels: { ...pod.metadata?.labels, [LABEL_MANAGED]: 'true' }, annotations: { ...pod.metadata?.annotations, [ANNOTATION_INJECTED]: 'true' } };
  return { allowed: true, object: out, warnings };
}

/**
 * An update of a running pod: its GPU quota annotations may change only through the policy
 * server (its ServiceAccount in the review's userInfo); anyone else would raise a share past what
 * the pipeline's policy and the GPU's budget allow.
 */
export function checkPodUpdate(oldPod: Pod, pod: Pod, username: string | undefined, policyUser: string): MutationResult<Pod> {
  for (const key of [ANNOTATION_GPU_CORES, ANNOTATION_GPU_MEMORY]) {
    const before = oldPod.metadata?.annotations?.[key];
    const after = pod.metadata?.annotations?.[key];
    if (before === after || username === policyUser) continue;
    return deny(
      `metadata.annotations[${key}]: a running pod's GPU quota is changed only by the SAIR policy server (${policyUser}), not by ${username ?? 'an unknown user'}; change the pod template (or the InferencePipeline's bounds) instead`,
    );
  }
  return { allowed: true, object: pod, warnings: [] };
}
