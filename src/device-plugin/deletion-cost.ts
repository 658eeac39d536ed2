// Which replica a ReplicaSet removes when it scales down. Among its ready pods Kubernetes removes
// the one with the lowest `controller.kubernetes.io/pod-deletion-cost` first, so the node agent sets
// it on each pod that holds GPU slots to the share its own namespace's other allocations hold on that
// pod's GPU: a scale-down, by SAIR, an HPA or a person, then takes the replica whose GPU it leaves
// its namespace holding least of, and one alone there (cost 0) stops the namespace holding that GPU
// at all. Only the namespace's own pods count, so the annotation, which the tenant can read, tells it
// nothing of another tenant's pods, and another tenant's shares cannot reorder its scale-downs.
// Nothing moves; only the choice of which goes. A cost the pod's own template or a person set is
// left alone. Pure.

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';
/** The cost the node agent last wrote: where the two differ, someone else owns the cost. */
export const SAIR_DELETION_COST = 'sair.dev/pod-deletion-cost';

export interface Holding {
  namespace: string;
  pod: string;
  /** GPUs the allocation's slots are on. */
  gpus: readonly string[];
  /** Core share it is granted on each of them, percent. */
  gpuCores: number;
}

/**
 * Each pod's deletion cost (`namespace/pod` -> cost): over the GPUs its allocations are on, the
 * most that other allocations of its namespace hold on one of them, percent. Shares are counted as
 * the share budget counts them (an allocation's share on every GPU it spans).
 */
export function deletionCosts(holdings: readonly Holding[]): Map<string, number> {
  const used = new Map<string, number>();
  const own = new Map<string, number>();
  // Keys hold a space, which neither a namespace nor a pod name can.
  for (const h of holdings) {
    const key = `${h.namespace}/${h.pod}`;
    for (const g of h.gpus) {
      used.set(`${h.namespace} ${g}`, (used.get(`${h.namespace} ${g}`) ?? 0) + h.gpuCores);
      own.set(`${key} ${g}`, (own.get(`${key} ${g}`) ?? 0) + h.gpuCores);
    }
  }
  const out = new Map<string, number>();
  for (const h of holdings) {
    const key = `${h.namespace}/${h.pod}`;
    for (const g of h.gpus) {
      const others = Math.max(0, Math.round(used.get(`${h.namespace} ${g}`)! - own.get(`${key} ${g}`)!));
      out.set(key, Math.max(out.get(key) ?? 0, others));
    }
  }
  return out;
}

/**
 * The annotations to merge into a pod for deletion cost `cost`, or null where nothing is to be
 * written: the pod already carries it, or its cost was set by someone else (present, and not the
 * value the node agent last wrote).
 */
export function deletionCostPatch(annotations: Readonly<Record<string, string>> | undefined, cost: number): Record<string, string> | null {
  const current = annotations?.[POD_DELETION_COST];
  const ours = annotations?.[SAIR_DELETION_COST];
  if (current !== undefined && current !== ours) return null;
  const value = String(cost);
  if (current === value) return null;
  return { [POD_DELETION_COST]: value, [SAIR_DELETION_COST]: value };
}
