// The decision step, one tick of one pipeline, readable top to bottom:
//
//   estimate -> floors -> propose -> select -> normalize        (decide: step)
//   learn                                                       (after the cluster acted: learn)
//
// 1. Estimate: per-stage load/capacity (the learnt service-time model), a surge in the newest
//    scrape, the recurring-load forecast, and the windows the normalizer judges by.
// 2. Floors: safety needs (an SLO emergency, a forecast surge, the surge reserve) as the least
//    capacity each stage must have. Never actions of their own.
// 3. Propose: the candidates (hold, replicas +/-, GPU share +/-, a consolidation or a repack that
//    gives a GPU back), with priors around the pipeline's learned operating point (how deep each
//    GPU stage may be cut, how much reserve each CPU stage keeps); those the normalizer would only
//    hold are screened out.
// 4. Select: the selector (LLM or bandit) picks one, reading the same evidence: the retrieved
//    experiences and their statistics.
// 5. Normalize: the choice lifted to the floors, then bounds, step limits, cooldowns and
//    stabilization, HPA-style. It only limits; each applied change says who produced it.
// 6. Learn: every decision (holds included) is credited with its return over the next windows
//    against its state's value (credit.ts); experiences join the memory; each GPU stage's cut depth
//    moves by its episode's outcome, and each CPU stage's surge reserve is sized by its last hour of
//    loads (operating-point.ts).
//
// No I/O: no clock, network or files. The state is the caller's; step and learn update it in place
// (the experience buffer is large, and a copy per tick would cost more than the tick).
import { detectBottleneck, newCapacityMemory, rememberCapacity, type BottleneckResult, type CapacityMemory } from './bottleneck.js';
import { actionKeyOf, generateCandidates } from './candidates.js';
import { awaitCredit, creditTick, newCreditState, type CreditState } from './credit.js';
import { decide, type Decision } from './decide.js';
import { features, stateBucket, type ExperienceBuffer, type StateFeatures } from './experience.js';
import { computeFloors, liftToFloors, unmetFloors, type Floor } from './floors.js';
import { anticipate, newRateHistory, recordRate, type Anticipation, type RateHistory } from './forecast.js';
import { metricsMissing, newWindowState, noteApplied, normalize, recordNeeds, sloBreached, type WindowState } from './normalize.js';
import { cutBases, newOperatingState, nextEpisode, observeTick, packShares, shareCutBases, surgePeaks, trimBases, type OperatingState } from './operating-point.js';
import type { PipelineObservation, PipelineSpec, ScalingAction } from '../core/ports.js';
import { buildPrompt, experienceRowTokens } from './prompt.js';
import { outcomeOf } from './reward.js';
import { retrieve } from './retrieval.js';
import { screenCandidates } from './screen.js';
import { banditEstimates } from './selectors/bandit.js';
import { novelty, shouldConsult } from './selectors/gate.js';
import type { PolicySettings } from './settings.js';
import type { ActionSource, DecisionRecord, Outcome, Reward, Selector, SourcedAction } from './types.js';

/** What a decision waits with for its credit. */
export interface CreditPayload {
  record: DecisionRecord;
  features: StateFeatures;
  actionKey: string;
  /** Whether the selector's choice alone produced what was applied (floors did not). */
  learnable: boolean;
}

/** Everything the step remembers about one pipeline. */
export interface PipelineState {
  window: WindowState;
  capacity: CapacityMemory;
  /** Entry rate per tick, for the recurring-load forecast. */
  rates: RateHistory;
  credit: CreditState<CreditPayload>;
  operating: OperatingState;
}

export function newPipelineState(rates: RateHistory = newRateHistory()): PipelineState {
  return { window: newWindowState(), capacity: newCapacityMemory(), rates, credit: newCreditState(), operating: newOperatingState() };
}

/** What the step needs besides the state and the observation. */
export interface StepContext {
  pipeline: PipelineSpec;
  settings: PolicySettings;
  /** The clock's time of the observation. */
  now: number;
  buffer: ExperienceBuffer;
  bandit: Selector;
  llm?: Selector;
  random: () => number;
}

export interface StepResult {
  /** Absolute targets to apply, each with who produced it; [] holds. */
  actions: SourcedAction[];
  /** The decision as the log, the API and Events show it (applied filled in by `learn`). */
  record: Omit<DecisionRecord, 'id' | 'applied' | 'appliedBy' | 'computeMs' | 'computeCpuMs'>;
  bn: BottleneckResult;
  anticipation: Anticipation | null;
  /** The state as the memory sees it. */
  features: StateFeatures;
  /** Judged earlier decisions, for the decision log (their records get the reward). */
  credited: { record: DecisionRecord; reward: Reward }[];
}

