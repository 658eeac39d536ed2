// The typed failure of a selector. decide.ts falls back on any error; the code says why in the
// decision's fallbackReason, the LLM status and the metrics. A failure after the server answered
// still cost tokens, so it carries the completion's usage for the budget and the token counters.
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
  | 'invalid-action'
  | 'budget';

/** Tokens one completion used; `cached` is the part of `prompt` the server served from its prefix cache. */
export interface TokenUsage {
  prompt: number;
  completion: number;
  cached: number;
}

export class SelectorError extends Error {
  override readonly name = 'SelectorError';
  constructor(
    readonly code: SelectorErrorCode,
    message: string,
    options?: { cause?: unknown; usage?: TokenUsage },
  ) {
    super(`${code}: ${message}`, options);
    this.usage = options?.usage;
  }
  /** What the failed call cost, when the server answered. */
  usage: TokenUsage | undefined;
}
