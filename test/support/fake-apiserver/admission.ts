// Admission as kube-apiserver runs it, in its order (staging/src/k8s.io/apiserver/pkg/admission/
// plugin/webhook/mutating/dispatcher.go, reinvocation.go; plugin/pkg/admission/serviceaccount):
// 1. the in-tree mutating plugins: ServiceAccount on a Pod CREATE (fake-apiserver/pods.ts);
// 2. every MutatingWebhookConfiguration stored in the fake (in name order, webhooks in order) whose
//    rules, namespaceSelector and objectSelector match is called with an AdmissionReview v1 over
//    HTTPS (its caBundle trusted, `?timeout=Ns` appended), with the request's user; a write to
//    `deployments/scale` reaches the webhooks whose rules name that subresource, as an
//    autoscaling/v1 Scale. The JSONPatch it returns is applied and the object defaulted again; its
//    warnings are relayed to the client (`Warning: 299 - "..."`). A denial becomes the real Status
//    ("admission webhook \"x\" denied the request: ..."); a call that fails obeys failurePolicy;
//    a patch that cannot be applied is InternalError whatever the policy;
// 3. reinvocation: when a later webhook changed the object, the webhooks with
//    `reinvocationPolicy: IfNeeded` that ran before it are called once more, after the in-tree
//    plugins ran again.
// Left out: matchPolicy Equivalent, matchConditions, validating webhooks, DELETE and CONNECT.
import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import jsonpatch from 'fast-json-patch';
import type { Operation as JsonPatchOp } from 'fast-json-patch';
import type { Operation } from './handlers.js';
import { admitServiceAccount } from './pods.js';
import type { UserInfo } from './rbac.js';
import { clone, type KubeObject, type ResourceDef } from './resources.js';
import { formatLabelSelector, matchesLabels, parseLabelSelector } from './selectors.js';
import { ApiError, errors } from './status.js';

export interface AdmissionOptions {
  /** Where a webhook's `clientConfig.service` is reachable from the test (e.g. https://127.0.0.1:PORT). */
  resolveService?: (svc: { namespace: string; name: string; port: number; path?: string }) => string;
}

/** One write as admission sees it. */
export interface AdmissionRequest {
  op: Operation;
  def: ResourceDef;
  /** `scale` for a write of the scale subresource, whose `obj` is an autoscaling/v1 Scale. */
  subresource?: 'scale' | 'status';
  obj: KubeObject;
  old?: KubeObject;
  user: UserInfo;
  /** Warnings for the client, appended to. */
  warnings: string[];
}

interface Rule {
  operations?: string[];
  apiGroups?: string[];
  apiVersions?: string[];
  resources?: string[];
  scope?: string;
}

interface Webhook {
  name: string;
  clientConfig: {
    url?: string;
    caBundle?: string;
    service?: { namespace: string; name: string; port?: number; path?: string };
  };
  rules?: Rule[];
  failurePolicy?: 'Fail' | 'Ignore';
  namespaceSelector?: object;
  objectSelector?: object;
  timeoutSeconds?: number;
  reinvocationPolicy?: 'Never' | 'IfNeeded';
}

function has(list: string[] | undefined, value: string): boolean {
  return (list ?? []).some((v) => v === '*' || v === value);
}

// A rule's `*` names every resource but no subresource; `x/*`, `*/sub` and `*/*` name subresources.
function resourceMatches(resources: string[] | undefined, plural: string, sub: string | undefined): boolean {
  const full = sub ? `${plural}/${sub}` : plural;
  return (resources ?? []).some(
    (r) =>
      r === full ||
      r === '*/*' ||
      (r === '*' && !sub) ||
      (sub !== undefined && (r === `${plural}/*` || r === `*/${sub}`)),
  );
}

