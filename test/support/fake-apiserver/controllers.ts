// Optional stand-ins for the controllers a real cluster runs beside its API server. They write
// through the store like any client, so watches and informers see their changes.
import { clone } from './resources.js';
import type { Store } from './store.js';

/**
 * A minimal Deployment controller: after a Deployment changes, its status follows in a separate
 * write, as if every pod became ready at once. No ReplicaSets or Pods are made.
 */
export function simulateDeployments(store: Store): void {
  const pending = new Set<string>();
  store.subscribe((change) => {
    if (change.storage !== 'deployments.apps' || change.type === 'DELETED') return;
    const { namespace, name } = change.obj.metadata!;
    const key = `${namespace}/${name}`;
    if (pending.has(key)) return;
    pending.add(key);
    // Like the real controller, react after the write that triggered it has been answered.
    setImmediate(() => {
      pending.delete(key);
      const cur = store.get('deployments.apps', namespace, name!);
      if (!cur) return;
      const replicas = Number((cur.spec as { replicas?: number } | undefined)?.replicas ?? 1);
      const status: Record<string, number> = { observedGeneration: cur.metadata!.generation ?? 1 };
      if (replicas > 0)
        Object.assign(status, {
          replicas,
          updatedReplicas: replicas,
          readyReplicas: replicas,
          availableReplicas: replicas,
        });
      if (JSON.stringify(cur.status) === JSON.stringify(status)) return;
      store.put('deployments.apps', { ...clone(cur), status });
    });
  });
}
