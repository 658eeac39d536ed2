// The loop that drives a controller: lists pipelines, ticks each on its own interval while this
// replica holds the lease of the pipeline's shard, and never dies on one pipeline's error (that
// pipeline backs off exponentially, the others go on). Ticks of different pipelines run
// concurrently; one pipeline never has two. A tick starts at its due time: the loop lists every
// pollMs but wakes for the next due tick in between, and never waits for a slow tick to finish.
// Each pipeline ticks on its own phase within its interval (tickPhase), the same on every
// replica, so a thousand pipelines that started together do not tick, query Prometheus and call
// the LLM all in the same second.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import type { ClusterPort, Clock, Controller, PipelineSpec, TickReport } from '../core/ports.js';
import { stableHash } from '../core/shards.js';
import type { DecisionRecord } from '../policy/types.js';
import type { PolicyHistory } from './api/history.js';

/** Where in each interval a pipeline's ticks fall, ms: spread by a hash of its id. */
export function tickPhase(pipelineId: string, intervalMs: number): number {
  return stableHash(pipelineId) % intervalMs;
}

/** The first tick time on the pipeline's phase at least half an interval after `t`. */
export function nextTickAfter(pipelineId: string, t: number, intervalMs: number): number {
  const earliest = t + intervalMs / 2;
  const phase = tickPhase(pipelineId, intervalMs);
  return earliest + ((((phase - earliest) % intervalMs) + intervalMs) % intervalMs);
}

/** Which pipelines this replica ticks: those of the shards whose lease it holds now. */
export interface Ownership {
  held(): ReadonlySet<number>;
  shardOf(pipelineId: string): number;
}

/** Every pipeline in one shard, held while `leading()`: a replica without sharding. */
export function singleShard(leading: () => boolean): Ownership {
  const none: ReadonlySet<number> = new Set();
  const zero: ReadonlySet<number> = new Set([0]);
  return { held: () => (leading() ? zero : none), shardOf: () => 0 };
}

export interface RuntimeDeps {
  cluster: ClusterPort;
  controller: Controller;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  history: PolicyHistory;
  /** Ticks only the pipelines of the shards held (all of them, always, without leader election). */
  ownership: Ownership;
  /** How often the loop lists pipelines, clock ms; due ticks start in between as they fall due. */
  pollMs: number;
  backoff: { baseMs: number; maxMs: number };
  /** Extra work after each decision (status with measurements, in a cluster). */
  afterDecision?: (record: DecisionRecord) => Promise<void>;
  /** Runs when this replica gains shards, before their pipelines' first tick (load their latest snapshot). */
  beforeLeading?: (gained: readonly number[]) => Promise<void>;
}

interface PipelineState {
  spec: PipelineSpec;
  /** Clock ms; 0: due at once, not on a schedule (a new pipeline, a shard just gained). */
  nextDue: number;
  failures: number;
  running: Promise<void> | null;
}

export class PolicyRuntime {
  private readonly states = new Map<string, PipelineState>();
  private readonly latest = new Map<string, DecisionRecord>();
  private running = false;
  private loop: Promise<void> | null = null;
  private held: ReadonlySet<number> = new Set();
  private listedAt = -Infinity;
  private readonly ticks: Counter;
  private readonly tickSeconds: Histogram;
  private readonly lagSeconds: Histogram;
  private readonly p99Seconds: Gauge;
  private readonly sloSeconds: Gauge;

  constructor(private readonly d: RuntimeDeps) {
    this.ticks = new Counter({ name: 'sair_policy_ticks_total', help: 'Pipeline ticks by outcome (ok, error)', labelNames: ['outcome'], registers: [d.registry] });
    this.tickSeconds = new Histogram({
      name: 'sair_policy_tick_duration_seconds',
      help: 'Whole tick time (observe, decide, act, record), wall clock',
      buckets: [0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20],
      registers: [d.registry],
    });
    this.lagSeconds = new Histogram({
      name: 'sair_policy_tick_lag_seconds',
      help: 'How late a scheduled tick started after its due time',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [d.registry],
    });
    // Only the holder of a pipeline's shard sets them: another's would be stale, and an alert takes the max over replicas.
    this.p99Seconds = new Gauge({
      name: 'sair_policy_pipeline_p99_seconds',
      help: "End-to-end P99 latency the last tick observed, per pipeline (+Inf: nothing completes); absent when it could not be measured",
      labelNames: ['pipeline'],
      registers: [d.registry],
    });
    this.sloSeconds = new Gauge({ name: 'sair_policy_pipeline_slo_seconds', help: 'P99 latency objective, per pipeline', labelNames: ['pipeline'], registers: [d.registry] });
  }

