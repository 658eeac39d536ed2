import { mkdtemp, readFile, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DecisionLog } from '../../src/policy/decision-log.js';
import type { DecisionRecord, Reward } from '../../src/policy/types.js';

const record = (id: string, pipelineId = 'p'): DecisionRecord => ({
  id,
  pipelineId,
  time: 0,
  selector: 'bandit',
  forecast: null,
  promptHash: null,
  tokens: null,
  latencyMs: 1,
  computeMs: 1,
  computeCpuMs: 1,
  candidates: ['hold', 's0+1'],
  proposed: 's0+1',
  applied: [{ kind: 'replicas', stage: 0, replicas: 2 }],
  guard: [],
  forced: false,
  appliedBy: [],
  floors: [],
  operatingPoint: [null, 0.4, null],
  fallbackReason: null,
  bottleneck: 0,
  pressure: [0.9],
  reason: 'r',
  stateBucket: 'b0|p1|l2',
  p99Ms: 100,
  sloP99Ms: 200,
  costRate: 1,
  dryRun: false,
  reward: null,
});

describe('DecisionLog', () => {
  it('writes one JSON line per decision and one per reward, and keeps the newest in memory', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-log-'));
    const path = join(dir, 'logs', 'decisions.jsonl');
    const log = new DecisionLog(path, 2);
    const a = record('a');
    log.record(a);
    log.record(record('b', 'q'));
    log.record(record('c'));
    const reward: Reward = {
      value: 1,
      why: 'dominates',
      outcome: { p99Ratio: 0.4, costRate: 1, sloViolation: 0 },
      reference: { p99Ratio: 0.6, costRate: 1, sloViolation: 0 },
      epsilon: { p99Ratio: 0.05, costRate: 0.02 },
    };
    log.reward(a, reward);
    expect(a.reward).toBe(reward);
    expect(log.latest(10).map((r) => r.id)).toEqual(['c', 'b']);
    expect(log.latest(10, 'p').map((r) => r.id)).toEqual(['c']);
    await log.close();
    const lines = (await readFile(path, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.type)).toEqual(['decision', 'decision', 'decision', 'reward']);
    expect(lines[0]).toMatchObject({ id: 'a', proposed: 's0+1', candidates: ['hold', 's0+1'], promptHash: null, latencyMs: 1 });
    expect(lines[3]).toMatchObject({ id: 'a', reward: { value: 1, epsilon: { p99Ratio: 0.05 } } });
  });

  it('rotates by size and keeps a bounded number of files', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sair-log-'));
    const path = join(dir, 'decisions.jsonl');
    const log = new DecisionLog(path, 10, { maxBytes: 4096, files: 3 });
    for (let i = 0; i < 100; i++) log.record(record(`d${i}`));
    await log.close();
    const files = (await readdir(dir)).sort();
    expect(files).toEqual(['decisions.jsonl', 'decisions.jsonl.1', 'decisions.jsonl.2']);
    for (const f of files) expect((await stat(join(dir, f))).size).toBeLessThanOrEqual(4096);
    // The newest decision is in the current file, the older ones rotated out.
    expect(await readFile(path, 'utf8')).toContain('"id":"d99"');
    expect(await readFile(`${path}.2`, 'utf8')).not.toContain('"id":"d99"');
  });
});
