// The fake API server through the real @kubernetes/client-node: CRUD on every kind of resource,
// the real error shapes, each patch type, selectors, watch and informers (with a 410 relist),
// the scale and status subresources, fault injection, watch severing and mutating admission.
import { generateKeyPairSync } from 'node:crypto';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import forge from 'node-forge';
import * as k8s from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import { startFakeApiServer, type FakeApiServer, type StatusBody } from './fake-apiserver.js';
import type { KubeClients } from '../../src/common/k8s.js';

const NS = 'ml';
const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
const strategic = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch);

/** The Status body of a failed client-node call. */
async function failure(p: Promise<unknown>): Promise<StatusBody> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiException);
    const e = err as ApiException<string>;
    const body = JSON.parse(e.body) as StatusBody;
    expect(body.code).toBe(e.code);
    return body;
  }
  throw new Error('expected the call to fail');
}

/** Resolves when `predicate` holds, checking after each event pushed through `notify`. */
function waiter<T>() {
  const seen: T[] = [];
  const pending: { test: (s: T[]) => boolean; resolve: () => void }[] = [];
  return {
    seen,
    push(item: T) {
      seen.push(item);
      for (const p of [...pending]) {
        if (p.test(seen)) {
          pending.splice(pending.indexOf(p), 1);
          p.resolve();
        }
      }
    },
    until(test: (s: T[]) => boolean): Promise<void> {
      if (test(seen)) return Promise.resolve();
      return new Promise((resolve) => pending.push({ test, resolve }));
    },
  };
}

function deployment(
  name: string,
  replicas = 2,
  labels: Record<string, string> = { app: name },
): k8s.V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: {
          containers: [
            {
              name: 'main',
              image: 'img:1',
              env: [{ name: 'A', value: '1' }],
              volumeMounts: [{ name: 'v', mountPath: '/v' }],
            },
            { name: 'side', image: 'side:1' },
          ],
        },
      },
    },
  };
}

function pod(name: string, labels: Record<string, string>, nodeName?: string, namespace = NS): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels },
    spec: { nodeName, containers: [{ name: 'c', image: 'img' }] },
  };
}

let api: FakeApiServer;
let c: KubeClients;

beforeAll(async () => {
  api = await startFakeApiServer({ bookmarkIntervalMs: 50 });
  c = api.clients(NS);
  await c.core.createNamespace({ body: { metadata: { name: NS, labels: { 'sair.dev/enabled': 'true' } } } });
});

afterAll(async () => {
  await api.close();
});

describe('discovery and namespaces', () => {
  it('serves /version, /api, /apis and resource lists', async () => {
    const version = await c.kc.makeApiClient(k8s.VersionApi).getCode();
    expect(version.gitVersion).toMatch(/^v1\./);
    const groups = await c.kc.makeApiClient(k8s.ApisApi).getAPIVersions();
    expect(groups.groups.map((g) => g.name)).toEqual(
      expect.arrayContaining(['apps', 'autoscaling', 'coordination.k8s.io', 'sair.dev']),
    );
    const core = await c.core.getAPIResources();
    expect(core.resources.find((r) => r.name === 'pods')).toMatchObject({ namespaced: true, kind: 'Pod' });
    expect(core.resources.map((r) => r.name)).toContain('pods/status');
    const apps = await c.apps.getAPIResources();
    expect(apps.resources.find((r) => r.name === 'deployments/scale')).toMatchObject({
      group: 'autoscaling',
      version: 'v1',
      kind: 'Scale',
    });
  });

  it('lets the generic KubernetesObjectApi find resources through discovery', async () => {
    const objects = k8s.KubernetesObjectApi.makeApiClient(api.kubeConfig());
    const pipeline: k8s.KubernetesObject & { spec: object } = {
      apiVersion: 'sair.dev/v1alpha1',
      kind: 'InferencePipeline',
      metadata: { name: 'generic', namespace: NS },
      spec: { sloMs: 100 },
    };
    const created = await objects.create(pipeline);
    expect(created.metadata?.uid).toBeDefined();
    const patched = await objects.patch(
      { ...pipeline, metadata: { ...pipeline.metadata, labels: { via: 'generic' } } },
      undefined,
      undefined,
      undefined,
      undefined,
      k8s.PatchStrategy.MergePatch,
    );
    expect(patched.metadata?.labels).toEqual({ via: 'generic' });
    expect((await objects.list('sair.dev/v1alpha1', 'InferencePipeline', NS)).items).toHaveLength(1);
    await objects.delete(pipeline);
    expect(api.get('inferencepipelines.sair.dev', NS, 'generic')).toBeUndefined();
    expect(api.requests.some((r) => r.path === '/apis/sair.dev/v1alpha1' && r.status === 200)).toBe(true);
  });

  it('starts with the default namespaces, Active', async () => {
    const list = await c.core.listNamespace();
    expect(list.items.map((n) => n.metadata?.name)).toEqual(
      expect.arrayContaining(['default', 'kube-system', NS]),
    );
    const ml = list.items.find((n) => n.metadata?.name === NS);
    expect(ml?.status?.phase).toBe('Active');
    expect(ml?.metadata?.labels).toEqual({ 'sair.dev/enabled': 'true', 'kubernetes.io/metadata.name': NS });
  });

  it('refuses namespaced objects in a missing namespace with the real 404', async () => {
    const body = await failure(
      c.core.createNamespacedConfigMap({ namespace: 'nope', body: { metadata: { name: 'x' } } }),
    );
    expect(body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'namespaces "nope" not found',
      reason: 'NotFound',
      details: { name: 'nope', kind: 'namespaces' },
      code: 404,
    });
  });

  it('deleting a namespace deletes what is in it', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'doomed' } } });
    await c.core.createNamespacedConfigMap({ namespace: 'doomed', body: { metadata: { name: 'cm' } } });
    await c.core.deleteNamespace({ name: 'doomed' });
    expect(api.get('namespaces', undefined, 'doomed')).toBeUndefined();
    expect(api.get('configmaps', 'doomed', 'cm')).toBeUndefined();
  });
});

