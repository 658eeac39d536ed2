// Floors lift a chosen candidate; they never decide by themselves what else happens, and every
// change says who produced it.
import type { BottleneckResult } from '../../src/policy/bottleneck.js';
import { computeFloors, liftToFloors, unmetFloors, type Floor } from '../../src/policy/floors.js';
import { newWindowState } from '../../src/policy/normalize.js';
import { observation, pipeline } from './fixtures.js';

const spec = pipeline();
const obs = observation(
  [{ arrival: 40, perReplica: 80, replicas: 2 }, { arrival: 40, perReplica: 30, replicas: 2, gpuCores: 50 }, { arrival: 40, perReplica: 100, replicas: 2 }],
  { p99Ms: 900, sloViolation: 0.2 },
);

describe('floors', () => {
  it('are what a breach of the bottleneck needs: share first, then replicas for what share cannot cover', () => {
    // At 50 %, 2.5x its capacity: a whole GPU halves that to 1.25, still past the target, so ceil(2 x 1.25 / 0.7) = 4 replicas.
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 2.5, 0.2], needed: [1, 5, 1], drainPressure: [0.3, 2.5, 0.2] };
    const floors = computeFloors(spec, obs, bn, newWindowState(), { breach: true, anticipation: null });
    expect(floors.map((f) => [f.stage, f.kind, f.value])).toEqual([
      [1, 'gpuCores', 100],
      [1, 'replicas', 4],
    ]);
    // A share raise that brings the stage near its target needs no replicas too.
    const near: BottleneckResult = { ...bn, pressure: [0.3, 1.5, 0.2], drainPressure: [0.3, 1.5, 0.2] };
    expect(computeFloors(spec, obs, near, newWindowState(), { breach: true, anticipation: null }).map((f) => f.kind)).toEqual(['gpuCores']);
    expect(floors.every((f) => f.why.startsWith('SLO breach'))).toBe(true);
  });

  it('ask a stage the node agents already clamp for replicas, not for a share they would clamp too', () => {
    // Stage 1 asked 70 % and runs at 50 %: its GPU has no room. At 2.5x its capacity at 50 %, ceil(2 x 2.5 / 0.7) = 8 replicas.
    const clamped = { ...obs, allocation: obs.allocation.map((a, i) => (i === 1 ? { ...a, gpuCoresAsked: 70, clampedReplicas: 1 } : a)) };
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 2.5, 0.2], needed: [1, 5, 1], drainPressure: [0.3, 2.5, 0.2] };
    const floors = computeFloors(spec, clamped, bn, newWindowState(), { breach: true, anticipation: null });
    expect(floors.map((f) => [f.stage, f.kind, f.value])).toEqual([[1, 'replicas', 8]]);
  });

  it('are none on a calm tick', () => {
    const bn: BottleneckResult = { stage: 1, pressure: [0.3, 0.5, 0.2], needed: [1, 2, 1] };
    expect(computeFloors(spec, { ...obs, p99Ms: 200, sloViolation: 0 }, bn, newWindowState(), { breach: false, anticipation: null })).toEqual([]);
  });

  const floors: Floor[] = [{ stage: 1, kind: 'replicas', value: 4, why: 'saturation: stage 1 to at least 4 replicas' }];

  it('lift hold to the floor, as the floor\'s change', () => {
    expect(liftToFloors([], floors, obs)).toEqual([{ kind: 'replicas', stage: 1, replicas: 4, urgent: true, source: 'floor' }]);
  });

  it('leave a selector\'s change that reaches the floor the selector\'s (urgent, so no cooldown holds it)', () => {
    expect(liftToFloors([{ kind: 'replicas', stage: 1, replicas: 6 }], floors, obs)).toEqual([{ kind: 'replicas', stage: 1, replicas: 6, urgent: true, source: 'selector' }]);
  });

  it('raise a selector\'s smaller change to the floor, as the floor\'s, and keep its other changes its own', () => {
    const lifted = liftToFloors(
      [
        { kind: 'replicas', stage: 1, replicas: 3 },
        { kind: 'gpuCores', stage: 0, gpuCores: 40 },
      ],
      floors,
      obs,
    );
    expect(lifted).toEqual([
      { kind: 'replicas', stage: 1, replicas: 4, urgent: true, source: 'floor' },
      { kind: 'gpuCores', stage: 0, gpuCores: 40, urgent: false, source: 'selector' },
    ]);
  });

  it('that the allocation already meets bind nothing', () => {
    const met: Floor[] = [{ stage: 1, kind: 'replicas', value: 2, why: 'x' }];
    expect(unmetFloors(met, obs)).toEqual([]);
    expect(liftToFloors([], met, obs)).toEqual([]);
  });
});
