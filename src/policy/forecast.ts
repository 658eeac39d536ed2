// Load that comes back: finds a period in a pipeline's entry rate (autocorrelation of the
// detrended series) and, when one is clear, forecasts the peak rate of the coming minutes from the
// same phase of the last cycles. Recurring bursts (batch jobs, cron traffic, the paper's burst
// workload) can then be met before they arrive, and the capacity kept for them can be released
// between them. Pure: the caller keeps the history.
import { TUNING } from './tuning.js';

export interface RateHistory {
  times: number[];
  rates: number[];
  /** The period trusted at the last anticipate(), kept with hysteresis. */
  period: Period | null;
}

export const newRateHistory = (): RateHistory => ({ times: [], rates: [], period: null });

export interface ForecastSettings {
  /** Shortest period looked for; shorter swings are noise for a 15 s controller. */
  minPeriodMs: number;
  /** Longest period looked for; the history keeps two of them (and a lead). */
  maxPeriodMs: number;
  /** Autocorrelation a new period needs to be trusted, 0..1 (random on/off load reaches about 0.75 by chance). */
  minConfidence: number;
  /** Autocorrelation below which a trusted period is dropped. */
  keepConfidence: number;
}

export const DEFAULT_FORECAST: ForecastSettings = {
  minPeriodMs: 120_000,
  maxPeriodMs: 3_600_000,
  minConfidence: 0.8,
  keepConfidence: 0.6,
};


/** The oldest sample time worth keeping at `now`: two of the longest periods and one of the shortest. */
export function historyStart(now: number, settings: ForecastSettings = DEFAULT_FORECAST): number {
  return now - 2 * settings.maxPeriodMs - settings.minPeriodMs;
}

export function recordRate(
  h: RateHistory,
  time: number,
  rate: number,
  settings: ForecastSettings = DEFAULT_FORECAST,
): void {
  if (!Number.isFinite(rate) || rate < 0) return;
  const last = h.times.at(-1);
  if (last !== undefined && time <= last) return;
  h.times.push(time);
  h.rates.push(rate);
  const keepFrom = historyStart(time, settings);
  let drop = 0;
  while (drop < h.times.length && h.times[drop]! < keepFrom) drop++;
  if (drop > 0) {
    h.times.splice(0, drop);
    h.rates.splice(0, drop);
  }
}

/** The series on an even grid of the median sample spacing; a gap repeats the last value. */
function resample(h: RateHistory): { slotMs: number; values: number[] } | null {
  const n = h.times.length;
  if (n < 8) return null;
  const gaps: number[] = [];
  for (let i = 1; i < n; i++) gaps.push(h.times[i]! - h.times[i - 1]!);
  gaps.sort((a, b) => a - b);
  const slotMs = gaps[Math.floor(gaps.length / 2)]!;
  if (!(slotMs > 0)) return null;
  const t0 = h.times[0]!;
  const slots = Math.round((h.times[n - 1]! - t0) / slotMs) + 1;
  if (slots > 20_000) return null;
  const values = new Array<number>(slots);
  let j = 0;
  for (let s = 0; s < slots; s++) {
    const t = t0 + s * slotMs;
    while (j + 1 < n && h.times[j + 1]! <= t + slotMs / 2) j++;
    values[s] = h.rates[j]!;
  }
  return { slotMs, values };
}

export interface Period {
  periodMs: number;
  /** Autocorrelation at the period, 0..1. */
  confidence: number;
}

/** Autocorrelation of the detrended rate at each lag from minLag to maxLag; null when the rate hardly varies. */
function correlogram(
  h: RateHistory,
  settings: ForecastSettings,
): { slotMs: number; r: number[]; minLag: number; maxLag: number } | null {
  const grid = resample(h);
  if (!grid) return null;
  const { slotMs, values } = grid;
  const n = values.length;
  // Remove a linear trend: a ramp correlates with itself at every lag without being periodic.
  let sx = 0;
  let sy = 0;
  let sxx = 0;
  let sxy = 0;
  for (let i = 0; i < n; i++) {
    sx += i;
    sy += values[i]!;
    sxx += i * i;
    sxy += i * values[i]!;
  }
  const slope = (n * sxy - sx * sy) / (n * sxx - sx * sx || 1);
  const intercept = (sy - slope * sx) / n;
  const mean = sy / n;
  const y = values.map((v, i) => v - (intercept + slope * i));
  let variance = 0;
  for (const v of y) variance += v * v;
  variance /= n;
  if (!(mean > 0) || Math.sqrt(variance) / mean < TUNING.forecastMinVariation) return null;
  const minLag = Math.max(2, Math.ceil(settings.minPeriodMs / slotMs));
  const maxLag = Math.min(Math.floor(n / 2), Math.floor(settings.maxPeriodMs / slotMs));
  const r: number[] = [];
  for (let lag = minLag; lag <= maxLag; lag++) {
    let s = 0;
    for (let i = lag; i < n; i++) s += y[i]! * y[i - lag]!;
    r[lag] = s / (n - lag) / variance;
  }
  return { slotMs, r, minLag, maxLag };
}

