// What every selector gets to see from memory: within a token budget, experiences of similar states
// (by default the most surprising and the most similar, interleaved; or the most recent, or a random
// draw, for comparison), with a random share dropped for exploration, and the per-action statistics
// OF THOSE ROWS. The bandit and the LLM read the same evidence, so what retrieval picks is what
// decides. Pure: the random source is passed in.
import type { ExperienceBuffer, Experience, Retrieved, StateFeatures } from './experience.js';
import type { StageStat } from './types.js';

export type RetrievalMode = 'surprisal' | 'recency' | 'random';

export interface RetrievalOptions {
  /** Tokens the experience rows may use. */
  tokenBudget: number;
  /** Probability of dropping each row (context sampling). */
  contextSampling: number;
  /** Uniform [0, 1). */
  random: () => number;
  /** Tokens one row costs once rendered. */
  rowTokens: (e: Experience) => number;
  /** Which similar experiences come first (default surprisal). */
  mode?: RetrievalMode;
}

export interface Retrieval {
  stats: Map<string, StageStat>;
  rows: Experience[];
  tokens: number;
}

/** Similar experiences in the order the mode reads them. */
function ordered(similar: readonly Retrieved[], mode: RetrievalMode, random: () => number): Retrieved[] {
  if (mode === 'recency') return [...similar].sort((a, b) => b.experience.time - a.experience.time);
  if (mode === 'random') {
    const out = [...similar];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
  const bySimilarity = [...similar].sort((a, b) => b.similarity - a.similarity);
  const bySurprise = [...similar].sort((a, b) => b.experience.surprisal * b.similarity - a.experience.surprisal * a.similarity);
  const out: Retrieved[] = [];
  for (let i = 0; i < Math.max(bySimilarity.length, bySurprise.length); i++) {
    if (i < bySurprise.length) out.push(bySurprise[i]!);
    if (i < bySimilarity.length) out.push(bySimilarity[i]!);
  }
  return out;
}

/** Similarity-weighted reward statistics per action key over the retrieved rows. */
export function statsOf(rows: readonly Retrieved[]): Map<string, StageStat> {
  const acc = new Map<string, [number, number, number]>();
  for (const { experience: e, similarity: s } of rows) {
    const w = acc.get(e.actionKey) ?? [0, 0, 0];
    w[e.reward + 1]! += s;
    acc.set(e.actionKey, w);
  }
  const stats = new Map<string, StageStat>();
  for (const [key, [w0, w1, w2]] of acc) {
    const n = w0 + w1 + w2;
    if (n > 0) stats.set(key, { key, n, meanReward: (w2 - w0) / n, pPositive: w2 / n, pNegative: w0 / n });
  }
  return stats;
}

export function retrieve(
  buffer: ExperienceBuffer,
  pipelineId: string,
  f: StateFeatures,
  actionKeys: readonly string[],
  opts: RetrievalOptions,
): Retrieval {
  const { similar } = buffer.neighbourhood(pipelineId, f, actionKeys);
  const picked: Retrieved[] = [];
  const seen = new Set<Experience>();
  let tokens = 0;
  for (const next of ordered(similar, opts.mode ?? 'surprisal', opts.random)) {
    if (seen.has(next.experience)) continue;
    seen.add(next.experience);
    if (opts.random() < opts.contextSampling) continue;
    const cost = opts.rowTokens(next.experience);
    if (tokens + cost > opts.tokenBudget) break;
    tokens += cost;
    picked.push(next);
  }
  return { stats: statsOf(picked), rows: picked.map((r) => r.experience), tokens };
}
