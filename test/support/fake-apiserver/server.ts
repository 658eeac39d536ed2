// The HTTP edge of the fake API server: parses kube-apiserver URLs, logs each request, applies
// injected faults, routes to the handlers and the watch hub, and answers errors as metav1.Status.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import * as k8s from '@kubernetes/client-node';
import { createKubeClients, kubeConfigForServer, type KubeClients } from '../../../src/common/k8s.js';
import {
  mutatingAdmission,
  warningHeader,
  type AdmissionOptions,
  type AdmissionRequest,
} from './admission.js';
import { Handlers, type RequestContext } from './handlers.js';
import { checkPodSecurity } from './pod-security.js';
import { ADMIN, ANONYMOUS, authorize, forbidden, TokenIssuer, unauthorized, type TokenBinding, type UserInfo } from './rbac.js';
import { Registry } from './registry.js';
import { simulateDeployments } from './controllers.js';
import type { KubeObject, ResourceDef } from './resources.js';
import { parseFieldSelector, parseLabelSelector } from './selectors.js';
import { ApiError, errors } from './status.js';
import { Store } from './store.js';
import { runValidatingPolicies } from './validating-policy.js';
import { REVIEW_RESOURCES, review } from './reviews.js';
import { WatchHub } from './watch.js';

/** The bearer token of kubeConfig() and clients() without a token: the cluster admin. */
export const ADMIN_TOKEN = 'test-token';

/** Kubernetes verbs, as RBAC and audit logs name them. */
export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete' | 'deletecollection';

export interface RequestRecord {
  method: string;
  /** The URL path without the query string. */
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
  /** The body, parsed when it was JSON or YAML, else the raw text; undefined when empty. */
  body: unknown;
  verb?: Verb;
  /** `pods`, `deployments.apps`; undefined for discovery and unknown paths. */
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  /** The HTTP status sent (200 for a watch, whatever it streamed). */
  status?: number;
  /** Who sent it: `kubernetes-admin`, `system:serviceaccount:<ns>:<name>`, `system:anonymous`. */
  user?: string;
}

export interface FaultSpec {
  /** Kubernetes verb to match (get, list, watch, create, update, patch, delete, deletecollection); any when absent. */
  verb?: Verb;
  /** Matched against the URL path; any when absent. */
  path?: RegExp;
  /** `deployments`, `deployments.apps`, `leases`; any when absent. */
  resource?: string;
  /** `scale`, `status`; with it only that subresource matches, without it any. */
  subresource?: string;
  namespace?: string;
  name?: string;
  /** Only requests bearing this token (`Authorization: Bearer <token>`): one client partitioned off. */
  token?: string;
  /**
   * HTTP status to answer with: 409, 429, 500, 503 and others, each with the real Status body.
   * Without it (and with delayMs) the request is answered normally, late.
   */
  status?: number;
  /**
   * Hold the request this long before answering, as a hung API server or a partitioned network
   * looks to the client; a client that gives up first sees no answer at all.
   */
  delayMs?: number;
  /** How many matching requests fail (default 1). */
  times?: number;
  message?: string;
  /** Retry-After (and details.retryAfterSeconds) for 429 and 503; default 1. */
  retryAfterSeconds?: number;
}

export interface Fault {
  /** Matching requests still to fail. */
  readonly remaining: number;
  /** Requests this fault has failed so far. */
  readonly hits: number;
  cancel(): void;
}

export interface FakeApiServerOptions {
  /** Watch history kept for resuming watches; older resourceVersions get 410 Gone (default 10,000 changes). */
  historyLimit?: number;
  /** Interval of BOOKMARK events on watches that allow them (default 5000 ms). */
  bookmarkIntervalMs?: number;
  /** Namespaces created at start (default: default, kube-system, kube-public, kube-node-lease). */
  namespaces?: string[];
  admission?: AdmissionOptions;
  /**
   * A minimal Deployment controller: after a Deployment's spec changes, its status follows in a
   * separate write (observedGeneration, and replicas, updatedReplicas, readyReplicas and
   * availableReplicas equal to spec.replicas, zeros omitted), as if every pod became ready at once.
   * No ReplicaSets or Pods are made. Off by default: status changes only when a test writes it.
   */
  simulateDeployments?: boolean;
  /**
   * Authentication as a real server does it: only ADMIN_TOKEN and tokens from tokenFor() are
   * accepted, any other token is 401 Unauthorized, and a request without one is system:anonymous
   * (authorized by RBAC like any user, so mostly 403). Off by default: any other token, or none,
   * is the admin. Either way a tokenFor() token is authorized by the stored RBAC objects.
   */
  strictAuthentication?: boolean;
  /** What GET /version answers (default 1.34.0): a test of version handling sets another. */
  version?: { major: string; minor: string; gitVersion: string };
}

