// Informers (list + watch caches from @kubernetes/client-node) for what the policy server reads,
// and nothing more: one watch on the namespaces labelled sair.dev/enabled=true, and for each of
// them four namespaced watches (InferencePipelines, Deployments, HPAs, and the pods SAIR manages).
// A namespace that gains the label gets its watches; one that loses it (or is deleted) has them
// stopped and its objects dropped, so no other namespace's objects are ever cached. The API offers
// no "namespace in a set" selector, hence a watch per namespace: 1 + 4 x opted-in namespaces.
// A client-node informer stops on a failed list or watch; here each one restarts itself with
// backoff and reports whether its first list has landed, which /readyz shows.
import * as k8s from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';
import type { KubeClients } from '../../common/k8s.js';
import { LABEL_ENABLED, LABEL_MANAGED } from '../../core/names.js';
import { GROUP, PLURAL, VERSION } from './pipeline-resource.js';

/** The raw custom object as the API server sends it; validated by pipeline-resource.ts. */
export interface RawPipeline extends k8s.KubernetesObject {
  spec?: unknown;
  status?: unknown;
}

export type Cache<T extends k8s.KubernetesObject> = k8s.Informer<T> & k8s.ObjectCache<T>;

export interface Informed<T extends k8s.KubernetesObject> {
  informer: Cache<T>;
  /** The first list has landed (for a namespaced kind: in every opted-in namespace). */
  readonly synced: boolean;
  readonly lastError: string | null;
}

export interface PolicyInformers {
  namespaces: Informed<k8s.V1Namespace>;
  pipelines: Informed<RawPipeline>;
  deployments: Informed<k8s.V1Deployment>;
  hpas: Informed<k8s.V2HorizontalPodAutoscaler>;
  pods: Informed<k8s.V1Pod>;
  /** True once every cache of this opted-in namespace has listed: only then is it autoscaled. */
  namespaceSynced(namespace: string): boolean;
  /** Open list-watches: 1 + 4 per opted-in namespace. */
  watches(): number;
  /** Resolves when the namespaces and every opted-in namespace's caches have listed once (or rejects after timeoutMs). */
  waitForSync(timeoutMs: number): Promise<void>;
  /** True once the first full sync landed; stays true (a namespace opted in later is tracked by namespaceSynced). */
  synced(): boolean;
  stop(): Promise<void>;
}

export interface InformerOptions {
  restartDelayMs?: number;
  /** Registers sair_policy_informer_watches and sair_policy_informer_cached_objects. */
  registry?: Registry;
}

interface Watched<T extends k8s.KubernetesObject> {
  state: Informed<T>;
  stop(): Promise<void>;
}

type ObjectVerb = typeof k8s.ADD | typeof k8s.UPDATE | typeof k8s.DELETE;
const OBJECT_VERBS: readonly ObjectVerb[] = [k8s.ADD, k8s.UPDATE, k8s.DELETE];

/**
 * One kind's caches across the opted-in namespaces, seen as one informer: list and get read the
 * namespace's own cache, and handlers registered here hear every namespace's events, including
 * a DELETE for each object dropped when its namespace opts out.
 */
class NamespacedCache<T extends k8s.KubernetesObject> implements Cache<T> {
  private readonly children = new Map<string, Watched<T>>();
  private readonly handlers = new Map<string, Set<(arg: never) => void>>();

  constructor(private readonly watch: (namespace: string) => Watched<T>) {}

  private emit(verb: string, arg: unknown): void {
    for (const h of this.handlers.get(verb) ?? []) (h as (a: unknown) => void)(arg);
  }

  add(namespace: string): void {
    if (this.children.has(namespace)) return;
    const child = this.watch(namespace);
    for (const verb of [...OBJECT_VERBS, k8s.ERROR, k8s.CONNECT]) child.state.informer.on(verb as ObjectVerb, (o: T) => this.emit(verb, o));
    this.children.set(namespace, child);
  }

  async remove(namespace: string): Promise<void> {
    const child = this.children.get(namespace);
    if (!child) return;
    this.children.delete(namespace);
    await child.stop();
    for (const o of child.state.informer.list()) this.emit(k8s.DELETE, o);
  }

