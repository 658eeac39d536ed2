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

  it('replays inline rate points with linear interpolation, looping at the last point', () => {
    const w = parseWorkload({ kind: 'trace', points: [[0, 0.5], [600, 2], [1200, 1]], relative: true }, { referenceRate: 20, seed: 1 });
    expect(w.rate.at(0)).toBe(10);
    expect(w.rate.at(300_000)).toBeCloseTo(25, 9);
    expect(w.rate.at(5_000_000)).toBe(20);
    expect(w.rate.max(0, 300_000)).toBeCloseTo(25, 9);
    expect(w.rate.max(100_000, 900_000)).toBe(40);
    const times = sample(w, 1_200_000, 5);
    expect(Math.abs(times.length - w.meanRate(0, 1_200_000) * 1200) / times.length).toBeLessThan(0.03);
    expect(countIn(times, 500_000, 700_000)).toBeGreaterThan(countIn(times, 0, 200_000) * 2.5);

    const saw = parseWorkload({ kind: 'trace', points: [[0, 1], [100, 5]], loop: true }, opts);
    expect(saw.rate.at(99_000)).toBeCloseTo(4.96, 9);
    expect(saw.rate.at(100_000)).toBe(1);
    expect(saw.rate.at(250_000)).toBeCloseTo(3, 9);
    expect(saw.rate.max(90_000, 110_000)).toBe(5);
    expect(saw.peakRate(1_000_000)).toBeCloseTo(5, 1); // sampled each second
  });

  it('runs a three-state MMPP through all of its states; two states keep their old path', () => {
    const m = parseWorkload({ kind: 'mmpp', rates: [5, 20, 60], meanSojournSeconds: [120, 120, 60] }, opts);
    const seen = new Set<number>();
    for (let t = 0; t < 7_200_000; t += 10_000) seen.add(m.rate.at(t));
    expect([...seen].sort((a, b) => a - b)).toEqual([5, 20, 60]);
    expect(m.rate.max(0, 7_200_000)).toBe(60);
    // MMPP-2 makes no extra draw for the next state, so its paths (and every result) are unchanged.
    const two = parseWorkload({ kind: 'mmpp', rates: [5, 50], meanSojournSeconds: [200, 50] }, opts);
    const switches: number[] = [];
    let last = two.rate.at(0);
    for (let t = 1000; t < 3_600_000; t += 1000) {
      if (two.rate.at(t) === last) continue;
      last = two.rate.at(t);
      switches.push(t);
    }
    expect(switches.slice(0, 6)).toEqual([39_000, 116_000, 149_000, 163_000, 509_000, 693_000]); // as before three states existed
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
    expect(err({ kind: 'mmpp', rates: [1, 2, 3], meanSojournSeconds: [1, 2] })).toContain('w.yaml: meanSojournSeconds: [1,2] is not one mean sojourn time per rate');
    expect(err({ kind: 'trace', points: [[0, 1], [0, 2]] })).toContain("w.yaml: points[1][0]: 0 is not a time after the previous point's (0 s)");
    expect(err({ kind: 'trace', points: [[5, 1], [10, 2]] })).toContain('w.yaml: points[0][0]: 5 is not the first point at 0 seconds');
    expect(err({ kind: 'trace', points: [[0, -1], [10, 2]] })).toContain('w.yaml: points[0][1]: -1 is not a number >= 0');
    expect(err({ kind: 'trace', points: [[0, 1]] })).toContain('w.yaml: points: [[0,1]] is not a list of at least two [seconds, rate] pairs');
    expect(err({ kind: 'trace' })).toContain('w.yaml: file: missing; expected a path to a CSV file (with format), or points');
    expect(err({ kind: 'trace', file: 'x.csv' })).toContain('w.yaml: format: missing; expected "timestamps"');
    expect(err({ kind: 'trace', format: 'counts', points: [[0, 1], [1, 1]] })).toContain('w.yaml: format: "counts" is not absent with points');
    expect(err({ kind: 'poisson', rate: 1, burst: 2 })).toContain('w.yaml: burst: 2 is not a known field here');
    const dir = mkdtempSync(join(tmpdir(), 'sair-trace-'));
    writeFileSync(join(dir, 'bad.csv'), '1\nabc\n');
    writeFileSync(join(dir, 'bad.yaml'), 'kind: trace\nformat: counts\nfile: bad.csv\n');
    expect(() => loadWorkloadFile(join(dir, 'bad.yaml'), opts)).toThrow(/bad\.csv: line 2: "abc" is not a request count >= 0/);
    writeFileSync(join(dir, 'broken.yaml'), 'kind: [poisson\n');
    expect(() => loadWorkloadFile(join(dir, 'broken.yaml'), opts)).toThrow(/broken\.yaml: .* is not valid YAML/);
  });
});
