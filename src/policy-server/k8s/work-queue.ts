// A keyed, de-duplicating work queue, as controller-runtime's: a key waits at most once however
// often it is added; a key being processed when it is added again runs once more afterwards (the
// latest level wins, not each event); a failed key comes back after a per-key exponential backoff.
// The handler reconciles a key to the level it reads, so dropped or merged events lose nothing.
import type { Logger } from '../../common/logger.js';
import { errorMessage } from '../../common/errors.js';

export interface WorkQueueOptions<K> {
  name: string;
  handle: (key: K) => Promise<void>;
  /** Keys handled at the same time. */
  concurrency: number;
  logger: Logger;
  backoff?: { baseMs: number; maxMs: number };
  /** Errors for which a retry cannot help (e.g. no longer the leader): dropped, not retried. */
  isPermanent?: (err: unknown) => boolean;
}

export class WorkQueue<K> {
  private readonly queue: K[] = [];
  private readonly queued = new Set<K>();
  private readonly processing = new Set<K>();
  private readonly dirty = new Set<K>();
  private readonly failures = new Map<K, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private active = 0;
  private idleWaiters: (() => void)[] = [];
  private stopped = false;

  constructor(private readonly o: WorkQueueOptions<K>) {}

  get length(): number {
    return this.queue.length;
  }

  add(key: K): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.pump();
  }

  /** Resolves once nothing is queued, running or waiting for a retry. */
  idle(): Promise<void> {
    if (this.queue.length === 0 && this.active === 0 && this.timers.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    this.queue.length = 0;
    this.queued.clear();
    this.checkIdle();
  }

  private pump(): void {
    while (this.active < this.o.concurrency && this.queue.length > 0) {
      const key = this.queue.shift()!;
      this.queued.delete(key);
      this.processing.add(key);
      this.active++;
      void this.run(key);
    }
  }

  private async run(key: K): Promise<void> {
    try {
      await this.o.handle(key);
      this.failures.delete(key);
    } catch (err) {
      if (this.o.isPermanent?.(err)) {
        this.failures.delete(key);
      } else {
        const n = (this.failures.get(key) ?? 0) + 1;
        this.failures.set(key, n);
        const { baseMs, maxMs } = this.o.backoff ?? { baseMs: 500, maxMs: 60_000 };
        const delay = Math.min(maxMs, baseMs * 2 ** (n - 1));
        this.o.logger.warn({ queue: this.o.name, key: String(key), err: errorMessage(err), failures: n, retryInMs: delay }, 'reconcile failed; retrying');
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.add(key);
          this.checkIdle();
        }, delay);
        this.timers.add(t);
      }
    } finally {
      this.processing.delete(key);
      this.active--;
      if (this.dirty.delete(key)) this.add(key);
      this.pump();
      this.checkIdle();
    }
  }

  private checkIdle(): void {
    if (this.queue.length === 0 && this.active === 0 && this.timers.size === 0) this.idleWaiters.splice(0).forEach((w) => w());
  }
}
