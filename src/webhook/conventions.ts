// Names and paths every SAIR part agrees on (see the shared conventions in docs/webhook.md):
// labels, annotations, resources, host paths and the env contract with the CUDA shim.

export const LABEL_INJECT = 'sair.dev/inject';
export const ANNOTATION_INJECTED = 'sair.dev/injected';
export const ANNOTATION_ORIGINAL_BEHAVIOR = 'sair.dev/original-behavior';
export const LABEL_MANAGED = 'sair.dev/managed';

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