export interface FakeApiServer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** A KubeConfig for this server; with `token` (from tokenFor), requests are made as its ServiceAccount. */
  kubeConfig(namespace?: string, token?: string): k8s.KubeConfig;
  clients(namespace?: string, token?: string): KubeClients;
  /**
   * A bearer token for ServiceAccount `namespace/name`, as the token volume would hold: requests
   * with it are user system:serviceaccount:<namespace>:<name> and are authorized by the Roles,
   * ClusterRoles and bindings stored in the fake (seed or apply the manifests' RBAC objects).
   * `boundTo` makes it a token projected into that pod on that node: its user.extra names both.
   */
  tokenFor(namespace: string, serviceAccount: string, boundTo?: TokenBinding): string;
  /**
   * Creates or replaces an object directly, sending watch events: defaulted and validated as a
   * create (a 422 is thrown as the ApiError, whose message is the Status message), status kept as
   * given, no admission. Needs apiVersion and kind; a namespaced object's namespace must exist.
   */
  seed<T extends object>(obj: T): T;
  /** A stored object as a GET returns it, or undefined. `resource`: `pods`, `deployments.apps`, `Deployment`... */
  get<T = KubeObject>(resource: string, namespace: string | undefined, name: string): T | undefined;
  /** Stored objects of a resource, in one namespace or all. */
  list<T = KubeObject>(resource: string, namespace?: string): T[];
  /** Deletes an object directly, sending a DELETED watch event; returns whether it existed. */
  remove(resource: string, namespace: string | undefined, name: string): boolean;
  /** Every request received, in order. `events` is the same log. */
  requests: RequestRecord[];
  events: RequestRecord[];
  /** Makes the next `times` matching requests fail with a real Status body. */
  injectFault(spec: FaultSpec): Fault;
  clearFaults(): void;
  /** Ends every open watch stream cleanly; clients reconnect from their last resourceVersion. Returns how many. */
  dropWatches(): number;
  /** Open watch streams. */
  readonly watchCount: number;
  /** Forgets the watch history, so a watch from any earlier resourceVersion gets 410 Gone and informers relist. */
  compact(): void;
  /** The current (latest) resourceVersion. */
  readonly resourceVersion: string;
  close(): Promise<void>;
}

interface Route {
  def?: ResourceDef;
  namespace?: string;
  name?: string;
  subresource?: string;
  watchPath: boolean;
  discovery?: () => object | undefined;
}

function parsePath(registry: Registry, pathname: string): Route | undefined {
  const seg = pathname.split('/').filter(Boolean).map(decodeURIComponent);
  let group: string;
  let version: string | undefined;
  let rest: string[];
  if (seg[0] === 'api') {
    group = '';
    version = seg[1];
    rest = seg.slice(2);
    if (!version) return { watchPath: false, discovery: () => registry.coreDiscovery() };
  } else if (seg[0] === 'apis') {
    group = seg[1] ?? '';
    version = seg[2];
    rest = seg.slice(3);
    if (!group) return { watchPath: false, discovery: () => registry.groupList() };
    if (!version)
      return {
        watchPath: false,
        discovery: () => (registry.groupVersions(group).length ? registry.group(group) : undefined),
      };
  } else return undefined;
  if (rest.length === 0) return { watchPath: false, discovery: () => registry.resourceList(group, version) };
  let watchPath = false;
  if (rest[0] === 'watch') {
    watchPath = true;
    rest = rest.slice(1);
  }
  let namespace: string | undefined;
  if (
    rest[0] === 'namespaces' &&
    rest.length >= 3 &&
    !(rest.length === 3 && (rest[2] === 'status' || rest[2] === 'finalize'))
  ) {
    namespace = rest[1];
    rest = rest.slice(2);
  }
  if (rest.length === 0 || rest.length > 3) return undefined;
  const def = registry.find(group, version, rest[0]!);
  if (!def) return undefined;
  const [, name, subresource] = rest;
  if (!def.namespaced && namespace !== undefined) return undefined;
  if (def.namespaced && namespace === undefined && name !== undefined) return undefined;
  return { def, namespace, name, subresource, watchPath };
}