describe('object semantics', () => {
  it('creates with uid, resourceVersion, creationTimestamp, generation and defaults', async () => {
    const created = await c.apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') });
    expect(created.metadata?.uid).toMatch(/^[0-9a-f-]{36}$/);
    expect(created.metadata?.resourceVersion).toMatch(/^\d+$/);
    expect(created.metadata?.creationTimestamp).toBeInstanceOf(Date);
    expect(created.metadata?.generation).toBe(1);
    expect(created.metadata?.namespace).toBe(NS);
    expect(created.spec?.strategy?.type).toBe('RollingUpdate');
    const read = await c.apps.readNamespacedDeployment({ name: 'web', namespace: NS });
    expect(read.metadata?.resourceVersion).toBe(created.metadata?.resourceVersion);
    expect(read.kind).toBe('Deployment');
    expect(read.apiVersion).toBe('apps/v1');
  });

  it('answers a missing object with the real NotFound Status', async () => {
    expect(await failure(c.apps.readNamespacedDeployment({ name: 'ghost', namespace: NS }))).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: 'deployments.apps "ghost" not found',
      reason: 'NotFound',
      details: { name: 'ghost', group: 'apps', kind: 'deployments' },
      code: 404,
    });
    const podBody = await failure(c.core.readNamespacedPod({ name: 'ghost', namespace: NS }));
    expect(podBody.message).toBe('pods "ghost" not found');
    expect(podBody.details).toEqual({ name: 'ghost', kind: 'pods' });
  });

  it('answers a duplicate create with AlreadyExists', async () => {
    const body = await failure(c.apps.createNamespacedDeployment({ namespace: NS, body: deployment('web') }));
    expect(body).toMatchObject({
      code: 409,
      reason: 'AlreadyExists',
      message: 'deployments.apps "web" already exists',
    });
  });

  it('rejects a stale resourceVersion on PUT with the real Conflict', async () => {
    const cur = await c.apps.readNamespacedDeployment({ name: 'web', namespace: NS });
    const stale = structuredClone(cur);
    cur.spec!.replicas = 3;
    const updated = await c.apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: cur });
    expect(Number(updated.metadata?.resourceVersion)).toBeGreaterThan(
      Number(stale.metadata?.resourceVersion),
    );
    expect(updated.metadata?.generation).toBe(2);
    stale.spec!.replicas = 5;
    expect(
      await failure(c.apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: stale })),
    ).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again',
      reason: 'Conflict',
      details: { name: 'web', group: 'apps', kind: 'deployments' },
      code: 409,
    });
  });

  it('keeps resourceVersion and generation on a no-op update; a Deployment annotation change bumps generation', async () => {
    // pkg/registry/apps/deployment/strategy.go PrepareForUpdate: spec or annotations changed -> generation + 1.
    const cur = await c.apps.readNamespacedDeployment({ name: 'web', namespace: NS });
    const same = await c.apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: cur });
    expect(same.metadata?.resourceVersion).toBe(cur.metadata?.resourceVersion);
    cur.metadata!.annotations = { note: 'x' };
    const annotated = await c.apps.replaceNamespacedDeployment({ name: 'web', namespace: NS, body: cur });
    expect(annotated.metadata?.resourceVersion).not.toBe(cur.metadata?.resourceVersion);
    expect(annotated.metadata?.generation).toBe(cur.metadata!.generation! + 1);
  });

  it('generates names, validates names and refuses a name mismatch', async () => {
    const cm = await c.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { generateName: 'cfg-' }, data: { a: 'b' } },
    });
    expect(cm.metadata?.name).toMatch(/^cfg-[a-z0-9]{5}$/);
    const invalid = await failure(
      c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'Bad_Name' } } }),
    );
    expect(invalid).toMatchObject({
      code: 422,
      reason: 'Invalid',
      details: { name: 'Bad_Name', kind: 'ConfigMap' },
    });
    expect(invalid.message).toMatch(
      /^ConfigMap "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 subdomain/,
    );
    const missing = await failure(
      c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: {} } }),
    );
    expect(missing.message).toBe(
      'ConfigMap "" is invalid: metadata.name: Required value: name or generateName is required',
    );
    const mismatch = await failure(
      c.core.replaceNamespacedConfigMap({
        name: cm.metadata!.name!,
        namespace: NS,
        body: { metadata: { name: 'other' } },
      }),
    );
    expect(mismatch).toMatchObject({ code: 400, reason: 'BadRequest' });
    expect(mismatch.message).toBe(
      `the name of the object (other) does not match the name on the URL (${cm.metadata!.name})`,
    );
  });

  it('resets a created pod status to Pending with its QoS class', async () => {
    const res = (cpu: string, memory: string) => ({ cpu, memory });
    const make = (name: string, resources: k8s.V1ResourceRequirements) =>
      c.core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: { name },
          spec: { containers: [{ name: 'c', image: 'i', resources }] },
          status: { phase: 'Running' },
        },
      });
    expect((await make('qos-g', { limits: res('1', '1Gi') })).status).toEqual({
      phase: 'Pending',
      qosClass: 'Guaranteed',
    });
    expect((await make('qos-b', { requests: { cpu: '100m' } })).status?.qosClass).toBe('Burstable');
    expect((await make('qos-e', {})).status?.qosClass).toBe('BestEffort');
    await c.core.deleteCollectionNamespacedPod({ namespace: NS, fieldSelector: 'status.phase=Pending' });
    expect(api.list('pods', NS)).toEqual([]);
  });

  it('refuses a PUT whose uid is not the stored object uid', async () => {
    const cm = await c.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'uid-check' } },
    });
    const body = await failure(
      c.core.replaceNamespacedConfigMap({
        name: 'uid-check',
        namespace: NS,
        body: { metadata: { name: 'uid-check', uid: 'other' } },
      }),
    );
    expect(body.message).toBe(
      `Operation cannot be fulfilled on configmaps "uid-check": Precondition failed: UID in precondition: other, UID in object meta: ${cm.metadata?.uid}`,
    );
  });

  it('answers an unsupported method with MethodNotAllowed', async () => {
    const res = await fetch(`${api.url}/api/v1/namespaces/${NS}/configmaps`, { method: 'PUT', body: '{}' });
    expect(res.status).toBe(405);
    expect(await res.json()).toMatchObject({ kind: 'Status', reason: 'MethodNotAllowed', code: 405 });
  });

  it('does CRUD on every built-in kind the parts use', async () => {
    await c.core.createNamespacedSecret({
      namespace: NS,
      body: { metadata: { name: 'llm' }, stringData: { key: 'k' } },
    });
    await c.core.createNamespacedServiceAccount({ namespace: NS, body: { metadata: { name: 'sa' } } });
    await c.core.createNamespacedService({
      namespace: NS,
      body: {
        metadata: { name: 'svc' },
        spec: { ports: [{ port: 443, targetPort: 8443 }], selector: { app: 'w' } },
      },
    });
    await c.core.createNamespacedEvent({
      namespace: NS,
      body: {
        metadata: { name: 'ev1' },
        involvedObject: { kind: 'Pod', name: 'p', namespace: NS },
        reason: 'Scaled',
        message: 'up',
        type: 'Normal',
      },
    });
    await c.autoscaling.createNamespacedHorizontalPodAutoscaler({
      namespace: NS,
      body: {
        metadata: { name: 'web' },
        spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, maxReplicas: 5 },
      },
    });
    await c.coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } },
    });
    await c.admissionregistration.createMutatingWebhookConfiguration({
      body: { metadata: { name: 'noop' }, webhooks: [] },
    });

    expect((await c.core.readNamespacedSecret({ name: 'llm', namespace: NS })).metadata?.name).toBe('llm');
    expect(
      (await c.core.listNamespacedServiceAccount({ namespace: NS })).items.map((s) => s.metadata?.name),
    ).toContain('sa');
    expect((await c.core.readNamespacedService({ name: 'svc', namespace: NS })).spec?.ports?.[0]?.port).toBe(
      443,
    );
    const hpa = await c.autoscaling.readNamespacedHorizontalPodAutoscaler({ name: 'web', namespace: NS });
    expect(hpa.spec?.minReplicas).toBe(1);
    const lease = await c.coordination.readNamespacedLease({ name: 'leader', namespace: NS });
    lease.spec!.holderIdentity = 'b';
    const taken = await c.coordination.replaceNamespacedLease({ name: 'leader', namespace: NS, body: lease });
    expect(taken.spec?.holderIdentity).toBe('b');
    lease.spec!.holderIdentity = 'c';
    expect(
      (await failure(c.coordination.replaceNamespacedLease({ name: 'leader', namespace: NS, body: lease })))
        .reason,
    ).toBe('Conflict');
    expect(
      (await c.admissionregistration.listMutatingWebhookConfiguration()).items.map((m) => m.metadata?.name),
    ).toContain('noop');

    const deleted = await c.coordination.deleteNamespacedLease({ name: 'leader', namespace: NS });
    expect(deleted).toMatchObject({
      status: 'Success',
      details: { name: 'leader', group: 'coordination.k8s.io', kind: 'leases' },
    });
    await c.admissionregistration.deleteMutatingWebhookConfiguration({ name: 'noop' });
    expect(api.get('leases', NS, 'leader')).toBeUndefined();
  });

  it('serves core/v1 and events.k8s.io/v1 events from one storage', async () => {
    const events = c.kc.makeApiClient(k8s.EventsV1Api);
    const ev = await events.readNamespacedEvent({ name: 'ev1', namespace: NS });
    expect(ev.regarding?.name).toBe('p');
    expect(ev.note).toBe('up');
    await events.createNamespacedEvent({
      namespace: NS,
      body: {
        metadata: { name: 'ev2' },
        eventTime: new Date() as unknown as k8s.V1MicroTime,
        regarding: { kind: 'Deployment', name: 'web', namespace: NS },
        note: 'scaled to 3',
        reason: 'Decision',
        action: 'Scale',
        reportingController: 'sair.dev/policy',
        reportingInstance: 'policy-0',
        type: 'Normal',
      },
    });
    const core = await c.core.listNamespacedEvent({
      namespace: NS,
      fieldSelector: 'involvedObject.kind=Deployment',
    });
    expect(core.items.map((e) => [e.metadata?.name, e.message])).toEqual([['ev2', 'scaled to 3']]);
  });

  it('honours DELETE preconditions and dryRun', async () => {
    const cm = await c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'pre' } } });
    const body = await failure(
      c.core.deleteNamespacedConfigMap({
        name: 'pre',
        namespace: NS,
        body: { preconditions: { uid: 'other' } },
      }),
    );
    expect(body.message).toBe(
      `Operation cannot be fulfilled on configmaps "pre": Precondition failed: UID in precondition: other, UID in object meta: ${cm.metadata?.uid}`,
    );
    await c.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'dry' } },
      dryRun: 'All',
    });
    expect(api.get('configmaps', NS, 'dry')).toBeUndefined();
    await c.core.deleteNamespacedConfigMap({ name: 'pre', namespace: NS, gracePeriodSeconds: 0 });
    expect(api.get('configmaps', NS, 'pre')).toBeUndefined();
  });
});

