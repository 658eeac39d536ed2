// The keyed work queue: a key waits once however often it is added, a key added while it runs
// runs once more afterwards, failures come back after a backoff, permanent ones are dropped.
import { describe, expect, it } from '@jest/globals';
import { createLogger } from '../../../src/common/logger.js';
import { WorkQueue } from '../../../src/policy-server/k8s/work-queue.js';

const logger = createLogger('test', 'silent');

describe('WorkQueue', () => {
  it('de-duplicates waiting keys and re-runs a key added while it is processed, once', async () => {
    const runs: string[] = [];
    let release: (() => void) | undefined;
    const q = new WorkQueue<string>({
      name: 't',
      concurrency: 1,
      logger,
      handle: async (k) => {
        runs.push(k);
        if (k === 'a' && runs.length === 1) await new Promise<void>((r) => (release = r));
      },
    });
    q.add('a');
    q.add('b');
    q.add('b');
    q.add('a');
    q.add('a');
    release!();
    await q.idle();
    expect(runs).toEqual(['a', 'b', 'a']);
  });

  it('retries a failed key after a backoff and drops a permanent failure', async () => {
    let calls = 0;
    const q = new WorkQueue<string>({
      name: 't',
      concurrency: 2,
      logger,
      backoff: { baseMs: 5, maxMs: 10 },
      isPermanent: (err) => (err as Error).message === 'permanent',
      handle: async (k) => {
        calls++;
        if (k === 'flaky' && calls < 3) throw new Error('transient');
        if (k === 'never') throw new Error('permanent');
      },
    });
    q.add('flaky');
    await q.idle();
    expect(calls).toBe(3);
    q.add('never');
    await q.idle();
    expect(calls).toBe(4);
  });
});
