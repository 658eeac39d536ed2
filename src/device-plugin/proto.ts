// Loads the kubelet device plugin API (proto/api.proto, v1beta1) with @grpc/proto-loader and
// gives its messages TypeScript shapes. Field names stay as in the .proto (keepCase), so what
// the plugin sends is exactly what a kubelet reads.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const API_VERSION = 'v1beta1';
export const HEALTHY = 'Healthy';
export const UNHEALTHY = 'Unhealthy';

export interface Empty {
  [key: string]: never;
}
export interface DevicePluginOptions {
  pre_start_required: boolean;
  get_preferred_allocation_available: boolean;
}
export interface RegisterRequest {
  version: string;
  endpoint: string;
  resource_name: string;
  options?: DevicePluginOptions | null;
}
export interface NUMANode {
  ID: number;
}
export interface Device {
  ID: string;
  health: string;
  topology?: { nodes: NUMANode[] } | null;
}
export interface ListAndWatchResponse {
  devices: Device[];
}
export interface ContainerPreferredAllocationRequest {
  available_deviceIDs: string[];
  must_include_deviceIDs: string[];
  allocation_size: number;
}
export interface PreferredAllocationRequest {
  container_requests: ContainerPreferredAllocationRequest[];
}
export interface PreferredAllocationResponse {
  container_responses: { deviceIDs: string[] }[];
}
export interface AllocateRequest {
  container_requests: { devices_ids: string[] }[];
}
export interface Mount {
  container_path: string;
  host_path: string;
  read_only: boolean;
}
export interface DeviceSpec {
  container_path: string;
  host_path: string;
  permissions: string;
}
export interface ContainerAllocateResponse {
  envs: Record<string, string>;
  mounts: Mount[];
  devices: DeviceSpec[];
  annotations: Record<string, string>;
  cdi_devices: { name: string }[];
}
export interface AllocateResponse {
  container_responses: ContainerAllocateResponse[];
}
export interface PreStartContainerRequest {
  devices_ids: string[];
}

/** The .proto sits beside this module in src/; from dist/ it is found through the package root. */
export function protoPath(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, 'proto', 'api.proto');
  if (existsSync(beside)) return beside;
  for (let dir = here; dirname(dir) !== dir; dir = dirname(dir)) {
    const candidate = join(dir, 'src', 'device-plugin', 'proto', 'api.proto');
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
  }
  throw new Error(`device plugin API definition not found: looked for proto/api.proto beside ${here} and under the package root`);
}

export interface DevicePluginApi {
  Registration: grpc.ServiceClientConstructor;
  DevicePlugin: grpc.ServiceClientConstructor;
}

let cached: DevicePluginApi | undefined;

export function loadApi(): DevicePluginApi {
  if (cached) return cached;
  const definition = protoLoader.loadSync(protoPath(), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
  });
  const pkg = grpc.loadPackageDefinition(definition)['v1beta1'] as unknown as DevicePluginApi;
  cached = { Registration: pkg.Registration, DevicePlugin: pkg.DevicePlugin };
  return cached;
}

/** The gRPC target for a unix socket path (grpc-js wants `unix:` plus an absolute path). */
export function unixTarget(socketPath: string): string {
  return `unix:${socketPath}`;
}
