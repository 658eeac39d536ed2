import { describe, expect, it } from '@jest/globals';
import { Rng } from '../../src/sim/rng.js';

function stats(xs: number[]): { mean: number; cv: number } {
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  const v = xs.reduce((a, b) => a + (b - mean) ** 2, 0) / xs.length;
  return { mean, cv: Math.sqrt(v) / mean };
}

describe('Rng', () => {
  it('gives the same stream for the same seed and different streams for nearby seeds', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    const c = new Rng(8);
    const sa = Array.from({ length: 5 }, () => a.nextU32());
    expect(Array.from({ length: 5 }, () => b.nextU32())).toEqual(sa);
    expect(Array.from({ length: 5 }, () => c.nextU32())).not.toEqual(sa);
  });

  it('draws uniforms strictly inside (0, 1)', () => {
    const r = new Rng(1);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const u = r.uniform();
      if (!(u > 0 && u < 1)) outside++;
    }
    expect(outside).toBe(0);
  });

  it('matches the distributions the models rely on', () => {
    const r = new Rng(3);
    const n = 100_000;
    const exp = stats(Array.from({ length: n }, () => r.exponential(5)));
    expect(exp.mean).toBeCloseTo(5, 1);
    expect(exp.cv).toBeCloseTo(1, 1);
    const logn = stats(Array.from({ length: n }, () => r.lognormalFactor(0.3)));
    expect(logn.mean).toBeCloseTo(1, 2);
    const gam = stats(Array.from({ length: n }, () => r.gamma(1 / 9, 9)));
    expect(gam.mean).toBeGreaterThan(0.97);
    expect(gam.mean).toBeLessThan(1.03);
    expect(gam.cv).toBeGreaterThan(2.85);
    expect(gam.cv).toBeLessThan(3.15);
    const poi = stats(Array.from({ length: 50_000 }, () => r.poisson(4)));
    expect(poi.mean).toBeCloseTo(4, 1);
  });
});
