// The failsafe loop: every poll it reads the policy server's Leases, the opted-in
// namespaces and the HPAs, and writes the HPAs whose state is not what reconcile.ts says (with
// resourceVersion, so a concurrent writer gives a 409 and the next pass looks again). It shares no
// process with the policy server, so it works with every policy-server pod down. With shards an
// HPA follows the Leases of the shards that may own it (shard-owners.ts), so a lapsed shard's HPAs
// get their behavior back while the other shards' stay with SAIR.
import * as k8s from '@kubernetes/client-node';
import { Counter, Gauge, type Registry } from 'prom-client';
import { errorMessage } from '../common/errors.js';
import { suspensionOf, type HpaObject } from '../common/hpa-takeover.js';
import type { KubeClients } from '../common/k8s.js';
import { statusOf, timeoutOptions } from '../common/k8s.js';
import type { Logger } from '../common/logger.js';
import { LABEL_ENABLED } from '../core/names.js';
import { shardNames } from '../core/shards.js';
import { LeaseLiveness, type LeaseRecord, type Liveness } from './liveness.js';
import { reconcileHpa, type HpaAction } from './reconcile.js';
import { claimsOf, shardsOfHpa, type PipelineObject } from './shard-owners.js';

export interface FailsafeDeps {
  clients: KubeClients;
  logger: Logger;
  registry: Registry;
  /** Namespace of the policy server's Leases. */
  leaseNamespace: string;
  /** SAIR_LEASE_NAME: the one Lease, or the prefix of the shard Leases. */
  leaseName: string;
  /** SAIR_SHARDS, as the policy server has it. */
  shards: number;
  /** SAIR counts as gone once a lease has gone unrenewed this long. */
  afterMs: number;
  /** Each API call fails after this long. */
  callTimeoutMs: number;
  /** Shown in Events as the reporting instance (the pod name). */
  identity: string;
  now?: () => number;
}

export interface PassResult {
  liveness: Liveness;
  changes: { hpa: string; action: HpaAction; outcome: 'ok' | 'conflict' | 'error' }[];
}

export class Failsafe {
  private readonly liveness: LeaseLiveness;
  private readonly now: () => number;
  private readonly active: Gauge;
  private readonly leaseAge: Gauge;
  private readonly suspended: Gauge;
  private readonly changes: Counter;
  private readonly passes: Counter;
  /** The unrenewed Leases the last pass saw, to log each change once. */
  private wasStale: string | undefined;
  private readonly leaseNames: string[];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> = Promise.resolve();
  private stopped = true;

  constructor(private readonly d: FailsafeDeps) {
    this.liveness = new LeaseLiveness(d.afterMs);
    this.leaseNames = shardNames(d.leaseName, d.shards);
    this.now = d.now ?? Date.now;
    const registers = [d.registry];
    this.active = new Gauge({ name: 'sair_failsafe_active', help: '1 while the policy server counts as gone for some shard and its HPAs scale on their own', registers });
    this.leaseAge = new Gauge({ name: 'sair_failsafe_lease_age_seconds', help: 'Time since a policy-server leader last renewed each lease', labelNames: ['lease'], registers });
    this.suspended = new Gauge({ name: 'sair_failsafe_suspended_hpas', help: 'HPAs the failsafe handed their own behavior back', registers });
    this.changes = new Counter({ name: 'sair_failsafe_hpa_changes_total', help: 'HPA writes by action (take-over, suspend, release) and outcome', labelNames: ['action', 'outcome'], registers });
    this.passes = new Counter({ name: 'sair_failsafe_passes_total', help: 'Reconcile passes by outcome', labelNames: ['outcome'], registers });
  }

