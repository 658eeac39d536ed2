// Retries for API-server calls: 409 (a concurrent writer), 429 (throttled) and 5xx are worth
// another try after a jittered exponential backoff; anything else fails at once, as an
// UpstreamError that carries the status and the server's message.
import { UpstreamError } from '../../common/errors.js';
import { statusOf } from '../../common/k8s.js';

export interface RetryOptions {
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry, for logs and metrics. */
  onRetry?: (err: UpstreamError, attempt: number) => void;
}

export const DEFAULT_RETRY: RetryOptions = { attempts: 5, baseDelayMs: 100, maxDelayMs: 3_000 };

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** The Status message the API server sent with an error, if any. */
function serverMessage(err: unknown): string {
  const body = (err as { body?: unknown }).body;
  if (typeof body === 'string') {
    try {
      const parsed = JSON.parse(body) as { message?: unknown };
      if (typeof parsed.message === 'string') return parsed.message;
    } catch {
      return body.slice(0, 300);
    }
  } else if (body && typeof body === 'object' && typeof (body as { message?: unknown }).message === 'string') {
    return (body as { message: string }).message;
  }
  return err instanceof Error ? err.message.split('\n')[0]! : String(err);
}

export function toUpstreamError(what: string, err: unknown): UpstreamError {
  if (err instanceof UpstreamError) return err;
  // A call aborted by its signal: fetch rejects with the signal's reason (the lease ending) or a
  // TimeoutError; either may come wrapped in client-node's error as its cause.
  const cause = (err as { cause?: unknown }).cause;
  if (cause instanceof UpstreamError) return cause;
  if (err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError')) {
    return new UpstreamError('kube-apiserver', `${what}: no answer in time (${err.message})`, undefined, { cause: err });
  }
  const status = statusOf(err);
  return new UpstreamError('kube-apiserver', `${what}: ${status ? `HTTP ${status}: ` : ''}${serverMessage(err)}`, status, { cause: err });
}

/** Run `fn` until it succeeds, fails with a status not worth retrying, or runs out of attempts. */
export async function withRetry<T>(what: string, fn: () => Promise<T>, options: RetryOptions = DEFAULT_RETRY): Promise<T> {
  const sleep = options.sleep ?? realSleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (raw) {
      const err = toUpstreamError(what, raw);
      if (!err.retryable || attempt >= options.attempts) throw err;
      options.onRetry?.(err, attempt);
      const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (attempt - 1));
      await sleep(cap / 2 + Math.random() * (cap / 2));
    }
  }
}
