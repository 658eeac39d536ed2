// The fake API server's resource table: one line per served resource, the way kube-apiserver's
// discovery describes them. Custom resources are added from CustomResourceDefinitions as the real
// server does (see defsFromCrd), so applying a CRD over REST makes its resource servable.
import { defaultPod, validatePod } from './pods.js';
import { compileCrdSchema, type CrSchema, type SchemaCause } from './schema.js';

export type KubeObject = {
  apiVersion?: string;
  kind?: string;
  metadata?: {
    name?: string;
    generateName?: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    generation?: number;
    creationTimestamp?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [k: string]: unknown;
  };
  [k: string]: unknown;
};

export interface ScaleDef {
  /** Dotted paths into the object, as in a CRD's scale subresource. */
  specReplicasPath: string;
  statusReplicasPath: string;
  /** A path to a serialized label selector string (CRDs), or `spec.selector` for a LabelSelector object. */
  labelSelectorPath?: string;
}

export interface ResourceDef {
  group: string; // '' for the core group
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  /** Has a /status subresource: main writes keep the stored status, status writes keep the rest. */
  status?: boolean;
  scale?: ScaleDef;
  /** metadata.generation is set, and bumped on any change outside metadata and status. */
  generation?: boolean;
  /** Also bump generation when the annotations change (Deployments: they are copied to ReplicaSets). */
  annotationsBumpGeneration?: boolean;
  /** A PUT must carry metadata.resourceVersion (the strategy's AllowUnconditionalUpdate is false). */
  requireResourceVersion?: boolean;
  /** DELETE answers with the deleted object instead of a Success Status. */
  returnDeletedObject?: boolean;
  /** A custom resource: no strategic merge patch, list items keep kind and apiVersion. */
  custom?: boolean;
  /** Field labels the server accepts in fieldSelector besides metadata.name and metadata.namespace. */
  fieldLabels?: string[];
  /** Objects of several resources share one storage (core/v1 and events.k8s.io/v1 events). */
  storage?: string;
  /** Converts between this resource's view and the storage form (only for shared storage). */
  toStorage?: (obj: KubeObject) => KubeObject;
  fromStorage?: (obj: KubeObject) => KubeObject;
  /** A custom resource's structural schema (from its CRD): pruning, defaults and validation. */
  schema?: CrSchema;
  /** Scheme defaulting: on every decode, and again after each mutating webhook's patch. */
  defaults?: (obj: KubeObject) => void;
  /** The registry strategy's PrepareForCreate (status reset and the like), after mutating admission. */
  prepareForCreate?: (obj: KubeObject) => void;
  /** The strategy's built-in validation, after mutating admission: causes of a 422. */
  validate?: (obj: KubeObject, old: KubeObject | undefined) => SchemaCause[];
}

export function apiVersionOf(def: ResourceDef): string {
  return def.group ? `${def.group}/${def.version}` : def.version;
}

/** `pods`, `deployments.apps`: how the real server names a resource in messages. */
export function qualifiedName(def: ResourceDef): string {
  return def.group ? `${def.plural}.${def.group}` : def.plural;
}

export function storageKey(def: ResourceDef): string {
  return def.storage ?? qualifiedName(def);
}

const podFieldLabels = [
  'spec.nodeName',
  'spec.restartPolicy',
  'spec.schedulerName',
  'spec.serviceAccountName',
  'spec.hostNetwork',
  'status.phase',
  'status.podIP',
  'status.nominatedNodeName',
];
const eventFieldLabels = [
  'involvedObject.kind',
  'involvedObject.namespace',
  'involvedObject.name',
  'involvedObject.uid',
  'involvedObject.apiVersion',
  'involvedObject.resourceVersion',
  'involvedObject.fieldPath',
  'reason',
  'reportingComponent',
  'source',
  'type',
];

/** core/v1 Event (storage form) <-> events.k8s.io/v1 Event, field for field as the real conversion. */
const eventRenames: [core: string, v1: string][] = [
  ['involvedObject', 'regarding'],
  ['message', 'note'],
  ['source', 'deprecatedSource'],
  ['firstTimestamp', 'deprecatedFirstTimestamp'],
  ['lastTimestamp', 'deprecatedLastTimestamp'],
  ['count', 'deprecatedCount'],
  ['reportingComponent', 'reportingController'],
];

function renameFields(obj: KubeObject, pairs: [string, string][]): KubeObject {
  const out: KubeObject = { ...obj };
  for (const [from, to] of pairs) {
    if (from in out) {
      out[to] = out[from];
      delete out[from];
    }
  }
  return out;
}

function eventsV1ToCore(obj: KubeObject): KubeObject {
  const out = renameFields(
    obj,
    eventRenames.map(([c, v]) => [v, c]),
  );
  return { ...out, apiVersion: 'v1', kind: 'Event' };
}

