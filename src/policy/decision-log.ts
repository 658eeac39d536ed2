// The decision log: every decision as one JSON line when it is made, and one more line with its
// reward when the next window measures it; the most recent ones are kept in memory for the API.
// Rotated by size: past maxBytes the file becomes `<path>.1` (`.1` becomes `.2`, ...) and the
// oldest beyond `files` is deleted, so the log never holds more than files x maxBytes on disk.
import { createWriteStream, fstatSync, mkdirSync, openSync, renameSync, rmSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { toJson } from '../common/json.js';
import type { DecisionRecord, Reward } from './types.js';

export interface DecisionLogRotation {
  /** Bytes in the current file before it is rotated. */
  maxBytes: number;
  /** Files kept in all, the current one included. */
  files: number;
}

/** 4 x 32 MiB: fits the 256 MiB state volume of the shipped manifests with room for the snapshot. */
export const DEFAULT_ROTATION: DecisionLogRotation = { maxBytes: 32 * 1024 * 1024, files: 4 };

export class DecisionLog {
  private readonly recent: DecisionRecord[] = [];
  private stream: WriteStream | null;
  private bytes = 0;
  private readonly closing: Promise<void>[] = [];

  constructor(
    private readonly path: string | undefined,
    private readonly keep = 500,
    private readonly rotation: DecisionLogRotation = DEFAULT_ROTATION,
  ) {
    if (path) mkdirSync(dirname(path), { recursive: true });
    this.stream = path ? this.open() : null;
  }

  /** Opened synchronously, so a rotation renames the file this stream already writes to. */
  private open(): WriteStream {
    const fd = openSync(this.path!, 'a');
    this.bytes = fstatSync(fd).size;
    return createWriteStream('', { fd });
  }

  private write(line: string): void {
    if (!this.stream) return;
    const size = Buffer.byteLength(line);
    if (this.bytes > 0 && this.bytes + size > this.rotation.maxBytes) this.rotate();
    this.stream.write(line);
    this.bytes += size;
  }

  private rotate(): void {
    const old = this.stream!;
    this.closing.push(new Promise<void>((resolve) => old.end(() => resolve())));
    const path = this.path!;
    rmSync(`${path}.${this.rotation.files - 1}`, { force: true });
    for (let i = this.rotation.files - 2; i >= 1; i--) {
      try {
        renameSync(`${path}.${i}`, `${path}.${i + 1}`);
      } catch {
        // Not there yet: fewer rotations so far than files kept.
      }
    }
    if (this.rotation.files > 1) renameSync(path, `${path}.1`);
    else rmSync(path, { force: true });
    this.stream = this.open();
  }

  record(r: DecisionRecord): void {
    this.recent.push(r);
    if (this.recent.length > this.keep) this.recent.shift();
    this.write(`${toJson({ type: 'decision', ...r })}\n`);
  }

  /** Attach the measured reward to a decision (it is already in memory by reference). */
  reward(r: DecisionRecord, reward: Reward): void {
    r.reward = reward;
    this.write(`${toJson({ type: 'reward', id: r.id, pipelineId: r.pipelineId, reward })}\n`);
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

  async close(): Promise<void> {
    await Promise.all(this.closing);
    const s = this.stream;
    if (!s) return;
    await new Promise<void>((resolve, reject) => s.end((err?: Error | null) => (err ? reject(err) : resolve())));
  }
}
