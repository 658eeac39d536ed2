// When to consult the LLM: only where it can add something to the bandit. Pure. The LLM is worth a
// call when the state is novel (little in memory resembles it, so the bandit's statistics say
// little) or when the bandit cannot tell its two best candidates apart; otherwise the bandit decides
// on the same evidence, and the call's tokens and latency are saved.

/**
 * How many state buckets a pipeline's memory is smoothed over: the order of the buckets a pipeline
 * visits in an hour of the benchmark's workloads. Not tuned.
 */
export const STATE_PSEUDO_COUNT = 20;

/**
 * The default novelty threshold: ln 20, so a state is novel while fewer than about 1 in 20 of the
 * pipeline's experiences lie in similar states (a fresh memory is novel: ln 20 >= ln 20). Not tuned.
 */
export const DEFAULT_NOVELTY_THRESHOLD = Math.log(STATE_PSEUDO_COUNT);

/**
 * Surprisal of the state under the memory, in nats: -ln((n + 1) / (N + k)), with n the (similarity
 * weighted) count of experiences in similar states, N all of the pipeline's experiences and k the
 * pseudo-count of states (Laplace smoothing). 0 would be a state that is all the memory holds.
 */
export function novelty(similar: number, total: number, k = STATE_PSEUDO_COUNT): number {
  const n = Math.max(0, similar);
  const all = Math.max(n, total);
  return -Math.log((n + 1) / (all + k));
}

/** One candidate as the bandit sees it: its mean reward and the half-width of its confidence interval. */
export interface BanditEstimate {
  mean: number;
  halfWidth: number;
}

export interface GateInput {
  novelty: number;
  /** The bandit's candidates (any order; the two best means are compared). */
  banditTop: readonly BanditEstimate[];
  /** Novelty above which the LLM is consulted (nats). */
  threshold: number;
}

export interface GateVerdict {
  consult: boolean;
  why: string;
}

export function shouldConsult(input: GateInput): GateVerdict {
  const nov = input.novelty.toFixed(2);
  if (input.novelty >= input.threshold) return { consult: true, why: `novel state: surprisal ${nov} >= ${input.threshold.toFixed(2)}` };
  const [a, b] = [...input.banditTop].sort((x, y) => y.mean - x.mean);
  if (!a) return { consult: true, why: 'the bandit has no candidates' };
  if (!b) return { consult: false, why: `one candidate; familiar state (surprisal ${nov})` };
  const gap = a.mean - b.mean;
  if (gap <= a.halfWidth + b.halfWidth) {
    return { consult: true, why: `the bandit's two best are within its uncertainty: gap ${gap.toFixed(3)} <= ${(a.halfWidth + b.halfWidth).toFixed(3)}` };
  }
  return { consult: false, why: `familiar state (surprisal ${nov}) and a clear bandit choice: gap ${gap.toFixed(3)} > ${(a.halfWidth + b.halfWidth).toFixed(3)}` };
}