describe('patch', () => {
  it('applies a JSON patch, the client default', async () => {
    const out = await c.apps.patchNamespacedDeployment({
      name: 'web',
      namespace: NS,
      body: [
        { op: 'replace', path: '/spec/replicas', value: 4 },
        { op: 'add', path: '/metadata/labels/tier', value: 'gpu' },
      ],
    });
    expect(out.spec?.replicas).toBe(4);
    expect(out.metadata?.labels).toEqual({ app: 'web', tier: 'gpu' });
    const last = api.requests[api.requests.length - 1]!;
    expect(last).toMatchObject({
      method: 'PATCH',
      verb: 'patch',
      resource: 'deployments.apps',
      contentType: 'application/json-patch+json',
    });
  });

  it('answers a failing JSON patch test with 422', async () => {
    const body = await failure(
      c.apps.patchNamespacedDeployment({
        name: 'web',
        namespace: NS,
        body: [{ op: 'test', path: '/spec/replicas', value: 99 }],
      }),
    );
    expect(body).toMatchObject({ code: 422, reason: 'Invalid' });
  });

  it('applies a merge patch: maps merge, null deletes, lists are replaced', async () => {
    const out = await c.apps.patchNamespacedDeployment(
      {
        name: 'web',
        namespace: NS,
        body: {
          metadata: { labels: { tier: null } },
          spec: { template: { spec: { containers: [{ name: 'only', image: 'x' }] } } },
        },
      },
      merge,
    );
    expect(out.metadata?.labels).toEqual({ app: 'web' });
    expect(out.spec?.template.spec?.containers.map((x) => x.name)).toEqual(['only']);
  });

  it('applies a strategic merge patch: containers, env and volumeMounts merge by key', async () => {
    await c.apps.replaceNamespacedDeployment({
      name: 'web',
      namespace: NS,
      body: { ...deployment('web', 4), metadata: { name: 'web', labels: { app: 'web' } } },
    });
    const out = await c.apps.patchNamespacedDeployment(
      {
        name: 'web',
        namespace: NS,
        body: {
          spec: {
            template: {
              spec: {
                containers: [
                  {
                    name: 'main',
                    env: [{ name: 'LD_PRELOAD', value: '/usr/local/sair/lib/libsair-cuda.so' }],
                    volumeMounts: [{ name: 'sair-lib', mountPath: '/usr/local/sair/lib', readOnly: true }],
                  },
                  { name: 'side', $patch: 'delete' },
                ],
                volumes: [{ name: 'sair-lib', hostPath: { path: '/var/lib/sair/lib' } }],
              },
            },
          },
        },
      },
      strategic,
    );
    const containers = out.spec!.template.spec!.containers;
    expect(containers.map((x) => x.name)).toEqual(['main']);
    expect(containers[0]!.image).toBe('img:1');
    expect(containers[0]!.env?.map((e) => e.name)).toEqual(['A', 'LD_PRELOAD']);
    expect(containers[0]!.volumeMounts?.map((m) => m.mountPath)).toEqual(['/v', '/usr/local/sair/lib']);
    expect(out.spec!.template.spec!.volumes?.map((v) => v.name)).toEqual(['sair-lib']);
  });

  it('refuses server-side apply with 415 and a conflicting resourceVersion in a patch with 409', async () => {
    const apply = await failure(
      c.apps.patchNamespacedDeployment(
        { name: 'web', namespace: NS, body: { spec: { replicas: 1 } }, fieldManager: 'test' },
        k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.ServerSideApply),
      ),
    );
    expect(apply).toMatchObject({ code: 415, reason: 'UnsupportedMediaType' });
    const stale = await failure(
      c.apps.patchNamespacedDeployment(
        { name: 'web', namespace: NS, body: { metadata: { resourceVersion: '1' }, spec: { replicas: 1 } } },
        merge,
      ),
    );
    expect(stale.reason).toBe('Conflict');
  });
});

