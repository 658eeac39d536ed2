// The built-in selector: UCB over the per-action reward statistics of similar states, starting
// from each candidate's prior (worth PRIOR_WEIGHT observations) so that it behaves sensibly
// before it has learned anything. Seeded: ties are broken by the random source it is given.
import type { Selection, SelectionInput, Selector } from '../types.js';

const PRIOR_WEIGHT = 3;

export interface BanditOptions {
  /** Scale of the exploration bonus (the exploration temperature). */
  exploration: number;
  /** Uniform [0, 1). */
  random: () => number;
}

export function createBanditSelector(opts: BanditOptions): Selector {
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
        const mean = (c.prior * PRIOR_WEIGHT + (s?.meanReward ?? 0) * n) / (PRIOR_WEIGHT + n);
        const bonus = opts.exploration * Math.sqrt(Math.log(1 + total) / (1 + n));
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
