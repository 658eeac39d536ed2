// Fractional GPU slots: each physical GPU is advertised as N kubelet devices (`<uuid>::<k>`),
// and a preferred allocation keeps a request's slots on one GPU, by default the fullest with room.
// Pure: values in, values out.

export interface SlotGpu {
  uuid: string;
  healthy: boolean;
  /** NUMA node of the GPU's PCI device; undefined when unknown. */
  numaNode?: number;
}

export interface Slot {
  id: string;
  uuid: string;
  index: number;
  healthy: boolean;
  numaNode?: number;
}

const SEPARATOR = '::';

export function slotId(uuid: string, index: number): string {
  return `${uuid}${SEPARATOR}${index}`;
}

/** The GPU and slot index of a slot id, or undefined when the id is not one of ours. */
export function parseSlotId(id: string): { uuid: string; index: number } | undefined {
  const at = id.lastIndexOf(SEPARATOR);
  if (at <= 0) return undefined;
  const index = id.slice(at + SEPARATOR.length);
  if (!/^[0-9]+$/.test(index)) return undefined;
  return { uuid: id.slice(0, at), index: Number(index) };
}

/** Every slot of every GPU, in GPU order; a GPU's health is its slots' health. */
export function slotsOf(gpus: readonly SlotGpu[], slotsPerGpu: number): Slot[] {
  const out: Slot[] = [];
  for (const gpu of gpus) {
    for (let k = 0; k < slotsPerGpu; k++) {
      const slot: Slot = { id: slotId(gpu.uuid, k), uuid: gpu.uuid, index: k, healthy: gpu.healthy };
      if (gpu.numaNode !== undefined) slot.numaNode = gpu.numaNode;
      out.push(slot);
    }
  }
  return out;
}

/** The distinct GPUs behind a set of slot ids, in first-seen order; unknown ids are reported. */
export function gpusOfSlots(ids: readonly string[]): { uuids: string[]; unknown: string[] } {
  const uuids: string[] = [];
  const unknown: string[] = [];
  for (const id of ids) {
    const parsed = parseSlotId(id);
    if (!parsed) unknown.push(id);
    else if (!uuids.includes(parsed.uuid)) uuids.push(parsed.uuid);
  }
  return { uuids, unknown };
}

export interface SlotLimits {
  /** Percent of one GPU's time, 1..100. */
  gpuCores: number;
  /** Device memory in bytes; 0n = no quota. */
  memoryBytes: bigint;
}

/**
 * What an allocation is worth before anything else is known about its pod: each slot is
 * 1/slotsPerGpu of its GPU, in time and in memory. A GPU of unknown memory (0) adds no quota;
 * a quota is only set when every GPU of the allocation has a known size.
 */
export function slotShare(ids: readonly string[], slotsPerGpu: number, memoryOf: (uuid: string) => bigint): SlotLimits {
  const perGpu = new Map<string, number>();
  for (const id of ids) {
    const uuid = parseSlotId(id)?.uuid;
    if (uuid !== undefined) perGpu.set(uuid, (perGpu.get(uuid) ?? 0) + 1);
  }
  const slots = [...perGpu.values()].reduce((a, b) => a + b, 0);
  const gpuCores = Math.min(100, Math.max(1, Math.floor((100 * slots) / slotsPerGpu)));
  let memoryBytes = 0n;
  for (const [uuid, n] of perGpu) {
    const total = memoryOf(uuid);
    if (total <= 0n) return { gpuCores, memoryBytes: 0n };
    memoryBytes += (total * BigInt(n)) / BigInt(slotsPerGpu);
  }
  return { gpuCores, memoryBytes };
}

/**
 * Which GPU a request goes to when one can hold it. `binpack`: the fullest that has room, so new
 * replicas fill GPUs already billed and the fewest GPUs are held (the policy's packed cost assumes
 * this). `spread`: the freest, which leaves each GPU the most room for share rises.
 */
export const SLOT_PLACEMENTS = ['binpack', 'spread'] as const;
export type SlotPlacement = (typeof SLOT_PLACEMENTS)[number];

export interface PreferredRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
  placement: SlotPlacement;
  /** Percent of a GPU one slot is (100 / slots per GPU). */
  slotPercent: number;
  /**
   * Share still free on a GPU by the node agent's budget, percent; the free slots when absent. A
   * live share rise can hold more of a GPU than its slots, so free slots alone may promise room
   * that a new allocation would only get clamped.
   */
  freeShare?: (uuid: string) => number;
}

/**
 * The kubelet passes every free slot. Put the whole request on one GPU (holding the must-include
 * slots if any): among those with the slots and the budget for it, the fullest (binpack) or the
 * freest (spread), ties to the lower slot order; failing the budget, the one with the most share
 * free, whose Allocate is clamped least. When no single GPU has the slots, fill from the freest
 * GPUs down so the answer still has `size` slots.
 */
export function preferredAllocation(req: PreferredRequest): string[] {
  const size = Math.max(0, req.size);
  const chosen = new Set<string>(req.mustInclude.slice(0, size));
  const free = new Map<string, string[]>();
  for (const id of req.available) {
    if (chosen.has(id)) continue;
    const uuid = parseSlotId(id)?.uuid ?? id;
    const list = free.get(uuid) ?? [];
    list.push(id);
    free.set(uuid, list);
  }
  for (const list of free.values()) list.sort(compareSlotIds);
  const need = size - chosen.size;
  if (need <= 0) return [...chosen];

  type Gpu = [uuid: string, slots: string[]];
  // Each GPU's budget asked once, not at every comparison of the sorts below.
  const budget = new Map([...free.keys()].map((uuid) => [uuid, req.freeShare?.(uuid) ?? Infinity]));
  const room = ([uuid, list]: Gpu): number => Math.min(list.length * req.slotPercent, budget.get(uuid)!);
  const bySlotOrder = (a: Gpu, b: Gpu): number => compareSlotIds(a[1][0]!, b[1][0]!);
  const freestFirst = (a: Gpu, b: Gpu): number => room(b) - room(a) || bySlotOrder(a, b);
  const byFreeShare = [...free.entries()].sort((a, b) => b[1].length - a[1].length || bySlotOrder(a, b));
  const pinned = new Set([...chosen].map((id) => parseSlotId(id)?.uuid ?? id));
  const holds = (pinned.size === 1 ? byFreeShare.filter(([uuid]) => pinned.has(uuid)) : byFreeShare).filter(([, list]) => list.length >= need);
  // The budget must hold the whole request (its must-include slots are not allocated yet either).
  const fits = holds.filter(([uuid]) => budget.get(uuid)! >= size * req.slotPercent - 1e-9);
  const best = fits.sort(req.placement === 'binpack' ? (a, b) => room(a) - room(b) || bySlotOrder(a, b) : freestFirst)[0] ?? holds.sort(freestFirst)[0];
  if (best) return [...chosen, ...best[1].slice(0, need)];

  for (const [, list] of byFreeShare) {
    for (const id of list) {
      if (chosen.size >= size) break;
      chosen.add(id);
    }
  }
  return [...chosen];
}

function compareSlotIds(a: string, b: string): number {
  const pa = parseSlotId(a);
  const pb = parseSlotId(b);
  if (pa && pb && pa.uuid === pb.uuid) return pa.index - pb.index;
  return a < b ? -1 : a > b ? 1 : 0;
}