describe('scale subresource', () => {
  it('reads, replaces and patches an autoscaling/v1 Scale', async () => {
    const scale = await c.apps.readNamespacedDeploymentScale({ name: 'web', namespace: NS });
    expect(scale).toMatchObject({
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      spec: { replicas: 4 },
      status: { replicas: 0, selector: 'app=web' },
    });
    scale.spec!.replicas = 6;
    const replaced = await c.apps.replaceNamespacedDeploymentScale({
      name: 'web',
      namespace: NS,
      body: scale,
    });
    expect(replaced.spec?.replicas).toBe(6);
    expect(api.get<k8s.V1Deployment>('deployments.apps', NS, 'web')?.spec?.replicas).toBe(6);
    scale.spec!.replicas = 7;
    expect(
      (await failure(c.apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: NS, body: scale })))
        .message,
    ).toBe(
      'Operation cannot be fulfilled on deployments.apps "web": the object has been modified; please apply your changes to the latest version and try again',
    );
    const patched = await c.apps.patchNamespacedDeploymentScale(
      { name: 'web', namespace: NS, body: { spec: { replicas: 2 } } },
      merge,
    );
    expect(patched.spec?.replicas).toBe(2);
    const invalid = await failure(
      c.apps.patchNamespacedDeploymentScale(
        { name: 'web', namespace: NS, body: { spec: { replicas: -1 } } },
        merge,
      ),
    );
    expect(invalid).toMatchObject({ code: 422, reason: 'Invalid' });
  });

  it('keeps the deployment status on spec writes and the spec on status writes', async () => {
    const cur = await c.apps.readNamespacedDeployment({ name: 'web', namespace: NS });
    cur.status = { replicas: 2, readyReplicas: 2 };
    const afterStatus = await c.apps.replaceNamespacedDeploymentStatus({
      name: 'web',
      namespace: NS,
      body: { ...cur, spec: { ...cur.spec!, replicas: 9 } },
    });
    expect(afterStatus.status?.readyReplicas).toBe(2);
    expect(afterStatus.spec?.replicas).toBe(2);
    expect(afterStatus.metadata?.generation).toBe(cur.metadata?.generation);
    const scale = await c.apps.readNamespacedDeploymentScale({ name: 'web', namespace: NS });
    expect(scale.status?.replicas).toBe(2);
    const afterSpec = await c.apps.patchNamespacedDeployment(
      { name: 'web', namespace: NS, body: { status: { readyReplicas: 0 }, spec: { paused: true } } },
      merge,
    );
    expect(afterSpec.status?.readyReplicas).toBe(2);
    expect(afterSpec.spec?.paused).toBe(true);
  });
});

describe('custom resources', () => {
  const group = 'sair.dev';
  const version = 'v1alpha1';
  const plural = 'inferencepipelines';

  it('serves InferencePipelines with a status subresource that separates spec and status', async () => {
    const created = (await c.custom.createNamespacedCustomObject({
      group,
      version,
      namespace: NS,
      plural,
      body: {
        apiVersion: 'sair.dev/v1alpha1',
        kind: 'InferencePipeline',
        metadata: { name: 'p' },
        spec: { sloMs: 200 },
        status: { bottleneck: 'x' },
      },
    })) as k8s.KubernetesObject & { status?: unknown };
    expect(created.status).toBeUndefined();
    expect(created.metadata?.generation).toBe(1);
    const withStatus = (await c.custom.patchNamespacedCustomObjectStatus(
      {
        group,
        version,
        namespace: NS,
        plural,
        name: 'p',
        body: { spec: { sloMs: 1 }, status: { bottleneck: 'stage-1', p99Ms: 180 } },
      },
      merge,
    )) as { spec: { sloMs: number }; status: { bottleneck: string }; metadata: { generation: number } };
    expect(withStatus.status.bottleneck).toBe('stage-1');
    expect(withStatus.spec.sloMs).toBe(200);
    expect(withStatus.metadata.generation).toBe(1);
    const specOnly = (await c.custom.patchNamespacedCustomObject(
      {
        group,
        version,
        namespace: NS,
        plural,
        name: 'p',
        body: { spec: { sloMs: 300 }, status: { bottleneck: 'ignored' } },
      },
      merge,
    )) as typeof withStatus;
    expect(specOnly.spec.sloMs).toBe(300);
    expect(specOnly.status.bottleneck).toBe('stage-1');
    expect(specOnly.metadata.generation).toBe(2);
    const list = (await c.custom.listNamespacedCustomObject({ group, version, namespace: NS, plural })) as {
      kind: string;
      items: { kind: string }[];
    };
    expect(list.kind).toBe('InferencePipelineList');
    expect(list.items[0]!.kind).toBe('InferencePipeline');
    const smp = await failure(
      c.custom.patchNamespacedCustomObject(
        { group, version, namespace: NS, plural, name: 'p', body: { spec: {} } },
        strategic,
      ),
    );
    expect(smp.code).toBe(415);
  });

  it('serves the resources of a CRD created over REST, with its scale subresource', async () => {
    const crd = await c.kc.makeApiClient(k8s.ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        metadata: { name: 'workers.example.com' },
        spec: {
          group: 'example.com',
          scope: 'Namespaced',
          names: { plural: 'workers', singular: 'worker', kind: 'Worker' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              schema: { openAPIV3Schema: { type: 'object', x_kubernetes_preserve_unknown_fields: true } },
              subresources: {
                status: {},
                scale: {
                  specReplicasPath: '.spec.replicas',
                  statusReplicasPath: '.status.replicas',
                  labelSelectorPath: '.status.selector',
                },
              },
            },
          ],
        },
      },
    });
    expect(crd.status?.conditions?.find((x) => x.type === 'Established')?.status).toBe('True');
    expect(crd.status?.storedVersions).toEqual(['v1']);
    await c.custom.createNamespacedCustomObject({
      group: 'example.com',
      version: 'v1',
      namespace: NS,
      plural: 'workers',
      body: { apiVersion: 'example.com/v1', kind: 'Worker', metadata: { name: 'w' }, spec: { replicas: 1 } },
    });
    const scaled = (await c.custom.patchNamespacedCustomObjectScale(
      {
        group: 'example.com',
        version: 'v1',
        namespace: NS,
        plural: 'workers',
        name: 'w',
        body: { spec: { replicas: 3 } },
      },
      merge,
    )) as { spec: { replicas: number } };
    expect(scaled.spec.replicas).toBe(3);
    expect(api.get<{ spec: { replicas: number } }>('workers.example.com', NS, 'w')?.spec.replicas).toBe(3);
  });
});

