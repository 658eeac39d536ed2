// The policy server's share of the pipelines: one Lease per shard, each with its own leader
// elector, driven by one loop. Every retry period it renews the shards it holds, reads the
// Leases in its namespace to count the replicas alive (membership.ts) and renews its own member
// Lease, gives back the shards it holds beyond its fair share ceil(shards / live), and tries the
// others in its own order of preference while it is short of that share. A lapsed shard is
// taken by a replica short of its share; a replica that joins gets shards as the others give
// theirs back. A write for a pipeline is allowed only under its shard's Lease, valid at that
// moment. With one shard it is one Lease and one elector, as without sharding.
import * as k8s from '@kubernetes/client-node';
import { errorMessage } from '../../common/errors.js';
import { statusOf, timeoutOptions } from '../../common/k8s.js';
import { fairShare, memberLeaseName, shardNames, shardOf, shardPreference } from '../../core/shards.js';
import type { WriteGuard } from './guard.js';
import { LeaderElector, type LeaderElectionOptions } from './leader.js';
import { Membership, type LeaseRecord } from './membership.js';

/** A LeaderElector's options for every shard, with the shard count and a per-shard onChange. */
export interface ShardLeasesOptions extends Omit<LeaderElectionOptions, 'name' | 'onChange' | 'mayAcquire'> {
  /** SAIR_LEASE_NAME: the one Lease with one shard, the prefix of every shard and member Lease with more. */
  name: string;
  shards: number;
  /** A shard gained (true) or lost (false). */
  onChange?: (shard: number, leading: boolean) => void;
}

export class ShardLeases {
  private readonly electors: LeaderElector[];
  private readonly membership: Membership;
  private readonly now: () => number;
  private readonly callTimeoutMs: number;
  /** Shards in this replica's order of preference, most wanted first. */
  private readonly preference: number[];
  /** The most shards this replica may hold; unknown (0) with several shards until the Leases were read once. */
  private fair: number;
  private otherLayout: string[] = [];
  private live: string[];
  private running = false;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> = Promise.resolve();

  constructor(private readonly o: ShardLeasesOptions) {
    this.now = o.now ?? Date.now;
    this.callTimeoutMs = o.callTimeoutMs ?? Math.round(o.renewDeadlineMs / 3);
    this.fair = o.shards === 1 ? 1 : 0;
    this.live = [o.identity];
    this.membership = new Membership({ base: o.name, shards: o.shards, identity: o.identity });
    this.electors = shardNames(o.name, o.shards).map(
      (name, shard) =>
        new LeaderElector({
          coordination: o.coordination,
          namespace: o.namespace,
          name,
          identity: o.identity,
          leaseDurationSeconds: o.leaseDurationSeconds,
          renewDeadlineMs: o.renewDeadlineMs,
          retryPeriodMs: o.retryPeriodMs,
          callTimeoutMs: o.callTimeoutMs,
          logger: o.logger,
          registry: o.registry,
          now: o.now,
          mayAcquire: () => this.otherLayout.length === 0 && this.held().size < this.fair,
          onChange: (leading) => o.onChange?.(shard, leading),
        }),
    );
    this.preference = this.electors.map((_, i) => i).sort((a, b) => shardPreference(o.identity, b) - shardPreference(o.identity, a));
  }

  get shards(): number {
    return this.o.shards;
  }

  /** Shards whose Lease this replica holds, valid at this moment. */
  held(): ReadonlySet<number> {
    const out = new Set<number>();
    this.electors.forEach((e, i) => {
      if (e.isLeader()) out.add(i);
    });
    return out;
  }

  /** True while this replica holds at least one shard. */
  isLeader(): boolean {
    return this.electors.some((e) => e.isLeader());
  }

  shardOf(pipelineId: string): number {
    return shardOf(pipelineId, this.o.shards);
  }

  /** Writes for a pipeline: refused unless this replica holds its shard's Lease at that moment. */
  guardFor(pipelineId: string): WriteGuard {
    return this.guardForShard(this.shardOf(pipelineId));
  }

  guardForShard(shard: number): WriteGuard {
    return this.electors[shard]!;
  }

  /** What the last reading of the Leases showed, for logs and the API. */
  status(): { held: number[]; fairShare: number; live: string[]; otherLayouts: string[] } {
    return { held: [...this.held()].sort((a, b) => a - b), fairShare: this.fair, live: this.live, otherLayouts: this.otherLayout };
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const next = () => {
      if (!this.running) return;
      this.loop = this.round()
        .catch((err: unknown) => this.o.logger.error({ err: errorMessage(err) }, 'shard lease round failed'))
        .finally(() => {
          if (this.running) this.timer = setTimeout(next, this.o.retryPeriodMs);
        });
    };
    next();
  }