function ruleMatches(rule: Rule, req: AdmissionRequest): boolean {
  const { def } = req;
  const scope = rule.scope ?? '*';
  if (scope === 'Namespaced' && !def.namespaced) return false;
  if (scope === 'Cluster' && def.namespaced) return false;
  return (
    has(rule.operations, req.op) &&
    has(rule.apiGroups, def.group) &&
    has(rule.apiVersions, def.version) &&
    resourceMatches(rule.resources, def.plural, req.subresource)
  );
}

function selectorMatches(selector: object | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector) return true;
  return matchesLabels(parseLabelSelector(formatLabelSelector(selector)), labels);
}

function post(url: string, body: string, caBundle: string | undefined, timeoutMs: number): Promise<string> {
  const u = new URL(url);
  const send = u.protocol === 'https:' ? httpsRequest : httpRequest;
  return new Promise((resolve, reject) => {
    const req = send(
      u,
      {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          Accept: 'application/json',
          'Content-Length': Buffer.byteLength(body),
        },
        ...(caBundle ? { ca: Buffer.from(caBundle, 'base64').toString('utf8') } : {}),
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          if ((res.statusCode ?? 0) >= 300)
            reject(new Error(`the server responded with status ${res.statusCode}: ${text}`));
          else resolve(text);
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () =>
      req.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')),
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** The in-tree mutating plugins that change objects (the others only admit or refuse). */
function inTreePlugins(req: AdmissionRequest, obj: KubeObject): void {
  if (req.def.plural === 'pods' && req.op === 'CREATE' && !req.subresource) admitServiceAccount(obj);
}

export type MutatingAdmission = (req: AdmissionRequest) => Promise<KubeObject>;

export function mutatingAdmission(
  listConfigs: () => KubeObject[],
  getNamespace: (name: string | undefined) => KubeObject | undefined,
  options: AdmissionOptions,
): MutatingAdmission {
  return async (req) => {
    const configs = listConfigs().slice();
    configs.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
    const hooks = configs.flatMap((c) => (c as { webhooks?: Webhook[] }).webhooks ?? []);
    let current = clone(req.obj);
    inTreePlugins(req, current);
    const start = clone(current);
    const invoked: { hook: Webhook; output: KubeObject }[] = [];
    const call = async (hook: Webhook): Promise<boolean> => {
      if (!hookMatches(hook, req, current, getNamespace)) return false;
      current = await callWebhook(hook, req, current, options);
      if (!req.subresource) req.def.defaults?.(current);
      return true;
    };
    for (const hook of hooks) if (await call(hook)) invoked.push({ hook, output: clone(current) });
    // Reinvocation: once, for the IfNeeded webhooks whose output a later webhook changed.
    const again = invoked.filter(
      (i) => i.hook.reinvocationPolicy === 'IfNeeded' && !isDeepStrictEqual(i.output, current),
    );
    if (!isDeepStrictEqual(start, current)) inTreePlugins(req, current);
    for (const { hook } of again) await call(hook);
    return current;
  };
}

function hookMatches(
  hook: Webhook,
  req: AdmissionRequest,
  current: KubeObject,
  getNamespace: (name: string | undefined) => KubeObject | undefined,
): boolean {
  const { def, old } = req;
  if (!(hook.rules ?? []).some((r) => ruleMatches(r, req))) return false;
  const nsLabels =
    def.plural === 'namespaces'
      ? current.metadata?.labels
      : getNamespace(current.metadata?.namespace)?.metadata?.labels;
  if (def.namespaced || def.plural === 'namespaces') {
    if (!selectorMatches(hook.namespaceSelector, nsLabels)) return false;
  }
  // A Scale carries no labels: the object selector looks at the scaled object's.
  return (
    selectorMatches(hook.objectSelector, current.metadata?.labels) ||
    (old !== undefined && selectorMatches(hook.objectSelector, old.metadata?.labels))
  );
}

/** The Warning header value kube-apiserver sends for one warning (RFC 7234, code 299). */
export function warningHeader(text: string): string {
  return `299 - "${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

async function callWebhook(
  hook: Webhook,
  req: AdmissionRequest,
  obj: KubeObject,
  options: AdmissionOptions,
): Promise<KubeObject> {
  const { def, op, old } = req;
  const timeoutSeconds = hook.timeoutSeconds ?? 10;
  const svc = hook.clientConfig.service;
  let base = hook.clientConfig.url;
  if (!base && svc) {
    if (!options.resolveService) {
      return failed(
        hook,
        `service ${svc.namespace}/${svc.name}`,
        new Error('no resolveService given to the fake API server'),
        obj,
      );
    }
    base = options.resolveService({
      namespace: svc.namespace,
      name: svc.name,
      port: svc.port ?? 443,
      path: svc.path,
    });
  }
  if (!base)
    return failed(hook, '', new Error('webhook has neither clientConfig.url nor clientConfig.service'), obj);
  const url = new URL(base);
  url.searchParams.set('timeout', `${timeoutSeconds}s`);
  const uid = randomUUID();
  const gvk =
    req.subresource === 'scale'
      ? { group: 'autoscaling', version: 'v1', kind: 'Scale' }
      : { group: def.group, version: def.version, kind: def.kind };
  const gvr = { group: def.group, version: def.version, resource: def.plural };
  const sub = req.subresource ? { subResource: req.subresource, requestSubResource: req.subresource } : {};
  const request: Record<string, unknown> = {
    uid,
    kind: gvk,
    resource: gvr,
    ...sub,
    requestKind: gvk,
    requestResource: gvr,
    ...(obj.metadata?.name ? { name: obj.metadata.name } : {}),
    ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}),
    operation: op,
    userInfo: req.user,
    object: obj,
    oldObject: old ?? null,
    dryRun: false,
    options: { kind: op === 'CREATE' ? 'CreateOptions' : 'UpdateOptions', apiVersion: 'meta.k8s.io/v1' },
  };
  let text: string;
  try {
    text = await post(
      url.toString(),
      JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request }),
      hook.clientConfig.caBundle,
      timeoutSeconds * 1000,
    );
  } catch (err) {
    return failed(hook, url.toString(), err, obj);
  }
  let review: {
    response?: {
      uid?: string;
      allowed?: boolean;
      patch?: string;
      patchType?: string;
      warnings?: string[];
      status?: { code?: number; message?: string; reason?: string };
    };
  };
  try {
    review = JSON.parse(text) as typeof review;
  } catch (err) {
    return failed(
      hook,
      url.toString(),
      new Error(`received invalid webhook response: ${(err as Error).message}`),
      obj,
    );
  }
  const response = review.response;
  if (!response || response.uid !== uid) {
    return failed(
      hook,
      url.toString(),
      new Error(`expected response.uid="${uid}", got "${response?.uid ?? ''}"`),
      obj,
    );
  }
  for (const w of response.warnings ?? []) if (w.trim() !== '') req.warnings.push(w);
  if (!response.allowed) {
    const s = response.status ?? {};
    const message = s.message
      ? `admission webhook "${hook.name}" denied the request: ${s.message}`
      : `admission webhook "${hook.name}" denied the request without explanation`;
    throw new ApiError({
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message,
      ...(s.reason ? { reason: s.reason } : {}),
      code: s.code ?? 400,
    });
  }
  if (!response.patch) return obj;
  if (response.patchType !== 'JSONPatch') {
    return failed(hook, url.toString(), new Error(`unsupported patch type "${response.patchType}"`), obj);
  }
  // A patch that does not decode or apply is the server's own error, whatever the failurePolicy.
  try {
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as JsonPatchOp[];
    return jsonpatch.applyPatch(clone(obj), ops, true, true, true).newDocument;
  } catch (err) {
    throw errors.internal((err as Error).message.split('\n')[0]!);
  }
}

function failed(hook: Webhook, url: string, err: unknown, obj: KubeObject): KubeObject {
  if (hook.failurePolicy === 'Ignore') return obj;
  const why = err instanceof Error ? err.message : String(err);
  throw errors.internal(
    `failed calling webhook "${hook.name}": failed to call webhook: Post "${url}": ${why}`,
  );
}