describe('custom resource schemas', () => {
  const gadgets = { group: 'example.com', version: 'v1', namespace: NS, plural: 'gadgets' };
  const gadget = (name: string, spec: object) => ({
    apiVersion: 'example.com/v1',
    kind: 'Gadget',
    metadata: { name },
    spec,
  });

  beforeAll(async () => {
    await c.kc.makeApiClient(k8s.ApiextensionsV1Api).createCustomResourceDefinition({
      body: {
        metadata: { name: 'gadgets.example.com' },
        spec: {
          group: 'example.com',
          scope: 'Namespaced',
          names: { plural: 'gadgets', singular: 'gadget', kind: 'Gadget' },
          versions: [
            {
              name: 'v1',
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: 'object',
                  properties: {
                    spec: {
                      type: 'object',
                      required: ['size'],
                      properties: {
                        size: { type: 'integer', minimum: 1 },
                        mode: { type: 'string', _enum: ['Active', 'DryRun'], _default: 'Active' },
                        name: { type: 'string', pattern: '^[a-z]+$' },
                        port: { x_kubernetes_int_or_string: true },
                        note: { type: 'string', nullable: true },
                        extra: { type: 'object', x_kubernetes_preserve_unknown_fields: true },
                      },
                    },
                    status: { type: 'object', properties: { ready: { type: 'boolean' } } },
                  },
                },
              },
            },
          ],
        },
      },
    });
  });

  it('prunes unknown fields and applies defaults, as the real server stores them', async () => {
    const created = (await c.custom.createNamespacedCustomObject({
      ...gadgets,
      body: gadget('g', { size: 2, port: 'http', note: null, bogus: true, extra: { anything: { goes: 1 } } }),
    })) as { spec: Record<string, unknown> };
    expect(created.spec).toEqual({
      size: 2,
      mode: 'Active',
      port: 'http',
      note: null,
      extra: { anything: { goes: 1 } },
    });
    const status = (await c.custom.patchNamespacedCustomObjectStatus(
      { ...gadgets, name: 'g', body: { status: { ready: true, unknown: 'dropped' } } },
      merge,
    )) as { status: object };
    expect(status.status).toEqual({ ready: true });
  });

  it('refuses an invalid object with 422 and one cause per field', async () => {
    const body = await failure(
      c.custom.createNamespacedCustomObject({
        ...gadgets,
        body: gadget('bad', { size: 'big', mode: 'Fast', name: 'A1' }),
      }),
    );
    expect(body).toMatchObject({
      code: 422,
      reason: 'Invalid',
      details: { name: 'bad', group: 'example.com', kind: 'Gadget' },
    });
    expect(body.details?.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'spec.size',
        message: 'Invalid value: "string": spec.size in body must be of type integer: "string"',
      },
      {
        reason: 'FieldValueNotSupported',
        field: 'spec.mode',
        message: 'Unsupported value: "Fast": supported values: "Active", "DryRun"',
      },
      {
        reason: 'FieldValueInvalid',
        field: 'spec.name',
        message: `Invalid value: "A1": spec.name in body should match '^[a-z]+$'`,
      },
    ]);
    expect(body.message).toMatch(/^Gadget\.example\.com "bad" is invalid: \[spec\.size: Invalid value/);
    const missing = await failure(
      c.custom.createNamespacedCustomObject({ ...gadgets, body: gadget('empty', {}) }),
    );
    expect(missing.message).toBe('Gadget.example.com "empty" is invalid: spec.size: Required value');
    const update = await failure(
      c.custom.patchNamespacedCustomObject({ ...gadgets, name: 'g', body: { spec: { size: 0 } } }, merge),
    );
    expect(update.details?.causes?.[0]?.message).toBe(
      'Invalid value: 0: spec.size in body should be greater than or equal to 1',
    );
  });
});

describe('list selectors and paging', () => {
  beforeAll(() => {
    api.seed(pod('a-1', { app: 'a', tier: 'gpu' }, 'node-1'));
    api.seed({ ...pod('a-2', { app: 'a' }, 'node-2'), status: { phase: 'Running' } });
    api.seed(pod('b-1', { app: 'b', tier: 'cpu' }, 'node-1'));
  });
  const names = async (opts: { labelSelector?: string; fieldSelector?: string }) =>
    (await c.core.listNamespacedPod({ namespace: NS, ...opts })).items.map((p) => p.metadata?.name);

  it('filters by label selector', async () => {
    expect(await names({ labelSelector: 'app=a' })).toEqual(['a-1', 'a-2']);
    expect(await names({ labelSelector: 'app==a,tier' })).toEqual(['a-1']);
    expect(await names({ labelSelector: 'app!=a' })).toEqual(['b-1']);
    expect(await names({ labelSelector: 'tier in (gpu, cpu)' })).toEqual(['a-1', 'b-1']);
    expect(await names({ labelSelector: 'tier notin (gpu)' })).toEqual(['a-2', 'b-1']);
    expect(await names({ labelSelector: '!tier' })).toEqual(['a-2']);
    expect(
      (await failure(c.core.listNamespacedPod({ namespace: NS, labelSelector: 'app=a b' }))).reason,
    ).toBe('BadRequest');
  });

  it('filters by field selector and refuses unknown field labels', async () => {
    expect(await names({ fieldSelector: 'spec.nodeName=node-1' })).toEqual(['a-1', 'b-1']);
    expect(await names({ fieldSelector: 'status.phase=Running' })).toEqual(['a-2']);
    expect(await names({ fieldSelector: 'metadata.name!=a-1,spec.nodeName==node-1' })).toEqual(['b-1']);
    const bad = await failure(c.core.listNamespacedPod({ namespace: NS, fieldSelector: 'spec.image=x' }));
    expect(bad).toMatchObject({
      code: 400,
      reason: 'BadRequest',
      message: 'field label not supported: spec.image',
    });
  });

  it('lists across namespaces with kind, resourceVersion and items without kind', async () => {
    const list = await c.core.listPodForAllNamespaces({ labelSelector: 'app' });
    expect(list.kind).toBe('PodList');
    expect(list.metadata?.resourceVersion).toBe(api.resourceVersion);
    expect(list.items).toHaveLength(3);
    expect(list.items[0]!.kind).toBeUndefined();
  });

  it('pages with limit and continue', async () => {
    const first = await c.core.listNamespacedPod({ namespace: NS, limit: 2 });
    expect(first.items.map((p) => p.metadata?.name)).toEqual(['a-1', 'a-2']);
    expect(first.metadata?.remainingItemCount).toBe(1);
    const second = await c.core.listNamespacedPod({
      namespace: NS,
      limit: 2,
      _continue: first.metadata?._continue,
    });
    expect(second.items.map((p) => p.metadata?.name)).toEqual(['b-1']);
    expect(second.metadata?._continue).toBeUndefined();
  });
});

