import { TUNING } from '../../src/policy/tuning.js';
import { detectBottleneck, headroomAt, newCapacityMemory, rememberCapacity, stageHeadroom, surgeFactor } from '../../src/policy/bottleneck.js';
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
    // CPU stages (a replica costs under 5 % of a GPU-hour here) are sized at a third of the utilization.
    expect(bn.needed).toEqual([6, 5, 3]);
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

describe('detectBottleneck with batch service-time data', () => {
  // image-classification's shape: preprocess 6 ms/item on CPU, a batching GPU model with
  // t(b) = 4 + 0.8b ms at a full GPU (maxBatch 32) at a 40 % share, postprocess 2 ms/item.
  const spec = () => {
    const p = pipeline();
    p.stages = p.stages.map((s, i) => ({ ...s, maxBatch: [1, 32, 1][i]! }));
    return p;
  };
  const gpuMs = (b: number) => 4 + 0.8 * b;
  /** One window at 100 req/s: the GPU stage runs batches of `b` at `gpuCores` percent. */
  function window(b: number, gpuCores = 40, time = 0) {
    const share = gpuCores / 100;
    const busy = ((100 / b) * gpuMs(b)) / share / 1000;
    const obs = observation(
      [
        { arrival: 100, perReplica: 1000 / 6, replicas: 1 },
        { arrival: 100, perReplica: 100 / busy, replicas: 1, gpuCores },
        { arrival: 100, perReplica: 500, replicas: 1 },
      ],
      { time },
    );
    obs.stages[0] = { ...obs.stages[0]!, batchSize: 1, batchServiceMs: 6 };
    obs.stages[1] = { ...obs.stages[1]!, batchSize: b, batchServiceMs: gpuMs(b) / share };
    obs.stages[2] = { ...obs.stages[2]!, batchSize: 1, batchServiceMs: 2 };
    return obs;
  }

  it('without a model, small batches make the GPU stage look like the bottleneck (the old error)', () => {
    const bn = detectBottleneck(spec(), window(1.6));
    expect(bn.stage).toBe(1);
  });

  it('with the model, sizes the GPU stage at full batches and names the CPU stage', () => {
    const mem = newCapacityMemory();
    [2.1, 1.8, 1.6, 1.7].forEach((b, i) => rememberCapacity(mem, window(b, 40, i * 15_000)));
    const obs = window(1.6, 40, 60_000);
    rememberCapacity(mem, obs);
    const bn = detectBottleneck(spec(), obs, mem);
    expect(bn.stage).toBe(0);
    // 32 items per (4 + 25.6) ms at a full GPU, 40 % of it: 432 items/s.
    expect(bn.pressure[1]).toBeCloseTo(100 / ((1000 * 32) / gpuMs(32) * 0.4), 3);
    expect(bn.pressure[0]).toBeCloseTo(0.6, 3);
  });

  it('falls back to the measured capacity where the stage has no maxBatch', () => {
    const mem = newCapacityMemory();
    [2.1, 1.8, 1.6, 1.7].forEach((b, i) => rememberCapacity(mem, window(b, 40, i * 15_000)));
    expect(detectBottleneck(pipeline(), window(1.6, 40, 60_000), mem).stage).toBe(1);
  });

  it('learns at a full GPU across shares, and skips windows that span a share change', () => {
    const mem = newCapacityMemory();
    [2.1, 1.8, 1.6].forEach((b, i) => rememberCapacity(mem, window(b, 40, i * 15_000)));
    const learnt = mem.service[1]!.w;
    // The share goes to 80 %: the first window at the new share may hold batches at the old one.
    rememberCapacity(mem, window(1.4, 80, 45_000));
    expect(mem.service[1]!.w).toBe(learnt);
    rememberCapacity(mem, window(1.3, 80, 60_000));
    expect(mem.service[1]!.w).toBe(learnt);
    rememberCapacity(mem, window(1.3, 80, 75_000));
    expect(mem.service[1]!.w).toBeGreaterThan(learnt);
    const bn = detectBottleneck(spec(), window(1.3, 80, 75_000), mem);
    expect(bn.pressure[1]).toBeCloseTo(100 / ((1000 * 32) / gpuMs(32) * 0.8), 3);
  });

});

describe('detectBottleneck tie-break', () => {
  it('prefers the stage whose queue grows when offered load over capacity is equal', () => {
    const obs = observation(
      [
        { arrival: 50, perReplica: 60, replicas: 1, queueGrowth: 0 },
        { arrival: 40, perReplica: 60, replicas: 1, gpuCores: 50, queueGrowth: 10 },
        { arrival: 40, perReplica: 200, replicas: 1, queueGrowth: 0 },
      ],
      { arrivalRate: 50 },
    );
    const bn = detectBottleneck(pipeline(), obs);
    expect(bn.pressure[0]).toBeCloseTo(bn.pressure[1]!, 9);
    expect(bn.stage).toBe(1);
  });
});

