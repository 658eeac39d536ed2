import { detectBottleneck } from '../../src/policy/bottleneck.js';
import { observation, pipeline } from './fixtures.js';

describe('detectBottleneck', () => {
  it('names the stage with the highest offered load over capacity', () => {
    const obs = observation([
      { arrival: 100, perReplica: 80, replicas: 2 },
      { arrival: 100, perReplica: 30, replicas: 4, gpuCores: 50 },
      { arrival: 100, perReplica: 200, replicas: 1 },
    ]);
    const bn = detectBottleneck(pipeline(), obs);
    expect(bn.stage).toBe(1);
    expect(bn.pressure[1]).toBeCloseTo(100 / 120 + 0, 5);
    expect(bn.needed).toEqual([2, 5, 1]);
  });

  it('moves with load and allocation', () => {
    const at = (arrival: number, inferReplicas: number) =>
      detectBottleneck(
        pipeline(),
        observation([
          { arrival, perReplica: 50, replicas: 2 },
          { arrival, perReplica: 30, replicas: inferReplicas, gpuCores: 50 },
          { arrival, perReplica: 100, replicas: 1 },
        ]),
      ).stage;
    expect(at(60, 2)).toBe(1);
    expect(at(60, 6)).toBe(0);
  });

  it('counts queue growth as load, so an upstream-starved view does not hide a backlog', () => {
    const obs = observation([
      { arrival: 50, perReplica: 60, replicas: 1 },
      { arrival: 50, perReplica: 60, replicas: 1, gpuCores: 50, queueGrowth: 20 },
      { arrival: 50, perReplica: 60, replicas: 1 },
    ]);
    expect(detectBottleneck(pipeline(), obs).stage).toBe(1);
  });

  it('falls back to utilization when capacity cannot be measured, and says null with no metrics', () => {
    const obs = observation([
      { arrival: 10, perReplica: 60, replicas: 1 },
      { arrival: 10, perReplica: 60, replicas: 1 },
      { arrival: 10, perReplica: 60, replicas: 1 },
    ]);
    obs.stages = obs.stages.map((m, i) => ({ ...m, capacityPerReplica: null, utilization: [0.2, 0.1, 0.9][i]!, throughput: null }));
    expect(detectBottleneck(pipeline(), obs).stage).toBe(2);
    obs.stages = obs.stages.map((m) => ({ ...m, arrivalRate: null, utilization: null }));
    expect(detectBottleneck(pipeline(), obs).stage).toBeNull();
  });
});
