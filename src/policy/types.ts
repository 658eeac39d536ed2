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
}

export type RewardValue = -1 | 0 | 1;

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
  /** Actions after the guard; [] is hold. */
  applied: ScalingAction[];
  /** Guard notes: "stage 1 cooldown", "emergency scale-up", ... */
  guard: string[];
  /**
   * Whether the guard applied an action of its own (an SLO emergency, saturation, a forecast peak or
   * the surge reserve): then what was applied was not a selector's choice, and its reward is logged
   * but not learned.
   */
  forced: boolean;
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
  /** Filled one tick later, when the outcome of this decision is measured. */
  reward: Reward | null;
}
