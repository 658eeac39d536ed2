// Every manifest is valid on every supported Kubernetes minor (src/core/kubernetes-versions.ts):
// each object's kind is served as GA since a minor no newer than the oldest supported one; each
// field it sets exists in the Kubernetes API (the models of @kubernetes/client-node, generated from
// upstream's OpenAPI; kubernetes-models' validation lets unknown fields through), and a field that
// came later than the API's base, behind a feature gate, is on by default in the oldest supported
// minor. The tables hold upstream's facts (KEP milestones and feature-gate stages); a new kind, or
// a field they list as newer, fails here until its version is checked and added.
import path from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { KUBERNETES_MAJOR, NEWEST_SUPPORTED_MINOR, OLDEST_SUPPORTED_MINOR } from '../../src/core/kubernetes-versions.js';
import { kustomizeBuild, type ManifestObject } from '../support/manifests.js';

const ROOT = path.resolve('manifests');
const COMPONENTS = [['components/certs-job', 'components/prometheus-operator', 'components/monitoring'], ['components/cert-manager']];

/** apiVersion and kind -> the minor since which it is GA, and its client-node model. */
const KINDS: Record<string, { ga: number; model: string }> = {
  'v1 Namespace': { ga: 0, model: 'V1Namespace' },
  'v1 ConfigMap': { ga: 0, model: 'V1ConfigMap' },
  'v1 Service': { ga: 0, model: 'V1Service' },
  'v1 ServiceAccount': { ga: 0, model: 'V1ServiceAccount' },
  'apps/v1 Deployment': { ga: 9, model: 'V1Deployment' },
  'apps/v1 DaemonSet': { ga: 9, model: 'V1DaemonSet' },
  'batch/v1 Job': { ga: 2, model: 'V1Job' },
  'batch/v1 CronJob': { ga: 21, model: 'V1CronJob' },
  'policy/v1 PodDisruptionBudget': { ga: 21, model: 'V1PodDisruptionBudget' },
  'rbac.authorization.k8s.io/v1 ClusterRole': { ga: 8, model: 'V1ClusterRole' },
  'rbac.authorization.k8s.io/v1 ClusterRoleBinding': { ga: 8, model: 'V1ClusterRoleBinding' },
  'rbac.authorization.k8s.io/v1 Role': { ga: 8, model: 'V1Role' },
  'rbac.authorization.k8s.io/v1 RoleBinding': { ga: 8, model: 'V1RoleBinding' },
  'admissionregistration.k8s.io/v1 MutatingWebhookConfiguration': { ga: 16, model: 'V1MutatingWebhookConfiguration' },
  'networking.k8s.io/v1 NetworkPolicy': { ga: 7, model: 'V1NetworkPolicy' },
  // KEP-3488: admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy GA in 1.30.
  'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy': { ga: 30, model: 'V1ValidatingAdmissionPolicy' },
  'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding': { ga: 30, model: 'V1ValidatingAdmissionPolicyBinding' },
  'apiextensions.k8s.io/v1 CustomResourceDefinition': { ga: 16, model: 'V1CustomResourceDefinition' },
};
/** Kinds of add-ons the docs name as prerequisites of a component, checked by their own tests. */
const ADD_ON_GROUPS = ['cert-manager.io/', 'monitoring.coreos.com/'];

