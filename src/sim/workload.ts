// Workloads: when requests arrive. Each kind has a rate function the ground truth and the oracle
// read (the expected rate at time t, and an upper bound over an interval), and an arrival process
// that samples it with the simulator's seeded PRNG: Poisson or evenly spaced at a constant rate,
// non-homogeneous Poisson by thinning (ramp, diurnal, spike, burst, inline rate points), MMPP with
// 2 or 3 states, Gamma renewal with a chosen CV, and replay of a CSV trace (timestamps or
// per-second counts).
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { ConfigError, ValidationError } from '../common/errors.js';
import { Rng } from './rng.js';
import { name, num, parseYamlText, validate } from './schema.js';

const common = {
  name: name().optional(),
  description: z.string({ error: 'a string' }).optional(),
  /** Rates in units of the pipeline's referenceRate instead of requests per second. */
  relative: z.boolean({ error: 'true or false' }).default(false),
};

const MMPP_RATES = 'a list of 2 or 3 rates, one per state';
const MMPP_SOJOURNS = 'a list of 2 or 3 mean sojourn times in seconds, one per state';
const TRACE_FORMAT = '"timestamps" (one arrival time in seconds a line) or "counts" (requests per second, one a line)';
const TRACE_FILE = 'a path to a CSV file';
const TRACE_POINTS = 'a list of at least two [seconds, rate] pairs, the first at 0 seconds, times increasing';

const kindForm = '"constant", "poisson", "ramp", "diurnal", "spike", "burst", "mmpp", "gamma" or "trace"';

export const workloadFileSchema = z.discriminatedUnion(
  'kind',
  [
    z.object({ ...common, kind: z.literal('constant'), rate: num.atLeast(0), arrivals: z.enum(['poisson', 'uniform'], { error: '"poisson" or "uniform"' }).default('uniform') }).strict(),
    z.object({ ...common, kind: z.literal('poisson'), rate: num.atLeast(0) }).strict(),
    z.object({ ...common, kind: z.literal('ramp'), from: num.atLeast(0), to: num.atLeast(0), startSeconds: num.atLeast(0).default(0), rampSeconds: num.positive() }).strict(),
    z
      .object({ ...common, kind: z.literal('diurnal'), mean: num.atLeast(0), amplitude: num.atLeast(0, 1), periodSeconds: num.positive().default(86400), phaseSeconds: num.atLeast(0).default(0) })
      .strict(),
    z
      .object({ ...common, kind: z.literal('spike'), base: num.atLeast(0), multiplier: num.atLeast(0), atSeconds: num.atLeast(0), durationSeconds: num.positive(), everySeconds: num.positive().optional() })
      .strict(),
    z.object({ ...common, kind: z.literal('burst'), base: num.atLeast(0), peak: num.atLeast(0), periodSeconds: num.positive(), burstSeconds: num.positive() }).strict(),
    z
      .object({
        ...common,
        kind: z.literal('mmpp'),
        rates: z.array(num.atLeast(0), { error: MMPP_RATES }).min(2, { error: MMPP_RATES }).max(3, { error: MMPP_RATES }),
        meanSojournSeconds: z.array(num.positive(), { error: MMPP_SOJOURNS }).min(2, { error: MMPP_SOJOURNS }).max(3, { error: MMPP_SOJOURNS }),
      })
      .strict()
      .refine((m) => m.rates.length === m.meanSojournSeconds.length, { error: 'one mean sojourn time per rate', path: ['meanSojournSeconds'] }),
    z.object({ ...common, kind: z.literal('gamma'), rate: num.positive(), cv: num.positive() }).strict(),
    z
      .object({
        ...common,
        kind: z.literal('trace'),
        format: z.enum(['timestamps', 'counts'], { error: TRACE_FORMAT }).optional(),
        file: z.string({ error: TRACE_FILE }).min(1, { error: TRACE_FILE }).optional(),
        /** Inline rate points instead of a file: [seconds, rate] pairs, linearly interpolated. */
        points: z
          .array(z.tuple([num.atLeast(0), num.atLeast(0)], { error: 'a pair [seconds, rate]' }), { error: TRACE_POINTS })
          .min(2, { error: TRACE_POINTS })
          .superRefine((pts, ctx) => {
            if (pts[0]![0] !== 0) ctx.addIssue({ code: 'custom', message: 'the first point at 0 seconds', path: [0, 0] });
            for (let i = 1; i < pts.length; i++) {
              if (!(pts[i]![0] > pts[i - 1]![0])) ctx.addIssue({ code: 'custom', message: `a time after the previous point's (${pts[i - 1]![0]} s)`, path: [i, 0] });
            }
          })
          .optional(),
        /** Multiply the trace's rate (thins or repeats arrivals). */
        scale: num.positive().default(1),
        loop: z.boolean({ error: 'true or false' }).default(false),
      })
      .strict()
      .superRefine((t, ctx) => {
        if ((t.file === undefined) === (t.points === undefined)) ctx.addIssue({ code: 'custom', message: `${TRACE_FILE} (with format), or points: ${TRACE_POINTS}; exactly one of them`, path: ['file'] });
        if (t.file !== undefined && t.format === undefined) ctx.addIssue({ code: 'custom', message: TRACE_FORMAT, path: ['format'] });
        if (t.points !== undefined && t.format !== undefined) ctx.addIssue({ code: 'custom', message: 'absent with points (format describes a CSV file)', path: ['format'] });
      }),
  ],
  { error: `an object whose kind is ${kindForm}` },
);