describe('watch', () => {
  it('streams ADDED, MODIFIED, DELETED after a resourceVersion through client-node Watch', async () => {
    const rv = api.resourceVersion;
    const events = waiter<[string, string]>();
    const w = new k8s.Watch(api.kubeConfig());
    const req = await w.watch(
      `/api/v1/namespaces/${NS}/configmaps`,
      { resourceVersion: rv, labelSelector: 'watch=me' },
      (type, obj: k8s.V1ConfigMap) => events.push([type, obj.metadata?.name ?? '']),
      () => undefined,
    );
    await c.core.createNamespacedConfigMap({
      namespace: NS,
      body: { metadata: { name: 'w1', labels: { watch: 'me' } } },
    });
    await c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'ignored' } } });
    await c.core.patchNamespacedConfigMap({ name: 'w1', namespace: NS, body: { data: { a: '1' } } }, merge);
    await c.core.patchNamespacedConfigMap(
      { name: 'w1', namespace: NS, body: { metadata: { labels: { watch: 'no' } } } },
      merge,
    );
    await c.core.patchNamespacedConfigMap(
      { name: 'ignored', namespace: NS, body: { metadata: { labels: { watch: 'me' } } } },
      merge,
    );
    await c.core.deleteNamespacedConfigMap({ name: 'ignored', namespace: NS });
    await events.until((s) => s.length >= 5);
    req.abort();
    // Leaving the selector is a DELETED event and entering it an ADDED event, as from the watch cache.
    expect(events.seen).toEqual([
      ['ADDED', 'w1'],
      ['MODIFIED', 'w1'],
      ['DELETED', 'w1'],
      ['ADDED', 'ignored'],
      ['DELETED', 'ignored'],
    ]);
  });

  it('filters a watch by field selector, as the node agent watches its node', async () => {
    const events = waiter<string>();
    const req = await new k8s.Watch(api.kubeConfig()).watch(
      '/api/v1/pods',
      { resourceVersion: api.resourceVersion, fieldSelector: 'spec.nodeName=node-9' },
      (type, obj: k8s.V1Pod) => events.push(`${type}:${obj.metadata?.name}`),
      () => undefined,
    );
    api.seed(pod('elsewhere', { app: 'w' }, 'node-1'));
    api.seed(pod('here', { app: 'w' }, 'node-9'));
    api.remove('pods', NS, 'elsewhere');
    api.remove('pods', NS, 'here');
    await events.until((s) => s.length >= 2);
    req.abort();
    expect(events.seen).toEqual(['ADDED:here', 'DELETED:here']);
  });

  it('sends synthetic ADDED events for resourceVersion 0, bookmarks when allowed, and ends at timeoutSeconds', async () => {
    const events = waiter<string>();
    const done = new Promise<unknown>((resolve) => {
      void new k8s.Watch(api.kubeConfig()).watch(
        `/api/v1/namespaces/${NS}/pods`,
        { resourceVersion: '0', allowWatchBookmarks: true, timeoutSeconds: 1 },
        (type, obj: k8s.V1Pod) =>
          events.push(`${type}:${type === 'BOOKMARK' ? obj.metadata?.resourceVersion : obj.metadata?.name}`),
        resolve,
      );
    });
    expect(await done).toBeNull();
    expect(events.seen.slice(0, 3)).toEqual(['ADDED:a-1', 'ADDED:a-2', 'ADDED:b-1']);
    expect(events.seen).toContain(`BOOKMARK:${api.resourceVersion}`);
  });

  it('sends a 410 Expired ERROR event for a compacted resourceVersion', async () => {
    const old = api.resourceVersion;
    await c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { generateName: 'c-' } } });
    api.compact();
    const events: [string, unknown][] = [];
    const done = new Promise<unknown>((resolve) => {
      void new k8s.Watch(api.kubeConfig()).watch(
        `/api/v1/namespaces/${NS}/configmaps`,
        { resourceVersion: old },
        (t, o) => events.push([t, o]),
        resolve,
      );
    });
    expect(await done).toBeNull();
    expect(events).toEqual([
      [
        'ERROR',
        {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: `too old resource version: ${old} (${Number(api.resourceVersion) + 1})`,
          reason: 'Expired',
          code: 410,
        },
      ],
    ]);
  });

  it('ends open watch streams cleanly when the server closes', async () => {
    const other = await startFakeApiServer();
    const ended = waiter<unknown>();
    // watch() resolves once the response headers are in, when the server already counts the stream.
    await new k8s.Watch(other.kubeConfig()).watch(
      '/api/v1/namespaces',
      {},
      () => undefined,
      (err) => ended.push(err),
    );
    expect(other.watchCount).toBe(1);
    await other.close();
    await ended.until((s) => s.length > 0);
    expect(ended.seen).toEqual([null]);
    expect(other.watchCount).toBe(0);
  });

  it('drives an informer through add, update, delete, a severed watch and a 410 relist', async () => {
    await c.core.createNamespace({ body: { metadata: { name: 'inf' } } });
    const listFn = () => c.core.listNamespacedPod({ namespace: 'inf', labelSelector: 'app=inf' });
    const informer = k8s.makeInformer(api.kubeConfig(), '/api/v1/namespaces/inf/pods', listFn, 'app=inf');
    const seen = waiter<string>();
    informer.on('add', (p) => seen.push(`add:${p.metadata?.name}`));
    informer.on('update', (p) => seen.push(`update:${p.metadata?.name}:${p.metadata?.labels?.v ?? ''}`));
    informer.on('delete', (p) => seen.push(`delete:${p.metadata?.name}`));
    informer.on('error', (err) => seen.push(`error:${String(err)}`));
    const connects = waiter<number>();
    informer.on('connect', () => connects.push(1));
    try {
      await c.core.createNamespacedPod({
        namespace: 'inf',
        body: pod('p1', { app: 'inf' }, undefined, 'inf'),
      });
      await informer.start();
      await seen.until((s) => s.includes('add:p1'));
      await c.core.createNamespacedPod({
        namespace: 'inf',
        body: pod('p2', { app: 'inf' }, undefined, 'inf'),
      });
      await c.core.patchNamespacedPod(
        { name: 'p1', namespace: 'inf', body: { metadata: { labels: { app: 'inf', v: '2' } } } },
        merge,
      );
      await c.core.deleteNamespacedPod({ name: 'p2', namespace: 'inf' });
      await seen.until((s) => s.includes('delete:p2'));
      expect(seen.seen).toEqual(['add:p1', 'add:p2', 'update:p1:2', 'delete:p2']);

      // A severed watch reconnects from the last resourceVersion and misses nothing.
      expect(api.dropWatches()).toBeGreaterThanOrEqual(1);
      await connects.until((s) => s.length >= 2);
      await c.core.patchNamespacedPod(
        { name: 'p1', namespace: 'inf', body: { metadata: { labels: { app: 'inf', v: '3' } } } },
        merge,
      );
      await seen.until((s) => s.includes('update:p1:3'));

      // Changes made while the informer is away and then compacted out of the history: the watch
      // gets 410, the informer relists and reports what changed.
      const relisted = connects.seen.length;
      expect(seen.seen.filter((s) => s.startsWith('error'))).toEqual([]);
      await informer.stop();
      // client-node reports its own abort of the watch as an error; wait for it so it cannot hit the restarted watch.
      await seen.until((s) => s.some((x) => x.startsWith('error:AbortError')));
      const listsBefore = api.requests.filter((r) => r.verb === 'list' && r.namespace === 'inf').length;
      await c.core.createNamespacedPod({
        namespace: 'inf',
        body: pod('p3', { app: 'inf' }, undefined, 'inf'),
      });
      await c.core.deleteNamespacedPod({ name: 'p1', namespace: 'inf' });
      api.compact();
      await informer.start();
      await seen.until((s) => s.includes('add:p3') && s.includes('delete:p1'));
      await connects.until((s) => s.length >= relisted + 2);
      expect(informer.list('inf').map((p) => p.metadata?.name)).toEqual(['p3']);
      expect(api.requests.filter((r) => r.verb === 'list' && r.namespace === 'inf').length).toBe(
        listsBefore + 1,
      );
      expect(seen.seen.filter((s) => s.startsWith('error'))).toEqual([
        'error:AbortError: This operation was aborted',
      ]);
    } finally {
      await informer.stop();
    }
  });
});

