// The verbs of the fake API server over its store: get, list, create, update, patch, delete,
// deletecollection, and the status and scale subresources, with kube-apiserver's object semantics
// (uid, one global resourceVersion, creationTimestamp, generation, generateName, optimistic
// concurrency, status/spec separation, no-op updates that write nothing).
import { randomUUID, randomInt } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import { applyPatch, patchNamesResourceVersion } from './patch.js';
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

export type Operation = 'CREATE' | 'UPDATE';

/** Mutating admission: returns the object to store (possibly changed) or throws an ApiError to deny. */
export type AdmissionHook = (
  op: Operation,
  def: ResourceDef,
  obj: KubeObject,
  old: KubeObject | undefined,
) => Promise<KubeObject>;

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

export class Handlers {
  constructor(
    private readonly store: Store,
    private readonly registry: Registry,
    private readonly admit: AdmissionHook,
  ) {}

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
    if (def.prepareForCreate) def.prepareForCreate(obj);
    else if (def.status && def.custom) delete obj.status;
    obj = await this.admit('CREATE', def, obj, undefined);
    const m = obj.metadata!;
    if (!m.name && m.generateName) {
      m.name =
        m.generateName + Array.from({ length: 5 }, () => NAME_CHARS[randomInt(NAME_CHARS.length)]).join('');
    }
    this.validateName(def, m.name);
    this.checkSchema(def, obj);
    if (this.store.get(storageKey(def), m.namespace, m.name!)) throw errors.alreadyExists(def, m.name!);
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

  /** Prunes, defaults and validates a custom resource against its CRD schema; 422 when invalid. */
  private checkSchema(def: ResourceDef, obj: KubeObject): void {
    const causes = def.schema?.admit(obj) ?? [];
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
    if (rv !== undefined && rv !== '' && rv !== current.metadata!.resourceVersion)
      throw errors.conflict(def, name);
    return this.write(def, current, body, subresource, dryRun, rv ? 'conflict' : 'overwrite');
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
    if (subresource !== 'status') next = await this.admit('UPDATE', def, next, current);
    const latest = this.store.get(storageKey(def), def.namespaced ? cm.namespace : undefined, cm.name!);
    if (!latest) throw errors.notFound(def, cm.name!);
    if (latest.metadata!.resourceVersion !== cm.resourceVersion && onRace !== 'overwrite') {
      throw onRace === 'retry' ? RACED : errors.conflict(def, cm.name!);
    }
    this.checkSchema(def, next);
    if (isDeepStrictEqual(next, current)) return current;
    if (def.generation && !isDeepStrictEqual(specOf(next), specOf(current)))
      next.metadata!.generation = (cm.generation ?? 0) + 1;
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
        );
      } catch (err) {
        if (err !== RACED) throw err;
        if (attempt >= 5) throw errors.conflict(def, name);
      }
    }
  }

  /** DELETE: preconditions from DeleteOptions, then removal (namespaces take their contents with them). */
  delete(
    def: ResourceDef,
    namespace: string | undefined,
    name: string,
    options: KubeObject | undefined,
    dryRun: boolean,
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
    if (dryRun) return def.returnDeletedObject ? current : successStatus(def, name, cm.uid);
    const removed = this.store.remove(storageKey(def), def.namespaced ? namespace : undefined, name)!;
    this.afterDelete(def, removed);
    return def.returnDeletedObject ? this.present(def, removed) : successStatus(def, name, cm.uid);
  }

  deleteCollection(
    def: ResourceDef,
    namespace: string | undefined,
    opts: ListOptions,
    dryRun: boolean,
  ): object {
    const list = this.list(def, namespace, { ...opts, limit: undefined, continueToken: undefined }) as {
      items: KubeObject[];
    };
    if (!dryRun) {
      for (const item of list.items) {
        const removed = this.store.remove(storageKey(def), item.metadata?.namespace, item.metadata!.name!);
        if (removed) this.afterDelete(def, removed);
      }
    }
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
    next: KubeObject,
    dryRun: boolean,
  ): Promise<KubeObject> {
    const current = this.get(def, namespace, name);
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
    for (let attempt = 1, cur = current; ; attempt++, cur = this.get(def, namespace, name)) {
      const updated = clone(cur);
      setPath(updated as Record<string, unknown>, def.scale!.specReplicasPath, replicas ?? 0);
      try {
        await this.write(def, cur, updated, undefined, dryRun, rv ? 'conflict' : 'retry');
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
  ) {
    const scale = this.getScale(def, namespace, name);
    const patched = applyPatch(contentType, scale, body, def.custom === true) as KubeObject;
    return this.writeScale(def, namespace, name, patched, dryRun);
  }

  /** Seeds or replaces an object directly (test helper): status kept as given, watch events sent. */
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
    if (current) {
      const cur = this.present(def, current);
      m.uid = cur.metadata!.uid;
      m.creationTimestamp = cur.metadata!.creationTimestamp;
      if (def.generation) {
        const g = cur.metadata!.generation ?? 1;
        m.generation = isDeepStrictEqual(specOf(next), specOf(cur)) ? g : g + 1;
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
