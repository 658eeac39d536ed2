// Whether SAIR's policy server is alive, from its Leases (one, or one per shard): a lease counts
// as renewed when its record (holder, renewTime, resourceVersion) changes with a holder named. Ages are measured on this process's clock from when it saw each record change, as client-go's leader election does,
// so skew between nodes does not matter; only a record seen for the first time (after this
// process starts) is dated by its renewTime. Pure: the caller passes the time and the leases.

export interface LeaseRecord {
  /** Empty when released (graceful shutdown) or never held. */
  holder: string;
  /** ms since the epoch, or undefined when absent. */
  renewTime: number | undefined;
  resourceVersion: string;
}

export interface LeaseAge {
  name: string;
  holder: string;
  /** ms since a holder last renewed, on this clock; Infinity when never seen held. */
  ageMs: number;
}

export interface Liveness {
  /** False once any lease has gone unrenewed for longer than the failsafe delay. */
  alive: boolean;
  leases: LeaseAge[];
}

export class LeaseLiveness {
  private readonly seen = new Map<string, { key: string; renewedAt: number }>();

  constructor(private readonly afterMs: number) {}

  /** `records`: each lease by name, undefined when it does not exist. */
  observe(records: ReadonlyMap<string, LeaseRecord | undefined>, now: number): Liveness {
    const leases: LeaseAge[] = [];
    for (const [name, r] of records) {
      const prev = this.seen.get(name);
      const key = r ? `${r.holder}|${r.renewTime ?? ''}|${r.resourceVersion}` : 'absent';
      let renewedAt = prev?.renewedAt;
      if (!prev) {
        // First sight: a held lease is dated by its renewTime (never in the future); a released or
        // missing one counts from now, so a failsafe that restarts waits the full delay for it.
        renewedAt = r?.holder && r.renewTime !== undefined ? Math.min(now, r.renewTime) : now;
      } else if (prev.key !== key && r?.holder) {
        renewedAt = now;
      }
      this.seen.set(name, { key, renewedAt: renewedAt! });
      leases.push({ name, holder: r?.holder ?? '', ageMs: now - renewedAt! });
    }
    for (const name of this.seen.keys()) if (!records.has(name)) this.seen.delete(name);
    return { alive: leases.every((l) => l.ageMs <= this.afterMs), leases };
  }
}
