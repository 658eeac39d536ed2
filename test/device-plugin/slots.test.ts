import { gpusOfSlots, parseSlotId, preferredAllocation, slotId, slotShare, slotsOf } from '../../src/device-plugin/slots.js';

const A = 'GPU-aaaa';
const B = 'GPU-bbbb';
const C = 'GPU-cccc';
const ids = (uuid: string, ...k: number[]): string[] => k.map((i) => slotId(uuid, i));

describe('slot ids', () => {
  it('round-trips and rejects foreign ids', () => {
    expect(parseSlotId(slotId(A, 7))).toEqual({ uuid: A, index: 7 });
    expect(parseSlotId('nvidia0')).toBeUndefined();
    expect(parseSlotId('GPU-x::y')).toBeUndefined();
    expect(parseSlotId('::3')).toBeUndefined();
  });

  it('advertises N slots per GPU carrying the GPU health and NUMA node', () => {
    const slots = slotsOf([{ uuid: A, healthy: true, numaNode: 1 }, { uuid: B, healthy: false }], 3);
    expect(slots.map((s) => s.id)).toEqual([...ids(A, 0, 1, 2), ...ids(B, 0, 1, 2)]);
    expect(slots.filter((s) => !s.healthy).map((s) => s.uuid)).toEqual([B, B, B]);
    expect(slots[0]!.numaNode).toBe(1);
    expect(slots[3]!.numaNode).toBeUndefined();
  });

  it('names the GPUs behind a set of slots', () => {
    expect(gpusOfSlots([...ids(B, 1), ...ids(A, 0), ...ids(B, 2), 'bogus'])).toEqual({ uuids: [B, A], unknown: ['bogus'] });
  });
});

describe('preferredAllocation', () => {
  // Four slots per GPU (25 % each), as the kubelet lists the free ones.
  const ask = (available: string[], size: number, placement: 'binpack' | 'spread', more: { mustInclude?: string[]; freeShare?: (uuid: string) => number } = {}) =>
    preferredAllocation({ available, mustInclude: more.mustInclude ?? [], size, placement, slotPercent: 25, ...(more.freeShare ? { freeShare: more.freeShare } : {}) });

  it('binpack puts the whole request on the fullest GPU that has room, so an empty GPU is taken last', () => {
    const available = [...ids(A, 2, 3), ...ids(B, 0, 1, 2, 3), ...ids(C, 1, 2, 3)];
    expect(ask(available, 2, 'binpack')).toEqual(ids(A, 2, 3));
    expect(ask(available, 3, 'binpack')).toEqual(ids(C, 1, 2, 3));
    expect(ask(available, 4, 'binpack')).toEqual(ids(B, 0, 1, 2, 3));
  });

  it('spread puts it on the GPU with the most free slots', () => {
    const available = [...ids(A, 0, 1), ...ids(B, 0, 1, 2, 3), ...ids(C, 1, 2, 3)];
    expect(ask(available, 2, 'spread')).toEqual(ids(B, 0, 1));
  });

  it('counts the node agent\'s share budget as the room, not only the free slots', () => {
    // A's free slots promise 50 %, but a live share rise there leaves 20 %: binpack skips it.
    const available = [...ids(A, 2, 3), ...ids(C, 1, 2, 3)];
    const freeShare = (uuid: string) => (uuid === A ? 20 : 75);
    expect(ask(available, 2, 'binpack', { freeShare })).toEqual(ids(C, 1, 2));
    expect(ask(available, 2, 'binpack')).toEqual(ids(A, 2, 3));
    // Spread ranks by the same room: C (75 %) before A (20 %), though each has slots for it.
    expect(ask([...ids(A, 0, 1, 2, 3), ...ids(C, 1, 2, 3)], 2, 'spread', { freeShare: (uuid) => (uuid === A ? 20 : 75) })).toEqual(ids(C, 1, 2));
  });

  it('takes the GPU with the most share free when no budget holds the request, so its Allocate is clamped least', () => {
    const available = [...ids(A, 2, 3), ...ids(C, 2, 3)];
    expect(ask(available, 2, 'binpack', { freeShare: (uuid) => (uuid === A ? 10 : 30) })).toEqual(ids(C, 2, 3));
  });

  it('breaks ties by slot order and takes the lowest slots', () => {
    const available = [...ids(B, 3, 1), ...ids(A, 2, 0)];
    expect(ask(available, 1, 'spread')).toEqual(ids(A, 0));
    expect(ask(available, 1, 'binpack')).toEqual(ids(A, 0));
  });

  it('never splits a request that one GPU can hold', () => {
    const available = [...ids(A, 0, 1, 2), ...ids(B, 0, 1)];
    expect(ask(available, 3, 'spread')).toEqual(ids(A, 0, 1, 2));
    expect(ask(available, 3, 'binpack')).toEqual(ids(A, 0, 1, 2));
  });

  it('keeps must-include slots and fills from their GPU', () => {
    const available = [...ids(A, 0, 1, 2, 3), ...ids(B, 0, 1, 2)];
    for (const placement of ['spread', 'binpack'] as const) {
      expect(ask(available, 3, placement, { mustInclude: ids(B, 2) }).sort()).toEqual(ids(B, 0, 1, 2).sort());
    }
  });

  it('spreads over the freest GPUs only when no single GPU can hold the request', () => {
    const available = [...ids(A, 0, 1), ...ids(B, 0, 1, 2), ...ids(C, 0)];
    for (const placement of ['spread', 'binpack'] as const) {
      expect(ask(available, 5, placement)).toEqual([...ids(B, 0, 1, 2), ...ids(A, 0, 1)]);
    }
  });

  it('returns exactly the must-include set when it already has the size', () => {
    expect(ask(ids(A, 0, 1), 1, 'binpack', { mustInclude: ids(A, 1) })).toEqual(ids(A, 1));
  });
});

describe('the share of an allocation before its pod is known', () => {
  const memory = (uuid: string): bigint => (uuid === C ? 0n : 16n << 30n);

  it('is one slot\'s part of the GPU per slot, in time and memory', () => {
    expect(slotShare(ids(A, 0), 10, memory)).toEqual({ gpuCores: 10, memoryBytes: (16n << 30n) / 10n });
    expect(slotShare(ids(A, 0, 1, 2), 4, memory)).toEqual({ gpuCores: 75, memoryBytes: 12n << 30n });
  });

  it('never exceeds one GPU\'s time, and is at least 1 %', () => {
    expect(slotShare([...ids(A, 0, 1), ...ids(B, 0, 1)], 2, memory).gpuCores).toBe(100);
    expect(slotShare(ids(A, 0), 200, memory).gpuCores).toBe(1);
  });

  it('sets no memory quota when a GPU\'s size is unknown', () => {
    expect(slotShare([...ids(A, 0), ...ids(C, 0)], 4, memory)).toEqual({ gpuCores: 50, memoryBytes: 0n });
  });
});
