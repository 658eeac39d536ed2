// SAIR's controller: the ICRL tick (observe, reward, remember, choose, act) for every pipeline, on the ports only, so the same
// code runs on the simulator and in a cluster:
// observe -> detect bottleneck -> reward last action -> remember -> candidates -> choose -> guard -> act -> record.
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../common/errors.js';
import { createLogger, type Logger } from '../common/logger.js';
import { detectBottleneck, newCapacityMemory, rememberCapacity, type CapacityMemory } from './bottleneck.js';
import { actionKeyOf, generateCandidates } from './candidates.js';
import { decide } from './decide.js';
import { DecisionLog } from './decision-log.js';
import { ExperienceBuffer, features, stateBucket, type StateFeatures } from './experience.js';
import { anticipate, historyStart, newRateHistory, recordRate, type Anticipation, type RateHistory } from './forecast.js';
import { newGuardState, noteApplied, recordNeeds, type GuardState } from './guard.js';
import type { ClusterPort, Clock, Controller, MetricsPort, PipelineSpec, ScalingAction, TickReport } from '../core/ports.js';
import { buildPrompt, experienceRowTokens } from './prompt.js';
import { seededRandom } from './random.js';
import { retrieve } from './retrieval.js';
import { computeReward, estimateEpsilon, outcomeOf } from './reward.js';
import { screenCandidates } from './screen.js';
import { createBanditSelector } from './selectors/bandit.js';
import { createLlmSelector } from './selectors/llm.js';
import type { PolicySettings } from './settings.js';
import { readSnapshot, writeSnapshot, type RateSnapshot } from './snapshot-file.js';
import type { DecisionRecord, Outcome, Selector } from './types.js';

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
  /** Snapshot and close the decision log. */
  close(): Promise<void>;
  /** The experience buffer's current size, for /metrics and the benchmark. */
  bufferStats(): { cells: number; experiences: number; bytes: number };
  /** For tests and the benchmark: the buffer itself. */
  readonly buffer: ExperienceBuffer;
}

interface PipelineState {
  guard: GuardState;
  capacity: CapacityMemory;
  history: Outcome[];
  /** Entry rate per tick, for the recurring-load forecast. */
  rates: RateHistory;
  pending: { record: DecisionRecord; features: StateFeatures; actionKey: string; reference: Outcome } | null;
}