export type WorkloadFile = z.output<typeof workloadFileSchema>;

/** The expected arrival rate over time, requests per second; times in ms from the run start. */
export interface RateFunction {
  at(t: number): number;
  /** An upper bound of the rate over [t0, t1]. */
  max(t0: number, t1: number): number;
}

/** A workload ready to run: its rate function and a fresh arrival process per run. */
export interface Workload {
  name: string;
  description: string;
  rate: RateFunction;
  /** Mean rate over [t0, t1], requests per second (numerical, 1 s resolution at most). */
  meanRate(t0: number, t1: number): number;
  /** Peak of the expected rate over [0, durationMs]. */
  peakRate(durationMs: number): number;
  /** A fresh arrival process; none come at or after `horizonMs`. */
  arrivals(rng: Rng, horizonMs: number): ArrivalProcess;
}

export interface ArrivalProcess {
  /**
   * The next arrival (absolute ms, >= `now`), or Infinity when none will come. The engine calls
   * it once per arrival with the previous arrival's time, so equal times mean simultaneous arrivals.
   */
  next(now: number): number;
}

const SEGMENT_MS = 10_000;

/** Non-homogeneous Poisson arrivals by thinning, with a fresh bound for each 10 s segment. */
class Thinning implements ArrivalProcess {
  private segEnd = -1;
  private bound = 0;

  constructor(
    private readonly rate: RateFunction,
    private readonly rng: Rng,
    private readonly horizonMs: number,
  ) {}

  next(now: number): number {
    let t = now;
    for (;;) {
      if (t >= this.horizonMs) return Infinity;
      if (t >= this.segEnd) {
        // A fresh bound for each segment; candidates within it reuse it.
        const start = t;
        this.segEnd = (Math.floor(t / SEGMENT_MS) + 1) * SEGMENT_MS;
        this.bound = this.rate.max(start, this.segEnd);
      }
      if (this.bound <= 0) {
        t = this.segEnd;
        continue;
      }
      t += this.rng.exponential(1000 / this.bound);
      if (t >= this.segEnd) {
        t = this.segEnd;
        continue;
      }
      if (this.rng.uniform() * this.bound <= this.rate.at(t)) return t;
    }
  }
}

class PoissonConstant implements ArrivalProcess {
  constructor(
    private readonly rate: number,
    private readonly rng: Rng,
  ) {}
  next(now: number): number {
    return this.rate <= 0 ? Infinity : now + this.rng.exponential(1000 / this.rate);
  }
}

class Uniform implements ArrivalProcess {
  private t: number;
  constructor(
    private readonly rate: number,
    rng: Rng,
  ) {
    this.t = rate > 0 ? rng.uniform() * (1000 / rate) : Infinity;
  }
  next(now: number): number {
    if (this.rate <= 0) return Infinity;
    while (this.t < now) this.t += 1000 / this.rate;
    const t = this.t;
    this.t += 1000 / this.rate;
    return t;
  }
}

class GammaRenewal implements ArrivalProcess {
  private readonly shape: number;
  private readonly scale: number;
  constructor(
    rate: number,
    cv: number,
    private readonly rng: Rng,
  ) {
    this.shape = 1 / (cv * cv);
    this.scale = 1000 / rate / this.shape;
  }
  next(now: number): number {
    return now + this.rng.gamma(this.shape, this.scale);
  }
}

