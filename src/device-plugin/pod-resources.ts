// The kubelet's PodResources API (v1, /var/lib/kubelet/pod-resources/kubelet.sock): which pod and
// container holds which sair.dev/gpu slots and sair.dev/gpu-whole GPUs. It is the kubelet's supported answer to that question
// (its checkpoint file is internal), and the node agent's only way to tie an allocation to a pod.
import * as grpc from '@grpc/grpc-js';
import { loadPodResourcesApi, unixTarget, type ListPodResourcesResponse } from './proto.js';

export interface ContainerSlots {
  namespace: string;
  pod: string;
  container: string;
  slotIds: string[];
}

export interface PodResourcesSource {
  /** Every container on the node holding `resource` devices. */
  list(resource: string): Promise<ContainerSlots[]>;
  /** The same for several resources, from one List call. */
  listByResource(resources: readonly string[]): Promise<Map<string, ContainerSlots[]>>;
  close(): void;
}

type ListFn = (req: object, options: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res?: ListPodResourcesResponse) => void) => void;

export class PodResourcesClient implements PodResourcesSource {
  private readonly client: grpc.Client & { List: ListFn };

  constructor(
    readonly socketPath: string,
    private readonly timeoutMs = 5000,
  ) {
    const api = loadPodResourcesApi();
    this.client = new api.PodResourcesLister(unixTarget(socketPath), grpc.credentials.createInsecure()) as unknown as grpc.Client & { List: ListFn };
  }

  async list(resource: string): Promise<ContainerSlots[]> {
    return (await this.listByResource([resource])).get(resource)!;
  }

  listByResource(resources: readonly string[]): Promise<Map<string, ContainerSlots[]>> {
    return new Promise((resolve, reject) =>
      this.client.List({}, { deadline: Date.now() + this.timeoutMs }, (err, res) => {
        if (err) {
          reject(new Error(`PodResources List on ${this.socketPath} failed: ${err.details || err.message}`, { cause: err }));
          return;
        }
        const out = new Map(resources.map((r) => [r, [] as ContainerSlots[]]));
        for (const pod of res?.pod_resources ?? []) {
          for (const c of pod.containers) {
            for (const [resource, list] of out) {
              const ids = c.devices.filter((d) => d.resource_name === resource).flatMap((d) => d.device_ids);
              if (ids.length > 0) list.push({ namespace: pod.namespace, pod: pod.name, container: c.name, slotIds: [...new Set(ids)] });
            }
          }
        }
        resolve(out);
      }),
    );
  }

  close(): void {
    this.client.close();
  }
}
