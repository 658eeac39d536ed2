// Mutating admission as kube-apiserver runs it: for every MutatingWebhookConfiguration stored in
// the fake (in name order, webhooks in order), a webhook whose rules, namespaceSelector and
// objectSelector match is called with an AdmissionReview v1 over HTTPS (its caBundle trusted,
// `?timeout=Ns` appended to the URL), and the JSONPatch it returns is applied. A denial becomes the
// real Status ("admission webhook \"x\" denied the request: ..."); a failed call obeys failurePolicy.
// Left out: reinvocation, matchPolicy Equivalent, matchConditions, validating webhooks.
import { randomUUID } from 'node:crypto';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import jsonpatch from 'fast-json-patch';
import type { Operation as JsonPatchOp } from 'fast-json-patch';
import type { AdmissionHook, Operation } from './handlers.js';
import { apiVersionOf, clone, type KubeObject, type ResourceDef } from './resources.js';
import { formatLabelSelector, matchesLabels, parseLabelSelector } from './selectors.js';
import { ApiError, errors } from './status.js';

export interface AdmissionOptions {
  /** Where a webhook's `clientConfig.service` is reachable from the test (e.g. https://127.0.0.1:PORT). */
  resolveService?: (svc: { namespace: string; name: string; port: number; path?: string }) => string;
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
}

function has(list: string[] | undefined, value: string): boolean {
  return (list ?? []).some((v) => v === '*' || v === value);
}

function ruleMatches(rule: Rule, op: Operation, def: ResourceDef): boolean {
  const scope = rule.scope ?? '*';
  if (scope === 'Namespaced' && !def.namespaced) return false;
  if (scope === 'Cluster' && def.namespaced) return false;
  return (
    has(rule.operations, op) &&
    has(rule.apiGroups, def.group) &&
    has(rule.apiVersions, def.version) &&
    (has(rule.resources, def.plural) || (rule.resources ?? []).includes('*/*'))
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

export function admissionHook(
  listConfigs: () => object,
  getNamespace: (name: string | undefined) => KubeObject | undefined,
  options: AdmissionOptions,
): AdmissionHook {
  return async (op, def, obj, old) => {
    const configs = ((listConfigs() as { items: KubeObject[] }).items ?? []).slice();
    configs.sort((a, b) => (a.metadata!.name! < b.metadata!.name! ? -1 : 1));
    let current = obj;
    for (const config of configs) {
      for (const hook of (config as { webhooks?: Webhook[] }).webhooks ?? []) {
        if (!(hook.rules ?? []).some((r) => ruleMatches(r, op, def))) continue;
        const nsLabels =
          def.plural === 'namespaces'
            ? current.metadata?.labels
            : getNamespace(current.metadata?.namespace)?.metadata?.labels;
        if (def.namespaced || def.plural === 'namespaces') {
          if (!selectorMatches(hook.namespaceSelector, nsLabels)) continue;
        }
        const objectMatches =
          selectorMatches(hook.objectSelector, current.metadata?.labels) ||
          (old !== undefined && selectorMatches(hook.objectSelector, old.metadata?.labels));
        if (!objectMatches) continue;
        current = await callWebhook(hook, op, def, current, old, options);
      }
    }
    return current;
  };
}

async function callWebhook(
  hook: Webhook,
  op: Operation,
  def: ResourceDef,
  obj: KubeObject,
  old: KubeObject | undefined,
  options: AdmissionOptions,
): Promise<KubeObject> {
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
  const gvk = { group: def.group, version: def.version, kind: def.kind };
  const gvr = { group: def.group, version: def.version, resource: def.plural };
  const request: Record<string, unknown> = {
    uid,
    kind: gvk,
    resource: gvr,
    requestKind: gvk,
    requestResource: gvr,
    ...(obj.metadata?.name ? { name: obj.metadata.name } : {}),
    ...(obj.metadata?.namespace ? { namespace: obj.metadata.namespace } : {}),
    operation: op,
    userInfo: { username: 'kubernetes-admin', groups: ['system:masters', 'system:authenticated'] },
    object: { ...obj, apiVersion: apiVersionOf(def), kind: def.kind },
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
  try {
    const ops = JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as JsonPatchOp[];
    return jsonpatch.applyPatch(clone(obj), ops, true, true, true).newDocument;
  } catch (err) {
    return failed(
      hook,
      url.toString(),
      new Error(`JSON patch from the webhook could not be applied: ${(err as Error).message}`),
      obj,
    );
  }
}

function failed(hook: Webhook, url: string, err: unknown, obj: KubeObject): KubeObject {
  if (hook.failurePolicy === 'Ignore') return obj;
  const why = err instanceof Error ? err.message : String(err);
  throw errors.internal(
    `failed calling webhook "${hook.name}": failed to call webhook: Post "${url}": ${why}`,
  );
}
