// The LLM selector against the request and error shapes of real servers (vLLM, Ollama, llama.cpp,
// OpenAI), replayed by the scripted server's personalities over real HTTP through the openai
// client: the shape each one takes is found and remembered, reasoning is dropped, and every fault
// ends in a typed error (so the bandit decides) that the status reports.
import { decide } from '../../../src/policy/decide.js';
import { detectBottleneck } from '../../../src/policy/bottleneck.js';
import { generateCandidates } from '../../../src/policy/candidates.js';
import { buildPrompt } from '../../../src/policy/prompt.js';
import { seededRandom } from '../../../src/policy/random.js';
import { createBanditSelector } from '../../../src/policy/selectors/bandit.js';
import { newLedger } from '../../../src/policy/selectors/budget.js';
import { withBudget } from '../../../src/policy/selectors/budgeted.js';
import { CompatMemory, type OutputMode, type TokenParam } from '../../../src/policy/selectors/compat.js';
import { createLlmSelector, SelectorError, type LlmCall, type LlmSelectorOptions } from '../../../src/policy/selectors/llm.js';
import { policySettings } from '../../../src/policy/settings.js';
import type { SelectionInput } from '../../../src/policy/types.js';
import { startFakeLlm, type FakeLlm, type FakeLlmOptions, type PersonalityName } from '../../support/fake-llm.js';
import { observation, pipeline } from '../fixtures.js';

const spec = pipeline();
const obs = observation(
  [
    { arrival: 100, perReplica: 80, replicas: 2 },
    { arrival: 100, perReplica: 30, replicas: 3, gpuCores: 50 },
    { arrival: 100, perReplica: 100, replicas: 2 },
  ],
  { p99Ms: 480, sloViolation: 0.005 },
);
const bn = detectBottleneck(spec, obs);
const candidates = generateCandidates(spec, obs, bn, 4);
const prompt = buildPrompt({ pipeline: spec, obs, bn, candidates, stats: new Map(), rows: [], exposeNames: false });
/** What the scripted rule answers for this state: the smallest scale-up of the bottleneck to load/capacity <= 0.7. */
const RULE = 's1+3';

let llm: FakeLlm | undefined;
afterEach(async () => {
  await llm?.close();
  llm = undefined;
});

async function server(opts: FakeLlmOptions): Promise<FakeLlm> {
  llm = await startFakeLlm(opts);
  return llm;
}

function selector(url: string, opts: Partial<LlmSelectorOptions> & { maxRetries?: number; timeoutMs?: number } = {}) {
  const { maxRetries = 0, timeoutMs = 2_000, ...rest } = opts;
  return createLlmSelector({ baseUrl: url, model: 'm', timeoutMs, maxRetries }, { temperature: 0.2, compat: new CompatMemory(), ...rest });
}

const input = (pipelineId = 'ns/p', signal = new AbortController().signal): SelectionInput => ({ pipelineId, candidates, stats: new Map(), bottleneck: bn.stage, prompt, signal });

interface ServerCase {
  personality: PersonalityName;
  output: OutputMode;
  tokenParam: TokenParam;
  temperature: 'sent' | 'server default';
  /** Requests until the first answer: one per refusal, plus the answered one. */
  requests: number;
  /** Cached prompt tokens the second answer reports. */
  cached: number;
}

const servers: ServerCase[] = [
  { personality: 'scripted', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 0 },
  { personality: 'vllm', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 96 },
  { personality: 'vllm-0.8-xgrammar', output: 'json_object', tokenParam: 'max_tokens', temperature: 'sent', requests: 2, cached: 0 },
  { personality: 'vllm-no-grammar', output: 'prompt', tokenParam: 'max_tokens', temperature: 'sent', requests: 3, cached: 0 },
  { personality: 'ollama', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 0 },
  { personality: 'ollama-0.4', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 0 },
  { personality: 'llamacpp', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 0 },
  { personality: 'llamacpp-2024', output: 'json_object', tokenParam: 'max_tokens', temperature: 'sent', requests: 2, cached: 0 },
  { personality: 'openai', output: 'json_schema', tokenParam: 'max_tokens', temperature: 'sent', requests: 1, cached: 96 },
  { personality: 'openai-reasoning', output: 'json_schema', tokenParam: 'max_completion_tokens', temperature: 'server default', requests: 3, cached: 96 },
  { personality: 'openai-gpt-3.5', output: 'json_object', tokenParam: 'max_tokens', temperature: 'sent', requests: 2, cached: 0 },
];

