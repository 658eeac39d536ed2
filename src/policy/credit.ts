// Credit that can pay: every decision, holds included, is judged on what followed it over the next
// windows (settings.creditHorizonWindows), not on the one window after it, and against the value of
// the state it was taken in, not against the window before it. The state's value is the mean
// outcome of every decision taken in that kind of state (the experience buffer's state bucket),
// whatever it was; the load is in the state, so the difference is the action's. Judged against the
// previous window, a share raise that met a burst looked bad because the burst raised P99, and the
// trim after it looked good because the burst ended.
// The reward is Pareto dominance, as before, of the horizon's mean outcome (P99/SLO, cost rate)
// over the state's mean outcome, with a margin from the state's own spread, and -1 for an SLO
// breach over the horizon. Pure: the caller keeps the state and feeds it one outcome per tick.
import { computeReward, type Epsilon } from './reward.js';
import type { Outcome, Reward } from './types.js';

/** A decision waiting for its horizon to pass. */
export interface PendingCredit<T> {
  time: number;
  /** The kind of state it was taken in (the experience buffer's state bucket). */
  stateKey: string;
  /** Outcomes seen since, one per tick. */
  seen: Outcome[];
  /** Whatever the caller needs back when it is judged (the record, features, action key). */
  payload: T;
}

/** Running mean and variance (exponentially weighted past VALUE_WINDOW samples). */
interface Moments {
  mean: number;
  m2: number;
}

interface Value {
  n: number;
  p99Ratio: Moments;
  costRate: Moments;
  violation: Moments;
}

export interface CreditState<T> {
  pending: PendingCredit<T>[];
  values: Map<string, Value>;
}

export const newCreditState = <T>(): CreditState<T> => ({ pending: [], values: new Map() });

export interface Credit<T> {
  payload: T;
  reward: Reward;
}

/** Most decisions a state's value averages over: about an hour of ticks, so it follows the policy as it learns. */
const VALUE_WINDOW = 240;
/** Margins never below these: 5 % of the SLO, 2 % of the state's cost (as the per-window reward had). */
const P99_MARGIN_FLOOR = 0.05;
const COST_MARGIN_FLOOR = 0.02;

const violationOf = (o: Outcome): number => o.sloViolation ?? (o.p99Ratio > 1 ? 1 : 0);

/** The mean outcome of a horizon. */
export function horizonOutcome(seen: readonly Outcome[]): Outcome {
  const n = Math.max(seen.length, 1);
  const costRate = seen.reduce((s, o) => s + o.costRate, 0) / n;
  const violation = seen.reduce((s, o) => s + violationOf(o), 0) / n;
  // P99 is capped so one window of drops (an unbounded P99) does not swamp the mean.
  const p99Ratio = seen.reduce((s, o) => s + Math.min(o.p99Ratio, 10), 0) / n;
  return { p99Ratio, costRate, sloViolation: violation };
}

/**
 * Most decisions waiting for credit: about an hour of 15 s ticks. While metrics are missing no
 * outcome judges them, so the oldest are dropped rather than kept without bound.
 */
export const MAX_PENDING = 256;

/** Queue a decision for credit. */
export function awaitCredit<T>(state: CreditState<T>, time: number, stateKey: string, payload: T): void {
  state.pending.push({ time, stateKey, seen: [], payload });
  if (state.pending.length > MAX_PENDING) state.pending.shift();
}

const sd = (m: Moments, n: number): number => (n > 1 ? Math.sqrt(m.m2 / (n - 1)) : 0);

/**
 * Feed this tick's outcome to every waiting decision and judge those whose horizon (in clock ms)
 * has passed; each judged decision then joins its state's value.
 */
export function creditTick<T>(state: CreditState<T>, outcome: Outcome, now: number, horizonMs: number): Credit<T>[] {
  const done: Credit<T>[] = [];
  const keep: PendingCredit<T>[] = [];
  for (const p of state.pending) {
    // The window that ends at the decision's own tick measured the time before it.
    if (now > p.time) p.seen.push(outcome);
    if (now - p.time < horizonMs || p.seen.length === 0) {
      keep.push(p);
      continue;
    }
    const mean = horizonOutcome(p.seen);
    const v = state.values.get(p.stateKey);
    const reference: Outcome = v ? { p99Ratio: v.p99Ratio.mean, costRate: v.costRate.mean, sloViolation: v.violation.mean } : mean;
    const epsilon: Epsilon = {
      p99Ratio: Math.max(P99_MARGIN_FLOOR, v ? 0.5 * sd(v.p99Ratio, v.n) : 0),
      costRate: Math.max(COST_MARGIN_FLOOR * reference.costRate, v ? 0.5 * sd(v.costRate, v.n) : 0, 1e-9),
    };
    done.push({ payload: p.payload, reward: computeReward(mean, reference, epsilon) });
    state.values.set(p.stateKey, fold(v, mean));
  }
  state.pending = keep;
  return done;
}

function moment(m: Moments | undefined, x: number, n: number, capped: boolean): Moments {
  if (!m) return { mean: x, m2: 0 };
  const delta = x - m.mean;
  const mean = m.mean + delta / n;
  return { mean, m2: (capped ? m.m2 * (1 - 1 / n) : m.m2) + delta * (x - mean) };
}

function fold(v: Value | undefined, o: Outcome): Value {
  const capped = (v?.n ?? 0) >= VALUE_WINDOW;
  const n = Math.min((v?.n ?? 0) + 1, VALUE_WINDOW);
  return {
    n,
    p99Ratio: moment(v?.p99Ratio, o.p99Ratio, n, capped),
    costRate: moment(v?.costRate, o.costRate, n, capped),
    violation: moment(v?.violation, violationOf(o), n, capped),
  };
}
