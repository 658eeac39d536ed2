// The LLM selector: one chat completion on any OpenAI-compatible server (vLLM, Ollama, llama.cpp,
// OpenAI) through the `openai` client. The answer is constrained by a json_schema whose action is
// an enum of this tick's candidate ids; servers that ignore response_format are parsed robustly
// (JSON inside prose or code fences). Every failure is a SelectorError whose code names it, so
// decide.ts can fall back and log why.
import OpenAI, { APIConnectionTimeoutError, APIError, APIUserAbortError, RateLimitError } from 'openai';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import type { LlmSettings } from '../settings.js';
import type { Selection, SelectionInput, Selector } from '../types.js';

export type SelectorErrorCode =
  | 'timeout'
  | 'rate-limited'
  | 'server-error'
  | 'http-error'
  | 'network'
  | 'aborted'
  | 'empty'
  | 'refusal'
  | 'truncated'
  | 'malformed'
  | 'invalid-action';

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  constructor(
    readonly code: SelectorErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
  }
}

const answerSchema = z.object({
  action: z.string(),
  reason: z.string().max(2_000).optional(),
  bottleneck: z.number().int().nullable().optional(),
});

/** The JSON schema sent as response_format; `action` may only be one of the ids. */
export function responseFormat(candidateIds: readonly string[]) {
  return {
    type: 'json_schema' as const,
    json_schema: {
      name: 'scaling_decision',
      strict: true,
      schema: {
        type: 'object',
        additionalProperties: false,
        required: ['action', 'reason', 'bottleneck'],
        properties: {
          action: { type: 'string', enum: [...candidateIds] },
          reason: { type: 'string', maxLength: 300 },
          bottleneck: { type: ['integer', 'null'] },
        },
      },
    },
  };
}

/** The decision in a completion's text: plain JSON, JSON in a code fence or in prose. */
export function parseAnswer(content: string, candidateIds: readonly string[]): { action: string; reason: string; bottleneck: number | null } {
  const text = content.trim();
  if (text === '') throw new SelectorError('empty', 'the model answered with no text');
  const start = text.indexOf('{');
  const end = text.lastIndexOf('}');
  if (start < 0 || end <= start) {
    if (candidateIds.includes(text)) return { action: text, reason: '', bottleneck: null };
    throw new SelectorError('malformed', `no JSON object in the answer: ${JSON.stringify(text.slice(0, 80))}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text.slice(start, end + 1));
  } catch (err) {
    throw new SelectorError('malformed', `the answer is not valid JSON: ${JSON.stringify(text.slice(start, start + 80))}`, { cause: err });
  }
  const parsed = answerSchema.safeParse(json);
  if (!parsed.success) throw new SelectorError('malformed', `the answer lacks a string "action": ${JSON.stringify(json).slice(0, 80)}`);
  if (!candidateIds.includes(parsed.data.action)) {
    throw new SelectorError('invalid-action', `"${parsed.data.action}" is not one of the candidates ${candidateIds.join(', ')}`);
  }
  return { action: parsed.data.action, reason: parsed.data.reason ?? '', bottleneck: parsed.data.bottleneck ?? null };
}

function classify(err: unknown, elapsedMs: number, timeoutMs: number): SelectorError {
  if (err instanceof SelectorError) return err;
  if (err instanceof APIUserAbortError) return new SelectorError('aborted', 'decision deadline reached', { cause: err });
  if (err instanceof APIConnectionTimeoutError) return new SelectorError('timeout', 'the LLM did not answer in time', { cause: err });
  if (err instanceof RateLimitError) return new SelectorError('rate-limited', 'the LLM server answered 429', { cause: err });
  if (err instanceof APIError && err.status !== undefined) {
    return new SelectorError(err.status >= 500 ? 'server-error' : 'http-error', `the LLM server answered ${err.status}`, { cause: err });
  }
  // Some runtimes report a client timeout as a bare connection error; the clock tells them apart.
  if (err instanceof APIError && elapsedMs >= timeoutMs * 0.9) return new SelectorError('timeout', `no answer within ${timeoutMs} ms`, { cause: err });
  if (err instanceof APIError) return new SelectorError('network', err.message, { cause: err });
  return new SelectorError('malformed', err instanceof Error ? err.message : String(err), { cause: err });
}

export interface LlmSelectorOptions {
  temperature: number;
  /** For tests: a fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

export function createLlmSelector(settings: LlmSettings, opts: LlmSelectorOptions): Selector {
  const client = new OpenAI({
    baseURL: settings.baseUrl,
    // Local servers need no key, but the client insists on one; never fall back to OPENAI_API_KEY.
    apiKey: settings.apiKey ?? 'none',
    organization: null,
    project: null,
    timeout: settings.timeoutMs,
    maxRetries: settings.maxRetries,
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  });
  return {
    name: 'llm',
    async choose(input: SelectionInput): Promise<Selection> {
      if (!input.prompt) throw new SelectorError('malformed', 'no prompt was built for the LLM selector');
      const ids = input.candidates.map((c) => c.id);
      let completion: OpenAI.Chat.Completions.ChatCompletion;
      const started = performance.now();
      try {
        completion = await client.chat.completions.create(
          {
            model: settings.model,
            messages: [
              { role: 'system', content: input.prompt.system },
              { role: 'user', content: input.prompt.user },
            ],
            temperature: opts.temperature,
            max_tokens: 256,
            response_format: responseFormat(ids),
          },
          { signal: input.signal },
        );
      } catch (err) {
        throw classify(err, performance.now() - started, settings.timeoutMs);
      }
      const choice = completion.choices?.[0];
      if (!choice) throw new SelectorError('empty', 'the completion has no choices');
      if (choice.message?.refusal) throw new SelectorError('refusal', `the model refused: ${choice.message.refusal.slice(0, 120)}`);
      if (choice.finish_reason === 'length') throw new SelectorError('truncated', 'the answer was cut off at max_tokens');
      if (choice.finish_reason === 'content_filter') throw new SelectorError('refusal', 'the answer was withheld by a content filter');
      const answer = parseAnswer(choice.message?.content ?? '', ids);
      return {
        candidateId: answer.action,
        reason: answer.reason,
        bottleneck: answer.bottleneck,
        tokens: completion.usage ? { prompt: completion.usage.prompt_tokens, completion: completion.usage.completion_tokens } : undefined,
      };
    },
  };
}
