// SAIR's controller: the shell around the decision step (step.ts) for every pipeline. It talks to
// the world through the ports only (observe through MetricsPort, apply and report through
// ClusterPort), so the same code runs on the simulator and in a cluster; it keeps each pipeline's
// state, the experience memory, the decision log, the snapshot and the metrics.
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/logger.js';
import type { ClusterPort, Clock, Controller, MetricsPort, PipelineSpec, TickReport } from '../core/ports.js';
import { DecisionLog } from './decision-log.js';
import { ExperienceBuffer } from './experience.js';
import { historyStart, newRateHistory } from './forecast.js';
import { seededRandom } from './random.js';
import { createBanditSelector } from './selectors/bandit.js';
import { createLlmSelector } from './selectors/llm.js';
import type { PolicySettings } from './settings.js';
import { loadOperating, saveOperating } from './operating-point.js';
import { readSnapshot, snapshotPart, writeSnapshot, type OperatingSnapshot, type RateSnapshot, type Snapshot } from './snapshot-file.js';
import { learn, newPipelineState, step, type PipelineState } from './step.js';
import type { DecisionRecord, Selector, SourcedAction } from './types.js';

export type { DecisionRecord } from './types.js';
export type { PolicySettings } from './settings.js';

export interface SairControllerDeps {
  cluster: ClusterPort;
  metrics: MetricsPort;
  clock: Clock;
  config: PolicySettings;
  logger?: Logger;
  /** Registers sair_policy_* metrics here when given. */
  registry?: Registry;
  onDecision?: (r: DecisionRecord) => void;
  /** Experience snapshot file: restored before the first tick, written every snapshotIntervalMs. */
  snapshotPath?: string;
  seed?: number;
  /** Tick interval in clock ms; default 15 s (the HPA's sync period; the paper ticked every 30 s, too slow for one-minute bursts). */
  intervalMs?: number;
  /** Replaces the LLM selector built from config.llm (tests, the benchmark's scripted server). */
  llmSelector?: Selector;
}

export interface SairController extends Controller {
  /** Newest first, optionally for one pipeline. */
  recentDecisions(limit: number, pipelineId?: string): DecisionRecord[];
  /** Write the experience snapshot now (no-op without snapshotPath). */
  snapshot(): Promise<void>;
  /**
   * Take the experience and rate histories of the pipelines `owns` accepts from `snapshot`,
   * dropping what this controller held for them (a replica that regains them holds a stale copy);
   * the rest stays. Before the next tick of those pipelines.
   */
  restore(snapshot: Snapshot, owns: (pipelineId: string) => boolean): Promise<void>;
  /** Snapshot and close the decision log. */
  close(): Promise<void>;
  /** The experience buffer's current size, for /metrics and the benchmark. */
  bufferStats(): { cells: number; experiences: number; bytes: number };
  /** For tests and the benchmark: the buffer itself. */
  readonly buffer: ExperienceBuffer;
}

function policyMetrics(registry: Registry | undefined) {
  const registers = registry ? [registry] : [];
  return {
    decisions: new Counter({ name: 'sair_policy_decisions_total', help: 'Decisions by selector and outcome', labelNames: ['selector', 'outcome'], registers }),
    fallbacks: new Counter({ name: 'sair_policy_fallbacks_total', help: 'Selector failures that fell back', labelNames: ['selector'], registers }),
    llmLatency: new Histogram({
      name: 'sair_policy_llm_latency_seconds',
      help: 'LLM selector call time',
      buckets: [0.1, 0.25, 0.5, 1, 2, 4, 8, 12],
      registers,
    }),
    tick: new Histogram({
      name: 'sair_policy_tick_compute_seconds',
      help: 'Tick compute time without the selector call and cluster I/O',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1],
      registers,
    }),
    rewards: new Counter({ name: 'sair_policy_rewards_total', help: 'Measured rewards by value', labelNames: ['value'], registers }),
    experiences: new Gauge({ name: 'sair_policy_buffer_cells', help: 'Experience buffer cells (state bucket x action)', registers }),
    bytes: new Gauge({ name: 'sair_policy_buffer_bytes', help: 'Experience buffer size estimate', registers }),
    surges: new Counter({
      name: 'sair_policy_surges_total',
      help: 'Ticks whose newest entry rate showed a surge the window held only in part (loads were scaled by it), per pipeline',
      labelNames: ['pipeline'],
      registers,
    }),
    forecastPeriod: new Gauge({
      name: 'sair_policy_forecast_period_seconds',
      help: 'Period of the recurring load the policy forecasts, per pipeline; 0 when none is clear',
      labelNames: ['pipeline'],
      registers,
    }),
  };
}

