import { detectBottleneck } from '../../src/policy/bottleneck.js';
import { actionKeyOf, consolidation, generateCandidates, repackable } from '../../src/policy/candidates.js';
import { computeFloors, liftToFloors } from '../../src/policy/floors.js';
import type { Anticipation } from '../../src/policy/forecast.js';
import { newWindowState } from '../../src/policy/normalize.js';
import { cutFreesGpu, jointCutFreesGpu, packedGpus, riseFitsBilledGpus } from '../../src/policy/packing.js';
import type { Candidate } from '../../src/policy/types.js';
import type { PipelineObservation, PipelineSpec } from '../../src/core/ports.js';
import { observation, pipeline, twoGpuPipeline, type StageLoad } from './fixtures.js';

describe('candidates', () => {
  const spec = pipeline();
  const candidatesFor = (stages: StageLoad[]) => {
    const obs = observation(stages);
    return generateCandidates(spec, obs, detectBottleneck(spec, obs), 4);
  };

  it('offers hold, replica steps per stage and GPU steps where a stage shares a GPU, within bounds', () => {
    const ids = candidatesFor([
      { arrival: 100, perReplica: 80, replicas: 1 },
      { arrival: 100, perReplica: 30, replicas: 8, gpuCores: 100 },
      { arrival: 100, perReplica: 100, replicas: 2 },
    ]).map((c) => c.id);
    expect(ids[0]).toBe('hold');
    expect(ids).toEqual(expect.arrayContaining(['s0+1', 's0+2', 's1-1', 's1:gpu-', 's2+1', 's2-1']));
    expect(ids).not.toContain('s0-1'); // at minReplicas
    expect(ids).not.toContain('s1+1'); // at maxReplicas
    expect(ids).not.toContain('s1:gpu+'); // at 100 %
    expect(ids.some((id) => id.startsWith('s0:gpu') || id.startsWith('s2:gpu'))).toBe(false);
  });

  it('offers no GPU share rise, alone or in a consolidation, to a stage the node agents clamp', () => {
    const stages: StageLoad[] = [
      { arrival: 100, perReplica: 80, replicas: 2 },
      { arrival: 100, perReplica: 30, replicas: 3, gpuCores: 60 },
      { arrival: 100, perReplica: 100, replicas: 2 },
    ];
    const free = observation(stages, { p99Ms: 100 });
    const ids = (o: typeof free) => generateCandidates(spec, o, detectBottleneck(spec, o), 4).map((c) => c.id);
    // Three replicas at 60 % fill three GPUs; two at 90 % would fill two.
    expect(ids(free)).toEqual(expect.arrayContaining(['s1:gpu+', 's1+1', 's1:pack']));
    // Asked 70 %, enforced 60 %: a rise would be clamped too, so replicas are the lever.
    const clamped = { ...free, allocation: free.allocation.map((a, i) => (i === 1 ? { ...a, gpuCoresAsked: 70, clampedReplicas: 1 } : a)) };
    const got = ids(clamped);
    expect(got.filter((id) => id === 's1:gpu+' || id === 's1:pack' || Number(/^s1:gpu=(\d+)$/.exec(id)?.[1]) > 60)).toEqual([]);
    expect(got).toEqual(expect.arrayContaining(['s1+1', 's1:gpu-']));
    expect(consolidation(spec.stages[1]!, free, 1, 1)).not.toBeNull();
    expect(consolidation(spec.stages[1]!, clamped, 1, 1)).toBeNull();
  });

  it('favours scaling a saturated stage towards its need, and trimming an idle one when P99 is calm', () => {
    const c = candidatesFor([
      { arrival: 100, perReplica: 80, replicas: 2 },
      { arrival: 100, perReplica: 30, replicas: 2, gpuCores: 50 },
      { arrival: 100, perReplica: 100, replicas: 8 },
    ]);
    const best = [...c].sort((a, b) => b.prior - a.prior)[0]!;
    expect(best.id).toMatch(/^s1\+/);
    expect(c.find((x) => x.id === 's2-1')!.prior).toBeGreaterThan(0);
    expect(c.find((x) => x.id === 's1-1')!.prior).toBeLessThan(0);
  });

  it('offers to give back in one move the GPU share an idle stage no longer needs', () => {
    // Stage 1 at 90 % runs at 10 / (30 x 2) = 0.17 of its full-batch capacity: 90 x 0.17 / 0.4 -> 40 %,
    // but at most half the share goes in one move: 50 %.
    const c = candidatesFor([
      { arrival: 10, perReplica: 80, replicas: 1 },
      { arrival: 10, perReplica: 30, replicas: 2, gpuCores: 90 },
      { arrival: 10, perReplica: 100, replicas: 1 },
    ]);
    const down = c.find((x) => x.id === 's1:gpu=50')!;
    expect(down.actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 50 }]);
    // Learned together with the one-step cut, as the bigger scale-ups are with the one-step ones.
    expect(down.key).toBe('s1:gpu-');
    expect(c.find((x) => x.id === 's1:gpu-')!.actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 80 }]);
  });

  it('offers no GPU-stage cut past the guard\'s limit, and cuts share where a replica cannot go', () => {
    // Stage 1 runs at 20 / (30 x 2) = 0.33: one replica less leaves 0.67 (past 0.4), one share step 0.375.
    const c = candidatesFor([
      { arrival: 20, perReplica: 80, replicas: 1 },
      { arrival: 20, perReplica: 30, replicas: 2, gpuCores: 90 },
      { arrival: 20, perReplica: 100, replicas: 1 },
    ]);
    expect(c.find((x) => x.id === 's1-1')!.prior).toBeLessThan(0);
    expect(c.find((x) => x.id === 's1:gpu-')!.prior).toBeGreaterThan(0);
  });

  it('where the cluster bills whole GPUs, ranks below hold a share cut that frees none, and says so', () => {
    // Stage 1 keeps two replicas (its minimum), at 90 % on two GPUs and 0.17 of full-batch capacity.
    // One step down (80 %) still needs two GPUs; down to 50 % (half the share at most) they share one.
    const two = pipeline();
    two.stages[1] = { ...two.stages[1]!, minReplicas: 2 };
    const stages: StageLoad[] = [
      { arrival: 10, perReplica: 80, replicas: 1 },
      { arrival: 10, perReplica: 30, replicas: 2, gpuCores: 90 },
      { arrival: 10, perReplica: 100, replicas: 1 },
    ];
    const offered = (extra: Partial<PipelineObservation>) => {
      const obs = observation(stages, extra);
      return generateCandidates(two, obs, detectBottleneck(two, obs), 4);
    };
    const billed = offered({ billedGpus: 2 });
    const step = billed.find((x) => x.id === 's1:gpu-')!;
    expect(step.prior).toBeLessThanOrEqual(-0.2);
    expect(step.prior).toBeLessThan(billed.find((x) => x.id === 'hold')!.prior);
    expect(step.describe).toBe('stage 1: GPU cores 90% -> 80% (frees no GPU)');
    const frees = billed.find((x) => x.id === 's1:gpu=50')!;
    expect(frees.prior).toBeGreaterThan(0);
    expect(frees.describe).toBe('stage 1: GPU cores 90% -> 50%');
    // Priced per share, every cut saves: the same step is a good move.
    const shared = offered({}).find((x) => x.id === 's1:gpu-')!;
    expect(shared.prior).toBeGreaterThan(0);
    expect(shared.describe).toBe('stage 1: GPU cores 90% -> 80%');
  });

  it('counts a share cut that frees no GPU as a saving where it frees the room another stage waits for', () => {
    // Stage 1 at 90 % and stage 2 at 10 % share one GPU; stage 2 asked for 20 % and got 10.
    const twoGpu = twoGpuPipeline();
    const stages: StageLoad[] = [
      { arrival: 5, perReplica: 80, replicas: 1 },
      { arrival: 5, perReplica: 30, replicas: 1, gpuCores: 90 },
      { arrival: 5, perReplica: 100, replicas: 1, gpuCores: 10 },
    ];
    const offered = (want: Record<number, Partial<PipelineObservation['allocation'][number]>>) => {
      const obs = observation(stages, { billedGpus: 1, p99Ms: 100 });
      const o = { ...obs, allocation: obs.allocation.map((a, i) => ({ ...a, ...want[i] })) };
      return generateCandidates(twoGpu, o, detectBottleneck(twoGpu, o), 4);
    };
    const cut = (c: Candidate[], id: string) => c.find((x) => x.id === id)!;
    // No one waits: a cut saves nothing billed.
    expect(cut(offered({}), 's1:gpu-').describe).toBe('stage 1: GPU cores 90% -> 80% (frees no GPU)');
    for (const want of [{ gpuCoresAsked: 20, clampedReplicas: 1 }, { pendingReplicas: 1 }]) {
      const c = offered({ 2: want });
      // One step frees the 10 points stage 2 waits for: a good move.
      expect(cut(c, 's1:gpu-').describe).toBe('stage 1: GPU cores 90% -> 80%');
      expect(cut(c, 's1:gpu-').prior).toBeGreaterThan(0);
      // Down to 50 % frees far more than it waits for: still nothing billed saved.
      expect(cut(c, 's1:gpu=50').describe).toBe('stage 1: GPU cores 90% -> 50% (frees no GPU)');
      expect(cut(c, 's1:gpu=50').prior).toBeLessThanOrEqual(-0.2);
    }
    // A stage short of room itself gives up its own clamped rise by a cut: no saving.
    const both = offered({ 1: { gpuCoresAsked: 100, clampedReplicas: 1 }, 2: { gpuCoresAsked: 20, clampedReplicas: 1 } });
    expect(cut(both, 's1:gpu-').describe).toBe('stage 1: GPU cores 90% -> 80% (frees no GPU)');
  });

  it('ranks above hold a share rise the GPUs already billed hold, in a pipeline with one GPU stage', () => {
    // One replica at 40 % on its own GPU, calm: a rise is no scale-up the load asks for.
    const stages: StageLoad[] = [
      { arrival: 10, perReplica: 80, replicas: 1 },
      { arrival: 10, perReplica: 30, replicas: 1, gpuCores: 40 },
      { arrival: 10, perReplica: 100, replicas: 1 },
    ];
    const offered = (s: PipelineSpec, extra: Partial<PipelineObservation>, at = stages) => {
      const obs = observation(at, { p99Ms: 100, ...extra });
      return generateCandidates(s, obs, detectBottleneck(s, obs), 4);
    };
    const billed = offered(spec, { billedGpus: 1 });
    const fill = billed.find((x) => x.id === 's1:gpu+')!;
    expect(fill.prior).toBeGreaterThan(billed.find((x) => x.id === 'hold')!.prior);
    expect(fill.describe).toBe('stage 1: GPU cores 40% -> 50% (fills a GPU already billed)');
    // Priced per share the rise costs: no fill.
    const priced = offered(spec, {}).find((x) => x.id === 's1:gpu+')!;
    expect(priced.prior).toBeLessThan(0);
    expect(priced.describe).toBe('stage 1: GPU cores 40% -> 50%');
    // Two replicas at 50 % fill one GPU; at 60 % they need two: no fill.
    const full = offered(spec, { billedGpus: 1 }, stages.map((s, i) => (i === 1 ? { ...s, replicas: 2, gpuCores: 50 } : s)));
    expect(full.find((x) => x.id === 's1:gpu+')!.prior).toBeLessThan(0);
    // A second GPU stage might need that room for its own rise: no fill.
    const twoGpu = twoGpuPipeline();
    const shared = offered(twoGpu, { billedGpus: 1 }, stages.map((s, i) => (i === 2 ? { ...s, gpuCores: 30 } : s)));
    expect(shared.find((x) => x.id === 's1:gpu+')!.describe).toBe('stage 1: GPU cores 40% -> 50%');
    // Nor while a replica waits for room.
    const obs = observation(stages, { p99Ms: 100, billedGpus: 1 });
    const pending = { ...obs, allocation: obs.allocation.map((a, i) => (i === 1 ? { ...a, pendingReplicas: 1 } : a)) };
    expect(generateCandidates(spec, pending, detectBottleneck(spec, pending), 4).find((x) => x.id === 's1:gpu+')!.prior).toBeLessThan(0);
  });

  it('tells a share rise the GPUs billed hold from one that needs another', () => {
    const alloc = [{ replicas: 1, gpuCores: null }, { replicas: 2, gpuCores: 40 }];
    expect(riseFitsBilledGpus(alloc, 1, 50, 1)).toBe(true);
    expect(riseFitsBilledGpus(alloc, 1, 60, 1)).toBe(false);
    // Held two GPUs (a replica alone on each): up to the whole of each.
    expect(riseFitsBilledGpus(alloc, 1, 100, 2)).toBe(true);
    // Not a rise, or a CPU stage.
    expect(riseFitsBilledGpus(alloc, 1, 40, 1)).toBe(false);
    expect(riseFitsBilledGpus(alloc, 0, 50, 1)).toBe(false);
  });

  it('cuts as deep as the guard\'s limit of this tick allows, where P99 leaves room in the SLO', () => {
    // The same stage as above: one replica less leaves 0.67, within a limit of 0.75.
    const stages: StageLoad[] = [
      { arrival: 20, perReplica: 80, replicas: 1 },
      { arrival: 20, perReplica: 30, replicas: 2, gpuCores: 90 },
      { arrival: 20, perReplica: 100, replicas: 1 },
    ];
    const obs = observation(stages);
    const c = generateCandidates(spec, obs, detectBottleneck(spec, obs), 4, { cutLimits: [0.4, 0.75, 0.4], trimLimits: [0.4, 0.75, 0.4] });
    expect(c.find((x) => x.id === 's1-1')!.prior).toBeGreaterThan(0);
    // A replica trim goes by its own limit: a deep share-cut limit alone does not make it a good move.
    const sharesOnly = generateCandidates(spec, obs, detectBottleneck(spec, obs), 4, { cutLimits: [0.4, 0.75, 0.4] });
    expect(sharesOnly.find((x) => x.id === 's1-1')!.prior).toBeLessThan(0);
    // The one-move share cut aims at the limit (90 x 0.33 / 0.75 -> 40 %), at most half at once: 50 %.
    expect(c.find((x) => x.id === 's1:gpu=50')!.actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: 50 }]);
  });

  it('does not press for more replicas while replicas still starting will cover the load', () => {
    const withStage1 = (replicas: number, ready: number) =>
      candidatesFor([
        { arrival: 40, perReplica: 80, replicas: 2 },
        { arrival: 40, perReplica: 30, replicas, ready, gpuCores: 100 },
        { arrival: 40, perReplica: 100, replicas: 2 },
      ]);
    // Stage 1 runs above 1.3 on its one ready replica: hot, and with none starting it presses for more.
    expect(withStage1(1, 1).find((x) => x.id === 's1+1')!.prior).toBeGreaterThan(0.3);
    // With three more starting it will run at about a quarter of that, under the 0.65 target: wait for them.
    expect(withStage1(4, 1).find((x) => x.id === 's1+1')!.prior).toBeLessThan(0);
  });

  it('reads a P99 over the SLO as a call for capacity only while the bottleneck is loaded or queued', () => {
    // P99 at 1.2x the SLO (600 of 500 ms); stage 1, the bottleneck, at 100 % share on one replica.
    const withStage1 = (arrival: number, queueLength: number) => {
      const stages: StageLoad[] = [
        { arrival, perReplica: 400, replicas: 1 },
        { arrival, perReplica: 100, replicas: 1, gpuCores: 100 },
        { arrival, perReplica: 400, replicas: 1 },
      ];
      const obs = observation(stages, { p99Ms: 600 });
      obs.stages[1]!.queueLength = queueLength;
      return generateCandidates(spec, obs, detectBottleneck(spec, obs), 4).find((x) => x.id === 's1+1')!.prior;
    };
    // At 0.5 of its capacity with its queue worked off, the P99 is the window's memory of a drained backlog.
    expect(withStage1(50, 0)).toBeLessThan(0);
    // Still queued, or loaded past the 0.65 target: more capacity.
    expect(withStage1(50, 200)).toBeGreaterThan(0.3);
    expect(withStage1(75, 0)).toBeGreaterThan(0);
  });

  it('offers no replica trim below the surge reserve, and cuts share instead', () => {
    const stages: StageLoad[] = [
      { arrival: 40, perReplica: 80, replicas: 2 },
      { arrival: 20, perReplica: 30, replicas: 4, gpuCores: 60 },
      { arrival: 40, perReplica: 100, replicas: 2 },
    ];
    const obs = observation(stages, { p99Ms: 100 });
    const bn = detectBottleneck(spec, obs);
    const free = generateCandidates(spec, obs, bn, 4).map((c) => c.id);
    expect(free).toContain('s1-1');
    const held = generateCandidates(spec, obs, bn, 4, { reserves: [0, 4, 0] });
    expect(held.map((c) => c.id)).not.toContain('s1-1');
    expect(held.find((c) => c.id === 's1:gpu-')!.prior).toBeGreaterThan(0);
  });

  it('names what was applied as the learning key', () => {
    const alloc = [{ replicas: 2, readyReplicas: 2, gpuCores: null }, { replicas: 3, readyReplicas: 3, gpuCores: 50 }];
    expect(actionKeyOf([], alloc)).toBe('hold');
    expect(actionKeyOf([{ kind: 'replicas', stage: 1, replicas: 5 }], alloc)).toBe('s1+2');
    expect(actionKeyOf([{ kind: 'gpuCores', stage: 1, gpuCores: 40 }, { kind: 'replicas', stage: 0, replicas: 1 }], alloc)).toBe('s1:gpu-,s0-1');
    // A trim with a share raise on one stage is a consolidation; a raise with a trim elsewhere is not.
    expect(actionKeyOf([{ kind: 'replicas', stage: 1, replicas: 2 }, { kind: 'gpuCores', stage: 1, gpuCores: 80 }], alloc)).toBe('s1:pack');
    expect(actionKeyOf([{ kind: 'replicas', stage: 0, replicas: 1 }, { kind: 'gpuCores', stage: 1, gpuCores: 80 }], alloc)).toBe('s0-1,s1:gpu+');
  });

  it('counts the whole GPUs replicas pack onto, largest share first', () => {
    expect(packedGpus([])).toBe(0);
    expect(packedGpus([{ replicas: 3, gpuCores: null }])).toBe(0);
    // Four 40 % replicas: two per GPU; a 60 % and a 40 % share one.
    expect(packedGpus([{ replicas: 4, gpuCores: 40 }])).toBe(2);
    expect(packedGpus([{ replicas: 2, gpuCores: 60 }, { replicas: 2, gpuCores: 40 }])).toBe(2);
    expect(packedGpus([{ replicas: 3, gpuCores: 60 }])).toBe(3);
    expect(packedGpus([{ replicas: 1, gpuCores: 100 }, { replicas: 1, gpuCores: 10 }])).toBe(2);
  });

  it('tells a share cut that lets the replicas pack onto fewer GPUs from one that does not', () => {
    const alloc = [{ replicas: 1, gpuCores: null }, { replicas: 2, gpuCores: 60 }, { replicas: 1, gpuCores: 30 }];
    // 2 x 60 % and 30 % fill two GPUs; at 50 % they still do, at 35 % they fill one.
    expect(cutFreesGpu(alloc, 1, 50)).toBe(false);
    expect(cutFreesGpu(alloc, 1, 35)).toBe(true);
    // Not a cut: a rise, the same share, a CPU stage.
    expect(cutFreesGpu(alloc, 1, 60)).toBe(false);
    expect(cutFreesGpu(alloc, 1, 100)).toBe(false);
    expect(cutFreesGpu(alloc, 0, 10)).toBe(false);
  });

  it('tells cuts of several stages that together let the replicas pack onto fewer GPUs', () => {
    // 70 % and 100 %: two GPUs; at 20 % and 70 % one, though neither cut alone frees a GPU.
    const alloc = [{ replicas: 1, gpuCores: null }, { replicas: 1, gpuCores: 70 }, { replicas: 1, gpuCores: 100 }];
    expect(cutFreesGpu(alloc, 1, 20)).toBe(false);
    expect(cutFreesGpu(alloc, 2, 70)).toBe(false);
    expect(jointCutFreesGpu(alloc, [null, 20, 70])).toBe(true);
    expect(jointCutFreesGpu(alloc, [null, 40, 70])).toBe(false);
    // A stage without a share, or one already under it, stays where it is.
    expect(jointCutFreesGpu(alloc, [null, 20, null])).toBe(false);
    expect(jointCutFreesGpu([{ replicas: 1, gpuCores: 20 }, { replicas: 1, gpuCores: 100 }], [30, 70])).toBe(true);
  });

  it('offers a cut toward the shares the GPU stages pack onto fewer GPUs at together as a saving, not as one that frees no GPU', () => {
    const twoGpu = twoGpuPipeline();
    // embed-like 70 % and classify-like 100 %, both calm: two GPUs billed, one at 20 % and 70 %.
    const obs = observation(
      [
        { arrival: 10, perReplica: 80, replicas: 1 },
        { arrival: 10, perReplica: 100, replicas: 1, gpuCores: 70 },
        { arrival: 10, perReplica: 60, replicas: 1, gpuCores: 100 },
      ],
      { p99Ms: 100, billedGpus: 2 },
    );
    const cuts = (packShares?: (number | null)[]) =>
      generateCandidates(twoGpu, obs, detectBottleneck(twoGpu, obs), 4, packShares ? { packShares } : {}).filter((c) => c.key === 's1:gpu-');
    const hold = generateCandidates(twoGpu, obs, detectBottleneck(twoGpu, obs), 4).find((c) => c.id === 'hold')!.prior;
    // Without the learned pack shares every cut of stage 1 frees no GPU and ranks below hold.
    expect(cuts().length).toBeGreaterThan(0);
    expect(cuts().every((c) => c.describe.endsWith('(frees no GPU)') && c.prior < hold)).toBe(true);
    const toward = cuts([null, 20, 70]);
    // The cut to the pack share (at most maxStep steps at once) is offered, and ranks above hold.
    const deepest = toward.find((c) => c.id === 's1:gpu=30')!;
    expect(deepest.describe).toBe('stage 1: GPU cores 70% -> 30% (frees a GPU with the other GPU stages cut to their pack shares)');
    expect(deepest.prior).toBeGreaterThan(hold);
    // Where the shares would not pack onto fewer GPUs, nothing changes.
    expect(cuts([null, 40, 70]).map((c) => c.id)).toEqual(cuts().map((c) => c.id));
    expect(cuts([null, 40, 70]).every((c) => c.describe.endsWith('(frees no GPU)'))).toBe(true);
  });

  it('offers a repack (a replica more of the smallest-share GPU stage, then the trim) only where the replicas hold a GPU they would not pack onto', () => {
    // Two GPU stages, one replica each at 30 % and 70 %: one GPU packed, two held once a share rise moved one.
    const twoGpu = twoGpuPipeline();
    const loads: StageLoad[] = [
      { arrival: 10, perReplica: 80, replicas: 1 },
      { arrival: 10, perReplica: 40, replicas: 1, gpuCores: 30 },
      { arrival: 10, perReplica: 60, replicas: 1, gpuCores: 70 },
    ];
    const at = (extra: Partial<PipelineObservation>, l = loads) => observation(l, { p99Ms: 100, time: 3_600_000, ...extra });
    const seen = [null, 30, 70];
    const offered = (obs: PipelineObservation) => generateCandidates(twoGpu, obs, detectBottleneck(twoGpu, obs), 4, { usualShares: seen });
    const stranded = offered(at({ billedGpus: 2 }));
    const repack = stranded.find((c) => c.id === 's1:repack')!;
    expect(repack.actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 2 }]);
    expect(repack.key).toBe('s1:repack');
    expect(repack.prior).toBeGreaterThan(stranded.find((c) => c.id === 'hold')!.prior);
    expect(stranded.some((c) => c.id === 's2:repack')).toBe(false); // the smallest share goes
    // Nothing stranded, the cluster not saying, a try within the last half hour, or P99 not calm: none.
    expect(repackable(twoGpu, at({ billedGpus: 1 }), new Map(), seen)).toBeNull();
    expect(repackable(twoGpu, at({}), new Map(), seen)).toBeNull();
    expect(repackable(twoGpu, at({ billedGpus: 2 }), new Map([[1, 0]]), seen)).toBe(1);
    // The smallest share was tried within the last half hour: the next try is the other stage's, then none.
    expect(repackable(twoGpu, at({ billedGpus: 2 }), new Map([[1, 3_600_000 - 60_000]]), seen)).toBe(2);
    expect(repackable(twoGpu, at({ billedGpus: 2 }), new Map([[1, 3_600_000 - 60_000], [2, 3_600_000 - 30_000]]), seen)).toBeNull();
    // Where classify usually holds 80 %, the room the repack would fill is the room its rises take: none.
    expect(repackable(twoGpu, at({ billedGpus: 2 }), new Map(), [null, 30, 80])).toBeNull();
    // Before an hour of shares is seen, none.
    expect(repackable(twoGpu, at({ billedGpus: 2 }), new Map(), [null, null, 70])).toBeNull();
    expect(offered(at({ billedGpus: 2, p99Ms: 450 })).some((c) => c.id.endsWith(':repack'))).toBe(false);
    // A replica still starting: wait for it.
    expect(repackable(twoGpu, at({ billedGpus: 2 }, loads.map((l, i) => (i === 2 ? { ...l, replicas: 2, ready: 1 } : l))), new Map(), seen)).toBeNull();
    // Once the new replica is ready, the repacked stage gives it back by a trim, not a consolidation
    // (one replica at twice the share keeps the extra capacity).
    const two = at({ billedGpus: 2 }, loads.map((l, i) => (i === 1 ? { ...l, replicas: 2, gpuCores: 10 } : l)));
    const after = (repacks: Map<number, number>) => generateCandidates(twoGpu, two, detectBottleneck(twoGpu, two), 4, { repacks, usualShares: [null, 10, 70] }).map((c) => c.id);
    expect(after(new Map())).toContain('s1:pack');
    expect(after(new Map([[1, 3_600_000 - 60_000]]))).not.toContain('s1:pack');
    expect(after(new Map([[1, 3_600_000 - 60_000]]))).toContain('s1-1');
  });

  it('offers a consolidation (a replica fewer at a share that keeps the capacity) only where it frees a GPU', () => {
    const at = (replicas: number, gpuCores: number, p99Ms = 200) => observation([{ arrival: 40, perReplica: 80, replicas: 1 }, { arrival: 40, perReplica: 30, replicas, gpuCores }, { arrival: 40, perReplica: 100, replicas: 1 }], { p99Ms });
    // 2 x 50 % already pack onto one GPU: nothing to gain...
    expect(consolidation(spec.stages[1]!, at(2, 50), 1, 1)).toBeNull();
    // ...unless they hold two, each alone on its GPU (placed at 70 %, then cut): one at 100 % frees one.
    const stranded = { ...at(2, 50), billedGpus: 2 };
    expect(consolidation(spec.stages[1]!, stranded, 1, 1)?.actions).toEqual([
      { kind: 'replicas', stage: 1, replicas: 1 },
      { kind: 'gpuCores', stage: 1, gpuCores: 100 },
    ]);
    // 2 x 60 % need two GPUs, but one replica would need 120 %: past the largest share.
    expect(consolidation(spec.stages[1]!, at(2, 60), 1, 1)).toBeNull();
    // 3 x 60 % on three GPUs -> 2 x 90 % on two.
    expect(consolidation(spec.stages[1]!, at(3, 60), 1, 1)).toEqual({
      actions: [
        { kind: 'replicas', stage: 1, replicas: 2 },
        { kind: 'gpuCores', stage: 1, gpuCores: 90 },
      ],
      describe: 'stage 1: 3 replicas at 60% -> 2 at 90% (fewer GPUs, same capacity)',
    });
    // Not below the replica floor, nor while replicas are starting.
    expect(consolidation(spec.stages[1]!, at(3, 60), 1, 3)).toBeNull();
    expect(consolidation(spec.stages[1]!, observation([{ arrival: 1, perReplica: 80, replicas: 1 }, { arrival: 1, perReplica: 30, replicas: 3, ready: 2, gpuCores: 60 }]), 1, 1)).toBeNull();
    // Offered among the candidates, as a good move while calm and not while P99 presses.
    const offered = (p99Ms: number) => {
      const obs = at(3, 60, p99Ms);
      return generateCandidates(spec, obs, detectBottleneck(spec, obs), 4).find((c) => c.id === 's1:pack');
    };
    expect(offered(200)?.prior).toBeGreaterThan(0.3);
    expect(offered(480)?.prior).toBeLessThan(0);
  });
});

