// The experience buffer on disk, with each pipeline's entry-rate history (so a restart does not
// have to see a recurring load's period twice again): written atomically and durably (a temp file
// of a unique name, fsync, rename, fsync of the directory) so a crash mid-write leaves the previous
// snapshot and two writers never share a temp file, and validated on read so a damaged file is
// reported, not trusted.
import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { z } from 'zod';
import { ValidationError } from '../common/errors.js';
import type { Cell } from './experience.js';

const outcome = z.object({ p99Ratio: z.number(), costRate: z.number(), sloViolation: z.number().nullable() });
const experience = z.object({
  time: z.number(),
  features: z.object({ bottleneck: z.number().int().nullable(), pressure: z.array(z.number()), p99Ratio: z.number() }),
  actionKey: z.string(),
  reward: z.union([z.literal(-1), z.literal(0), z.literal(1)]),
  outcome,
  reference: outcome,
  epsilon: z.object({ p99Ratio: z.number(), costRate: z.number() }),
  surprisal: z.number(),
});
/** Per pipeline id: the forecast's samples (ms, requests per second); absent in older snapshots. */
export type RateSnapshot = Record<string, { times: number[]; rates: number[] }>;

const rateHistory = z
  .object({ times: z.array(z.number()), rates: z.array(z.number().min(0)) })
  .refine((h) => h.times.length === h.rates.length, { error: 'as many times as rates' });

/** Per pipeline id: each GPU stage's learned cut depth and each stage's hour of peak loads (operating-point.ts); absent in older snapshots. */
export type OperatingSnapshot = Record<string, { stages: ({ depth: number; ceiling: number; peaks: number[] } | null)[] }>;

const stageDepth = z.object({ depth: z.number().min(0).max(1), ceiling: z.number().min(0).max(1), peaks: z.array(z.number().min(0)) });

const snapshotSchema = z.object({
  version: z.literal(1),
  savedAt: z.number(),
  rates: z.record(z.string(), rateHistory).default({}),
  operating: z.record(z.string(), z.object({ stages: z.array(stageDepth.nullable()) })).default({}),
  cells: z.array(
    z.object({
      pipelineId: z.string(),
      bucket: z.string(),
      actionKey: z.string(),
      counts: z.tuple([z.number(), z.number(), z.number()]),
      samples: z.array(experience),
    }),
  ),
});

/** Replace `path` with `data` atomically and durably. */
export async function writeFileDurably(path: string, data: string | Uint8Array): Promise<void> {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true });
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const file = await open(tmp, 'wx', 0o600);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  // The rename itself is durable only once the directory entry is.
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

export interface Snapshot {
  cells: Cell[];
  savedAt: number;
  rates: RateSnapshot;
  /** Absent: nothing learned about cut depths (older snapshots, tests). */
  operating?: OperatingSnapshot;
}

/** The snapshot file's text. */
export function encodeSnapshot(s: Snapshot): string {
  return JSON.stringify({ version: 1, savedAt: s.savedAt, rates: s.rates, operating: s.operating ?? {}, cells: s.cells });
}

/** A snapshot's text read back; throws ValidationError naming `where`, and what to delete, when it is not one. */
export function parseSnapshot(text: string, where: string, remove = 'it'): Snapshot {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ValidationError(where, `a JSON document written by sair (delete ${remove} to start empty)`, text.slice(0, 40));
  }
  const parsed = snapshotSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new ValidationError(`${where} at ${issue.path.join('.')}`, `a version 1 snapshot (${issue.message}; delete ${remove} to start empty)`);
  }
  return { cells: parsed.data.cells as Cell[], savedAt: parsed.data.savedAt, rates: parsed.data.rates, operating: parsed.data.operating };
}

/** The part of a snapshot about the pipelines `owns` accepts (one shard's). */
export function snapshotPart(s: Snapshot, owns: (pipelineId: string) => boolean): Snapshot {
  return {
    savedAt: s.savedAt,
    cells: s.cells.filter((c) => owns(c.pipelineId)),
    rates: Object.fromEntries(Object.entries(s.rates).filter(([id]) => owns(id))),
    operating: Object.fromEntries(Object.entries(s.operating ?? {}).filter(([id]) => owns(id))),
  };
}

export async function writeSnapshot(path: string, cells: readonly Cell[], savedAt: number, rates: RateSnapshot = {}, operating: OperatingSnapshot = {}): Promise<void> {
  await writeFileDurably(path, encodeSnapshot({ cells: [...cells], savedAt, rates, operating }));
}

/** The cells and rate histories of a snapshot, or null when there is none yet; throws ValidationError on a damaged file. */
export async function readSnapshot(path: string): Promise<Snapshot | null> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  return parseSnapshot(text, `experience snapshot ${path}`, 'the file');
}
