// The built-in selector: UCB over the per-action reward statistics of similar states, starting
// from each candidate's prior (worth `priorWeight` observations, 100 by default) so that it behaves sensibly
// before it has learned anything. The prior counts in the bonus as in the mean: otherwise the bonus
// of a never-tried action grows with the memory (ln N) and a long-running controller explores costly
// moves ever more. Seeded: ties are broken by the random source it is given.
import type { Selection, SelectionInput, Selector } from '../types.js';

export interface BanditOptions {
  /** Scale of the exploration bonus (the exploration temperature). */
  exploration: number;
  /** How many experiences a candidate's prior is worth (default 100); very large = priors only. */
  priorWeight?: number;
  /** Uniform [0, 1). */
  random: () => number;
}

export function createBanditSelector(opts: BanditOptions): Selector {
  const priorWeight = opts.priorWeight ?? 100;
  return {
    name: 'bandit',
    async choose(input: SelectionInput): Promise<Selection> {
      if (input.candidates.length === 0) throw new Error('no candidates');
      let total = 0;
      for (const c of input.candidates) total += input.stats.get(c.key)?.n ?? 0;
      let best = input.candidates[0]!;
      let bestScore = -Infinity;
      let bestMean = 0;
      let bestN = 0;
      for (const c of input.candidates) {
        const s = input.stats.get(c.key);
        const n = s?.n ?? 0;
        const mean = (c.prior * priorWeight + (s?.meanReward ?? 0) * n) / (priorWeight + n);
        const bonus = opts.exploration * Math.sqrt(Math.log(1 + total) / (1 + n + priorWeight));
        const score = mean + bonus + 1e-6 * opts.random();
        if (score > bestScore) {
          bestScore = score;
          best = c;
          bestMean = mean;
          bestN = n;
        }
      }
      return {
        candidateId: best.id,
        reason: `UCB: expected reward ${bestMean.toFixed(2)} from ${bestN.toFixed(1)} similar experiences and the prior`,
        bottleneck: input.bottleneck,
      };
    },
  };
}
