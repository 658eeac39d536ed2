// The actuator: applies a decision. Replicas through the Deployment's scale subresource
// (read-modify-write with resourceVersion, so a concurrent writer gives a 409 that is retried),
// clamped to the stage's and the HPA's bounds; a GPU share recorded on the Deployment as
// `sair.dev/current-gpu-cores` and brought to its pods by the share reconciler. Every write asks
// the pipeline's guard first: only the holder of its shard's valid lease changes the cluster.
import type { Counter } from 'prom-client';
import type { KubeClients } from '../../common/k8s.js';
import { MERGE_PATCH } from '../../common/k8s.js';
import type { Logger } from '../../common/logger.js';
import { ANNOTATION_CURRENT_GPU_CORES } from '../../core/names.js';
import type { Managed, PipelineCatalog } from './catalog.js';
import type { GuardFor } from './guard.js';
import { withRetry, type RetryOptions } from './retry.js';
import type { ShareReconciler } from './share-reconciler.js';

export interface ActuatorDeps {
  clients: KubeClients;
  catalog: PipelineCatalog;
  shares: ShareReconciler;
  guardFor: GuardFor;
  retry: RetryOptions;
  writes: Counter;
}

export class Actuator {
  constructor(private readonly d: ActuatorDeps) {}

  /** Scale subresource, clamped to the stage's bounds and the HPA's: those are hard limits. */
  async scale(m: Managed, deployment: string, bounds: { min: number; max: number }, wanted: number, log: Logger): Promise<void> {
    const hpa = this.d.catalog.hpaFor(m.namespace, deployment);
    const lo = Math.max(bounds.min, hpa?.spec?.minReplicas ?? 0);
    const hi = Math.min(bounds.max, hpa?.spec?.maxReplicas ?? Infinity);
    const target = Math.max(lo, Math.min(hi, Math.round(wanted)));
    if (target !== wanted) log.warn({ wanted, target, min: lo, max: hi }, 'replicas clamped to the stage and HPA bounds');
    try {
      await withRetry(
        `scale deployment ${m.namespace}/${deployment}`,
        async () => {
          const scale = await this.d.clients.apps.readNamespacedDeploymentScale({ name: deployment, namespace: m.namespace });
          if (scale.spec?.replicas === target) return;
          await this.d.clients.apps.replaceNamespacedDeploymentScale(
            {
              name: deployment,
              namespace: m.namespace,
              body: { apiVersion: 'autoscaling/v1', kind: 'Scale', metadata: { name: deployment, namespace: m.namespace, resourceVersion: scale.metadata?.resourceVersion }, spec: { replicas: target } },
            },
            this.d.guardFor(m.spec.id).writeOptions(),
          );
          log.info({ from: scale.spec?.replicas, to: target }, 'scaled');
        },
        this.d.retry,
      );
      this.d.writes.inc({ kind: 'scale', outcome: 'ok' });
    } catch (err) {
      this.d.writes.inc({ kind: 'scale', outcome: 'error' });
      throw err;
    }
  }

  /** Record the share on the Deployment, then bring its pods to it now (the reconciler keeps them there). */
  async setShare(m: Managed, deployment: string, cores: number, log: Logger): Promise<void> {
    const namespace = m.namespace;
    await withRetry(
      `annotate deployment ${namespace}/${deployment}`,
      () =>
        this.d.clients.apps.patchNamespacedDeployment(
          { name: deployment, namespace, body: { metadata: { annotations: { [ANNOTATION_CURRENT_GPU_CORES]: String(cores) } } } },
          this.d.guardFor(m.spec.id).writeOptions(MERGE_PATCH),
        ),
      this.d.retry,
    );
    // The cache may not show the new annotation yet; the reconciler reads the level, so tell it the value.
    const pods = await this.d.shares.reconcile(`${namespace}/${deployment}`, String(cores));
    log.info({ gpuCores: cores, pods }, 'GPU share set');
  }
}