/** Replays fixed arrival times (ms), repeating them every `periodMs` when looping. */
class Replay implements ArrivalProcess {
  private i = 0;
  private offset = 0;
  constructor(
    private readonly times: Float64Array,
    private readonly periodMs: number,
    private readonly loop: boolean,
  ) {}
  next(now: number): number {
    for (;;) {
      if (this.i >= this.times.length) {
        if (!this.loop || this.times.length === 0) return Infinity;
        this.i = 0;
        this.offset += this.periodMs;
      }
      const t = this.times[this.i++]! + this.offset;
      if (t >= now) return t;
    }
  }
}

/**
 * MMPP with 2 or 3 states: the state path is drawn from its own stream, so the rate function
 * (which the oracle reads) and the arrivals agree and neither depends on how far the other has
 * looked ahead. Two states alternate; with three, a state is left for one of the other two at
 * random.
 */
class MmppPath implements RateFunction {
  private readonly switches: number[] = [0];
  private readonly states: number[] = [0];
  private readonly rng: Rng;
  constructor(
    private readonly rates: readonly number[],
    private readonly sojournMs: readonly number[],
    seed: number,
  ) {
    this.rng = new Rng(seed ^ 0x5bd1e995);
  }
  private extend(t: number): void {
    const n = this.rates.length;
    while (this.switches[this.switches.length - 1]! <= t) {
      const state = this.states[this.states.length - 1]!;
      this.switches.push(this.switches[this.switches.length - 1]! + this.rng.exponential(this.sojournMs[state]!));
      // Two states need no draw for the next one, which keeps MMPP-2 paths as they were.
      this.states.push(n === 2 ? 1 - state : (state + 1 + Math.floor(this.rng.uniform() * (n - 1))) % n);
    }
  }
  private segment(t: number): number {
    this.extend(t);
    let lo = 0;
    let hi = this.switches.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.switches[mid]! <= t) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
  at(t: number): number {
    return this.rates[this.states[this.segment(t)]!]!;
  }
  max(t0: number, t1: number): number {
    const a = this.segment(t0);
    const b = this.segment(t1);
    let m = 0;
    for (let i = a; i <= b; i++) m = Math.max(m, this.rates[this.states[i]!]!);
    return m;
  }
}

/** Linear interpolation between [ms, rate] points; held at the ends, or repeated every last-point time when looping. */
function pointsRate(points: readonly (readonly [number, number])[], loop: boolean): RateFunction {
  const times = points.map((p) => p[0]);
  const rates = points.map((p) => p[1]);
  const period = times[times.length - 1]!;
  const inside = (t: number): number => {
    if (t <= 0) return rates[0]!;
    if (t >= period) return rates[rates.length - 1]!;
    let lo = 0;
    let hi = times.length - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >> 1;
      if (times[mid]! <= t) lo = mid;
      else hi = mid;
    }
    return rates[lo]! + ((rates[hi]! - rates[lo]!) * (t - times[lo]!)) / (times[hi]! - times[lo]!);
  };
  const at = (t: number): number => inside(loop ? t % period : t);
  return {
    at,
    // Exact for a piecewise-linear rate: the larger end, or a vertex inside [t0, t1].
    max: (t0, t1) => {
      let m = Math.max(at(t0), at(t1));
      const first = loop ? Math.floor(t0 / period) : 0;
      const last = loop ? Math.floor(t1 / period) : 0;
      if (last - first > 1) return Math.max(m, ...rates);
      for (let k = first; k <= last; k++) {
        times.forEach((ti, i) => {
          const t = k * period + ti;
          if (t >= t0 && t <= t1) m = Math.max(m, rates[i]!);
        });
      }
      return m;
    },
  };
}

function constantRate(r: number): RateFunction {
  return { at: () => r, max: () => r };
}

/** A rate function sampled from per-second counts (trace replay). */
function countsRate(perSecond: Float64Array, loop: boolean): RateFunction {
  const n = perSecond.length;
  const at = (t: number): number => {
    let s = Math.floor(t / 1000);
    if (loop && n > 0) s %= n;
    return s >= 0 && s < n ? perSecond[s]! : 0;
  };
  return {
    at,
    max: (t0, t1) => {
      let m = 0;
      for (let s = Math.floor(t0 / 1000); s <= Math.floor(t1 / 1000); s++) m = Math.max(m, at(s * 1000));
      return m;
    },
  };
}

