// What the selector gets to see from memory: a per-action statistics table over similar states,
// and, within a token budget, the most surprising and the most similar experiences, interleaved,
// with a random share dropped for exploration. Pure: the random source is passed in.
import type { ExperienceBuffer, Experience, StateFeatures } from './experience.js';
import type { StageStat } from './types.js';

export interface RetrievalOptions {
  /** Tokens the experience rows may use. */
  tokenBudget: number;
  /** Probability of dropping each row (context sampling). */
  contextSampling: number;
  /** Uniform [0, 1). */
  random: () => number;
  /** Tokens one row costs once rendered. */
  rowTokens: (e: Experience) => number;
}

export interface Retrieval {
  stats: Map<string, StageStat>;
  rows: Experience[];
  tokens: number;
}

export function retrieve(
  buffer: ExperienceBuffer,
  pipelineId: string,
  f: StateFeatures,
  actionKeys: readonly string[],
  opts: RetrievalOptions,
): Retrieval {
  const { stats, similar } = buffer.neighbourhood(pipelineId, f, actionKeys);
  const bySimilarity = [...similar].sort((a, b) => b.similarity - a.similarity);
  const bySurprise = [...similar].sort((a, b) => b.experience.surprisal * b.similarity - a.experience.surprisal * a.similarity);
  const rows: Experience[] = [];
  const seen = new Set<Experience>();
  let tokens = 0;
  let i = 0;
  let j = 0;
  while (i < bySimilarity.length || j < bySurprise.length) {
    const pickSurprise = rows.length % 2 === 0 ? j < bySurprise.length : i >= bySimilarity.length;
    const next = pickSurprise ? bySurprise[j++]! : bySimilarity[i++]!;
    if (seen.has(next.experience)) continue;
    seen.add(next.experience);
    if (opts.random() < opts.contextSampling) continue;
    const cost = opts.rowTokens(next.experience);
    if (tokens + cost > opts.tokenBudget) break;
    tokens += cost;
    rows.push(next.experience);
  }
  return { stats, rows, tokens };
}
