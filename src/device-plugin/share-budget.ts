// The core shares of the allocations on one GPU never sum past 100 %. Pure: the node agent hands
// in what each allocation holds now and what its pod asks for, and gets back what to enforce.
// Decreases are always granted, and first, so they make room; an increase gets at most what is
// left on every GPU it spans, and never less than it holds. Increases are served in id order, so
// the answer does not depend on the order of the kubelet's list.

export interface ShareClaim {
  id: string;
  /** GPU UUIDs the allocation's slots are on. */
  gpus: readonly string[];
  /** Percent enforced now (its limits file). */
  current: number;
  /** Percent its pod asks for. */
  desired: number;
}

export interface ShareGrant {
  granted: number;
  /** Set when the grant is below what was asked: the room that was left. */
  clamped?: { desired: number; room: number };
}

export function grantShares(claims: readonly ShareClaim[]): Map<string, ShareGrant> {
  const used = new Map<string, number>();
  for (const c of claims) for (const g of c.gpus) used.set(g, (used.get(g) ?? 0) + c.current);
  const out = new Map<string, ShareGrant>();
  const take = (c: ShareClaim, granted: number): void => {
    for (const g of c.gpus) used.set(g, used.get(g)! + granted - c.current);
  };
  for (const c of claims) {
    if (c.desired > c.current) continue;
    out.set(c.id, { granted: c.desired });
    take(c, c.desired);
  }
  const increases = claims.filter((c) => c.desired > c.current).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const c of increases) {
    const room = Math.min(...c.gpus.map((g) => 100 - used.get(g)! + c.current));
    const granted = Math.max(Math.min(c.desired, room), Math.min(c.current, c.desired));
    out.set(c.id, granted < c.desired ? { granted, clamped: { desired: c.desired, room } } : { granted });
    take(c, granted);
  }
  return out;
}

/** Share still free on a GPU given what its allocations hold. */
export function freeShare(holdings: Iterable<{ gpus: readonly string[]; gpuCores: number }>, gpu: string): number {
  let used = 0;
  for (const h of holdings) if (h.gpus.includes(gpu)) used += h.gpuCores;
  return Math.max(0, 100 - used);
}