describe('fault injection', () => {
  it('fails the next N matching requests with real Status bodies, then recovers', async () => {
    const fault = api.injectFault({
      verb: 'update',
      resource: 'deployments',
      subresource: 'scale',
      status: 409,
      times: 2,
    });
    const scale = await c.apps.readNamespacedDeploymentScale({ name: 'web', namespace: NS });
    for (let i = 0; i < 2; i++) {
      const body = await failure(
        c.apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: NS, body: scale }),
      );
      expect(body).toMatchObject({
        code: 409,
        reason: 'Conflict',
        details: { name: 'web', group: 'apps', kind: 'deployments' },
      });
      expect(body.message).toMatch(
        /^Operation cannot be fulfilled on deployments.apps "web": the object has been modified/,
      );
    }
    expect(fault.remaining).toBe(0);
    expect(fault.hits).toBe(2);
    scale.spec!.replicas = 3;
    expect(
      (await c.apps.replaceNamespacedDeploymentScale({ name: 'web', namespace: NS, body: scale })).spec
        ?.replicas,
    ).toBe(3);
  });

  it('sends Retry-After with 429 and 503', async () => {
    api.injectFault({ path: /\/leases/, status: 429, retryAfterSeconds: 3 });
    let headers: Record<string, string> = {};
    try {
      await c.coordination.listNamespacedLease({ namespace: NS });
    } catch (err) {
      headers = (err as ApiException<string>).headers;
      expect(JSON.parse((err as ApiException<string>).body)).toMatchObject({
        reason: 'TooManyRequests',
        code: 429,
        details: { retryAfterSeconds: 3 },
      });
    }
    expect(headers['retry-after']).toBe('3');
    api.injectFault({ verb: 'get', resource: 'configmaps', status: 503 });
    expect(await failure(c.core.readNamespacedConfigMap({ name: 'w1', namespace: NS }))).toMatchObject({
      code: 503,
      reason: 'ServiceUnavailable',
    });
    api.injectFault({ verb: 'create', status: 500, message: 'etcd is down' });
    const internal = await failure(
      c.core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'x500' } } }),
    );
    expect(internal).toMatchObject({
      code: 500,
      reason: 'InternalError',
      message: 'Internal error occurred: etcd is down',
    });
    expect(api.get('configmaps', NS, 'x500')).toBeUndefined();
  });

  it('logs every request with method, path, content type and body', async () => {
    await c.core.patchNamespacedConfigMap({ name: 'w1', namespace: NS, body: { data: { b: '2' } } }, merge);
    const rec = api.requests.at(-1)!;
    expect(rec).toMatchObject({
      method: 'PATCH',
      path: `/api/v1/namespaces/${NS}/configmaps/w1`,
      contentType: 'application/merge-patch+json',
      body: { data: { b: '2' } },
      verb: 'patch',
      namespace: NS,
      name: 'w1',
      status: 200,
    });
    expect(api.events).toBe(api.requests);
  });
});

describe('test helpers', () => {
  it('seeds, gets, lists and removes objects with watch events', async () => {
    const rv = api.resourceVersion;
    const seeded = api.seed<k8s.V1Pod>({ ...pod('seeded', { app: 'seed' }), status: { phase: 'Running' } });
    expect(seeded.metadata?.uid).toBeDefined();
    expect(Number(seeded.metadata?.resourceVersion)).toBeGreaterThan(Number(rv));
    expect(api.get<k8s.V1Pod>('Pod', NS, 'seeded')?.status?.phase).toBe('Running');
    expect(api.list('pods', NS).map((p) => p.metadata?.name)).toContain('seeded');
    expect(api.remove('po', NS, 'seeded')).toBe(true);
    expect(api.get('pods', NS, 'seeded')).toBeUndefined();
    expect(() =>
      api.seed({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x', namespace: 'missing' } }),
    ).toThrow(/namespace "missing" does not exist/);
  });
});

/** A self-signed serving certificate for 127.0.0.1, its own CA, as a webhook's caBundle would carry. */
function selfSigned(): { cert: string; key: string } {
  const pair = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const privateKey = forge.pki.privateKeyFromPem(
    pair.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
  );
  const cert = forge.pki.createCertificate();
  cert.publicKey = forge.pki.publicKeyFromPem(
    pair.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
  );
  cert.serialNumber = '01';
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + 3_600_000);
  const attrs = [{ name: 'commonName', value: 'fake-webhook' }];
  cert.setSubject(attrs);
  cert.setIssuer(attrs);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true },
    { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
  ]);
  cert.sign(privateKey, forge.md.sha256.create());
  return { cert: forge.pki.certificateToPem(cert), key: forge.pki.privateKeyToPem(privateKey) };
}

interface Review {
  request: {
    uid: string;
    operation: string;
    namespace?: string;
    kind: object;
    resource: { resource: string };
    object: k8s.V1Pod;
  };
}

