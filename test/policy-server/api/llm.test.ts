// The LLM as the policy server reports it: on the embedded simulator with an LLM endpoint that
// refuses json_schema (llama.cpp before September 2024), /api/llm and /api/pipelines say which
// request shape it learned, /metrics counts tokens per pipeline, and once the token budget is spent
// the decisions say so and the bandit makes them. The dashboard draws the same status.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { loadStartConfig, startEmbedded, type EmbeddedServer } from '../../../src/cmd/start.js';
import type { BudgetedLlmStatus } from '../../../src/policy/selectors/budgeted.js';
import type { DecisionRecord } from '../../../src/policy/types.js';
import { startFakeLlm, type FakeLlm } from '../../support/fake-llm.js';
import { dashboardPage } from './dashboard-page.js';

describe('the LLM on the policy server', () => {
  let embedded: EmbeddedServer;
  let llm: FakeLlm;

  beforeAll(async () => {
    llm = await startFakeLlm({ personality: 'llamacpp-2024' });
    const argv = ['--port', '0', '--speed', '200', '--log-level', 'silent', '--seed', '3', '--quiet'];
    argv.push('--llm-base-url', llm.url, '--llm-model', 'qwen', '--llm-budget-pipeline-tokens-per-hour', '1000', '--llm-price-prompt', '1', '--llm-price-completion', '4');
    const out = { write: () => true } as unknown as NodeJS.WritableStream;
    embedded = await startEmbedded(loadStartConfig({}, argv), out);
  });
  afterAll(async () => {
    await embedded.stop();
    await llm.close();
  });

  const get = async <T>(p: string) => (await (await fetch(`${embedded.url}${p}`)).json()) as T;
  const decisions = () => embedded.controller.recentDecisions(100, 'sim/nlp-chain');
  const until = (ok: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (ok()) resolve();
        else if (Date.now() - started > 25_000) reject(new Error('timed out'));
        else return;
        clearInterval(poll);
      }, 25);
    });

  it('learns the shape the server takes and reports it with the cost', async () => {
    await until(() => decisions().some((d) => d.selector === 'llm'));
    const body = await get<{ selector: string; llm: BudgetedLlmStatus[] }>('/api/llm');
    expect(body.selector).toBe('llm');
    const [s] = body.llm;
    expect(s).toMatchObject({ model: 'qwen', output: 'json_object', tokenParam: 'max_tokens', confirmed: true });
    expect(s!.learned).toEqual([expect.stringMatching(/^structured output json_object: json_schema refused \(500 "response_format type must be one of/)]);
    expect(s!.pipelines['sim/nlp-chain']!.tokens.prompt).toBeGreaterThanOrEqual(100);
    expect(s!.dollars).toBeGreaterThan(0);
    expect(s!.budget.limits.pipelineTokensPerHour).toBe(1000);
    expect((await get<{ llm: unknown[] }>('/api/pipelines')).llm).toHaveLength(1);
    expect(llm.requests.filter((r) => r.refused === 500)).toHaveLength(1);

    const metrics = await (await fetch(`${embedded.url}/metrics`)).text();
    expect(metrics).toMatch(/sair_policy_llm_tokens_total\{pipeline="sim\/nlp-chain",kind="prompt"[^}]*\} [1-9]/);
    expect(metrics).toMatch(/sair_policy_llm_tokens_total\{pipeline="sim\/nlp-chain",kind="cached"/);
    expect(metrics).toMatch(/sair_policy_llm_calls_total\{pipeline="sim\/nlp-chain",outcome="ok"/);
    expect(metrics).toMatch(/sair_policy_llm_cost_dollars_total\{pipeline="sim\/nlp-chain"[^}]*\} 0\.0/);
  });

  it('leaves decisions to the bandit once the budget is spent, and says so', async () => {
    await until(() => decisions().some((d) => d.fallbackReason?.includes('LLM budget spent') ?? false));
    const spent = decisions().find((d) => d.fallbackReason?.includes('LLM budget spent')) as DecisionRecord;
    expect(spent.selector === 'bandit' || spent.selector === 'hold').toBe(true);
    expect(spent.fallbackReason).toMatch(/llm: budget: LLM budget spent: pipeline sim\/nlp-chain used \d+ of its 1000 tokens this hour; the bandit decides until \d\d:00 UTC/);
    const [s] = (await get<{ llm: BudgetedLlmStatus[] }>('/api/llm')).llm;
    expect(s!.summary).toMatch(/^fallback: bandit, because LLM budget spent/);
    expect(s!.budget.refused).toBeGreaterThan(0);
  });
});

describe('dashboard LLM section', () => {
  const page = dashboardPage();
  const llmSection = page['llmSection'] as (l: unknown[]) => string;
  const status = (summary: string) => ({
    baseUrl: 'http://vllm:8000/v1',
    model: 'qwen',
    summary,
    learned: ['structured output json_object: json_schema refused (400 "...")'],
    calls: 10,
    answered: 9,
    latencyMs: { p50: 420, p99: 1900, n: 9 },
    tokens: { prompt: 12_000, completion: 900, cached: 8_000 },
    tokensPerCall: { prompt: 1_200, completion: 90, cached: 800 },
    dollars: 0.0123,
    pipelines: {},
    budget: { limits: { pipelineTokensPerHour: 20_000, totalTokensPerHour: 0 }, hourStart: 0, total: 12_900, pipelines: {}, refused: 3, spent: null },
  });

  it('shows who decides, what was learned, latency, tokens, cost and the budget', () => {
    const html = llmSection([status('LLM: structured output json_object; max_tokens')]);
    expect(html).toContain('LLM: structured output json_object; max_tokens');
    expect(html).toContain('learned: structured output json_object: json_schema refused');
    expect(html).toContain('420 / 1900 ms');
    expect(html).toContain('12000 prompt (8000 cached) + 900 completion');
    expect(html).toContain('$0.0123');
    expect(html).toContain('12900 tokens of 20000/pipeline; 3 decisions left to the bandit');
    expect(llmSection([status('fallback: bandit, because LLM budget spent: ...')])).toMatch(/class="error" data-testid="llm-summary">fallback: bandit, because LLM budget spent/);
    expect(llmSection([])).toBe('');
  });
});
