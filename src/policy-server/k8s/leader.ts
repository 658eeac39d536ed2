// Leader election on a coordination.k8s.io/v1 Lease, the way client-go's leaderelection does it:
// the holder renews spec.renewTime every retry period; a standby takes the lease once it has seen
// the same record unchanged for leaseDurationSeconds (measured on its own clock, so clock skew
// between nodes does not matter); every write carries resourceVersion, so two candidates cannot
// both win. Graceful shutdown releases the lease so a standby takes over at its next try.
//
// A leader is valid until renewDeadline after the start of its last successful renewal, and not a
// moment longer: a timer steps it down then even while a call hangs, and every lease call gives
// up after callTimeoutMs (shorter than the deadline). A standby cannot take over before
// leaseDuration after that renewal landed, so the gap leaseDuration - renewDeadline (5 s by
// default) is the margin against two leaders. Writes to the cluster ask writeOptions() for a
// signal that aborts them when the validity ends. An elector runs its own loop (start()), or a
// ShardLeases drives one per shard (round(), release()) and says when it may take a lease.
import * as k8s from '@kubernetes/client-node';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from '../../common/logger.js';
import { NotLeaderError, errorMessage } from '../../common/errors.js';
import { abortOptions, statusOf, timeoutOptions } from '../../common/k8s.js';

export interface LeaderElectionOptions {
  coordination: k8s.CoordinationV1Api;
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  /** A leader stops acting once this long has passed since the start of its last successful renewal. */
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Each lease call gives up after this long; must be shorter than renewDeadlineMs (default: a third of it). */
  callTimeoutMs?: number;
  logger: Logger;
  registry?: Registry;
  onChange?: (leading: boolean) => void;
  /** Asked before taking a lease this replica does not hold (free, released or expired); default: always. */
  mayAcquire?: () => boolean;
  now?: () => number;
}

/** The default lease: a standby takes over within 15 s plus one retry period of a silent leader. */
export const DEFAULT_LEASE_SECONDS = 15;

/** client-go's proportions: renew deadline 2/3 and retry period 2/15 of the lease. */
export function leaseTimings(leaseDurationSeconds: number): { renewDeadlineMs: number; retryPeriodMs: number; callTimeoutMs: number } {
  const lease = leaseDurationSeconds * 1000;
  const renewDeadlineMs = Math.round((lease * 2) / 3);
  return { renewDeadlineMs, retryPeriodMs: Math.round((lease * 2) / 15), callTimeoutMs: Math.round(renewDeadlineMs / 3) };
}

export class LeaderElector {
  private leading = false;
  private timer: NodeJS.Timeout | undefined;
  private deadline: NodeJS.Timeout | undefined;
  private running = false;
  private inFlight: Promise<void> = Promise.resolve();
  /** Local time until which this replica may act as leader; 0 when it may not. */
  private validUntil = 0;
  private validity = new AbortController();
  /** The record last seen and when (local time) it was first seen that way. */
  private observed: { key: string; at: number } | undefined;
  private readonly gauge: Gauge | undefined;
  private readonly callTimeoutMs: number;
  private readonly now: () => number;

  constructor(private readonly o: LeaderElectionOptions) {
    this.callTimeoutMs = o.callTimeoutMs ?? Math.round(o.renewDeadlineMs / 3);
    if (this.callTimeoutMs >= o.renewDeadlineMs) throw new RangeError(`callTimeoutMs (${this.callTimeoutMs}) must be shorter than renewDeadlineMs (${o.renewDeadlineMs})`);
    if (o.renewDeadlineMs >= o.leaseDurationSeconds * 1000) throw new RangeError(`renewDeadlineMs (${o.renewDeadlineMs}) must be shorter than the lease duration (${o.leaseDurationSeconds} s)`);
    this.now = o.now ?? Date.now;
    // One gauge per registry, shared by the electors of every shard.
    this.gauge = o.registry
      ? ((o.registry.getSingleMetric('sair_policy_leader_is_leader') as Gauge | undefined) ??
        new Gauge({ name: 'sair_policy_leader_is_leader', help: '1 while this replica holds the policy lease (one series per shard lease)', labelNames: ['lease'], registers: [o.registry] }))
      : undefined;
    this.gauge?.set({ lease: o.name }, 0);
  }

  /** True while this replica holds a lease that is valid at this moment. */
  isLeader(): boolean {
    return this.leading && this.now() < this.validUntil;
  }

  /**
   * Per-call options for one write to the cluster: the call is aborted when the lease stops being
   * valid. Throws (503) when this replica does not hold a valid lease now.
   */
  writeOptions(opt?: k8s.ConfigurationOptions<k8s.ObservableMiddleware>): k8s.ConfigurationOptions<k8s.ObservableMiddleware> {
    if (!this.isLeader()) throw new NotLeaderError(`${this.o.namespace}/${this.o.name}`);
    const remaining = this.validUntil - this.now();
    return abortOptions(AbortSignal.any([this.validity.signal, AbortSignal.timeout(remaining)]), opt);
  }

