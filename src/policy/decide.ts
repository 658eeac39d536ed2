// THE one wrapper around every selector: ε-exploration, a deadline, validation of the answer
// against the candidates, and the fallback chain LLM -> bandit -> hold. No selector's choice
// reaches the decision step any other way; the step then lifts it to the floors and normalizes it.
import { performance } from 'node:perf_hooks';
import type { BottleneckResult } from './bottleneck.js';
import type { Anticipation } from './forecast.js';
import { sloBreached } from './normalize.js';
import type { PipelineObservation, PipelineSpec } from '../core/ports.js';
import type { Prompt } from './prompt.js';
import type { PolicySettings } from './settings.js';
import type { Candidate, DecisionRecord, Selection, Selector, StageStat } from './types.js';

export interface DecideInput {
  pipeline: PipelineSpec;
  obs: PipelineObservation;
  bn: BottleneckResult;
  candidates: Candidate[];
  stats: Map<string, StageStat>;
  prompt?: Prompt;
  now: number;
  /** A recurring load the floors meet ahead of time (forecast.ts); null or absent when none is clear. */
  anticipation?: Anticipation | null;
}

export interface DecideDeps {
  /** Tried first when present. */
  llm?: Selector;
  bandit: Selector;
  settings: Pick<PolicySettings, 'exploration' | 'decisionDeadlineMs'>;
  random: () => number;
}

export type Decision = Pick<DecisionRecord, 'selector' | 'promptHash' | 'tokens' | 'latencyMs' | 'candidates' | 'proposed' | 'fallbackReason' | 'reason'> & {
  /** The candidate chosen (hold when no selector produced a valid choice). */
  chosen: Candidate;
};

const HOLD_REASON = 'hold: no selector produced a valid choice';

async function withDeadline(selector: Selector, input: DecideInput, deadlineMs: number): Promise<Selection> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new Error(`decision deadline of ${deadlineMs} ms reached`)), deadlineMs);
  try {
    const selection = await Promise.race([
      selector.choose({
        pipelineId: input.pipeline.id,
        candidates: input.candidates,
        stats: input.stats,
        bottleneck: input.bn.stage,
        prompt: input.prompt,
        signal: controller.signal,
      }),
      new Promise<never>((_, reject) =>
        controller.signal.addEventListener('abort', () => reject(new Error(`deadline: no answer within ${deadlineMs} ms`)), { once: true }),
      ),
    ]);
    if (!input.candidates.some((c) => c.id === selection.candidateId)) {
      throw new Error(`invalid-action: "${selection.candidateId}" is not a candidate`);
    }
    return selection;
  } finally {
    clearTimeout(timer);
  }
}

/** Candidate ids of one step: a replica more or fewer, one GPU share step, or a consolidation. */
const ONE_STEP = /^s\d+([+-]1|:gpu[+-]|:pack)$/;

export async function decide(input: DecideInput, deps: DecideDeps): Promise<Decision> {
  const started = performance.now();
  // Where a floor binds, hold is not offered; the last resort is then the floors alone.
  const hold = input.candidates.find((c) => c.key === 'hold') ?? { id: 'hold', key: 'hold', actions: [], describe: 'hold', prior: 0 };
  let chosen: Candidate = hold;
  let selector: DecisionRecord['selector'] = 'hold';
  let reason = HOLD_REASON;
  let tokens: DecisionRecord['tokens'] = null;
  const failures: string[] = [];

  // Exploration tries the plausible one-step actions only (prior >= 0; one replica, one share step
  // or a consolidation): a random scale-up of an idle GPU stage, or two replicas at once, teaches
  // little that the prior does not know and costs GPU-hours until the stabilization window lets it go.
  const others = input.candidates.filter((c) => c.key !== 'hold' && c.prior >= 0 && ONE_STEP.test(c.id));
  const explore = others.length > 0 && !sloBreached(input.pipeline, input.obs) && deps.random() < deps.settings.exploration.epsilon;
  if (explore) {
    chosen = others[Math.floor(deps.random() * others.length)]!;
    selector = 'explore';
    reason = `ε-exploration (ε = ${deps.settings.exploration.epsilon})`;
  } else {
    const chain = deps.llm ? [deps.llm, deps.bandit] : [deps.bandit];
    for (const s of chain) {
      try {
        const selection = await withDeadline(s, input, deps.settings.decisionDeadlineMs);
        chosen = input.candidates.find((c) => c.id === selection.candidateId)!;
        selector = s.name;
        reason = selection.reason || `${s.name} chose ${chosen.id}`;
        tokens = selection.tokens ?? null;
        break;
      } catch (err) {
        failures.push(`${s.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }
  const latencyMs = performance.now() - started;
  return {
    chosen,
    selector,
    promptHash: input.prompt?.hash ?? null,
    tokens,
    latencyMs,
    candidates: input.candidates.map((c) => c.id),
    proposed: chosen.id,
    fallbackReason: failures.length > 0 ? failures.join('; ') : null,
    reason,
  };
}
