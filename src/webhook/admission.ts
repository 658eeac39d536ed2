// AdmissionReview v1 and v1beta1: validate what kube-apiserver sent, route the object to its
// mutation, and build the answer in the version asked. Pure: no HTTP, no logging; the server
// turns the results into responses and log lines.
import { errorMessage } from '../common/errors.js';
import type { HorizontalPodAutoscaler, Pod } from './k8s-types.js';
import { mutateHpa } from './mutate-hpa.js';
import { checkPodUpdate, mutatePod, type MutationResult } from './mutate-pod.js';
import { POLICY_SERVICE_ACCOUNT } from '../core/names.js';
import { diffPatch, encodePatch, type Operation } from './patch.js';
import { ShapeError, checkHpa, checkPod, nonEmptyString, object } from './validate.js';

export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];

const OPERATIONS = ['CREATE', 'UPDATE', 'DELETE', 'CONNECT'] as const;

export interface AdmissionRequest {
  uid: string;
  kind: { group: string; version: string; kind: string };
  operation: (typeof OPERATIONS)[number];
  namespace?: string;
  name?: string;
  object?: unknown;
  [key: string]: unknown;
}

function checkRequest(v: unknown): AdmissionRequest {
  const r = object(v, 'request');
  nonEmptyString(r.uid, 'request.uid');
  const kind = object(r.kind, 'request.kind');
  for (const f of ['group', 'version', 'kind'] as const) {
    if (typeof kind[f] !== 'string') throw new ShapeError(`request.kind.${f}: expected a string`);
  }
  if (!OPERATIONS.includes(r.operation as AdmissionRequest['operation'])) {
    throw new ShapeError(`request.operation: ${JSON.stringify(r.operation)} is not one of ${OPERATIONS.join(', ')}`);
  }
  return r as AdmissionRequest;
}

/** A review that cannot be answered as an AdmissionReview (no uid to echo): HTTP 400. */
export interface BadReview {
  ok: false;
  message: string;
}
export interface ParsedReview {
  ok: true;
  apiVersion: AdmissionVersion;
  request: AdmissionRequest;
}

/** What was done, for the response, the log line and the metrics. */
export interface AdmissionOutcome {
  kind: 'Pod' | 'HorizontalPodAutoscaler' | 'other';
  result: 'mutated' | 'unchanged' | 'denied' | 'skipped' | 'error';
  allowed: boolean;
  patch: Operation[];
  warnings: string[];
  status?: { code: number; message: string };
}

export function parseReview(body: unknown): ParsedReview | BadReview {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    return { ok: false, message: 'body: expected a JSON object, an AdmissionReview' };
  }
  const review = body as Record<string, unknown>;
  const apiVersion = review.apiVersion;
  if (!ADMISSION_VERSIONS.includes(apiVersion as AdmissionVersion)) {
    return { ok: false, message: `apiVersion: ${JSON.stringify(apiVersion)} is not one of ${ADMISSION_VERSIONS.join(', ')}` };
  }
  if (review.kind !== 'AdmissionReview') {
    return { ok: false, message: `kind: ${JSON.stringify(review.kind)} is not AdmissionReview` };
  }
  try {
    return { ok: true, apiVersion: apiVersion as AdmissionVersion, request: checkRequest(review.request) };
  } catch (err) {
    if (err instanceof ShapeError) return { ok: false, message: err.message };
    throw err;
  }
}

function unchanged(kind: AdmissionOutcome['kind'], result: 'unchanged' | 'skipped', warnings: string[] = []): AdmissionOutcome {
  return { kind, result, allowed: true, patch: [], warnings };
}

function fromMutation<T extends object>(kind: AdmissionOutcome['kind'], before: T, m: MutationResult<T>): AdmissionOutcome {
  if (!m.allowed) return { kind, result: 'denied', allowed: false, patch: [], warnings: [], status: { code: m.code, message: m.message } };
  const patch = diffPatch(before, m.object);
  return { kind, result: patch.length > 0 ? 'mutated' : 'unchanged', allowed: true, patch, warnings: m.warnings };
}