  /** Wire this into the controller's onDecision. */
  onDecision = (record: DecisionRecord): void => {
    this.latest.set(record.pipelineId, record);
    this.d.history.recordDecision(record);
  };

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await this.startDue().catch((err: unknown) => this.d.logger.error({ err: errorMessage(err) }, 'policy loop pass failed'));
        if (!this.running) break;
        await this.d.clock.sleep(this.untilNextWake());
      }
    })();
  }

  /** Until the next listing or the next due tick, whichever comes first. */
  private untilNextWake(): number {
    const now = this.d.clock.now();
    let wake = this.listedAt + this.d.pollMs;
    if (this.held.size > 0) for (const st of this.states.values()) if (!st.running && this.owned(st.spec.id) && st.nextDue < wake) wake = st.nextDue;
    return Math.max(1, Math.min(this.d.pollMs, wake - now));
  }

  private owned(pipelineId: string): boolean {
    return this.held.has(this.d.ownership.shardOf(pipelineId));
  }

  /** Stop starting ticks and wait for those in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.states.values()].map((s) => s.running));
  }

  /** One pass: list pipelines, start every due tick. Resolves when those ticks have finished. */
  async pass(): Promise<void> {
    this.listedAt = -Infinity;
    await Promise.all(await this.startDue());
  }

  /** Follow the shards held, list pipelines when a listing is due, start the due ticks; returns them. */
  private async startDue(): Promise<Promise<void>[]> {
    await this.followShards();
    if (this.held.size === 0) return [];
    const now = this.d.clock.now();
    if (now - this.listedAt >= this.d.pollMs) {
      this.listedAt = now;
      this.refresh(await this.d.cluster.listPipelines());
    }
    const started: Promise<void>[] = [];
    for (const st of this.states.values()) {
      if (st.running || now < st.nextDue || !this.owned(st.spec.id)) continue;
      if (st.nextDue > 0) this.lagSeconds.observe((now - st.nextDue) / 1000);
      const state = st;
      state.running = this.tick(state).finally(() => {
        state.running = null;
      });
      started.push(state.running);
    }
    return started;
  }

  /** Shards gained tick their pipelines at once, after beforeLeading; a lost shard's gauges and history go. */
  private async followShards(): Promise<void> {
    const held = this.d.ownership.held();
    const gained = [...held].filter((s) => !this.held.has(s));
    const lost = [...this.held].filter((s) => !held.has(s));
    if (gained.length === 0 && lost.length === 0) return;
    this.held = new Set(held);
    this.listedAt = -Infinity;
    // A new holder starts each pipeline at once rather than on the previous holder's schedule.
    for (const st of this.states.values()) if (gained.includes(this.d.ownership.shardOf(st.spec.id))) st.nextDue = 0;
    for (const id of this.states.keys()) if (lost.includes(this.d.ownership.shardOf(id))) this.forget(id);
    if (lost.length > 0) this.d.history.retain(new Set([...this.states.keys()].filter((id) => this.owned(id))));
    if (gained.length > 0) await this.d.beforeLeading?.(gained);
  }

  /** The pipelines this replica ticks now: new ones due at once, gone ones forgotten. */
  private refresh(pipelines: readonly PipelineSpec[]): void {
    const mine = pipelines.filter((p) => this.owned(p.id));
    const ids = new Set(mine.map((p) => p.id));
    for (const [id, st] of this.states) {
      if (ids.has(id) || st.running) continue;
      this.states.delete(id);
      this.forget(id);
    }
    this.d.history.retain(ids);
    for (const spec of mine) {
      const st = this.states.get(spec.id);
      if (st) st.spec = spec;
      else this.states.set(spec.id, { spec, nextDue: 0, failures: 0, running: null });
    }
  }

  private recordLatency(spec: PipelineSpec, record: DecisionRecord | undefined): void {
    const pipeline = spec.id;
    this.sloSeconds.set({ pipeline }, spec.sloP99Ms / 1000);
    const p99 = record?.p99Ms;
    if (p99 == null || Number.isNaN(p99)) this.p99Seconds.remove({ pipeline });
    else this.p99Seconds.set({ pipeline }, p99 / 1000);
  }

  private forget(pipelineId: string): void {
    this.p99Seconds.remove({ pipeline: pipelineId });
    this.sloSeconds.remove({ pipeline: pipelineId });
  }

  private async tick(st: PipelineState): Promise<void> {
    const spec = st.spec;
    const startedAt = this.d.clock.now();
    const end = this.tickSeconds.startTimer();
    const interval = spec.tickSeconds * 1000 || this.d.controller.intervalMs;
    try {
      this.latest.delete(spec.id);
      const report: TickReport = await this.d.controller.tick(spec);
      const record = this.latest.get(spec.id);
      const allocation = await this.d.cluster.allocation(spec.id).catch(() => []);
      this.d.history.recordTick(spec, report, allocation, record);
      this.recordLatency(spec, record);
      if (record && this.d.afterDecision) await this.d.afterDecision(record);
      st.failures = 0;
      st.nextDue = nextTickAfter(spec.id, startedAt, interval);
      this.ticks.inc({ outcome: 'ok' });
    } catch (err) {
      st.failures++;
      const delay = Math.min(this.d.backoff.maxMs, this.d.backoff.baseMs * 2 ** (st.failures - 1));
      st.nextDue = this.d.clock.now() + delay;
      this.ticks.inc({ outcome: 'error' });
      this.d.history.recordError(spec, this.d.clock.now(), errorMessage(err));
      this.d.logger.error({ pipeline: spec.id, err: errorMessage(err), failures: st.failures, retryInMs: delay }, 'tick failed; backing off');
    } finally {
      end();
    }
  }
}
