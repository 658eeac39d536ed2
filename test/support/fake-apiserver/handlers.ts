// The verbs of the fake API server over its store: get, list, create, update, patch, delete,
// deletecollection, and the status and scale subresources, with kube-apiserver's object semantics
// (uid, one global resourceVersion, creationTimestamp, generation, generateName, optimistic
// concurrency, status/spec separation, no-op updates that write nothing) and its write path
// (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/create.go, update.go; registry/generic/
// registry/store.go): defaulting on decode, mutating admission, the strategy's PrepareForCreate,
// name generation and validation (422), validating admission (403/422), then storage.
import { randomUUID, randomInt } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { AdmissionRequest, MutatingAdmission } from './admission.js';
import { applyPatch, patchNamesResourceVersion } from './patch.js';
import { gracePeriodOf } from './pods.js';
import type { UserInfo } from './rbac.js';
import {
  apiVersionOf,
  clone,
  defsFromCrd,
  storageKey,
  type KubeObject,
  type ResourceDef,
} from './resources.js';
import type { Registry } from './registry.js';
import {
  formatLabelSelector,
  matchesFields,
  matchesLabels,
  type FieldSelector,
  type LabelSelector,
} from './selectors.js';
import { errors, successStatus } from './status.js';
import type { Store } from './store.js';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

/** Who sent a request, and the warnings its answer carries. */
export interface RequestContext {
  user: UserInfo;
  warnings: string[];
}

/** Validating admission (Pod Security, ValidatingAdmissionPolicy): throws the denial, adds warnings. */
export type ValidatingAdmission = (req: AdmissionRequest) => void;

export interface ListOptions {
  labelSelector: LabelSelector;
  fieldSelector: FieldSelector;
  limit?: number;
  continueToken?: string;
}

const NAME_CHARS = 'bcdfghjklmnpqrstvwxz2456789';
const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Thrown by a write that lost a race and should be applied again to the newer object. */
const RACED = new Error('raced');

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function getPath(obj: unknown, path: string): unknown {
  let v = obj;
  for (const p of path.split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p];
  }
  return v;
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const parts = path.split('.');
  let v = obj;
  for (const p of parts.slice(0, -1)) {
    if (v[p] === null || typeof v[p] !== 'object') v[p] = {};
    v = v[p] as Record<string, unknown>;
  }
  v[parts[parts.length - 1]!] = value;
}

/** Everything but metadata and status: what a generation bump watches. */
function specOf(obj: KubeObject): Record<string, unknown> {
  const { metadata: _m, status: _s, apiVersion: _a, kind: _k, ...rest } = obj;
  return rest;
}

/** Whether a write bumps metadata.generation, as the resource's PrepareForUpdate decides. */
function bumpsGeneration(def: ResourceDef, next: KubeObject, current: KubeObject): boolean {
  if (!def.generation) return false;
  if (!isDeepStrictEqual(specOf(next), specOf(current))) return true;
  return (
    def.annotationsBumpGeneration === true &&
    !isDeepStrictEqual(next.metadata?.annotations ?? {}, current.metadata?.annotations ?? {})
  );
}

