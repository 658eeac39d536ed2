// The built-in selector: UCB over the per-action reward statistics of similar states, starting
// from each candidate's prior (worth `priorWeight` observations, 100 by default) so that it behaves sensibly
// before it has learned anything. The prior counts in the bonus as in the mean: otherwise the bonus
// of a never-tried action grows with the memory (ln N) and a long-running controller explores costly
// moves ever more. Seeded: ties are broken by the random source it is given.
import type { Candidate, Selection, SelectionInput, Selector, StageStat } from '../types.js';

export interface BanditOptions {
  /** Scale of the exploration bonus (the exploration temperature). */
  exploration: number;
  /** How many experiences a candidate's prior is worth (default 100); very large = priors only. */
  priorWeight?: number;
  /** Uniform [0, 1). */
  random: () => number;
}

/** Each candidate's UCB mean and bonus (its `halfWidth`, the uncertainty the LLM gate compares). */
export function banditEstimates(
  candidates: readonly Candidate[],
  stats: ReadonlyMap<string, StageStat>,
  opts: Pick<BanditOptions, 'exploration' | 'priorWeight'>,
): { candidate: Candidate; n: number; mean: number; halfWidth: number }[] {
  const priorWeight = opts.priorWeight ?? 100;
  let total = 0;
  for (const c of candidates) total += stats.get(c.key)?.n ?? 0;
  return candidates.map((c) => {
    const s = stats.get(c.key);
    const n = s?.n ?? 0;
    return {
      candidate: c,
      n,
      mean: (c.prior * priorWeight + (s?.meanReward ?? 0) * n) / (priorWeight + n),
      halfWidth: opts.exploration * Math.sqrt(Math.log(1 + total) / (1 + n + priorWeight)),
    };
  });
}

export function createBanditSelector(opts: BanditOptions): Selector {
  return {
    name: 'bandit',
    async choose(input: SelectionInput): Promise<Selection> {
      if (input.candidates.length === 0) throw new Error('no candidates');
      let best: ReturnType<typeof banditEstimates>[number] | undefined;
      let bestScore = -Infinity;
      for (const e of banditEstimates(input.candidates, input.stats, opts)) {
        const score = e.mean + e.halfWidth + 1e-6 * opts.random();
        if (score > bestScore) {
          bestScore = score;
          best = e;
        }
      }
      return {
        candidateId: best!.candidate.id,
        reason: `UCB: expected reward ${best!.mean.toFixed(2)} from ${best!.n.toFixed(1)} similar experiences and the prior`,
        bottleneck: input.bottleneck,
      };
    },
  };
}
