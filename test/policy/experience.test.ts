import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExperienceBuffer, features, stateBucket, type Experience } from '../../src/policy/experience.js';
import { readSnapshot, writeSnapshot } from '../../src/policy/snapshot-file.js';
import type { RewardValue } from '../../src/policy/types.js';

const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
function exp(pressure: number[], actionKey: string, reward: RewardValue, p99 = 0.5): Omit<Experience, 'surprisal'> {
  return { time: 0, features: features(1, pressure, p99), actionKey, reward, outcome: out, reference: out, epsilon: { p99Ratio: 0.05, costRate: 0.02 } };
}

describe('ExperienceBuffer', () => {
  it('keys cells by state bucket and action', () => {
    const b = new ExperienceBuffer({ maxEntries: 100, maxBytes: 1 << 20 });
    b.add('p', exp([0.5, 0.9, 0.2], 's1+1', 1));
    b.add('p', exp([0.52, 0.91, 0.21], 's1+1', 1));
    b.add('p', exp([0.5, 0.9, 0.2], 'hold', 0));
    expect(b.size).toBe(2);
    expect(b.experiences).toBe(3);
    expect(stateBucket(features(1, [0.5, 0.9, 0.2], 0.5))).toBe('b1|p1|l120');
  });

  it('is bounded by count and by bytes, evicting the least recently used', () => {
    const byCount = new ExperienceBuffer({ maxEntries: 5, maxBytes: 1 << 20 });
    const byBytes = new ExperienceBuffer({ maxEntries: 10_000, maxBytes: 4096 });
    for (let i = 0; i < 200; i++) {
      byCount.add('p', exp([i / 50, 0.5, 0.5], `s0+${i % 7}`, 0));
      byBytes.add('p', exp([i / 50, 0.5, 0.5], `s0+${i % 7}`, 0));
    }
    expect(byCount.size).toBe(5);
    expect(byBytes.bytes).toBeLessThanOrEqual(4096);
    expect(byBytes.size).toBeGreaterThan(1);
  });

  it('scores surprise: an expected reward is unsurprising, the opposite one is', () => {
    const b = new ExperienceBuffer({ maxEntries: 100, maxBytes: 1 << 20 });
    for (let i = 0; i < 10; i++) b.add('p', exp([0.5, 1.1, 0.2], 's1+1', 1, 0.95));
    const expected = b.add('p', exp([0.5, 1.1, 0.2], 's1+1', 1, 0.95));
    const surprising = b.add('p', exp([0.5, 1.1, 0.2], 's1+1', -1, 0.95));
    expect(expected.surprisal).toBeLessThan(0.3);
    expect(surprising.surprisal).toBeGreaterThan(2);
    // An action never tried predicts each reward with p = 1/3.
    expect(b.add('p', exp([0.5, 1.1, 0.2], 's0-1', 0)).surprisal).toBeCloseTo(Math.log(3), 5);
    // Another pipeline's experience says nothing about this one.
    expect(b.add('q', exp([0.5, 1.1, 0.2], 's1+1', 1, 0.95)).surprisal).toBeCloseTo(Math.log(3), 5);
  });

  it('computes per-action statistics over similar states only', () => {
    const b = new ExperienceBuffer({ maxEntries: 100, maxBytes: 1 << 20 });
    for (let i = 0; i < 4; i++) b.add('p', exp([0.5, 1.1, 0.2], 's1+1', 1, 0.95));
    for (let i = 0; i < 4; i++) b.add('p', exp([0.1, 0.1, 0.1], 's1+1', -1, 0.1));
    const { stats } = b.neighbourhood('p', features(1, [0.5, 1.1, 0.2], 0.95), ['s1+1', 'hold']);
    expect(stats.get('s1+1')!.meanReward).toBeGreaterThan(0.9);
    expect(stats.has('hold')).toBe(false);
  });

  it('survives a snapshot to a file and back, and reports a damaged file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-snap-'));
    const path = join(dir, 'sub', 'experience.json');
    expect(await readSnapshot(path)).toBeNull();
    const a = new ExperienceBuffer({ maxEntries: 100, maxBytes: 1 << 20 });
    for (let i = 0; i < 6; i++) a.add('p', exp([i / 4, 0.5, 0.5], i % 2 ? 'hold' : 's0+1', i % 2 ? 0 : 1));
    await writeSnapshot(path, a.dump(), 42);
    const snap = await readSnapshot(path);
    const b = new ExperienceBuffer({ maxEntries: 100, maxBytes: 1 << 20 });
    b.load(snap!.cells);
    expect(snap!.savedAt).toBe(42);
    expect(b.dump()).toEqual(a.dump());
    const f = features(1, [0.3, 0.5, 0.5], 0.5);
    expect(b.predict('p', f, 's0+1')).toEqual(a.predict('p', f, 's0+1'));
    await writeFile(path, (await readFile(path, 'utf8')).replace('"version":1', '"version":7'));
    await expect(readSnapshot(path)).rejects.toThrow(/experience snapshot .* at version: .*delete the file/);
    await writeFile(path, '{"version":1,');
    await expect(readSnapshot(path)).rejects.toThrow(/not a JSON document written by sair/);
  });

  it('keeps the rate histories in the snapshot, and reads older snapshots without them', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-snap-'));
    const path = join(dir, 'experience.json');
    await writeSnapshot(path, [], 7, { 'ml/demo': { times: [15_000, 30_000], rates: [48, 176] } });
    expect((await readSnapshot(path))!.rates).toEqual({ 'ml/demo': { times: [15_000, 30_000], rates: [48, 176] } });
    await writeFile(path, JSON.stringify({ version: 1, savedAt: 7, cells: [] }));
    expect((await readSnapshot(path))!.rates).toEqual({});
    expect((await readSnapshot(path))!.operating).toEqual({});
    await writeFile(path, JSON.stringify({ version: 1, savedAt: 7, cells: [], rates: { 'ml/demo': { times: [1, 2], rates: [3] } } }));
    await expect(readSnapshot(path)).rejects.toThrow(/at rates\.ml\/demo: .*as many times as rates/);
  });

  it('keeps the learned cut depths in the snapshot, and refuses a depth out of range', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-snap-'));
    const path = join(dir, 'experience.json');
    const operating = { 'ml/demo': { stages: [null, { depth: 0.5, ceiling: 0.75, peaks: [0.4, 0.9] }, null] } };
    await writeSnapshot(path, [], 7, {}, operating);
    expect((await readSnapshot(path))!.operating).toEqual(operating);
    await writeFile(path, JSON.stringify({ version: 1, savedAt: 7, cells: [], operating: { 'ml/demo': { stages: [{ depth: 2, ceiling: 1, peaks: [] }] } } }));
    await expect(readSnapshot(path)).rejects.toThrow(/at operating\.ml\/demo\.stages\.0\.depth/);
  });
});
