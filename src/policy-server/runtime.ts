// The loop that drives a controller: lists pipelines, ticks each on its own interval while this
// replica leads, and never dies on one pipeline's error (that pipeline backs off exponentially,
// the others go on). Ticks of different pipelines run concurrently; one pipeline never has two.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import { errorMessage } from '../common/errors.js';
import type { ClusterPort, Clock, Controller, PipelineSpec, TickReport } from '../core/ports.js';
import type { DecisionRecord } from '../policy/types.js';
import type { PolicyHistory } from './api/history.js';

export interface RuntimeDeps {
  cluster: ClusterPort;
  controller: Controller;
  clock: Clock;
  logger: Logger;
  registry: Registry;
  history: PolicyHistory;
  /** Ticks only while this is true (the lease holder); always true without leader election. */
  isLeader: () => boolean;
  /** How often the loop wakes to list pipelines and start due ticks, clock ms. */
  pollMs: number;
  backoff: { baseMs: number; maxMs: number };
  /** Extra work after each decision (status with measurements, in a cluster). */
  afterDecision?: (record: DecisionRecord) => Promise<void>;
  /** Runs when this replica starts leading, before its first tick (fetch the latest snapshot). */
  beforeLeading?: () => Promise<void>;
}

interface PipelineState {
  spec: PipelineSpec;
  nextDue: number;
  failures: number;
  running: Promise<void> | null;
}

export class PolicyRuntime {
  private readonly states = new Map<string, PipelineState>();
  private readonly latest = new Map<string, DecisionRecord>();
  private running = false;
  private loop: Promise<void> | null = null;
  private wasLeader = false;
  private readonly ticks: Counter;
  private readonly tickSeconds: Histogram;
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
    // Only the leader's are set: a standby's would be stale, and an alert takes the max over replicas.
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
        await this.pass().catch((err: unknown) => this.d.logger.error({ err: errorMessage(err) }, 'policy loop pass failed'));
        if (!this.running) break;
        await this.d.clock.sleep(this.d.pollMs);
      }
    })();
  }

  /** Stop starting ticks and wait for those in flight. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.states.values()].map((s) => s.running));
  }

  /** One pass: list pipelines, start every due tick. Resolves when those ticks have finished. */
  async pass(): Promise<void> {
    const leading = this.d.isLeader();
    if (leading !== this.wasLeader) {
      this.wasLeader = leading;
      // A new leader starts every pipeline at once rather than on the old leader's schedule.
      for (const s of this.states.values()) s.nextDue = 0;
      if (leading) await this.d.beforeLeading?.();
      else this.forgetPipelines();
    }
    if (!leading) return;
    const pipelines = await this.d.cluster.listPipelines();
    const now = this.d.clock.now();
    const ids = new Set(pipelines.map((p) => p.id));
    for (const id of this.states.keys()) {
      if (ids.has(id) || this.states.get(id)!.running) continue;
      this.states.delete(id);
      this.p99Seconds.remove({ pipeline: id });
      this.sloSeconds.remove({ pipeline: id });
    }
    this.d.history.retain(ids);
    const started: Promise<void>[] = [];
    for (const spec of pipelines) {
      let st = this.states.get(spec.id);
      if (!st) this.states.set(spec.id, (st = { spec, nextDue: now, failures: 0, running: null }));
      st.spec = spec;
      if (st.running || now < st.nextDue) continue;
      const state = st;
      state.running = this.tick(state).finally(() => {
        state.running = null;
      });
      started.push(state.running);
    }
    await Promise.all(started);
  }

  private recordLatency(spec: PipelineSpec, record: DecisionRecord | undefined): void {
    const pipeline = spec.id;
    this.sloSeconds.set({ pipeline }, spec.sloP99Ms / 1000);
    const p99 = record?.p99Ms;
    if (p99 == null || Number.isNaN(p99)) this.p99Seconds.remove({ pipeline });
    else this.p99Seconds.set({ pipeline }, p99 / 1000);
  }

  private forgetPipelines(): void {
    this.p99Seconds.reset();
    this.sloSeconds.reset();
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
      st.nextDue = startedAt + interval;
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