/** Model.field -> the first minor where a cluster with default feature gates serves it (Infinity: alpha, off). */
const GATED: Record<string, { minor: number; source: string }> = {
  'V1LifecycleHandler.sleep': { minor: 30, source: 'PodLifecycleSleepAction: alpha 1.29, beta (on) 1.30, GA 1.34 (KEP-3960)' },
  'V1MutatingWebhook.matchConditions': { minor: 28, source: 'AdmissionWebhookMatchConditions: beta (on) 1.28, GA 1.30 (KEP-3716)' },
  'V1Container.restartPolicy': { minor: 29, source: 'SidecarContainers: beta (on) 1.29, GA 1.33 (KEP-753)' },
  'V1Container.resizePolicy': { minor: 33, source: 'InPlacePodVerticalScaling: beta (on) 1.33 (KEP-1287)' },
  'V1PodSpec.resources': { minor: 34, source: 'PodLevelResources: beta (on) 1.34 (KEP-2837)' },
  'V1PodSpec.hostnameOverride': { minor: Infinity, source: 'HostnameOverride: alpha (off) 1.34 (KEP-4762)' },
  'V1Lifecycle.stopSignal': { minor: Infinity, source: 'ContainerStopSignals: alpha (off) 1.33 (KEP-4960)' },
  'V1ServiceSpec.trafficDistribution': { minor: 31, source: 'ServiceTrafficDistribution: beta (on) 1.31, GA 1.33 (KEP-4444)' },
  'V1TopologySpreadConstraint.matchLabelKeys': { minor: 27, source: 'MatchLabelKeysInPodTopologySpread: beta (on) 1.27 (KEP-3243)' },
  'V1TopologySpreadConstraint.nodeAffinityPolicy': { minor: 26, source: 'NodeInclusionPolicyInPodTopologySpread: beta (on) 1.26 (KEP-3094)' },
  'V1TopologySpreadConstraint.nodeTaintsPolicy': { minor: 26, source: 'NodeInclusionPolicyInPodTopologySpread: beta (on) 1.26 (KEP-3094)' },
  'V1PodDisruptionBudgetSpec.unhealthyPodEvictionPolicy': { minor: 27, source: 'PDBUnhealthyPodEvictionPolicy: beta (on) 1.27, GA 1.31 (KEP-3017)' },
  'V1JobSpec.podFailurePolicy': { minor: 26, source: 'JobPodFailurePolicy: beta (on) 1.26, GA 1.31 (KEP-3329)' },
  'V1JobSpec.backoffLimitPerIndex': { minor: 29, source: 'JobBackoffLimitPerIndex: beta (on) 1.29, GA 1.33 (KEP-3850)' },
  'V1JobSpec.successPolicy': { minor: 31, source: 'JobSuccessPolicy: beta (on) 1.31, GA 1.33 (KEP-3998)' },
  'V1JobSpec.managedBy': { minor: 32, source: 'JobManagedBy: beta (on) 1.32 (KEP-4368)' },
  'V1CronJobSpec.timeZone': { minor: 27, source: 'CronJobTimeZone: GA 1.27 (KEP-3140)' },
  'V1ValidationRule.messageExpression': { minor: 27, source: 'CRD validation messageExpression: beta (on) 1.27 (KEP-2876)' },
  'V1ValidationRule.reason': { minor: 28, source: 'CRD validation reason and fieldPath: beta (on) 1.28 (KEP-2876)' },
  'V1ValidationRule.fieldPath': { minor: 28, source: 'CRD validation reason and fieldPath: beta (on) 1.28 (KEP-2876)' },
  'V1ValidationRule.optionalOldSelf': { minor: 30, source: 'CRDValidationRatcheting: beta (on) 1.30 (KEP-4008)' },
};

interface Use {
  object: string;
  path: string;
  field: string;
}

/** Walks a manifest against client-node's models: every field it sets, as Model.field, with where. */
function fieldsOf(value: unknown, type: string, at: string, object: string, out: Use[], unknown: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array) {
    if (Array.isArray(value)) value.forEach((v, i) => fieldsOf(v, array[1]!, `${at}[${i}]`, object, out, unknown));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) {
    for (const [k, v] of Object.entries(value as object)) fieldsOf(v, map[1]!, `${at}.${k}`, object, out, unknown);
    return;
  }
  const model = (k8s as unknown as Record<string, { getAttributeTypeMap?: () => { baseName: string; type: string }[] }>)[type];
  if (!model?.getAttributeTypeMap) return; // string, number, boolean, Date, IntOrString, any, object
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value as object)) {
    const t = attrs.get(k);
    if (t === undefined) {
      unknown.push(`${object}: ${`${at}.${k}`.slice(1)} (${type} has no field ${k})`);
      continue;
    }
    out.push({ object, path: `${at}.${k}`, field: `${type}.${k}` });
    fieldsOf(v, t, `${at}.${k}`, object, out, unknown);
  }
}

