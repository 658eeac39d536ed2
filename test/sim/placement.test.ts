// Placement on whole GPUs: slot rounding, binpack and spread choices, clamped share changes, and
// the GPUs a cluster bills, on hand-made cases.
import { describe, expect, it } from '@jest/globals';
import { chooseGpu, GpuPool, occupancy, resizeOnGpu, type ClusterShape } from '../../src/sim/placement.js';

const shape = (over: Partial<ClusterShape> = {}): ClusterShape => ({ gpuNodes: 1, gpusPerNode: 2, slotPercent: 10, placement: 'binpack', ...over });

describe('placement', () => {
  it('rounds a share up to whole slots', () => {
    expect(occupancy(40, 10)).toBe(40);
    expect(occupancy(35, 10)).toBe(40);
    expect(occupancy(1, 10)).toBe(10);
    expect(occupancy(30, 25)).toBe(50);
    expect(occupancy(100, 10)).toBe(100);
  });

  it('binpacks onto the fullest GPU with room, spreads onto the freest', () => {
    // GPU 0 at 60 %, GPU 1 at 20 %, two more empty GPUs.
    expect(chooseGpu([60, 20], 4, 30, 'binpack')).toBe(0);
    expect(chooseGpu([60, 20], 4, 50, 'binpack')).toBe(1);
    expect(chooseGpu([60, 90], 4, 50, 'binpack')).toBe(2);
    expect(chooseGpu([60, 20], 4, 30, 'spread')).toBe(2);
    expect(chooseGpu([60, 20], 2, 30, 'spread')).toBe(1);
    // Ties go to the lowest GPU; an emptied GPU counts as empty.
    expect(chooseGpu([50, 50], 2, 30, 'binpack')).toBe(0);
    expect(chooseGpu([0, 50], 2, 30, 'spread')).toBe(0);
    expect(chooseGpu([90, 80], 2, 30, 'binpack')).toBe(-1);
    expect(chooseGpu([90, 80], Infinity, 30, 'binpack')).toBe(2);
  });

  it('puts three replicas at 40 % on two GPUs, a fourth beside the third, and leaves a fifth Pending on a 2-GPU cluster until room frees up', () => {
    const pool = new GpuPool(shape());
    expect([pool.place(40), pool.place(40), pool.place(40)]).toEqual([0, 0, 1]);
    expect(pool.gpusInUse).toBe(2);
    expect(pool.used).toEqual([80, 40]);
    expect(pool.place(40)).toBe(1);
    expect(pool.place(40)).toBe(-1);
    expect(pool.idleGpus).toBe(0);
    pool.release(0, 40);
    expect(pool.place(40)).toBe(0);
    expect(pool.used).toEqual([80, 80]);
  });

  it('bills a GPU while any replica is on it and stops when the last one leaves', () => {
    const pool = new GpuPool(shape({ gpuNodes: 'unlimited', placement: 'spread' }));
    expect([pool.place(10), pool.place(10), pool.place(10)]).toEqual([0, 1, 2]);
    expect(pool.gpusInUse).toBe(3);
    pool.release(1, 10);
    expect(pool.gpusInUse).toBe(2);
    expect(pool.idleGpus).toBe(Infinity);
    // Spread takes the emptied GPU 1 before a new one.
    expect(pool.place(10)).toBe(1);
  });

  it('clamps a share rise to what the GPU has free, in whole slots, and never below what the replica had', () => {
    expect(resizeOnGpu(80, 40, 60, 10)).toEqual({ share: 60, occupancy: 60 });
    expect(resizeOnGpu(90, 40, 80, 10)).toEqual({ share: 50, occupancy: 50 });
    expect(resizeOnGpu(100, 40, 100, 10)).toEqual({ share: 40, occupancy: 40 });
    expect(resizeOnGpu(100, 40, 25, 10)).toEqual({ share: 25, occupancy: 30 });
    const pool = new GpuPool(shape({ gpusPerNode: 1 }));
    pool.place(40);
    pool.place(40);
    expect(pool.resize(0, 40, 70)).toEqual({ gpu: 0, share: 60, occupancy: 60 });
    expect(pool.used).toEqual([100]);
  });

  it('moves a replica that outgrows its GPU to one with room when the cluster is unlimited, so none runs clamped', () => {
    const pool = new GpuPool(shape({ gpuNodes: 'unlimited' }));
    pool.place(40);
    pool.place(40);
    expect(pool.resize(0, 40, 70)).toEqual({ gpu: 1, share: 70, occupancy: 70 });
    expect(pool.used).toEqual([40, 70]);
    expect(pool.gpusInUse).toBe(2);
  });
});
