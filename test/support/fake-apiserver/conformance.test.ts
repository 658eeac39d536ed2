// One test per behaviour the fake API server copies from kube-apiserver's write path, each stating
// the real server's answer (status code, reason, message) and the source it follows. Driven through
// @kubernetes/client-node, or raw HTTP where a header (Warning, Authorization) is the point.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type * as k8s from '@kubernetes/client-node';
import { ApiException } from '@kubernetes/client-node';
import { parse } from 'yaml';
import { startFakeApiServer, type FakeApiServer, type StatusBody } from '../fake-apiserver.js';

const ROOT = resolve(import.meta.dirname, '../../..');
const NS = 'ml';
const BASELINE = 'restricted-ns';

async function failure(p: Promise<unknown>): Promise<StatusBody> {
  try {
    await p;
  } catch (err) {
    if (err instanceof ApiException) return JSON.parse((err as ApiException<string>).body) as StatusBody;
    if (err instanceof Error && 'status' in err) return (err as unknown as { status: StatusBody }).status;
    throw err;
  }
  throw new Error('expected the call to fail');
}

function pod(name: string, spec: Partial<k8s.V1PodSpec> = {}): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name },
    spec: { containers: [{ name: 'c', image: 'img:1' }], ...spec },
  };
}

let api: FakeApiServer;

