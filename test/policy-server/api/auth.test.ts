// The HTTP API in a cluster: a caller's bearer token is checked by TokenReview and each pipeline
// is shown only to callers a SubjectAccessReview allows to get inferencepipelines in its
// namespace, against the fake API server with the RBAC and admission policy of manifests/policy
// (the policy server's own token makes the reviews). Without auth (`sair start`) the API is open.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import type { PipelineSpec } from '../../../src/core/ports.js';
import { KubeReviewAuth } from '../../../src/policy-server/api/auth.js';
import { PolicyHistory } from '../../../src/policy-server/api/history.js';
import { createApiApp, type ApiServerDeps } from '../../../src/policy-server/api/server.js';
import type { DecisionRecord } from '../../../src/policy/types.js';
import { ADMIN_TOKEN, startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { kustomizeBuild } from '../../support/manifests.js';
import { namespace } from '../k8s/helpers.js';

const spec = (id: string): PipelineSpec => ({
  id,
  stages: [{ index: 0, name: 'a', minReplicas: 1, maxReplicas: 3, upstream: [] }],
  sloP99Ms: 100,
  cost: { gpuHour: 1, replicaHour: 0.1 },
  tickSeconds: 30,
  mode: 'Active',
});

describe('policy server API authentication (TokenReview, SubjectAccessReview)', () => {
  let api: FakeApiServer;
  const servers: http.Server[] = [];
  let secured: string;
  let open: string;
  let reviews = 0;

  async function serve(deps: ApiServerDeps): Promise<string> {
    const server = createApiApp(deps).listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'], strictAuthentication: true });
    for (const o of kustomizeBuild(path.resolve('manifests/crds'))) api.seed(o);
    for (const o of kustomizeBuild(path.resolve('manifests/policy'))) if (!['Deployment', 'PodDisruptionBudget', 'NetworkPolicy'].includes(o.kind)) api.seed(o);
    api.seed(namespace('ml', true));
    api.seed(namespace('other', true));
    api.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'sair-viewer', namespace: 'ml' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'sair-pipeline-viewer' },
      subjects: [{ kind: 'ServiceAccount', name: 'alice', namespace: 'ml' }],
    });
    const history = new PolicyHistory();
    for (const id of ['ml/video', 'other/chat']) {
      history.recordTick(spec(id), { pipelineId: id, time: 1_000, actions: [], bottleneck: 0 }, [{ replicas: 1, readyReplicas: 1, gpuCores: null }], undefined);
      history.recordDecision({ pipelineId: id, time: 1_000, selector: 'bandit', applied: [], reason: 'hold' } as unknown as DecisionRecord);
    }
    const deps: ApiServerDeps = {
      history,
      registry: createRegistry('policy', { defaultMetrics: false }),
      logger: createLogger('test', 'silent'),
      state: { ready: () => ({ ready: true, reason: '' }), leader: () => true, identity: 'p-0', selector: 'bandit', invalid: () => [{ id: 'other/broken', error: 'spec.stages: empty' }], source: 'cluster' },
    };
    const auth = new KubeReviewAuth({ clients: api.clients('sair-system', api.tokenFor('sair-system', 'sair-policy')) });
    const counting = {
      authenticate: (t: string) => (reviews++, auth.authenticate(t)),
      canReadPipelines: auth.canReadPipelines.bind(auth),
    };
    secured = await serve({ ...deps, auth: counting });
    open = await serve(deps);
  });
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
    await api.close();
  });

  const get = async (base: string, p: string, token?: string) => {
    const res = await fetch(`${base}${p}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
    return { status: res.status, body: (await res.json()) as { error?: string; pipelines?: { id: string }[]; invalid?: { id: string }[]; decisions?: { pipelineId: string }[] }, challenge: res.headers.get('www-authenticate') };
  };

  it('refuses a request without a token, or with one the API server does not know, with 401 and how to get one', async () => {
    const none = await get(secured, '/api/pipelines');
    expect(none).toMatchObject({ status: 401, challenge: 'Bearer realm="sair-policy"' });
    expect(none.body.error).toMatch(/^no bearer token; send a Kubernetes bearer token .*kubectl create token/);
    const bad = await get(secured, '/api/pipelines', 'forged');
    expect(bad.status).toBe(401);
    expect(bad.body.error).toMatch(/did not accept the token \(TokenReview\)/);
  });

  it("shows each caller only the pipelines of namespaces it may get inferencepipelines in", async () => {
    const alice = api.tokenFor('ml', 'alice');
    const seen = await get(secured, '/api/pipelines', alice);
    expect(seen.status).toBe(200);
    expect(seen.body.pipelines!.map((p) => p.id)).toEqual(['ml/video']);
    expect(seen.body.invalid).toEqual([]);
    expect((await get(secured, '/api/decisions', alice)).body.decisions!.map((d) => d.pipelineId)).toEqual(['ml/video']);
    const other = await get(secured, '/api/decisions?pipeline=other/chat', alice);
    expect(other.status).toBe(403);
    expect(other.body.error).toContain('system:serviceaccount:ml:alice may not get inferencepipelines in namespace other: bind it ClusterRole sair-pipeline-viewer');
    // A pipeline with no decisions yet: an empty list where the caller may read, 403 where not.
    expect((await get(secured, '/api/decisions?pipeline=ml/new', alice)).body).toEqual({ decisions: [] });
    expect((await get(secured, '/api/decisions?pipeline=other/new', alice)).status).toBe(403);
    // Nothing granted: an empty list, not an error.
    expect((await get(secured, '/api/pipelines', api.tokenFor('ml', 'bob'))).body.pipelines).toEqual([]);
    // The cluster admin sees everything.
    const admin = await get(secured, '/api/pipelines', ADMIN_TOKEN);
    expect(admin.body.pipelines!.map((p) => p.id).sort()).toEqual(['ml/video', 'other/chat']);
    expect(admin.body.invalid!.map((p) => p.id)).toEqual(['other/broken']);
  });

  it('reuses a review answer for a while instead of asking on every poll', async () => {
    const token = api.tokenFor('ml', 'carol');
    const before = api.requests.filter((r) => r.resource === 'tokenreviews.authentication.k8s.io').length;
    for (let i = 0; i < 5; i++) await get(secured, '/api/pipelines', token);
    expect(api.requests.filter((r) => r.resource === 'tokenreviews.authentication.k8s.io').length - before).toBe(1);
    expect(reviews).toBeGreaterThan(5);
  });

  it('keeps probes and metrics open, and the API open where no auth is configured (sair start)', async () => {
    expect((await fetch(`${secured}/healthz`)).status).toBe(200);
    expect((await fetch(`${secured}/metrics`)).status).toBe(200);
    expect((await get(open, '/api/pipelines')).body.pipelines!.map((p) => p.id).sort()).toEqual(['ml/video', 'other/chat']);
  });
});
