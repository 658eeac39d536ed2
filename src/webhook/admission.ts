// AdmissionReview v1 and v1beta1: validate what kube-apiserver sent, route the object to its
// mutation, and build the answer in the version asked. Pure: no HTTP, no logging; the server
// turns the results into responses and log lines.
import { z } from 'zod';
import { errorMessage } from '../common/errors.js';
import type { HorizontalPodAutoscaler, Pod } from './k8s-types.js';
import { mutateHpa } from './mutate-hpa.js';
import { mutatePod, type MutationResult } from './mutate-pod.js';
import { diffPatch, encodePatch, type Operation } from './patch.js';

export const ADMISSION_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionVersion = (typeof ADMISSION_VERSIONS)[number];

const requestSchema = z.looseObject({
  uid: z.string().min(1),
  kind: z.looseObject({ group: z.string(), version: z.string(), kind: z.string() }),
  operation: z.enum(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']),
  namespace: z.string().optional(),
  name: z.string().optional(),
  object: z.unknown().optional(),
});
export type AdmissionRequest = z.output<typeof requestSchema>;

const stringMap = z.record(z.string(), z.string());
const metadataSchema = z.looseObject({ labels: stringMap.optional(), annotations: stringMap.optional() }).optional();
const namedList = z.array(z.looseObject({ name: z.string().min(1) }));
const quantityMap = z.record(z.string(), z.union([z.string(), z.number()]));
const containerSchema = z.looseObject({
  name: z.string().min(1),
  env: namedList.optional(),
  volumeMounts: z.array(z.looseObject({ name: z.string().min(1), mountPath: z.string() })).optional(),
  resources: z.looseObject({ limits: quantityMap.optional(), requests: quantityMap.optional() }).optional(),
});
const podSchema = z.looseObject({
  metadata: metadataSchema,
  spec: z.looseObject({
    containers: z.array(containerSchema).min(1),
    initContainers: z.array(containerSchema).optional(),
    volumes: namedList.optional(),
  }),
});
const behaviorSchema = z.looseObject({
  scaleUp: z.looseObject({ selectPolicy: z.string().optional() }).nullish(),
  scaleDown: z.looseObject({ selectPolicy: z.string().optional() }).nullish(),
});
const hpaSchema = z.looseObject({
  metadata: metadataSchema,
  spec: z.looseObject({ behavior: behaviorSchema.nullish() }),
});

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

function describeIssue(prefix: string, issue: z.core.$ZodIssue): string {
  let path = prefix;
  for (const key of issue.path) path += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${path}: missing; expected ${issue.expected}`;
  return `${path}: ${issue.message}`;
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
  const parsed = requestSchema.safeParse(review.request);
  if (!parsed.success) return { ok: false, message: describeIssue('request', parsed.error.issues[0]!) };
  return { ok: true, apiVersion: apiVersion as AdmissionVersion, request: parsed.data };
}

function unchanged(kind: AdmissionOutcome['kind'], result: 'unchanged' | 'skipped', warnings: string[] = []): AdmissionOutcome {
  return { kind, result, allowed: true, patch: [], warnings };
}

function fromMutation<T extends object>(kind: AdmissionOutcome['kind'], before: T, m: MutationResult<T>): AdmissionOutcome {
  if (!m.allowed) return { kind, result: 'denied', allowed: false, patch: [], warnings: [], status: { code: m.code, message: m.message } };
  const patch = diffPatch(before, m.object);
  return { kind, result: patch.length > 0 ? 'mutated' : 'unchanged', allowed: true, patch, warnings: m.warnings };
}

function invalidObject(kind: AdmissionOutcome['kind'], error: z.ZodError): AdmissionOutcome {
  const message = describeIssue('request.object', error.issues[0]!);
  return { kind, result: 'denied', allowed: false, patch: [], warnings: [], status: { code: 400, message } };
}

/** Decide on one request. Throws only on an internal error, which the caller turns into fail-open or fail-closed. */
export function admit(request: AdmissionRequest): AdmissionOutcome {
  const { group, version, kind } = request.kind;
  if (group === '' && kind === 'Pod') {
    if (request.operation !== 'CREATE') return unchanged('Pod', 'skipped');
    const parsed = podSchema.safeParse(request.object);
    if (!parsed.success) return invalidObject('Pod', parsed.error);
    return fromMutation('Pod', parsed.data, mutatePod(parsed.data as Pod));
  }
  if (group === 'autoscaling' && kind === 'HorizontalPodAutoscaler') {
    if (request.operation !== 'CREATE' && request.operation !== 'UPDATE') return unchanged('HorizontalPodAutoscaler', 'skipped');
    if (version !== 'v2') {
      return unchanged('HorizontalPodAutoscaler', 'skipped', [
        `sair webhook manages autoscaling/v2 HorizontalPodAutoscalers; autoscaling/${version} left unchanged (register the webhook for v2)`,
      ]);
    }
    const parsed = hpaSchema.safeParse(request.object);
    if (!parsed.success) return invalidObject('HorizontalPodAutoscaler', parsed.error);
    return fromMutation('HorizontalPodAutoscaler', parsed.data, mutateHpa(parsed.data as HorizontalPodAutoscaler));
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
