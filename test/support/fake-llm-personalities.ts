// How real OpenAI-compatible servers differ where SAIR's LLM selector meets them, replayed by the
// scripted server (fake-llm.ts). Each personality accepts or refuses what the real server does,
// with its status codes and error bodies, and answers with its usage and reasoning fields. The
// facts come from the servers' sources and issue threads (vLLM's ErrorResponse and xgrammar
// validation, llama.cpp's oaicompat_chat_params_parse and format_error_response, Ollama's OpenAI
// layer, OpenAI's documented errors); each entry names the behaviour and versions it follows.

/** What a request asked for, as a server reads it. */
export interface RequestView {
  responseFormat: string | null;
  hasMaxTokens: boolean;
  hasMaxCompletionTokens: boolean;
  temperature: number | undefined;
}

export interface Refused {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}

export interface Personality {
  /** The real server and versions this follows. */
  follows: string;
  /** The refusal of a request shape this server does not take, or null when it takes it. */
  refuse(req: RequestView): Refused | null;
  /** The server's error body for a status and message. */
  error(status: number, message: string, extra?: { param?: string | null; code?: string | null }): unknown;
  /** The `usage` object of an answer; `n` counts the requests so far (a prefix cache warms after the first). */
  usage(prompt: number, completion: number, n: number): Record<string, unknown>;
  /** Where the model's reasoning goes, when the scripted model reasons. */
  reasoning: 'content-think' | 'reasoning_content' | 'reasoning' | 'none';
  /** The server drops response_format it does not know, so an unconstrained model answers in prose. */
  ignoresSchema: boolean;
  /** Extra headers on a 429. */
  rateLimitHeaders: Record<string, string>;
}

const PROMPT_CACHE = 96;

const openaiError = (type: (s: number) => string) => (status: number, message: string, extra: { param?: string | null; code?: string | null } = {}) => ({
  error: { message, type: type(status), param: extra.param ?? null, code: extra.code ?? null },
});
const openaiType = (s: number) => (s === 429 ? 'rate_limit_error' : s >= 500 ? 'server_error' : 'invalid_request_error');

/** vLLM 0.10 and later: `{"error":{"message","type","param","code"}}`, `code` the HTTP status, `type` a Python exception name. */
const vllmError = (status: number, message: string, extra: { param?: string | null } = {}) => ({
  error: { message, type: status >= 500 ? 'InternalServerError' : status === 404 ? 'NotFoundError' : 'BadRequestError', param: extra.param ?? null, code: status },
});
/** vLLM before 0.10: the same fields, flat, with `object: "error"`. */
const vllmLegacyError = (status: number, message: string) => ({ object: 'error', message, type: status >= 500 ? 'InternalServerError' : 'BadRequestError', param: null, code: status });
/** llama.cpp's server: `{"error":{"code","message","type"}}`. */
const llamacppError = (status: number, message: string) => ({
  error: { code: status, message, type: status === 400 ? 'invalid_request_error' : status === 404 ? 'not_found_error' : status === 503 ? 'unavailable_error' : 'server_error' },
});

const plainUsage = (prompt: number, completion: number) => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
const cachedUsage = (prompt: number, completion: number, n: number) => ({
  ...plainUsage(prompt, completion),
  prompt_tokens_details: { cached_tokens: n > 1 ? Math.min(PROMPT_CACHE, prompt) : 0 },
});

const accepts = (): Refused | null => null;

