// Shard Leases in the fake API server, with short durations: replicas split the shards evenly,
// a replica that dies leaves its shards to the others once its Leases lapse, a partitioned one
// stops acting before another takes its shards, and a replica of another shard layout waits.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { memberLeaseName, shardNames, shardOf } from '../../../src/core/shards.js';
import { LeaderElector } from '../../../src/policy-server/k8s/leader.js';
import { ShardLeases } from '../../../src/policy-server/k8s/shard-leases.js';
import { eventually } from '../../support/eventually.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';

const logger = createLogger('test', 'silent');
const SHARDS = 4;
/** Leases have no event to await: poll every 20 ms. */
const waitFor = (test: () => boolean, what: string, timeoutMs = 5_000) => eventually(() => (test() ? true : undefined), timeoutMs, what);

describe('shard Leases', () => {
  let api: FakeApiServer;
  const running: { stop(o?: { release?: boolean }): Promise<void> }[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  });
  afterEach(async () => {
    await Promise.all(running.splice(0).map((r) => r.stop({ release: false })));
    api.clearFaults();
    for (const l of api.list<k8s.V1Lease>('leases', 'sair-system')) api.remove('leases', 'sair-system', l.metadata!.name!);
  });
  afterAll(async () => {
    await api.close();
  });

  /** A client of its own (bearer token = identity), so a fault can partition one replica off. */
  const coordinationFor = (identity: string) => api.clients('sair-system', identity).coordination;

  function replica(identity: string, leaseDurationSeconds = 1) {
    const changes: { shard: number; leading: boolean; at: number }[] = [];
    const s = new ShardLeases({
      coordination: coordinationFor(identity),
      namespace: 'sair-system',
      name: 'sair-policy',
      shards: SHARDS,
      identity,
      leaseDurationSeconds,
      renewDeadlineMs: 800,
      retryPeriodMs: 100,
      logger,
      registry: createRegistry('policy', { defaultMetrics: false }),
      onChange: (shard, leading) => changes.push({ shard, leading, at: Date.now() }),
    });
    running.push(s);
    s.start();
    return { s, changes };
  }

  const holders = () => shardNames('sair-policy', SHARDS).map((n) => api.get<k8s.V1Lease>('leases', 'sair-system', n)?.spec?.holderIdentity ?? '');

  it('two replicas split the shards evenly; each holds only what the Leases say, and writes only for its own pipelines', async () => {
    const a = replica('policy-a');
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a alone takes every shard');
    const b = replica('policy-b');
    await waitFor(() => a.s.held().size === 2 && b.s.held().size === 2, 'policy-a gives two shards back and policy-b takes them');
    expect([...a.s.held(), ...b.s.held()].sort()).toEqual([0, 1, 2, 3]);
    expect(holders().filter((h) => h === 'policy-a').length).toBe(2);
    for (const s of a.s.held()) expect(holders()[s]).toBe('policy-a');
    expect(api.get<k8s.V1Lease>('leases', 'sair-system', memberLeaseName('sair-policy', 'policy-b'))!.spec!.holderIdentity).toBe('policy-b');
    // A pipeline's writes go through its shard's Lease: allowed on one replica, refused on the other.
    const id = 'ml/chat';
    const [owner, other] = a.s.held().has(shardOf(id, SHARDS)) ? [a, b] : [b, a];
    expect(() => owner.s.guardFor(id).writeOptions()).not.toThrow();
    expect(() => other.s.guardFor(id).writeOptions()).toThrow(/not the holder of a valid Lease sair-system\/sair-policy-shard-\d-of-4/);
    // It stays balanced: no shard changes hands while both renew.
    const before = holders();
    await new Promise((r) => setTimeout(r, 1_500));
    expect(holders()).toEqual(before);
  });

  it('the shards of a replica that dies move to the other once its Leases lapse', async () => {
    const a = replica('policy-a');
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a takes every shard');
    const b = replica('policy-b');
    await waitFor(() => b.s.held().size === 2, 'policy-b gets its share');
    const theirs = [...b.s.held()];
    const died = Date.now();
    await b.s.stop({ release: false });
    await waitFor(() => a.s.held().size === SHARDS, "policy-a takes policy-b's shards", 5_000);
    const movedAt = Math.max(...a.changes.filter((c) => c.leading && theirs.includes(c.shard)).map((c) => c.at));
    // Not before the 1 s Leases lapsed, and within a few retry periods after.
    expect(movedAt - died).toBeGreaterThanOrEqual(900);
    expect(movedAt - died).toBeLessThan(3_000);
    expect(holders()).toEqual(['policy-a', 'policy-a', 'policy-a', 'policy-a']);
  });

  it('a partitioned replica stops acting before another takes its shards', async () => {
    const a = replica('policy-a');
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a takes every shard');
    const b = replica('policy-b');
    await waitFor(() => b.s.held().size === 2 && a.s.held().size === 2, 'the shards are split');
    const mine = [...a.s.held()];
    // policy-a cannot reach the API server any more; policy-b can.
    api.injectFault({ token: 'policy-a', delayMs: 30_000, times: 100_000 });
    const id = [...Array(100).keys()].map((i) => `ml/p${i}`).find((p) => mine.includes(shardOf(p, SHARDS)))!;
    const options = a.s.guardFor(id).writeOptions();
    await waitFor(() => a.s.held().size === 0, 'policy-a steps down from every shard', 3_000);
    const downAt = Date.now();
    expect(() => a.s.guardFor(id).writeOptions()).toThrow(/not the holder of a valid Lease/);
    await waitFor(() => b.s.held().size === SHARDS, "policy-b takes policy-a's shards", 5_000);
    const upAt = Math.min(...b.changes.filter((c) => c.leading && mine.includes(c.shard)).map((c) => c.at));
    expect(downAt).toBeLessThanOrEqual(upAt);
    // A write prepared while it held the shard is aborted by the end of its Lease, not sent under policy-b's.
    const write = api.clients('sair-system').core.createNamespacedConfigMap({ namespace: 'sair-system', body: { metadata: { name: 'late-write' } } }, options);
    await expect(write).rejects.toThrow(/not the holder of a valid Lease/);
    expect(api.get('configmaps', 'sair-system', 'late-write')).toBeUndefined();
  });

  it('a replica of another shard layout takes no shard while the old single Lease is held, and takes them once it is released', async () => {
    const old = new LeaderElector({
      coordination: coordinationFor('policy-old'),
      namespace: 'sair-system',
      name: 'sair-policy',
      identity: 'policy-old',
      leaseDurationSeconds: 1,
      renewDeadlineMs: 800,
      retryPeriodMs: 100,
      logger,
    });
    running.push(old);
    old.start();
    await waitFor(() => old.isLeader(), 'the single-lease replica leads');
    const a = replica('policy-a');
    await new Promise((r) => setTimeout(r, 1_500));
    expect(a.s.held().size).toBe(0);
    expect(a.s.status().otherLayouts).toEqual(['sair-policy']);
    await old.stop();
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a takes every shard once the old Lease is released');
  });

  it('a graceful stop hands the shards over at once and leaves the membership', async () => {
    // 60 s Leases: without the release and the member Lease deleted, policy-a could not take them within the wait.
    const a = replica('policy-a', 60);
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a takes every shard');
    const b = replica('policy-b', 60);
    await waitFor(() => b.s.held().size === 2, 'policy-b gets its share');
    await b.s.stop();
    expect(api.get('leases', 'sair-system', memberLeaseName('sair-policy', 'policy-b'))).toBeUndefined();
    await waitFor(() => a.s.held().size === SHARDS, 'policy-a takes the released shards', 3_000);
  });
});