  synced(namespace?: string): boolean {
    if (namespace !== undefined) return this.children.get(namespace)?.state.synced ?? false;
    return [...this.children.values()].every((c) => c.state.synced);
  }

  lastError(): string | null {
    return [...this.children.values()].map((c) => c.state.lastError).find((e) => e !== null) ?? null;
  }

  size(): number {
    return this.children.size;
  }

  on(verb: string, cb: (arg: never) => void): void {
    const verbs = verb === k8s.CHANGE ? OBJECT_VERBS : [verb];
    for (const v of verbs) {
      let set = this.handlers.get(v);
      if (!set) this.handlers.set(v, (set = new Set()));
      set.add(cb);
    }
  }

  off(verb: string, cb: (arg: never) => void): void {
    for (const v of verb === k8s.CHANGE ? OBJECT_VERBS : [verb]) this.handlers.get(v)?.delete(cb);
  }

  get(name: string, namespace?: string): T | undefined {
    return namespace === undefined ? undefined : this.children.get(namespace)?.state.informer.get(name, namespace);
  }

  list(namespace?: string): readonly T[] {
    if (namespace !== undefined) return this.children.get(namespace)?.state.informer.list(namespace) ?? [];
    return [...this.children.values()].flatMap((c) => c.state.informer.list());
  }

  /** Started per namespace by the namespace informer. */
  async start(): Promise<void> {}

  async stop(): Promise<void> {
    await Promise.all([...this.children.keys()].map((ns) => this.remove(ns)));
  }
}

