// The pod mutation: gives every container that asks for a GPU the CUDA shim, its GPU share
// and its own control directory. Pure: takes a pod, returns a mutated clone or a denial.
// Idempotent, so a second pass (reinvocationPolicy IfNeeded) changes nothing.
import { ValidationError } from '../common/errors.js';
import {
  ANNOTATION_INJECTED,
  LABEL_MANAGED,
  CONTROL_HOST_ROOT,
  CONTROL_MOUNT_DIR,
  ENV,
  LABEL_INJECT,
  RESOURCE_NVIDIA_GPU,
  RESOURCE_SAIR_GPU,
  SHIM_HOST_DIR,
  SHIM_LIBRARY,
  SHIM_MOUNT_DIR,
  VOLUME_CONTROL,
  VOLUME_SHIM,
  ANNOTATION_GPU_CORES,
  ANNOTATION_GPU_MEMORY,
} from '../core/names.js';
import type { Container, EnvVar, Pod, Volume, VolumeMount } from './k8s-types.js';
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
  return gpuCount(container, RESOURCE_NVIDIA_GPU) > 0 || gpuCount(container, RESOURCE_SAIR_GPU) > 0;
}

function fieldEnv(name: string, fieldPath: string): EnvVar {
  return { name, valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath } } };
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

function upsertByName<T extends { name: string }>(list: T[], wanted: T, same: (a: T, b: T) => boolean): void {
  const i = list.findIndex((v) => v.name === wanted.name);
  if (i < 0) list.push(wanted);
  else if (!same(list[i]!, wanted)) list[i] = wanted;
}

const sameMount = (a: VolumeMount, b: VolumeMount): boolean =>
  a.mountPath === b.mountPath && (a.readOnly ?? false) === (b.readOnly ?? false) && a.subPathExpr === b.subPathExpr && a.subPath === undefined;

const sameHostPathVolume = (a: Volume, b: Volume): boolean => {
  const ha = a.hostPath as { path?: string; type?: string } | undefined;
  const hb = b.hostPath as { path: string; type: string };
  return Object.keys(a).length === 2 && ha?.path === hb.path && ha.type === hb.type;
};

function injectContainer(container: Container, quota: GpuQuota, warnings: string[]): void {
  const env = (container.env ??= []);
  upsertEnv(env, fieldEnv(ENV.podUid, 'metadata.uid'));
  upsertEnv(env, fieldEnv(ENV.podName, 'metadata.name'));
  upsertEnv(env, fieldEnv(ENV.podNamespace, 'metadata.namespace'));
  upsertEnv(env, { name: ENV.containerName, value: container.name });
  upsertEnv(env, { name: ENV.gpuCores, value: String(quota.gpuCores) });
  upsertEnv(env, { name: ENV.gpuMemory, value: quota.memoryBytes.toString() });
  upsertEnv(env, { name: ENV.controlDir, value: CONTROL_MOUNT_DIR });
  const preload = env.find((e) => e.name === ENV.preload);
  if (preload?.valueFrom) {
    warnings.push(
      `container "${container.name}": LD_PRELOAD comes from valueFrom, so the GPU share cannot be enforced; set it as a plain value`,
    );
  } else {
    upsertEnv(env, { name: ENV.preload, value: withShimPreload(preload?.value) });
  }

  const mounts = (container.volumeMounts ??= []);
  upsertByName(mounts, { name: VOLUME_SHIM, mountPath: SHIM_MOUNT_DIR, readOnly: true }, sameMount);
  // The shim writes its usage slots into the control file, so this mount is writable; the
  // subPathExpr keeps every pod inside its own directory.
  upsertByName(mounts, { name: VOLUME_CONTROL, mountPath: CONTROL_MOUNT_DIR, subPathExpr: `$(${ENV.podUid})` }, sameMount);

  // A fractional share of one whole GPU becomes a slot of a shared GPU from the device plugin.
  const whole = gpuCount(container, RESOURCE_NVIDIA_GPU);
  if (quota.gpuCores < 100 && whole === 1) {
    for (const list of [container.resources?.limits, container.resources?.requests]) {
      if (list && RESOURCE_NVIDIA_GPU in list) {
        delete list[RESOURCE_NVIDIA_GPU];
        list[RESOURCE_SAIR_GPU] = '1';
      }
    }
  } else if (quota.gpuCores < 100 && whole > 1) {
    warnings.push(
      `container "${container.name}" asks for ${whole} whole GPUs; ${ANNOTATION_GPU_CORES}=${quota.gpuCores} limits its share of each, but only a request of 1 GPU can share a GPU with other pods`,
    );
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
  const anyGpu = pod.spec.containers.some(wantsGpu) || (pod.spec.initContainers ?? []).some(wantsGpu);
  const warnings: string[] = [];
  if (!anyGpu) {
    const set = [quota.coresSet && ANNOTATION_GPU_CORES, quota.memorySet && ANNOTATION_GPU_MEMORY].filter(Boolean);
    if (set.length > 0) {
      warnings.push(`${set.join(' and ')} set, but no container asks for ${RESOURCE_NVIDIA_GPU} or ${RESOURCE_SAIR_GPU}; nothing injected`);
    }
    return { allowed: true, object: pod, warnings };
  }
  const out: Pod = { ...pod, spec: { ...pod.spec } };
  const copyGpu = (c: Container): Container => {
    if (!wantsGpu(c)) return c;
    const copy = copyContainer(c);
    injectContainer(copy, quota, warnings);
    return copy;
  };
  if (pod.spec.initContainers) out.spec.initContainers = pod.spec.initContainers.map(copyGpu);
  out.spec.containers = pod.spec.containers.map(copyGpu);

  const volumes = (out.spec.volumes = pod.spec.volumes?.slice() ?? []);
  upsertByName(volumes, { name: VOLUME_SHIM, hostPath: { path: SHIM_HOST_DIR, type: 'DirectoryOrCreate' } }, sameHostPathVolume);
  upsertByName(volumes, { name: VOLUME_CONTROL, hostPath: { path: CONTROL_HOST_ROOT, type: 'DirectoryOrCreate' } }, sameHostPathVolume);

  // The label lets the policy server watch only the pods SAIR manages (a label selector on its informer).
  out.metadata = { ...pod.metadata, labels: { ...pod.metadata?.labels, [LABEL_MANAGED]: 'true' }, annotations: { ...pod.metadata?.annotations, [ANNOTATION_INJECTED]: 'true' } };
  return { allowed: true, object: out, warnings };
}
