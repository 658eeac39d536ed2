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
  };
}

/** The HTTP status of a failed client-node call, if it carries one. */
export function statusOf(err: unknown): number | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'number') {
    return (err as { code: number }).code;
  }
  return undefined;
}