describe('candidates under a forecast', () => {
  const spec = pipeline();
  const stages: StageLoad[] = [
    { arrival: 20, perReplica: 80, replicas: 1 },
    { arrival: 20, perReplica: 30, replicas: 2, gpuCores: 50 },
    { arrival: 20, perReplica: 100, replicas: 1 },
  ];
  const obs = observation(stages);
  const bn = detectBottleneck(spec, obs);
  const window = newWindowState();
  const offered = (anticipation: Anticipation | null) => generateCandidates(spec, obs, bn, 4, {}, anticipation);
  const best = (cs: Candidate[], stage?: number) => [...cs].filter((c) => stage === undefined || c.actions.some((a) => a.kind !== 'hold' && a.stage === stage)).sort((a, b) => b.prior - a.prior)[0]!;

  it('holds a calm pipeline with no burst due', () => {
    expect(best(offered(null)).id).toBe('hold');
  });

  it("judges each lever on the load due within its lead, so the selector's own share move meets the forecast floor", () => {
    // Stage 1 at 20 / 60 = 0.33 of its capacity: a 2.5x burst due within the share lead is 0.83 of
    // it (past the 0.75 at which the floors act), and at the largest share 0.42 (no replicas due).
    const due: Anticipation = { periodMs: 600_000, confidence: 0.9, shareFactor: 2.5, replicaFactor: 2.5 };
    const cs = offered(due);
    expect(best(cs).id).not.toBe('hold');
    const floors = computeFloors(spec, obs, bn, window, { breach: false, anticipation: due });
    const share = best(cs, 1);
    expect(share.actions).toEqual([{ kind: 'gpuCores', stage: 1, gpuCores: expect.any(Number) }]);
    // Lifted to the floors (60 % for stage 1), the move keeps its own size: the floor asks no more.
    expect(floors.find((f) => f.stage === 1)).toMatchObject({ kind: 'gpuCores', value: 60 });
    expect(liftToFloors(share.actions, floors, obs).filter((a) => a.stage === 1)).toEqual([{ ...share.actions[0], urgent: true, source: 'selector' }]);
    // The cheap CPU stages are pressed up too (their floors, sized from whole replicas, may ask more).
    for (const stage of [0, 2]) expect(best(cs, stage).prior).toBeGreaterThan(0.3);
    // Replicas of the GPU stage are not the lever while its largest share carries the burst.
    expect(cs.filter((c) => /^s1\+/.test(c.id)).every((c) => c.prior < 0)).toBe(true);
  });

  it('adds replicas to a GPU stage for the part of a burst its largest share cannot carry, sized at that share', () => {
    // 0.33 x 5 = 1.67 at 50 %, 0.83 at 100 %: replicas are due; at the largest share 2 x 0.83 / 0.65 -> 3.
    const due: Anticipation = { periodMs: 600_000, confidence: 0.9, shareFactor: 1, replicaFactor: 5 };
    const cs = offered(due);
    expect(cs.find((c) => c.id === 's1+1')!.prior).toBeGreaterThan(0);
    expect(best(cs, 1).actions).toEqual([{ kind: 'replicas', stage: 1, replicas: 3 }]);
  });
});
