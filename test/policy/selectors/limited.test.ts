// The server-wide limit of LLM calls in flight: calls beyond it wait in arrival order, and a
// decision whose deadline passes while it waits goes to the bandit without calling the LLM.
import { describe, expect, it } from '@jest/globals';
import { SelectorError } from '../../../src/policy/selectors/errors.js';
import { CallLimiter, withLimit } from '../../../src/policy/selectors/limited.js';
import type { Selection, SelectionInput, Selector } from '../../../src/policy/types.js';

/** A selector whose calls stay open until the test ends them, in the order they were made. */
function gated() {
  const open: { id: string; end: () => void }[] = [];
  const selector: Selector = {
    name: 'llm',
    choose: (input) =>
      new Promise<Selection>((resolve) => open.push({ id: input.pipelineId, end: () => resolve({ actionKey: 'hold', reason: input.pipelineId } as unknown as Selection) })),
  };
  return { selector, open };
}

const input = (pipelineId: string, signal = new AbortController().signal) => ({ pipelineId, signal }) as unknown as SelectionInput;
const settle = () => new Promise((r) => setImmediate(r));

describe('withLimit', () => {
  it('refuses at once when the queue is full, so the bandit decides without waiting', async () => {
    const g = gated();
    const limited = withLimit(g.selector, new CallLimiter({ limit: 1, maxWaiting: 1 }));
    const calls = [limited.choose(input('a')), limited.choose(input('b'))];
    await expect(limited.choose(input('c'))).rejects.toEqual(expect.objectContaining({ code: 'timeout', message: expect.stringContaining('the LLM call queue is full (1 decisions waiting for 1 slots') }));
    g.open[0]!.end();
    await settle();
    g.open[1]!.end();
    await Promise.all(calls);
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b']);
  });

  it('keeps at most the limit in flight and lets the others in, in arrival order, as calls end', async () => {
    const waits: number[] = [];
    const queue: number[] = [];
    const g = gated();
    const limited = withLimit(g.selector, new CallLimiter({ limit: 2, maxWaiting: 2, onWait: (ms) => waits.push(ms), onQueue: (n) => queue.push(n) }));
    const calls = ['a', 'b', 'c', 'd'].map((id) => limited.choose(input(id)));
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b']);
    g.open[1]!.end();
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b', 'c']);
    g.open[0]!.end();
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b', 'c', 'd']);
    g.open[2]!.end();
    g.open[3]!.end();
    expect((await Promise.all(calls)).map((s) => (s as unknown as { reason: string }).reason)).toEqual(['a', 'b', 'c', 'd']);
    expect(waits).toHaveLength(4);
    expect(queue).toEqual([1, 2, 1, 0]);
  });

  it('a decision whose deadline passes while it waits gives up without calling the LLM', async () => {
    const g = gated();
    const limited = withLimit(g.selector, new CallLimiter({ limit: 1, maxWaiting: 4 }));
    const first = limited.choose(input('a'));
    const deadline = new AbortController();
    const late = limited.choose(input('b', deadline.signal));
    await settle();
    deadline.abort(new Error('decision deadline of 12000 ms reached'));
    await expect(late).rejects.toEqual(expect.objectContaining({ code: 'timeout', message: expect.stringContaining('no LLM call slot came free') }));
    await expect(late).rejects.toBeInstanceOf(SelectorError);
    g.open[0]!.end();
    await first;
    // The next one gets the slot the abandoned one would have had.
    const next = limited.choose(input('c'));
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'c']);
    g.open[1]!.end();
    await next;
  });

  it('a decision already past its deadline when it asks leaves the others in the queue, and a freed slot goes to the first waiting', async () => {
    const g = gated();
    const limiter = new CallLimiter({ limit: 1, maxWaiting: 4 });
    const limited = withLimit(g.selector, limiter);
    const first = limited.choose(input('a'));
    const second = limited.choose(input('b'));
    const gone = new AbortController();
    gone.abort(new Error('decision deadline reached'));
    await expect(limited.choose(input('late', gone.signal))).rejects.toEqual(expect.objectContaining({ code: 'timeout' }));
    g.open[0]!.end();
    await first;
    // Asked in the same turn as the slot was handed over: it waits behind b instead of taking the slot.
    const third = limited.choose(input('c'));
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b']);
    g.open[1]!.end();
    await second;
    await settle();
    expect(g.open.map((c) => c.id)).toEqual(['a', 'b', 'c']);
    g.open[2]!.end();
    await third;
  });
});
