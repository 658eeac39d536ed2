// The LLM selector: one chat completion on any OpenAI-compatible server (vLLM, Ollama, llama.cpp,
// OpenAI) through the `openai` client. The request's shape is negotiated per endpoint (compat.ts):
// json_schema, then json_object, then the prompt alone with a strict parser, and max_tokens or
// max_completion_tokens, each learned from the server's refusal and remembered. Retries honour
// Retry-After within the decision's deadline; a longer wait is kept, so no request goes out before
// it. Every failure is a SelectorError whose code names it, so decide.ts can fall back and say why,
// and status() tells the policy server, the dashboard and the benchmark how the LLM is doing.
import OpenAI, { APIConnectionTimeoutError, APIError, APIUserAbortError, RateLimitError } from 'openai';
import { performance } from 'node:perf_hooks';
import type { Logger } from '../../common/logger.js';
import { llmSettingsSchema, type LlmSettingsInput } from '../settings.js';
import type { Selection, SelectionInput, Selector } from '../types.js';
import { isBareJson, parseAnswer, responseFormat } from './answer.js';
import { costDollars } from './budget.js';
import { CompatMemory, describeShape, nextShape, refusalOf, type OutputMode, type RequestShape, type TokenParam } from './compat.js';
import { SelectorError, type SelectorErrorCode, type TokenUsage } from './errors.js';

export { parseAnswer, responseFormat, stripReasoning } from './answer.js';
export { SelectorError, type SelectorErrorCode, type TokenUsage } from './errors.js';

/** A selection with what the call cost, cached prompt tokens included. */
export interface LlmSelection extends Selection {
  /** Null when the server sent no usage. */
  usage: TokenUsage | null;
}

/** One consultation of the LLM, for metrics: what it cost and how it ended. */
export interface LlmCall {
  pipelineId: string;
  outcome: 'ok' | SelectorErrorCode;
  /** Null when no completion came back. */
  usage: TokenUsage | null;
  dollars: number;
  latencyMs: number;
}

export interface LlmObserver {
  onCall(call: LlmCall): void;
}

export interface LlmUsageTotals {
  calls: number;
  tokens: TokenUsage;
  dollars: number;
}

/** How the LLM is doing, for /api/llm, the dashboard, the logs and the benchmark. */
export interface LlmStatus {
  baseUrl: string;
  model: string;
  /** The request shape in use: what the server has accepted, or will be tried next. */
  output: OutputMode;
  tokenParam: TokenParam;
  temperature: 'sent' | 'server default';
  /** Whether a request of this shape has been answered. */
  confirmed: boolean;
  /** What refusals taught, oldest first. */
  learned: string[];
  /** One line: "LLM: structured output json_schema; max_tokens" or "fallback: bandit, because ...". */
  summary: string;
  /** Whether the LLM decided the last time it was asked. */
  deciding: boolean;
  lastError: { code: SelectorErrorCode; message: string; time: number } | null;
  /** The server asked (429 Retry-After) not to be called before this time, ms since the epoch. */
  rateLimitedUntil: number | null;
  calls: number;
  answered: number;
  failures: Partial<Record<SelectorErrorCode, number>>;
  /** Answers that came wrapped in prose although response_format asked for JSON (a server that ignores it). */
  answersInProse: number;
  /** Wall time of answered decisions, retries and negotiation included. */
  latencyMs: { p50: number; p99: number; n: number } | null;
  tokens: TokenUsage;
  /** Mean tokens per call that came back with usage. */
  tokensPerCall: TokenUsage | null;
  dollars: number;
  pipelines: Record<string, LlmUsageTotals>;
}

export interface LlmSelector extends Selector {
  readonly name: 'llm';
  status(): LlmStatus;
}

export interface LlmSelectorOptions {
  temperature: number;
  /** For tests: a fetch to use instead of the global one. */
  fetch?: typeof fetch;
  /** How long one decision may spend on the LLM, waits for Retry-After included (the decision deadline). */
  deadlineMs?: number;
  /** Shapes learned per endpoint; one per process by default, shared by every selector. */
  compat?: CompatMemory;
  observer?: LlmObserver;
  logger?: Logger;
  /** Wall clock for Retry-After, ms since the epoch. */
  now?: () => number;
  /** The API key, asked before each request (so a rotated key is used at once); settings.apiKey otherwise. */
  apiKey?: () => Promise<string>;
}

/** Shapes learned by every selector of this process that is not given a memory of its own. */
export const processCompat = new CompatMemory();

const LATENCY_WINDOW = 1_024;
/** Negotiation steps at most per call: the shape only moves down, and has five steps in all. */
const MAX_NEGOTIATION = 5;
/** Wait before a retry the server gave no Retry-After for. */
const RETRY_BACKOFF_MS = 500;

