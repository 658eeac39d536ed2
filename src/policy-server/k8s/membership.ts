// Who else runs the policy server, from the Leases in its namespace: the replicas alive (each
// renews a member Lease; a holder of a shard Lease counts too), whether a Lease of another shard
// layout is held (a rollout that changes SAIR_SHARDS), and which member Leases were left behind by
// replicas long gone. A record counts as renewed when it changes, measured on this replica's clock
// as the leader elector does, so clock skew between nodes does not matter. Pure.
import { parsePolicyLease } from '../../core/shards.js';

export interface LeaseRecord {
  name: string;
  /** Empty when released or never held. */
  holder: string;
  renewTime: number | undefined;
  resourceVersion: string;
  /** The lease duration its holder wrote, ms. */
  durationMs: number;
}

export interface Members {
  /** Identities of the replicas alive, this one included, sorted. */
  live: string[];
  /** Held Leases of a shard layout other than this replica's. */
  otherLayouts: string[];
  /** Member Leases unchanged for `staleAfterDurations` lease durations: left by replicas long gone. */
  stale: LeaseRecord[];
}

export interface MembershipOptions {
  /** SAIR_LEASE_NAME, the prefix of every Lease of the policy server. */
  base: string;
  shards: number;
  identity: string;
  staleAfterDurations?: number;
}

export class Membership {
  /** Per Lease name: the record last seen and when (this clock) it was first seen that way. */
  private readonly seen = new Map<string, { key: string; at: number }>();

  constructor(private readonly o: MembershipOptions) {}

  observe(records: readonly LeaseRecord[], now: number): Members {
    const live = new Set([this.o.identity]);
    const otherLayouts: string[] = [];
    const stale: LeaseRecord[] = [];
    const names = new Set<string>();
    for (const r of records) {
      const lease = parsePolicyLease(this.o.base, r.name);
      if (!lease) continue;
      names.add(r.name);
      const key = `${r.holder}|${r.renewTime ?? ''}|${r.resourceVersion}`;
      const prev = this.seen.get(r.name);
      const at = prev && prev.key === key ? prev.at : now;
      this.seen.set(r.name, { key, at });
      const fresh = r.holder !== '' && now - at <= r.durationMs;
      if (lease.kind === 'member') {
        if (fresh) live.add(lease.identity);
        else if (lease.identity !== this.o.identity && now - at > r.durationMs * (this.o.staleAfterDurations ?? 10)) stale.push(r);
      } else if (fresh && lease.shards !== this.o.shards) {
        otherLayouts.push(r.name);
      } else if (fresh) {
        live.add(r.holder);
      }
    }
    for (const name of this.seen.keys()) if (!names.has(name)) this.seen.delete(name);
    return { live: [...live].sort(), otherLayouts, stale };
  }
}
