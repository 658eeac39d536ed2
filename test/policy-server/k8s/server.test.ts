// `sair policy` end to end: two replicas of the server against the fake API server and a fake
// Prometheus. One leads and scales the pipeline, the other stands by with warm caches and takes
// over when the leader shuts down gracefully. With shards, both act, each for its own pipelines.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { loadPolicyConfig, startCluster, type ClusterServer } from '../../../src/cmd/policy.js';
import { ADMIN_TOKEN, startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { startFakePrometheus, type FakePrometheus } from '../../support/fake-prometheus.js';
import { shardName, shardOf } from '../../../src/core/shards.js';
import { deployment, namespace, pipeline, pod } from './helpers.js';

/** Resolves when `test` holds, checking every 25 ms (the servers expose no event to await). */
function eventually(test: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const poll = setInterval(() => {
      void Promise.resolve(test()).then((ok) => {
        if (ok) {
          clearInterval(poll);
          resolve();
        } else if (Date.now() - started > timeoutMs) {
          clearInterval(poll);
          reject(new Error(`${what}: not within ${timeoutMs} ms`));
        }
      });
    }, 25);
  });
}


/** `sair policy` as one replica against the fakes (1 s Leases, a 100 ms loop), kept in `servers` to stop. */
async function startReplica(servers: ClusterServer[], urls: { api: string; prom: string }, identity: string, env: Record<string, string> = {}): Promise<ClusterServer> {
  const cfg = loadPolicyConfig(
    {
      SAIR_KUBE_API_SERVER: urls.api,
      SAIR_PROMETHEUS_URL: urls.prom,
      SAIR_POD_NAME: identity,
      SAIR_POD_NAMESPACE: 'sair-system',
      SAIR_LEASE_DURATION_SECONDS: '1',
      SAIR_POLICY_POLL_MS: '100',
      SAIR_POLICY_HOST: '127.0.0.1',
      SAIR_LOG_LEVEL: 'silent',
      ...env,
    },
    ['--port', '0'],
  );
  const s = await startCluster(cfg);
  servers.push(s);
  return s;
}

describe('sair policy with two replicas', () => {
  let api: FakeApiServer;
  let prom: FakePrometheus;
  const servers: ClusterServer[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
    prom = await startFakePrometheus();
    api.seed(namespace('ml', true));
    api.seed(deployment('ml', 'pre', 1));
    api.seed(pod('ml', 'pre', 'aaaaa'));
    api.seed(pipeline('ml', 'chat', { slo: { p99Ms: 300 }, tickSeconds: 5, stages: [{ name: 'pre', deployment: 'pre', minReplicas: 1, maxReplicas: 4 }] }));
    // One saturated stage over its SLO.
    prom.on((q) => q.includes('http_request_duration_seconds_count') && !q.includes('code=~'), { vector: [{ value: '30' }] });
    prom.on('code=~', { vector: [{ value: '0' }] });
    prom.on('container_cpu_usage_seconds_total', { vector: [{ value: '0.98' }] });
    prom.on('histogram_quantile', { vector: [{ value: '900' }] });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await prom.close();
    await api.close();
  });

  const start = (identity: string) => startReplica(servers, { api: api.url, prom: prom.url }, identity);
  // The API needs a bearer token (TokenReview); the fake, without strict authentication, takes any as the admin.
  const pipelinesOf = async (s: ClusterServer) => (await (await fetch(`${s.url}/api/pipelines`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } })).json()) as { leader: boolean; identity: string; pipelines: { id: string; ticks: number }[] };

  it('one replica leads and scales the pipeline; the other stands by, ready, and changes nothing', async () => {
    const a = await start('policy-a');
    await eventually(() => a.isLeader(), 'policy-a leads');
    const b = await start('policy-b');
    await eventually(() => api.get<k8s.V1Deployment>('deployments.apps', 'ml', 'pre')!.spec!.replicas! > 1, 'the leader scales the saturated stage');
    await eventually(async () => ((await pipelinesOf(a)).pipelines[0]?.ticks ?? 0) >= 1, 'the leader shows its tick');
    expect(b.isLeader()).toBe(false);
    expect((await fetch(`${b.url}/readyz`)).status).toBe(200);
    const [fromA, fromB] = await Promise.all([pipelinesOf(a), pipelinesOf(b)]);
    expect(fromA).toMatchObject({ leader: true, identity: 'policy-a', pipelines: [expect.objectContaining({ id: 'ml/chat' })] });
    expect(fromB).toMatchObject({ leader: false, identity: 'policy-b', pipelines: [] });
    const events = api.list<k8s.CoreV1Event>('events', 'ml');
    expect(events.every((e) => e.reportingInstance === 'policy-a')).toBe(true);
    expect(api.get<k8s.V1Lease>('leases', 'sair-system', 'sair-policy')!.spec!.holderIdentity).toBe('policy-a');
  });

  it('a graceful shutdown hands the lease over and the standby goes on deciding', async () => {
    const [a, b] = servers;
    await a!.stop();
    servers.shift();
    await eventually(() => b!.isLeader(), 'policy-b takes over');
    await eventually(async () => ((await pipelinesOf(b!)).pipelines[0]?.ticks ?? 0) >= 1, 'policy-b ticks the pipeline');
    expect(api.get<k8s.V1Lease>('leases', 'sair-system', 'sair-policy')!.spec).toMatchObject({ holderIdentity: 'policy-b', leaseTransitions: 1 });
    const metrics = await (await fetch(`${b!.url}/metrics`)).text();
    expect(metrics).toMatch(/sair_policy_leader_is_leader\{[^}]*\} 1/);
  });
});