function smoothMax(rate: (t: number) => number, t0: number, t1: number, slack: number): number {
  // For smooth or piecewise-monotone rates: sample densely and pad by `slack` (a bound on the
  // change between samples), which keeps thinning exact as long as the bound holds.
  let m = 0;
  const steps = 16;
  for (let i = 0; i <= steps; i++) m = Math.max(m, rate(t0 + ((t1 - t0) * i) / steps));
  return m + slack;
}

export interface BuildOptions {
  /** The pipeline's referenceRate, for relative workloads. */
  referenceRate: number;
  /** The run's seed (the MMPP path draws from a stream derived from it). */
  seed: number;
  /** Base directory for relative trace paths. */
  baseDir?: string;
}

/** Turn a validated workload file into a runnable workload. */
export function buildWorkload(file: WorkloadFile, opts: BuildOptions, fallbackName = 'workload'): Workload {
  const k = file.relative ? opts.referenceRate : 1;
  let rate: RateFunction;
  let arrivals: (rng: Rng, horizonMs: number) => ArrivalProcess;
  switch (file.kind) {
    case 'constant':
    case 'poisson': {
      const r = file.rate * k;
      rate = constantRate(r);
      arrivals = file.kind === 'constant' && file.arrivals === 'uniform' ? (rng) => new Uniform(r, rng) : (rng) => new PoissonConstant(r, rng);
      break;
    }
    case 'ramp': {
      const t0 = file.startSeconds * 1000;
      const t1 = t0 + file.rampSeconds * 1000;
      const f = (t: number): number => k * (t <= t0 ? file.from : t >= t1 ? file.to : file.from + ((file.to - file.from) * (t - t0)) / (t1 - t0));
      rate = { at: f, max: (a, b) => Math.max(f(a), f(b)) };
      arrivals = (rng, h) => new Thinning(rate, rng, h);
      break;
    }
    case 'diurnal': {
      const w = (2 * Math.PI) / (file.periodSeconds * 1000);
      const phase = file.phaseSeconds * 1000;
      // Starts at the trough: rate = mean * (1 - amplitude * cos(w (t + phase))).
      const f = (t: number): number => k * file.mean * (1 - file.amplitude * Math.cos(w * (t + phase)));
      const slope = k * file.mean * file.amplitude * w; // max |dr/dt| per ms
      rate = { at: f, max: (a, b) => smoothMax(f, a, b, (slope * (b - a)) / 16) };
      arrivals = (rng, h) => new Thinning(rate, rng, h);
      break;
    }
    case 'spike': {
      const start = file.atSeconds * 1000;
      const len = file.durationSeconds * 1000;
      const every = file.everySeconds === undefined ? Infinity : file.everySeconds * 1000;
      const inSpike = (t: number): boolean => t >= start && (t - start) % every < len;
      const f = (t: number): number => k * file.base * (inSpike(t) ? file.multiplier : 1);
      rate = {
        at: f,
        max: (a, b) => {
          const hi = k * file.base * Math.max(1, file.multiplier);
          if (b < start) return k * file.base;
          if (every === Infinity) return a <= start + len ? hi : k * file.base;
          return hi;
        },
      };
      arrivals = (rng, h) => new Thinning(rate, rng, h);
      break;
    }
    case 'burst': {
      const period = file.periodSeconds * 1000;
      const len = Math.min(file.burstSeconds * 1000, period);
      // Each period ends with a burst, so a run starts at the base rate.
      const f = (t: number): number => k * (t % period >= period - len ? file.peak : file.base);
      rate = { at: f, max: () => k * Math.max(file.base, file.peak) };
      arrivals = (rng, h) => new Thinning(rate, rng, h);
      break;
    }
    case 'mmpp': {
      const path = new MmppPath(file.rates.map((r) => r * k), file.meanSojournSeconds.map((s) => s * 1000), opts.seed);
      rate = path;
      arrivals = (rng, h) => new Thinning(path, rng, h);
      break;
    }
    case 'gamma': {
      const r = file.rate * k;
      rate = constantRate(r);
      arrivals = (rng) => new GammaRenewal(r, file.cv, rng);
      break;
    }
    case 'trace': {
      if (file.points !== undefined) {
        const scale = file.scale * k;
        rate = pointsRate(file.points.map(([sec, r]) => [sec * 1000, r * scale] as const), file.loop);
        arrivals = (rng, h) => new Thinning(rate, rng, h);
        break;
      }
      // The schema gives a file and its format whenever there are no points.
      const { file: csv, format } = file as { file: string; format: 'timestamps' | 'counts' };
      const path = csv.startsWith('/') || opts.baseDir === undefined ? csv : `${opts.baseDir}/${csv}`;
      const trace = readTrace(path, format);
      const scale = file.scale * k;
      const counts = new Float64Array(trace.perSecond.length);
      for (let i = 0; i < counts.length; i++) counts[i] = trace.perSecond[i]! * scale;
      rate = countsRate(counts, file.loop);
      if (format === 'timestamps' && scale === 1) {
        arrivals = () => new Replay(trace.times!, trace.perSecond.length * 1000, file.loop);
      } else if (format === 'counts' && scale === 1) {
        // Exactly the recorded count in each second, at uniformly random instants within it.
        arrivals = (rng) => new Replay(spreadCounts(trace.perSecond, rng), trace.perSecond.length * 1000, file.loop);
      } else {
        arrivals = (rng, h) => new Thinning(rate, rng, h);
      }
      break;
    }
  }
  const r = rate;
  return {
    name: file.name ?? fallbackName,
    description: file.description ?? '',
    rate: r,
    meanRate: (t0, t1) => {
      if (t1 <= t0) return r.at(t0);
      const steps = Math.max(1, Math.min(600, Math.ceil((t1 - t0) / 1000)));
      let sum = 0;
      for (let i = 0; i < steps; i++) sum += r.at(t0 + ((i + 0.5) * (t1 - t0)) / steps);
      return sum / steps;
    },
    peakRate: (durationMs) => {
      let m = 0;
      for (let t = 0; t <= durationMs; t += 1000) m = Math.max(m, r.at(t));
      return m;
    },
    arrivals,
  };
}

