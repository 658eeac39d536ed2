// The experience buffer: what each action did in each kind of state, on lru-cache bounded by
// count and bytes and keyed by (pipeline, state bucket, action). Each new experience is scored by
// its surprisal, -log p(observed reward | prediction from similar experiences), so retrieval can
// show the model what it did not expect. Pure: no clock, no files (snapshot-file.ts does I/O).
import { LRUCache } from 'lru-cache';
import type { Outcome, RewardValue, StageStat } from './types.js';
import { TUNING } from './tuning.js';

/** The state as the buffer sees it: numbers only, clamped so one wild window cannot dominate. */
export interface StateFeatures {
  bottleneck: number | null;
  /** Per stage offered load / capacity, clamped to 0..3. */
  pressure: number[];
  /** End-to-end P99 / SLO, clamped to 0..3. */
  p99Ratio: number;
}

export interface Experience {
  time: number;
  features: StateFeatures;
  actionKey: string;
  reward: RewardValue;
  outcome: Outcome;
  reference: Outcome;
  epsilon: { p99Ratio: number; costRate: number };
  surprisal: number;
}

/** Everything seen for one (pipeline, bucket, action): recent samples and decayed reward counts. */
export interface Cell {
  pipelineId: string;
  bucket: string;
  actionKey: string;
  /** Decayed counts of rewards -1, 0, +1. */
  counts: [number, number, number];
  samples: Experience[];
}

export interface BufferLimits {
  maxEntries: number;
  maxBytes: number;
}

export interface Retrieved {
  experience: Experience;
  similarity: number;
}


const clamp = (x: number, lo: number, hi: number) => (Number.isFinite(x) ? Math.min(hi, Math.max(lo, x)) : hi);

export function features(bottleneck: number | null, pressure: readonly (number | null)[], p99Ratio: number | null): StateFeatures {
  return {
    bottleneck,
    pressure: pressure.map((p) => clamp(p ?? 0, 0, 3)),
    p99Ratio: clamp(p99Ratio ?? 0, 0, 3),
  };
}

function level(x: number): number {
  return x < 0.4 ? 0 : x < 0.75 ? 1 : x < 1 ? 2 : 3;
}

/** Coarse, human-readable bucket: bottleneck, P99 level, each stage's load level. */
export function stateBucket(f: StateFeatures): string {
  return `b${f.bottleneck ?? '-'}|p${level(f.p99Ratio)}|l${f.pressure.map(level).join('')}`;
}

/**
 * 1 for the same state, falling towards 0 with distance in load and P99; 0 across bottlenecks
 * (what an action on a stage does depends first on whether that stage is the bottleneck).
 */
export function similarity(a: StateFeatures, b: StateFeatures): number {
  if (a.bottleneck !== b.bottleneck) return 0;
  let d = Math.abs(a.p99Ratio - b.p99Ratio) * 1.5;
  const n = Math.max(a.pressure.length, b.pressure.length);
  for (let i = 0; i < n; i++) d += Math.abs((a.pressure[i] ?? 0) - (b.pressure[i] ?? 0));
  return Math.exp(-2 * d);
}

function cellBytes(c: Cell): number {
  return 200 + 2 * (c.pipelineId.length + c.bucket.length + c.actionKey.length) + c.samples.length * TUNING.bytesPerSample;
}

const rewardIndex = (r: RewardValue) => (r + 1) as 0 | 1 | 2;

/** A cell's place in the per-action index: its latest state as a flat vector for fast scans. */
interface IndexEntry {
  key: string;
  cell: Cell;
  /** [p99Ratio, ...pressure] of the cell's latest sample. */
  vec: Float64Array;
}

function vectorOf(f: StateFeatures): Float64Array {
  const v = new Float64Array(1 + f.pressure.length);
  v[0] = f.p99Ratio;
  for (let i = 0; i < f.pressure.length; i++) v[1 + i] = f.pressure[i]!;
  return v;
}