describe('LLM selector on recorded server shapes', () => {
  it.each(servers)('$personality: learns $output with $tokenParam and keeps it', async (c) => {
    const s = await server({ personality: c.personality });
    const sel = selector(s.url);
    expect(sel.status().summary).toMatch(/^LLM: not consulted yet; will ask for structured output json_schema/);

    expect((await sel.choose(input())).candidateId).toBe(RULE);
    expect(s.requests).toHaveLength(c.requests);
    expect(s.requests.at(-1)!.refused).toBeNull();
    expect(s.requests.slice(0, -1).every((r) => r.refused !== null)).toBe(true);

    // Remembered: the second decision sends the learned shape at once.
    const second = await sel.choose(input());
    expect(second.candidateId).toBe(RULE);
    expect(s.requests).toHaveLength(c.requests + 1);
    const body = s.requests.at(-1)!.body;
    expect(body.response_format?.type).toBe(c.output === 'prompt' ? undefined : c.output);
    expect(body[c.tokenParam]).toBe(256);
    expect('temperature' in body).toBe(c.temperature === 'sent');

    const st = sel.status();
    expect(st).toMatchObject({ output: c.output, tokenParam: c.tokenParam, temperature: c.temperature, confirmed: true, deciding: true, calls: 2, answered: 2 });
    expect(st.learned).toHaveLength(c.requests - 1);
    expect(st.summary).toMatch(new RegExp(`^LLM: structured output ${c.output === 'prompt' ? 'none' : c.output}`));
    expect(st.tokens.cached).toBe(c.cached);
    expect(st.latencyMs?.n).toBe(2);
  });

  it('shares what it learned with every selector of the same endpoint, not of another model', async () => {
    const s = await server({ personality: 'llamacpp-2024' });
    const compat = new CompatMemory();
    await selector(s.url, { compat }).choose(input());
    expect(s.requests).toHaveLength(2);
    await selector(s.url, { compat }).choose(input('ns/other'));
    expect(s.requests).toHaveLength(3);
    const other = createLlmSelector({ baseUrl: s.url, model: 'another', timeoutMs: 2_000, maxRetries: 0 }, { temperature: 0.2, compat });
    await other.choose(input());
    expect(s.requests).toHaveLength(5);
  });

  it('says when a server ignores response_format and the answer comes in prose (Ollama before 0.5)', async () => {
    const s = await server({ personality: 'ollama-0.4' });
    const sel = selector(s.url);
    expect((await sel.choose(input())).candidateId).toBe(RULE);
    expect(sel.status().answersInProse).toBe(1);
  });

  it('logs the first shape, each refusal it learned from and the shape that was answered', async () => {
    const s = await server({ personality: 'openai-reasoning' });
    const lines: { level: string; msg: string }[] = [];
    const logger = {
      info: (_o: unknown, msg: string) => lines.push({ level: 'info', msg }),
      warn: (_o: unknown, msg: string) => lines.push({ level: 'warn', msg }),
    } as unknown as NonNullable<LlmSelectorOptions['logger']>;
    const sel = selector(s.url, { logger });
    await sel.choose(input());
    await sel.choose(input());
    expect(lines.map((l) => `${l.level} ${l.msg}`)).toEqual([
      'info LLM selector: first request asks for structured output json_schema; max_tokens',
      expect.stringMatching(/^warn LLM endpoint sends max_completion_tokens: max_tokens refused \(400 "Unsupported parameter/),
      expect.stringMatching(/^warn LLM endpoint leaves the temperature to the server: refused \(400 "Unsupported value: 'temperature'/),
      'info LLM endpoint answers: structured output json_schema; max_completion_tokens; server-default temperature',
    ]);
  });
});

describe('reasoning output is dropped before the answer is read', () => {
  it.each(['vllm', 'llamacpp', 'ollama', 'llamacpp-2024', 'ollama-0.4'] as const)('%s with a reasoning model', async (personality) => {
    const s = await server({ personality, reasoning: true });
    const sel = selector(s.url);
    expect((await sel.choose(input())).candidateId).toBe(RULE);
  });

  it('a <think> block that mentions another action', async () => {
    const s = await server({});
    s.script('think');
    expect((await selector(s.url).choose(input())).candidateId).toBe(RULE);
  });

  it('an answer that ends inside its reasoning is truncated, and the tokens still count', async () => {
    const s = await server({});
    s.script('think-unclosed');
    const sel = selector(s.url);
    const err = await sel.choose(input()).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SelectorError);
    expect((err as SelectorError).code).toBe('truncated');
    expect((err as SelectorError).message).toMatch(/SAIR_LLM_MAX_TOKENS/);
    expect((err as SelectorError).usage?.prompt).toBe(100);
    expect(sel.status().tokens.prompt).toBe(100);
  });
});

describe('faults, each ending in a typed error the status reports', () => {
  it.each([
    ['vllm-0.8-xgrammar', 'server busy, please try again later'],
    ['ollama-0.4', 'server busy, please try again later'],
    ['llamacpp', 'server busy, please try again later'],
    ['openai', 'server busy, please try again later'],
  ] as const)('%s 503: the message of its error body reaches the fallback reason', async (personality, message) => {
    const s = await server({ personality });
    s.script('503');
    const sel = selector(s.url);
    await expect(sel.choose(input())).rejects.toThrow(/^server-error: the LLM server answered 503/);
    const st = sel.status();
    expect(st.lastError?.message).toContain(message);
    expect(st.summary).toMatch(/^fallback: bandit, because server-error: the LLM server answered 503/);
    expect(st.failures).toEqual({ 'server-error': 1 });
  });

  it('retries a 5xx once when configured', async () => {
    const s = await server({ personality: 'vllm' });
    s.script('500');
    expect((await selector(s.url, { maxRetries: 1 }).choose(input())).candidateId).toBe(RULE);
    expect(s.requests).toHaveLength(2);
  });

  it('honours a Retry-After that fits the deadline, then answers', async () => {
    const s = await server({ personality: 'openai' });
    s.script({ kind: '429', retryAfter: '1' });
    const started = Date.now();
    const sel = selector(s.url, { maxRetries: 1, deadlineMs: 5_000 });
    expect((await sel.choose(input())).candidateId).toBe(RULE);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    expect(s.requests).toHaveLength(2);
  });

  it('falls back at once on a Retry-After past the deadline, and sends nothing before it', async () => {
    const s = await server({ personality: 'openai' });
    s.script({ kind: '429', retryAfter: '60' });
    let clock = 1_700_000_000_000;
    const sel = selector(s.url, { maxRetries: 1, deadlineMs: 5_000, now: () => clock });
    await expect(sel.choose(input())).rejects.toThrow(/^rate-limited: .*asked to wait 60\.0 s, past this decision's deadline/);
    expect(s.requests).toHaveLength(1);
    expect(sel.status().summary).toMatch(/^fallback: bandit, because the LLM server answered 429; no request before 22:14:20 UTC/);
    clock += 30_000;
    await expect(sel.choose(input())).rejects.toThrow(/rate-limited: the LLM server asked not to be called before 22:14:20 UTC/);
    expect(s.requests).toHaveLength(1);
    clock += 31_000;
    expect((await sel.choose(input())).candidateId).toBe(RULE);
    expect(sel.status().summary).toMatch(/^LLM: /);
  });

  it('reads Retry-After as an HTTP date', async () => {
    const s = await server({ personality: 'openai' });
    const clock = Date.parse('2026-01-01T12:00:00Z');
    s.script({ kind: '429', retryAfter: new Date(clock + 120_000).toUTCString() });
    const sel = selector(s.url, { maxRetries: 1, deadlineMs: 5_000, now: () => clock });
    await expect(sel.choose(input())).rejects.toThrow(/asked to wait 120\.0 s/);
  });

  it.each([
    ['malformed', 'malformed'],
    ['outside-enum', 'invalid-action'],
    ['truncated', 'truncated'],
    ['empty', 'empty'],
    ['refusal', 'refusal'],
  ] as const)('%s: %s, with the tokens it cost', async (fault, code) => {
    const s = await server({ personality: 'vllm' });
    s.script(fault);
    const calls: LlmCall[] = [];
    const sel = selector(s.url, { observer: { onCall: (c) => calls.push(c) } });
    const err = (await sel.choose(input()).catch((e: unknown) => e)) as SelectorError;
    expect(err.code).toBe(code);
    expect(calls).toEqual([{ pipelineId: 'ns/p', outcome: code, usage: expect.objectContaining({ prompt: 100 }), dollars: 0, latencyMs: expect.any(Number) }]);
  });

  it('a timeout is a timeout', async () => {
    const s = await server({ personality: 'llamacpp' });
    s.script('timeout');
    await expect(selector(s.url, { timeoutMs: 300 }).choose(input())).rejects.toThrow(/^timeout/);
  });
});

describe('cost and budget', () => {
  it('counts tokens and dollars per pipeline at the configured prices', async () => {
    const s = await server({ personality: 'openai' });
    const calls: LlmCall[] = [];
    const sel = createLlmSelector(
      { baseUrl: s.url, model: 'm', timeoutMs: 2_000, maxRetries: 0, prices: { promptPerMTok: 2.5, completionPerMTok: 10, cachedPerMTok: 1.25 } },
      { temperature: 0.2, compat: new CompatMemory(), observer: { onCall: (c) => calls.push(c) } },
    );
    await sel.choose(input('ns/a'));
    await sel.choose(input('ns/b'));
    const st = sel.status();
    const completion = calls[0]!.usage!.completion;
    expect(st.pipelines['ns/a']!.tokens).toEqual({ prompt: 100, completion, cached: 0 });
    expect(st.pipelines['ns/b']!.tokens).toEqual({ prompt: 100, completion, cached: 96 });
    expect(st.pipelines['ns/a']!.dollars).toBeCloseTo((100 * 2.5 + completion * 10) / 1e6, 12);
    expect(st.pipelines['ns/b']!.dollars).toBeCloseTo((4 * 2.5 + 96 * 1.25 + completion * 10) / 1e6, 12);
    expect(st.dollars).toBeCloseTo(calls[0]!.dollars + calls[1]!.dollars, 12);
    expect(st.tokensPerCall).toEqual({ prompt: 100, completion, cached: 48 });
  });

  it('after the budget is spent the bandit decides until the next hour, and says why', async () => {
    const s = await server({ personality: 'vllm' });
    let now = Date.parse('2026-01-01T10:59:00Z');
    const clock = { now: () => now };
    const ledger = newLedger(now);
    const budgeted = withBudget(selector(s.url), { limits: { pipelineTokensPerHour: 200, totalTokensPerHour: 0 }, ledger }, clock);
    const run = () =>
      decide(
        { pipeline: spec, obs, bn, candidates, stats: new Map(), prompt, now },
        {
          llm: budgeted,
          bandit: createBanditSelector({ exploration: 0.2, random: seededRandom(1) }),
          settings: policySettings({ exploration: { epsilon: 0 } }),
          random: seededRandom(2),
        },
      );
    expect((await run()).selector).toBe('llm');
    expect((await run()).selector).toBe('llm');
    const spent = await run();
    expect(spent.selector).toBe('bandit');
    expect(spent.fallbackReason).toMatch(/^llm: budget: LLM budget spent: pipeline ml\/demo used 2\d\d of its 200 tokens this hour; the bandit decides until 11:00 UTC/);
    expect(s.requests).toHaveLength(2);
    expect(budgeted.status().summary).toMatch(/^fallback: bandit, because LLM budget spent/);
    expect(budgeted.status().budget).toMatchObject({ refused: 1, limits: { pipelineTokensPerHour: 200 } });
    now += 60_000;
    expect((await run()).selector).toBe('llm');
    expect(budgeted.status().summary).toMatch(/^LLM: /);
    expect(budgeted.status().budget.total).toBeGreaterThan(100);
  });

  it('the server-wide budget is shared by every pipeline', async () => {
    const s = await server({});
    const clock = { now: () => 0 };
    const budget = { limits: { pipelineTokensPerHour: 0, totalTokensPerHour: 150 }, ledger: newLedger(0) };
    const a = withBudget(selector(s.url), budget, clock);
    const b = withBudget(selector(s.url), budget, clock);
    await a.choose(input('ns/a'));
    await b.choose(input('ns/b'));
    await expect(a.choose(input('ns/c'))).rejects.toThrow(/^budget: LLM budget spent: all pipelines used 2\d\d of the server's 150 tokens this hour/);
    expect(b.status().budget.pipelines).toEqual({ 'ns/a': expect.any(Number), 'ns/b': expect.any(Number) });
  });

  it('charges the tokens of an answer that was not used', async () => {
    const s = await server({});
    s.script('outside-enum');
    const budget = { limits: { pipelineTokensPerHour: 1_000, totalTokensPerHour: 0 }, ledger: newLedger(0) };
    const sel = withBudget(selector(s.url), budget, { now: () => 0 });
    await expect(sel.choose(input())).rejects.toThrow(/invalid-action/);
    expect(budget.ledger.total).toBeGreaterThan(100);
  });
});
