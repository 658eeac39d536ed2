// What the LLM costs, as Prometheus sees it: tokens by pipeline and kind, the dollar estimate and
// the calls by outcome, fed by the LLM selectors' observer (selectors/llm.ts LlmObserver).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { LlmObserver } from '../policy/selectors/llm.js';

export const LLM_TOKENS_METRIC = 'sair_policy_llm_tokens_total';

/** How long decisions wait for one of the server's LLM call slots (SAIR_LLM_MAX_CONCURRENT), and how many wait. */
export function createLlmQueueMetrics(registry: Registry): { onWait: (ms: number) => void; onQueue: (waiting: number) => void } {
  const wait = new Histogram({
    name: 'sair_policy_llm_queue_wait_seconds',
    help: 'Time a decision waited for a free LLM call slot (a wait cut short by the decision deadline included)',
    buckets: [0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 7.5, 10, 12.5, 15, 20],
    registers: [registry],
  });
  const waiting = new Gauge({ name: 'sair_policy_llm_calls_waiting', help: 'Decisions waiting for a free LLM call slot', registers: [registry] });
  return { onWait: (ms) => wait.observe(ms / 1000), onQueue: (n) => waiting.set(n) };
}

export function createLlmMetrics(registry: Registry): LlmObserver {
  const registers = [registry];
  const tokens = new Counter({
    name: LLM_TOKENS_METRIC,
    help: 'LLM tokens per pipeline by kind: prompt, completion, and cached (the part of prompt served from the prefix cache)',
    labelNames: ['pipeline', 'kind'],
    registers,
  });
  const dollars = new Counter({
    name: 'sair_policy_llm_cost_dollars_total',
    help: 'Estimated LLM cost per pipeline at the configured prices per million tokens',
    labelNames: ['pipeline'],
    registers,
  });
  const calls = new Counter({
    name: 'sair_policy_llm_calls_total',
    help: 'LLM consultations per pipeline by outcome (ok, or the error code that made the bandit decide)',
    labelNames: ['pipeline', 'outcome'],
    registers,
  });
  return {
    onCall(c) {
      calls.inc({ pipeline: c.pipelineId, outcome: c.outcome });
      if (!c.usage) return;
      tokens.inc({ pipeline: c.pipelineId, kind: 'prompt' }, c.usage.prompt);
      tokens.inc({ pipeline: c.pipelineId, kind: 'completion' }, c.usage.completion);
      tokens.inc({ pipeline: c.pipelineId, kind: 'cached' }, c.usage.cached);
      dollars.inc({ pipeline: c.pipelineId }, c.dollars);
    },
  };
}