/**
 * A fetch whose error answers always carry OpenAI's `{"error":{...}}`, so the openai client keeps
 * the message: vLLM before 0.10 answered `{"object":"error","message",...}` and Ollama's native API
 * `{"error":"..."}`, which the client would otherwise reduce to a status code.
 */
function normalizingFetch(inner: typeof fetch): typeof fetch {
  return async (input, init) => {
    const res = await inner(input, init);
    if (res.ok) return res;
    const text = await res.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const normal = typeof body === 'object' && body !== null && 'error' in body && typeof body.error === 'object' && body.error !== null;
    const headers = new Headers(res.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    headers.set('content-type', 'application/json');
    const refusal = refusalOf(res.status, body, text.slice(0, 300) || res.statusText);
    const out = normal ? text : JSON.stringify({ error: { message: refusal.message, type: null, param: refusal.param, code: refusal.code } });
    return new Response(out, { status: res.status, statusText: res.statusText, headers });
  };
}

function classify(err: unknown, elapsedMs: number, timeoutMs: number): SelectorError {
  if (err instanceof SelectorError) return err;
  if (err instanceof APIUserAbortError) return new SelectorError('aborted', 'decision deadline reached', { cause: err });
  if (err instanceof APIConnectionTimeoutError) return new SelectorError('timeout', 'the LLM did not answer in time', { cause: err });
  if (err instanceof RateLimitError) return new SelectorError('rate-limited', `the LLM server answered 429: ${err.message.slice(4, 160)}`, { cause: err });
  if (err instanceof APIError && err.status !== undefined) {
    const what = `the LLM server answered ${err.message.slice(0, 200)}`;
    return new SelectorError(err.status >= 500 ? 'server-error' : 'http-error', what, { cause: err });
  }
  // Some runtimes report a client timeout as a bare connection error; the clock tells them apart.
  if (err instanceof APIError && elapsedMs >= timeoutMs * 0.9) return new SelectorError('timeout', `no answer within ${timeoutMs} ms`, { cause: err });
  if (err instanceof APIError) return new SelectorError('network', err.message, { cause: err });
  return new SelectorError('malformed', err instanceof Error ? err.message : String(err), { cause: err });
}

const RETRYABLE: ReadonlySet<SelectorErrorCode> = new Set(['rate-limited', 'server-error', 'timeout', 'network']);

/** The wait a 429 or 503 asks for: `retry-after-ms` (OpenAI), `Retry-After` in seconds or as a date. */
export function retryAfterMs(headers: Headers | undefined, now: number): number | null {
  const ms = headers?.get('retry-after-ms');
  if (ms && Number.isFinite(Number(ms))) return Math.max(0, Number(ms));
  const after = headers?.get('retry-after');
  if (!after) return null;
  if (/^\s*\d+(\.\d+)?\s*$/.test(after)) return Number(after) * 1000;
  const date = Date.parse(after);
  return Number.isFinite(date) ? Math.max(0, date - now) : null;
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const abort = () => {
      clearTimeout(timer);
      reject(new SelectorError('aborted', 'decision deadline reached while waiting to retry'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', abort);
      resolve();
    }, ms);
    if (signal.aborted) abort();
    else signal.addEventListener('abort', abort, { once: true });
  });
}

function usageOf(u: OpenAI.Completions.CompletionUsage | undefined | null): TokenUsage | null {
  if (!u) return null;
  return { prompt: u.prompt_tokens ?? 0, completion: u.completion_tokens ?? 0, cached: u.prompt_tokens_details?.cached_tokens ?? 0 };
}

const addUsage = (a: TokenUsage, b: TokenUsage): TokenUsage => ({ prompt: a.prompt + b.prompt, completion: a.completion + b.completion, cached: a.cached + b.cached });
const ZERO: TokenUsage = { prompt: 0, completion: 0, cached: 0 };

function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