/** Index list of an action's cells with a given bottleneck (all samples of a cell share it). */
const indexKey = (pipelineId: string, actionKey: string, bottleneck: number | null) => `${pipelineId}|${actionKey}|${bottleneck ?? '-'}`;


/** similarity() on vectors, with an early exit once the distance is too large; 0 when ignored. */
function vecSimilarity(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  if (b.length !== n) return 0;
  let d = Math.abs(a[0]! - b[0]!) * 1.5;
  for (let i = 1; i < n; i++) {
    if (d > TUNING.maxStateDistance) return 0;
    d += Math.abs(a[i]! - b[i]!);
  }
  return d > TUNING.maxStateDistance ? 0 : Math.exp(-2 * d);
}

export class ExperienceBuffer {
  private readonly cache: LRUCache<string, Cell>;
  /** pipeline|action -> index entries, so a scan touches only cells of that action, without LRU lookups. */
  private readonly byAction = new Map<string, IndexEntry[]>();
  private readonly entries = new Map<string, IndexEntry>();

  constructor(readonly limits: BufferLimits) {
    this.cache = new LRUCache<string, Cell>({
      max: limits.maxEntries,
      maxSize: limits.maxBytes,
      sizeCalculation: cellBytes,
      dispose: (cell, key, reason) => {
        if (reason === 'set') return;
        const entry = this.entries.get(key);
        if (!entry) return;
        this.entries.delete(key);
        const list = this.byAction.get(indexKey(cell.pipelineId, cell.actionKey, cell.samples[0]?.features.bottleneck ?? null));
        const at = list ? list.indexOf(entry) : -1;
        if (list && at >= 0) {
          list[at] = list[list.length - 1]!;
          list.pop();
        }
      },
    });
  }

  get size(): number {
    return this.cache.size;
  }

  get bytes(): number {
    return this.cache.calculatedSize;
  }

  /** Number of experiences held (samples across all cells). */
  get experiences(): number {
    let n = 0;
    for (const c of this.cache.values()) n += c.samples.length;
    return n;
  }

  /** Probability of each reward (-1, 0, +1) for an action in a state, from similar experiences. */
  predict(pipelineId: string, f: StateFeatures, actionKey: string): [number, number, number] {
    return this.predictVec(pipelineId, vectorOf(f), f.bottleneck, actionKey);
  }

  private predictVec(pipelineId: string, v: Float64Array, bottleneck: number | null, actionKey: string): [number, number, number] {
    let w0 = TUNING.rewardPrior;
    let w1 = TUNING.rewardPrior;
    let w2 = TUNING.rewardPrior;
    const list = this.byAction.get(indexKey(pipelineId, actionKey, bottleneck));
    if (list) {
      for (const e of list) {
        const s = vecSimilarity(v, e.vec);
        if (s === 0) continue;
        w0 += s * e.cell.counts[0];
        w1 += s * e.cell.counts[1];
        w2 += s * e.cell.counts[2];
      }
    }
    const total = w0 + w1 + w2;
    return [w0 / total, w1 / total, w2 / total];
  }

  /** Store an experience; returns it with its surprisal, computed before it joins the buffer. */
  add(pipelineId: string, e: Omit<Experience, 'surprisal'>): Experience {
    const v = vectorOf(e.features);
    const p = this.predictVec(pipelineId, v, e.features.bottleneck, e.actionKey)[rewardIndex(e.reward)]!;
    const exp: Experience = { ...e, surprisal: -Math.log(p) };
    const bucket = stateBucket(e.features);
    const key = `${pipelineId}|${bucket}|${e.actionKey}`;
    const cell: Cell = this.cache.get(key) ?? { pipelineId, bucket, actionKey: e.actionKey, counts: [0, 0, 0], samples: [] };
    const counts: [number, number, number] = [cell.counts[0] * TUNING.cellDecay, cell.counts[1] * TUNING.cellDecay, cell.counts[2] * TUNING.cellDecay];
    counts[rewardIndex(e.reward)] += 1;
    cell.counts = counts;
    cell.samples.push(exp);
    if (cell.samples.length > TUNING.samplesPerCell) cell.samples.shift();
    this.insert(key, cell, v);
    return exp;
  }

