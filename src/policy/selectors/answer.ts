// What the LLM is asked to answer and how its answer is read. Pure. The schema constrains `action`
// to this tick's candidate ids; the parser is strict about the action (one of the ids) and lenient
// about the wrapping (JSON in prose or a code fence, for servers that ignore response_format), and
// drops reasoning (`<think>` blocks, a harmony analysis channel) before it looks for the answer.
import { z } from 'zod';
import { SelectorError } from './errors.js';

const answerSchema = z.object({
  action: z.string(),
  reason: z.string().max(2_000).optional(),
  bottleneck: z.number().int().nullable().optional(),
});

export interface Answer {
  action: string;
  reason: string;
  bottleneck: number | null;
}

/**
 * The JSON schema sent as response_format; `action` may only be one of the ids. No string length or
 * pattern: vLLM 0.8's xgrammar backend refused schemas with them (400 "The provided JSON schema
 * contains features not supported by xgrammar."), and OpenAI's strict mode accepts only a subset.
 */
export function answerJsonSchema(candidateIds: readonly string[]) {
  return {
    type: 'object',
    additionalProperties: false,
    required: ['action', 'reason', 'bottleneck'],
    properties: {
      action: { type: 'string', enum: [...candidateIds] },
      reason: { type: 'string' },
      bottleneck: { type: ['integer', 'null'] },
    },
  };
}

/** response_format of type json_schema (OpenAI's nesting, which vLLM, llama.cpp and Ollama read too). */
export function responseFormat(candidateIds: readonly string[]) {
  return {
    type: 'json_schema' as const,
    json_schema: { name: 'scaling_decision', strict: true, schema: answerJsonSchema(candidateIds) },
  };
}

const THINK_BLOCK = /<(think|thinking|reasoning)>[^]*?<\/\1>/gi;
const THINK_CLOSE = /<\/(think|thinking|reasoning)>/gi;
const THINK_OPEN = /<(think|thinking|reasoning)>/i;
const HARMONY_FINAL = '<|channel|>final<|message|>';

/**
 * The answer without the model's reasoning. Handles `<think>...</think>` in the content (DeepSeek-R1
 * and Qwen3 on servers started without a reasoning parser), a closing tag alone (chat templates that
 * open the block in the prompt), and gpt-oss's harmony channels when the server leaves them in.
 * `unfinished` is true when a reasoning block never closed: the answer ran out while thinking.
 */
export function stripReasoning(content: string): { text: string; unfinished: boolean } {
  let text = content;
  const final = text.lastIndexOf(HARMONY_FINAL);
  if (final >= 0) text = text.slice(final + HARMONY_FINAL.length).replace(/<\|(end|return)\|>\s*$/, '');
  else if (text.includes('<|channel|>analysis')) return { text: '', unfinished: true };
  text = text.replace(THINK_BLOCK, '');
  let lastClose = -1;
  for (const m of text.matchAll(THINK_CLOSE)) lastClose = m.index + m[0].length;
  if (lastClose >= 0) text = text.slice(lastClose);
  const open = THINK_OPEN.exec(text);
  if (open) return { text: text.slice(0, open.index).trim(), unfinished: true };
  return { text: text.trim(), unfinished: false };
}

/** The decision in a completion's text: plain JSON, JSON in a code fence or in prose, or a bare id. */
export function parseAnswer(content: string, candidateIds: readonly string[]): Answer {
  const { text, unfinished } = stripReasoning(content);
  if (text === '' && unfinished) throw new SelectorError('truncated', 'the answer ended inside the model\'s reasoning; raise SAIR_LLM_MAX_TOKENS');
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

/** Whether the text, reasoning aside, is the JSON object alone (a server that honoured response_format). */
export function isBareJson(content: string): boolean {
  const { text } = stripReasoning(content);
  return text.startsWith('{') && text.endsWith('}');
}