  /** Stop campaigning; by default hand every shard over at once and leave the membership. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.loop;
    await Promise.all(this.electors.map((e) => e.stop(options)));
    if ((options.release ?? true) && this.o.shards > 1) await this.leaveMembership();
  }

  private opts() {
    return timeoutOptions(this.callTimeoutMs);
  }

  /** One round: renew, count the replicas, give back the excess, try the rest while short. */
  private async round(): Promise<void> {
    const holding = this.electors.filter((e) => e.isLeader());
    await Promise.all([this.readMembers(), ...holding.map((e) => e.round())]);
    const held = this.held();
    const excess = held.size - this.fair;
    if (this.fair > 0 && excess > 0) {
      const giveBack = this.preference.filter((s) => held.has(s)).slice(-excess);
      this.o.logger.info({ shards: giveBack, fairShare: this.fair, live: this.live.length }, 'giving shards back to even the load');
      await Promise.all(giveBack.map((s) => this.electors[s]!.release(`over the fair share of ${this.fair} shards among ${this.live.length} replicas`)));
    }
    // Shards not held are read each round, so a lapse is seen; mayAcquire says whether to take one.
    for (const s of this.preference) if (!held.has(s)) await this.electors[s]!.round();
  }

  private async readMembers(): Promise<void> {
    const { coordination, namespace } = this.o;
    let list: k8s.V1LeaseList;
    try {
      list = await coordination.listNamespacedLease({ namespace }, this.opts());
    } catch (err) {
      this.o.logger.warn({ namespace, err: errorMessage(err) }, 'could not read the Leases; keeping the last count of replicas');
      return;
    }
    const records: LeaseRecord[] = list.items.map((l) => ({
      name: l.metadata?.name ?? '',
      holder: l.spec?.holderIdentity ?? '',
      renewTime: l.spec?.renewTime ? new Date(l.spec.renewTime).getTime() : undefined,
      resourceVersion: l.metadata?.resourceVersion ?? '',
      durationMs: (l.spec?.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000,
    }));
    const m = this.membership.observe(records, this.now());
    if (m.otherLayouts.join() !== this.otherLayout.join() && m.otherLayouts.length > 0) {
      this.o.logger.warn({ leases: m.otherLayouts, shards: this.o.shards }, 'Leases of another shard layout are held (SAIR_SHARDS differs between replicas); taking no shard until they lapse');
    }
    this.otherLayout = m.otherLayouts;
    if (this.o.shards === 1) return;
    if (m.live.join() !== this.live.join()) this.o.logger.info({ live: m.live, fairShare: fairShare(this.o.shards, m.live.length) }, 'policy-server replicas changed');
    this.live = m.live;
    this.fair = fairShare(this.o.shards, m.live.length);
    const own = list.items.find((l) => l.metadata?.name === memberLeaseName(this.o.name, this.o.identity));
    await this.renewMembership(own);
    await Promise.all(m.stale.map((r) => this.deleteStale(r)));
  }

  private async renewMembership(own: k8s.V1Lease | undefined): Promise<void> {
    const { coordination, namespace, identity, leaseDurationSeconds } = this.o;
    const name = memberLeaseName(this.o.name, identity);
    const now = new k8s.V1MicroTime(this.now());
    const spec: k8s.V1LeaseSpec = { holderIdentity: identity, leaseDurationSeconds, renewTime: now, acquireTime: own?.spec?.acquireTime ?? now };
    try {
      if (own) await coordination.replaceNamespacedLease({ name, namespace, body: { ...own, spec } }, this.opts());
      else await coordination.createNamespacedLease({ namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec } }, this.opts());
    } catch (err) {
      // A conflict is a renewal that raced with our own previous one; the next round reads again.
      if (statusOf(err) !== 409) this.o.logger.warn({ lease: `${namespace}/${name}`, err: errorMessage(err) }, 'member lease not renewed');
    }
  }

  private async deleteStale(r: LeaseRecord): Promise<void> {
    const { coordination, namespace } = this.o;
    try {
      await coordination.deleteNamespacedLease({ name: r.name, namespace, body: { preconditions: { resourceVersion: r.resourceVersion } } }, this.opts());
      this.o.logger.info({ lease: `${namespace}/${r.name}`, holder: r.holder }, 'deleted the member lease of a replica long gone');
    } catch (err) {
      if (statusOf(err) !== 404 && statusOf(err) !== 409) this.o.logger.warn({ lease: `${namespace}/${r.name}`, err: errorMessage(err) }, 'stale member lease not deleted');
    }
  }

  /** Delete this replica's member Lease, so the others count one replica less at once. */
  private async leaveMembership(): Promise<void> {
    const { coordination, namespace } = this.o;
    const name = memberLeaseName(this.o.name, this.o.identity);
    try {
      await coordination.deleteNamespacedLease({ name, namespace }, this.opts());
    } catch (err) {
      if (statusOf(err) !== 404) this.o.logger.warn({ lease: `${namespace}/${name}`, err: errorMessage(err) }, 'member lease not deleted; the others count this replica gone once it lapses');
    }
  }
}
