// One KubeConfig, one typed client per API group, made here and handed in: logic never builds
// its own clients. Tests point the same clients at the in-process fake API server.
import * as k8s from '@kubernetes/client-node';

export interface KubeClients {
  kc: k8s.KubeConfig;
  core: k8s.CoreV1Api;
  apps: k8s.AppsV1Api;
  autoscaling: k8s.AutoscalingV2Api;
  coordination: k8s.CoordinationV1Api;
  custom: k8s.CustomObjectsApi;
  admissionregistration: k8s.AdmissionregistrationV1Api;
  authentication: k8s.AuthenticationV1Api;
  authorization: k8s.AuthorizationV1Api;
}

/** In a pod: the service account; elsewhere: $KUBECONFIG or ~/.kube/config. */
export function loadKubeConfig(): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromDefault();
  return kc;
}

/** A KubeConfig for a plain-HTTP API server URL (the fake one in tests, or `kubectl proxy`). */
export function kubeConfigForServer(server: string, namespace = 'default'): k8s.KubeConfig {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'u', token: 'test-token' }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'u', namespace }],
    currentContext: 'ctx',
  });
  return kc;
}

export function createKubeClients(kc: k8s.KubeConfig): KubeClients {
  return {
    kc,
    core: kc.makeApiClient(k8s.CoreV1Api),
    apps: kc.makeApiClient(k8s.AppsV1Api),
    autoscaling: kc.makeApiClient(k8s.AutoscalingV2Api),
    coordination: kc.makeApiClient(k8s.CoordinationV1Api),
    custom: kc.makeApiClient(k8s.CustomObjectsApi),
    admissionregistration: kc.makeApiClient(k8s.AdmissionregistrationV1Api),
    authentication: kc.makeApiClient(k8s.AuthenticationV1Api),
    authorization: kc.makeApiClient(k8s.AuthorizationV1Api),
  };
}

/** The HTTP status of a failed client-node call, if it carries one. */
export function statusOf(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    return (err as { code: number }).code;
  }
  return undefined;
}

/**
 * Per-call options that choose a PATCH Content-Type. client-node's patch* methods send
 * application/json-patch+json (an RFC 6902 array) unless told otherwise; pass one of these as the
 * last argument to send a merge patch (RFC 7386) or a strategic merge patch (built-in types only;
 * custom resources answer 415), e.g. `apps.patchNamespacedDeploymentScale({ name, namespace,
 * body: { spec: { replicas: 3 } } }, MERGE_PATCH)`.
 */
export const MERGE_PATCH = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
export const STRATEGIC_MERGE_PATCH = k8s.setHeaderOptions(
  'Content-Type',
  k8s.PatchStrategy.StrategicMergePatch,
);

/** What a failed call's metav1.Status said: reason (NotFound, Conflict, ...), message, and Retry-After in seconds. */
export interface ApiStatus {
  code?: number;
  reason?: string;
  message?: string;
  retryAfterSeconds?: number;
}

/** The Status the API server sent with a failed client-node call (its body is JSON text), if any. */
export function apiStatusOf(err: unknown): ApiStatus | undefined {
  if (!err || typeof err !== 'object' || !('body' in err)) return undefined;
  const { body, headers } = err as { body: unknown; headers?: Record<string, string> };
  let status:
    | { code?: unknown; reason?: unknown; message?: unknown; details?: { retryAfterSeconds?: unknown } }
    | undefined;
  if (typeof body === 'string') {
    try {
      status = JSON.parse(body) as typeof status;
    } catch {
      return undefined;
    }
  } else if (body && typeof body === 'object') status = body as typeof status;
  if (!status || typeof status !== 'object') return undefined;
  const header = Number(headers?.['retry-after']);
  const detail = status.details?.retryAfterSeconds;
  const out: ApiStatus = {
    code: statusOf(err) ?? (typeof status.code === 'number' ? status.code : undefined),
  };
  if (typeof status.reason === 'string') out.reason = status.reason;
  if (typeof status.message === 'string') out.message = status.message;
  if (Number.isFinite(header) && header >= 0) out.retryAfterSeconds = header;
  else if (typeof detail === 'number') out.retryAfterSeconds = detail;
  return out;
}

/**
 * Per-call options that abort the request when `signal` fires, e.g. `AbortSignal.timeout(ms)`:
 * client-node has no timeout of its own, so a hung API server would hold the call for ever.
 * Chains onto `opt` (a patch Content-Type, say).
 */
export function abortOptions(
  signal: AbortSignal,
  opt?: k8s.ConfigurationOptions<k8s.ObservableMiddleware>,
): k8s.ConfigurationOptions<k8s.ObservableMiddleware> {
  const middleware: k8s.ObservableMiddleware = {
    pre: (request) => {
      request.setSignal(signal);
      return new k8s.Observable(Promise.resolve(request));
    },
    post: (response) => new k8s.Observable(Promise.resolve(response)),
  };
  return { ...opt, middleware: [...(opt?.middleware ?? []), middleware], middlewareMergeStrategy: 'append' };
}

/** abortOptions with a timeout: the call fails once `ms` have passed. */
export function timeoutOptions(
  ms: number,
  opt?: k8s.ConfigurationOptions<k8s.ObservableMiddleware>,
): k8s.ConfigurationOptions<k8s.ObservableMiddleware> {
  return abortOptions(AbortSignal.timeout(ms), opt);
}
