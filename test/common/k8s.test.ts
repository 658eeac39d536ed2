// The shared client helpers against the fake API server: the patch Content-Type options and the
// Status of a failed call, as the parts read them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { apiStatusOf, MERGE_PATCH, STRATEGIC_MERGE_PATCH, statusOf } from '../../src/common/k8s.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';

let api: FakeApiServer;

beforeAll(async () => {
  api = await startFakeApiServer();
  api.seed({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'web', namespace: 'default' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: {
          containers: [
            { name: 'a', image: 'a' },
            { name: 'b', image: 'b' },
          ],
        },
      },
    },
  });
});

afterAll(async () => {
  await api.close();
});

describe('patch options', () => {
  it('MERGE_PATCH sends a merge patch', async () => {
    const { apps } = api.clients();
    const scale = await apps.patchNamespacedDeploymentScale(
      { name: 'web', namespace: 'default', body: { spec: { replicas: 3 } } },
      MERGE_PATCH,
    );
    expect(scale.spec?.replicas).toBe(3);
    expect(api.requests.at(-1)?.contentType).toBe('application/merge-patch+json');
  });

  it('STRATEGIC_MERGE_PATCH merges containers by name', async () => {
    const { apps } = api.clients();
    const body = { spec: { template: { spec: { containers: [{ name: 'b', image: 'b:2' }] } } } };
    const d = await apps.patchNamespacedDeployment(
      { name: 'web', namespace: 'default', body },
      STRATEGIC_MERGE_PATCH,
    );
    expect(d.spec?.template.spec?.containers.map((c) => `${c.name}=${c.image}`)).toEqual(['a=a', 'b=b:2']);
  });
});

describe('apiStatusOf', () => {
  it('reads code, reason and message of a failed call', async () => {
    const err = await api
      .clients()
      .apps.readNamespacedDeployment({ name: 'ghost', namespace: 'default' })
      .catch((e: unknown) => e);
    expect(statusOf(err)).toBe(404);
    expect(apiStatusOf(err)).toEqual({
      code: 404,
      reason: 'NotFound',
      message: 'deployments.apps "ghost" not found',
    });
  });

  it('reads Retry-After of a throttled call', async () => {
    api.injectFault({ verb: 'get', resource: 'deployments', status: 429, retryAfterSeconds: 7 });
    const err = await api
      .clients()
      .apps.readNamespacedDeployment({ name: 'web', namespace: 'default' })
      .catch((e: unknown) => e);
    expect(apiStatusOf(err)).toMatchObject({ code: 429, reason: 'TooManyRequests', retryAfterSeconds: 7 });
  });

  it('is undefined for errors that carry no Status', () => {
    expect(apiStatusOf(new Error('socket hang up'))).toBeUndefined();
    expect(apiStatusOf({ body: 'not json' })).toBeUndefined();
  });
});