  start(pollMs: number): void {
    this.stopped = false;
    const loop = () => {
      if (this.stopped) return;
      this.running = this.pass()
        .catch((err: unknown) => this.d.logger.error({ err: errorMessage(err) }, 'failsafe pass failed; trying again next poll'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(loop, pollMs);
        });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
  }

  private opts() {
    return timeoutOptions(this.d.callTimeoutMs);
  }

  private async readLeases(): Promise<Map<string, LeaseRecord | undefined>> {
    const out = new Map<string, LeaseRecord | undefined>();
    await Promise.all(
      this.leaseNames.map(async (name) => {
        try {
          const lease = await this.d.clients.coordination.readNamespacedLease({ name, namespace: this.d.leaseNamespace }, this.opts());
          out.set(name, {
            holder: lease.spec?.holderIdentity ?? '',
            renewTime: lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : undefined,
            resourceVersion: lease.metadata?.resourceVersion ?? '',
          });
        } catch (err) {
          if (statusOf(err) !== 404) throw err;
          out.set(name, undefined);
        }
      }),
    );
    // Keep the configured order, so metrics and logs list leases the same way each pass.
    return new Map(this.leaseNames.map((n) => [n, out.get(n)]));
  }

  /** With shards: the InferencePipelines, to know which pipeline (and shard) claims an HPA's Deployment. */
  private async readPipelines(): Promise<PipelineObject[]> {
    if (this.d.shards === 1) return [];
    const list = (await this.d.clients.custom.listClusterCustomObject({ group: 'sair.dev', version: 'v1alpha1', plural: 'inferencepipelines' }, this.opts())) as { items?: PipelineObject[] };
    return list.items ?? [];
  }

  /** One reconcile pass over every HPA. */
  async pass(): Promise<PassResult> {
    let result: PassResult;
    try {
      result = await this.reconcile();
      this.passes.inc({ outcome: 'ok' });
    } catch (err) {
      this.passes.inc({ outcome: 'error' });
      throw err;
    }
    return result;
  }

  private async reconcile(): Promise<PassResult> {
    const [leases, namespaces, hpas, pipelines] = await Promise.all([
      this.readLeases(),
      this.d.clients.core.listNamespace({ labelSelector: `${LABEL_ENABLED}=true` }, this.opts()),
      this.d.clients.autoscaling.listHorizontalPodAutoscalerForAllNamespaces({}, this.opts()),
      this.readPipelines(),
    ]);
    const now = this.now();
    const liveness = this.liveness.observe(leases, now);
    for (const l of liveness.leases) this.leaseAge.set({ lease: l.name }, Number.isFinite(l.ageMs) ? l.ageMs / 1000 : -1);
    this.active.set(liveness.alive ? 0 : 1);
    const stale = new Set(liveness.leases.filter((l) => l.ageMs > this.d.afterMs).map((l) => l.name));
    const staleKey = [...stale].join();
    if (staleKey !== this.wasStale) {
      const ages = liveness.leases.filter((l) => stale.has(l.name)).map((l) => `${l.name} (${Math.round(l.ageMs / 1000)} s)`);
      if (liveness.alive) this.d.logger.info({ leases: liveness.leases.map((l) => l.name) }, 'policy server alive: its HPAs stay taken over');
      else this.d.logger.warn({ stale: ages }, 'policy server gone for these Leases: handing the taken-over HPAs they decide for their own behavior back');
      this.wasStale = staleKey;
    }
    const enabled = new Set(namespaces.items.map((n) => n.metadata?.name ?? ''));
    const claims = claimsOf(pipelines);
    const changes: PassResult['changes'] = [];
    let suspended = 0;
    for (const hpa of hpas.items) {
      const obj = hpa as unknown as HpaObject;
      const ns = hpa.metadata?.namespace ?? '';
      const staleLeases = shardsOfHpa(hpa, claims, this.d.shards).map((s) => this.leaseNames[s]!).filter((n) => stale.has(n));
      const decision = reconcileHpa(obj, { namespaceEnabled: enabled.has(ns), staleLeases, now: new Date(now).toISOString() });
      if (!decision) {
        if (suspensionOf(obj)) suspended++;
        continue;
      }
      const id = `${ns}/${hpa.metadata?.name ?? ''}`;
      const outcome = await this.write(hpa, decision.object, decision.action, decision.reason, decision.warnings);
      if (decision.action === 'suspend' && outcome === 'ok') suspended++;
      changes.push({ hpa: id, action: decision.action, outcome });
    }
    this.suspended.set(suspended);
    return { liveness, changes };
  }

  private async write(hpa: k8s.V2HorizontalPodAutoscaler, next: HpaObject, action: HpaAction, reason: string, warnings: string[]): Promise<'ok' | 'conflict' | 'error'> {
    const namespace = hpa.metadata?.namespace ?? '';
    const name = hpa.metadata?.name ?? '';
    const log = this.d.logger.child({ hpa: `${namespace}/${name}`, action });
    for (const w of warnings) log.warn({ warning: w }, 'HPA annotation unreadable');
    try {
      await this.d.clients.autoscaling.replaceNamespacedHorizontalPodAutoscaler(
        { name, namespace, body: next as unknown as k8s.V2HorizontalPodAutoscaler },
        this.opts(),
      );
    } catch (err) {
      const outcome = statusOf(err) === 409 ? 'conflict' : 'error';
      this.changes.inc({ action, outcome });
      // A conflict means someone else wrote since our list; the next pass reads it again.
      if (outcome === 'error') log.error({ err: errorMessage(err) }, 'HPA write failed; trying again next poll');
      return outcome;
    }
    this.changes.inc({ action, outcome: 'ok' });
    log.info({ reason }, action === 'suspend' ? 'HPA scales on its own again' : action === 'take-over' ? 'HPA taken over by SAIR again' : 'HPA released from SAIR');
    await this.event(hpa, action, reason);
    return 'ok';
  }

  /** One Event per change (changes are rare), so `kubectl describe hpa` says what happened. */
  private async event(hpa: k8s.V2HorizontalPodAutoscaler, action: HpaAction, reason: string): Promise<void> {
    const namespace = hpa.metadata?.namespace ?? '';
    const now = new Date(this.now());
    const text = { 'take-over': 'SAIR scales this HPA\'s target again', suspend: 'this HPA scales on its own behavior', release: 'SAIR no longer manages this HPA' }[action];
    try {
      await this.d.clients.core.createNamespacedEvent(
        {
          namespace,
          body: {
            metadata: { generateName: `${hpa.metadata?.name ?? 'hpa'}.`, namespace },
            involvedObject: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', name: hpa.metadata?.name, namespace, uid: hpa.metadata?.uid },
            type: action === 'suspend' ? 'Warning' : 'Normal',
            reason: { 'take-over': 'SairTakeOver', suspend: 'SairFailsafe', release: 'SairReleased' }[action],
            message: `${text}: ${reason}`,
            count: 1,
            firstTimestamp: now,
            lastTimestamp: now,
            source: { component: 'sair-failsafe' },
            reportingComponent: 'sair.dev/failsafe',
            reportingInstance: this.d.identity,
            action: 'Failsafe',
          },
        },
        this.opts(),
      );
    } catch (err) {
      this.d.logger.warn({ hpa: `${namespace}/${hpa.metadata?.name ?? ''}`, err: errorMessage(err) }, 'event not written');
    }
  }
}