const HISTORY = 24;

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
    llmTokens: new Counter({ name: 'sair_policy_llm_tokens_total', help: 'LLM tokens by kind', labelNames: ['kind'], registers }),
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
  let lastSnapshot = deps.clock.now();
  let seq = 0;

  async function restore(): Promise<void> {
    if (!deps.snapshotPath) return;
    try {
      const snap = await readSnapshot(deps.snapshotPath);
      if (snap) {
        buffer.load(snap.cells);
        restoredRates = snap.rates;
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
    await writeSnapshot(deps.snapshotPath, buffer.dump(), deps.clock.now(), rates);
    lastSnapshot = deps.clock.now();
  }

  async function tick(pipeline: PipelineSpec): Promise<TickReport> {
    restored ??= restore();
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
      const rates = saved ? { ...newRateHistory(), times: [...saved.times], rates: [...saved.rates] } : newRateHistory();
      states.set(pipeline.id, (st = { guard: newGuardState(), capacity: newCapacityMemory(), history: [], rates, pending: null }));
    }

    rememberCapacity(st.capacity, obs);
    const bn = detectBottleneck(pipeline, obs, st.capacity);
    const surge = bn.surge ?? 1;
    if (surge > 1) m.surges.inc({ pipeline: pipeline.id });
    const outcome = outcomeOf(pipeline, obs);
    const f = features(bn.stage, bn.pressure, outcome?.p99Ratio ?? null);

    const settle = (state: PipelineState, o: Outcome) => {
      const pending = state.pending!;
      const reward = computeReward(o, pending.reference, estimateEpsilon(state.history));
      // What the guard forced (an emergency, a forecast peak) was no selector's choice: learning it
      // blamed the share increase that met each burst for the breach the burst itself caused.
      if (!pending.record.forced) {
        buffer.add(pipeline.id, {
          time: now,
          features: pending.features,
          actionKey: pending.actionKey,
          reward: reward.value,
          outcome: reward.outcome,
          reference: reward.reference,
          epsilon: reward.epsilon,
        });
      }
      decisions.reward(pending.record, reward);
      m.rewards.inc({ value: String(reward.value) });
      state.pending = null;
    };
    // A decision is judged on the first window that lies wholly after it: windows are longer than a
    // tick (30 s against 15 s by default), and the next one still holds the time before the action.
    if (st.pending && outcome && now - st.pending.record.time >= obs.windowMs) settle(st, outcome);
    if (outcome) {
      st.history.push(outcome);
      if (st.history.length > HISTORY) st.history.shift();
    }
    recordNeeds(st.guard, bn, obs, now, settings.cooldowns.stabilizationMs, { sloP99Ms: pipeline.sloP99Ms, p99Budget: settings.p99Budget }, settings.surgeReserve);
    let anticipation: Anticipation | null = null;
    if (settings.forecast.enabled && obs.arrivalRate !== null) {
      recordRate(st.rates, now, obs.arrivalRate);
      // Against the rate now, surge included: a burst already under way is not due again.
      anticipation = anticipate(st.rates, now, obs.arrivalRate * surge, { shareMs: settings.forecast.shareLeadMs, replicaMs: settings.forecast.replicaLeadMs });
      m.forecastPeriod.set({ pipeline: pipeline.id }, anticipation ? anticipation.periodMs / 1000 : 0);
    }

    // What the guard would only hold is not offered: a selector's tick goes to a change that can happen.
    const generated = generateCandidates(pipeline, obs, bn, settings.maxStep, st.guard);
    const { candidates, screened } = screenCandidates(generated, pipeline, obs, bn, st.guard, now, settings, anticipation);
    const keys = candidates.map((c) => c.key);
    // The bandit reads only the statistics; experience rows are retrieved for a prompt.
    const retrieval = llm
      ? retrieve(buffer, pipeline.id, f, keys, {
          tokenBudget: settings.promptTokenBudget,
          contextSampling: settings.exploration.contextSampling,
          random,
          rowTokens: experienceRowTokens,
        })
      : { stats: buffer.neighbourhood(pipeline.id, f, keys, 0).stats, rows: [] };
    const prompt = llm
      ? buildPrompt({ pipeline, obs, bn, candidates, stats: retrieval.stats, rows: retrieval.rows, exposeNames: settings.exposeNames, anticipation })
      : undefined;
    const cpuBeforeSelect = process.cpuUsage(cpu0);

    const d = await decide(
      { pipeline, obs, bn, candidates, stats: retrieval.stats, prompt, now, anticipation },
      { llm, bandit, settings, random, guardState: st.guard },
    );
    const t1 = performance.now();
    const cpuThroughSelect = process.cpuUsage(cpu0);
    const dryRun = settings.dryRun || pipeline.mode === 'DryRun';
    const applied: ScalingAction[] = [];
    const notes = [...d.guard];
    if (screened.length > 0) notes.push(`not offered (the guard would hold them): ${screened.join(', ')}`);
    if (dryRun) {
      if (d.applied.length > 0) notes.push('dry run: nothing applied');
    } else {
      for (const a of d.applied) {
        try {
          await deps.cluster.apply(pipeline.id, a);
          applied.push(a);
        } catch (err) {
          notes.push(`apply failed: ${errorMessage(err)}`);
          log.warn({ pipeline: pipeline.id, action: a, err: errorMessage(err) }, 'action not applied');
        }
      }
      noteApplied(st.guard, obs, applied, now);
    }
    const t2 = performance.now();
    const cpu2 = process.cpuUsage();
    const record: DecisionRecord = {
      id: `d${(++seq).toString().padStart(6, '0')}-${pipeline.id}`,
      pipelineId: pipeline.id,
      time: now,
      selector: d.selector,
      promptHash: d.promptHash,
      tokens: d.tokens,
      latencyMs: d.latencyMs,
      computeMs: 0,
      computeCpuMs: 0,
      candidates: d.candidates,
      proposed: d.proposed,
      applied: dryRun ? d.applied : applied,
      guard: notes,
      forced: d.forced,
      fallbackReason: d.fallbackReason,
      bottleneck: bn.stage,
      pressure: bn.pressure.map((p) => (p === null ? null : Math.round(p * 1000) / 1000)),
      reason: d.reason,
      forecast: anticipation && { periodMs: anticipation.periodMs, confidence: anticipation.confidence, shareFactor: anticipation.shareFactor, replicaFactor: anticipation.replicaFactor },
      stateBucket: stateBucket(f),
      p99Ms: obs.p99Ms,
      sloP99Ms: pipeline.sloP99Ms,
      costRate: obs.costRate,
      dryRun,
      reward: null,
    };
    if (outcome) {
      // Learn under what actually happened: the guard may have changed the choice, a dry run changes nothing.
      // Holds while a decision waits for its window change nothing and are not judged apart; a new
      // action judges the waiting one early, on what it has seen, so the two are not mixed up.
      const actionKey = dryRun ? 'hold' : actionKeyOf(applied, obs.allocation);
      if (st.pending && actionKey !== 'hold') settle(st, outcome);
      if (!st.pending) st.pending = { record, features: f, actionKey, reference: outcome };
    }
    decisions.record(record);
    const outcomeLabel = dryRun ? 'dry-run' : applied.length > 0 ? 'applied' : 'held';
    m.decisions.inc({ selector: d.selector, outcome: outcomeLabel });
    if (d.fallbackReason) m.fallbacks.inc({ selector: llm ? 'llm' : 'bandit' });
    if (d.selector === 'llm') m.llmLatency.observe(d.latencyMs / 1000);
    if (d.tokens) {
      m.llmTokens.inc({ kind: 'prompt' }, d.tokens.prompt);
      m.llmTokens.inc({ kind: 'completion' }, d.tokens.completion);
    }
    m.experiences.set(buffer.size);
    m.bytes.set(buffer.bytes);
    // Compute only: the LLM call and cluster I/O are excluded; the bandit's choice is compute and stays in.
    record.computeMs = t1 - t0 - (llm ? d.latencyMs : 0) + (performance.now() - t2);
    const cpuAfter = process.cpuUsage(cpu2);
    const cpuSelect = llm ? cpuBeforeSelect : cpuThroughSelect;
    record.computeCpuMs = (cpuSelect.user + cpuSelect.system + cpuAfter.user + cpuAfter.system) / 1000;
    m.tick.observe(record.computeMs / 1000);
    log.info(
      { pipeline: pipeline.id, decision: record.id, selector: d.selector, proposed: d.proposed, applied: record.applied, bottleneck: bn.stage, fallback: d.fallbackReason ?? undefined },
      'decision',
    );

    const report: TickReport = { pipelineId: pipeline.id, time: now, actions: record.applied, bottleneck: bn.stage, reason: d.reason };
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
    bufferStats: () => ({ cells: buffer.size, experiences: buffer.experiences, bytes: buffer.bytes }),
    async close() {
      await snapshot().catch((err: unknown) => log.error({ err: errorMessage(err) }, 'experience snapshot failed'));
      await decisions.close();
    },
  };
}
