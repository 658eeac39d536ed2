// The operating point moves only on judged episodes, tries neighbours of the best point, and goes
// back to what pays.
import { newOperatingState, nextEpisode, noteAdvantage, operatingMultiplier } from '../../src/policy/operating-point.js';
import { TUNING } from '../../src/policy/tuning.js';

const E = TUNING.operatingEpisodeMs;

/** Run episodes in which each multiplier earns `pay(m)` per judged decision. */
function episodes(n: number, pay: (m: number) => number, learning = true, violatedAt?: (m: number) => boolean) {
  const s = newOperatingState();
  const seen: number[] = [];
  nextEpisode(s, 0, learning);
  for (let k = 1; k <= n; k++) {
    for (let d = 0; d < 10; d++) noteAdvantage(s, pay(operatingMultiplier(s)), violatedAt?.(operatingMultiplier(s)) ?? false);
    nextEpisode(s, k * E, learning);
    seen.push(operatingMultiplier(s));
  }
  return { s, seen };
}

describe('operating point', () => {
  it('starts at the default and stays there with learning off', () => {
    expect(operatingMultiplier(newOperatingState())).toBe(1);
    expect(new Set(episodes(12, (m) => m, false).seen)).toEqual(new Set([1]));
  });

  it('does not move before an episode has passed', () => {
    const s = newOperatingState();
    nextEpisode(s, 0, true);
    noteAdvantage(s, 5, false);
    expect(nextEpisode(s, E - 1, true)).toBeNull();
    expect(operatingMultiplier(s)).toBe(1);
  });

  it('settles on a hotter point where running hotter pays, after trying its neighbours', () => {
    const { seen } = episodes(30, (m) => m - 1);
    // Upper confidence bounds still look at the runner-up now and then.
    expect(seen.slice(-10).filter((m) => m === Math.max(...TUNING.operatingPoints)).length).toBeGreaterThanOrEqual(7);
  });

  it('settles back on the default where every other point costs', () => {
    const { seen } = episodes(30, (m) => -Math.abs(m - 1));
    expect(seen.slice(-5).filter((m) => m === 1).length).toBeGreaterThanOrEqual(3);
  });

  it('tries no hotter point right after an episode with SLO violations', () => {
    const { seen } = episodes(8, () => 0, true, () => true);
    for (let k = 1; k < seen.length; k++) expect(seen[k]!).toBeLessThanOrEqual(seen[k - 1]!);
  });
});
