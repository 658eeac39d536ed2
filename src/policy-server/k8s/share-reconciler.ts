// The share reconciler: every pod of a managed GPU stage runs at the share the stage's Deployment
// records (`sair.dev/current-gpu-cores`). Level-based, driven by a keyed work queue (key
// `namespace/deployment`): pod and Deployment events, a share change and a new leader's resync
// all just add the key; the handler reads the caches and patches the pods that differ. Only the
// holder of the lease of the stage's pipeline's shard writes; a key refused for that is dropped,
// and the next holder resyncs.
import * as k8s from '@kubernetes/client-node';
import type { Counter } from 'prom-client';
import { NotLeaderError, UpstreamError } from '../../common/errors.js';
import type { KubeClients } from '../../common/k8s.js';
import { MERGE_PATCH } from '../../common/k8s.js';
import type { Logger } from '../../common/logger.js';
import { ANNOTATION_CURRENT_GPU_CORES, ANNOTATION_GPU_CORES } from '../../core/names.js';
import type { PipelineCatalog } from './catalog.js';
import type { GuardFor, WriteGuard } from './guard.js';
import type { PolicyInformers } from './informers.js';
import { withRetry, type RetryOptions } from './retry.js';
import { WorkQueue } from './work-queue.js';

export interface ShareReconcilerDeps {
  clients: KubeClients;
  informers: PolicyInformers;
  catalog: PipelineCatalog;
  guardFor: GuardFor;
  retry: RetryOptions;
  logger: Logger;
  writes: Counter;
  concurrency?: number;
}

export class ShareReconciler {
  readonly queue: WorkQueue<string>;

  constructor(private readonly d: ShareReconcilerDeps) {
    this.queue = new WorkQueue({
      name: 'gpu-share',
      handle: async (key) => {
        await this.reconcile(key);
      },
      concurrency: d.concurrency ?? 4,
      logger: d.logger,
      isPermanent: (err) => err instanceof NotLeaderError,
    });
    const onPod = (pod: k8s.V1Pod) => {
      if (!pod.metadata?.deletionTimestamp) for (const key of d.catalog.gpuStagesOf(pod)) this.queue.add(key);
    };
    d.informers.pods.informer.on(k8s.ADD, onPod);
    d.informers.pods.informer.on(k8s.UPDATE, onPod);
    // A share written by this or another leader reaches the cache as a Deployment update.
    d.informers.deployments.informer.on(k8s.UPDATE, (dep: k8s.V1Deployment) => {
      const key = `${dep.metadata?.namespace ?? ''}/${dep.metadata?.name ?? ''}`;
      if (dep.metadata?.annotations?.[ANNOTATION_CURRENT_GPU_CORES] !== undefined && d.catalog.gpuStages().includes(key)) this.queue.add(key);
    });
  }

  /** Every managed GPU stage, once: after this replica starts leading (pods may have started meanwhile). */
  resync(): void {
    for (const key of this.d.catalog.gpuStages()) this.queue.add(key);
  }

  stop(): void {
    this.queue.stop();
  }

  /**
   * Bring one stage's pods to its recorded share (or `known`, a share just written that the cache
   * may not show yet); resolves with how many pods were patched.
   */
  async reconcile(key: string, known?: string): Promise<number> {
    const [namespace, deployment] = key.split('/') as [string, string];
    const owner = this.d.catalog.stageOwner(namespace, deployment);
    if (!owner) return 0;
    const guard = this.d.guardFor(owner);
    // Refused here, before anything is read, on a replica that does not hold the pipeline's shard.
    guard.writeOptions();
    const dep = this.d.catalog.deployment(namespace, deployment);
    const wanted = known ?? dep?.metadata?.annotations?.[ANNOTATION_CURRENT_GPU_CORES];
    if (!wanted) return 0;
    const pods = this.d.catalog.podsOf(namespace, deployment).filter((p) => p.metadata?.annotations?.[ANNOTATION_GPU_CORES] !== wanted);
    const results = await Promise.allSettled(pods.map((p) => this.patchPod(guard, namespace, p.metadata?.name ?? '', wanted)));
    const failed = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (pods.length > 0) this.d.logger.info({ stage: key, gpuCores: Number(wanted), pods: pods.length, failed: failed.length }, 'pods moved to the stage GPU share');
    if (failed.length > 0) throw failed[0]!.reason;
    return pods.length;
  }

  private async patchPod(guard: WriteGuard, namespace: string, name: string, cores: string): Promise<void> {
    try {
      await withRetry(
        `annotate pod ${namespace}/${name}`,
        () => this.d.clients.core.patchNamespacedPod({ name, namespace, body: { metadata: { annotations: { [ANNOTATION_GPU_CORES]: cores } } } }, guard.writeOptions(MERGE_PATCH)),
        this.d.retry,
      );
      this.d.writes.inc({ kind: 'pod-share', outcome: 'ok' });
    } catch (err) {
      // A pod deleted meanwhile needs no share.
      if (err instanceof UpstreamError && err.status === 404) return;
      this.d.writes.inc({ kind: 'pod-share', outcome: 'error' });
      throw err;
    }
  }
}
