// The operating point a pipeline runs at, learned from its own outcomes: how hot its stages run (the
// load/capacity the candidates' priors aim for) and how deep a GPU cut may go, as one multiplier of
// the safe defaults. Each point is held for an episode (TUNING.operatingEpisodeMs) and judged by the
// mean advantage of the decisions taken under it (credit.ts: return over the horizon against the
// state's value, so a busy episode is not blamed on the point). The next point is the one with the
// best upper confidence bound; the default starts with TUNING.operatingPrior episodes of credit at 0,
// so it is where a pipeline starts and what it returns to when nothing else pays. Only a neighbour of
// the best point so far is tried, and no hotter point right after an episode with SLO violations.
// Pure.
import { TUNING } from './tuning.js';

interface Arm {
  /** Episodes judged (the prior included for the default). */
  n: number;
  /** Mean of their mean advantages. */
  mean: number;
}

export interface OperatingState {
  arms: Arm[];
  /** Index into TUNING.operatingPoints of the point in force. */
  current: number;
  episodeStart: number | null;
  /** Advantages of this episode's judged decisions. */
  sum: number;
  count: number;
  /** Whether this episode saw violating windows. */
  violated: boolean;
}

export function newOperatingState(): OperatingState {
  return {
    arms: TUNING.operatingPoints.map((_, i) => (i === 0 ? { n: TUNING.operatingPrior, mean: 0 } : { n: 0, mean: 0 })),
    current: 0,
    episodeStart: null,
    sum: 0,
    count: 0,
    violated: false,
  };
}

/** The multiplier of the default load targets in force. */
export const operatingMultiplier = (s: OperatingState): number => TUNING.operatingPoints[s.current] ?? 1;

/** Count one judged decision's advantage toward the episode in force. */
export function noteAdvantage(s: OperatingState, advantage: number, violated: boolean): void {
  s.sum += advantage;
  s.count += 1;
  s.violated ||= violated;
}

/**
 * At an episode's end, fold it into its point's record and pick the next point; returns a note when
 * the point changes. `learning` false keeps the default (the ablation).
 */
export function nextEpisode(s: OperatingState, now: number, learning: boolean): string | null {
  if (s.episodeStart === null) {
    s.episodeStart = now;
    return null;
  }
  if (now - s.episodeStart < TUNING.operatingEpisodeMs) return null;
  const was = s.current;
  if (s.count > 0) {
    const arm = s.arms[was]!;
    const episodeMean = s.sum / s.count;
    arm.mean = (arm.mean * arm.n + episodeMean) / (arm.n + 1);
    arm.n += 1;
  }
  const violated = s.violated;
  s.episodeStart = now;
  s.sum = 0;
  s.count = 0;
  s.violated = false;
  if (!learning) return null;
  s.current = choose(s, violated);
  return s.current === was ? null : `operating point x${operatingMultiplier(s)} (was x${TUNING.operatingPoints[was]})`;
}

function choose(s: OperatingState, violated: boolean): number {
  const points = TUNING.operatingPoints;
  const total = s.arms.reduce((a, x) => a + x.n, 0);
  const best = s.arms.reduce((b, x, i) => (x.n > 0 && (b < 0 || x.mean > s.arms[b]!.mean) ? i : b), -1);
  const anchor = points[best < 0 ? 0 : best]!;
  // Neighbours of the best point in load target, the best itself, and the point in force.
  const sorted = points.map((m, i) => ({ m, i })).sort((a, b) => a.m - b.m);
  const at = sorted.findIndex((x) => x.m === anchor);
  const allowed = new Set([sorted[at - 1]?.i, sorted[at]?.i, sorted[at + 1]?.i, s.current].filter((i): i is number => i !== undefined));
  const hotterThanNow = (i: number) => points[i]! > points[s.current]!;
  let pick = s.current;
  let score = -Infinity;
  // The scale of advantages: the spread of the arms' means, so the bonus is in the same units.
  const scale = Math.max(1e-6, ...s.arms.filter((a) => a.n > 0).map((a) => Math.abs(a.mean)));
  for (const i of allowed) {
    if (violated && hotterThanNow(i)) continue;
    const arm = s.arms[i]!;
    const bonus = arm.n === 0 ? Infinity : scale * Math.sqrt((2 * Math.log(Math.max(total, 2))) / arm.n);
    const v = arm.mean + bonus;
    if (v > score) {
      score = v;
      pick = i;
    }
  }
  return pick;
}