/** A raw request as the admin, returning the status, the Warning headers and the body. */
async function raw(method: string, path: string, body?: unknown, token = 'test-token') {
  const res = await fetch(`${api.url}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json', ...(token ? { Authorization: `Bearer ${token}` } : {}) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return {
    status: res.status,
    warnings: res.headers.get('warning'),
    body: (await res.json()) as Record<string, unknown>,
  };
}

beforeAll(async () => {
  api = await startFakeApiServer();
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  api.seed({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: BASELINE, labels: { 'pod-security.kubernetes.io/enforce': 'baseline' } },
  });
});

afterAll(async () => {
  await api.close();
});

describe('defaulting before admission (pkg/apis/core/v1/defaults.go, plugin/pkg/admission/serviceaccount)', () => {
  it('copies limits into unset requests and mounts the ServiceAccount token volume', async () => {
    const created = await api.clients(NS).core.createNamespacedPod({
      namespace: NS,
      body: pod('defaults', {
        containers: [
          { name: 'c', image: 'img:1', resources: { limits: { cpu: '1', 'nvidia.com/gpu': '1' } } },
        ],
      }),
    });
    const c = created.spec!.containers[0]!;
    expect(c.resources!.requests).toEqual({ cpu: '1', 'nvidia.com/gpu': '1' });
    expect(created.spec!.serviceAccountName).toBe('default');
    const token = created.spec!.volumes!.find((v) => v.name.startsWith('kube-api-access-'))!;
    expect(token.name).toMatch(/^kube-api-access-[a-z0-9]{5}$/);
    expect(token.projected!.sources!.map((s) => Object.keys(s)[0])).toEqual([
      'serviceAccountToken',
      'configMap',
      'downwardAPI',
    ]);
    expect(c.volumeMounts).toEqual([
      { name: token.name, readOnly: true, mountPath: '/var/run/secrets/kubernetes.io/serviceaccount' },
    ]);
    expect(created.spec).toMatchObject({
      restartPolicy: 'Always',
      dnsPolicy: 'ClusterFirst',
      terminationGracePeriodSeconds: 30,
    });
    expect(c.imagePullPolicy).toBe('IfNotPresent');
    expect(created.status!.qosClass).toBe('Burstable');
  });

  it('mounts no token when automountServiceAccountToken is false', async () => {
    const created = await api
      .clients(NS)
      .core.createNamespacedPod({
        namespace: NS,
        body: pod('no-token', { automountServiceAccountToken: false }),
      });
    expect(created.spec!.volumes ?? []).toEqual([]);
  });
});

describe('built-in Pod validation (pkg/apis/core/validation/validation.go): 422 Invalid', () => {
  it('refuses a second mount at the same mountPath', async () => {
    const body = pod('twice', {
      volumes: [
        { name: 'a', emptyDir: {} },
        { name: 'b', emptyDir: {} },
      ],
      containers: [
        {
          name: 'c',
          image: 'img:1',
          volumeMounts: [
            { name: 'a', mountPath: '/data' },
            { name: 'b', mountPath: '/data' },
          ],
        },
      ],
    });
    const status = await failure(api.clients(NS).core.createNamespacedPod({ namespace: NS, body }));
    expect(status).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message:
        'Pod "twice" is invalid: spec.containers[0].volumeMounts[1].mountPath: Invalid value: "/data": must be unique',
      details: {
        name: 'twice',
        kind: 'Pod',
        causes: [{ reason: 'FieldValueInvalid', field: 'spec.containers[0].volumeMounts[1].mountPath' }],
      },
    });
  });

  it('refuses a mount of a volume that does not exist and a duplicate volume name', async () => {
    const body = pod('missing', {
      volumes: [
        { name: 'a', emptyDir: {} },
        { name: 'a', emptyDir: {} },
      ],
      containers: [{ name: 'c', image: 'img:1', volumeMounts: [{ name: 'nope', mountPath: '/x' }] }],
    });
    const status = await failure(api.clients(NS).core.createNamespacedPod({ namespace: NS, body }));
    expect(status.message).toBe(
      'Pod "missing" is invalid: [spec.volumes[1].name: Duplicate value: "a", spec.containers[0].volumeMounts[0].name: Not found: "nope"]',
    );
  });

  it('refuses requests above limits, and extended resources whose request differs from the limit', async () => {
    const body = pod('greedy', {
      containers: [
        {
          name: 'c',
          image: 'img:1',
          resources: {
            requests: { cpu: '2', 'example.com/fpga': '1' },
            limits: { cpu: '1', 'example.com/fpga': '2' },
          },
        },
      ],
    });
    const status = await failure(api.clients(NS).core.createNamespacedPod({ namespace: NS, body }));
    expect(status.details!.causes).toEqual([
      {
        reason: 'FieldValueInvalid',
        field: 'spec.containers[0].resources.requests',
        message: 'Invalid value: "2": must be less than or equal to cpu limit of 1',
      },
      {
        reason: 'FieldValueInvalid',
        field: 'spec.containers[0].resources.requests',
        message: 'Invalid value: "1": must be equal to example.com/fpga limit of 2',
      },
    ]);
  });
});

describe('Pod Security admission (k8s.io/pod-security-admission): 403 Forbidden', () => {
  it('refuses a hostPath volume in a namespace enforcing baseline', async () => {
    const body = pod('host', { volumes: [{ name: 'v', hostPath: { path: '/var/lib/x' } }] });
    const status = await failure(
      api.clients(BASELINE).core.createNamespacedPod({ namespace: BASELINE, body }),
    );
    expect(status).toEqual({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message:
        'pods "host" is forbidden: violates PodSecurity "baseline:latest": hostPath volumes (volume "v")',
      reason: 'Forbidden',
      details: { name: 'host', kind: 'pods' },
      code: 403,
    });
    // The same pod is stored where no level is enforced.
    await api.clients(NS).core.createNamespacedPod({ namespace: NS, body });
  });

  it('names every failed check in the library order', async () => {
    const body = pod('loud', {
      hostNetwork: true,
      hostPID: true,
      volumes: [
        { name: 'a', hostPath: { path: '/a' } },
        { name: 'b', hostPath: { path: '/b' } },
      ],
      containers: [
        {
          name: 'c',
          image: 'img:1',
          ports: [{ containerPort: 80, hostPort: 80 }],
          securityContext: { privileged: true, capabilities: { add: ['NET_ADMIN', 'CHOWN'] } },
        },
      ],
    });
    const status = await failure(
      api.clients(BASELINE).core.createNamespacedPod({ namespace: BASELINE, body }),
    );
    expect(status.message).toBe(
      'pods "loud" is forbidden: violates PodSecurity "baseline:latest": host namespaces (hostNetwork, hostPID), ' +
        'hostPort (container "c" uses hostPort 80), privileged (container "c" must not set securityContext.privileged=true), ' +
        'non-default capabilities (container "c" must not include "NET_ADMIN" in securityContext.capabilities.add), ' +
        'hostPath volumes (volumes "a", "b")',
    );
  });

  it('turns the warn level into a Warning header and stores the pod', async () => {
    api.seed({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'warned', labels: { 'pod-security.kubernetes.io/warn': 'baseline' } },
    });
    const res = await raw('POST', '/api/v1/namespaces/warned/pods', pod('w', { hostIPC: true }));
    expect(res.status).toBe(201);
    expect(res.warnings).toBe(
      '299 - "would violate PodSecurity \\"baseline:latest\\": host namespaces (hostIPC)"',
    );
  });
});

describe('CRD x-kubernetes-validations (apiextensions-apiserver CEL validator): 422 Invalid', () => {
  beforeAll(() => {
    api.seed(parse(readFileSync(resolve(ROOT, 'manifests/crds/inferencepipeline.yaml'), 'utf8')) as object);
  });

  const pipeline = (name: string, minReplicas: number, maxReplicas: number) => ({
    apiVersion: 'sair.dev/v1alpha1',
    kind: 'InferencePipeline',
    metadata: { name, namespace: NS },
    spec: { slo: { p99Ms: 500 }, stages: [{ name: 's', deployment: 'd', minReplicas, maxReplicas }] },
  });

  it('refuses minReplicas above maxReplicas with the rule message', async () => {
    const status = await failure(
      api
        .clients(NS)
        .custom.createNamespacedCustomObject({
          group: 'sair.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'inferencepipelines',
          body: pipeline('bad', 5, 2),
        }),
    );
    expect(status).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message:
        'InferencePipeline.sair.dev "bad" is invalid: spec.stages[0]: Invalid value: "object": maxReplicas must be >= minReplicas',
      details: {
        group: 'sair.dev',
        kind: 'InferencePipeline',
        causes: [{ reason: 'FieldValueInvalid', field: 'spec.stages[0]' }],
      },
    });
  });

  it('checks seeded objects the same way', () => {
    expect(() => api.seed(pipeline('seeded', 5, 2))).toThrow(
      /spec\.stages\[0\]: Invalid value: "object": maxReplicas must be >= minReplicas/,
    );
    expect(api.seed(pipeline('fine', 1, 2))).toMatchObject({ metadata: { generation: 1 } });
  });

  it('refuses a PUT without metadata.resourceVersion (custom resources allow no unconditional update)', async () => {
    const body = { ...pipeline('fine', 1, 3) };
    const status = await failure(
      api
        .clients(NS)
        .custom.replaceNamespacedCustomObject({
          group: 'sair.dev',
          version: 'v1alpha1',
          namespace: NS,
          plural: 'inferencepipelines',
          name: 'fine',
          body,
        }),
    );
    expect(status.message).toBe(
      'inferencepipelines.sair.dev "fine" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
    );
    expect(status.details).toMatchObject({ group: 'sair.dev', kind: 'inferencepipelines' });
  });
});

describe('unconditional updates (pkg/registry/coordination/lease/strategy.go AllowUnconditionalUpdate false)', () => {
  it('refuses a Lease PUT without metadata.resourceVersion with 422', async () => {
    const { coordination } = api.clients(NS);
    await coordination.createNamespacedLease({
      namespace: NS,
      body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'a' } },
    });
    const status = await failure(
      coordination.replaceNamespacedLease({
        namespace: NS,
        name: 'leader',
        body: { metadata: { name: 'leader' }, spec: { holderIdentity: 'b' } },
      }),
    );
    expect(status).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message:
        'leases.coordination.k8s.io "leader" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update',
    });
  });
});

describe('graceful pod deletion (pkg/registry/core/pod/strategy.go CheckGracefulDelete)', () => {
  it('keeps a scheduled pod Terminating for its grace period; an unscheduled one and gracePeriodSeconds=0 go at once', async () => {
    const { core } = api.clients(NS);
    await core.createNamespacedPod({ namespace: NS, body: pod('running', { nodeName: 'node-1' }) });
    const before = api.get<k8s.V1Pod>('pods', NS, 'running')!;
    const answered = await core.deleteNamespacedPod({ namespace: NS, name: 'running' });
    const terminating = api.get<k8s.V1Pod>('pods', NS, 'running')!;
    expect(answered.metadata!.deletionTimestamp).toBeDefined();
    expect(terminating.metadata!.deletionGracePeriodSeconds).toBe(30);
    expect(new Date(terminating.metadata!.deletionTimestamp!).getTime() - Date.now()).toBeGreaterThan(25_000);
    expect(terminating.metadata!.generation).toBe(before.metadata!.generation! + 1);
    await core.deleteNamespacedPod({ namespace: NS, name: 'running', gracePeriodSeconds: 0 });
    expect(api.get('pods', NS, 'running')).toBeUndefined();

    await core.createNamespacedPod({ namespace: NS, body: pod('pending') });
    await core.deleteNamespacedPod({ namespace: NS, name: 'pending' });
    expect(api.get('pods', NS, 'pending')).toBeUndefined();
  });
});

describe('ValidatingAdmissionPolicy (apiserver/pkg/admission/plugin/policy/validating)', () => {
  beforeAll(() => {
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: 'replica-cap' },
      spec: {
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: ['apps'],
              apiVersions: ['v1'],
              operations: ['CREATE', 'UPDATE'],
              resources: ['deployments'],
            },
          ],
        },
        validations: [
          { expression: 'object.spec.replicas <= 5', message: 'at most 5 replicas' },
          { expression: "object.metadata.name != 'forbidden'" },
        ],
      },
    });
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: 'replica-cap-binding' },
      spec: {
        policyName: 'replica-cap',
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } },
      },
    });
  });

  const deployment = (name: string, replicas: number): k8s.V1Deployment => ({
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'c', image: 'img:1' }] },
      },
    },
  });

  it('denies with 422 and the validation message, or `failed expression` without one', async () => {
    const { apps } = api.clients(NS);
    const status = await failure(
      apps.createNamespacedDeployment({ namespace: NS, body: deployment('big', 9) }),
    );
    expect(status).toMatchObject({
      code: 422,
      reason: 'Invalid',
      message:
        "deployments.apps \"big\" is forbidden: ValidatingAdmissionPolicy 'replica-cap' with binding 'replica-cap-binding' denied request: at most 5 replicas",
      details: { name: 'big', group: 'apps', kind: 'deployments' },
    });
    const unnamed = await failure(
      apps.createNamespacedDeployment({ namespace: NS, body: deployment('forbidden', 1) }),
    );
    expect(unnamed.message).toMatch(
      /denied request: failed expression: object\.metadata\.name != 'forbidden'$/,
    );
    await apps.createNamespacedDeployment({ namespace: NS, body: deployment('small', 2) });
    // The binding's namespaceSelector leaves other namespaces alone.
    await api
      .clients(BASELINE)
      .apps.createNamespacedDeployment({ namespace: BASELINE, body: deployment('big', 9) });
  });
});

describe('ValidatingAdmissionPolicy on DELETE (registry/generic/registry/store.go deleteValidation)', () => {
  beforeAll(() => {
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: 'keep-protected' },
      spec: {
        matchConstraints: {
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['DELETE'], resources: ['configmaps'] }],
        },
        validations: [
          { expression: 'object == null', message: 'object is set on DELETE' },
          { expression: "!has(oldObject.metadata.labels) || !('protected' in oldObject.metadata.labels)", reason: 'Forbidden', messageExpression: "'keep ' + request.name + ' (' + request.operation + ')'" },
        ],
      },
    });
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: 'keep-protected' },
      spec: { policyName: 'keep-protected', validationActions: ['Deny'], matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } } },
    });
  });

  it('sees object null and the stored object as oldObject; a denial is 403 and the object stays', async () => {
    const { core } = api.clients(NS);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'kept', labels: { protected: 'yes' } } } });
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'gone' } } });
    expect(await failure(core.deleteNamespacedConfigMap({ name: 'kept', namespace: NS }))).toMatchObject({
      code: 403,
      reason: 'Forbidden',
      message: "configmaps \"kept\" is forbidden: ValidatingAdmissionPolicy 'keep-protected' with binding 'keep-protected' denied request: keep kept (DELETE)",
    });
    await core.deleteNamespacedConfigMap({ name: 'gone', namespace: NS });
    expect(api.get('configmaps', NS, 'kept')).toBeDefined();
    expect(api.get('configmaps', NS, 'gone')).toBeUndefined();
    // deletecollection is a DELETE of each item.
    expect((await failure(core.deleteCollectionNamespacedConfigMap({ namespace: NS }))).code).toBe(403);
  });
});

describe('ValidatingAdmissionPolicy variables (lazily composited, as cel/composition.go)', () => {
  beforeAll(() => {
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicy',
      metadata: { name: 'lazy-variables' },
      spec: {
        matchConstraints: {
          resourceRules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['configmaps'] }],
        },
        // A ConfigMap has no spec: the variable errors only for an expression that reads it.
        variables: [{ name: 'replicas', expression: 'object.spec.replicas' }],
        validations: [{ expression: "!has(object.data) || !('strict' in object.data) || variables.replicas > 0" }],
      },
    });
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name: 'lazy-variables' },
      spec: {
        policyName: 'lazy-variables',
        validationActions: ['Deny'],
        matchResources: { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS } } },
      },
    });
  });

  it('evaluates a variable only when an expression reads it; an error then fails that expression', async () => {
    const { core } = api.clients(NS);
    await core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'lazy' }, data: { a: 'b' } } });
    const status = await failure(
      core.createNamespacedConfigMap({ namespace: NS, body: { metadata: { name: 'eager' }, data: { strict: 'yes' } } }),
    );
    expect(status.message).toMatch(/lazy-variables.* denied request: expression .* resulted in error/);
  });
});

describe('RBAC for ServiceAccount tokens (plugin/pkg/auth/authorizer/rbac)', () => {
  let strict: FakeApiServer;

  beforeAll(async () => {
    strict = await startFakeApiServer({
      strictAuthentication: true,
      namespaces: ['default', 'sair-system', NS],
    });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'pod-reader' },
      rules: [{ apiGroups: [''], resources: ['pods'], verbs: ['get', 'list'] }],
    });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'reader', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'pod-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'agent', namespace: 'sair-system' }],
    });
  });

  afterAll(async () => {
    await strict.close();
  });

  it('allows what a binding grants and answers the rest with the real 403', async () => {
    const token = strict.tokenFor('sair-system', 'agent');
    const { core } = strict.clients(NS, token);
    await core.listNamespacedPod({ namespace: NS });
    const other = await failure(core.listNamespacedPod({ namespace: 'default' }));
    expect(other).toMatchObject({
      code: 403,
      reason: 'Forbidden',
      message:
        'pods is forbidden: User "system:serviceaccount:sair-system:agent" cannot list resource "pods" in API group "" in the namespace "default"',
    });
    const write = await failure(core.createNamespacedPod({ namespace: NS, body: pod('x') }));
    expect(write.message).toBe(
      'pods is forbidden: User "system:serviceaccount:sair-system:agent" cannot create resource "pods" in API group "" in the namespace "ml"',
    );
    const named = await failure(
      strict.clients(NS, token).apps.readNamespacedDeploymentScale({ namespace: NS, name: 'web' }),
    );
    expect(named.message).toBe(
      'deployments.apps "web" is forbidden: User "system:serviceaccount:sair-system:agent" cannot get resource "deployments/scale" in API group "apps" in the namespace "ml"',
    );
    const cluster = await failure(strict.clients(NS, token).core.listNamespace());
    expect(cluster.message).toMatch(
      /cannot list resource "namespaces" in API group "" at the cluster scope$/,
    );
  });

  it('answers an unknown token with 401 and a request without one as system:anonymous', async () => {
    const unknown = await fetch(`${strict.url}/api/v1/namespaces/${NS}/pods`, {
      headers: { Authorization: 'Bearer made-up' },
    });
    expect(unknown.status).toBe(401);
    expect(await unknown.json()).toMatchObject({
      reason: 'Unauthorized',
      message: 'Unauthorized',
      code: 401,
    });
    const anonymous = await fetch(`${strict.url}/api/v1/namespaces/${NS}/pods`);
    expect(anonymous.status).toBe(403);
    expect(((await anonymous.json()) as StatusBody).message).toContain(
      'User "system:anonymous" cannot list resource "pods"',
    );
    // Discovery is open to any authenticated user (system:discovery).
    expect(
      (
        await fetch(`${strict.url}/apis`, {
          headers: { Authorization: `Bearer ${strict.tokenFor('sair-system', 'x')}` },
        })
      ).status,
    ).toBe(200);
  });
});

describe('mutating webhooks (apiserver/pkg/admission/plugin/webhook/mutating)', () => {
  let hook: Server;
  let hookUrl: string;
  const calls: { name: string; request: Record<string, unknown> }[] = [];
  let answers: Record<string, (req: Record<string, unknown>) => object> = {};

  beforeAll(async () => {
    hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const name = (req.url ?? '').split('?')[0]!.slice(1);
        const review = JSON.parse(Buffer.concat(chunks).toString()) as { request: Record<string, unknown> };
        calls.push({ name, request: review.request });
        const answer = answers[name]?.(review.request) ?? {};
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(
          JSON.stringify({
            apiVersion: 'admission.k8s.io/v1',
            kind: 'AdmissionReview',
            response: { uid: review.request.uid, allowed: true, ...answer },
          }),
        );
      });
    });
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    hookUrl = `http://127.0.0.1:${(hook.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    api.remove('mutatingwebhookconfigurations', undefined, 'hooks');
    await new Promise((r) => hook.close(r));
  });

  const webhook = (name: string, resources: string[], extra: object = {}) => ({
    name: `${name}.example.com`,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    clientConfig: { url: `${hookUrl}/${name}` },
    rules: [{ operations: ['CREATE', 'UPDATE'], apiGroups: ['', 'apps'], apiVersions: ['v1'], resources }],
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'hooked' } },
    ...extra,
  });
  const patch = (ops: object[]) => ({
    patchType: 'JSONPatch',
    patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
  });

  function configure(webhooks: object[]): void {
    api.seed({
      apiVersion: 'admissionregistration.k8s.io/v1',
      kind: 'MutatingWebhookConfiguration',
      metadata: { name: 'hooks' },
      webhooks,
    });
    calls.length = 0;
  }

  beforeAll(() => {
    api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'hooked' } });
  });

  it('answers a patch that cannot be applied with InternalError, even under failurePolicy Ignore', async () => {
    configure([webhook('broken', ['pods'], { failurePolicy: 'Ignore' })]);
    answers = { broken: () => patch([{ op: 'replace', path: '/spec/nothing/here', value: 1 }]) };
    const status = await failure(
      api.clients('hooked').core.createNamespacedPod({ namespace: 'hooked', body: pod('p1') }),
    );
    expect(status).toMatchObject({ code: 500, reason: 'InternalError' });
    expect(status.message).toMatch(/^Internal error occurred: /);
  });

  it('relays the webhook warnings as Warning headers', async () => {
    configure([webhook('warns', ['pods'])]);
    answers = { warns: () => ({ warnings: ['sair.dev/gpu-cores set, but no container asks for a GPU'] }) };
    const res = await raw('POST', '/api/v1/namespaces/hooked/pods', pod('p2'));
    expect(res.status).toBe(201);
    expect(res.warnings).toBe('299 - "sair.dev/gpu-cores set, but no container asks for a GPU"');
  });

  it('sees the object defaulted first, and reinvokes an IfNeeded webhook once after a later one changed the object', async () => {
    configure([webhook('first', ['pods'], { reinvocationPolicy: 'IfNeeded' }), webhook('second', ['pods'])]);
    answers = {
      first: () => ({}),
      second: () => patch([{ op: 'add', path: '/metadata/labels', value: { second: 'yes' } }]),
    };
    await api.clients('hooked').core.createNamespacedPod({ namespace: 'hooked', body: pod('p3') });
    expect(calls.map((c) => c.name)).toEqual(['first', 'second', 'first']);
    const seen = calls[0]!.request.object as k8s.V1Pod;
    expect(seen.spec!.volumes![0]!.name).toMatch(/^kube-api-access-/);
    expect(seen.spec!.restartPolicy).toBe('Always');
    expect((calls[2]!.request.object as k8s.V1Pod).metadata!.labels).toEqual({ second: 'yes' });
  });

  it('sends a scale write to the webhooks of deployments/scale as an autoscaling/v1 Scale, not to those of deployments', async () => {
    const { apps } = api.clients('hooked');
    await apps.createNamespacedDeployment({
      namespace: 'hooked',
      body: {
        metadata: { name: 'web' },
        spec: {
          replicas: 1,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'c', image: 'img:1' }] },
          },
        },
      },
    });
    configure([webhook('deploys', ['deployments']), webhook('scales', ['deployments/scale'])]);
    answers = {};
    await apps.replaceNamespacedDeploymentScale({
      namespace: 'hooked',
      name: 'web',
      body: { metadata: { name: 'web' }, spec: { replicas: 3 } },
    });
    expect(calls.map((c) => c.name)).toEqual(['scales']);
    expect(calls[0]!.request).toMatchObject({
      kind: { group: 'autoscaling', version: 'v1', kind: 'Scale' },
      resource: { group: 'apps', version: 'v1', resource: 'deployments' },
      subResource: 'scale',
      object: { apiVersion: 'autoscaling/v1', kind: 'Scale', spec: { replicas: 3 } },
      oldObject: { kind: 'Scale', spec: { replicas: 1 } },
    });
    expect(api.get<k8s.V1Deployment>('deployments.apps', 'hooked', 'web')!.spec!.replicas).toBe(3);
  });
});

