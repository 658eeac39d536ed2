// A fake kubelet device manager for tests, speaking the real v1beta1 API from the same .proto
// as the plugin. Like the kubelet it serves Registration on <dir>/kubelet.sock, rejects a wrong
// API version or resource name, then dials the plugin's endpoint, asks GetDevicePluginOptions
// and keeps a ListAndWatch stream open, recording every device list; like the kubelet it keeps one
// plugin per resource name (a second registration of a resource replaces the first), so SAIR's
// slots and whole-GPU plugins are served side by side. A restart deletes every socket in the
// directory and serves a new kubelet.sock, as a restarted kubelet does. Calls without a resource
// go to sair.dev/gpu's plugin, or the latest registered.
// With `podResourcesDir` it also serves the PodResources API v1 on <podResourcesDir>/kubelet.sock
// as the kubelet does: admitPod() allocates a pod's containers their devices the kubelet's way
// (free healthy devices, the plugin's preferred allocation, Allocate; app containers reuse an init
// container's devices, per resource), List reports every admitted pod with all its containers (an empty device
// list for those without), Get one pod or `pod <name> in namespace <ns> not found`, and
// GetAllocatableResources every healthy device; removePod() frees a pod's devices.
import { EventEmitter } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type * as k8s from '@kubernetes/client-node';
import {
  API_VERSION,
  loadApi,
  loadPodResourcesApi,
  unixTarget,
  type ContainerAllocateResponse,
  type ContainerResources,
  type GetPodResourcesRequest,
  type GetPodResourcesResponse,
  type ListPodResourcesResponse,
  type AllocatableResourcesResponse,
  type AllocateRequest,
  type AllocateResponse,
  type Device,
  type DevicePluginOptions,
  type Empty,
  type ListAndWatchResponse,
  type PreStartContainerRequest,
  type PreferredAllocationRequest,
  type PreferredAllocationResponse,
  type RegisterRequest,
} from '../../src/device-plugin/proto.js';
import { RESOURCE_SAIR_GPU } from '../../src/core/names.js';

// The kubelet's check (v1helper.IsExtendedResourceName): a domain-qualified name outside kubernetes.io.
const EXTENDED_RESOURCE = /^(?!.*kubernetes\.io\/)[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;

type Unary<Req, Res> = (req: Req, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Res) => void) => void;

export interface PluginClient extends grpc.Client {
  GetDevicePluginOptions: Unary<Empty, DevicePluginOptions>;
  ListAndWatch(req: Empty): grpc.ClientReadableStream<ListAndWatchResponse>;
  GetPreferredAllocation: Unary<PreferredAllocationRequest, PreferredAllocationResponse>;
  Allocate: Unary<AllocateRequest, AllocateResponse>;
  PreStartContainer: Unary<PreStartContainerRequest, Empty>;
}

export interface Registration {
  request: RegisterRequest;
  options: DevicePluginOptions;
}

function call<Req, Res>(fn: Unary<Req, Res>, client: PluginClient, req: Req): Promise<Res> {
  return new Promise((resolve, reject) =>
    fn.call(client, req, { deadline: Date.now() + 5000 }, (err, res) => (err ? reject(err) : resolve(res!))),
  );
}

interface AdmittedPod {
  namespace: string;
  name: string;
  containers: { name: string; devices: Map<string, string[]> }[];
}

interface Connection {
  client: PluginClient;
  stream: grpc.ClientReadableStream<ListAndWatchResponse>;
  /** Every device list received on this stream, oldest first. */
  deviceLists: Device[][];
}

export class FakeKubelet extends EventEmitter {
  readonly registrations: Registration[] = [];
  private readonly pods: AdmittedPod[] = [];
  private podResourcesServer: grpc.Server | undefined;
  /** PodResources calls received, by method, for tests that count lookups. */
  readonly podResourcesCalls: Record<string, number> = { List: 0, Get: 0, GetAllocatableResources: 0 };
  private server: grpc.Server | undefined;
  private readonly connections = new Map<string, Connection>();

  private constructor(readonly dir: string) {
    super();
  }

  static async start(dir: string, options: { podResourcesDir?: string } = {}): Promise<FakeKubelet> {
    const kubelet = new FakeKubelet(dir);
    await kubelet.serve();
    if (options.podResourcesDir) await kubelet.servePodResources(options.podResourcesDir);
    return kubelet;
  }

  private resources(pod: AdmittedPod): { name: string; namespace: string; containers: ContainerResources[]; cpu_ids: number[]; memory: [] } {
    return {
      name: pod.name,
      namespace: pod.namespace,
      containers: pod.containers.map((c) => ({
        name: c.name,
        devices: [...c.devices].map(([resource_name, device_ids]) => ({ resource_name, device_ids, topology: null })),
        cpu_ids: [],
        memory: [],
        dynamic_resources: [],
      })),
      cpu_ids: [],
      memory: [],
    };
  }