function verbOf(method: string, route: Route, query: Record<string, string>): Verb | undefined {
  const watch = route.watchPath || query.watch === 'true' || query.watch === '1';
  switch (method) {
    case 'GET':
      if (watch) return 'watch';
      return route.name === undefined ? 'list' : 'get';
    case 'POST':
      return route.name === undefined ? 'create' : undefined;
    case 'PUT':
      return route.name === undefined ? undefined : 'update';
    case 'PATCH':
      return route.name === undefined ? undefined : 'patch';
    case 'DELETE':
      return route.name === undefined ? 'deletecollection' : 'delete';
    default:
      return undefined;
  }
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

function parseBody(raw: string, contentType: string): unknown {
  if (raw === '') return undefined;
  if (contentType.endsWith('yaml')) {
    try {
      return parseYaml(raw) as unknown;
    } catch {
      return raw;
    }
  }
  try {
    return JSON.parse(raw) as unknown;
  } catch {
    return raw;
  }
}

function sendJson(
  res: ServerResponse,
  code: number,
  body: unknown,
  headers: Record<string, string> = {},
): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'Content-Type': 'application/json',
    'Content-Length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

function kubeConfigFor(server: string, namespace = 'default', token?: string): k8s.KubeConfig {
  if (token === undefined) return kubeConfigForServer(server, namespace);
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'c', server, skipTLSVerify: true }],
    users: [{ name: 'sa', token }],
    contexts: [{ name: 'ctx', cluster: 'c', user: 'sa', namespace }],
    currentContext: 'ctx',
  });
  return kc;
}

