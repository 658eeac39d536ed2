// Informers (list + watch caches from @kubernetes/client-node) for what the policy server reads:
// opted-in namespaces, InferencePipelines, Deployments, HPAs and the pods SAIR manages. A client-node informer
// stops on a failed list or watch; here each one restarts itself with backoff and reports whether
// its first list has landed, which /readyz shows.
import * as k8s from '@kubernetes/client-node';
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

export interface Informed<T extends k8s.KubernetesObject> {
  informer: k8s.Informer<T> & k8s.ObjectCache<T>;
  synced: boolean;
  lastError: string | null;
}

export interface PolicyInformers {
  namespaces: Informed<k8s.V1Namespace>;
  pipelines: Informed<RawPipeline>;
  deployments: Informed<k8s.V1Deployment>;
  hpas: Informed<k8s.V2HorizontalPodAutoscaler>;
  pods: Informed<k8s.V1Pod>;
  /** Resolves when every informer has listed once (or rejects after timeoutMs). */
  waitForSync(timeoutMs: number): Promise<void>;
  synced(): boolean;
  stop(): Promise<void>;
}

export function createPolicyInformers(clients: KubeClients, logger: Logger, options: { restartDelayMs?: number } = {}): PolicyInformers {
  const restartDelay = options.restartDelayMs ?? 2_000;
  let stopped = false;
  const timers = new Set<NodeJS.Timeout>();
  const waiters: (() => void)[] = [];

  function make<T extends k8s.KubernetesObject>(name: string, path: string, list: () => Promise<k8s.KubernetesListObject<T>>, labelSelector?: string): Informed<T> {
    const informer = k8s.makeInformer<T>(clients.kc, path, list, labelSelector);
    const state: Informed<T> = { informer, synced: false, lastError: null };
    let failures = 0;
    const start = async () => {
      if (stopped) return;
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
      if (stopped) return;
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
    return state;
  }

  const namespaces = make<k8s.V1Namespace>('namespaces', '/api/v1/namespaces', () => clients.core.listNamespace({ labelSelector: `${LABEL_ENABLED}=true` }), `${LABEL_ENABLED}=true`);
  const pipelines = make<RawPipeline>(
    'inferencepipelines',
    `/apis/${GROUP}/${VERSION}/${PLURAL}`,
    () => clients.custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL }) as Promise<k8s.KubernetesListObject<RawPipeline>>,
  );
  const deployments = make<k8s.V1Deployment>('deployments', '/apis/apps/v1/deployments', () => clients.apps.listDeploymentForAllNamespaces());
  const hpas = make<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers', '/apis/autoscaling/v2/horizontalpodautoscalers', () =>
    clients.autoscaling.listHorizontalPodAutoscalerForAllNamespaces(),
  );
  // Only the pods the webhook injected (labelled sair.dev/managed=true), not every pod in the cluster.
  const managedPods = `${LABEL_MANAGED}=true`;
  const pods = make<k8s.V1Pod>('pods', '/api/v1/pods', () => clients.core.listPodForAllNamespaces({ labelSelector: managedPods }), managedPods);
  const all = [namespaces, pipelines, deployments, hpas, pods] as Informed<k8s.KubernetesObject>[];
  const synced = () => all.every((i) => i.synced);

  return {
    namespaces,
    pipelines,
    deployments,
    hpas,
    pods,
    synced,
    waitForSync(timeoutMs) {
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          const pending = all.filter((i) => !i.synced).map((i) => i.lastError ?? 'no answer yet');
          reject(new Error(`informers not synced after ${timeoutMs} ms: ${pending.join('; ')}`));
        }, timeoutMs);
        const check = () => {
          if (synced()) {
            clearTimeout(timer);
            resolve();
          } else waiters.push(check);
        };
        check();
      });
    },
    async stop() {
      stopped = true;
      for (const t of timers) clearTimeout(t);
      await Promise.all(all.map((i) => i.informer.stop()));
    },
  };
}