export class Handlers {
  /** Pods in their grace period, removed when it ends (as the kubelet's final DELETE would). */
  private readonly terminating = new Map<string, NodeJS.Timeout>();

  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly mutate: MutatingAdmission,
    private readonly validateAdmission: ValidatingAdmission,
  ) {}

  /** Stops the grace-period timers (the pods stay as they are). */
  close(): void {
    for (const t of this.terminating.values()) clearTimeout(t);
    this.terminating.clear();
  }

  /** The storage form of an object as `def` returns it: kind and apiVersion first, converted if shared. */
  present(def: ResourceDef, stored: KubeObject): KubeObject {
    const viewed = def.fromStorage ? def.fromStorage(clone(stored)) : clone(stored);
    const { apiVersion: _a, kind: _k, ...rest } = viewed;
    return { kind: def.kind, apiVersion: apiVersionOf(def), ...rest };
  }

  namespaceExists(namespace: string): boolean {
    return this.store.get('namespaces', undefined, namespace) !== undefined;
  }

  private stored(def: ResourceDef, namespace: string | undefined, name: string): KubeObject {
    const obj = this.store.get(storageKey(def), def.namespaced ? namespace : undefined, name);
    if (!obj) throw errors.notFound(def, name);
    return obj;
  }

  get(def: ResourceDef, namespace: string | undefined, name: string): KubeObject {
    return this.present(def, this.stored(def, namespace, name));
  }

  /** Every object of a resource (in one namespace or all), each as a GET returns it. */
  objects(def: ResourceDef, namespace?: string): KubeObject[] {
    return this.store
      .list(storageKey(def), def.namespaced ? namespace : undefined)
      .map((o) => this.present(def, o));
  }

  matcher(
    def: ResourceDef,
    namespace: string | undefined,
    opts: Pick<ListOptions, 'labelSelector' | 'fieldSelector'>,
    name?: string,
  ) {
    return (obj: KubeObject): boolean => {
      const meta = obj.metadata ?? {};
      if (def.namespaced && namespace !== undefined && meta.namespace !== namespace) return false;
      if (name !== undefined && meta.name !== name) return false;
      return matchesLabels(opts.labelSelector, meta.labels) && matchesFields(opts.fieldSelector, obj);
    };
  }

  list(def: ResourceDef, namespace: string | undefined, opts: ListOptions): object {
    const match = this.matcher(def, namespace, opts);
    let items = this.store.list(storageKey(def), def.namespaced ? namespace : undefined).filter(match);
    const metadata: Record<string, unknown> = { resourceVersion: String(this.store.resourceVersion) };
    if (opts.continueToken) {
      let start: string;
      try {
        start = (JSON.parse(Buffer.from(opts.continueToken, 'base64url').toString()) as { start: string })
          .start;
      } catch {
        throw errors.badRequest('continue key is not valid: illegal base64 data at input byte 0');
      }
      items = items.filter((o) => `${o.metadata?.namespace ?? ''}/${o.metadata?.name}` > start);
    }
    if (opts.limit && opts.limit > 0 && items.length > opts.limit) {
      const remaining = items.length - opts.limit;
      items = items.slice(0, opts.limit);
      const last = items[items.length - 1]!;
      metadata.continue = Buffer.from(
        JSON.stringify({
          rv: this.store.resourceVersion,
          start: `${last.metadata?.namespace ?? ''}/${last.metadata?.name}`,
        }),
      ).toString('base64url');
      metadata.remainingItemCount = remaining;
    }
    return {
      kind: `${def.kind}List`,
      apiVersion: apiVersionOf(def),
      metadata,
      // The real server omits kind/apiVersion on the items of built-in lists, but keeps them for custom resources.
      items: items.map((o) => {
        const p = this.present(def, o);
        if (def.custom) return p;
        const { kind: _k, apiVersion: _a, ...rest } = p;
        return rest;
      }),
    };
  }

  async create(
    def: ResourceDef,
    namespace: string | undefined,
    body: KubeObject,
    dryRun: boolean,
    ctx: RequestContext,
  ): Promise<KubeObject> {
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw errors.badRequest(
        `${body.kind} in version "${def.version}" cannot be handled as a ${def.kind}: no kind "${body.kind}" is registered for version "${apiVersionOf(def)}"`,
      );
    }
    let obj = clone(body);
    obj.apiVersion = apiVersionOf(def);
    obj.kind = def.kind;
    const meta = (obj.metadata ??= {});
    if (def.namespaced) {
      if (meta.namespace !== undefined && meta.namespace !== '' && meta.namespace !== namespace) {
        throw errors.badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      meta.namespace = namespace;
      if (!this.namespaceExists(namespace!)) throw errors.namespaceNotFound(namespace!);
    } else delete meta.namespace;
    def.defaults?.(obj);
    obj = await this.mutate({ op: 'CREATE', def, obj, user: ctx.user, warnings: ctx.warnings });
    if (def.prepareForCreate) def.prepareForCreate(obj);
    else if (def.status && def.custom) delete obj.status;
    const m = obj.metadata!;
    if (!m.name && m.generateName) {
      m.name =
        m.generateName + Array.from({ length: 5 }, () => NAME_CHARS[randomInt(NAME_CHARS.length)]).join('');
    }
    this.validateName(def, m.name);
    this.checkSchema(def, obj, undefined);
    if (this.store.get(storageKey(def), m.namespace, m.name!)) throw errors.alreadyExists(def, m.name!);
    this.validateAdmission({ op: 'CREATE', def, obj, user: ctx.user, warnings: ctx.warnings });
    delete m.resourceVersion;
    m.uid = randomUUID();
    m.creationTimestamp = now();
    if (def.generation) m.generation = 1;
    else delete m.generation;
    const stored = def.toStorage ? def.toStorage(obj) : obj;
    if (dryRun) return this.present(def, stored);
    this.store.put(storageKey(def), stored);
    this.afterWrite(def, stored);
    return this.present(def, stored);
  }

  /**
   * The strategy's validation: a custom resource pruned, defaulted and checked against its CRD
   * schema and rules, a built-in one by its own checks; 422 when invalid.
   */
  private checkSchema(def: ResourceDef, obj: KubeObject, old: KubeObject | undefined): void {
    const causes = [...(def.schema?.admit(obj, old) ?? []), ...(def.validate?.(obj, old) ?? [])];
    if (causes.length > 0) throw errors.invalid(def, obj.metadata?.name ?? '', causes);
  }

  private validateName(def: ResourceDef, name: string | undefined): void {
    if (!name) {
      throw errors.invalid(def, '', [
        { field: 'metadata.name', message: 'Required value: name or generateName is required' },
      ]);
    }
    if (name.length > 253 || !DNS_SUBDOMAIN.test(name)) {
      throw errors.invalid(def, name, [
        {
          field: 'metadata.name',
          message:
            `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, ` +
            `'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is ` +
            `'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
        },
      ]);
    }
  }

  /**
   * PUT on the object (`subresource` undefined) or its status. The main resource keeps the stored
   * status; the status subresource keeps everything but the status.
   */
  async update(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    body: KubeObject,
    subresource: 'status' | undefined,
    dryRun: boolean,
    ctx: RequestContext,
  ): Promise<KubeObject> {
    const bodyName = body.metadata?.name;
    if (bodyName !== undefined && bodyName !== name) {
      throw errors.badRequest(
        `the name of the object (${bodyName}) does not match the name on the URL (${name})`,
      );
    }
    if (def.namespaced && body.metadata?.namespace && body.metadata.namespace !== namespace) {
      throw errors.badRequest(
        'the namespace of the provided object does not match the namespace sent on the request',
      );
    }
    if (body.kind !== undefined && body.kind !== def.kind) {
      throw errors.badRequest(`${body.kind} in version "${def.version}" cannot be handled as a ${def.kind}`);
    }
    const current = this.get(def, namespace, name);
    const uid = body.metadata?.uid;
    if (uid !== undefined && uid !== '' && uid !== current.metadata!.uid) {
      throw errors.conflict(
        def,
        name,
        `Precondition failed: UID in precondition: ${uid}, UID in object meta: ${current.metadata!.uid}`,
      );
    }
    const rv = body.metadata?.resourceVersion;
    if (def.requireResourceVersion && (rv === undefined || rv === '')) {
      // store.go names the resource where the kind would be: leases.coordination.k8s.io "x" is invalid.
      throw errors.invalid({ ...def, kind: def.plural }, name, [
        { field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update' },
      ]);
    }
    if (rv !== undefined && rv !== '' && rv !== current.metadata!.resourceVersion)
      throw errors.conflict(def, name);
    return this.write(def, current, body, subresource, dryRun, rv ? 'conflict' : 'overwrite', ctx);
  }

  /**
   * The common tail of PUT and PATCH: `candidate` is the whole new object, in this resource's view.
   * `onRace` says what happens when another write lands while admission webhooks run: a request
   * with a resourceVersion precondition conflicts, an unconditional update wins, a patch is
   * applied again to the newer object (as the real server's GuaranteedUpdate does).
   */
  private async write(
    def: ResourceDef,
    current: KubeObject,
    candidate: KubeObject,
    subresource: 'status' | undefined,
    dryRun: boolean,
    onRace: 'conflict' | 'overwrite' | 'retry',
    ctx: RequestContext,
    admitted = false,
  ): Promise<KubeObject> {
    let next: KubeObject;
    if (subresource === 'status') {
      next = clone(current);
      if (candidate.status === undefined) delete next.status;
      else next.status = clone(candidate.status);
    } else {
      next = clone(candidate);
      if (def.status) {
        if (current.status === undefined) delete next.status;
        else next.status = clone(current.status);
      }
    }
    next.apiVersion = current.apiVersion;
    next.kind = current.kind;
    const m: Record<string, unknown> = (next.metadata ??= {});
    const cm = current.metadata!;
    for (const field of [
      'name',
      'namespace',
      'uid',
      'creationTimestamp',
      'generateName',
      'generation',
    ] as const) {
      if (cm[field] === undefined) delete m[field];
      else m[field] = cm[field];
    }
    m.resourceVersion = cm.resourceVersion;
    def.defaults?.(next);
    const req = {
      op: 'UPDATE' as const,
      def,
      subresource,
      old: current,
      user: ctx.user,
      warnings: ctx.warnings,
    };
    if (!admitted) next = await this.mutate({ ...req, obj: next });
    const latest = this.store.get(storageKey(def), def.namespaced ? cm.namespace : undefined, cm.name!);
    if (!latest) throw errors.notFound(def, cm.name!);
    if (latest.metadata!.resourceVersion !== cm.resourceVersion && onRace !== 'overwrite') {
      throw onRace === 'retry' ? RACED : errors.conflict(def, cm.name!);
    }
    this.checkSchema(def, next, current);
    if (isDeepStrictEqual(next, current)) return current;
    if (bumpsGeneration(def, next, current)) next.metadata!.generation = (cm.generation ?? 0) + 1;
    if (!admitted) this.validateAdmission({ ...req, obj: next });
    const stored = def.toStorage ? def.toStorage(next) : next;
    if (dryRun) return this.present(def, stored);
    this.store.put(storageKey(def), stored);
    this.afterWrite(def, stored);
    return this.present(def, stored);
  }

  async patch(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    contentType: string,
    body: string,
    subresource: 'status' | undefined,
    dryRun: boolean,
    ctx: RequestContext,
  ): Promise<KubeObject> {
    for (let attempt = 1; ; attempt++) {
      const current = this.get(def, namespace, name);
      const patched = applyPatch(contentType, current, body, def.custom === true) as KubeObject;
      const rv = patched.metadata?.resourceVersion;
      if (rv !== undefined && rv !== current.metadata!.resourceVersion) throw errors.conflict(def, name);
      if (patched.metadata?.name !== undefined && patched.metadata.name !== name) {
        throw errors.badRequest(
          `the name of the object (${patched.metadata.name}) does not match the name on the URL (${name})`,
        );
      }
      try {
        const precondition = patchNamesResourceVersion(body);
        return await this.write(
          def,
          current,
          patched,
          subresource,
          dryRun,
          precondition ? 'conflict' : 'retry',
          ctx,
        );
      } catch (err) {
        if (err !== RACED) throw err;
        if (attempt >= 5) throw errors.conflict(def, name);
      }
    }
  }

  /**
   * DELETE: preconditions from DeleteOptions, then removal (namespaces take their contents with
   * them). A pod on a node is deleted gracefully (staging/src/k8s.io/apiserver/pkg/registry/rest/
   * delete.go BeforeDelete): it stays, Terminating, with deletionTimestamp (now + grace period),
   * deletionGracePeriodSeconds and generation + 1, and goes when the period ends; a second DELETE
   * can only shorten the period, and gracePeriodSeconds=0 removes it at once. Validating
   * admission sees the DELETE after the preconditions, with the stored object as the old one
   * (registry/generic/registry/store.go Delete, deleteValidation).
   */
  delete(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    options: KubeObject | undefined,
    dryRun: boolean,
    ctx: RequestContext,
  ): object {
    const current = this.get(def, namespace, name);
    const pre = (options?.preconditions ?? {}) as { uid?: string; resourceVersion?: string };
    const cm = current.metadata!;
    if (pre.uid !== undefined && pre.uid !== cm.uid) {
      throw errors.conflict(
        def,
        name,
        `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cm.uid}`,
      );
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== cm.resourceVersion) {
      throw errors.conflict(
        def,
        name,
        `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cm.resourceVersion}`,
      );
    }
    this.validateAdmission({ op: 'DELETE', def, obj: current, old: current, user: ctx.user, warnings: ctx.warnings });
    const requested = options?.gracePeriodSeconds;
    const grace =
      def.plural === 'pods'
        ? gracePeriodOf(current, typeof requested === 'number' ? requested : undefined)
        : 0;
    if (grace > 0) return this.deleteGracefully(def, current, grace, dryRun);
    if (dryRun) return def.returnDeletedObject ? current : successStatus(def, name, cm.uid);
    const removed = this.store.remove(storageKey(def), def.namespaced ? namespace : undefined, name)!;
    this.afterDelete(def, removed);
    return def.returnDeletedObject ? this.present(def, removed) : successStatus(def, name, cm.uid);
  }

  private deleteGracefully(
    def: ResourceDef,
    current: KubeObject,
    grace: number,
    dryRun: boolean,
  ): KubeObject {
    const cm = current.metadata!;
    const until = Date.now() + grace * 1000;
    const set = cm.deletionTimestamp === undefined ? undefined : Date.parse(String(cm.deletionTimestamp));
    if (set !== undefined && set <= until) return current;
    const next = clone(current);
    const m = next.metadata!;
    m.deletionTimestamp = new Date(until).toISOString().replace(/\.\d{3}Z$/, 'Z');
    m.deletionGracePeriodSeconds = grace;
    if (m.generation !== undefined) m.generation += 1;
    if (dryRun) return this.present(def, next);
    this.store.put(storageKey(def), next);
    const key = `${cm.namespace}/${cm.name}`;
    clearTimeout(this.terminating.get(key));
    const timer = setTimeout(() => {
      this.terminating.delete(key);
      const latest = this.store.get(storageKey(def), cm.namespace, cm.name!);
      if (latest?.metadata?.uid !== cm.uid) return;
      const removed = this.store.remove(storageKey(def), cm.namespace, cm.name!);
      if (removed) this.afterDelete(def, removed);
    }, grace * 1000);
    timer.unref();
    this.terminating.set(key, timer);
    return this.present(def, next);
  }

  deleteCollection(
    def: ResourceDef,
    namespace: string | undefined,
    opts: ListOptions,
    dryRun: boolean,
    ctx: RequestContext,
  ): object {
    const list = this.list(def, namespace, { ...opts, limit: undefined, continueToken: undefined }) as {
      items: KubeObject[];
    };
    for (const item of list.items)
      this.delete(def, item.metadata?.namespace, item.metadata!.name!, undefined, dryRun, ctx);
    return list;
  }

  /** The autoscaling/v1 Scale of an object with a scale subresource. */
  getScale(def: ResourceDef, namespace: string | undefined, name: string): KubeObject {
    const obj = this.get(def, namespace, name);
    const scale = def.scale!;
    const m = obj.metadata!;
    const selectorPath = scale.labelSelectorPath;
    const rawSelector = selectorPath ? getPath(obj, selectorPath) : undefined;
    const selector = typeof rawSelector === 'string' ? rawSelector : formatLabelSelector(rawSelector);
    const status: Record<string, unknown> = { replicas: Number(getPath(obj, scale.statusReplicasPath) ?? 0) };
    if (selector) status.selector = selector;
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
        creationTimestamp: m.creationTimestamp,
      },
      spec: { replicas: Number(getPath(obj, scale.specReplicasPath) ?? 0) },
      status,
    };
  }

  /** PUT or PATCH of the scale subresource: `next` is the new Scale; only spec.replicas is taken. */
  async writeScale(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    body: KubeObject,
    dryRun: boolean,
    ctx: RequestContext,
  ): Promise<KubeObject> {
    const current = this.get(def, namespace, name);
    // The Scale goes through mutating admission as itself (deployments/scale, kind Scale).
    const oldScale = this.getScale(def, namespace, name);
    const candidate = { ...clone(body), apiVersion: 'autoscaling/v1', kind: 'Scale' };
    // The update handler fills the namespace from the URL (EnsureObjectNamespaceMatchesRequestNamespace).
    candidate.metadata = { ...candidate.metadata, namespace };
    const scaleReq = {
      op: 'UPDATE' as const,
      def,
      subresource: 'scale' as const,
      old: oldScale,
      user: ctx.user,
      warnings: ctx.warnings,
    };
    const next = await this.mutate({ ...scaleReq, obj: candidate });
    const rv = next.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== current.metadata!.resourceVersion)
      throw errors.conflict(def, name);
    const replicas = (next.spec as { replicas?: unknown } | undefined)?.replicas;
    if (
      replicas !== undefined &&
      (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0)
    ) {
      throw errors.invalid({ ...def, kind: 'Scale', group: 'autoscaling' }, name, [
        {
          field: 'spec.replicas',
          message: `Invalid value: ${JSON.stringify(replicas)}: must be greater than or equal to 0`,
        },
      ]);
    }
    this.validateAdmission({
      ...scaleReq,
      obj: { ...next, spec: { ...(next.spec as object), replicas: replicas ?? 0 } },
    });
    for (let attempt = 1, cur = current; ; attempt++, cur = this.get(def, namespace, name)) {
      const updated = clone(cur);
      setPath(updated as Record<string, unknown>, def.scale!.specReplicasPath, replicas ?? 0);
      try {
        await this.write(def, cur, updated, undefined, dryRun, rv ? 'conflict' : 'retry', ctx, true);
        break;
      } catch (err) {
        if (err !== RACED) throw err;
        if (attempt >= 5) throw errors.conflict(def, name);
      }
    }
    return dryRun
      ? { ...this.getScale(def, namespace, name), spec: { replicas } }
      : this.getScale(def, namespace, name);
  }

  async patchScale(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    contentType: string,
    body: string,
    dryRun: boolean,
    ctx: RequestContext,
  ) {
    const scale = this.getScale(def, namespace, name);
    const patched = applyPatch(contentType, scale, body, def.custom === true) as KubeObject;
    return this.writeScale(def, namespace, name, patched, dryRun, ctx);
  }

  /**
   * Seeds or replaces an object directly (test helper): defaulted, pruned and validated as a write
   * is (a 422 is thrown as the ApiError a client would get), but without admission; status kept as
   * given, watch events sent.
   */
  seed(def: ResourceDef, obj: KubeObject): KubeObject {
    const next = clone(obj);
    next.apiVersion = apiVersionOf(def);
    next.kind = def.kind;
    const m = (next.metadata ??= {});
    if (!m.name) throw new Error(`fake-apiserver seed: ${def.kind} needs metadata.name`);
    if (def.namespaced) {
      m.namespace ??= 'default';
      if (!this.namespaceExists(m.namespace)) {
        throw new Error(
          `fake-apiserver seed: namespace "${m.namespace}" does not exist; seed the Namespace first`,
        );
      }
    } else delete m.namespace;
    const current = this.store.get(storageKey(def), m.namespace, m.name);
    def.defaults?.(next);
    this.validateName(def, m.name);
    this.checkSchema(def, next, current && this.present(def, current));
    if (current) {
      const cur = this.present(def, current);
      m.uid = cur.metadata!.uid;
      m.creationTimestamp = cur.metadata!.creationTimestamp;
      if (def.generation) {
        const g = cur.metadata!.generation ?? 1;
        m.generation = bumpsGeneration(def, next, cur) ? g + 1 : g;
      }
    } else {
      m.uid ??= randomUUID();
      m.creationTimestamp ??= now();
      if (def.generation) m.generation ??= 1;
    }
    const stored = def.toStorage ? def.toStorage(next) : next;
    this.store.put(storageKey(def), stored);
    this.afterWrite(def, stored);
    return this.present(def, stored);
  }

  /** Removes an object directly (test helper); returns whether it existed. */
  remove(def: ResourceDef, namespace: string | undefined, name: string): boolean {
    const removed = this.store.remove(
      storageKey(def),
      def.namespaced ? (namespace ?? 'default') : undefined,
      name,
    );
    if (removed) this.afterDelete(def, removed);
    return removed !== undefined;
  }

  /** A stored CRD makes its resources servable, as the apiextensions server does. */
  private afterWrite(def: ResourceDef, stored: KubeObject): void {
    if (def.plural === 'customresourcedefinitions') this.registry.add(defsFromCrd(stored));
  }

  private afterDelete(def: ResourceDef, removed: KubeObject): void {
    if (def.plural === 'namespaces') {
      // The namespace controller deletes everything in a deleted namespace.
      const ns = removed.metadata!.name!;
      const storages = new Set(
        this.registry
          .all()
          .filter((d) => d.namespaced)
          .map(storageKey),
      );
      for (const s of storages)
        for (const o of this.store.list(s, ns)) this.store.remove(s, ns, o.metadata!.name!);
    }
    if (def.plural === 'customresourcedefinitions') {
      const served = defsFromCrd(removed);
      const first = served[0];
      if (first) {
        for (const o of this.store.list(storageKey(first)))
          this.store.remove(storageKey(first), o.metadata?.namespace, o.metadata!.name!);
        this.registry.removeGroupResource(first.group, first.plural);
      }
    }
  }
}
