// Whole GPUs under fractional shares: where a GPU replica goes, what a share change of a running
// replica gets, and how many GPUs a cluster bills. A GPU holds shares up to 100 % in the device
// plugin's slot steps; a replica occupies its share rounded up to whole slots. No clock, no I/O:
// the simulator's cluster keeps one GpuPool and asks it.

export type PlacementPolicy = 'binpack' | 'spread';

export interface ClusterShape {
  /**
   * GPU nodes. 'autoscaled' adds one whenever a new replica finds no GPU with room (a cluster
   * autoscaler); running replicas never move, so a share rise is clamped as on a finite cluster.
   * 'unlimited' also adds nodes, and moves a running replica whose share rise does not fit: the
   * idealized cluster of the figures before packing, which no real node agent gives.
   */
  gpuNodes: number | 'autoscaled' | 'unlimited';
  gpusPerNode: number;
  /** Percent of one GPU per slot (100 / the device plugin's --slots-per-gpu); divides 100. */
  slotPercent: number;
  /**
   * binpack: the fullest GPU with room (fewest GPUs billed). spread: the freest GPU with room.
   * Among a node's GPUs, the device plugin's `--placement` of the same names (binpack its default).
   */
  placement: PlacementPolicy;
}

/** Percent of a GPU a share occupies: the share rounded up to whole slots. */
export function occupancy(sharePercent: number, slotPercent: number): number {
  return Math.ceil(sharePercent / slotPercent - 1e-9) * slotPercent;
}

/**
 * The GPU a replica occupying `need` percent goes to, given each GPU's occupied percent and how
 * many GPUs the cluster has (Infinity when autoscaled or unlimited; GPUs past `used.length` are empty), or -1
 * when none has room. Ties go to the lowest index (the lowest node, then the lowest GPU).
 */
export function chooseGpu(used: readonly number[], gpus: number, need: number, policy: PlacementPolicy): number {
  let best = -1;
  for (let g = 0; g < used.length && g < gpus; g++) {
    const u = used[g]!;
    if (u + need > 100) continue;
    if (best < 0 || (policy === 'binpack' ? u > used[best]! : u < used[best]!)) best = g;
  }
  // An empty GPU not yet in the list: binpack takes it only when no used GPU has room; spread
  // prefers it to any GPU with something on it.
  const fresh = used.length < gpus && need <= 100 ? used.length : -1;
  if (fresh < 0) return best;
  if (best < 0) return fresh;
  return policy === 'spread' && used[best]! > 0 ? fresh : best;
}

/** The share a running replica gets when its stage asks for `wantPercent`: all of it, or what its GPU has left. */
export function resizeOnGpu(usedOnGpu: number, ownOccupancy: number, wantPercent: number, slotPercent: number): { share: number; occupancy: number } {
  const room = 100 - (usedOnGpu - ownOccupancy);
  const want = occupancy(wantPercent, slotPercent);
  if (want <= room) return { share: wantPercent, occupancy: want };
  // The node agent clamps to what the GPU has free; `room` is whole slots, as every occupancy is.
  return { share: room, occupancy: room };
}

/** The GPUs of a cluster and what occupies them. */
export class GpuPool {
  /** Occupied percent per GPU, in node order; grows as GPUs are first used. */
  readonly used: number[] = [];
  /** Replicas per GPU. */
  readonly replicas: number[] = [];
  private readonly gpus: number;
  private inUse = 0;

  constructor(readonly shape: ClusterShape) {
    this.gpus = typeof shape.gpuNodes === 'number' ? shape.gpuNodes * shape.gpusPerNode : Infinity;
  }

  /** GPUs the cluster has; Infinity when autoscaled or unlimited. */
  get capacity(): number {
    return this.gpus;
  }

  /** GPUs hosting at least one replica: what the cluster bills. */
  get gpusInUse(): number {
    return this.inUse;
  }

  /** GPUs with nothing on them; Infinity when autoscaled or unlimited. */
  get idleGpus(): number {
    return this.gpus - this.inUse;
  }

  occupancyOf(sharePercent: number): number {
    return occupancy(sharePercent, this.shape.slotPercent);
  }

  /** Put a replica occupying `need` percent on a GPU; returns the GPU, or -1 when none has room (it stays Pending). */
  place(need: number): number {
    const g = chooseGpu(this.used, this.gpus, need, this.shape.placement);
    if (g < 0) return -1;
    if (g === this.used.length) {
      this.used.push(0);
      this.replicas.push(0);
    }
    if (this.replicas[g] === 0) this.inUse++;
    this.used[g]! += need;
    this.replicas[g]!++;
    return g;
  }

  /** A replica leaves its GPU, freeing what it occupied. */
  release(gpu: number, occupied: number): void {
    this.used[gpu]! -= occupied;
    if (--this.replicas[gpu]! === 0) this.inUse--;
  }

  /**
   * A running replica's share changes; returns what it gets and where. It is clamped to its GPU's
   * room, as the node agent does, except on an 'unlimited' cluster, the idealized one of figures
   * before packing: no replica ever runs clamped, so one that outgrows its GPU moves to a GPU with room.
   */
  resize(gpu: number, occupied: number, wantPercent: number): { gpu: number; share: number; occupancy: number } {
    const r = resizeOnGpu(this.used[gpu]!, occupied, wantPercent, this.shape.slotPercent);
    if (r.share < wantPercent && this.shape.gpuNodes === 'unlimited') {
      this.release(gpu, occupied);
      const need = this.occupancyOf(wantPercent);
      return { gpu: this.place(need), share: wantPercent, occupancy: need };
    }
    this.used[gpu]! += r.occupancy - occupied;
    return { gpu, ...r };
  }
}