describe('mutating admission webhooks', () => {
  let adm: FakeApiServer;
  let hook: https.Server;
  let hookUrl: string;
  let caBundle: string;
  const reviews: { url: string; review: Review }[] = [];
  let answer: (r: Review) => object;

  beforeAll(async () => {
    const { cert, key } = selfSigned();
    caBundle = Buffer.from(cert).toString('base64');
    hook = https.createServer({ cert, key }, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const review = JSON.parse(Buffer.concat(chunks).toString()) as Review;
        reviews.push({ url: req.url ?? '', review });
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: review.request.uid, ...answer(review) },
          }),
        );
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    hookUrl = `https://127.0.0.1:${(hook.address() as AddressInfo).port}`;
    adm = await startFakeApiServer({
      admission: {
        resolveService: ({ namespace, name, port, path }) =>
          namespace === 'sair-system' && name === 'sair-webhook' && port === 443
            ? `${hookUrl}${path ?? '/'}`
            : 'https://127.0.0.1:1/',
      },
    });
    adm.seed({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: NS, labels: { 'sair.dev/enabled': 'true' } },
    });
    adm.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'plain' } });
  });

  afterAll(async () => {
    await adm.close();
    await new Promise((resolve) => hook.close(resolve));
  });

  function webhookConfig(
    clientConfig: object,
    failurePolicy: 'Fail' | 'Ignore' = 'Fail',
  ): k8s.V1MutatingWebhookConfiguration {
    return {
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'sair' },
      webhooks: [
        {
          name: 'pods.sair.dev',
          admissionReviewVersions: ['v1'],
          sideEffects: 'None',
          failurePolicy,
          timeoutSeconds: 5,
          clientConfig,
          namespaceSelector: { matchLabels: { 'sair.dev/enabled': 'true' } },
          objectSelector: {
            matchExpressions: [{ key: 'sair.dev/inject', operator: 'NotIn', values: ['false'] }],
          },
          rules: [
            {
              operations: ['CREATE'],
              apiGroups: [''],
              apiVersions: ['v1'],
              resources: ['pods'],
              scope: 'Namespaced',
            },
          ],
        },
      ],
    };
  }

  const patchOf = (ops: object[]) => ({
    allowed: true,
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
  });

  it('calls a matching webhook with an AdmissionReview v1 over HTTPS and stores the patched pod', async () => {
    await adm.clients().admissionregistration.createMutatingWebhookConfiguration({
      body: webhookConfig({ url: `${hookUrl}/mutate`, caBundle }),
    });
    answer = () =>
      patchOf([{ op: 'add', path: '/metadata/annotations', value: { 'sair.dev/injected': 'true' } }]);
    reviews.length = 0;
    const created = await adm.clients(NS).core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { generateName: 'gpu-' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    });
    expect(created.metadata?.annotations).toEqual({ 'sair.dev/injected': 'true' });
    expect(
      adm.get<k8s.V1Pod>('pods', NS, created.metadata!.name!)?.metadata?.annotations?.['sair.dev/injected'],
    ).toBe('true');
    expect(reviews).toHaveLength(1);
    expect(reviews[0]!.url).toBe('/mutate?timeout=5s');
    expect(reviews[0]!.review.request).toMatchObject({
      operation: 'CREATE',
      namespace: NS,
      kind: { group: '', version: 'v1', kind: 'Pod' },
      resource: { group: '', version: 'v1', resource: 'pods' },
      object: { apiVersion: 'v1', kind: 'Pod', metadata: { generateName: 'gpu-', namespace: NS } },
    });
  });

  it('skips namespaces and objects its selectors exclude', async () => {
    reviews.length = 0;
    await adm.clients().core.createNamespacedPod({
      namespace: 'plain',
      body: { metadata: { name: 'p' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    });
    await adm.clients().core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: 'optout', labels: { 'sair.dev/inject': 'false' } },
        spec: { containers: [{ name: 'c', image: 'i' }] },
      },
    });
    await adm.clients().core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'cm' } } });
    expect(reviews).toHaveLength(0);
  });

  it('turns a denial into the real Status', async () => {
    answer = () => ({
      allowed: false,
      status: { code: 400, message: 'sair.dev/gpu-cores: "abc" is not an integer from 1 to 100' },
    });
    const body = await failure(
      adm.clients().core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'bad' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
      }),
    );
    expect(body).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'admission webhook "pods.sair.dev" denied the request: sair.dev/gpu-cores: "abc" is not an integer from 1 to 100',
      code: 400,
    });
    expect(adm.get('pods', NS, 'bad')).toBeUndefined();
  });

  it('resolves clientConfig.service and obeys failurePolicy when the webhook cannot be reached', async () => {
    const admission = adm.clients().admissionregistration;
    await admission.replaceMutatingWebhookConfiguration({
      name: 'sair',
      body: webhookConfig({
        service: { namespace: 'sair-system', name: 'sair-webhook', path: '/mutate' },
        caBundle,
      }),
    });
    answer = () => patchOf([{ op: 'add', path: '/metadata/labels', value: { via: 'service' } }]);
    const viaService = await adm.clients().core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'svc' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    });
    expect(viaService.metadata?.labels).toEqual({ via: 'service' });

    await admission.replaceMutatingWebhookConfiguration({
      name: 'sair',
      body: webhookConfig({ url: 'https://127.0.0.1:1/mutate', caBundle }),
    });
    const down = await failure(
      adm.clients().core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'down' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
      }),
    );
    expect(down).toMatchObject({ code: 500, reason: 'InternalError' });
    expect(down.message).toMatch(
      /^Internal error occurred: failed calling webhook "pods.sair.dev": failed to call webhook: Post "https:\/\/127.0.0.1:1\/mutate\?timeout=5s": /,
    );

    await admission.replaceMutatingWebhookConfiguration({
      name: 'sair',
      body: webhookConfig({ url: 'https://127.0.0.1:1/mutate', caBundle }, 'Ignore'),
    });
    await adm.clients().core.createNamespacedPod({
      namespace: NS,
      body: { metadata: { name: 'ignored' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
    });
    expect(adm.get('pods', NS, 'ignored')).toBeDefined();
  });

  it('refuses a webhook whose certificate is not trusted (no caBundle: system roots only)', async () => {
    await adm.clients().admissionregistration.replaceMutatingWebhookConfiguration({
      name: 'sair',
      body: webhookConfig({ url: `${hookUrl}/mutate` }),
    });
    const body = await failure(
      adm.clients().core.createNamespacedPod({
        namespace: NS,
        body: { metadata: { name: 'untrusted' }, spec: { containers: [{ name: 'c', image: 'i' }] } },
      }),
    );
    expect(body.code).toBe(500);
    expect(body.message).toMatch(/failed calling webhook/);
  });
  it('re-applies a patch, and conflicts a conditional update, when another write lands during admission', async () => {
    await adm.clients().admissionregistration.createMutatingWebhookConfiguration({
      body: {
        metadata: { name: 'race' },
        webhooks: [
          {
            name: 'configmaps.sair.dev',
            admissionReviewVersions: ['v1'],
            sideEffects: 'None',
            clientConfig: { url: `${hookUrl}/cm`, caBundle },
            rules: [
              { operations: ['UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['configmaps'] },
            ],
          },
        ],
      },
    });
    adm.seed({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'race', namespace: NS },
      data: { a: '1' },
    });
    let interfere = true;
    answer = (r) => {
      if (interfere && r.request.resource.resource === 'configmaps') {
        interfere = false;
        const cur = adm.get<k8s.V1ConfigMap>('configmaps', NS, 'race')!;
        adm.seed({ ...cur, data: { ...cur.data, other: 'x' } });
      }
      return { allowed: true };
    };
    const core = adm.clients().core;
    const patched = await core.patchNamespacedConfigMap(
      { name: 'race', namespace: NS, body: { data: { mine: 'y' } } },
      merge,
    );
    expect(patched.data).toEqual({ a: '1', other: 'x', mine: 'y' });
    interfere = true;
    const cur = await core.readNamespacedConfigMap({ name: 'race', namespace: NS });
    cur.data = { ...cur.data, put: 'z' };
    expect(
      (await failure(core.replaceNamespacedConfigMap({ name: 'race', namespace: NS, body: cur }))).reason,
    ).toBe('Conflict');
    expect(adm.get<k8s.V1ConfigMap>('configmaps', NS, 'race')?.data?.put).toBeUndefined();
  });
});

describe('simulated deployment controller', () => {
  it('makes status follow spec.replicas in a separate write', async () => {
    const sim = await startFakeApiServer({ simulateDeployments: true });
    try {
      const apps = sim.clients().apps;
      const w = new k8s.Watch(sim.kubeConfig());
      const statuses = waiter<number | undefined>();
      const req = await w.watch(
        '/apis/apps/v1/namespaces/default/deployments',
        {},
        (_t, d: k8s.V1Deployment) => statuses.push(d.status?.readyReplicas),
        () => undefined,
      );
      await apps.createNamespacedDeployment({
        namespace: 'default',
        body: { ...deployment('d', 3), apiVersion: undefined, kind: undefined },
      });
      await statuses.until((s) => s.includes(3));
      await apps.patchNamespacedDeploymentScale(
        { name: 'd', namespace: 'default', body: { spec: { replicas: 5 } } },
        merge,
      );
      await statuses.until((s) => s.includes(5));
      req.abort();
      const d = sim.get<k8s.V1Deployment>('deployments', 'default', 'd')!;
      expect(d.status).toEqual({
        observedGeneration: 2,
        replicas: 5,
        updatedReplicas: 5,
        readyReplicas: 5,
        availableReplicas: 5,
      });
      expect(
        (await apps.readNamespacedDeploymentScale({ name: 'd', namespace: 'default' })).status?.replicas,
      ).toBe(5);
    } finally {
      await sim.close();
    }
  });
});