/** 1. Estimate: what the step knows about each stage this tick. */
function estimate(st: PipelineState, obs: PipelineObservation, ctx: StepContext) {
  const { pipeline, settings, now } = ctx;
  rememberCapacity(st.capacity, obs);
  const learnOperating = settings.learning && settings.operatingPoint;
  const bn = detectBottleneck(pipeline, obs, st.capacity, undefined, surgePeaks(st.operating, obs.allocation.length, learnOperating));
  const outcome = outcomeOf(pipeline, obs);
  const f = features(bn.stage, bn.pressure, outcome?.p99Ratio ?? null);
  let anticipation: Anticipation | null = null;
  if (settings.forecast.enabled && obs.arrivalRate !== null) {
    recordRate(st.rates, now, obs.arrivalRate);
    // Against the rate now, surge included: a burst already under way is not due again.
    anticipation = anticipate(st.rates, now, obs.arrivalRate * (bn.surge ?? 1), { shareMs: settings.forecast.shareLeadMs, replicaMs: settings.forecast.replicaLeadMs });
  }
  observeTick(st.operating, pipeline, obs, bn, anticipation !== null);
  const shares = packShares(st.operating, pipeline, obs);
  const bases = { cut: shareCutBases(st.operating, pipeline, obs, bn, learnOperating, shares), trim: trimBases(st.operating, pipeline, obs, learnOperating, anticipation !== null) };
  recordNeeds(st.window, bn, obs, now, settings.cooldowns.stabilizationMs, { sloP99Ms: pipeline.sloP99Ms, p99Budget: settings.p99Budget }, settings.surgeReserve, bases);
  st.window.packShares = learnOperating ? shares : [];
  const learned = cutBases(st.operating, obs.allocation.length, learnOperating);
  const operatingPoint = pipeline.stages.map((s, i) => (s.gpuCores ? learned[i]! : null));
  return { bn, outcome, features: f, operatingPoint, anticipation, breach: sloBreached(pipeline, obs) };
}

/**
 * 6a. Learn from decisions whose horizon has passed: feed them this tick's outcome and store the
 * judged ones in memory (unless a floor produced what they applied); at an episode's end, move each
 * GPU stage's cut depth by what the episode showed and note each CPU stage's peak (operating-point.ts).
 */
function learnMatured(st: PipelineState, obs: PipelineObservation, outcome: Outcome | null, ctx: StepContext): { credited: { record: DecisionRecord; reward: Reward }[]; operatingNotes: string[] } {
  const { now, settings, pipeline } = ctx;
  const credited: { record: DecisionRecord; reward: Reward }[] = [];
  if (outcome) {
    for (const c of creditTick(st.credit, outcome, now, settings.creditHorizonWindows * obs.windowMs)) {
      const { record, features: f, actionKey, learnable } = c.payload;
      if (settings.learning && learnable) {
        ctx.buffer.add(pipeline.id, {
          time: c.payload.record.time,
          features: f,
          actionKey,
          reward: c.reward.value,
          outcome: c.reward.outcome,
          reference: c.reward.reference,
          epsilon: c.reward.epsilon,
        });
      }
      credited.push({ record, reward: c.reward });
    }
  }
  return { credited, operatingNotes: nextEpisode(st.operating, now, settings.learning && settings.operatingPoint) };
}

