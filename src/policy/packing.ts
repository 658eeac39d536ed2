// How many whole GPUs a pipeline's GPU replicas need, as a cluster that packs them bills it: first
// fit of the replicas' shares, largest first, onto GPUs of 100 cores. The policy uses it to tell a
// move that frees a GPU from one that only lowers shares on GPUs still billed whole. A model, not
// the scheduler: other tenants may fill the rest of a GPU, so it counts the pipeline's own replicas. Pure.
import type { StageAllocation } from '../core/ports.js';

type Packable = Pick<StageAllocation, 'replicas' | 'gpuCores'>;

/** GPUs the replicas of `allocation` fill, packed largest share first. */
export function packedGpus(allocation: readonly Packable[]): number {
  const shares: number[] = [];
  for (const a of allocation) if (a.gpuCores !== null && a.gpuCores > 0) for (let k = 0; k < a.replicas; k++) shares.push(Math.min(100, a.gpuCores));
  shares.sort((x, y) => y - x);
  const used: number[] = [];
  for (const s of shares) {
    const at = used.findIndex((u) => u + s <= 100);
    if (at < 0) used.push(s);
    else used[at]! += s;
  }
  return used.length;
}

/** The allocation with stage `stage`'s replicas at `share`. */
const atShare = (allocation: readonly Packable[], stage: number, share: number): Packable[] => allocation.map((a, k) => (k === stage ? { ...a, gpuCores: share } : a));

/**
 * Whether cutting stage `stage`'s replicas to `share` lets the pipeline's GPU replicas pack onto
 * fewer whole GPUs than now (`now`: packedGpus(allocation), which a caller asking for several cuts
 * passes once): the only share cut that lowers a packed bill.
 */
export function cutFreesGpu(allocation: readonly Packable[], stage: number, share: number, now = packedGpus(allocation)): boolean {
  const current = allocation[stage]?.gpuCores;
  if (current == null || share >= current) return false;
  return packedGpus(atShare(allocation, stage, share)) < now;
}

/**
 * Whether the pipeline's GPU replicas would pack onto fewer whole GPUs than `now` with each GPU stage
 * that has a share in `shares` cut to it (a stage already at or under its share stays where it is):
 * the saving of cuts of several stages together, where no one cut alone frees a GPU.
 */
export function jointCutFreesGpu(allocation: readonly Packable[], shares: readonly (number | null)[], now = packedGpus(allocation)): boolean {
  const cut = allocation.map((a, i) => {
    const to = shares[i];
    return to == null || a.gpuCores === null || to >= a.gpuCores ? a : { ...a, gpuCores: to };
  });
  return packedGpus(cut) < now;
}

/**
 * Whether raising stage `stage`'s replicas to `share` leaves the pipeline's GPU replicas packed onto
 * no more than the `held` GPUs billed now: a rise that costs nothing billed.
 */
export function riseFitsBilledGpus(allocation: readonly Packable[], stage: number, share: number, held: number): boolean {
  const current = allocation[stage]?.gpuCores;
  if (current == null || share <= current) return false;
  return packedGpus(atShare(allocation, stage, share)) <= held;
}

/**
 * The largest share a GPU stage's replicas can be given now: its upper bound, or, where a node
 * agent already clamps a rise (`gpuCoresAsked` above the enforced `gpuCores`: a replica's GPU has
 * no room), the share enforced, since a further rise would be clamped too until room frees up and
 * the capacity must come from replicas, which go where there is room.
 */
export function shareCeiling(max: number, allocation: Pick<StageAllocation, 'gpuCores' | 'gpuCoresAsked'>): number {
  return shareClamped(allocation) ? Math.min(max, allocation.gpuCores!) : max;
}

/** Whether a node agent enforces less of the stage's share than was asked (its GPU had no room). */
export function shareClamped(allocation: Pick<StageAllocation, 'gpuCores' | 'gpuCoresAsked'>): boolean {
  return allocation.gpuCores !== null && allocation.gpuCoresAsked !== undefined && allocation.gpuCoresAsked > allocation.gpuCores;
}
