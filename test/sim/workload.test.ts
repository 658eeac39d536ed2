import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../src/common/errors.js';
import { BUILTIN_WORKLOADS, builtinWorkload } from '../../src/sim/builtin-workloads.js';
import { Rng } from '../../src/sim/rng.js';
import { loadWorkloadFile, parseWorkload, type Workload } from '../../src/sim/workload.js';

const opts = { referenceRate: 100, seed: 1 };

function sample(w: Workload, untilMs: number, seed = 2): number[] {
  const p = w.arrivals(new Rng(seed), untilMs);
  const out: number[] = [];
  let t = 0;
  for (;;) {
    t = p.next(t);
    if (t >= untilMs) return out;
    out.push(t);
  }
}

function countIn(times: number[], t0: number, t1: number): number {
  return times.filter((t) => t >= t0 && t < t1).length;
}

describe('workloads', () => {
  it('every built-in workload builds and produces arrivals near its expected rate', () => {
    for (const name of BUILTIN_WORKLOADS) {
      const w = builtinWorkload(name, { referenceRate: 20, seed: 3 })!;
      const times = sample(w, 3_600_000);
      const expected = w.meanRate(0, 3_600_000) * 3600;
      // Bursty processes vary more; 15 % covers them at this length for this seed.
      expect(Math.abs(times.length - expected) / expected).toBeLessThan(0.15);
      for (let i = 1; i < times.length; i++) if (times[i]! < times[i - 1]!) throw new Error(`${name}: arrivals out of order`);
    }
  });

  it('thins a diurnal rate: counts per phase follow the sinusoid', () => {
    const w = parseWorkload({ kind: 'diurnal', mean: 30, amplitude: 0.8, periodSeconds: 3600 }, opts);
    const times = sample(w, 3_600_000 * 2);
    // Trough (first 10 minutes of each hour) vs peak (minutes 25-35).
    let trough = 0;
    let peak = 0;
    for (let h = 0; h < 2; h++) {
      trough += countIn(times, h * 3_600_000, h * 3_600_000 + 600_000);
      peak += countIn(times, h * 3_600_000 + 1_500_000, h * 3_600_000 + 2_100_000);
    }
    const expectedTrough = 2 * 600 * (w.meanRate(0, 600_000));
    const expectedPeak = 2 * 600 * (w.meanRate(1_500_000, 2_100_000));
    expect(Math.abs(trough - expectedTrough) / expectedTrough).toBeLessThan(0.08);
    expect(Math.abs(peak - expectedPeak) / expectedPeak).toBeLessThan(0.03);
    expect(peak / trough).toBeGreaterThan(5);
  });

  it('Gamma renewal has the chosen inter-arrival CV and MMPP switches between its two rates', () => {
    const g = parseWorkload({ kind: 'gamma', rate: 10, cv: 3 }, opts);
    const times = sample(g, 20_000_000);
    const gaps = times.slice(1).map((t, i) => t - times[i]!);
    const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
    const sd = Math.sqrt(gaps.reduce((a, b) => a + (b - mean) ** 2, 0) / gaps.length);
    expect(mean).toBeGreaterThan(95);
    expect(mean).toBeLessThan(105);
    expect(sd / mean).toBeGreaterThan(2.8);
    expect(sd / mean).toBeLessThan(3.2);

    const m = parseWorkload({ kind: 'mmpp', rates: [5, 50], meanSojournSeconds: [200, 50] }, opts);
    const mt = sample(m, 7_200_000);
    const perMinute = Array.from({ length: 120 }, (_, i) => countIn(mt, i * 60_000, (i + 1) * 60_000) / 60);
    expect(Math.min(...perMinute)).toBeLessThan(8);
    expect(Math.max(...perMinute)).toBeGreaterThan(40);
    // The oracle's rate function follows the same path the arrivals came from.
    let agree = 0;
    for (let i = 0; i < 120; i++) {
      const r = m.rate.at(i * 60_000 + 30_000);
      if ((r === 50) === (perMinute[i]! > 25)) agree++;
    }
    expect(agree).toBeGreaterThan(100);
  });

  it('replays a CSV trace of timestamps exactly and per-second counts exactly per second', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-trace-'));
    writeFileSync(join(dir, 'ts.csv'), 'seconds\n0.5\n0.5\n1.25\n3\n');
    writeFileSync(join(dir, 'ts.yaml'), 'kind: trace\nformat: timestamps\nfile: ts.csv\n');
    const ts = loadWorkloadFile(join(dir, 'ts.yaml'), opts);
    expect(sample(ts, 10_000)).toEqual([500, 500, 1250, 3000]);
    expect(ts.name).toBe('ts');

    writeFileSync(join(dir, 'counts.csv'), '3\n0\n5\n');
    writeFileSync(join(dir, 'counts.yaml'), 'kind: trace\nformat: counts\nfile: counts.csv\nloop: true\n');
    const c = loadWorkloadFile(join(dir, 'counts.yaml'), opts);
    const times = sample(c, 6000);
    expect([0, 1, 2, 3, 4, 5].map((s) => countIn(times, s * 1000, (s + 1) * 1000))).toEqual([3, 0, 5, 3, 0, 5]);
    expect(c.rate.at(2500)).toBe(5);
  });

  it('names the field and the accepted form in errors', () => {
    const err = (input: unknown): string => {
      try {
        parseWorkload(input, opts, 'w.yaml');
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      }
      throw new Error('no error');
    };
    expect(err({ kind: 'sawtooth' })).toContain('w.yaml: kind');
    expect(err({ kind: 'sawtooth' })).toContain('"constant", "poisson", "ramp"');
    expect(err({ kind: 'poisson', rate: -3 })).toContain('w.yaml: rate: -3 is not a number >= 0');
    expect(err({ kind: 'gamma', rate: 5, cv: 'high' })).toContain('w.yaml: cv: "high" is not a number > 0');
    expect(err({ kind: 'mmpp', rates: [1], meanSojournSeconds: [1, 2] })).toContain('w.yaml: rates');
    expect(err({ kind: 'poisson', rate: 1, burst: 2 })).toContain('w.yaml: burst: 2 is not a known field here');
    const dir = mkdtempSync(join(tmpdir(), 'sair-trace-'));
    writeFileSync(join(dir, 'bad.csv'), '1\nabc\n');
    writeFileSync(join(dir, 'bad.yaml'), 'kind: trace\nformat: counts\nfile: bad.csv\n');
    expect(() => loadWorkloadFile(join(dir, 'bad.yaml'), opts)).toThrow(/bad\.csv: line 2: "abc" is not a request count >= 0/);
    writeFileSync(join(dir, 'broken.yaml'), 'kind: [poisson\n');
    expect(() => loadWorkloadFile(join(dir, 'broken.yaml'), opts)).toThrow(/broken\.yaml: .* is not valid YAML/);
  });
});
