import { describe, expect, it } from '@jest/globals';
import { HpaState, replicasForExternalAverage, replicasForPerPodTarget } from '../../../src/sim/baselines/hpa-algorithm.js';

describe('HPA replica calculator', () => {
  it('keeps the count within the 0.1 tolerance and otherwise scales by ceil(ratio x ready)', () => {
    expect(replicasForPerPodTarget({ currentReplicas: 4, readyPods: 4, unreadyPods: 0, usage: 0.65, target: 0.6 })).toBe(4);
    expect(replicasForPerPodTarget({ currentReplicas: 4, readyPods: 4, unreadyPods: 0, usage: 0.9, target: 0.6 })).toBe(6);
    expect(replicasForPerPodTarget({ currentReplicas: 4, readyPods: 4, unreadyPods: 0, usage: 0.15, target: 0.6 })).toBe(1);
  });

  it('counts not-ready pods as idle on scale-up and holds when that flips the direction', () => {
    // 2 ready at 90 % against 60 %, 2 starting: (0.9 * 2) / 4 = 0.45 < 0.6, so no change.
    expect(replicasForPerPodTarget({ currentReplicas: 4, readyPods: 2, unreadyPods: 2, usage: 0.9, target: 0.6 })).toBe(4);
    // 2 ready at 100 % against 50 %, 1 starting: ratio (2 / 3) / 0.5 = 1.33, ceil(1.33 * 3) = 4.
    expect(replicasForPerPodTarget({ currentReplicas: 3, readyPods: 2, unreadyPods: 1, usage: 1, target: 0.5 })).toBe(4);
    // Scale-down ignores not-ready pods: ceil(0.25 * 2) = 1.
    expect(replicasForPerPodTarget({ currentReplicas: 4, readyPods: 2, unreadyPods: 2, usage: 0.15, target: 0.6 })).toBe(1);
  });

  it('counts pods with missing metrics as fully used on scale-down and idle on scale-up', () => {
    // (0.2 * 2 + 1.0) / 3 = 0.467 against 0.5: within tolerance, no change.
    expect(replicasForPerPodTarget({ currentReplicas: 3, readyPods: 2, unreadyPods: 0, missingPods: 1, usage: 0.2, target: 0.5, missingDownUsage: 1 })).toBe(3);
    // (0.9 * 2 + 0) / 3 = 0.6 against 0.4: ratio 1.5, ceil(1.5 * 3) = 5.
    expect(replicasForPerPodTarget({ currentReplicas: 3, readyPods: 2, unreadyPods: 0, missingPods: 1, usage: 0.9, target: 0.4 })).toBe(5);
  });

  it('sizes an External AverageValue metric (KEDA) as ceil(total / target)', () => {
    expect(replicasForExternalAverage({ currentReplicas: 2, total: 35, targetPerPod: 10 })).toBe(4);
    expect(replicasForExternalAverage({ currentReplicas: 2, total: 21, targetPerPod: 10 })).toBe(2);
    expect(replicasForExternalAverage({ currentReplicas: 3, total: 0, targetPerPod: 10 })).toBe(0);
  });
});

describe('HPA default behavior', () => {
  it('scales up by at most max(+4 pods, +100 %) per 15 s window', () => {
    const s = new HpaState();
    let current = 1;
    const at = (t: number, desired: number): number => {
      const next = s.normalize(t, current, desired, 1, 100);
      s.recordScale(t, current, next);
      current = next;
      return next;
    };
    expect(at(0, 50)).toBe(5); // max(1 + 4, 2 * 1)
    expect(at(5_000, 50)).toBe(5); // still inside the period that started at 1
    expect(at(15_000, 50)).toBe(10); // max(5 + 4, 2 * 5)
    expect(at(30_000, 50)).toBe(20);
    expect(at(45_000, 50)).toBe(40);
    expect(at(60_000, 50)).toBe(50);
    expect(at(75_000, 500)).toBe(100); // maxReplicas
  });

  it('holds a scale-down for the 300 s stabilization window, then drops at once (100 % per 15 s), never below min', () => {
    const s = new HpaState();
    let current = 10;
    const at = (t: number, desired: number): number => {
      const next = s.normalize(t, current, desired, 2, 20);
      s.recordScale(t, current, next);
      current = next;
      return next;
    };
    expect(at(0, 10)).toBe(10);
    for (let t = 15_000; t < 300_000; t += 15_000) expect(at(t, 1)).toBe(10);
    expect(at(300_000, 1)).toBe(2);
  });

  it('takes the highest recommendation of the window, so a brief dip does not scale down', () => {
    const s = new HpaState();
    expect(s.normalize(0, 6, 6, 1, 10)).toBe(6);
    expect(s.normalize(15_000, 6, 3, 1, 10)).toBe(6);
    expect(s.normalize(315_001, 6, 3, 1, 10)).toBe(3);
  });
});