  /** The lease this elector campaigns for, as namespace/name. */
  get lease(): string {
    return `${this.o.namespace}/${this.o.name}`;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const loop = () => {
      if (!this.running) return;
      this.inFlight = this.round().finally(() => {
        if (this.running) this.timer = setTimeout(loop, this.o.retryPeriodMs);
      });
    };
    loop();
  }

  /** One try to acquire or renew, for a caller that drives the rounds itself instead of start(). */
  round(): Promise<void> {
    const r = this.tryAcquireOrRenew();
    this.inFlight = r;
    return r;
  }

  /** Stop acting and hand the lease over now (another replica takes it at its next try); keeps campaigning. */
  async release(why: string): Promise<void> {
    await this.inFlight;
    if (!this.isLeader()) return;
    this.stepDown(why);
    await this.releaseLease();
  }

  /** Stop campaigning; by default release the lease so a standby takes over at once. */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    await this.inFlight;
    if (this.isLeader() && (options.release ?? true)) {
      // Nothing may be written under a lease about to be released.
      this.stepDown('released');
      await this.releaseLease();
    }
    this.stepDown('stopped');
  }

  private renewed(startedAt: number): void {
    this.validUntil = startedAt + this.o.renewDeadlineMs;
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = setTimeout(() => this.stepDown('renew deadline passed without a successful renewal'), Math.max(0, this.validUntil - this.now()));
    if (!this.leading) {
      this.leading = true;
      this.validity = new AbortController();
      this.gauge?.set({ lease: this.o.name }, 1);
      this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity }, 'became leader');
      this.o.onChange?.(true);
    }
  }

  private stepDown(why: string): void {
    if (this.deadline) clearTimeout(this.deadline);
    this.deadline = undefined;
    this.validUntil = 0;
    if (!this.leading) return;
    this.leading = false;
    this.validity.abort(new NotLeaderError(`${this.o.namespace}/${this.o.name}`, why));
    this.gauge?.set({ lease: this.o.name }, 0);
    this.o.logger.info({ lease: `${this.o.namespace}/${this.o.name}`, identity: this.o.identity, why }, 'stopped leading');
    this.o.onChange?.(false);
  }

  private async tryAcquireOrRenew(): Promise<void> {
    const startedAt = this.now();
    try {
      const won = await this.attempt(startedAt);
      // A round that outlived the deadline proves nothing about now; the next round decides.
      if (won && this.now() < startedAt + this.o.renewDeadlineMs) this.renewed(startedAt);
      else if (!won) this.stepDown('another candidate holds the lease');
    } catch (err) {
      this.o.logger.warn({ lease: `${this.o.namespace}/${this.o.name}`, err: errorMessage(err) }, 'lease update failed');
      // The deadline timer steps a leader down; a failed call alone does not.
    }
  }

  private opts() {
    return timeoutOptions(this.callTimeoutMs);
  }

  private mayAcquire(): boolean {
    return this.o.mayAcquire?.() ?? true;
  }

  /** One round: true when this replica holds the lease afterwards. */
  private async attempt(now: number): Promise<boolean> {
    const { coordination, namespace, name, identity } = this.o;
    let lease: k8s.V1Lease;
    try {
      lease = await coordination.readNamespacedLease({ name, namespace }, this.opts());
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
      if (!this.mayAcquire()) return false;
      try {
        await coordination.createNamespacedLease(
          { namespace, body: { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name, namespace }, spec: this.spec(now, now, 0) } },
          this.opts(),
        );
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
    if (holder !== identity && !this.mayAcquire()) return false;

    const transitions = (spec.leaseTransitions ?? 0) + (holder === identity ? 0 : 1);
    const acquired = holder === identity && spec.acquireTime ? new Date(spec.acquireTime).getTime() : now;
    try {
      await coordination.replaceNamespacedLease({ name, namespace, body: { ...lease, spec: this.spec(now, acquired, transitions) } }, this.opts());
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

  private async releaseLease(): Promise<void> {
    const { coordination, namespace, name, identity } = this.o;
    try {
      const lease = await coordination.readNamespacedLease({ name, namespace }, this.opts());
      if (lease.spec?.holderIdentity !== identity) return;
      const now = new k8s.V1MicroTime(this.now());
      await coordination.replaceNamespacedLease(
        { name, namespace, body: { ...lease, spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: now, acquireTime: now } } },
        this.opts(),
      );
      this.o.logger.info({ lease: `${namespace}/${name}` }, 'released lease');
    } catch (err) {
      this.o.logger.warn({ lease: `${namespace}/${name}`, err: errorMessage(err) }, 'could not release lease; a standby takes over when it expires');
    }
  }
}
