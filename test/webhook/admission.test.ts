import jsonpatch from 'fast-json-patch';
import { admit, internalErrorOutcome, parseReview, reviewResponse, type AdmissionRequest } from '../../src/webhook/admission.js';
import { samplePod, sampleReview } from '../../src/webhook/sample.js';

function request(overrides: Partial<AdmissionRequest> = {}): AdmissionRequest {
  const parsed = parseReview(sampleReview());
  if (!parsed.ok) throw new Error(parsed.message);
  return { ...parsed.request, ...overrides };
}

describe('parseReview', () => {
  it('accepts v1 and v1beta1 reviews', () => {
    expect(parseReview(sampleReview())).toMatchObject({ ok: true, apiVersion: 'admission.k8s.io/v1' });
    expect(parseReview({ ...sampleReview(), apiVersion: 'admission.k8s.io/v1beta1' })).toMatchObject({ ok: true, apiVersion: 'admission.k8s.io/v1beta1' });
  });

  it.each([
    ['an array', [], 'body: expected a JSON object, an AdmissionReview'],
    ['null', null, 'body: expected a JSON object, an AdmissionReview'],
    ['an unknown apiVersion', { ...sampleReview(), apiVersion: 'admission.k8s.io/v2' }, 'apiVersion: "admission.k8s.io/v2" is not one of admission.k8s.io/v1, admission.k8s.io/v1beta1'],
    ['a wrong kind', { ...sampleReview(), kind: 'Pod' }, 'kind: "Pod" is not AdmissionReview'],
    ['no request', { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }, 'request: missing; expected an object'],
    ['no uid', { ...sampleReview(), request: { ...(sampleReview().request as object), uid: undefined } }, 'request.uid: missing; expected a non-empty string'],
    ['an empty uid', { ...sampleReview(), request: { ...(sampleReview().request as object), uid: '' } }, 'request.uid: empty; expected a non-empty string'],
    ['an unknown operation', { ...sampleReview(), request: { ...(sampleReview().request as object), operation: 'PATCH' } }, 'request.operation: "PATCH" is not one of CREATE, UPDATE, DELETE, CONNECT'],
  ])('rejects %s with a message naming the field', (_label, body, message) => {
    const r = parseReview(body);
    expect(r.ok).toBe(false);
    expect(r.ok ? '' : r.message).toContain(message);
  });
});

