// Types shared inside the policy: candidates, rewards, selector contract and the decision record
// that the decision log, /api/decisions and Kubernetes Events show.
import type { ScalingAction } from '../core/ports.js';

/**
 * One action the selector may pick. `id` is what the LLM answers with (an enum in its schema);
 * `key` is the state-independent form the experience buffer learns under ("hold", "s1+r2", "s0-g").
 */
export interface Candidate {
  id: string;
  key: string;
  actions: ScalingAction[];
  /** One line for the prompt and the dashboard: "stage 1: replicas 3 -> 5". */
  describe: string;
  /** -1..1: what a queueing view of the state expects of it; the bandit's starting belief. */
  prior: number;
}

/** Outcome vector of one observation window: lower is better in both. */
export interface Outcome {
  /** End-to-end P99 divided by the SLO. */
  p99Ratio: number;
  /** $/hour. */
  costRate: number;
  /** Fraction of requests over the SLO or dropped, when measured. */
  sloViolation: number | null;
  /** Requests entering per second, when measured: with sloViolation, how many requests missed. */
  arrivalRate?: number | null;
}

export type RewardValue = -1 | 0 | 1;

/** Who produced an applied change: the selector's choice (possibly cut short by the normalizer), or a floor. */
export type ActionSource = 'selector' | 'floor';

/** A change with who produced it. */
export type SourcedAction = Exclude<ScalingAction, { kind: 'hold' }> & { source: ActionSource };

export interface Reward {
  value: RewardValue;
  /** Why: "dominates", "dominated", "slo-breach", "incomparable". */
  why: 'dominates' | 'dominated' | 'slo-breach' | 'incomparable';
  outcome: Outcome;
  reference: Outcome;
  /** Separation margin per dimension, from measured noise. */
  epsilon: { p99Ratio: number; costRate: number };
}

export interface StageStat {
  key: string;
  n: number;
  meanReward: number;
  /** Share of +1 and -1 rewards. */
  pPositive: number;
  pNegative: number;
}

/** Everything a selector sees; built once per tick by decide.ts. */
export interface SelectionInput {
  pipelineId: string;
  candidates: Candidate[];
  /** Per-action statistics over experiences in similar states. */
  stats: Map<string, StageStat>;
  bottleneck: number | null;
  /** Present for selectors that read text (the LLM). */
  prompt?: { system: string; user: string; hash: string };
  signal: AbortSignal;
}

export interface Selection {
  candidateId: string;
  reason: string;
  bottleneck?: number | null;
  tokens?: { prompt: number; completion: number };
}

export interface Selector {
  readonly name: 'llm' | 'bandit';
  choose(input: SelectionInput): Promise<Selection>;
}

export interface DecisionRecord {
  id: string;
  pipelineId: string;
  time: number;
  /** Who picked the proposed action: llm, bandit, explore (ε-random) or hold (the last resort). */
  selector: 'llm' | 'bandit' | 'explore' | 'hold';
  promptHash: string | null;
  tokens: { prompt: number; completion: number } | null;
  /** Selector chain wall time, ms. */
  latencyMs: number;
  /** Tick compute time without the LLM call and cluster I/O, ms of wall time. */
  computeMs: number;
  /** The same span in CPU time of this process, ms (what a busy, shared machine does not inflate). */
  computeCpuMs: number;
  candidates: string[];
  proposed: string;
  /** Actions after the floors and the normalizer; [] is hold. */
  applied: ScalingAction[];
  /** Per applied action, who produced it: the selector (its size may be the normalizer's clamp) or a floor. */
  appliedBy: ActionSource[];
  /** The floors this tick did not already meet (an SLO emergency, saturation, a forecast peak, the surge reserve). */
  floors: string[];
  /** Normalizer notes: "stage 1 cooldown", "scale-down stabilized at 3", ... and what was not offered. */
  guard: string[];
  /**
   * Whether a floor produced an applied change: then what was applied was not only the selector's
   * choice, and its credit is logged but not learned.
   */
  forced: boolean;
  /** Per stage, the GPU cut limit the operating point has learned (full-batch load/capacity; null for a CPU stage). */
  operatingPoint: (number | null)[];
  /** Why the preferred selector did not decide, when it did not. */
  fallbackReason: string | null;
  bottleneck: number | null;
  /** Per stage offered load / capacity as the detector saw it (1 = saturated). */
  pressure: (number | null)[];
  reason: string;
  /** The recurring-load forecast in force this tick (forecast.ts), or null while no period is clear. */
  forecast: { periodMs: number; confidence: number; shareFactor: number; replicaFactor: number } | null;
  stateBucket: string;
  p99Ms: number | null;
  sloP99Ms: number;
  costRate: number;
  dryRun: boolean;
  /** Filled when the decision's horizon has passed and its return is measured. */
  reward: Reward | null;
}