/** Run a shape check; a failure denies the object with code 400 and the check's message. */
function shapeDenial(kind: AdmissionOutcome['kind'], check: () => void): AdmissionOutcome | undefined {
  try {
    check();
    return undefined;
  } catch (err) {
    if (!(err instanceof ShapeError)) throw err;
    return { kind, result: 'denied', allowed: false, patch: [], warnings: [], status: { code: 400, message: err.message } };
  }
}

/** Decide on one request. Throws only on an internal error, which the caller turns into fail-open or fail-closed. */
export function admit(request: AdmissionRequest): AdmissionOutcome {
  const { group, version, kind } = request.kind;
  if (group === '' && kind === 'Pod') {
    const pod = request.object;
    if (request.operation === 'UPDATE') {
      const username = (request.userInfo as { username?: unknown } | undefined)?.username;
      return (
        shapeDenial('Pod', () => {
          checkPod(pod, 'request.object');
          checkPod(request.oldObject, 'request.oldObject');
        }) ?? fromMutation('Pod', pod as Pod, checkPodUpdate(request.oldObject as Pod, pod as Pod, typeof username === 'string' ? username : undefined, POLICY_SERVICE_ACCOUNT))
      );
    }
    if (request.operation !== 'CREATE') return unchanged('Pod', 'skipped');
    return shapeDenial('Pod', () => checkPod(pod, 'request.object')) ?? fromMutation('Pod', pod as Pod, mutatePod(pod as Pod));
  }
  if (group === 'autoscaling' && kind === 'HorizontalPodAutoscaler') {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return unchanged('HorizontalPodAutoscaler', 'skipped');
    if (version !== 'v2') {
      return unchanged('HorizontalPodAutoscaler', 'skipped', [
        `sair webhook manages autoscaling/v2 HorizontalPodAutoscalers; autoscaling/${version} left unchanged (register the webhook for v2)`,
      ]);
    }
    const hpa = request.object;
    return (
      shapeDenial('HorizontalPodAutoscaler', () => checkHpa(hpa, 'request.object')) ??
      fromMutation('HorizontalPodAutoscaler', hpa as HorizontalPodAutoscaler, mutateHpa(hpa as HorizontalPodAutoscaler))
    );
  }
  const gvk = `${group ? `${group}/` : ''}${version} ${kind}`;
  return unchanged('other', 'skipped', [
    `sair webhook mutates Pods and autoscaling/v2 HorizontalPodAutoscalers; ${gvk} left unchanged (check the webhook's rules)`,
  ]);
}

/** An internal error: allowed with a warning (matching failurePolicy Ignore) unless failing closed. */
export function internalErrorOutcome(err: unknown, failClosed: boolean): AdmissionOutcome {
  const message = `sair webhook internal error: ${errorMessage(err)}`;
  return failClosed
    ? { kind: 'other', result: 'error', allowed: false, patch: [], warnings: [], status: { code: 500, message } }
    : { kind: 'other', result: 'error', allowed: true, patch: [], warnings: [`${message}; admitted unchanged`] };
}

export interface AdmissionReviewResponse {
  apiVersion: AdmissionVersion;
  kind: 'AdmissionReview';
  response: {
    uid: string;
    allowed: boolean;
    patchType?: 'JSONPatch';
    patch?: string;
    warnings?: string[];
    status?: { code: number; message: string };
  };
}

export function reviewResponse(apiVersion: AdmissionVersion, uid: string, outcome: AdmissionOutcome): AdmissionReviewResponse {
  const response: AdmissionReviewResponse['response'] = { uid, allowed: outcome.allowed };
  if (outcome.patch.length > 0) {
    response.patchType = 'JSONPatch';
    response.patch = encodePatch(outcome.patch);
  }
  if (outcome.warnings.length > 0) response.warnings = outcome.warnings;
  if (outcome.status) response.status = outcome.status;
  return { apiVersion, kind: 'AdmissionReview', response };
}
