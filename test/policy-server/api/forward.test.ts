// The JSON API answers on any replica: a standby forwards it to the leader the Lease names (that
// pod's IP, from the fake API server), marks the answer, never forwards a forwarded request again,
// and says what to do when the leader does not answer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { PolicyHistory } from '../../../src/policy-server/api/history.js';
import { FORWARDED_HEADER, startApiServer, type ApiServerDeps, type RunningServer } from '../../../src/policy-server/api/server.js';
import { leaderAddress } from '../../../src/policy-server/k8s/leader-address.js';
import type { DecisionRecord } from '../../../src/policy/types.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';

const NS = 'sair-system';
const logger = createLogger('test', 'silent');

function deps(identity: string, leader: boolean, extra: Partial<ApiServerDeps> = {}): ApiServerDeps {
  return {
    history: new PolicyHistory(),
    registry: createRegistry('policy', { defaultMetrics: false }),
    logger,
    state: { ready: () => ({ ready: true, reason: '' }), leader: () => leader, identity, selector: 'bandit', invalid: () => [], source: 'cluster' },
    ...extra,
  };
}

describe('a standby policy server', () => {
  let api: FakeApiServer;
  let leader: RunningServer;
  let standby: RunningServer;
  const leaderDeps = deps('sair-policy-a', true);

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', NS] });
    leaderDeps.history.recordDecision({ id: 'd1', pipelineId: 'ml/captioner', time: 1, selector: 'bandit', proposed: 'hold' } as DecisionRecord);
    leader = await startApiServer(leaderDeps, 0, '127.0.0.1');
    const now = new Date().toISOString();
    api.seed({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'sair-policy', namespace: NS }, spec: { holderIdentity: 'sair-policy-a', leaseDurationSeconds: 15, renewTime: now, acquireTime: now } });
    api.seed({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'sair-policy-a', namespace: NS }, spec: { containers: [{ name: 'policy', image: 'sair' }] }, status: { phase: 'Running', podIP: '127.0.0.1' } });
    const { core, coordination } = api.clients(NS);
    standby = await startApiServer(deps('sair-policy-b', false, { leaderUrl: leaderAddress({ core, coordination, namespace: NS, leaseName: 'sair-policy', port: leader.port, cacheMs: 0 }) }), 0, '127.0.0.1');
  });
  afterAll(async () => {
    await Promise.all([standby.close(), api.close()]);
  });

  it('answers /api/decisions and /api/pipelines with the leader\'s state', async () => {
    const res = await fetch(`${standby.url}/api/decisions?pipeline=ml/captioner&limit=5`);
    expect(res.status).toBe(200);
    expect(res.headers.get(FORWARDED_HEADER)).toBe('sair-policy-b');
    expect(((await res.json()) as { decisions: DecisionRecord[] }).decisions.map((d) => d.id)).toEqual(['d1']);
    const pipelines = (await (await fetch(`${standby.url}/api/pipelines`)).json()) as { identity: string; leader: boolean };
    expect(pipelines).toMatchObject({ identity: 'sair-policy-a', leader: true });
    // Its own probes and metrics stay its own.
    expect(await (await fetch(`${standby.url}/readyz`)).text()).toBe('ok');
  });

  it('answers a forwarded request itself (no loop while the lease changes hands)', async () => {
    const res = await fetch(`${standby.url}/api/pipelines`, { headers: { [FORWARDED_HEADER]: 'sair-policy-c' } });
    expect(((await res.json()) as { identity: string }).identity).toBe('sair-policy-b');
  });

  it('says to retry when the leader does not answer', async () => {
    await leader.close();
    const res = await fetch(`${standby.url}/api/decisions`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(/^this replica \(sair-policy-b\) is a standby and the leader at http:\/\/127\.0\.0\.1:\d+ did not answer: .*; retry in a few seconds/);
  });

  it('answers itself when no replica holds the Lease', async () => {
    api.seed({ apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'sair-policy', namespace: NS }, spec: { holderIdentity: '', leaseDurationSeconds: 1 } });
    const res = await fetch(`${standby.url}/api/pipelines`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { identity: string }).identity).toBe('sair-policy-b');
  });
});

describe('a replica that holds shards', () => {
  it('answers only for the pipelines of the shards it holds now, though its history still has one it gave back', async () => {
    let held = new Set(['ml/a', 'ml/b']);
    const d = deps('sair-policy-a', true);
    d.state.shards = () => ({ held: [0], of: 2 });
    d.state.holds = (id) => held.has(id);
    for (const id of ['ml/a', 'ml/b']) {
      const spec = { id, stages: [{ index: 0, name: 's', minReplicas: 1, maxReplicas: 2, upstream: [] }], sloP99Ms: 100, cost: { gpuHour: 1, replicaHour: 0.1 }, tickSeconds: 5, mode: 'Active' as const };
      d.history.recordTick(spec, { pipelineId: id, time: 1_000, actions: [], bottleneck: 0 }, [{ replicas: 1, readyReplicas: 1, gpuCores: null }], undefined);
    }
    const server = await startApiServer(d, 0, '127.0.0.1');
    try {
      const ids = async () => ((await (await fetch(`${server.url}/api/pipelines`)).json()) as { pipelines: { id: string }[] }).pipelines.map((p) => p.id);
      expect(await ids()).toEqual(['ml/a', 'ml/b']);
      held = new Set(['ml/a']);
      expect(await ids()).toEqual(['ml/a']);
    } finally {
      await server.close();
    }
  });
});