describe('TokenReview and SubjectAccessReview (pkg/registry/authentication, pkg/registry/authorization)', () => {
  let strict: FakeApiServer;
  beforeAll(async () => {
    strict = await startFakeApiServer({ strictAuthentication: true, namespaces: ['default', 'sair-system', NS] });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRoleBinding',
      metadata: { name: 'reviewer' },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'auth-delegator' },
      subjects: [{ kind: 'ServiceAccount', name: 'proxy', namespace: 'sair-system' }],
    });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: 'auth-delegator' },
      rules: [
        { apiGroups: ['authentication.k8s.io'], resources: ['tokenreviews'], verbs: ['create'] },
        { apiGroups: ['authorization.k8s.io'], resources: ['subjectaccessreviews'], verbs: ['create'] },
      ],
    });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'pipeline-reader', namespace: NS },
      rules: [{ apiGroups: ['sair.dev'], resources: ['inferencepipelines'], verbs: ['get', 'list'] }],
    });
    strict.seed({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'alice-reads', namespace: NS },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'pipeline-reader' },
      subjects: [{ kind: 'ServiceAccount', name: 'alice', namespace: NS }],
    });
  });
  afterAll(async () => {
    await strict.close();
  });

  it('authenticates a token as a request bearing it would be, and answers an unknown one unauthenticated', async () => {
    const { authentication } = strict.clients('sair-system', strict.tokenFor('sair-system', 'proxy'));
    const alice = strict.tokenFor(NS, 'alice');
    const ok = await authentication.createTokenReview({ body: { spec: { token: alice } } });
    expect(ok).toMatchObject({ kind: 'TokenReview', apiVersion: 'authentication.k8s.io/v1', status: { authenticated: true, user: { username: `system:serviceaccount:${NS}:alice`, groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'] } } });
    const bad = await authentication.createTokenReview({ body: { spec: { token: 'not-a-token' } } });
    expect(bad.status?.authenticated).toBeFalsy();
    expect(bad.status?.error).toMatch(/invalid bearer token/);
    expect(strict.list('tokenreviews.authentication.k8s.io')).toEqual([]);
    // A token projected into a pod carries its pod and node in user.extra (kube-apiserver 1.30+).
    const bound = await authentication.createTokenReview({ body: { spec: { token: strict.tokenFor(NS, 'agent', { pod: 'agent-x7k2p', node: 'gpu-node-1' }) } } });
    expect(bound.status?.user?.extra).toMatchObject({ 'authentication.kubernetes.io/pod-name': ['agent-x7k2p'], 'authentication.kubernetes.io/node-name': ['gpu-node-1'] });
    expect(Object.keys(bound.status!.user!.extra!).sort()).toEqual(['pod-name', 'pod-uid', 'node-name', 'node-uid'].map((k) => `authentication.kubernetes.io/${k}`).sort());
    expect(ok.status?.user?.extra).toBeUndefined();
  });

  it('evaluates a SubjectAccessReview against the stored RBAC', async () => {
    const { authorization } = strict.clients('sair-system', strict.tokenFor('sair-system', 'proxy'));
    const sar = (namespace: string, verb = 'get') =>
      authorization.createSubjectAccessReview({
        body: { spec: { user: `system:serviceaccount:${NS}:alice`, groups: ['system:serviceaccounts', 'system:authenticated'], resourceAttributes: { namespace, verb, group: 'sair.dev', resource: 'inferencepipelines' } } },
      });
    expect((await sar(NS)).status?.allowed).toBe(true);
    expect((await sar('default')).status?.allowed).toBe(false);
    expect((await sar(NS, 'delete')).status?.allowed).toBe(false);
  });

  it('needs create on the review for the caller, and a spec: 403 and 422 as the real server', async () => {
    const alice = strict.clients(NS, strict.tokenFor(NS, 'alice'));
    const denied = await failure(alice.authentication.createTokenReview({ body: { spec: { token: 'x' } } }));
    expect(denied).toMatchObject({ code: 403, message: expect.stringContaining('cannot create resource "tokenreviews" in API group "authentication.k8s.io" at the cluster scope') });
    const proxy = strict.clients('sair-system', strict.tokenFor('sair-system', 'proxy'));
    const invalid = await failure(proxy.authorization.createSubjectAccessReview({ body: { spec: { user: 'u' } } }));
    expect(invalid.code).toBe(422);
  });
});