export const PERSONALITIES = {
  /** The project's scripted server as it always was: takes every shape, OpenAI's error body, usage without details. */
  scripted: {
    follows: 'no particular server: OpenAI wire format, accepts every request shape',
    refuse: accepts,
    error: openaiError(openaiType),
    usage: (prompt, completion) => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt }),
    reasoning: 'content-think',
    ignoresSchema: false,
    rateLimitHeaders: { 'retry-after-ms': '10' },
  },
  /**
   * vLLM 0.10+ (`vllm serve`): json_schema and json_object through its structured-output backend,
   * `max_tokens` and `max_completion_tokens`; `prompt_tokens_details.cached_tokens` with
   * --enable-prompt-tokens-details and prefix caching; `reasoning_content` with --reasoning-parser.
   */
  vllm: {
    follows: 'vLLM 0.10+',
    refuse: accepts,
    error: vllmError,
    usage: cachedUsage,
    reasoning: 'reasoning_content',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * vLLM 0.8/0.9 on the V1 engine with xgrammar: a schema with features xgrammar lacked was refused
   * with 400 "The provided JSON schema contains features not supported by xgrammar." in the flat
   * error body of those versions; json_object was served. Here every json_schema is refused.
   */
  'vllm-0.8-xgrammar': {
    follows: 'vLLM 0.8-0.9, V1 engine, xgrammar backend',
    refuse: (r) =>
      r.responseFormat === 'json_schema' ? { status: 400, body: vllmLegacyError(400, 'The provided JSON schema contains features not supported by xgrammar.') } : null,
    error: vllmLegacyError,
    usage: plainUsage,
    reasoning: 'reasoning_content',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * vLLM serving a model whose tokenizer its grammar backend cannot handle (a Mistral tokenizer
   * under xgrammar in 0.8): every response_format is refused, json_object included; only the plain
   * prompt is answered.
   */
  'vllm-no-grammar': {
    follows: 'vLLM 0.8, V1 engine, xgrammar with a Mistral tokenizer',
    refuse: (r) => (r.responseFormat !== null && r.responseFormat !== 'text' ? { status: 400, body: vllmLegacyError(400, 'xgrammar does not support Mistral tokenizer. Please use another structured output backend.') } : null),
    error: vllmLegacyError,
    usage: plainUsage,
    reasoning: 'none',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * Ollama 0.5+ (`/v1/chat/completions`): json_schema becomes its `format` schema, json_object
   * `format: "json"`; reads `max_tokens` and ignores unknown fields such as `max_completion_tokens`;
   * errors through its OpenAI layer as `{"error":{"message","type","param":null,"code":null}}`;
   * usage without cached tokens; thinking models' reasoning in `reasoning`.
   */
  ollama: {
    follows: 'Ollama 0.5+',
    refuse: accepts,
    error: openaiError((s) => (s === 400 ? 'invalid_request_error' : s === 404 ? 'not_found_error' : 'api_error')),
    usage: plainUsage,
    reasoning: 'reasoning',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * Ollama before 0.5 (no structured outputs): a json_schema response_format is dropped without an
   * error and the model answers as it likes (prose around the JSON); json_object is `format: "json"`.
   * Reasoning stays in the content as `<think>` blocks. Errors here in the native API's
   * `{"error":"..."}`, as a proxy in front of Ollama's native API answers.
   */
  'ollama-0.4': {
    follows: 'Ollama 0.3-0.4',
    refuse: accepts,
    error: (_status, message) => ({ error: message }),
    usage: plainUsage,
    reasoning: 'content-think',
    ignoresSchema: true,
    rateLimitHeaders: {},
  },
  /**
   * llama.cpp's llama-server (late 2024 on): json_schema (OpenAI nesting) and json_object (with an
   * optional `schema`) become a grammar; `max_tokens`, `max_completion_tokens` and `n_predict`;
   * errors `{"error":{"code","message","type"}}`; usage without cached tokens (its `timings.cache_n`
   * counts them); with --reasoning-format deepseek the reasoning goes to `reasoning_content`.
   */
  llamacpp: {
    follows: 'llama.cpp llama-server, builds from late 2024',
    refuse: accepts,
    error: llamacppError,
    usage: (prompt, completion, n) => ({ ...plainUsage(prompt, completion), timings: { cache_n: n > 1 ? PROMPT_CACHE : 0, prompt_n: prompt, predicted_n: completion } }),
    reasoning: 'reasoning_content',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * llama.cpp before PR 9527 (September 2024): a response_format other than text or json_object
   * threw in the request parser, which the server answered with 500 and type server_error.
   * --reasoning-format none leaves `<think>` in the content.
   */
  'llamacpp-2024': {
    follows: 'llama.cpp llama-server, builds before September 2024',
    refuse: (r) =>
      r.responseFormat !== null && r.responseFormat !== 'text' && r.responseFormat !== 'json_object'
        ? { status: 500, body: llamacppError(500, `response_format type must be one of "text" or "json_object", but got: ${r.responseFormat}`) }
        : null,
    error: llamacppError,
    usage: plainUsage,
    reasoning: 'content-think',
    ignoresSchema: false,
    rateLimitHeaders: {},
  },
  /**
   * OpenAI's chat completions with gpt-4o and later: strict json_schema, `max_tokens` still taken
   * (deprecated), usage with `prompt_tokens_details.cached_tokens` and `completion_tokens_details`;
   * 429s carry `retry-after` (seconds) and `x-ratelimit-*` headers.
   */
  openai: {
    follows: 'OpenAI chat completions, gpt-4o family',
    refuse: accepts,
    error: openaiError(openaiType),
    usage: (prompt, completion, n) => ({
      ...cachedUsage(prompt, completion, n),
      completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    }),
    reasoning: 'none',
    ignoresSchema: false,
    rateLimitHeaders: { 'retry-after': '1', 'x-ratelimit-remaining-requests': '0' },
  },
  /**
   * OpenAI's reasoning models (o1, o3, o4-mini, gpt-5): `max_tokens` is refused with 400
   * unsupported_parameter, a temperature other than 1 with 400 unsupported_value; reasoning tokens
   * are counted in `completion_tokens_details.reasoning_tokens` and never returned.
   */
  'openai-reasoning': {
    follows: 'OpenAI chat completions, o-series and gpt-5 models',
    refuse: (r) => {
      if (r.hasMaxTokens) {
        return {
          status: 400,
          body: openaiError(openaiType)(400, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead.", { param: 'max_tokens', code: 'unsupported_parameter' }),
        };
      }
      if (r.temperature !== undefined && r.temperature !== 1) {
        return {
          status: 400,
          body: openaiError(openaiType)(400, `Unsupported value: 'temperature' does not support ${r.temperature} with this model. Only the default (1) value is supported.`, {
            param: 'temperature',
            code: 'unsupported_value',
          }),
        };
      }
      return null;
    },
    error: openaiError(openaiType),
    usage: (prompt, completion, n) => ({ ...cachedUsage(prompt, completion + 192, n), completion_tokens_details: { reasoning_tokens: 192, audio_tokens: 0 } }),
    reasoning: 'none',
    ignoresSchema: false,
    rateLimitHeaders: { 'retry-after': '1' },
  },
  /** OpenAI's gpt-3.5-turbo: json_schema refused (400, param response_format); json_object taken. */
  'openai-gpt-3.5': {
    follows: 'OpenAI chat completions, gpt-3.5-turbo and gpt-4-turbo',
    refuse: (r) =>
      r.responseFormat === 'json_schema'
        ? { status: 400, body: openaiError(openaiType)(400, "Invalid parameter: 'response_format' of type 'json_schema' is not supported with this model.", { param: 'response_format' }) }
        : null,
    error: openaiError(openaiType),
    usage: plainUsage,
    reasoning: 'none',
    ignoresSchema: false,
    rateLimitHeaders: { 'retry-after': '1' },
  },
} satisfies Record<string, Personality>;

export type PersonalityName = keyof typeof PERSONALITIES;