describe('admit', () => {
  it('patches a GPU pod; the patch applied to the original gives the mutated pod', () => {
    const outcome = admit(request());
    expect(outcome).toMatchObject({ kind: 'Pod', result: 'mutated', allowed: true, warnings: [] });
    const patched = jsonpatch.applyPatch(samplePod(), outcome.patch, true, false).newDocument as ReturnType<typeof samplePod> & { metadata: { annotations: Record<string, string> } };
    expect(patched.metadata.annotations['sair.dev/injected']).toBe('true');
  });

  it('admits pod updates that leave the GPU quota alone, and skips unknown kinds, saying so', () => {
    expect(admit(request({ operation: 'UPDATE', oldObject: samplePod() }))).toMatchObject({ result: 'unchanged', allowed: true, patch: [], warnings: [] });
    const deploy = admit(request({ kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }));
    expect(deploy).toMatchObject({ kind: 'other', result: 'skipped', allowed: true, patch: [] });
    expect(deploy.warnings[0]).toContain('apps/v1 Deployment left unchanged');
  });

  it('denies a pod without spec or with a malformed container, naming the field', () => {
    const noSpec = admit(request({ object: { metadata: {} } }));
    expect(noSpec).toMatchObject({ result: 'denied', allowed: false, status: { code: 400, message: 'request.object.spec: missing; expected an object' } });
    const badContainer = admit(request({ object: { spec: { containers: [{ image: 'x' }] } } }));
    expect(badContainer.status?.message).toBe('request.object.spec.containers[0].name: missing; expected a non-empty string');
    const badLabel = admit(request({ object: { metadata: { labels: { a: 1 } }, spec: { containers: [{ name: 'x' }] } } }));
    expect(badLabel.status?.message).toBe('request.object.metadata.labels["a"]: expected a string, got a number');
  });

  it.each([
    ['no containers', { spec: { containers: [] } }, 'request.object.spec.containers: empty; expected at least one container'],
    ['env that is not a list', { spec: { containers: [{ name: 'c', env: {} }] } }, 'request.object.spec.containers[0].env: expected an array, got an object'],
    ['a mount without path', { spec: { containers: [{ name: 'c', volumeMounts: [{ name: 'v' }] }] } }, 'request.object.spec.containers[0].volumeMounts[0].mountPath: missing; expected a non-empty string'],
    ['a bad GPU quantity', { spec: { containers: [{ name: 'c', resources: { limits: { 'nvidia.com/gpu': true } } }] } }, 'request.object.spec.containers[0].resources.limits["nvidia.com/gpu"]: expected a quantity (string or number), got a boolean'],
    ['an init container without name', { spec: { containers: [{ name: 'c' }], initContainers: [{}] } }, 'request.object.spec.initContainers[0].name: missing; expected a non-empty string'],
    ['a pod that is a string', 'pod', 'request.object: expected an object, got a string'],
  ])('denies a pod with %s', (_label, object, message) => {
    expect(admit(request({ object }))).toMatchObject({ allowed: false, status: { code: 400, message } });
  });

  it('denies an HPA whose behavior is malformed', () => {
    const r = admit(request({ kind: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler' }, object: { spec: { behavior: { scaleUp: { selectPolicy: 3 } } } } }));
    expect(r.status).toEqual({ code: 400, message: 'request.object.spec.behavior.scaleUp.selectPolicy: expected a string, got a number' });
  });

  it('routes autoscaling/v2 HPAs and skips other HPA versions with a warning', () => {
    const hpaObject = { metadata: { name: 'h' }, spec: { maxReplicas: 3 } };
    const v2 = admit(request({ kind: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler' }, operation: 'UPDATE', object: hpaObject }));
    expect(v2).toMatchObject({ kind: 'HorizontalPodAutoscaler', result: 'mutated' });
    const v1 = admit(request({ kind: { group: 'autoscaling', version: 'v1', kind: 'HorizontalPodAutoscaler' }, object: hpaObject }));
    expect(v1).toMatchObject({ result: 'skipped', patch: [], warnings: [expect.stringContaining('autoscaling/v1 left unchanged')] });
    const del = admit(request({ kind: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler' }, operation: 'DELETE', object: null }));
    expect(del).toMatchObject({ result: 'skipped', allowed: true });
  });
});

describe('responses', () => {
  it('echoes the uid and version, with a base64 JSONPatch only when there is one', () => {
    const outcome = admit(request());
    const r = reviewResponse('admission.k8s.io/v1beta1', 'u-1', outcome);
    expect(r.apiVersion).toBe('admission.k8s.io/v1beta1');
    expect(r.response.uid).toBe('u-1');
    expect(r.response.patchType).toBe('JSONPatch');
    expect(JSON.parse(Buffer.from(r.response.patch!, 'base64').toString())).toEqual(outcome.patch);
    const none = reviewResponse('admission.k8s.io/v1', 'u-2', admit(request({ operation: 'UPDATE', oldObject: samplePod() })));
    expect(none).toEqual({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'u-2', allowed: true } });
  });

  it('fails open with a warning, or closed with code 500', () => {
    const open = internalErrorOutcome(new Error('boom'), false);
    expect(open).toMatchObject({ allowed: true, result: 'error', warnings: ['sair webhook internal error: boom; admitted unchanged'] });
    const closed = internalErrorOutcome(new Error('boom'), true);
    expect(closed).toMatchObject({ allowed: false, status: { code: 500, message: 'sair webhook internal error: boom' } });
  });
});