export async function startFakeApiServer(opts: FakeApiServerOptions = {}): Promise<FakeApiServer> {
  const store = new Store(opts.historyLimit ?? 10_000);
  const registry = new Registry();
  const tokens = new TokenIssuer();
  const stored = (resource: string): KubeObject[] => handlers.objects(registry.resolve(resource));
  const namespaceOf = (ns: string | undefined) => (ns ? store.get('namespaces', undefined, ns) : undefined);
  // Admission reads the stored configurations, policies and namespaces when a write arrives.
  const mutate = mutatingAdmission(
    () => stored('mutatingwebhookconfigurations.admissionregistration.k8s.io'),
    namespaceOf,
    opts.admission ?? {},
  );
  const validate = (req: AdmissionRequest): void => {
    const namespace = req.def.namespaced ? namespaceOf(req.obj.metadata?.namespace) : undefined;
    if (req.def.plural === 'pods' && req.def.group === '' && !req.subresource && req.op !== 'DELETE') {
      const result = checkPodSecurity(req.obj, req.old, namespace?.metadata?.labels);
      if (result.forbidden) throw errors.forbidden(req.def, req.obj.metadata?.name ?? '', result.forbidden);
      req.warnings.push(...result.warnings);
    }
    req.warnings.push(
      ...runValidatingPolicies(
        stored('validatingadmissionpolicies.admissionregistration.k8s.io'),
        stored('validatingadmissionpolicybindings.admissionregistration.k8s.io'),
        { ...req, namespace },
      ),
    );
  };
  const handlers = new Handlers(store, registry, mutate, validate);
  const rbacObjects = () => ({
    roles: stored('roles.rbac.authorization.k8s.io'),
    clusterRoles: stored('clusterroles.rbac.authorization.k8s.io'),
    roleBindings: stored('rolebindings.rbac.authorization.k8s.io'),
    clusterRoleBindings: stored('clusterrolebindings.rbac.authorization.k8s.io'),
  });

  /** Authentication: who sent the request (401 for a token a strict server does not know). */
  function authenticate(req: IncomingMessage): UserInfo {
    const header = req.headers.authorization ?? '';
    const token = /^Bearer\s+(.+)$/i.exec(header)?.[1]?.trim();
    const sa = token ? tokens.userOf(token) : undefined;
    if (sa) return sa;
    if (!opts.strictAuthentication || token === ADMIN_TOKEN) return ADMIN;
    if (token) throw unauthorized();
    return ANONYMOUS;
  }
  const hub = new WatchHub(store);
  if (opts.simulateDeployments) simulateDeployments(store);
  const requests: RequestRecord[] = [];
  const faults: { spec: FaultSpec; remaining: number; hits: number }[] = [];
  const bookmarkIntervalMs = opts.bookmarkIntervalMs ?? 5000;

  for (const ns of opts.namespaces ?? ['default', 'kube-system', 'kube-public', 'kube-node-lease']) {
    handlers.seed(registry.resolve('namespaces'), {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: ns, labels: { 'kubernetes.io/metadata.name': ns } },
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
  }

  const delays = new Set<NodeJS.Timeout>();
  const hold = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        delays.delete(t);
        resolve();
      }, ms);
      delays.add(t);
    });

  function takeFault(rec: RequestRecord, def: ResourceDef | undefined, token: string | undefined): { error?: ApiError; delayMs?: number } | undefined {
    for (const f of faults) {
      const s = f.spec;
      if (f.remaining <= 0) continue;
      if (s.token !== undefined && s.token !== token) continue;
      if (s.verb && s.verb !== rec.verb) continue;
      if (s.path && !s.path.test(rec.path)) continue;
      if (s.resource && (!def || (s.resource !== def.plural && s.resource !== rec.resource))) continue;
      if (s.subresource !== undefined && s.subresource !== rec.subresource) continue;
      if (s.namespace !== undefined && s.namespace !== rec.namespace) continue;
      if (s.name !== undefined && s.name !== rec.name) continue;
      f.remaining--;
      f.hits++;
      return {
        error: s.status === undefined ? undefined : errors.injected(s.status, s.message, s.retryAfterSeconds ?? 1, def && { def, name: rec.name }),
        delayMs: s.delayMs,
      };
    }
    return undefined;
  }

  async function handle(
    req: IncomingMessage,
    res: ServerResponse,
    rec: RequestRecord,
    raw: string,
    ctx: RequestContext,
  ): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const q = rec.query;
    ctx.user = authenticate(req);
    rec.user = ctx.user.username;
    const route = parsePath(registry, url.pathname);
    const nonResource = !route || route.discovery !== undefined;
    if (nonResource) {
      const verb = (req.method ?? 'GET').toLowerCase();
      const attrs = { user: ctx.user, verb: verb === 'head' ? 'get' : verb, group: '', path: url.pathname };
      if (!authorize(rbacObjects(), attrs)) throw forbidden(attrs);
    }
    if (url.pathname === '/version') {
      return sendJson(res, 200, {
        major: '1',
        minor: '34',
        gitVersion: 'v1.34.0-sair-fake',
        ...opts.version,
        platform: 'linux/amd64',
      });
    }
    if (['/healthz', '/readyz', '/livez'].includes(url.pathname)) {
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      res.end('ok');
      return;
    }
    if (!route) throw errors.pathNotFound();
    if (route.discovery) {
      const doc = route.discovery();
      if (!doc) throw errors.pathNotFound();
      return sendJson(res, 200, doc);
    }
    const def = route.def!;
    const verb = verbOf(req.method ?? 'GET', route, q);
    Object.assign(rec, {
      verb,
      resource: def.group ? `${def.plural}.${def.group}` : def.plural,
      subresource: route.subresource,
      namespace: route.namespace,
      name: route.name,
    });
    if (verb) {
      // RequestInfo: a namespace's own namespace is its name; a list or watch of one name by field selector names it.
      const byField = /(?:^|,)metadata\.name==?([^,]+)/.exec(q.fieldSelector ?? '')?.[1];
      const attrs = {
        user: ctx.user,
        verb,
        group: def.group,
        resource: def.plural,
        subresource: route.subresource,
        namespace: def.plural === 'namespaces' && def.group === '' ? route.name : route.namespace,
        name: route.name ?? (verb === 'list' || verb === 'watch' ? byField : undefined),
        path: url.pathname,
      };
      if (!authorize(rbacObjects(), attrs)) throw forbidden(attrs);
    }
    const token = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '')?.[1]?.trim();
    const fault = takeFault(rec, def, token);
    if (fault?.delayMs) await hold(fault.delayMs);
    if (fault?.error) throw fault.error;
    if (!verb) throw errors.methodNotAllowed();
    if (REVIEW_RESOURCES.has(`${def.plural}.${def.group}`)) {
      if (verb !== 'create' || route.name !== undefined || route.subresource !== undefined) throw errors.methodNotAllowed();
      const body = rec.body;
      if (body === undefined || typeof body !== 'object' || body === null || Array.isArray(body))
        throw errors.badRequest(`the body of the request was not a JSON or YAML object`);
      return sendJson(
        res,
        201,
        review(def, body as KubeObject, ctx, {
          userOfToken: (t) => tokens.userOf(t) ?? (t === ADMIN_TOKEN || !opts.strictAuthentication ? ADMIN : undefined),
          rbac: rbacObjects,
          validate: (d, obj, c) => validate({ op: 'CREATE', def: d, obj, user: c.user, warnings: c.warnings }),
        }),
      );
    }
    const sub = route.subresource;
    if (sub !== undefined && !((sub === 'status' && def.status) || (sub === 'scale' && def.scale)))
      throw errors.pathNotFound();
    if (sub !== undefined && !['get', 'update', 'patch'].includes(verb)) throw errors.methodNotAllowed();
    const dryRun = q.dryRun === 'All';
    const ns = route.namespace;
    const name = route.name!;
    const contentType = rec.contentType ?? '';

    const body = (): KubeObject => {
      if (
        rec.body === undefined ||
        typeof rec.body !== 'object' ||
        rec.body === null ||
        Array.isArray(rec.body)
      ) {
        throw errors.badRequest(`the body of the request was not a JSON or YAML object`);
      }
      return rec.body as KubeObject;
    };
    const listOptions = () => {
      const fieldLabels = ['metadata.name', 'metadata.namespace', ...(def.fieldLabels ?? [])];
      const limit = q.limit === undefined ? undefined : Number(q.limit);
      if (limit !== undefined && (!Number.isInteger(limit) || limit < 0))
        throw errors.badRequest(`limit: invalid value "${q.limit}"`);
      return {
        labelSelector: parseLabelSelector(q.labelSelector),
        fieldSelector: parseFieldSelector(
          q.fieldSelector?.replace(/\bregarding\./g, 'involvedObject.'),
          fieldLabels,
        ),
        limit,
        continueToken: q.continue,
      };
    };

    switch (verb) {
      case 'get':
        return sendJson(
          res,
          200,
          sub === 'scale' ? handlers.getScale(def, ns, name) : handlers.get(def, ns, name),
        );
      case 'list':
        return sendJson(res, 200, handlers.list(def, ns, listOptions()));
      case 'watch': {
        const lo = listOptions();
        const rv = q.resourceVersion;
        if (rv !== undefined && rv !== '' && !/^\d+$/.test(rv))
          throw errors.badRequest(`invalid resource version: ${JSON.stringify(rv)}`);
        const timeout = q.timeoutSeconds === undefined ? undefined : Number(q.timeoutSeconds);
        hub.serve(res, {
          def,
          matches: handlers.matcher(def, ns, lo, route.name),
          present: (o) => handlers.present(def, o),
          resourceVersion: rv,
          allowBookmarks: q.allowWatchBookmarks === 'true' || q.allowWatchBookmarks === '1',
          sendInitialEvents: q.sendInitialEvents === 'true',
          timeoutSeconds:
            timeout !== undefined && Number.isFinite(timeout) && timeout > 0 ? timeout : undefined,
          bookmarkIntervalMs,
        });
        return;
      }
      case 'create':
        if (def.namespaced && ns === undefined) throw errors.methodNotAllowed();
        return sendJson(res, 201, await handlers.create(def, ns, body(), dryRun, ctx));
      case 'update':
        if (sub === 'scale')
          return sendJson(res, 200, await handlers.writeScale(def, ns, name, body(), dryRun, ctx));
        return sendJson(
          res,
          200,
          await handlers.update(def, ns, name, body(), sub as 'status' | undefined, dryRun, ctx),
        );
      case 'patch': {
        const type = mediaType(contentType);
        if (sub === 'scale')
          return sendJson(res, 200, await handlers.patchScale(def, ns, name, type, raw, dryRun, ctx));
        return sendJson(
          res,
          200,
          await handlers.patch(def, ns, name, type, raw, sub as 'status' | undefined, dryRun, ctx),
        );
      }
      case 'delete': {
        // DeleteOptions (preconditions, gracePeriodSeconds, propagationPolicy) come in the body or the query.
        const options = { ...(rec.body && typeof rec.body === 'object' ? (rec.body as KubeObject) : {}) };
        if (q.gracePeriodSeconds !== undefined) options.gracePeriodSeconds = Number(q.gracePeriodSeconds);
        return sendJson(res, 200, handlers.delete(def, ns, name, options, dryRun, ctx));
      }
      case 'deletecollection':
        return sendJson(res, 200, handlers.deleteCollection(def, ns, listOptions(), dryRun, ctx));
    }
  }

  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://localhost');
      const contentType = req.headers['content-type'];
      const rec: RequestRecord = {
        method: req.method ?? 'GET',
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        contentType,
        body: parseBody(raw, mediaType(contentType)),
      };
      requests.push(rec);
      res.on('finish', () => (rec.status = res.statusCode));
      // Warnings go out as Warning headers with whatever answer the request gets.
      const ctx: RequestContext = { user: ADMIN, warnings: [] };
      const writeHead = res.writeHead.bind(res) as (...args: unknown[]) => ServerResponse;
      res.writeHead = ((...args: unknown[]) => {
        if (ctx.warnings.length > 0) res.setHeader('Warning', [...new Set(ctx.warnings)].map(warningHeader));
        return writeHead(...args);
      }) as typeof res.writeHead;
      handle(req, res, rec, raw, ctx)
        .then(() => {
          // A watch streams on after handle() returns: record its 200 now.
          if (res.headersSent) rec.status = res.statusCode;
        })
        .catch((err: unknown) => {
          if (res.headersSent) {
            res.destroy();
            return;
          }
          if (err instanceof ApiError) return sendJson(res, err.status.code, err.status, err.headers);
          const e = errors.internal(err instanceof Error ? err.message : String(err));
          sendJson(res, 500, e.status);
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    url,
    kubeConfig: (namespace?: string, token?: string) => kubeConfigFor(url, namespace, token),
    clients: (namespace?: string, token?: string) => createKubeClients(kubeConfigFor(url, namespace, token)),
    tokenFor: (namespace: string, serviceAccount: string, boundTo?: TokenBinding) => tokens.issue(namespace, serviceAccount, boundTo),
    seed: <T extends object>(obj: T): T => {
      const o = obj as KubeObject;
      return handlers.seed(registry.forObject(o), o) as T;
    },
    get: <T = KubeObject>(resource: string, namespace: string | undefined, name: string): T | undefined => {
      const def = registry.resolve(resource);
      try {
        return handlers.get(def, def.namespaced ? (namespace ?? 'default') : undefined, name) as T;
      } catch (err) {
        if (err instanceof ApiError && err.status.code === 404) return undefined;
        throw err;
      }
    },
    list: <T = KubeObject>(resource: string, namespace?: string): T[] => {
      const def = registry.resolve(resource);
      return handlers.objects(def, namespace) as T[];
    },
    remove: (resource, namespace, name) => handlers.remove(registry.resolve(resource), namespace, name),
    requests,
    events: requests,
    injectFault(spec: FaultSpec): Fault {
      const f = { spec, remaining: spec.times ?? 1, hits: 0 };
      faults.push(f);
      return {
        get remaining() {
          return f.remaining;
        },
        get hits() {
          return f.hits;
        },
        cancel: () => {
          f.remaining = 0;
        },
      };
    },
    clearFaults: () => {
      faults.length = 0;
    },
    dropWatches: () => hub.dropAll(),
    get watchCount() {
      return hub.count;
    },
    compact: () => store.compact(),
    get resourceVersion() {
      return String(store.resourceVersion);
    },
    close: async () => {
      for (const t of delays) clearTimeout(t);
      hub.dropAll();
      handlers.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