function eventsCoreToV1(obj: KubeObject): KubeObject {
  const out = renameFields(obj, eventRenames);
  return { ...out, apiVersion: 'events.k8s.io/v1', kind: 'Event' };
}

function resetStatus(status: Record<string, unknown>) {
  return (obj: KubeObject) => {
    obj.status = clone(status);
  };
}

type Resources = { requests?: Record<string, unknown>; limits?: Record<string, unknown> };

/** The pod's QoS class, as the real PrepareForCreate records it (compute resources cpu and memory only). */
function podQos(pod: KubeObject): string {
  const spec = (pod.spec ?? {}) as {
    containers?: { resources?: Resources }[];
    initContainers?: { resources?: Resources }[];
  };
  const all = [...(spec.containers ?? []), ...(spec.initContainers ?? [])].map((c) => c.resources ?? {});
  const named = (r: Record<string, unknown> | undefined) =>
    Object.fromEntries(Object.entries(r ?? {}).filter(([k]) => k === 'cpu' || k === 'memory'));
  if (
    all.every((r) => Object.keys(named(r.requests)).length === 0 && Object.keys(named(r.limits)).length === 0)
  ) {
    return 'BestEffort';
  }
  const guaranteed = all.every((r) => {
    const limits = named(r.limits);
    const requests = { ...limits, ...named(r.requests) };
    return (
      limits.cpu !== undefined &&
      limits.memory !== undefined &&
      String(requests.cpu) === String(limits.cpu) &&
      String(requests.memory) === String(limits.memory)
    );
  });
  return guaranteed ? 'Guaranteed' : 'Burstable';
}

