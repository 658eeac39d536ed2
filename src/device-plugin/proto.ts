// Loads the kubelet's gRPC APIs with @grpc/proto-loader and gives their messages TypeScript
// shapes: the device plugin API (proto/api.proto, v1beta1) and the PodResources API
// (proto/podresources.proto, v1). Field names stay as in the .proto (keepCase), so what SAIR
// sends is exactly what a kubelet reads.
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

// PodResources API (v1): what the kubelet reports each pod's containers hold.
export interface ContainerDevices {
  resource_name: string;
  device_ids: string[];
  topology?: { nodes: NUMANode[] } | null;
}
export interface ContainerMemory {
  memory_type: string;
  size: number;
  topology?: { nodes: NUMANode[] } | null;
}
export interface ClaimResource {
  cdi_devices: { name: string }[];
  driver_name: string;
  pool_name: string;
  device_name: string;
  share_id?: string;
}
export interface DynamicResource {
  claim_name: string;
  claim_namespace: string;
  claim_resources: ClaimResource[];
}
export interface ContainerResources {
  name: string;
  devices: ContainerDevices[];
  cpu_ids: number[];
  memory: ContainerMemory[];
  dynamic_resources: DynamicResource[];
}
export interface PodResources {
  name: string;
  namespace: string;
  containers: ContainerResources[];
  cpu_ids: number[];
  memory: ContainerMemory[];
}
export interface ListPodResourcesResponse {
  pod_resources: PodResources[];
}
export interface AllocatableResourcesResponse {
  devices: ContainerDevices[];
  cpu_ids: number[];
  memory: ContainerMemory[];
}
export interface GetPodResourcesRequest {
  pod_name: string;
  pod_namespace: string;
}
export interface GetPodResourcesResponse {
  pod_resources?: PodResources | null;
}

/** A .proto sits beside this module in src/; from dist/ it is found through the package root. */
export function protoPath(file: string): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const beside = join(here, 'proto', file);
  if (existsSync(beside)) return beside;
  for (let dir = here; dirname(dir) !== dir; dir = dirname(dir)) {
    const candidate = join(dir, 'src', 'device-plugin', 'proto', file);
    if (existsSync(join(dir, 'package.json')) && existsSync(candidate)) return candidate;
  }
  throw new Error(`kubelet API definition not found: looked for proto/${file} beside ${here} and under the package root`);
}

function loadPackage(file: string, pkg: string): grpc.GrpcObject {
  const definition = protoLoader.loadSync(protoPath(file), {
    keepCase: true,
    longs: Number,
    enums: String,
    defaults: true,
    arrays: true,
    objects: true,
  });
  return grpc.loadPackageDefinition(definition)[pkg] as grpc.GrpcObject;
}

export interface DevicePluginApi {
  Registration: grpc.ServiceClientConstructor;
  DevicePlugin: grpc.ServiceClientConstructor;
}

let devicePluginApi: DevicePluginApi | undefined;

export function loadApi(): DevicePluginApi {
  if (devicePluginApi) return devicePluginApi;
  const pkg = loadPackage('api.proto', 'v1beta1') as unknown as DevicePluginApi;
  devicePluginApi = { Registration: pkg.Registration, DevicePlugin: pkg.DevicePlugin };
  return devicePluginApi;
}

export interface PodResourcesApi {
  PodResourcesLister: grpc.ServiceClientConstructor;
}

let podResourcesApi: PodResourcesApi | undefined;

/** The kubelet's PodResources service (v1), which reports the devices each container holds. */
export function loadPodResourcesApi(): PodResourcesApi {
  if (podResourcesApi) return podResourcesApi;
  const pkg = loadPackage('podresources.proto', 'v1') as unknown as PodResourcesApi;
  podResourcesApi = { PodResourcesLister: pkg.PodResourcesLister };
  return podResourcesApi;
}

/** The gRPC target for a unix socket path (grpc-js wants `unix:` plus an absolute path). */
export function unixTarget(socketPath: string): string {
  return `unix:${socketPath}`;
}
