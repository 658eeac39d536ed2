// Fractional GPU slots: each physical GPU is advertised as N kubelet devices (`<uuid>::<k>`),
// and a preferred allocation keeps a request's slots on one GPU, the one with the most free
// share. Pure: values in, values out.

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

export interface PreferredRequest {
  available: readonly string[];
  mustInclude: readonly string[];
  size: number;
}

/**
 * The kubelet passes every free slot; a GPU's free share is how many of its slots are free.
 * Pick one GPU that can hold the whole request (holding the must-include slots if any), the
 * one with the most free slots, ties to the lower slot order; when no single GPU can, fill
 * from the freest GPUs down so the answer still has `size` slots.
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

  const pinned = new Set([...chosen].map((id) => parseSlotId(id)?.uuid ?? id));
  const byFreeShare = [...free.entries()].sort((a, b) => b[1].length - a[1].length || compareSlotIds(a[1][0]!, b[1][0]!));
  const candidates = pinned.size === 1 ? byFreeShare.filter(([uuid]) => pinned.has(uuid)) : byFreeShare;
  const fits = candidates.find(([, list]) => list.length >= need);
  if (fits) return [...chosen, ...fits[1].slice(0, need)];

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
