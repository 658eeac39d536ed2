// What `sair check` observes of a cluster, as plain values: src/check/observe.ts gathers them
// through the API server and Prometheus, and the pure checks (checks.ts) judge them.
import type * as k8s from '@kubernetes/client-node';

/** A Prometheus query's answer: its number (null: no series), or why it could not be asked. */
export type PromAnswer = { value: number | null } | { error: string };

export interface ClusterFacts {
  /** Where SAIR runs (sair-system). */
  namespace: string;
  now: Date;
  version: { major: string; minor: string; gitVersion: string } | { error: string };
  nodes: k8s.V1Node[];
  /** Pods on nodes labelled for SAIR, any namespace (to find another GPU device plugin). */
  podsOnGpuNodes: k8s.V1Pod[];
  /** Pods in SAIR's namespace. */
  sairPods: k8s.V1Pod[];
  namespaceObject: k8s.V1Namespace | undefined;
  webhookConfig: k8s.V1MutatingWebhookConfiguration | undefined;
  webhookService: k8s.V1Service | undefined;
  webhookSecret: k8s.V1Secret | undefined;
  /** ServiceAccount sair-certs: present when components/certs-job was applied. */
  certsJobInstalled: boolean;
  /** cert-manager's Certificate CRD is served. */
  certManagerInstalled: boolean;
  /** Certificate sair-webhook, when cert-manager is installed. */
  certificate: { status?: { conditions?: { type: string; status: string; message?: string }[] } } | undefined;
  lease: k8s.V1Lease | undefined;
  prometheus: {
    url: string;
    /** count of device plugin pods scraped (their process metrics). */
    devicePlugins: PromAnswer;
    /** count of policy server pods scraped. */
    policyServers: PromAnswer;
    /** count of per-pod GPU series whose pod labels were renamed exported_* (no honor_labels). */
    exportedLabels: PromAnswer;
  };
}
