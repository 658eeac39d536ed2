// The GPU fragmentation a run leaves behind, for the policy benches. Pure.
import { packedGpus } from '../src/policy/packing.js';
import { occupancy } from '../src/sim/placement.js';
import type { RunResult } from '../src/sim/run.js';

/**
 * Whole GPUs billed beyond what the run's placed replicas need, packed afresh, averaged over its
 * scrapes: the fragmentation that scale-downs and share moves leave behind. No controller here has a
 * lever that packs it back (replica counts and shares never move a running pod to a fuller GPU on
 * purpose), so it is a cost each pays by chance of the order its moves came in.
 */
export function strandedGpus(r: RunResult): number {
  if (r.timeline.length === 0) return 0;
  const stranded = r.timeline.map((p) => {
    // Each replica takes its share rounded up to the cluster's slots, as the simulator places it.
    const placed = p.replicas.map((n, i) => {
      const share = p.gpuCores[i] ?? null;
      return { replicas: n - (p.pendingReplicas[i] ?? 0), gpuCores: share === null ? null : occupancy(share, r.cluster.slotPercent) };
    });
    return Math.max(0, p.gpusInUse - packedGpus(placed));
  });
  return stranded.reduce((a, b) => a + b, 0) / stranded.length;
}
