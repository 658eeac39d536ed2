// `sair policy` end to end: two replicas of the server against the fake API server and a fake
// Prometheus. One leads and scales the pipeline, the other stands by with warm caches and takes
// over when the leader shuts down gracefully.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { loadPolicyConfig, startCluster, type ClusterServer } from '../../../src/cmd/policy.js';
import { ADMIN_TOKEN, startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { startFakePrometheus, type FakePrometheus } from '../../support/fake-prometheus.js';
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

  const start = async (identity: string) => {
    const cfg = loadPolicyConfig(
      {
        SAIR_KUBE_API_SERVER: api.url,
        SAIR_PROMETHEUS_URL: prom.url,
        SAIR_POD_NAME: identity,
        SAIR_POD_NAMESPACE: 'sair-system',
        SAIR_LEASE_DURATION_SECONDS: '1',
        SAIR_POLICY_POLL_MS: '100',
        SAIR_POLICY_HOST: '127.0.0.1',
        SAIR_LOG_LEVEL: 'silent',
      },
      ['--port', '0'],
    );
    const s = await startCluster(cfg);
    servers.push(s);
    return s;
  };
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
