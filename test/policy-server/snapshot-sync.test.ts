// The experience across failovers: a replica that gains a shard ticks with that shard's latest
// stored snapshot, also when it held the shard before and keeps a stale copy in memory; each
// shard's store holds that shard's part only; a replica that holds nothing uploads nothing. The
// runtime, the SnapshotSync and a real SAIR controller, with in-memory stores.
import { describe, expect, it } from '@jest/globals';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/common/logger.js';
import { createRegistry } from '../../src/common/metrics.js';
import type { ClusterPort, MetricsPort, PipelineSpec, SnapshotStore } from '../../src/core/ports.js';
import { createSairController } from '../../src/policy/controller.js';
import type { Cell } from '../../src/policy/experience.js';
import { policySettings } from '../../src/policy/settings.js';
import { encodeSnapshot, parseSnapshot } from '../../src/policy/snapshot-file.js';
import { PolicyHistory } from '../../src/policy-server/api/history.js';
import { PolicyRuntime, type Ownership } from '../../src/policy-server/runtime.js';
import { SnapshotSync } from '../../src/policy-server/snapshot-sync.js';

const logger = createLogger('test', 'silent');

const spec = (id: string): PipelineSpec => ({
  id,
  stages: [{ index: 0, name: 'a', minReplicas: 1, maxReplicas: 3, upstream: [] }],
  sloP99Ms: 100,
  cost: { gpuHour: 1, replicaHour: 0.1 },
  tickSeconds: 30,
  mode: 'Active',
});

/** A cell of experience for one pipeline, its reward counts telling snapshots apart. */
function cell(pipelineId: string, counts: [number, number, number]): Cell {
  const outcome = { p99Ratio: 0.8, costRate: 1, sloViolation: 0 };
  return {
    pipelineId,
    bucket: 'b0|p1|s1',
    actionKey: 's0+1',
    counts,
    samples: [
      {
        time: 1,
        features: { bottleneck: 0, pressure: [0.9], p99Ratio: 0.8 },
        actionKey: 's0+1',
        reward: 1,
        outcome,
        reference: outcome,
        epsilon: { p99Ratio: 0.05, costRate: 0.05 },
        surprisal: 1,
      },
    ],
  };
}

const snapshotOf = (cells: Cell[]) => Buffer.from(encodeSnapshot({ cells, savedAt: 1, rates: {} }));

function memoryStore(): SnapshotStore & { data: Uint8Array | null } {
  const s = {
    data: null as Uint8Array | null,
    load: async () => s.data,
    save: async (d: Uint8Array) => {
      s.data = d;
    },
  };
  return s;
}

async function setup(ownership: Ownership, stores: Map<number, ReturnType<typeof memoryStore>>, previous?: SnapshotStore) {
  const path = join(await mkdtemp(join(tmpdir(), 'sair-sync-')), 'experience.json');
  const cluster: ClusterPort = {
    listPipelines: async () => [spec('ml/a'), spec('ml/b')],
    allocation: async () => [{ replicas: 1, readyReplicas: 1, gpuCores: null }],
    apply: async () => undefined,
    report: async () => undefined,
  };
  const metrics = { observe: async () => ({}) } as unknown as MetricsPort;
  const clock = { now: () => 0, sleep: async () => undefined };
  const controller = createSairController({ cluster, metrics, clock, config: policySettings({}), snapshotPath: path });
  const sync = new SnapshotSync({ storeFor: (s) => stores.get(s)!, previous, shardOf: ownership.shardOf, held: ownership.held, controller, path, logger });
  // What the controller holds for a pipeline when the runtime starts its tick.
  const seen: { id: string; counts: number[][] }[] = [];
  const runtime = new PolicyRuntime({
    cluster,
    controller: {
      name: 'probe',
      intervalMs: 30_000,
      async tick(p) {
        seen.push({ id: p.id, counts: controller.buffer.dump().filter((c) => c.pipelineId === p.id).map((c) => c.counts) });
        return { pipelineId: p.id, time: 0, actions: [], bottleneck: null };
      },
    },
    clock,
    logger,
    registry: createRegistry('policy', { defaultMetrics: false }),
    history: new PolicyHistory(),
    ownership,
    pollMs: 1_000,
    backoff: { baseMs: 1_000, maxMs: 8_000 },
    beforeLeading: (gained) => sync.restore(gained),
  });
  return { controller, sync, runtime, seen, path };
}

