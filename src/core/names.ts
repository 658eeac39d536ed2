// Names and paths every SAIR part agrees on: the API group, labels, annotations, resources, host
// paths and the env contract with the CUDA shim. The webhook, the device plugin, the policy server
// and the manifests tests all read them from here, so a name is declared once.

export const API_GROUP = 'sair.dev';

/** On a namespace: opts it in. */
export const LABEL_ENABLED = 'sair.dev/enabled';
/** On a pod or HPA: `false` leaves it alone. */
export const LABEL_INJECT = 'sair.dev/inject';
/** On a pod or HPA SAIR changed. */
export const LABEL_MANAGED = 'sair.dev/managed';
export const ANNOTATION_INJECTED = 'sair.dev/injected';
/** On a taken-over HPA: its own behavior, restored when SAIR lets go. */
export const ANNOTATION_ORIGINAL_BEHAVIOR = 'sair.dev/original-behavior';
/** On a taken-over HPA the failsafe handed its behavior back: why and since when (JSON). */
export const ANNOTATION_FAILSAFE = 'sair.dev/failsafe';

/** Per-pod GPU quota: percent of one GPU's SM time, and a memory quantity. */
export const ANNOTATION_GPU_CORES = 'sair.dev/gpu-cores';
export const ANNOTATION_GPU_MEMORY = 'sair.dev/gpu-memory';
/** On a stage's Deployment: the share SAIR last set for its pods. */
export const ANNOTATION_CURRENT_GPU_CORES = 'sair.dev/current-gpu-cores';
/** Optional HPA annotations for the single-stage pipelines made from HPAs. */
export const ANNOTATION_SLO_P99_MS = 'sair.dev/slo-p99-ms';
export const ANNOTATION_METRICS_PRESET = 'sair.dev/metrics-preset';
export const ANNOTATION_MODE = 'sair.dev/mode';

export const RESOURCE_NVIDIA_GPU = 'nvidia.com/gpu';
export const RESOURCE_SAIR_GPU = 'sair.dev/gpu';

export const SHIM_HOST_DIR = '/var/lib/sair/lib';
export const SHIM_MOUNT_DIR = '/usr/local/sair/lib';
export const SHIM_LIBRARY = `${SHIM_MOUNT_DIR}/libsair-cuda.so`;
export const CONTROL_HOST_ROOT = '/run/sair/pods';
export const CONTROL_MOUNT_DIR = '/run/sair';

export const VOLUME_SHIM = 'sair-lib';
export const VOLUME_CONTROL = 'sair-control';

export const ENV = {
  podUid: 'SAIR_POD_UID',
  podName: 'SAIR_POD_NAME',
  podNamespace: 'SAIR_POD_NAMESPACE',
  containerName: 'SAIR_CONTAINER_NAME',
  gpuCores: 'SAIR_GPU_CORES',
  gpuMemory: 'SAIR_GPU_MEMORY',
  controlDir: 'SAIR_CONTROL_DIR',
  preload: 'LD_PRELOAD',
} as const;