export function createSairController(deps: SairControllerDeps): SairController {
  const settings = deps.config;
  const log = deps.logger ?? createLogger('policy', 'silent');
  const random = seededRandom(deps.seed ?? 1);
  const buffer = new ExperienceBuffer(settings.buffer);
  const decisions = new DecisionLog(settings.decisionLogPath);
  const m = policyMetrics(deps.registry);
  const bandit = createBanditSelector({ exploration: settings.exploration.temperature, priorWeight: settings.exploration.priorWeight, random });
  const llm =
    deps.llmSelector ?? (settings.selector === 'llm' && settings.llm ? createLlmSelector(settings.llm, { temperature: settings.exploration.temperature }) : undefined);
  const states = new Map<string, PipelineState>();
  let restored: Promise<void> | null = null;
  /** Rate histories from the snapshot, taken by each pipeline's state when it is first seen. */
  let restoredRates: RateSnapshot = {};
  /** Learned cut depths from the snapshot, taken like the rate histories. */
  let restoredOperating: OperatingSnapshot = {};
  let lastSnapshot = deps.clock.now();
  let seq = 0;

  async function restoreFile(): Promise<void> {
    if (!deps.snapshotPath) return;
    try {
      const snap = await readSnapshot(deps.snapshotPath);
      if (snap) {
        buffer.load(snap.cells);
        restoredRates = snap.rates;
        restoredOperating = snap.operating ?? {};
        log.info({ cells: buffer.size, savedAt: snap.savedAt, pipelines: Object.keys(snap.rates).length }, 'experience snapshot restored');
      }
    } catch (err) {
      log.error({ err: errorMessage(err) }, 'experience snapshot not restored; starting empty');
    }
  }

  async function snapshot(): Promise<void> {
    if (!deps.snapshotPath) return;
    // Histories of pipelines not seen since the restart are kept until they are too old to forecast from.
    const keepFrom = historyStart(deps.clock.now());
    const rates: RateSnapshot = {};
    for (const [id, h] of Object.entries(restoredRates)) if ((h.times.at(-1) ?? -Infinity) >= keepFrom) rates[id] = h;
    for (const [id, st] of states) rates[id] = { times: st.rates.times, rates: st.rates.rates };
    // Depths of pipelines not seen since the restart go with their rate history.
    const operating: OperatingSnapshot = {};
    for (const [id, o] of Object.entries(restoredOperating)) if (rates[id]) operating[id] = o;
    for (const [id, st] of states) operating[id] = saveOperating(st.operating);
    await writeSnapshot(deps.snapshotPath, buffer.dump(), deps.clock.now(), rates, operating);
    lastSnapshot = deps.clock.now();
  }

  async function restore(snap: Snapshot, owns: (pipelineId: string) => boolean): Promise<void> {
    // The file first, so its lazy restore cannot overwrite what is taken here.
    restored ??= restoreFile();
    await restored;
    const part = snapshotPart(snap, owns);
    buffer.replace(part.cells, owns);
    for (const id of [...states.keys()]) if (owns(id)) states.delete(id);
    // What was restored earlier for the pipelines of other shards stays.
    const others = snapshotPart({ ...snap, rates: restoredRates, operating: restoredOperating }, (id) => !owns(id));
    restoredRates = { ...others.rates, ...part.rates };
    restoredOperating = { ...others.operating, ...part.operating };
    m.experiences.set(buffer.size);
    m.bytes.set(buffer.bytes);
    log.info({ cells: part.cells.length, savedAt: part.savedAt, pipelines: Object.keys(part.rates).length }, 'experience restored from the latest stored snapshot');
  }

  async function tick(pipeline: PipelineSpec): Promise<TickReport> {
    restored ??= restoreFile();
    await restored;
    const observed = await deps.metrics.observe(pipeline);
    // With surge reading off (SAIR_SURGE=false), the newest-interval rate is not looked at.
    const obs = settings.surge ? observed : { ...observed, recentArrivalRate: null };
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const now = deps.clock.now();
    let st = states.get(pipeline.id);
    if (!st) {
      const saved = restoredRates[pipeline.id];
      states.set(pipeline.id, (st = newPipelineState(saved ? { ...newRateHistory(), times: [...saved.times], rates: [...saved.rates] } : newRateHistory())));
      const depths = restoredOperating[pipeline.id];
      if (depths) st.operating = loadOperating(depths);
    }

    const r = await step(st, obs, { pipeline, settings, now, buffer, bandit, ...(llm ? { llm } : {}), random });
    for (const c of r.credited) {
      decisions.reward(c.record, c.reward);
      m.rewards.inc({ value: String(c.reward.value) });
    }
    if ((r.bn.surge ?? 1) > 1) m.surges.inc({ pipeline: pipeline.id });
    if (settings.forecast.enabled) m.forecastPeriod.set({ pipeline: pipeline.id }, r.anticipation ? r.anticipation.periodMs / 1000 : 0);
    const t1 = performance.now();
    const cpuThroughSelect = process.cpuUsage(cpu0);

    const applied: SourcedAction[] = [];
    const notes = [...r.record.guard];
    if (r.record.dryRun) {
      if (r.actions.length > 0) notes.push('dry run: nothing applied');
    } else {
      for (const a of r.actions) {
        const { source: _source, ...action } = a;
        try {
          await deps.cluster.apply(pipeline.id, action);
          applied.push(a);
        } catch (err) {
          notes.push(`apply failed: ${errorMessage(err)}`);
          log.warn({ pipeline: pipeline.id, action, err: errorMessage(err) }, 'action not applied');
        }
      }
    }
    const t2 = performance.now();
    const cpu2 = process.cpuUsage();
    const shown = r.record.dryRun ? r.actions : applied;
    const record: DecisionRecord = {
      ...r.record,
      id: `d${(++seq).toString().padStart(6, '0')}-${pipeline.id}`,
      applied: shown.map(({ source: _s, ...a }) => a),
      appliedBy: shown.map((a) => a.source),
      guard: notes,
      forced: shown.some((a) => a.source === 'floor'),
      computeMs: 0,
      computeCpuMs: 0,
    };
    learn(st, obs, r, record, r.record.dryRun ? [] : applied);
    decisions.record(record);
    const outcomeLabel = record.dryRun ? 'dry-run' : applied.length > 0 ? 'applied' : 'held';
    m.decisions.inc({ selector: record.selector, outcome: outcomeLabel });
    if (record.fallbackReason) m.fallbacks.inc({ selector: llm ? 'llm' : 'bandit' });
    if (record.selector === 'llm') m.llmLatency.observe(record.latencyMs / 1000);
    m.experiences.set(buffer.size);
    m.bytes.set(buffer.bytes);
    // Compute only: the LLM call and cluster I/O are excluded; the bandit's choice is compute and stays in.
    record.computeMs = t1 - t0 - (llm ? record.latencyMs : 0) + (performance.now() - t2);
    const cpuAfter = process.cpuUsage(cpu2);
    record.computeCpuMs = (cpuThroughSelect.user + cpuThroughSelect.system + cpuAfter.user + cpuAfter.system) / 1000;
    m.tick.observe(record.computeMs / 1000);
    log.info(
      {
        pipeline: pipeline.id,
        decision: record.id,
        selector: record.selector,
        proposed: record.proposed,
        applied: record.applied,
        by: record.appliedBy,
        bottleneck: record.bottleneck,
        fallback: record.fallbackReason ?? undefined,
      },
      'decision',
    );

    const report: TickReport = { pipelineId: pipeline.id, time: now, actions: record.applied, bottleneck: record.bottleneck, reason: record.reason };
    try {
      await deps.cluster.report(pipeline.id, report);
    } catch (err) {
      log.warn({ pipeline: pipeline.id, err: errorMessage(err) }, 'decision not reported');
    }
    if (deps.snapshotPath && now - lastSnapshot >= settings.snapshotIntervalMs) {
      await snapshot().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'experience snapshot failed'));
    }
    deps.onDecision?.(record);
    return report;
  }

  return {
    name: 'sair',
    intervalMs: deps.intervalMs ?? 15_000,
    tick,
    buffer,
    recentDecisions: (limit, pipelineId) => decisions.latest(limit, pipelineId),
    snapshot,
    restore,
    bufferStats: () => ({ cells: buffer.size, experiences: buffer.experiences, bytes: buffer.bytes }),
    async close() {
      await snapshot().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'experience snapshot failed'));
      await decisions.close();
    },
  };
}
