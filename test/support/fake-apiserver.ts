// An in-process fake kube-apiserver for integration tests, driven through the real
// @kubernetes/client-node. It is a test double: use it where no real API server can run.
//
//   const api = await startFakeApiServer();
//   const { core, apps, custom } = api.clients('ml');   // createKubeClients(kubeConfigForServer(api.url, 'ml'))
//   const asPolicy = api.clients('ml', api.tokenFor('sair-system', 'sair-policy'));   // RBAC applies
//   api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml' } });
//   api.injectFault({ verb: 'update', resource: 'deployments', subresource: 'scale', status: 409 });
//   ... api.requests, api.get('deployments.apps', 'ml', 'x'), api.dropWatches(), api.compact()
//   await api.close();
//
// Options: { namespaces, historyLimit, bookmarkIntervalMs, simulateDeployments (status follows
// spec.replicas), admission: { resolveService: ({ namespace, name, port, path }) => 'https://127.0.0.1:PORT/path' },
// strictAuthentication (unknown tokens 401, no token = system:anonymous),
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
// - The write path in the real order (fake-apiserver/handlers.ts; apiserver/pkg/endpoints/handlers/
//   create.go, update.go, registry/generic/registry/store.go): authentication and RBAC, scheme
//   defaulting, mutating admission, PrepareForCreate, name generation, the strategy's validation
//   (422), validating admission (403/422), storage. Each behaviour and the source it follows:
//   - defaulting (pkg/apis/core/v1/defaults.go, pods.ts): a Pod's unset requests copied from its
//     limits, restartPolicy, dnsPolicy, terminationGracePeriodSeconds, imagePullPolicy and the other
//     PodSpec/Container defaults; Deployment, HPA and Namespace defaults; run again after each
//     webhook's patch;
//   - ServiceAccount admission (plugin/pkg/admission/serviceaccount/admission.go, pods.ts): the
//     `kube-api-access-<5 chars>` projected volume mounted at /var/run/secrets/kubernetes.io/
//     serviceaccount, before any webhook sees the pod;
//   - mutating webhooks (apiserver/pkg/admission/plugin/webhook/mutating, admission.ts): the
//     stored MutatingWebhookConfigurations called as kube-apiserver calls them, reinvocationPolicy
//     IfNeeded, warnings relayed as `Warning: 299 - "..."`, a patch that cannot be applied answered
//     InternalError whatever the failurePolicy, a `deployments/scale` write sent as a Scale;
//   - built-in Pod validation (pkg/apis/core/validation/validation.go, pods.ts): unique volume
//     names and mount paths, mounts of existing volumes, requests within limits (equal for
//     extended resources), 422 with one cause per error;
//   - Pod Security admission (k8s.io/pod-security-admission, pod-security.ts): the namespace's
//     enforce level, 403 `pods "x" is forbidden: violates PodSecurity "baseline:latest": ...`,
//     the warn level as a warning;
//   - CRD `x-kubernetes-validations` (apiextensions-apiserver CEL validator, cel.ts, schema.ts):
//     422 `spec.stages[0]: Invalid value: "object": <message>`;
//   - ValidatingAdmissionPolicy and its bindings (apiserver/pkg/admission/plugin/policy/validating,
//     validating-policy.ts), on CREATE, UPDATE and DELETE (object null, oldObject the stored one);
//   - RBAC (plugin/pkg/auth/authorizer/rbac, rbac.ts) for requests with a tokenFor() token, over
//     the Roles, ClusterRoles and bindings stored in the fake; 401 and system:anonymous under
//     strictAuthentication;
//   - graceful pod deletion (pkg/registry/core/pod/strategy.go CheckGracefulDelete,
//     apiserver/pkg/registry/rest/delete.go): a pod on a node stays Terminating with
//     deletionTimestamp and deletionGracePeriodSeconds for its grace period (default 30 s), then
//     goes; gracePeriodSeconds=0, or no spec.nodeName, deletes at once;
//   - unconditional updates refused for Leases and custom resources (their strategies'
//     AllowUnconditionalUpdate is false; registry/generic/registry/store.go): 422 `leases.
//     coordination.k8s.io "x" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be
//     specified for an update`;
//   - generation (pkg/registry/apps/deployment/strategy.go and the other PrepareForUpdate): bumped
//     on a spec change, and for Deployments on an annotation change too.
//   seed() goes through the same defaulting and validation as a create, without admission.
//   One conformance test per behaviour: fake-apiserver/conformance.test.ts.
// - Faults: injectFault makes the next N matching requests fail with the real Status body (409, 429
//   and 503 with Retry-After, 500, ...), or answer late (delayMs: a hung server), optionally only
//   for one client's bearer token (a partition). Every request is logged in `requests` (alias `events`).
//
// Left out: RBAC for the admin token (any token but a tokenFor() one is the admin unless
// strictAuthentication), protobuf and CBOR, table output, server-side apply and managedFields,
// finalizers and graceful deletion of anything but pods, OpenAPI validation of built-in types
// (beyond names and the Pod checks above), defaulting of pod templates, the ServiceAccount and
// root CA controllers (no `default` ServiceAccount or kube-root-ca.crt ConfigMap is made),
// DefaultTolerationSeconds and Priority admission, Pod update validation, validating webhooks,
// mutating webhooks on DELETE, controllers (Deployments do not create ReplicaSets or Pods; their
// status changes only when a test writes it, or with the simulateDeployments option), resourceVersion
// semantics on GET/LIST (always the latest), watch cache consistency delays.
export { ADMIN_TOKEN, startFakeApiServer } from './fake-apiserver/server.js';
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