export function createLlmSelector(input: LlmSettingsInput, opts: LlmSelectorOptions): LlmSelector {
  const settings = llmSettingsSchema.parse(input);
  const client = new OpenAI({
    baseURL: settings.baseUrl,
    // Local servers need no key, but the client insists on one; never fall back to OPENAI_API_KEY.
    apiKey: settings.apiKey ?? 'none',
    organization: null,
    project: null,
    timeout: settings.timeoutMs,
    // Retries are ours: the client would wait out any Retry-After up to a minute, past the deadline.
    maxRetries: 0,
    fetch: normalizingFetch(opts.fetch ?? fetch),
  });
  const compat = opts.compat ?? processCompat;
  const key = CompatMemory.key(settings.baseUrl, settings.model);
  const now = opts.now ?? Date.now;
  const deadlineMs = opts.deadlineMs ?? settings.timeoutMs * (1 + settings.maxRetries);
  const log = opts.logger;
  const endpoint = { baseUrl: settings.baseUrl, model: settings.model };
  const keySource = opts.apiKey;
  const authorization = keySource
    ? async () => {
        try {
          return { headers: { Authorization: `Bearer ${await keySource()}` } };
        } catch (err) {
          throw new SelectorError('http-error', `no LLM API key: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
      }
    : async () => ({});

  const stats = {
    calls: 0,
    answered: 0,
    withUsage: 0,
    failures: {} as Partial<Record<SelectorErrorCode, number>>,
    answersInProse: 0,
    lastError: null as LlmStatus['lastError'],
    deciding: false,
    rateLimitedUntil: null as number | null,
    latencies: [] as number[],
    tokens: ZERO,
    dollars: 0,
    pipelines: new Map<string, LlmUsageTotals>(),
  };
  log?.info({ ...endpoint, shape: compat.get(key).shape }, `LLM selector: first request asks for ${describeShape(compat.get(key).shape)}`);

  function record(pipelineId: string, outcome: LlmCall['outcome'], usage: TokenUsage | null, latencyMs: number): void {
    const dollars = usage ? costDollars(usage, settings.prices) : 0;
    stats.calls++;
    if (usage) {
      stats.withUsage++;
      stats.tokens = addUsage(stats.tokens, usage);
      stats.dollars += dollars;
    }
    const p = stats.pipelines.get(pipelineId) ?? { calls: 0, tokens: ZERO, dollars: 0 };
    stats.pipelines.set(pipelineId, { calls: p.calls + 1, tokens: usage ? addUsage(p.tokens, usage) : p.tokens, dollars: p.dollars + dollars });
    opts.observer?.onCall({ pipelineId, outcome, usage, dollars, latencyMs });
  }

  function requestBody(shape: RequestShape, system: string, user: string, ids: readonly string[]) {
    const body: Record<string, unknown> = {
      model: settings.model,
      messages: [
        { role: 'system', content: system },
        { role: 'user', content: user },
      ],
      [shape.tokenParam]: settings.maxTokens,
    };
    if (shape.temperature) body.temperature = opts.temperature;
    if (shape.output === 'json_schema') body.response_format = responseFormat(ids);
    else if (shape.output === 'json_object') body.response_format = { type: 'json_object' };
    return body as unknown as OpenAI.Chat.Completions.ChatCompletionCreateParamsNonStreaming;
  }

  /** One completion, negotiating the shape and retrying within the deadline. */
  async function complete(input: SelectionInput & { prompt: NonNullable<SelectionInput['prompt']> }, ids: readonly string[], started: number) {
    let retries = settings.maxRetries;
    for (let negotiated = 0; ; ) {
      const shape = compat.get(key).shape;
      try {
        const completion = await client.chat.completions.create(requestBody(shape, input.prompt.system, input.prompt.user, ids), { signal: input.signal, ...(await authorization()) });
        if (compat.confirm(key)) log?.info({ ...endpoint, shape }, `LLM endpoint answers: ${describeShape(shape)}`);
        return { completion, shape };
      } catch (err) {
        if (err instanceof APIError && err.status !== undefined && negotiated < MAX_NEGOTIATION) {
          const next = nextShape(shape, refusalOf(err.status, err.error, err.message));
          if (next) {
            negotiated++;
            // Another decision may have learned it meanwhile; only the first moves the shape.
            if (compat.get(key).shape === shape) {
              compat.learn(key, next.shape, next.learned);
              log?.warn({ ...endpoint, shape: next.shape, learned: next.learned }, `LLM endpoint ${next.learned}`);
            }
            continue;
          }
        }
        const e = classify(err, performance.now() - started, settings.timeoutMs);
        const wait = err instanceof APIError ? retryAfterMs(err.headers, now()) : null;
        if (retries > 0 && RETRYABLE.has(e.code) && performance.now() - started + (wait ?? RETRY_BACKOFF_MS) < deadlineMs) {
          retries--;
          await sleep(wait ?? RETRY_BACKOFF_MS, input.signal);
          continue;
        }
        if (e.code === 'rate-limited' && wait !== null) {
          stats.rateLimitedUntil = now() + wait;
          throw new SelectorError('rate-limited', `the LLM server answered 429 and asked to wait ${(wait / 1000).toFixed(1)} s, past this decision's deadline; no request before then`, { cause: err });
        }
        throw e;
      }
    }
  }

  async function choose(input: SelectionInput): Promise<LlmSelection> {
    const prompt = input.prompt;
    if (!prompt) throw new SelectorError('malformed', 'no prompt was built for the LLM selector');
    if (stats.rateLimitedUntil !== null && now() < stats.rateLimitedUntil) {
      throw new SelectorError('rate-limited', `the LLM server asked not to be called before ${new Date(stats.rateLimitedUntil).toISOString().slice(11, 19)} UTC (Retry-After)`);
    }
    stats.rateLimitedUntil = null;
    const ids = input.candidates.map((c) => c.id);
    const started = performance.now();
    const { completion, shape } = await complete({ ...input, prompt }, ids, started);
    const usage = usageOf(completion.usage);
    try {
      const choice = completion.choices?.[0];
      if (!choice) throw new SelectorError('empty', 'the completion has no choices');
      if (choice.message?.refusal) throw new SelectorError('refusal', `the model refused: ${choice.message.refusal.slice(0, 120)}`);
      if (choice.finish_reason === 'length') throw new SelectorError('truncated', `the answer was cut off at ${settings.maxTokens} tokens; raise SAIR_LLM_MAX_TOKENS`);
      if (choice.finish_reason === 'content_filter') throw new SelectorError('refusal', 'the answer was withheld by a content filter');
      // Reasoning the server split off (vLLM's and llama.cpp's reasoning_content, Ollama's reasoning) is never read.
      const content = choice.message?.content ?? '';
      const answer = parseAnswer(content, ids);
      if (shape.output !== 'prompt' && !isBareJson(content)) stats.answersInProse++;
      return {
        candidateId: answer.action,
        reason: answer.reason,
        bottleneck: answer.bottleneck,
        tokens: usage ? { prompt: usage.prompt, completion: usage.completion } : undefined,
        usage,
      };
    } catch (err) {
      if (err instanceof SelectorError && usage) err.usage = usage;
      throw err;
    }
  }

  function status(): LlmStatus {
    const learned = compat.get(key);
    const sorted = [...stats.latencies].sort((a, b) => a - b);
    const limited = stats.rateLimitedUntil !== null && now() < stats.rateLimitedUntil;
    let summary: string;
    if (limited) summary = `fallback: bandit, because the LLM server answered 429; no request before ${new Date(stats.rateLimitedUntil!).toISOString().slice(11, 19)} UTC`;
    else if (stats.calls === 0) summary = `LLM: not consulted yet; will ask for ${describeShape(learned.shape)}`;
    else if (stats.deciding) summary = `LLM: ${describeShape(learned.shape)}`;
    else summary = `fallback: bandit, because ${stats.lastError?.message ?? 'the LLM failed'}`;
    const n = stats.withUsage;
    return {
      ...endpoint,
      output: learned.shape.output,
      tokenParam: learned.shape.tokenParam,
      temperature: learned.shape.temperature ? 'sent' : 'server default',
      confirmed: learned.confirmed,
      learned: [...learned.learned],
      summary,
      deciding: stats.deciding,
      lastError: stats.lastError,
      rateLimitedUntil: limited ? stats.rateLimitedUntil : null,
      calls: stats.calls,
      answered: stats.answered,
      failures: { ...stats.failures },
      answersInProse: stats.answersInProse,
      latencyMs: sorted.length > 0 ? { p50: quantile(sorted, 0.5), p99: quantile(sorted, 0.99), n: sorted.length } : null,
      tokens: stats.tokens,
      tokensPerCall: n > 0 ? { prompt: stats.tokens.prompt / n, completion: stats.tokens.completion / n, cached: stats.tokens.cached / n } : null,
      dollars: stats.dollars,
      pipelines: Object.fromEntries(stats.pipelines),
    };
  }

  return {
    name: 'llm',
    status,
    async choose(input: SelectionInput): Promise<Selection> {
      const started = performance.now();
      try {
        const selection = await choose(input);
        const latencyMs = performance.now() - started;
        stats.answered++;
        stats.deciding = true;
        stats.latencies.push(latencyMs);
        if (stats.latencies.length > LATENCY_WINDOW) stats.latencies.shift();
        record(input.pipelineId, 'ok', selection.usage, latencyMs);
        return selection;
      } catch (err) {
        const e = err instanceof SelectorError ? err : classify(err, performance.now() - started, settings.timeoutMs);
        stats.deciding = false;
        stats.failures[e.code] = (stats.failures[e.code] ?? 0) + 1;
        stats.lastError = { code: e.code, message: e.message, time: now() };
        record(input.pipelineId, e.code, e.usage ?? null, performance.now() - started);
        throw e;
      }
    },
  };
}
