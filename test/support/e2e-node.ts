// What the kubelet and the container runtime do for one container of a pod, reduced to what a
// process sees: its environment (envFrom ConfigMaps, the spec's env with downward-API fieldRefs
// resolved, plus the device plugin's Allocate envs) and its mounts (hostPath volumes with
// subPath/subPathExpr, emptyDir and Secret volumes, the Allocate mounts, and the image's files),
// so a test can start a real process "in" the container. This machine stands in for the node: the
// node's "/" is `hostRoot`, and a container path in an env value (LD_PRELOAD, SAIR_CONTROL_DIR,
// SAIR_SNAPSHOT_PATH) is rewritten to the host path its mount points at, as the bind mount shows it.
// A test double for the kubelet and the runtime: it isolates nothing (no mount namespace, no cgroup,
// no read-only enforcement), and knows only the volume types and fieldRefs SAIR's manifests use.
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import type { ContainerAllocateResponse } from '../../src/device-plugin/proto.js';

export interface ContainerView {
  /** The env as the process gets it, container paths rewritten to host paths. */
  env: Record<string, string>;
  /** The env as the container sees it (what `kubectl exec ... env` shows). */
  containerEnv: Record<string, string>;
  /** container path -> host path, longest first. */
  mounts: { containerPath: string; hostPath: string; readOnly: boolean }[];
}

function fieldValue(pod: k8s.V1Pod, fieldPath: string): string {
  const m = pod.metadata ?? {};
  switch (fieldPath) {
    case 'metadata.uid':
      return m.uid ?? '';
    case 'metadata.name':
      return m.name ?? '';
    case 'metadata.namespace':
      return m.namespace ?? '';
    case 'spec.nodeName':
      return pod.spec?.nodeName ?? '';
    // This machine's loopback stands in for the pod's IP.
    case 'status.podIP':
      return '127.0.0.1';
    default: {
      const ann = /^metadata\.annotations\['(.+)'\]$/.exec(fieldPath);
      if (ann) return m.annotations?.[ann[1]!] ?? '';
      const lab = /^metadata\.labels\['(.+)'\]$/.exec(fieldPath);
      if (lab) return m.labels?.[lab[1]!] ?? '';
      throw new Error(`fieldRef ${fieldPath} is not supported by this test kubelet`);
    }
  }
}

/** `$(VAR)` references, as the kubelet expands them in env values and subPathExpr. */
function expand(value: string, env: Record<string, string>): string {
  return value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole);
}

export interface ViewOptions {
  hostRoot: string;
  /** The device plugin's answer to Allocate for this container. */
  allocated?: ContainerAllocateResponse;
  /** ConfigMaps of the pod's namespace, for envFrom. */
  configMaps?: (name: string) => Record<string, string> | undefined;
  /** Secrets of the pod's namespace (base64 data), for secret volumes. */
  secrets?: (name: string) => Record<string, string> | undefined;
  /** Directories of the image, container path -> where their files are on this machine. */
  image?: Record<string, string>;
}

export function containerView(pod: k8s.V1Pod, containerName: string, opts: ViewOptions): ContainerView {
  const { hostRoot, allocated } = opts;
  const container = pod.spec?.containers.find((c) => c.name === containerName);
  if (!container) throw new Error(`pod ${pod.metadata?.name} has no container ${containerName}`);
  const containerEnv: Record<string, string> = {};
  for (const from of container.envFrom ?? []) {
    const name = from.configMapRef?.name;
    const data = name === undefined ? undefined : opts.configMaps?.(name);
    if (name !== undefined && data === undefined && !from.configMapRef?.optional) throw new Error(`envFrom: ConfigMap ${name} not found`);
    for (const [k, v] of Object.entries(data ?? {})) containerEnv[`${from.prefix ?? ''}${k}`] = v;
  }
  Object.assign(containerEnv, allocated?.envs ?? {});
  for (const e of container.env ?? []) {
    if (e.value !== undefined) containerEnv[e.name] = expand(e.value, containerEnv);
    else if (e.valueFrom?.fieldRef) containerEnv[e.name] = fieldValue(pod, e.valueFrom.fieldRef.fieldPath);
    else containerEnv[e.name] = '';
  }
  const volumes = new Map((pod.spec?.volumes ?? []).map((v) => [v.name, v]));
  const mounts: ContainerView['mounts'] = [];
  for (const vm of container.volumeMounts ?? []) {
    const volume = volumes.get(vm.name);
    const podDir = join(hostRoot, 'var/lib/kubelet/pods', pod.metadata?.uid ?? 'no-uid', 'volumes');
    let source: string;
    if (volume?.hostPath) source = join(hostRoot, volume.hostPath.path);
    else if (volume?.emptyDir) {
      // The kubelet's directory for the pod's emptyDir: it lives as long as the pod, across container restarts.
      source = join(podDir, 'kubernetes.io~empty-dir', vm.name);
      mkdirSync(source, { recursive: true });
    } else if (volume?.secret) {
      // The kubelet projects each key of the Secret as a file.
      const name = volume.secret.secretName ?? '';
      const data = opts.secrets?.(name);
      if (data === undefined) throw new Error(`volume ${vm.name}: Secret ${name} not found`);
      source = join(podDir, 'kubernetes.io~secret', vm.name);
      mkdirSync(source, { recursive: true });
      for (const [key, value] of Object.entries(data)) writeFileSync(join(source, key), Buffer.from(value, 'base64'));
    } else continue;
    const sub = vm.subPathExpr !== undefined ? expand(vm.subPathExpr, containerEnv) : (vm.subPath ?? '');
    mounts.push({ containerPath: vm.mountPath, hostPath: join(source, sub), readOnly: vm.readOnly ?? false });
  }
  for (const m of allocated?.mounts ?? []) mounts.push({ containerPath: m.container_path, hostPath: m.host_path, readOnly: m.read_only });
  for (const [containerPath, hostPath] of Object.entries(opts.image ?? {})) mounts.push({ containerPath, hostPath, readOnly: true });
  mounts.sort((a, b) => b.containerPath.length - a.containerPath.length);

  const toHost = (p: string): string => {
    const m = mounts.find((x) => p === x.containerPath || p.startsWith(`${x.containerPath}/`));
    return m ? m.hostPath + p.slice(m.containerPath.length) : p;
  };
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(containerEnv)) {
    env[k] = k === 'LD_PRELOAD' ? v.split(/[: ]/).filter(Boolean).map(toHost).join(':') : v.startsWith('/') ? toHost(v) : v;
  }
  return { env, containerEnv, mounts };
}

/** A pod of a workload (Deployment, DaemonSet, Job) as its controller makes it from the template, placed on `nodeName`. */
export function podOf(workload: { metadata?: k8s.V1ObjectMeta; spec?: { template: k8s.V1PodTemplateSpec } }, name: string, nodeName: string): k8s.V1Pod {
  const template = workload.spec!.template;
  return {
    metadata: { name, namespace: workload.metadata?.namespace ?? 'default', uid: randomUUID(), labels: template.metadata?.labels, annotations: template.metadata?.annotations },
    spec: { ...template.spec!, nodeName },
  };
}