function spreadCounts(perSecond: Float64Array, rng: Rng): Float64Array {
  let total = 0;
  for (const c of perSecond) total += Math.round(c);
  const out = new Float64Array(total);
  let j = 0;
  for (let s = 0; s < perSecond.length; s++) {
    const n = Math.round(perSecond[s]!);
    const start = j;
    for (let i = 0; i < n; i++) out[j++] = s * 1000 + rng.uniform() * 1000;
    out.subarray(start, j).sort();
  }
  return out;
}

/** Read a CSV trace: one number a line (an optional header line and extra columns are ignored). */
export function readTrace(path: string, format: 'timestamps' | 'counts'): { perSecond: Float64Array; times?: Float64Array } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([new ValidationError('trace file', 'a readable CSV file', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)]);
  }
  const values: number[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const cell = lines[i]!.split(',')[0]!.trim();
    if (cell === '') continue;
    const v = Number(cell);
    if (!Number.isFinite(v) || v < 0) {
      if (values.length === 0 && i === 0 && Number.isNaN(v)) continue; // a header line
      const form = format === 'timestamps' ? 'an arrival time in seconds >= 0' : 'a request count >= 0';
      throw new ConfigError([new ValidationError(`${path}: line ${i + 1}`, form, cell)]);
    }
    values.push(v);
  }
  if (format === 'counts') return { perSecond: Float64Array.from(values) };
  const times = Float64Array.from(values, (s) => s * 1000).sort();
  const seconds = times.length === 0 ? 0 : Math.floor(times[times.length - 1]! / 1000) + 1;
  const perSecond = new Float64Array(seconds);
  for (const t of times) perSecond[Math.floor(t / 1000)]!++;
  return { perSecond, times };
}

export function parseWorkload(input: unknown, opts: BuildOptions, source = 'workload'): Workload {
  return buildWorkload(validate(workloadFileSchema, input, source), opts, source);
}

export function loadWorkloadFile(path: string, opts: Omit<BuildOptions, 'baseDir'>): Workload {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([new ValidationError('--workload', 'a built-in workload name or a readable YAML file', `${path} (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`)]);
  }
  const dir = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '.';
  const fallback = path.slice(path.lastIndexOf('/') + 1).replace(/\.ya?ml$/, '');
  return buildWorkload(validate(workloadFileSchema, parseYamlText(text, path), path), { ...opts, baseDir: dir }, fallback);
}