describe('SnapshotSync', () => {
  it('a replica that led, lost the lease and leads again ticks with the latest stored experience, not its stale copy', async () => {
    let leading = true;
    const store = memoryStore();
    store.data = snapshotOf([cell('ml/a', [0, 0, 1])]);
    const t = await setup({ held: () => new Set(leading ? [0] : []), shardOf: () => 0 }, new Map([[0, store]]));
    await t.runtime.pass();
    expect(t.seen.splice(0)).toEqual([
      { id: 'ml/a', counts: [[0, 0, 1]] },
      { id: 'ml/b', counts: [] },
    ]);
    leading = false;
    await t.runtime.pass();
    // Meanwhile the replica that took over learned and stored more.
    store.data = snapshotOf([cell('ml/a', [4, 0, 2]), cell('ml/b', [1, 0, 0])]);
    leading = true;
    await t.runtime.pass();
    expect(t.seen).toEqual([
      { id: 'ml/a', counts: [[4, 0, 2]] },
      { id: 'ml/b', counts: [[1, 0, 0]] },
    ]);
  });

  it("with shards, each store gets its shard's part, and a gained shard replaces only its own pipelines' experience", async () => {
    const shardOf = (id: string) => (id === 'ml/b' ? 1 : 0);
    let held = new Set([0]);
    const stores = new Map([
      [0, memoryStore()],
      [1, memoryStore()],
    ]);
    stores.get(0)!.data = snapshotOf([cell('ml/a', [0, 0, 1])]);
    stores.get(1)!.data = snapshotOf([cell('ml/b', [0, 1, 0])]);
    const t = await setup({ held: () => held, shardOf }, stores);
    await t.runtime.pass();
    expect(t.seen.splice(0)).toEqual([{ id: 'ml/a', counts: [[0, 0, 1]] }]);
    held = new Set([0, 1]);
    await t.runtime.pass();
    expect(t.seen.splice(0)).toEqual([{ id: 'ml/b', counts: [[0, 1, 0]] }]);
    expect(t.controller.buffer.dump().map((c) => c.pipelineId).sort()).toEqual(['ml/a', 'ml/b']);

    // The controller writes its file; each held shard's store gets its own pipelines only.
    await t.controller.snapshot();
    held = new Set([1]);
    await t.sync.flush();
    expect(parseSnapshot(Buffer.from(stores.get(1)!.data!).toString(), 'shard 1').cells.map((c) => c.pipelineId)).toEqual(['ml/b']);
    // Shard 0 is no longer held: its store keeps what it had.
    expect(parseSnapshot(Buffer.from(stores.get(0)!.data!).toString(), 'shard 0').cells.map((c) => c.counts)).toEqual([[0, 0, 1]]);
  });

  it("a shard whose store is empty starts from the whole snapshot of before sharding, its own pipelines' part", async () => {
    const shardOf = (id: string) => (id === 'ml/b' ? 1 : 0);
    const previous = memoryStore();
    previous.data = snapshotOf([cell('ml/a', [0, 0, 3]), cell('ml/b', [3, 0, 0])]);
    const t = await setup({ held: () => new Set([1]), shardOf }, new Map([[1, memoryStore()]]), previous);
    await t.runtime.pass();
    expect(t.seen).toEqual([{ id: 'ml/b', counts: [[3, 0, 0]] }]);
    expect(t.controller.buffer.dump().map((c) => c.pipelineId)).toEqual(['ml/b']);
  });

  it('a replica that holds no shard uploads nothing', async () => {
    const store = memoryStore();
    const t = await setup({ held: () => new Set(), shardOf: () => 0 }, new Map([[0, store]]));
    await writeFile(t.path, encodeSnapshot({ cells: [cell('ml/a', [1, 1, 1])], savedAt: 2, rates: {} }));
    await t.sync.flush();
    expect(store.data).toBeNull();
  });
});