describe('sair policy with shards', () => {
  let api: FakeApiServer;
  let prom: FakePrometheus;
  const servers: ClusterServer[] = [];
  const ids = Array.from({ length: 8 }, (_, i) => `ml/p${i}`);

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
    prom = await startFakePrometheus();
    api.seed(namespace('ml', true));
    for (let i = 0; i < ids.length; i++) {
      api.seed(deployment('ml', `d${i}`, 1));
      api.seed(pipeline('ml', `p${i}`, { slo: { p99Ms: 300 }, tickSeconds: 5, stages: [{ name: 's', deployment: `d${i}`, minReplicas: 1, maxReplicas: 4 }] }));
    }
    prom.on('histogram_quantile', { vector: [{ value: '100' }] });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await prom.close();
    await api.close();
  });

  const start = (identity: string) => startReplica(servers, { api: api.url, prom: prom.url }, identity, { SAIR_SHARDS: '4', SAIR_API_AUTH: 'none' });
  const view = async (s: ClusterServer) => (await (await fetch(`${s.url}/api/pipelines`)).json()) as { shards: { held: number[]; of: number }; pipelines: { id: string; ticks: number }[] };
  const holder = (id: string) => api.get<k8s.V1Lease>('leases', 'sair-system', shardName('sair-policy', shardOf(id, 4), 4))?.spec?.holderIdentity;

  it('two replicas split the shards and each decides for the pipelines of its own, and reports as itself', async () => {
    const a = await start('policy-a');
    const b = await start('policy-b');
    await eventually(() => a.held().size === 2 && b.held().size === 2, 'the shards are split two and two');
    const splitAt = Date.now();
    await eventually(async () => {
      const [va, vb] = await Promise.all([view(a), view(b)]);
      return va.pipelines.length + vb.pipelines.length === ids.length && [...va.pipelines, ...vb.pipelines].every((p) => p.ticks >= 1);
    }, 'every pipeline ticks on one replica');
    const [va, vb] = await Promise.all([view(a), view(b)]);
    expect(va.shards).toEqual({ held: [...a.held()].sort(), of: 4 });
    expect([...va.pipelines, ...vb.pipelines].map((p) => p.id).sort()).toEqual(ids);
    for (const p of va.pipelines) expect(holder(p.id)).toBe('policy-a');
    for (const p of vb.pipelines) expect(holder(p.id)).toBe('policy-b');
    // Each replica reports as itself: policy-b, which joined for the split, only on its own pipelines;
    // and since the split every new Event comes from the holder of its pipeline's shard. (An Event
    // may be created between the split and the moment the test saw it, so none is required after it.)
    const events = () => api.list<k8s.CoreV1Event>('events', 'ml');
    await eventually(() => events().some((e) => e.reportingInstance === 'policy-b'), 'policy-b reports Events as itself');
    for (const e of events().filter((x) => x.reportingInstance === 'policy-b')) expect(holder(`ml/${e.involvedObject.name}`)).toBe('policy-b');
    for (const e of events().filter((x) => new Date(String(x.firstTimestamp)).getTime() > splitAt)) expect(e.reportingInstance).toBe(holder(`ml/${e.involvedObject.name}`));
  });

  it('when one replica goes, the other takes its shards and decides for every pipeline', async () => {
    const [a, b] = servers;
    const before = new Map((await view(b!)).pipelines.map((p) => [p.id, p.ticks]));
    await a!.stop();
    servers.shift();
    await eventually(() => b!.held().size === 4, 'policy-b holds every shard');
    await eventually(async () => {
      const vb = await view(b!);
      return vb.pipelines.length === ids.length && vb.pipelines.every((p) => p.ticks > (before.get(p.id) ?? 0));
    }, "policy-b ticks policy-a's pipelines too");
    for (const id of ids) expect(holder(id)).toBe('policy-b');
  });
});
