// An in-process fake kube-apiserver for integration tests, driven through the real
// @kubernetes/client-node. It is a test double: use it where no real API server can run.
//
//   const api = await startFakeApiServer();
//   const { core, apps, custom } = api.clients('ml');   // createKubeClients(kubeConfigForServer(api.url, 'ml'))
//   api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml' } });
//   api.injectFault({ verb: 'update', resource: 'deployments', subresource: 'scale', status: 409 });
//   ... api.requests, api.get('deployments.apps', 'ml', 'x'), api.dropWatches(), api.compact()
//   await api.close();
//
// Options: { namespaces, historyLimit, bookmarkIntervalMs, simulateDeployments (status follows
// spec.replicas), admission: { resolveService: ({ namespace, name, port, path }) => 'https://127.0.0.1:PORT/path' },
// version: what GET /version answers, default 1.34.0 }.
// For an end-to-end admission test, store the real MutatingWebhookConfiguration (its service
// reference resolved through resolveService, its caBundle trusted) and create pods over REST.
//
// What it emulates faithfully (same paths, JSON shapes, status codes and messages as kube-apiserver):
// - REST paths /api/v1/... and /apis/<group>/<version>/..., namespaced and cluster-scoped, collection,
//   item, /status and /scale subresources, the deprecated /watch/ prefix; discovery (/api, /apis,
//   /api/v1, /apis/<g>/<v>, /version). Resources come from a table (fake-apiserver/resources.ts):
//   namespaces, nodes, pods, events (core/v1 and events.k8s.io/v1 over one storage, converted field
//   for field), configmaps, secrets, services, serviceaccounts, deployments (+scale, +status),
//   autoscaling/v2 HPAs, leases, mutatingwebhookconfigurations, CRDs, and sair.dev/v1alpha1
//   inferencepipelines (+status). Creating a CRD serves its resources (with the status/scale
//   subresources it declares); deleting it removes them and their objects. Custom resources of a
//   CRD with a schema are pruned, defaulted and validated against it (fake-apiserver/schema.ts),
//   with the real 422 causes; the built-in inferencepipelines entry has no schema until the CRD
//   is created in the fake.
// - Object semantics: uid, one global resourceVersion counter (a string), creationTimestamp,
//   generation (bumped on any change outside metadata and status), generateName, namespace must
//   exist (404 `namespaces "x" not found`), name validation (422), defaulting of Deployment and HPA
//   specs and status reset on create, no-op updates that write nothing, main-resource writes keep
//   the status and status writes keep everything else, DELETE preconditions, dryRun=All, namespace
//   deletion taking its objects with it. Errors are metav1.Status bodies with the real reason,
//   message, details and code: NotFound, AlreadyExists, Conflict ("Operation cannot be fulfilled on
//   deployments.apps \"x\": the object has been modified; please apply your changes to the latest
//   version and try again"), Invalid, BadRequest, MethodNotAllowed, UnsupportedMediaType, Expired.
// - PATCH by Content-Type: json-patch, merge-patch, strategic-merge-patch (common cases; see
//   fake-apiserver/patch.ts) and 415 for apply-patch+yaml (server-side apply is not implemented).
//   What @kubernetes/client-node 2.x sends: every generated patch* method picks the FIRST JSON type
//   its spec lists, which is always application/json-patch+json, so a plain call must pass an RFC
//   6902 array of operations. To send another type, override the header per call with
//   `setHeaderOptions('Content-Type', PatchStrategy.MergePatch)` (or StrategicMergePatch) as the
//   last argument, e.g. `apps.patchNamespacedDeployment({ name, namespace, body }, setHeaderOptions(
//   'Content-Type', PatchStrategy.MergePatch))`; both are exported by @kubernetes/client-node.
//   The body is serialized as JSON either way.
// - List: labelSelector (=, ==, !=, in, notin, exists, !exists), fieldSelector (metadata.name,
//   metadata.namespace and each resource's own field labels: spec.nodeName, status.phase, ... for pods,
//   involvedObject.* for events; others are 400 "field label not supported"), limit/continue with
//   remainingItemCount, <Kind>List with metadata.resourceVersion (items without kind/apiVersion
//   for built-in types, with them for custom resources).
// - Watch (?watch=true|1): chunked newline-delimited events; replay after resourceVersion, synthetic
//   ADDED for "0"/absent, 410 Expired ERROR event then close when the history is too short
//   (compact() forces it), selector transitions as ADDED/DELETED, allowWatchBookmarks (BOOKMARK
//   every bookmarkIntervalMs), sendInitialEvents with the initial-events-end bookmark,
//   timeoutSeconds; streams end cleanly on dropWatches() and close(). Works with client-node's
//   Watch and makeInformer/ListWatch, including the relist after a 410.
// - Mutating admission: MutatingWebhookConfigurations stored in the fake are called on CREATE and
//   UPDATE exactly as kube-apiserver calls them (see fake-apiserver/admission.ts).
// - Faults: injectFault makes the next N matching requests fail with the real Status body (409, 429
//   and 503 with Retry-After, 500, ...). Every request is logged in `requests` (alias `events`).
//
// Left out: authentication and RBAC (any token is accepted), protobuf and CBOR, table output,
// server-side apply and managedFields, graceful deletion (deletionTimestamp, finalizers: DELETE
// removes at once; gracePeriodSeconds is accepted and ignored), OpenAPI validation of built-in
// types (only names are validated), CEL rules in CRD schemas, most defaulting (only Deployment,
// HPA, Namespace and CRD fields, pod status and QoS class), controllers (Deployments do not create
// ReplicaSets or Pods; their status changes only when a test writes it, or with the
// simulateDeployments option), validating admission and admission on DELETE, resourceVersion
// semantics on GET/LIST (always the latest), watch cache consistency delays.
export { startFakeApiServer } from './fake-apiserver/server.js';
export type {
  FakeApiServer,
  FakeApiServerOptions,
  FaultSpec,
  Fault,
  RequestRecord,
  Verb,
} from './fake-apiserver/server.js';
export type { AdmissionOptions } from './fake-apiserver/admission.js';
export type { KubeObject, ResourceDef } from './fake-apiserver/resources.js';
export type { StatusBody } from './fake-apiserver/status.js';