function check(objects: ManifestObject[], oldest: number): { kinds: string[]; unknown: string[]; late: string[]; used: Use[] } {
  const kinds: string[] = [];
  const unknown: string[] = [];
  const used: Use[] = [];
  for (const o of objects) {
    if (ADD_ON_GROUPS.some((g) => o.apiVersion.startsWith(g))) continue;
    const kind = KINDS[`${o.apiVersion} ${o.kind}`];
    const name = `${o.kind}/${o.metadata.name}`;
    if (!kind) kinds.push(`${name}: ${o.apiVersion} ${o.kind} is not in the table of kinds; add the minor where it became GA`);
    else if (kind.ga > oldest) kinds.push(`${name}: ${o.apiVersion} ${o.kind} is GA only since ${KUBERNETES_MAJOR}.${kind.ga}`);
    else fieldsOf(o, kind.model, '', name, used, unknown);
  }
  const late = used
    .filter((u) => (GATED[u.field]?.minor ?? 0) > oldest)
    .map((u) => `${u.object}: ${u.path.slice(1)} needs ${u.field}, not served by default in ${KUBERNETES_MAJOR}.${oldest} (${GATED[u.field]!.source})`);
  return { kinds, unknown, late, used };
}

describe(`manifests on Kubernetes ${KUBERNETES_MAJOR}.${OLDEST_SUPPORTED_MINOR} to ${KUBERNETES_MAJOR}.${NEWEST_SUPPORTED_MINOR}`, () => {
  const builds = [kustomizeBuild(ROOT), ...COMPONENTS.map((components) => kustomizeBuild(ROOT, { components }))];

  it('every kind is GA, every field exists in the API and is on by default in the oldest supported minor', () => {
    for (const objects of builds) {
      const r = check(objects, OLDEST_SUPPORTED_MINOR);
      expect(r.kinds).toEqual([]);
      expect(r.unknown).toEqual([]);
      expect(r.late).toEqual([]);
      expect(r.used.length).toBeGreaterThan(500);
    }
  });

  it('the check catches a misspelt field, a field too new for the oldest minor, and a kind not yet GA', () => {
    const objects = structuredClone(builds[0]!);
    const webhook = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === 'sair-webhook') as ManifestObject & { spec: { template: { spec: { containers: Record<string, unknown>[] } } } };
    // The webhook's preStop sleep needs 1.30: fine on 1.35, refused on a range starting at 1.29.
    expect(check(objects, 29).late).toEqual([expect.stringContaining('Deployment/sair-webhook: spec.template.spec.containers[0].lifecycle.preStop.sleep needs V1LifecycleHandler.sleep')]);
    webhook.spec.template.spec.containers[0]!['resizePolicy'] = [{ resourceName: 'cpu', restartPolicy: 'NotRequired' }];
    webhook.spec.template.spec.containers[0]!['livenesProbe'] = {};
    const r = check(objects, 32);
    expect(r.unknown).toEqual(['Deployment/sair-webhook: spec.template.spec.containers[0].livenesProbe (V1Container has no field livenesProbe)']);
    expect(r.late).toEqual(expect.arrayContaining([expect.stringContaining('resizePolicy needs V1Container.resizePolicy, not served by default in 1.32')]));
    expect(check(objects, 20).kinds).toEqual(expect.arrayContaining([expect.stringContaining('batch/v1 CronJob is GA only since 1.21')]));
  });
});
