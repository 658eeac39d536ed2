// Pipelines shard across policy-server replicas by lease: a pipeline belongs to shard
// hash(id) mod shards, and each shard has a Lease of its own. The policy server campaigns for the
// shards, the failsafe watches their leases, so both derive the names here.

/** FNV-1a, 32 bits: stable across processes and versions, unlike a seeded hash. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The shard of a pipeline id (`namespace/name` or `namespace/hpa:name`). */
export function shardOf(pipelineId: string, shards: number): number {
  return shards <= 1 ? 0 : fnv1a(pipelineId) % shards;
}

/** The Lease of a shard: the base name alone with one shard, `<base>-<i>` with several. */
export function shardLeaseName(base: string, shard: number, shards: number): string {
  return shards <= 1 ? base : `${base}-${shard}`;
}

export function shardLeaseNames(base: string, shards: number): string[] {
  return Array.from({ length: Math.max(1, shards) }, (_, i) => shardLeaseName(base, i, shards));
}
