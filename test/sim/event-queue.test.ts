import { describe, expect, it } from '@jest/globals';
import { EventQueue } from '../../src/sim/event-queue.js';
import { Rng } from '../../src/sim/rng.js';

describe('EventQueue', () => {
  it('pops events in time order, ties in insertion order, across growth', () => {
    const q = new EventQueue<string>(4);
    const rng = new Rng(11);
    const pushed: { t: number; i: number }[] = [];
    for (let i = 0; i < 5000; i++) {
      const t = Math.floor(rng.uniform() * 500);
      pushed.push({ t, i });
      q.push(t, i % 7, i, `e${i}`);
    }
    const expected = [...pushed].sort((a, b) => a.t - b.t || a.i - b.i);
    const popped: number[] = [];
    while (q.pop()) {
      popped.push(q.poppedArg);
      expect(q.poppedObj).toBe(`e${q.poppedArg}`);
      expect(q.poppedKind).toBe(q.poppedArg % 7);
    }
    expect(popped).toEqual(expected.map((e) => e.i));
    expect(q.size).toBe(0);
    expect(q.peekTime()).toBe(Infinity);
  });

  it('interleaves pushes and pops correctly', () => {
    const q = new EventQueue<null>(2);
    q.push(10, 0, 1, null);
    q.push(5, 0, 2, null);
    expect(q.pop()).toBe(true);
    expect(q.poppedTime).toBe(5);
    q.push(7, 0, 3, null);
    q.push(10, 0, 4, null);
    const order: number[] = [];
    while (q.pop()) order.push(q.poppedArg);
    expect(order).toEqual([3, 1, 4]);
  });
});
