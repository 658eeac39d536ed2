// GPU quota annotation parsing moved to src/common/gpu-quota.ts, shared with the device plugin's
// node agent so both read `sair.dev/gpu-cores` and `sair.dev/gpu-memory` the same way.
export * from '../common/gpu-quota.js';
