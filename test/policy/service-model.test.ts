import { describe, expect, it } from '@jest/globals';
import { emptyServiceModel, fitService, fullBatchCapacity, observeService, predictionError, type ServiceModel } from '../../src/policy/service-model.js';

const feed = (pairs: [number, number][], m: ServiceModel = emptyServiceModel()) => pairs.reduce((acc, [b, t]) => observeService(acc, b, t), m);
const line = (a: number, c: number) => (b: number) => a + c * b;

describe('service-time model t(b) = a + c*b', () => {
  it('recovers the line from exact windows and gives full-batch capacity maxBatch / t(maxBatch)', () => {
    const t = line(4, 0.8);
    const m = feed([1.2, 1.6, 2.1, 1.4, 3].map((b) => [b, t(b)]));
    const fit = fitService(m)!;
    expect(fit.identified).toBe(true);
    expect(fit.baseMs).toBeCloseTo(4, 6);
    expect(fit.perItemMs).toBeCloseTo(0.8, 6);
    // 32 items in 4 + 25.6 ms: about 1081 items/s, where throughput per busy second at b=1.6 says 303.
    expect(fullBatchCapacity(m, 32)).toBeCloseTo((1000 * 32) / t(32), 6);
  });

  it('says nothing before three windows, and ignores invalid pairs', () => {
    expect(fitService(feed([[1, 5], [2, 6]]))).toBeNull();
    expect(fullBatchCapacity(feed([[1, 5], [2, 6]]), 8)).toBeNull();
    const m = feed([[1, 5]]);
    expect(observeService(m, 0.5, 3)).toBe(m);
    expect(observeService(m, 2, 0)).toBe(m);
    expect(observeService(m, Number.NaN, 3)).toBe(m);
    expect(observeService(m, 2, Number.POSITIVE_INFINITY)).toBe(m);
  });

  it('will not extrapolate from batch sizes that are all alike, unless they are the full batch', () => {
    const same = feed([[1.6, 5.28], [1.6, 5.28], [1.6, 5.3], [1.6, 5.27]]);
    expect(fitService(same)!.identified).toBe(false);
    expect(fullBatchCapacity(same, 32)).toBeNull();
    const full = feed([[8, 12], [8, 12.2], [8, 11.8]]);
    expect(fullBatchCapacity(full, 8)).toBeCloseTo((1000 * 8) / 12, 1);
    // A CPU stage without batching: one item per batch is its full batch.
    expect(fullBatchCapacity(feed([[1, 6], [1, 6.1], [1, 5.9]]), 1)).toBeCloseTo(1000 / 6, 1);
  });

  it('refuses an extrapolation whose standard error is large, accepts it once the spread of batch sizes pins the slope', () => {
    // Noisy times over a narrow range of batch sizes, far from maxBatch.
    const noisy = feed([[1.5, 5.6], [1.55, 5.0], [1.6, 5.9], [1.65, 4.9], [1.7, 5.8]]);
    const fit = fitService(noisy)!;
    expect(fit.identified).toBe(true);
    expect(predictionError(fit, 64)).toBeGreaterThan(0.2 * (fit.baseMs + fit.perItemMs * 64));
    expect(fullBatchCapacity(noisy, 64)).toBeNull();
    const t = line(4, 0.8);
    const spread = feed([1, 2, 4, 6, 8].map((b, i) => [b, t(b) * (i % 2 === 0 ? 1.01 : 0.99)] as [number, number]), noisy);
    const cap = fullBatchCapacity(spread, 64)!;
    expect(cap).toBeGreaterThan(0.85 * ((1000 * 64) / t(64)));
    expect(cap).toBeLessThan(1.15 * ((1000 * 64) / t(64)));
  });

  it('keeps both terms non-negative', () => {
    // Bigger batches looking faster is noise: the fit is flat.
    const down = fitService(feed([[1, 10], [2, 9], [3, 8.5], [4, 8]]))!;
    expect(down.perItemMs).toBe(0);
    expect(down.baseMs).toBeCloseTo((10 + 9 + 8.5 + 8) / 4, 1);
    // A negative intercept becomes the line through the origin.
    const origin = fitService(feed([[1, 1], [2, 3], [3, 5], [4, 7]]))!;
    expect(origin.baseMs).toBe(0);
    expect(origin.perItemMs).toBeGreaterThan(1.5);
  });

  it('forgets old windows, so it follows a stage whose service changed', () => {
    const before = line(10, 2);
    const after = line(4, 1);
    let m = feed(Array.from({ length: 200 }, (_, i) => [1 + (i % 5), before(1 + (i % 5))] as [number, number]));
    m = feed(Array.from({ length: 3000 }, (_, i) => [1 + (i % 5), after(1 + (i % 5))] as [number, number]), m);
    const fit = fitService(m)!;
    expect(fit.baseMs).toBeCloseTo(4, 1);
    expect(fit.perItemMs).toBeCloseTo(1, 1);
  });

  it('rejects a maxBatch that is not a positive integer', () => {
    const m = feed([[1, 5], [2, 6], [3, 7]]);
    expect(fullBatchCapacity(m, 0)).toBeNull();
    expect(fullBatchCapacity(m, 2.5)).toBeNull();
  });
});
