// One owner per GPU: on a SAIR node a GPU is held whole (sair.dev/gpu-whole) or through its shared
// slots (sair.dev/gpu), never both. Both device plugin servers read this ledger to say which of
// their devices are available, and their Allocate checks and claims it in one synchronous step, so
// two racing allocations cannot both win. Its truth is the kubelet's PodResources list; a claim the
// kubelet does not list yet (it lists a container only after Allocate) is kept for a grace period.
// Pure: time is passed in.

export type GpuUse = 'whole' | 'slots';

export interface LedgerEntry {
  use: GpuUse;
  /** The kubelet device ids of one container's allocation (slot ids, or GPU UUIDs when whole). */
  ids: readonly string[];
  /** The GPUs those devices are on. */
  gpus: readonly string[];
}

interface Claim extends LedgerEntry {
  at: number;
}

const WHAT: Record<GpuUse, string> = { whole: 'allocated whole (sair.dev/gpu-whole)', slots: 'shared: some of its sair.dev/gpu slots are allocated' };

function keyOf(e: LedgerEntry): string {
  return `${e.use}:${[...e.ids].sort().join(',')}`;
}

export class GpuLedger {
  private listed = new Map<string, LedgerEntry>();
  private pending = new Map<string, Claim>();
  private readonly listeners = new Set<() => void>();

  /** @param graceMs how long a claim the kubelet does not list is kept (the agent's orphan grace). */
  constructor(private readonly graceMs = 60_000) {}

  /** How a GPU is held now; undefined when it is free. */
  useOf(uuid: string): GpuUse | undefined {
    for (const e of [...this.listed.values(), ...this.pending.values()]) {
      if (e.gpus.includes(uuid)) return e.use;
    }
    return undefined;
  }

  /** Throws, naming the GPU, when `entry` would take a GPU held the other way. */
  check(entry: LedgerEntry): void {
    for (const uuid of entry.gpus) {
      const use = this.useOf(uuid);
      if (use !== undefined && use !== entry.use) {
        const wanted = entry.use === 'whole' ? 'whole' : 'as shared slots';
        throw new Error(`devices_ids: GPU ${uuid} is ${WHAT[use]}, so it cannot be allocated ${wanted} until that pod ends; the kubelet offered a device this node had marked unavailable, retry the pod`);
      }
    }
  }

  /** Records an allocation the plugin just made (after check()). */
  claim(entry: LedgerEntry, now: number): void {
    this.check(entry);
    this.change(() => this.pending.set(keyOf(entry), { ...entry, at: now }));
  }

  /**
   * What the kubelet lists now replaces what it listed before; claims it lists stop being pending,
   * and claims older than the grace period that it never listed are dropped.
   */
  observe(entries: readonly LedgerEntry[], now: number): void {
    this.change(() => {
      this.listed = new Map(entries.map((e) => [keyOf(e), e]));
      for (const [key, claim] of this.pending) {
        if (this.listed.has(key) || now - claim.at >= this.graceMs) this.pending.delete(key);
      }
    });
  }

  /** Calls `listener` whenever a GPU's use changes; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private snapshot(): string {
    const uses = new Map<string, GpuUse>();
    for (const e of [...this.listed.values(), ...this.pending.values()]) for (const g of e.gpus) uses.set(g, e.use);
    return [...uses].sort().join(';');
  }

  private change(mutate: () => void): void {
    const before = this.snapshot();
    mutate();
    if (this.snapshot() !== before) for (const l of this.listeners) l();
  }
}