  private insert(key: string, cell: Cell, vec: Float64Array): void {
    this.cache.set(key, cell);
    if (!this.cache.has(key)) return;
    const existing = this.entries.get(key);
    if (existing) {
      existing.cell = cell;
      existing.vec = vec;
      return;
    }
    const entry: IndexEntry = { key, cell, vec };
    this.entries.set(key, entry);
    const ak = indexKey(cell.pipelineId, cell.actionKey, cell.samples[0]?.features.bottleneck ?? null);
    let list = this.byAction.get(ak);
    if (!list) this.byAction.set(ak, (list = []));
    list.push(entry);
  }

  /**
   * Per-action statistics over cells similar to the state (similarity-weighted counts) and the
   * most similar cells' samples, without touching LRU recency.
   */
  neighbourhood(
    pipelineId: string,
    f: StateFeatures,
    actionKeys: readonly string[],
    maxCells = 48,
  ): { stats: Map<string, StageStat>; similar: Retrieved[] } {
    const v = vectorOf(f);
    const stats = new Map<string, StageStat>();
    // The maxCells most similar cells, kept in a small array sorted by similarity.
    const near: { cell: Cell; s: number }[] = [];
    for (const actionKey of actionKeys) {
      let w0 = 0;
      let w1 = 0;
      let w2 = 0;
      const list = this.byAction.get(indexKey(pipelineId, actionKey, f.bottleneck));
      if (list) {
        for (const e of list) {
          const s = vecSimilarity(v, e.vec);
          if (s === 0) continue;
          w0 += s * e.cell.counts[0];
          w1 += s * e.cell.counts[1];
          w2 += s * e.cell.counts[2];
          if (maxCells > 0 && (near.length < maxCells || s > near[near.length - 1]!.s)) {
            let at = near.length;
            while (at > 0 && near[at - 1]!.s < s) at--;
            near.splice(at, 0, { cell: e.cell, s });
            if (near.length > maxCells) near.pop();
          }
        }
      }
      const n = w0 + w1 + w2;
      if (n > 0) stats.set(actionKey, { key: actionKey, n, meanReward: (w2 - w0) / n, pPositive: w2 / n, pNegative: w0 / n });
    }
    const similar: Retrieved[] = [];
    for (const { cell, s } of near) {
      for (const e of cell.samples) similar.push({ experience: e, similarity: s * similarity(f, e.features) ** 0.25 });
    }
    return { stats, similar };
  }

  /** Cells from least to most recently used, for a snapshot. */
  dump(): Cell[] {
    const cells: Cell[] = [];
    for (const c of this.cache.rvalues()) if (c) cells.push(c);
    return cells.map((c) => ({ ...c, counts: [...c.counts] as Cell['counts'], samples: [...c.samples] }));
  }

  /** Replace the cells of the pipelines `owns` accepts with a snapshot's; the others stay as they are. */
  replace(cells: readonly Cell[], owns: (pipelineId: string) => boolean): void {
    this.load([...this.dump().filter((c) => !owns(c.pipelineId)), ...cells.filter((c) => owns(c.pipelineId))]);
  }

  /** Replace the contents with a snapshot (least recently used first); limits still apply. */
  load(cells: readonly Cell[]): void {
    this.cache.clear();
    this.byAction.clear();
    this.entries.clear();
    for (const c of cells) {
      const samples = c.samples.slice(-TUNING.samplesPerCell);
      const last = samples[samples.length - 1];
      if (!last) continue;
      this.insert(`${c.pipelineId}|${c.bucket}|${c.actionKey}`, { ...c, counts: [...c.counts] as Cell['counts'], samples }, vectorOf(last.features));
    }
  }
}
