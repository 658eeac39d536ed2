// A fake kubelet device manager for tests, speaking the real v1beta1 API from the same .proto
// as the plugin. Like the kubelet it serves Registration on <dir>/kubelet.sock, rejects a wrong
// API version or resource name, then dials the plugin's endpoint, asks GetDevicePluginOptions
// and keeps a ListAndWatch stream open, recording every device list. A restart deletes every
// socket in the directory and serves a new kubelet.sock, as a restarted kubelet does.
import { EventEmitter } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import {
  API_VERSION,
  loadApi,
  unixTarget,
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

export class FakeKubelet extends EventEmitter {
  readonly registrations: Registration[] = [];
  /** Every device list received on the current ListAndWatch stream, oldest first. */
  deviceLists: Device[][] = [];
  private server: grpc.Server | undefined;
  private plugin: PluginClient | undefined;
  private stream: grpc.ClientReadableStream<ListAndWatchResponse> | undefined;

  private constructor(readonly dir: string) {
    super();
  }

  static async start(dir: string): Promise<FakeKubelet> {
    const kubelet = new FakeKubelet(dir);
    await kubelet.serve();
    return kubelet;
  }

  get socketPath(): string {
    return join(this.dir, 'kubelet.sock');
  }

  get latestDevices(): Device[] | undefined {
    return this.deviceLists.at(-1);
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
    this.disconnect();
    const api = loadApi();
    const client = new api.DevicePlugin(unixTarget(join(this.dir, req.endpoint)), grpc.credentials.createInsecure()) as unknown as PluginClient;
    this.plugin = client;
    const options = await call(client.GetDevicePluginOptions, client, {});
    this.registrations.push({ request: req, options });
    this.deviceLists = [];
    const stream = client.ListAndWatch({});
    this.stream = stream;
    stream.on('data', (res: ListAndWatchResponse) => {
      this.deviceLists.push(res.devices);
      this.emit('devices', res.devices);
    });
    stream.on('error', () => {});
    this.emit('registered', this.registrations.at(-1));
  }

  private disconnect(): void {
    this.stream?.cancel();
    this.stream = undefined;
    this.plugin?.close();
    this.plugin = undefined;
  }

  private client(): PluginClient {
    if (!this.plugin) throw new Error('no plugin has registered with the fake kubelet');
    return this.plugin;
  }

  /** Resolves with the registration count once it reaches `n`. */
  waitForRegistrations(n: number): Promise<number> {
    return this.waitFor(() => (this.registrations.length >= n ? this.registrations.length : undefined), 'registered');
  }

  /** Resolves with the first device list (already received or coming) that satisfies `test`. */
  waitForDevices(test: (devices: Device[]) => boolean): Promise<Device[]> {
    return this.waitFor(() => this.deviceLists.find(test), 'devices');
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

  getPreferredAllocation(req: PreferredAllocationRequest): Promise<PreferredAllocationResponse> {
    const c = this.client();
    return call(c.GetPreferredAllocation, c, req);
  }

  allocate(req: AllocateRequest): Promise<AllocateResponse> {
    const c = this.client();
    return call(c.Allocate, c, req);
  }

  preStartContainer(req: PreStartContainerRequest): Promise<Empty> {
    const c = this.client();
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
    rmSync(this.socketPath, { force: true });
  }
}
