import {
  anticipate,
  detectPeriod,
  forecastPeak,
  newRateHistory,
  recordRate,
  type RateHistory,
} from '../../src/policy/forecast.js';
import { seededRandom } from '../../src/policy/random.js';

const TICK = 15_000;

/** A history of `minutes` of 15 s samples of rate(t) with Gaussian-ish noise of `noise` x the rate. */
function history(minutes: number, rate: (tMs: number) => number, noise = 0.05, seed = 1): RateHistory {
  const h = newRateHistory();
  const rand = seededRandom(seed);
  for (let t = TICK; t <= minutes * 60_000; t += TICK) {
    const jitter = (rand() + rand() + rand() - 1.5) * 2 * noise;
    recordRate(h, t, Math.max(0, rate(t) * (1 + jitter)));
  }
  return h;
}

// The paper's burst: 0.6x with a one-minute burst to 2.2x every ten minutes, starting at 9 min.
const burst = (t: number) => (t % 600_000 >= 540_000 ? 176 : 48);

describe('forecast', () => {
  it('finds the period of recurring bursts once two cycles are in the history', () => {
    expect(detectPeriod(history(15, burst))).toBeNull();
    const p = detectPeriod(history(25, burst));
    expect(p?.periodMs).toBe(600_000);
    expect(p!.confidence).toBeGreaterThan(0.8);
  });

  it('finds a slow period once two cycles are in the history', () => {
    const day = (t: number) => 80 * (1 + 0.7 * Math.sin((2 * Math.PI * t) / 1_800_000));
    const p = detectPeriod(history(65, day));
    expect(p).not.toBeNull();
    expect(Math.abs(p!.periodMs - 1_800_000)).toBeLessThanOrEqual(30_000);
  });

  it('finds no period in steady noise, a ramp or random swings', () => {
    expect(detectPeriod(history(60, () => 80, 0.1))).toBeNull();
    expect(detectPeriod(history(60, (t) => 20 + (180 * t) / 3_600_000, 0.05))).toBeNull();
    // A compressed day (one-hour sinusoid) seen for less than two periods: slow drift, not a period yet.
    expect(
      detectPeriod(history(60, (t) => 80 * (1 + 0.7 * Math.sin((2 * Math.PI * t) / 3_600_000)), 0.05)),
    ).toBeNull();
    // Random on/off bursts (an MMPP): high and low phases of random length.
    const rand = seededRandom(3);
    const phases: [number, number][] = [];
    for (let t = 0, high = false; t < 3_600_000; high = !high) {
      const len = (high ? 60_000 : 240_000) * -Math.log(1 - rand());
      phases.push([t, high ? 160 : 48]);
      t += len;
    }
    const mmpp = (t: number) => [...phases].reverse().find(([s]) => s <= t)![1];
    const found = [1, 2, 3].map((seed) => detectPeriod(history(60, mmpp, 0.05, seed)));
    expect(found.filter((p) => p !== null)).toEqual([]);
  });

  it('forecasts the peak of the same phase of the last cycles', () => {
    const h = history(30, burst, 0);
    // At 39 min the next burst starts within a minute: the cycle before peaked at 176 then.
    const now = 39 * 60_000 - 30_000;
    expect(forecastPeak(h, now, 60_000, 600_000)).toBe(176);
    // Mid-cycle nothing is coming for five minutes.
    expect(forecastPeak(h, 32 * 60_000, 300_000, 600_000)).toBe(48);
    // The history must reach back one period.
    expect(forecastPeak(history(5, burst, 0), 5 * 60_000, 60_000, 600_000)).toBeNull();
  });

  it('takes the lower of two cycles, so a one-off spike is not a pattern', () => {
    const h = history(40, (t) => (t >= 21 * 60_000 && t < 22 * 60_000 ? 400 : burst(t)), 0);
    // At 31 min, one cycle back holds the spike (21 min) and two cycles back (11 min) the base rate.
    expect(forecastPeak(h, 31 * 60_000, 60_000, 600_000)).toBe(48);
  });

  it('gives factors over the current rate for the two lead times', () => {
    const h = history(30, burst, 0);
    const a = anticipate(h, 29 * 60_000 - 0, 48, { shareMs: 30_000, replicaMs: 120_000 });
    expect(a).not.toBeNull();
    expect(a!.periodMs).toBe(600_000);
    // Burst at 29:00 + 0..1 min: both leads see it.
    expect(a!.shareFactor).toBeCloseTo(176 / 48, 5);
    const early = anticipate(h, 27 * 60_000, 48, { shareMs: 30_000, replicaMs: 120_000 });
    expect(early!.shareFactor).toBe(1);
    expect(early!.replicaFactor).toBeCloseTo(176 / 48, 5);
    expect(anticipate(h, 27 * 60_000, null, { shareMs: 30_000, replicaMs: 120_000 })).toBeNull();
    expect(
      anticipate(
        history(60, () => 80),
        60 * 60_000,
        80,
        { shareMs: 30_000, replicaMs: 120_000 },
      ),
    ).toBeNull();
  });

  it('keeps two of the longest periods and ignores samples out of order', () => {
    const h = newRateHistory();
    const settings = { minPeriodMs: 60_000, maxPeriodMs: 600_000, minConfidence: 0.8, keepConfidence: 0.6 };
    for (let t = 0; t <= 3_600_000; t += TICK) recordRate(h, t, 10, settings);
    expect(h.times[0]).toBeGreaterThanOrEqual(3_600_000 - 2 * 600_000 - 60_000);
    const n = h.times.length;
    recordRate(h, 1_000, 99, settings);
    recordRate(h, 3_700_000, Number.NaN, settings);
    expect(h.times.length).toBe(n);
  });
});