  private async servePodResources(dir: string): Promise<void> {
    const path = join(dir, 'kubelet.sock');
    rmSync(path, { force: true });
    const server = new grpc.Server();
    server.addService(loadPodResourcesApi().PodResourcesLister.service, {
      List: (_c: grpc.ServerUnaryCall<object, ListPodResourcesResponse>, cb: grpc.sendUnaryData<ListPodResourcesResponse>) => {
        this.podResourcesCalls.List!++;
        cb(null, { pod_resources: this.pods.map((p) => this.resources(p)) });
      },
      Get: (c: grpc.ServerUnaryCall<GetPodResourcesRequest, GetPodResourcesResponse>, cb: grpc.sendUnaryData<GetPodResourcesResponse>) => {
        this.podResourcesCalls.Get!++;
        const pod = this.pods.find((p) => p.namespace === c.request.pod_namespace && p.name === c.request.pod_name);
        if (!pod) cb({ code: grpc.status.UNKNOWN, details: `pod ${c.request.pod_name} in namespace ${c.request.pod_namespace} not found` });
        else cb(null, { pod_resources: this.resources(pod) });
      },
      GetAllocatableResources: (_c: grpc.ServerUnaryCall<object, AllocatableResourcesResponse>, cb: grpc.sendUnaryData<AllocatableResourcesResponse>) => {
        this.podResourcesCalls.GetAllocatableResources!++;
        const devices = [...this.connections].map(([resource_name, c]) => ({
          resource_name,
          device_ids: (c.deviceLists.at(-1) ?? []).filter((d) => d.health === 'Healthy').map((d) => d.ID),
          topology: null,
        }));
        cb(null, { devices, cpu_ids: [], memory: [] });
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixTarget(path), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.podResourcesServer = server;
  }

  /**
   * Admits a pod the kubelet's way: every container (init containers first) that asks for a
   * registered resource gets free healthy devices of it (the plugin's preferred ones) and the
   * plugin's Allocate answer; an app container reuses devices an init container held. Returns the
   * answers by container name (the last resource's, for a container asking for several).
   */
  async admitPod(pod: k8s.V1Pod): Promise<Map<string, ContainerAllocateResponse>> {
    if (this.connections.size === 0) throw new Error('no plugin has registered with the fake kubelet');
    const admitted: AdmittedPod = { namespace: pod.metadata?.namespace ?? 'default', name: pod.metadata?.name ?? '', containers: [] };
    const answers = new Map<string, ContainerAllocateResponse>();
    const reusable = new Map<string, string[]>();
    const list = [...(pod.spec?.initContainers ?? []).map((c) => ({ c, init: true })), ...(pod.spec?.containers ?? []).map((c) => ({ c, init: false }))];
    for (const { c, init } of list) {
      const devices = new Map<string, string[]>();
      for (const resource of this.connections.keys()) {
        const want = Number(c.resources?.limits?.[resource] ?? c.resources?.requests?.[resource] ?? 0);
        if (want <= 0) continue;
        const reuse = reusable.get(resource) ?? [];
        const held = new Set(this.pods.flatMap((p) => p.containers.flatMap((x) => x.devices.get(resource) ?? [])));
        const free = (this.latestDevicesOf(resource) ?? []).filter((d) => d.health === 'Healthy' && !held.has(d.ID)).map((d) => d.ID);
        const available = [...new Set([...reuse, ...free])];
        if (available.length < want) throw new Error(`UnexpectedAdmissionError: requested ${want} of ${resource}, ${available.length} available`);
        const preferred = await this.getPreferredAllocation(
          { container_requests: [{ available_deviceIDs: available, must_include_deviceIDs: init ? [] : reuse.slice(0, want), allocation_size: want }] },
          resource,
        );
        const ids = preferred.container_responses[0]!.deviceIDs;
        const res = await this.allocate({ container_requests: [{ devices_ids: ids }] }, resource);
        answers.set(c.name, res.container_responses[0]!);
        devices.set(resource, ids);
        if (init) reusable.set(resource, [...reuse, ...ids]);
      }
      admitted.containers.push({ name: c.name, devices });
    }
    this.pods.push(admitted);
    return answers;
  }

  /** The pod is gone: its devices are free again and PodResources no longer lists it. */
  removePod(namespace: string, name: string): void {
    const i = this.pods.findIndex((p) => p.namespace === namespace && p.name === name);
    if (i >= 0) this.pods.splice(i, 1);
  }

  get socketPath(): string {
    return join(this.dir, 'kubelet.sock');
  }

  /** The resource calls without one go to: sair.dev/gpu when registered, else the latest registered. */
  private resourceOr(resource?: string): string | undefined {
    if (resource !== undefined) return resource;
    return this.connections.has(RESOURCE_SAIR_GPU) ? RESOURCE_SAIR_GPU : this.registrations.at(-1)?.request.resource_name;
  }

  /** Every device list received on the current ListAndWatch stream of the default resource, oldest first. */
  get deviceLists(): Device[][] {
    return this.deviceListsOf();
  }

  deviceListsOf(resource?: string): Device[][] {
    const r = this.resourceOr(resource);
    return (r === undefined ? undefined : this.connections.get(r)?.deviceLists) ?? [];
  }

  get latestDevices(): Device[] | undefined {
    return this.deviceLists.at(-1);
  }

  latestDevicesOf(resource?: string): Device[] | undefined {
    return this.deviceListsOf(resource).at(-1);
  }

  private async serve(): Promise<void> {
    const api = loadApi();
    const server = new grpc.Server();
    server.addService(api.Registration.service, {
      Register: (callObj: grpc.ServerUnaryCall<RegisterRequest, Empty>, cb: grpc.sendUnaryData<Empty>) => {
        const req = callObj.request;
        if (req.version !== API_VERSION) {
          cb({ code: grpc.status.UNKNOWN, details: `Requested device plugin version ${req.version} is not supported` });
          return;
        }
        if (!EXTENDED_RESOURCE.test(req.resource_name)) {
          cb({ code: grpc.status.UNKNOWN, details: `the ResourceName "${req.resource_name}" is invalid` });
          return;
        }
        cb(null, {});
        // The kubelet answers Register first, then connects back to the plugin.
        void this.connect(req).catch((err: unknown) => this.emit('error', err));
      },
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(unixTarget(this.socketPath), grpc.ServerCredentials.createInsecure(), (err) => (err ? reject(err) : resolve())),
    );
    this.server = server;
  }

  private async connect(req: RegisterRequest): Promise<void> {
    this.disconnect(req.resource_name);
    const api = loadApi();
    const client = new api.DevicePlugin(unixTarget(join(this.dir, req.endpoint)), grpc.credentials.createInsecure()) as unknown as PluginClient;
    const options = await call(client.GetDevicePluginOptions, client, {});
    const stream = client.ListAndWatch({});
    const connection: Connection = { client, stream, deviceLists: [] };
    this.connections.set(req.resource_name, connection);
    this.registrations.push({ request: req, options });
    stream.on('data', (res: ListAndWatchResponse) => {
      connection.deviceLists.push(res.devices);
      this.emit('devices', res.devices);
    });
    stream.on('error', () => {});
    this.emit('registered', this.registrations.at(-1));
  }

  /** Drops the connection to `resource`'s plugin, or to every plugin. */
  private disconnect(resource?: string): void {
    for (const [name, c] of this.connections) {
      if (resource !== undefined && name !== resource) continue;
      c.stream.cancel();
      c.client.close();
      this.connections.delete(name);
    }
  }

  private client(resource?: string): PluginClient {
    const r = this.resourceOr(resource);
    const c = r === undefined ? undefined : this.connections.get(r);
    if (!c) throw new Error(`no plugin for ${r ?? 'any resource'} has registered with the fake kubelet`);
    return c.client;
  }

  /** Resolves with the registration count once it reaches `n`. */
  waitForRegistrations(n: number): Promise<number> {
    return this.waitFor(() => (this.registrations.length >= n ? this.registrations.length : undefined), 'registered');
  }

  /** Resolves with the first device list of `resource` (already received or coming) that satisfies `test`. */
  waitForDevices(test: (devices: Device[]) => boolean, resource?: string): Promise<Device[]> {
    return this.waitFor(() => this.deviceListsOf(resource).find(test), 'devices');
  }

  private waitFor<T>(probe: () => T | undefined, event: string): Promise<T> {
    return new Promise((resolve) => {
      const check = (): void => {
        const value = probe();
        if (value !== undefined) {
          this.off(event, check);
          resolve(value);
        }
      };
      this.on(event, check);
      check();
    });
  }

  getPreferredAllocation(req: PreferredAllocationRequest, resource?: string): Promise<PreferredAllocationResponse> {
    const c = this.client(resource);
    return call(c.GetPreferredAllocation, c, req);
  }

  allocate(req: AllocateRequest, resource?: string): Promise<AllocateResponse> {
    const c = this.client(resource);
    return call(c.Allocate, c, req);
  }

  preStartContainer(req: PreStartContainerRequest, resource?: string): Promise<Empty> {
    const c = this.client(resource);
    return call(c.PreStartContainer, c, req);
  }

  /**
   * A kubelet restart: stop, delete every socket in the directory (as the kubelet does at start;
   * `keepPluginSockets` deletes only kubelet.sock), serve a new kubelet.sock.
   */
  async restart(options: { keepPluginSockets?: boolean } = {}): Promise<void> {
    await this.stopServing();
    for (const name of readdirSync(this.dir)) {
      if (name === 'kubelet.sock' || (name.endsWith('.sock') && !options.keepPluginSockets)) rmSync(join(this.dir, name), { force: true });
    }
    await this.serve();
  }

  private async stopServing(): Promise<void> {
    this.disconnect();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    server?.forceShutdown();
  }

  async close(): Promise<void> {
    await this.stopServing();
    const pr = this.podResourcesServer;
    this.podResourcesServer = undefined;
    if (pr) await new Promise<void>((resolve) => pr.tryShutdown(() => resolve()));
    rmSync(this.socketPath, { force: true });
  }
}