/** Steps 1-5: what to do this tick. Awaits the selector; otherwise pure. */
export async function step(st: PipelineState, obs: PipelineObservation, ctx: StepContext): Promise<StepResult> {
  const { pipeline, settings, now } = ctx;
  const est = estimate(st, obs, ctx);
  const { credited, operatingNotes } = learnMatured(st, obs, est.outcome, ctx);
  const { bn, anticipation } = est;

  // 2. Floors.
  const floors: Floor[] = metricsMissing(obs, bn) ? [] : computeFloors(pipeline, obs, bn, st.window, { breach: est.breach, anticipation });

  // 3. Propose, screened against what the normalizer would do.
  const generated = generateCandidates(pipeline, obs, bn, settings.maxStep, st.window, anticipation);
  const { candidates, screened } = screenCandidates(generated, pipeline, obs, bn, floors, st.window, now, settings, anticipation);

  // 4. Select, every selector on the same evidence. Without learning, the memory is not read.
  const keys = candidates.map((c) => c.key);
  const evidence = settings.learning
    ? retrieve(ctx.buffer, pipeline.id, est.features, keys, {
        tokenBudget: settings.promptTokenBudget,
        contextSampling: settings.exploration.contextSampling,
        random: ctx.random,
        rowTokens: experienceRowTokens,
        mode: settings.retrieval,
      })
    : { stats: new Map(), rows: [] };
  // The LLM is consulted where it can add something: a novel state, or a bandit that cannot tell its
  // two best candidates apart (settings.llmGate); otherwise the bandit decides on the same evidence.
  let llm = ctx.llm;
  let gateNote: string | null = null;
  if (llm && settings.llmGate.enabled) {
    const similar = [...evidence.stats.values()].reduce((s, x) => s + x.n, 0);
    const estimates = banditEstimates(candidates, evidence.stats, { exploration: settings.exploration.temperature, priorWeight: settings.exploration.priorWeight });
    const verdict = shouldConsult({ novelty: novelty(similar, ctx.buffer.experiences), banditTop: estimates, threshold: settings.llmGate.noveltyThreshold });
    if (!verdict.consult) {
      llm = undefined;
      gateNote = `LLM not consulted: ${verdict.why}`;
    }
  }
  const prompt = llm
    ? buildPrompt({ pipeline, obs, bn, candidates, stats: evidence.stats, rows: evidence.rows, exposeNames: settings.exposeNames, anticipation })
    : undefined;
  const d: Decision = await decide(
    { pipeline, obs, bn, candidates, stats: evidence.stats, prompt, now, anticipation },
    { llm, bandit: ctx.bandit, settings, random: ctx.random },
  );

  // 5. Normalize the choice lifted to the floors.
  const n = normalize(pipeline, obs, bn, liftToFloors(d.chosen.actions, floors, obs), st.window, now, settings, anticipation);
  const notes = [...(gateNote ? [gateNote] : []), ...operatingNotes, ...n.notes];
  if (screened.length > 0) notes.push(`not offered (the normalizer would hold them): ${screened.join(', ')}`);
  const unmet = unmetFloors(floors, obs);
  return {
    actions: n.actions,
    bn,
    anticipation,
    features: est.features,
    credited,
    record: {
      pipelineId: pipeline.id,
      time: now,
      selector: d.selector,
      promptHash: d.promptHash,
      tokens: d.tokens,
      latencyMs: d.latencyMs,
      candidates: d.candidates,
      proposed: d.proposed,
      floors: unmet.map((f) => f.why),
      guard: notes,
      forced: n.actions.some((a) => a.source === 'floor'),
      operatingPoint: est.operatingPoint,
      fallbackReason: d.fallbackReason,
      bottleneck: bn.stage,
      pressure: bn.pressure.map((p) => (p === null ? null : Math.round(p * 1000) / 1000)),
      reason: d.reason,
      forecast: anticipation && { periodMs: anticipation.periodMs, confidence: anticipation.confidence, shareFactor: anticipation.shareFactor, replicaFactor: anticipation.replicaFactor },
      stateBucket: stateBucket(est.features),
      p99Ms: obs.p99Ms,
      sloP99Ms: pipeline.sloP99Ms,
      costRate: obs.costRate,
      dryRun: settings.dryRun || pipeline.mode === 'DryRun',
      reward: null,
    },
  };
}

/**
 * 6b. After the cluster acted: remember what was applied for the cooldowns and queue the decision
 * for credit under what actually happened (a dry run or a failed apply changes nothing).
 */
export function learn(st: PipelineState, obs: PipelineObservation, result: Pick<StepResult, 'features'>, record: DecisionRecord, applied: readonly SourcedAction[]): void {
  const actions: ScalingAction[] = applied.map(({ source: _s, ...a }) => a);
  if (!record.dryRun) noteApplied(st.window, obs, actions, record.time);
  const sources: ActionSource[] = applied.map((a) => a.source);
  // A repack applies as a replica more; it is learned under its own key, not as a scale-up.
  const only = actions.length === 1 ? actions[0] : undefined;
  const repacked = record.proposed.endsWith(':repack') && only?.kind === 'replicas' && sources[0] === 'selector';
  if (repacked && !record.dryRun) st.window.repacks.set(only.stage, record.time);
  awaitCredit(st.credit, record.time, record.stateBucket, {
    record,
    features: result.features,
    actionKey: record.dryRun ? 'hold' : repacked ? record.proposed : actionKeyOf(actions, obs.allocation),
    learnable: !sources.includes('floor'),
  });
}
