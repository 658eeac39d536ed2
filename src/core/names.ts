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
/** Whole GPUs on SAIR's nodes, served by SAIR's device plugin beside the slots of the same GPUs. */
export const RESOURCE_SAIR_GPU_WHOLE = 'sair.dev/gpu-whole';
/**
 * The CDI kind of the NVIDIA Container Toolkit's spec (`nvidia-ctk cdi generate`); a GPU is the
 * fully-qualified CDI name `nvidia.com/gpu=<GPU UUID>` (vendor/class=name).
 */
export const CDI_KIND_NVIDIA_GPU = 'nvidia.com/gpu';

export const SHIM_HOST_DIR = '/var/lib/sair/lib';
export const SHIM_MOUNT_DIR = '/usr/local/sair/lib';
export const SHIM_FILE_NAME = 'libsair-cuda.so';
export const SHIM_LIBRARY = `${SHIM_MOUNT_DIR}/${SHIM_FILE_NAME}`;
/** Host directory of one directory per allocation (limits and state files). */
export const ALLOCATION_HOST_ROOT = '/run/sair/alloc';
/** Where a GPU container sees its allocation's files (mounted by the device plugin's Allocate). */
export const LIMITS_MOUNT_PATH = '/run/sair/limits';
export const STATE_MOUNT_PATH = '/run/sair/state';
/** What a container must not reach into: SAIR's directories in the container and on the host. */
export const SAIR_CONTAINER_DIRS = [SHIM_MOUNT_DIR, '/run/sair'] as const;
export const SAIR_HOST_DIRS = ['/var/lib/sair', '/run/sair'] as const;
/** Volume names SAIR used to inject (before the device plugin mounted its files); still reserved. */
export const SAIR_VOLUMES = ['sair-lib', 'sair-control'] as const;
/** Prefix of the env names that are SAIR's, set only by SAIR (webhook and device plugin). */
export const ENV_PREFIX = 'SAIR_';
/** Who may change a running pod's GPU quota annotations: the policy server's ServiceAccount. */
export const POLICY_SERVICE_ACCOUNT = 'system:serviceaccount:sair-system:sair-policy';
/** SAIR's own namespace. */
export const SYSTEM_NAMESPACE = 'sair-system';

export const ENV = {
  gpuCores: 'SAIR_GPU_CORES',
  gpuMemory: 'SAIR_GPU_MEMORY',
  limitsFile: 'SAIR_LIMITS_FILE',
  stateFile: 'SAIR_STATE_FILE',
  gpuUuid: 'SAIR_GPU_UUID',
  preload: 'LD_PRELOAD',
} as const;
