import { describe, expect, it } from '@jest/globals';
import { bucketOf, newHistogram, quantile, upperEdge } from '../../src/sim/histogram.js';

describe('latency histogram', () => {
  it('puts every value below its bucket’s upper edge and above the previous one, within 3.2 %', () => {
    for (let ms = 0.011; ms < 5e6; ms *= 1.0137) {
      const b = bucketOf(ms);
      expect(ms).toBeLessThan(upperEdge(b));
      expect(ms).toBeGreaterThanOrEqual(upperEdge(b - 1));
      expect(upperEdge(b) / upperEdge(b - 1)).toBeLessThan(1.032);
    }
    expect(bucketOf(0)).toBe(0);
    expect(bucketOf(1e12)).toBe(999);
  });

  it('gives quantiles that err on the slow side by at most one bucket, and infinity for drops', () => {
    const h = newHistogram();
    for (let i = 1; i <= 1000; i++) h[bucketOf(i)]!++;
    const p99 = quantile(h, 0.99)!;
    expect(p99).toBeGreaterThanOrEqual(990);
    expect(p99).toBeLessThan(990 * 1.032);
    expect(quantile(h, 0.99, 20)).toBe(Infinity);
    expect(quantile(newHistogram(), 0.5)).toBeNull();
  });
});