export function createPolicyInformers(clients: KubeClients, logger: Logger, options: InformerOptions = {}): PolicyInformers {
  const restartDelay = options.restartDelayMs ?? 2_000;
  let stopped = false;
  const waiters: (() => void)[] = [];

  /** A self-restarting informer on one path, until its stop(). */
  function watchOne<T extends k8s.KubernetesObject>(name: string, path: string, list: () => Promise<k8s.KubernetesListObject<T>>, labelSelector?: string): Watched<T> {
    const informer = k8s.makeInformer<T>(clients.kc, path, list, labelSelector);
    const state = { informer, synced: false, lastError: null as string | null };
    const timers = new Set<NodeJS.Timeout>();
    let halted = false;
    let failures = 0;
    const start = async () => {
      if (stopped || halted) return;
      let failed = false;
      const onError = (err: unknown) => {
        failed = true;
        state.lastError = errorMessage(err);
      };
      informer.on(k8s.ERROR, onError);
      await informer.start();
      informer.off(k8s.ERROR, onError);
      if (!failed) {
        failures = 0;
        state.synced = true;
        state.lastError = null;
        waiters.splice(0).forEach((w) => w());
      } else {
        restart(`list ${name} failed`);
      }
    };
    const restart = (why: string) => {
      if (stopped || halted) return;
      failures++;
      const delay = Math.min(30_000, restartDelay * 2 ** Math.min(failures - 1, 4));
      logger.warn({ informer: name, err: state.lastError, retryInMs: delay }, why);
      const t = setTimeout(() => {
        timers.delete(t);
        void start();
      }, delay);
      timers.add(t);
    };
    // A watch that ends in an error stops the informer; its cache is kept until the next list.
    informer.on(k8s.ERROR, (err: unknown) => {
      if (!state.synced) return;
      state.lastError = errorMessage(err);
      restart(`watch ${name} failed`);
    });
    void start();
    return {
      state,
      async stop() {
        halted = true;
        for (const t of timers) clearTimeout(t);
        await informer.stop();
      },
    };
  }

  function namespaced<T extends k8s.KubernetesObject>(watch: (ns: string) => Watched<T>): { cache: NamespacedCache<T>; informed: Informed<T> } {
    const cache = new NamespacedCache<T>(watch);
    return {
      cache,
      informed: {
        informer: cache,
        get synced() {
          return cache.synced();
        },
        get lastError() {
          return cache.lastError();
        },
      },
    };
  }

  const optedIn = `${LABEL_ENABLED}=true`;
  // Only the pods the webhook injected (labelled sair.dev/managed=true), not every pod in the namespace.
  const managedPods = `${LABEL_MANAGED}=true`;
  const pipelines = namespaced<RawPipeline>((ns) =>
    watchOne(`inferencepipelines in ${ns}`, `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`, () =>
      clients.custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL }) as Promise<k8s.KubernetesListObject<RawPipeline>>,
    ),
  );
  const deployments = namespaced<k8s.V1Deployment>((ns) =>
    watchOne(`deployments in ${ns}`, `/apis/apps/v1/namespaces/${ns}/deployments`, () => clients.apps.listNamespacedDeployment({ namespace: ns })),
  );
  const hpas = namespaced<k8s.V2HorizontalPodAutoscaler>((ns) =>
    watchOne(`horizontalpodautoscalers in ${ns}`, `/apis/autoscaling/v2/namespaces/${ns}/horizontalpodautoscalers`, () =>
      clients.autoscaling.listNamespacedHorizontalPodAutoscaler({ namespace: ns }),
    ),
  );
  const pods = namespaced<k8s.V1Pod>((ns) =>
    watchOne(`pods in ${ns}`, `/api/v1/namespaces/${ns}/pods`, () => clients.core.listNamespacedPod({ namespace: ns, labelSelector: managedPods }), managedPods),
  );
  const perNamespace = [pipelines, deployments, hpas, pods] as { cache: NamespacedCache<k8s.KubernetesObject>; informed: Informed<k8s.KubernetesObject> }[];

  const namespaces = watchOne<k8s.V1Namespace>('namespaces', '/api/v1/namespaces', () => clients.core.listNamespace({ labelSelector: optedIn }), optedIn);
  // The label selector turns a label removed into a DELETE, a label added into an ADD.
  namespaces.state.informer.on(k8s.ADD, (n: k8s.V1Namespace) => {
    const ns = n.metadata?.name;
    if (!ns || stopped) return;
    for (const k of perNamespace) k.cache.add(ns);
    logger.info({ namespace: ns, watches: watches() }, 'namespace opted in: caching its pipelines, Deployments, HPAs and SAIR pods');
  });
  namespaces.state.informer.on(k8s.DELETE, (n: k8s.V1Namespace) => {
    const ns = n.metadata?.name;
    if (!ns) return;
    void Promise.all(perNamespace.map((k) => k.cache.remove(ns))).then(() => logger.info({ namespace: ns, watches: watches() }, 'namespace opted out: its objects left the caches'));
  });

  const watches = () => 1 + perNamespace.reduce((n, k) => n + k.cache.size(), 0);
  const allSynced = () => namespaces.state.synced && perNamespace.every((k) => k.cache.synced());
  let everSynced = false;
  const synced = () => (everSynced ||= allSynced());

  if (options.registry) {
    const registers = [options.registry];
    new Gauge({ name: 'sair_policy_informer_watches', help: 'Open list-watches: one on opted-in namespaces plus four per opted-in namespace', registers, collect() {
      this.set(watches());
    } });
    new Gauge({ name: 'sair_policy_informer_cached_objects', help: 'Objects held in the informer caches, by resource', labelNames: ['resource'], registers, collect() {
      this.set({ resource: 'namespaces' }, namespaces.state.informer.list().length);
      this.set({ resource: 'inferencepipelines' }, pipelines.cache.list().length);
      this.set({ resource: 'deployments' }, deployments.cache.list().length);
      this.set({ resource: 'horizontalpodautoscalers' }, hpas.cache.list().length);
      this.set({ resource: 'pods' }, pods.cache.list().length);
    } });
  }

  return {
    namespaces: namespaces.state,
    pipelines: pipelines.informed,
    deployments: deployments.informed,
    hpas: hpas.informed,
    pods: pods.informed,
    namespaceSynced: (ns) => perNamespace.every((k) => k.cache.synced(ns)),
    watches,
    synced,
    waitForSync(timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const all = [namespaces.state, ...perNamespace.map((k) => k.informed)];
          const pending = all.filter((i) => !i.synced).map((i) => i.lastError ?? 'no answer yet');
          reject(new Error(`informers not synced after ${timeoutMs} ms: ${pending.join('; ')}`));
        }, timeoutMs);
        const check = () => {
          if (allSynced()) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      stopped = true;
      await namespaces.stop();
      await Promise.all(perNamespace.map((k) => k.cache.stop()));
    },
  };
}