describe('backlog and headroom', () => {
  it('counts the queued backlog, drained within TUNING.backlogDrainS, in drainPressure', () => {
    // Stage 0 serves 60/s against 100/s offered: its queue holds 40 x 30 = 1,200 items and grows 40/s.
    const obs = observation([
      { arrival: 100, perReplica: 30, replicas: 2 },
      { arrival: 100, perReplica: 300, replicas: 1, gpuCores: 50 },
      { arrival: 100, perReplica: 200, replicas: 1 },
    ]);
    const bn = detectBottleneck(pipeline(), obs);
    expect(bn.pressure[0]).toBeCloseTo(140 / 60, 9);
    expect(bn.drainPressure![0]).toBeCloseTo((140 + 1_200 / TUNING.backlogDrainS) / 60, 9);
    // No queue, no extra.
    expect(bn.drainPressure![2]).toBeCloseTo(bn.pressure[2]!, 9);
  });

  it('gives cheap CPU stages three times the headroom, and GPU stages or costly replicas none', () => {
    const spec = pipeline();
    expect(stageHeadroom(spec, 0)).toBeCloseTo(1 / 3, 12);
    expect(stageHeadroom(spec, 1)).toBe(1);
    expect(stageHeadroom(pipeline({ cost: { gpuHour: 2.5, replicaHour: 0.5 } }), 0)).toBe(1);
    expect(stageHeadroom(pipeline({ cost: { gpuHour: 0, replicaHour: 0.1 } }), 0)).toBe(1);
  });

  it('sizes a cheap stage for the peak its memory saw, not the default reserve, once it has one', () => {
    const eT = TUNING.emergencyTarget;
    // No memory, or a stage without a reserve: the default.
    expect(headroomAt(1 / 3, 100, null, 0.7)).toBeCloseTo(1 / 3, 12);
    expect(headroomAt(1, 100, 300, 0.7)).toBe(1);
    // Steady load at its peak: no reserve beyond the target (capped at 1).
    expect(headroomAt(1 / 3, 100, 100, 0.7)).toBe(1);
    // Half the peak: what meets the peak at the emergency's target.
    expect(headroomAt(1 / 3, 50, 100, 0.7)).toBeCloseTo((50 * eT) / (100 * 0.7), 12);
    // A peak far above today's load (a burst seen): never less than the default.
    expect(headroomAt(1 / 3, 20, 100, 0.7)).toBeCloseTo(1 / 3, 12);
    // Past the peak by a surge's margin: ground not seen, the default.
    expect(headroomAt(1 / 3, 100 * TUNING.surgeRatio + 1, 100, 0.7)).toBeCloseTo(1 / 3, 12);
  });

  it('needs fewer replicas of a cheap stage whose memory saw no surge, and reports loads and headrooms', () => {
    const obs = observation([
      { arrival: 100, perReplica: 200, replicas: 3 },
      { arrival: 100, perReplica: 300, replicas: 1, gpuCores: 50 },
      { arrival: 100, perReplica: 400, replicas: 1 },
    ]);
    const plain = detectBottleneck(pipeline(), obs);
    // 100/s at 200/s per replica, target 0.7 x 1/3: three replicas.
    expect(plain.needed[0]).toBe(3);
    expect(plain.headroom).toEqual([1 / 3, 1, 1 / 3]);
    expect(plain.load).toEqual([100, 100, 100]);
    const learned = detectBottleneck(pipeline(), obs, newCapacityMemory(), 0.7, [105, null, 400]);
    expect(learned.needed[0]).toBe(1);
    // The last stage's peak was four times today's load: it keeps its default reserve.
    expect(learned.headroom![2]).toBeCloseTo(1 / 3, 12);
    expect(learned.needed[2]).toBe(plain.needed[2]);
  });
});

describe('surgeFactor', () => {
  const stages = [
    { arrival: 100, perReplica: 300, replicas: 1 },
    { arrival: 100, perReplica: 150, replicas: 1, gpuCores: 50 },
    { arrival: 100, perReplica: 300, replicas: 1 },
  ];
  const at = (recent: number | null) => observation(stages, { arrivalRate: 100, recentArrivalRate: recent, recentWindowMs: 15_000 });

  it('is the newest interval over the window where the entry rate jumped', () => {
    // A 3x surge that filled half the window: 200 over the window, 300 in its newest half.
    expect(surgeFactor(observation(stages, { arrivalRate: 200, recentArrivalRate: 300, recentWindowMs: 15_000 }))).toBeCloseTo(1.5, 9);
  });

  it('is 1 for noise, a fall, a jump under 1.25x, or where the source cannot say', () => {
    // 100/s for 15 s: a Poisson count of 1,500 +- 39; 1,700 is a 1.13x rise and 5 sd, still no surge.
    expect(surgeFactor(at(113))).toBe(1);
    expect(surgeFactor(at(60))).toBe(1);
    expect(surgeFactor(at(null))).toBe(1);
    expect(surgeFactor(observation(stages, { arrivalRate: 100, recentArrivalRate: 300 }))).toBe(1);
    expect(surgeFactor(observation(stages, { arrivalRate: null, recentArrivalRate: 300, recentWindowMs: 15_000 }))).toBe(1);
  });

  it('needs a jump of 4 standard deviations, so a few requests at a low rate are not one', () => {
    // 0.4/s over the window, 1/s in the last 15 s: 15 requests where 6 +- 2.4 were expected (3.7 sd).
    const low = (recent: number) => surgeFactor(observation(stages, { arrivalRate: 0.4, recentArrivalRate: recent, recentWindowMs: 15_000 }));
    expect(low(1)).toBe(1);
    expect(low(1.5)).toBeCloseTo(1.5 / 0.4, 9);
  });

  it("scales every stage's offered load, so the surge is met at its size a tick sooner", () => {
    const calm = detectBottleneck(pipeline(), at(100));
    const surging = detectBottleneck(pipeline(), at(200));
    for (let i = 0; i < 3; i++) expect(surging.pressure[i]).toBeCloseTo(2 * calm.pressure[i]!, 9);
    expect(surging.pressure[1]).toBeCloseTo(200 / 150, 9);
    expect(surging.stage).toBe(1);
  });
});
