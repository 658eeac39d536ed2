// The LLM selectors of one server under one limit of calls in flight: a decision waits for a
// slot, in arrival order, until its deadline and then leaves the choice to the bandit; when the
// queue is already full (maxWaiting) the bandit decides at once. A burst of ticks (a new holder
// ticks all its pipelines at once) then costs seconds instead of a deadline per tick, waits here
// as cheap promises instead of as open connections to the model server, and no call is sent for
// a decision that has already given up on it.
import type { Selection, SelectionInput, Selector } from '../types.js';
import { SelectorError } from './errors.js';

export interface CallLimiterOptions {
  /** Calls in flight at most. */
  limit: number;
  /** Decisions waiting for a slot at most; one more is refused at once. */
  maxWaiting: number;
  /** After each wait for a slot, how long it was (ms; also for a wait cut short by the deadline). */
  onWait?: (waitedMs: number) => void;
  /** Whenever the number of decisions waiting changes. */
  onQueue?: (waiting: number) => void;
  now?: () => number;
}

export class CallLimiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly now: () => number;

  constructor(private readonly o: CallLimiterOptions) {
    this.now = o.now ?? (() => performance.now());
  }

  /** Resolves with a release function once a slot is free; rejects when `signal` aborts first. */
  async acquire(signal: AbortSignal): Promise<() => void> {
    const started = this.now();
    if (this.active >= this.o.limit && this.waiting.length >= this.o.maxWaiting) {
      throw new SelectorError('timeout', `the LLM call queue is full (${this.waiting.length} decisions waiting for ${this.o.limit} slots, SAIR_LLM_MAX_CONCURRENT)`);
    }
    if (this.active >= this.o.limit) {
      // Resolved by a release that hands its slot over (active stays as it is), so no caller that
      // arrives meanwhile can take it first.
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const at = this.waiting.indexOf(go);
          if (at >= 0) this.waiting.splice(at, 1);
          this.o.onQueue?.(this.waiting.length);
          this.o.onWait?.(this.now() - started);
          reject(new SelectorError('timeout', `no LLM call slot came free before the decision deadline (${this.o.limit} calls in flight at most, SAIR_LLM_MAX_CONCURRENT)`));
        };
        const go = () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        };
        if (signal.aborted) return onAbort();
        this.waiting.push(go);
        this.o.onQueue?.(this.waiting.length);
        signal.addEventListener('abort', onAbort, { once: true });
      });
    } else {
      this.active++;
    }
    this.o.onWait?.(this.now() - started);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) {
        this.o.onQueue?.(this.waiting.length);
        next();
      } else {
        this.active--;
      }
    };
  }
}

/** The selector, each call holding one of the limiter's slots. */
export function withLimit<S extends Selector>(inner: S, limiter: CallLimiter): S {
  return {
    ...inner,
    async choose(input: SelectionInput): Promise<Selection> {
      const release = await limiter.acquire(input.signal);
      try {
        return await inner.choose(input);
      } finally {
        release();
      }
    },
  };
}
