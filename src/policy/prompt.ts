// The LLM prompt. The system message and the pipeline header never change for a pipeline, so the
// prefix is byte-identical between calls (servers reuse their KV cache); state, statistics,
// experiences and candidates follow. Stages appear as indices and numbers, names only when the
// user opts in. Pure.
import { createHash } from 'node:crypto';
import type { BottleneckResult } from './bottleneck.js';
import type { Experience } from './experience.js';
import type { Anticipation } from './forecast.js';
import { shareClamped } from './packing.js';
import type { PipelineObservation, PipelineSpec } from '../core/ports.js';
import type { Candidate, StageStat } from './types.js';

export const SYSTEM_PROMPT = [
  'You are the autoscaling policy of a multi-stage ML inference pipeline.',
  'Goal: keep end-to-end P99 latency at or below the SLO (p99/slo <= 1) at the lowest cost.',
  'Each tick you pick exactly one candidate action by its id.',
  'Rewards in the history: +1 = the next window was better in P99 or cost and no worse in either,',
  '-1 = worse, or the SLO was broken; 0 = a trade-off or noise.',
  'Prefer actions with high mean reward in similar states; scale up the stage whose load/capacity',
  'is highest when P99 nears the SLO; remove capacity only where load/capacity stays low.',
  'Answer with JSON only: {"action": "<candidate id>", "reason": "<one sentence>", "bottleneck": <stage index or null>}.',
].join('\n');

/** About 4 characters per token: good enough for a budget, no tokenizer needed. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

const fmt = (x: number | null | undefined, digits = 2) => (x === null || x === undefined || !Number.isFinite(x) ? '-' : x.toFixed(digits));
const signed = (x: number) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;

export function pipelineHeader(pipeline: PipelineSpec, exposeNames: boolean): string {
  const lines = [
    'PIPELINE',
    `stages: ${pipeline.stages.length}; SLO: p99 <= ${pipeline.sloP99Ms} ms; decision every ${pipeline.tickSeconds} s`,
    `cost: ${pipeline.cost.replicaHour} $/replica-hour + ${pipeline.cost.gpuHour} $/GPU-hour x GPU share, unless STATE says the cluster bills whole GPUs`,
  ];
  for (const s of pipeline.stages) {
    const from = s.upstream.length > 0 ? `after stage ${s.upstream.join(',')}` : 'entry';
    const gpu = s.gpuCores ? `GPU cores ${s.gpuCores.min}..${s.gpuCores.max}% step ${s.gpuCores.step}` : 'CPU only';
    const name = exposeNames ? ` (${s.name})` : '';
    lines.push(`stage ${s.index}${name}: ${from}; replicas ${s.minReplicas}..${s.maxReplicas}; ${gpu}`);
  }
  return lines.join('\n');
}

export function experienceRow(e: Experience): string {
  const load = e.features.pressure.map((p) => p.toFixed(2)).join('/');
  return (
    `[p99/slo ${e.features.p99Ratio.toFixed(2)} load ${load} bn ${e.features.bottleneck ?? '-'}] ${e.actionKey} -> ${e.reward > 0 ? '+1' : e.reward < 0 ? '-1' : '0'}` +
    ` (p99/slo ${e.reference.p99Ratio.toFixed(2)}->${e.outcome.p99Ratio.toFixed(2)}, cost ${e.reference.costRate.toFixed(3)}->${e.outcome.costRate.toFixed(3)})`
  );
}

export const experienceRowTokens = (e: Experience) => estimateTokens(experienceRow(e)) + 1;

export interface PromptInput {
  pipeline: PipelineSpec;
  obs: PipelineObservation;
  bn: BottleneckResult;
  candidates: readonly Candidate[];
  stats: Map<string, StageStat>;
  rows: readonly Experience[];
  exposeNames: boolean;
  anticipation?: Anticipation | null;
}

export interface Prompt {
  system: string;
  user: string;
  /** sha256 of system and user, 16 hex digits: ties a decision to its exact prompt. */
  hash: string;
  tokens: number;
}

