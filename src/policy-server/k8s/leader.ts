// Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
// the holder renews spec.renewTime every retry period; a standby takes the lease once it has seen
// the same record unchanged for leaseDurationSeconds (measured on its own clock, so clock skew
// between nodes does not matter); every write carries resourceVersion, so two candidates cannot
// both win. Graceful shutdown releases the lease so a standby takes over at its next try.
import * as k8s from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';
import { statusOf } from '../../common/k8s.js';

export interface LeaderElectionOptions {
  coordination: k8s.CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  /** A leader that cannot renew within this time steps down. */
  renewDeadlineMs: number;
  retryPeriodMs: number;
  logger: Logger;
  registry?: Registry;
  onChange?: (leading: boolean) => void;
}

/** The default lease: a standby takes over within 15 s plus one retry period of a silent leader. */
export const DEFAULT_LEASE_SECONDS = 15;

export class LeaderElector {
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<void> = Promise.resolve();
  private lastRenew = 0;
  /** The record last seen and when (local time) it was first seen that way. */
  private observed: { key: string; at: number } | undefined;
  private readonly gauge: Gauge | undefined;

  constructor(private readonly o: LeaderElectionOptions) {
    this.gauge = o.registry
      ? new Gauge({ name: 'sair_policy_leader_is_leader', help: '1 while this replica holds the policy lease', registers: [o.registry] })
      : undefined;
    this.gauge?.set(0);
  }

  isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.inFlight = this.tryAcquireOrRenew().finally(() => {
        if (this.running) this.timer = setTimeout(loop, this.o.retryPeriodMs);
      });
    };
    loop();
  }

  /** Stop campaigning; by default release the lease so a standby takes over at once. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
    if (this.leading && (options.release ?? true)) await this.release();
    this.setLeading(false);
  }

  private setLeading(leading: boolean): void {
    if (leading === this.leading) return;
    this.leading = leading;
    this.gauge?.set(leading ? 1 : 0);
    this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, leading ? 'became leader' : 'stopped leading');
    this.o.onChange?.(leading);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const now = Date.now();
    try {
      const won = await this.attempt(now);
      if (won) {
        this.lastRenew = now;
        this.setLeading(true);
      } else if (this.leading) {
        this.setLeading(false);
      }
    } catch (err) {
      this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, err: errorMessage(err) }, 'lease update failed');
      if (this.leading && Date.now() - this.lastRenew > this.o.renewDeadlineMs) this.setLeading(false);
    }
  }

  /** One round: true when this replica holds the lease afterwards. */
  private async attempt(now: number): Promise<boolean> {
    const { coordination, namespace, name, identity } = this.o;
    let lease: k8s.V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace });
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      try {
        await coordination.createNamespacedLease({
          namespace,
          body: {
            apiVersion: 'coordination.k8s.io/v1',
            kind: 'Lease',
            metadata: { name, namespace },
            spec: this.spec(now, now, 0),
          },
        });
        return true;
      } catch (createErr) {
        if (statusOf(createErr) === 409) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const key = `${holder}|${spec.renewTime ? new Date(spec.renewTime).getTime() : ''}|${lease.metadata?.resourceVersion ?? ''}`;
    if (this.observed?.key !== key) this.observed = { key, at: now };
    const duration = (spec.leaseDurationSeconds ?? this.o.leaseDurationSeconds) * 1000;
    const heldByOther = holder !== '' && holder !== identity;
    if (heldByOther && this.observed.at + duration > now) return false;

    const transitions = (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    const acquired = holder === identity && spec.acquireTime ? new Date(spec.acquireTime).getTime() : now;
    try {
      await coordination.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: this.spec(now, acquired, transitions) },
      });
    } catch (err) {
      // Another candidate wrote first; it holds the lease this round.
      if (statusOf(err) === 409) return false;
      throw err;
    }
    if (heldByOther || holder === '') {
      this.o.logger.info({ lease: `${namespace}/${name}`, previous: holder || null, transitions }, 'acquired lease');
    }
    return true;
  }

  private spec(renew: number, acquire: number, transitions: number): k8s.V1LeaseSpec {
    return {
      holderIdentity: this.o.identity,
      leaseDurationSeconds: this.o.leaseDurationSeconds,
      acquireTime: new k8s.V1MicroTime(acquire),
      renewTime: new k8s.V1MicroTime(renew),
      leaseTransitions: transitions,
    };
  }

  private async release(): Promise<void> {
    const { coordination, namespace, name, identity } = this.o;
    try {
      const lease = await coordination.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new k8s.V1MicroTime(Date.now());
      await coordination.replaceNamespacedLease({
        name,
        namespace,
        body: {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
        },
      });
      this.o.logger.info({ lease: `${namespace}/${name}` }, 'released lease');
    } catch (err) {
      this.o.logger.warn({ lease: `${namespace}/${name}`, err: errorMessage(err) }, 'could not release lease; a standby takes over when it expires');
    }
  }
}
