// Structural checks of the AdmissionReview envelope and of the Pod and HPA fields the webhook
// reads. They run on every admission, so unlike a zod parse they copy nothing: a parse that
// rebuilds the whole pod cost more than the mutation itself. Each failure names the field path
// and the accepted form.

export class ShapeError extends Error {
  override readonly name = 'ShapeError';
}

type Json = Record<string, unknown>;

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

function fail(path: string, expected: string, v: unknown): never {
  if (v === undefined) throw new ShapeError(`${path}: missing; expected ${expected}`);
  if (v === '') throw new ShapeError(`${path}: empty; expected ${expected}`);
  throw new ShapeError(`${path}: expected ${expected}, got ${describe(v)}`);
}

export function object(v: unknown, path: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, 'an object', v);
  return v as Json;
}

function optionalObject(v: unknown, path: string): Json | undefined {
  return v === undefined || v === null ? undefined : object(v, path);
}

export function nonEmptyString(v: unknown, path: string): string {
  if (typeof v !== 'string' || v.length === 0) fail(path, 'a non-empty string', v);
  return v;
}

function array(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, 'an array', v);
  return v;
}

function optionalArray(v: unknown, path: string): unknown[] | undefined {
  return v === undefined || v === null ? undefined : array(v, path);
}

function stringMap(v: unknown, path: string): void {
  const m = optionalObject(v, path);
  if (!m) return;
  for (const k in m) if (typeof m[k] !== 'string') fail(`${path}[${JSON.stringify(k)}]`, 'a string', m[k]);
}

function quantityMap(v: unknown, path: string): void {
  const m = optionalObject(v, path);
  if (!m) return;
  for (const k in m) {
    const q = m[k];
    if (typeof q !== 'string' && typeof q !== 'number') fail(`${path}[${JSON.stringify(k)}]`, 'a quantity (string or number)', q);
  }
}

function named(v: unknown, path: string, more?: (item: Json, path: string) => void): void {
  const list = optionalArray(v, path);
  if (!list) return;
  for (let i = 0; i < list.length; i++) {
    const p = `${path}[${i}]`;
    const item = object(list[i], p);
    nonEmptyString(item.name, `${p}.name`);
    more?.(item, p);
  }
}

function metadata(v: unknown, path: string): void {
  const m = optionalObject(v, path);
  if (!m) return;
  stringMap(m.labels, `${path}.labels`);
  stringMap(m.annotations, `${path}.annotations`);
}

function container(c: Json, path: string): void {
  named(c.env, `${path}.env`);
  named(c.volumeMounts, `${path}.volumeMounts`, (m, p) => nonEmptyString(m.mountPath, `${p}.mountPath`));
  const r = optionalObject(c.resources, `${path}.resources`);
  if (r) {
    quantityMap(r.limits, `${path}.resources.limits`);
    quantityMap(r.requests, `${path}.resources.requests`);
  }
}

/** The fields of a Pod that mutatePod reads and writes. */
export function checkPod(v: unknown, path: string): void {
  const pod = object(v, path);
  metadata(pod.metadata, `${path}.metadata`);
  const spec = object(pod.spec, `${path}.spec`);
  const containers = array(spec.containers, `${path}.spec.containers`);
  if (containers.length === 0) throw new ShapeError(`${path}.spec.containers: empty; expected at least one container`);
  named(containers, `${path}.spec.containers`, container);
  named(spec.initContainers, `${path}.spec.initContainers`, container);
  named(spec.volumes, `${path}.spec.volumes`);
}

/** The fields of an autoscaling/v2 HorizontalPodAutoscaler that mutateHpa reads and writes. */
export function checkHpa(v: unknown, path: string): void {
  const hpa = object(v, path);
  metadata(hpa.metadata, `${path}.metadata`);
  const spec = object(hpa.spec, `${path}.spec`);
  const behavior = optionalObject(spec.behavior, `${path}.spec.behavior`);
  if (behavior) {
    for (const dir of ['scaleUp', 'scaleDown'] as const) {
      const rules = optionalObject(behavior[dir], `${path}.spec.behavior.${dir}`);
      if (rules && rules.selectPolicy !== undefined && typeof rules.selectPolicy !== 'string') {
        fail(`${path}.spec.behavior.${dir}.selectPolicy`, 'a string', rules.selectPolicy);
      }
    }
  }
}
