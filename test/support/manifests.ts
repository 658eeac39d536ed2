// Reading and checking the manifests under manifests/: YAML documents, what `kustomize build`
// emits for our kustomizations (resources recursively, the `namespace:` transform), and
// validation of built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-models).
// Shared by every part's manifest test and by the quickstart's kubectl.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { MutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/MutatingWebhookConfiguration';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { CronJob } from 'kubernetes-models/batch/v1/CronJob';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { PriorityClass } from 'kubernetes-models/scheduling.k8s.io/v1/PriorityClass';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';

export type ManifestObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [k: string]: unknown;
};

const MODELS: Record<string, new (o: never) => { validate(): void }> = {
  'apiextensions.k8s.io/v1 CustomResourceDefinition': CustomResourceDefinition,
  'admissionregistration.k8s.io/v1 MutatingWebhookConfiguration': MutatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'apps/v1 DaemonSet': DaemonSet,
  'apps/v1 Deployment': Deployment,
  'autoscaling/v2 HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'batch/v1 CronJob': CronJob,
  'batch/v1 Job': Job,
  'policy/v1 PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1 ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1 ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1 Role': Role,
  'rbac.authorization.k8s.io/v1 RoleBinding': RoleBinding,
  'scheduling.k8s.io/v1 PriorityClass': PriorityClass,
  'v1 ConfigMap': ConfigMap,
  'v1 Namespace': Namespace,
  'v1 Service': Service,
  'v1 ServiceAccount': ServiceAccount,
};

export const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'CustomResourceDefinition',
  'MutatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'ClusterRole',
  'ClusterRoleBinding',
  'PriorityClass',
]);

/** The non-empty documents of a YAML stream; a syntax error names its source. */
export function yamlDocs<T = ManifestObject>(text: string, source: string): T[] {
  return parseAllDocuments(text)
    .map((d) => {
      if (d.errors.length > 0) throw new Error(`${source}: ${d.errors[0]!.message}`);
      return d.toJS() as T | null;
    })
    .filter((o): o is T => o !== null);
}

export function readYaml<T = ManifestObject>(file: string): T[] {
  return yamlDocs<T>(readFileSync(file, 'utf8'), file);
}

/** What `kustomize build <dir>` emits for our kustomizations; every listed resource must exist. */
export function kustomizeBuild(dir: string): ManifestObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = readYaml<{ resources: string[]; namespace?: string }>(file)[0]!;
  const out = k.resources.flatMap((r) => {
    const p = join(dir, r);
    if (!existsSync(p)) throw new Error(`${file} lists ${r}, which does not exist`);
    return statSync(p).isDirectory() ? kustomizeBuild(p) : readYaml(p);
  });
  if (k.namespace) for (const o of out) if (!CLUSTER_SCOPED.has(o.kind)) o.metadata.namespace = k.namespace;
  return out;
}

/** Whether kubernetes-models knows this built-in kind (custom kinds are left to their CRD). */
export function hasSchema(o: { apiVersion: string; kind: string }): boolean {
  return `${o.apiVersion} ${o.kind}` in MODELS;
}

/** Throws the schema's error when the object does not validate; unknown kinds pass. */
export function validateManifest(o: { apiVersion: string; kind: string }): void {
  const Model = MODELS[`${o.apiVersion} ${o.kind}`];
  if (Model) new Model(o as never).validate();
}