export function buildPrompt(input: PromptInput): Prompt {
  const { pipeline, obs, bn, candidates, stats, rows } = input;
  const lines: string[] = [pipelineHeader(pipeline, input.exposeNames), '', 'STATE'];
  lines.push(
    `p99/slo: ${obs.p99Ms === null ? '-' : fmt(obs.p99Ms / pipeline.sloP99Ms)}; arrival: ${fmt(obs.arrivalRate, 1)} req/s; cost: ${fmt(obs.costRate, 3)} $/h; slo_violation: ${fmt(obs.sloViolation, 3)}`,
  );
  // Where the cluster packs shares onto whole GPUs, that is the bill the reward reads: a share cut
  // that frees no GPU saves nothing, which the share-priced header line would hide.
  if (obs.billedGpus !== undefined) {
    lines.push(`billing: whole GPUs, ${obs.billedGpus} in use at ${pipeline.cost.gpuHour} $/GPU-hour (a share cut saves only where the replicas then fit on fewer GPUs or it frees room another stage waits for; a rise that fits the GPUs in use costs nothing)`);
  }
  lines.push(`bottleneck: ${bn.stage === null ? 'unknown' : `stage ${bn.stage}`}`);
  const surge = bn.surge ?? 1;
  if (surge > 1) {
    lines.push(
      `surge: ${fmt(obs.recentArrivalRate ?? null, 1)} req/s in the newest ${Math.round((obs.recentWindowMs ?? 0) / 1000)} s, x${fmt(surge)} the window's rate (load/capacity below counts it)`,
    );
  }
  const f = input.anticipation;
  if (f) {
    lines.push(
      `recurring load: period ${Math.round(f.periodMs / 1000)} s (confidence ${fmt(f.confidence)}); expected peak arrival x${fmt(f.shareFactor)} of now soon, x${fmt(f.replicaFactor)} within a cold start (floors add that capacity ahead of time)`,
    );
  }
  obs.stages.forEach((m, i) => {
    const a = obs.allocation[i];
    const hpa = a?.hpa?.desiredReplicas;
    // A clamped stage gets no share rise among the candidates (shareCeiling); the model is told why.
    const clamped = a && shareClamped(a) ? ` (asked ${a.gpuCoresAsked}: no room on its GPU)` : '';
    lines.push(
      `stage ${i}: replicas ${a?.replicas ?? '-'} (ready ${a?.readyReplicas ?? '-'}); gpu ${a?.gpuCores ?? '-'}${clamped}; load/capacity ${fmt(bn.pressure[i])}; needed ${bn.needed[i] ?? '-'}; ` +
        `queue ${fmt(m.queueLength, 0)} (${m.queueGrowth === null ? '-' : signed(m.queueGrowth)}/s); util ${fmt(m.utilization)}; p99 ${fmt(m.latencyP99Ms, 0)} ms` +
        (hpa !== undefined ? `; hpa_desired ${hpa}` : ''),
    );
  });
  lines.push('', 'STATISTICS (similar past states)', 'action | n | mean | p(+1) | p(-1)');
  for (const c of candidates) {
    const s = stats.get(c.key);
    if (s) lines.push(`${c.key} | ${s.n.toFixed(1)} | ${signed(s.meanReward)} | ${s.pPositive.toFixed(2)} | ${s.pNegative.toFixed(2)}`);
  }
  lines.push('', 'EXPERIENCES (state -> action -> reward)');
  for (const e of rows) lines.push(experienceRow(e));
  lines.push('', 'CANDIDATES');
  for (const c of candidates) lines.push(`${c.id}: ${c.describe}`);
  lines.push('', 'Pick one candidate id.');
  const user = lines.join('\n');
  const hash = createHash('sha256').update(SYSTEM_PROMPT).update('\n\n').update(user).digest('hex').slice(0, 16);
  return { system: SYSTEM_PROMPT, user, hash, tokens: estimateTokens(SYSTEM_PROMPT) + estimateTokens(user) };
}
