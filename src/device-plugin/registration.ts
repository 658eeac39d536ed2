// Registration with the kubelet (kubelet.sock) and staying registered: a restarted kubelet
// recreates kubelet.sock and deletes every plugin socket, so when kubelet.sock is a new file
// or our socket disappears, the plugin re-binds and registers again (within a second or two;
// a directory watch reacts at once, a 1 s poll backs it up).
import { statSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import { API_VERSION, loadApi, unixTarget, type DevicePluginOptions, type Empty, type RegisterRequest } from './proto.js';

export const KUBELET_SOCKET = 'kubelet.sock';

/** One Register call to the kubelet at `kubeletSocket`. */
export async function register(kubeletSocket: string, request: RegisterRequest, timeoutMs = 5000): Promise<void> {
  const api = loadApi();
  const client = new api.Registration(unixTarget(kubeletSocket), grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    Register(req: RegisterRequest, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: Empty) => void): void;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      client.Register(request, { deadline: Date.now() + timeoutMs }, (err) =>
        err ? reject(new Error(`Register with ${kubeletSocket} failed: ${err.details || err.message}`)) : resolve(),
      );
    });
  } finally {
    client.close();
  }
}

export interface Servable {
  readonly socketPath: string;
  start(): Promise<void>;
  stop(): Promise<void>;
}

export interface RegistrarOptions {
  resourceName: string;
  options: DevicePluginOptions;
  pollMs?: number;
  retryMs?: number;
}

/** Identity of a socket file: a recreated file can reuse the inode number, not also its ctime. */
function identityOf(path: string): string | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return `${st.ino}/${st.ctimeNs}`;
  } catch {
    return undefined;
  }
}

/** Keeps `plugin` served and registered with whatever kubelet owns kubelet.sock beside it. */
export class Registrar {
  private readonly dir: string;
  private readonly kubeletSocket: string;
  private registeredKubelet: string | undefined;
  private served: string | undefined;
  private watcher: FSWatcher | undefined;
  private poll: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;
  private stopped = false;
  private failures = 0;
  private lastAttempt = 0;
  registrations = 0;

  constructor(
    private readonly plugin: Servable,
    private readonly opts: RegistrarOptions,
    private readonly log: Logger,
  ) {
    this.dir = dirname(plugin.socketPath);
    this.kubeletSocket = join(this.dir, KUBELET_SOCKET);
  }

  /** Serves and registers (retrying until a kubelet answers), then watches for kubelet restarts. */
  async start(): Promise<void> {
    await this.plugin.start();
    this.served = identityOf(this.plugin.socketPath);
    try {
      this.watcher = watch(this.dir, () => this.check());
      this.watcher.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'device-plugins directory watch failed; polling only'));
    } catch (err) {
      this.log.warn({ dir: this.dir, err: errorMessage(err) }, 'cannot watch the device-plugins directory; polling only');
    }
    this.poll = setInterval(() => this.check(), this.opts.pollMs ?? 1000);
    this.check();
    await this.running;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.watcher?.close();
    if (this.poll) clearInterval(this.poll);
    await this.running;
    await this.plugin.stop();
  }

  private check(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    const kubelet = identityOf(this.kubeletSocket);
    const ours = identityOf(this.plugin.socketPath);
    const lost = ours === undefined || ours !== this.served;
    const kubeletChanged = kubelet !== undefined && kubelet !== this.registeredKubelet;
    if (!lost && !kubeletChanged) return;
    if (this.failures > 0 && Date.now() - this.lastAttempt < (this.opts.retryMs ?? 1000)) return;
    this.running = this.reconcile(lost, kubelet).finally(() => {
      this.running = undefined;
      if (this.again) {
        this.again = false;
        this.check();
      }
    });
  }

  private async reconcile(lost: boolean, kubelet: string | undefined): Promise<void> {
    this.lastAttempt = Date.now();
    try {
      if (lost) {
        this.log.warn({ socket: this.plugin.socketPath }, 'plugin socket gone (kubelet restart?); serving again');
        await this.plugin.stop();
        await this.plugin.start();
        this.served = identityOf(this.plugin.socketPath);
      }
      if (kubelet === undefined) return;
      await register(this.kubeletSocket, {
        version: API_VERSION,
        endpoint: basename(this.plugin.socketPath),
        resource_name: this.opts.resourceName,
        options: this.opts.options,
      });
      this.registeredKubelet = kubelet;
      this.registrations++;
      this.failures = 0;
      this.log.info({ kubelet: this.kubeletSocket, resource: this.opts.resourceName, endpoint: basename(this.plugin.socketPath) }, 'registered with the kubelet');
    } catch (err) {
      this.failures++;
      this.log.error({ err: errorMessage(err), failures: this.failures }, 'registration with the kubelet failed; retrying');
    }
  }
}