/** The built-in resources. Adding one is a line. */
export const BUILTIN_RESOURCES: ResourceDef[] = [
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    status: true,
    returnDeletedObject: true,
    fieldLabels: ['status.phase'],
    // SetDefaults_Namespace labels every namespace with its name.
    defaults: (obj) => {
      const meta = (obj.metadata ??= {});
      if (meta.name) meta.labels = { ...meta.labels, 'kubernetes.io/metadata.name': meta.name };
    },
    prepareForCreate: (obj) => {
      obj.spec = { finalizers: ['kubernetes'] };
      obj.status = { phase: 'Active' };
    },
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    status: true,
    generation: true,
    returnDeletedObject: true,
    fieldLabels: podFieldLabels,
    defaults: defaultPod,
    prepareForCreate: (obj) => {
      obj.status = { phase: 'Pending', qosClass: podQos(obj) };
    },
    validate: validatePod,
  },
  {
    group: '',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    fieldLabels: eventFieldLabels,
    storage: 'events',
  },
  {
    group: 'events.k8s.io',
    version: 'v1',
    plural: 'events',
    singular: 'event',
    kind: 'Event',
    namespaced: true,
    shortNames: ['ev'],
    fieldLabels: eventFieldLabels,
    storage: 'events',
    toStorage: eventsV1ToCore,
    fromStorage: eventsCoreToV1,
  },
  {
    group: '',
    version: 'v1',
    plural: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
    fieldLabels: ['type'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    status: true,
    returnDeletedObject: true,
    prepareForCreate: resetStatus({ loadBalancer: {} }),
  },
  {
    group: '',
    version: 'v1',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'nodes',
    singular: 'node',
    kind: 'Node',
    namespaced: false,
    shortNames: ['no'],
    status: true,
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    namespaced: true,
    shortNames: ['deploy'],
    status: true,
    generation: true,
    scale: {
      specReplicasPath: 'spec.replicas',
      statusReplicasPath: 'status.replicas',
      labelSelectorPath: 'spec.selector',
    },
    annotationsBumpGeneration: true,
    defaults: (obj) => {
      const spec = (obj.spec ??= {}) as Record<string, unknown>;
      spec.replicas ??= 1;
      spec.revisionHistoryLimit ??= 10;
      spec.progressDeadlineSeconds ??= 600;
      spec.strategy ??= { type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '25%', maxSurge: '25%' } };
    },
    prepareForCreate: resetStatus({}),
  },
  {
    group: 'autoscaling',
    version: 'v2',
    plural: 'horizontalpodautoscalers',
    singular: 'horizontalpodautoscaler',
    kind: 'HorizontalPodAutoscaler',
    namespaced: true,
    shortNames: ['hpa'],
    status: true,
    generation: true,
    defaults: (obj) => {
      const spec = (obj.spec ??= {}) as Record<string, unknown>;
      spec.minReplicas ??= 1;
    },
    prepareForCreate: resetStatus({ currentReplicas: 0, desiredReplicas: 0 }),
  },
  {
    group: 'coordination.k8s.io',
    version: 'v1',
    plural: 'leases',
    singular: 'lease',
    kind: 'Lease',
    namespaced: true,
    requireResourceVersion: true,
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'mutatingwebhookconfigurations',
    singular: 'mutatingwebhookconfiguration',
    kind: 'MutatingWebhookConfiguration',
    namespaced: false,
    generation: true,
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'validatingadmissionpolicies',
    singular: 'validatingadmissionpolicy',
    kind: 'ValidatingAdmissionPolicy',
    namespaced: false,
    status: true,
    generation: true,
    prepareForCreate: resetStatus({}),
  },
  {
    group: 'admissionregistration.k8s.io',
    version: 'v1',
    plural: 'validatingadmissionpolicybindings',
    singular: 'validatingadmissionpolicybinding',
    kind: 'ValidatingAdmissionPolicyBinding',
    namespaced: false,
    generation: true,
  },
  // Reviews: create-only, answered and never stored (reviews.ts).
  {
    group: 'authentication.k8s.io',
    version: 'v1',
    plural: 'tokenreviews',
    singular: 'tokenreview',
    kind: 'TokenReview',
    namespaced: false,
  },
  {
    group: 'authorization.k8s.io',
    version: 'v1',
    plural: 'subjectaccessreviews',
    singular: 'subjectaccessreview',
    kind: 'SubjectAccessReview',
    namespaced: false,
  },
  ...(['Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding'] as const).map((kind): ResourceDef => ({
    group: 'rbac.authorization.k8s.io',
    version: 'v1',
    plural: `${kind.toLowerCase()}s`,
    singular: kind.toLowerCase(),
    kind,
    namespaced: !kind.startsWith('Cluster'),
  })),
  {
    group: 'apiextensions.k8s.io',
    version: 'v1',
    plural: 'customresourcedefinitions',
    singular: 'customresourcedefinition',
    kind: 'CustomResourceDefinition',
    namespaced: false,
    shortNames: ['crd', 'crds'],
    status: true,
    generation: true,
    // What the apiextensions controllers write at once: names accepted, Established, stored version.
    prepareForCreate: (obj) => {
      const spec = (obj.spec ?? {}) as { names?: object; versions?: { name: string; storage?: boolean }[] };
      const at = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
      const condition = (type: string, reason: string, message: string) => ({
        type,
        status: 'True',
        lastTransitionTime: at,
        reason,
        message,
      });
      obj.status = {
        acceptedNames: spec.names ?? {},
        conditions: [
          condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
          condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted'),
        ],
        storedVersions: (spec.versions ?? []).filter((v) => v.storage).map((v) => v.name),
      };
    },
  },
  {
    group: 'sair.dev',
    version: 'v1alpha1',
    plural: 'inferencepipelines',
    singular: 'inferencepipeline',
    kind: 'InferencePipeline',
    namespaced: true,
    shortNames: ['ip', 'pipeline'],
    status: true,
    generation: true,
    custom: true,
    requireResourceVersion: true,
  },
];

/** The resources a CustomResourceDefinition serves: one per served version. */
export function defsFromCrd(crd: KubeObject): ResourceDef[] {
  const spec = (crd.spec ?? {}) as {
    group?: string;
    scope?: string;
    names?: { plural?: string; singular?: string; kind?: string; shortNames?: string[] };
    versions?: {
      name: string;
      served?: boolean;
      subresources?: { status?: object; scale?: ScaleDef };
      schema?: { openAPIV3Schema?: unknown };
    }[];
  };
  const { group, names } = spec;
  if (!group || !names?.plural || !names.kind) return [];
  return (spec.versions ?? [])
    .filter((v) => v.served !== false)
    .map((v) => {
      const scale = v.subresources?.scale;
      return {
        group,
        version: v.name,
        plural: names.plural!,
        singular: names.singular ?? names.kind!.toLowerCase(),
        kind: names.kind!,
        namespaced: spec.scope !== 'Cluster',
        shortNames: names.shortNames,
        status: v.subresources?.status !== undefined,
        scale: scale
          ? {
              specReplicasPath: scale.specReplicasPath.replace(/^\./, ''),
              statusReplicasPath: scale.statusReplicasPath.replace(/^\./, ''),
              labelSelectorPath: scale.labelSelectorPath?.replace(/^\./, ''),
            }
          : undefined,
        generation: true,
        custom: true,
        requireResourceVersion: true,
        schema: compileCrdSchema(v.schema?.openAPIV3Schema),
      };
    });
}

/**
 * A deep copy through JSON. Not structuredClone: under jest that builds objects of the host realm,
 * which isDeepStrictEqual then never finds equal to the objects of the test's realm.
 */
export function clone<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
