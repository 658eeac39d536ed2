// Reading and checking the manifests under manifests/: YAML documents, what `kustomize build`
// emits for our kustomizations (resources, components, namespace, labels, images, patches), and
// validation of built-in kinds against the Kubernetes OpenAPI schemas (kubernetes-models).
// Shared by every part's manifest test and by the quickstart's kubectl.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join } from 'node:path';
import jsonpatch, { type Operation } from 'fast-json-patch';
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
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1/NetworkPolicy';
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
  'networking.k8s.io/v1 NetworkPolicy': NetworkPolicy,
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

/** Cluster-scoped kinds that kustomize's namespace transformer still namespaces (its schema predates them). */
const KUSTOMIZE_NAMESPACES_ANYWAY = new Set(['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding']);

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

interface Kustomization {
  kind?: string;
  resources?: string[];
  components?: string[];
  namespace?: string;
  labels?: { pairs: Record<string, string> }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  patches?: { target: { kind?: string; name?: string }; patch: string }[];
  configMapGenerator?: ConfigMapGenerator[];
}

interface ConfigMapGenerator {
  name: string;
  namespace?: string;
  files?: string[];
  options?: { disableNameSuffixHash?: boolean; labels?: Record<string, string>; annotations?: Record<string, string> };
}

/**
 * A configMapGenerator entry as kustomize emits it: one data key per file (its base name), the
 * options' labels and annotations. Only `files` and disableNameSuffixHash: true are emulated; the
 * name hash kustomize would append otherwise is not, so such an entry is refused.
 */
function generateConfigMap(dir: string, g: ConfigMapGenerator): ManifestObject {
  const where = `${join(dir, 'kustomization.yaml')} configMapGenerator ${g.name}`;
  if (g.options?.disableNameSuffixHash !== true) throw new Error(`${where}: set options.disableNameSuffixHash: true (the name hash is not emulated)`);
  const data: Record<string, string> = {};
  for (const f of g.files ?? []) {
    if (f.includes('=')) throw new Error(`${where}: key=path file entries are not emulated; name the file only`);
    data[basename(f)] = readFileSync(join(dir, f), 'utf8');
  }
  const { labels, annotations } = g.options;
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: g.name, ...(g.namespace ? { namespace: g.namespace } : {}), ...(labels ? { labels: { ...labels } } : {}), ...(annotations ? { annotations: { ...annotations } } : {}) },
    data,
  } as ManifestObject;
}

/**
 * What `kustomize build <dir>` emits for our kustomizations, in kustomize's order of work:
 * resources (recursively), then components (each a Component: its resources, then its patches over
 * everything so far), then this kustomization's own transformers (`namespace:`, `labels:` without
 * selectors, `images:`). Patches are JSON 6902 with a kind/name target. `components` replaces the
 * kustomization's list (what a user who edits the top level's `components:` gets). Every listed
 * resource must exist. A test compares this with `kubectl kustomize` where kubectl is installed.
 */
export function kustomizeBuild(dir: string, options: { components?: string[] } = {}): ManifestObject[] {
  const file = join(dir, 'kustomization.yaml');
  const k = readYaml<Kustomization>(file)[0]!;
  const load = (r: string) => {
    const p = join(dir, r);
    if (!existsSync(p)) throw new Error(`${file} lists ${r}, which does not exist`);
    return statSync(p).isDirectory() ? kustomizeBuild(p) : readYaml(p);
  };
  let out = (k.resources ?? []).flatMap(load);
  for (const c of options.components ?? k.components ?? []) {
    const cdir = join(dir, c);
    const ck = readYaml<Kustomization>(join(cdir, 'kustomization.yaml'))[0]!;
    if (ck.kind !== 'Component') throw new Error(`${file} lists ${c} as a component, but its kind is ${ck.kind ?? 'Kustomization'}`);
    out = [...out, ...(ck.resources ?? []).map((r) => join(c, r)).flatMap(load), ...(ck.configMapGenerator ?? []).map((g) => generateConfigMap(cdir, g))];
    for (const patch of ck.patches ?? []) {
      const ops = yamlDocs<Operation[]>(patch.patch, `${cdir} patch`)[0]!;
      const targets = out.filter((o) => (!patch.target.kind || o.kind === patch.target.kind) && (!patch.target.name || o.metadata.name === patch.target.name));
      if (targets.length === 0) throw new Error(`${cdir}: patch target ${JSON.stringify(patch.target)} matches no resource`);
      out = out.map((o) => (targets.includes(o) ? (jsonpatch.applyPatch(structuredClone(o), ops).newDocument as ManifestObject) : o));
    }
  }
  for (const o of out) {
    // kustomize (5.5, in kubectl 1.32) knows no ValidatingAdmissionPolicy kinds as cluster-scoped and
    // sets their namespace too; the API server ignores it on a cluster-scoped object.
    if (k.namespace && (!CLUSTER_SCOPED.has(o.kind) || KUSTOMIZE_NAMESPACES_ANYWAY.has(o.kind))) o.metadata.namespace = k.namespace;
    for (const { pairs } of k.labels ?? []) o.metadata.labels = { ...o.metadata.labels, ...pairs };
    for (const c of containersOf(o)) {
      const [name, tag] = splitImage(c.image);
      const rule = (k.images ?? []).find((i) => i.name === name);
      const newTag = rule?.newTag ?? tag;
      if (rule) c.image = `${rule.newName ?? name}${rule.digest ? `@${rule.digest}` : newTag ? `:${newTag}` : ''}`;
    }
  }
  return out;
}

/** The containers of a workload (Deployment, DaemonSet, Job: spec.template; CronJob: spec.jobTemplate.spec.template). */
export function containersOf(o: ManifestObject): { name: string; image: string }[] {
  type PodTemplate = { spec?: { containers?: { name: string; image: string }[]; initContainers?: { name: string; image: string }[] } };
  const spec = o['spec'] as { template?: PodTemplate; jobTemplate?: { spec?: { template?: PodTemplate } } } | undefined;
  const pod = spec?.template ?? spec?.jobTemplate?.spec?.template;
  return [...(pod?.spec?.initContainers ?? []), ...(pod?.spec?.containers ?? [])];
}

function splitImage(image: string): [string, string | undefined] {
  const slash = image.lastIndexOf('/');
  const colon = image.lastIndexOf(':');
  return colon > slash ? [image.slice(0, colon), image.slice(colon + 1)] : [image, undefined];
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
