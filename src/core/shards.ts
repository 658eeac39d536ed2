// How pipelines are split among policy-server replicas, which the policy server and the failsafe
// must agree on: a pipeline belongs to one of SAIR_SHARDS shards by a stable hash of its id, and
// each shard has a Lease. One shard keeps the single Lease's name, so an install that does not
// shard looks as it always did. Pure.

/** The id of the single-stage pipeline SAIR makes of a taken-over HPA. */
export function hpaPipelineId(namespace: string, name: string): string {
  return `${namespace}/hpa:${name}`;
}

/** 32-bit FNV-1a of the UTF-8 bytes: the same on every replica, every Node version and every run. */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (const byte of new TextEncoder().encode(text)) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h;
}

/** The shard of a pipeline (`namespace/name`, or `namespace/hpa:name` for an HPA). */
export function shardOf(pipelineId: string, shards: number): number {
  return shards <= 1 ? 0 : stableHash(pipelineId) % shards;
}

/** A shard's own object (its Lease, its snapshot ConfigMaps): `base` itself with one shard, `<base>-shard-<i>-of-<n>` with more. */
export function shardName(base: string, shard: number, shards: number): string {
  return shards <= 1 ? base : `${base}-shard-${shard}-of-${shards}`;
}

export function shardNames(base: string, shards: number): string[] {
  return Array.from({ length: Math.max(1, shards) }, (_, i) => shardName(base, i, shards));
}

/** The Lease a replica renews to say it is alive and counts towards the fair share. */
export function memberLeaseName(base: string, identity: string): string {
  return `${base}-member-${identity}`;
}

export type PolicyLease = { kind: 'shard'; shard: number; shards: number } | { kind: 'member'; identity: string };

/** What a Lease in the policy server's namespace is to it, from its name; undefined when not one of its own. */
export function parsePolicyLease(base: string, name: string): PolicyLease | undefined {
  if (name === base) return { kind: 'shard', shard: 0, shards: 1 };
  if (!name.startsWith(`${base}-`)) return undefined;
  const rest = name.slice(base.length);
  if (rest.startsWith('-member-')) return { kind: 'member', identity: rest.slice('-member-'.length) };
  const m = /^-shard-(\d+)-of-(\d+)$/.exec(rest);
  return m ? { kind: 'shard', shard: Number(m[1]), shards: Number(m[2]) } : undefined;
}

/** The most shards one of `live` replicas may hold: ceil(shards / live), all of them when alone. */
export function fairShare(shards: number, live: number): number {
  return Math.ceil(shards / Math.max(1, live));
}

/**
 * How much a replica prefers a shard (rendezvous hashing): every replica ranks the shards
 * differently, so replicas short of their share reach for different ones first, and a replica
 * over its share gives back the ones it ranks lowest.
 */
export function shardPreference(identity: string, shard: number): number {
  return stableHash(`${identity}#${shard}`);
}