/**
 * The period of the rate, when the history holds two cycles of a clear one; else null. A period
 * found before (`known`) is kept while its autocorrelation stays above `keepConfidence`, so one
 * burst entering the window does not switch the forecast off just before the next one.
 */
export function detectPeriod(
  h: RateHistory,
  settings: ForecastSettings = DEFAULT_FORECAST,
  known: Period | null = null,
): Period | null {
  const c = correlogram(h, settings);
  if (!c || c.maxLag < c.minLag + 2) return null;
  const { slotMs, r, minLag, maxLag } = c;
  if (known) {
    const v = r[Math.round(known.periodMs / slotMs)];
    if (v !== undefined && v >= settings.keepConfidence)
      return { periodMs: known.periodMs, confidence: Math.min(1, v) };
  }
  let best = -Infinity;
  for (let lag = minLag; lag <= maxLag; lag++) best = Math.max(best, r[lag]!);
  if (best < settings.minConfidence) return null;
  // A period is a peak inside the lags tried (one at the longest lag may be the flank of one just
  // beyond it) after a dip: slow drift correlates at every short lag without ever coming back.
  let dip = Infinity;
  for (let lag = minLag + 1; lag < maxLag; lag++) {
    const v = r[lag]!;
    dip = Math.min(dip, r[lag - 1]!);
    const localMax = r[lag - 1]! <= v && r[lag + 1]! <= v;
    if (localMax && v >= TUNING.forecastNearBest * best && v - dip >= TUNING.forecastMinDip)
      return { periodMs: lag * slotMs, confidence: Math.min(1, v) };
  }
  return null;
}

/**
 * Peak rate expected over [now, now + horizonMs]: the peak of the same phase of the last two
 * cycles, the lower of the two (a one-off spike in one cycle is not a pattern). Null when the
 * history does not reach back one period.
 */
export function forecastPeak(
  h: RateHistory,
  now: number,
  horizonMs: number,
  periodMs: number,
): number | null {
  const peaks: number[] = [];
  for (let k = 1; k <= 2; k++) {
    const from = now - k * periodMs;
    const to = from + horizonMs;
    if (h.times.length === 0 || h.times[0]! > from) break;
    let peak = -Infinity;
    for (let i = 0; i < h.times.length; i++) {
      const t = h.times[i]!;
      if (t >= from && t <= to) peak = Math.max(peak, h.rates[i]!);
    }
    if (peak > -Infinity) peaks.push(peak);
  }
  return peaks.length === 0 ? null : Math.min(...peaks);
}

/** What the floors need: how much more load than now to expect within each lead time. */
export interface Anticipation {
  periodMs: number;
  confidence: number;
  /** Expected peak entry rate over the share lead / the current rate (>= 1). */
  shareFactor: number;
  /** Expected peak entry rate over the replica lead / the current rate (>= 1). */
  replicaFactor: number;
}


export function anticipate(
  h: RateHistory,
  now: number,
  currentRate: number | null,
  leads: { shareMs: number; replicaMs: number },
  settings: ForecastSettings = DEFAULT_FORECAST,
): Anticipation | null {
  if (currentRate === null || !(currentRate > 0)) return null;
  const period = detectPeriod(h, settings, h.period);
  h.period = period;
  if (!period) return null;
  const factor = (leadMs: number): number | null => {
    const peak = forecastPeak(h, now, leadMs, period.periodMs);
    if (peak === null) return null;
    const f = Math.min(TUNING.forecastMaxFactor, peak / currentRate);
    return f < TUNING.forecastMinFactor ? 1 : f;
  };
  const shareFactor = factor(leads.shareMs);
  const replicaFactor = factor(leads.replicaMs);
  if (shareFactor === null || replicaFactor === null) return null;
  return { ...period, shareFactor, replicaFactor: Math.max(shareFactor, replicaFactor) };
}
