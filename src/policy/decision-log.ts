// The decision log: every decision as one JSON line when it is made, and one more line with its
// reward when the next window measures it; the most recent ones are kept in memory for the API.
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { toJson } from '../common/json.js';
import type { DecisionRecord, Reward } from './types.js';

export class DecisionLog {
  private readonly recent: DecisionRecord[] = [];
  private readonly stream: WriteStream | null;

  constructor(
    path: string | undefined,
    private readonly keep = 500,
  ) {
    if (path) mkdirSync(dirname(path), { recursive: true });
    this.stream = path ? createWriteStream(path, { flags: 'a' }) : null;
  }

  record(r: DecisionRecord): void {
    this.recent.push(r);
    if (this.recent.length > this.keep) this.recent.shift();
    this.stream?.write(`${toJson({ type: 'decision', ...r })}\n`);
  }

  /** Attach the measured reward to a decision (it is already in memory by reference). */
  reward(r: DecisionRecord, reward: Reward): void {
    r.reward = reward;
    this.stream?.write(`${toJson({ type: 'reward', id: r.id, pipelineId: r.pipelineId, reward })}\n`);
  }

  /** Newest first. */
  latest(limit: number, pipelineId?: string): DecisionRecord[] {
    const out: DecisionRecord[] = [];
    for (let i = this.recent.length - 1; i >= 0 && out.length < limit; i--) {
      const r = this.recent[i]!;
      if (pipelineId === undefined || r.pipelineId === pipelineId) out.push(r);
    }
    return out;
  }

  close(): Promise<void> {
    const s = this.stream;
    if (!s) return Promise.resolve();
    return new Promise((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
