// Custom resources checked against their CRD's structural schema, in the real server's order:
// unknown fields pruned (kept under x-kubernetes-preserve-unknown-fields), `default`s applied,
// then OpenAPI v3 validation (types, required, enum, bounds, lengths, patterns, nullable,
// x-kubernetes-int-or-string) with the real server's per-field messages, through ajv; then, when
// the object passed, the CEL rules of `x-kubernetes-validations` (fake-apiserver/cel.ts).
// Left out: format checks, list-type/map-keys uniqueness.
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { crdRuleCauses } from './cel.js';
import type { KubeObject } from './resources.js';

export interface SchemaCause {
  field: string;
  message: string;
}

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  nullable?: boolean;
  'x-kubernetes-preserve-unknown-fields'?: boolean;
  'x-kubernetes-int-or-string'?: boolean;
  'x-kubernetes-embedded-resource'?: boolean;
  [k: string]: unknown;
};

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/** OpenAPI v3 (Kubernetes flavour) -> JSON Schema that ajv validates the same way. */
function toJsonSchema(s: Schema): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (k.startsWith('x-kubernetes-') || k === 'nullable' || k === 'format' || k === 'example') continue;
    if (k === 'properties' && isObject(v)) {
      out.properties = Object.fromEntries(
        Object.entries(v).map(([p, ps]) => [p, toJsonSchema(ps as Schema)]),
      );
    } else if ((k === 'items' || k === 'additionalProperties' || k === 'not') && isObject(v)) {
      out[k] = toJsonSchema(v as Schema);
    } else if ((k === 'allOf' || k === 'anyOf' || k === 'oneOf') && Array.isArray(v)) {
      out[k] = v.map((x) => toJsonSchema(x as Schema));
    } else out[k] = v;
  }
  if (s['x-kubernetes-int-or-string']) {
    delete out.type;
    out.anyOf = [...((out.anyOf as unknown[]) ?? []), { type: 'integer' }, { type: 'string' }];
  }
  if (s.nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
  return out;
}

/** Drops fields the schema does not specify, as the apiserver does before storing. */
function prune(value: unknown, s: Schema | undefined): void {
  if (!s) return;
  if (Array.isArray(value)) {
    for (const item of value) prune(item, s.items);
    return;
  }
  if (!isObject(value) || s['x-kubernetes-embedded-resource']) return;
  const preserve = s['x-kubernetes-preserve-unknown-fields'] === true;
  for (const key of Object.keys(value)) {
    const ps = s.properties?.[key];
    if (ps) prune(value[key], ps);
    else if (isObject(s.additionalProperties)) prune(value[key], s.additionalProperties);
    else if (!preserve && s.additionalProperties !== true) delete value[key];
  }
}

function fieldOf(instancePath: string): string {
  return instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
    .reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : acc ? `${acc}.${p}` : p), '');
}

function valueAt(obj: unknown, instancePath: string): unknown {
  let v = obj;
  for (const p of instancePath.split('/').slice(1)) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[p.replace(/~1/g, '/').replace(/~0/g, '~')];
  }
  return v;
}

function goType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

/** ajv's errors in the words of k8s.io/apiextensions-apiserver validation. */
function causeOf(e: ErrorObject, obj: unknown): SchemaCause | undefined {
  const field = fieldOf(e.instancePath);
  const v = valueAt(obj, e.instancePath);
  const shown = typeof v === 'string' ? JSON.stringify(v) : JSON.stringify(v);
  const p = e.params as Record<string, unknown>;
  switch (e.keyword) {
    case 'required':
      return {
        field: field ? `${field}.${String(p.missingProperty)}` : String(p.missingProperty),
        message: 'Required value',
      };
    case 'type':
      return {
        field,
        message: `Invalid value: "${goType(v)}": ${field} in body must be of type ${String(p.type).replace(',null', '')}: "${goType(v)}"`,
      };
    case 'enum':
      return {
        field,
        message: `Unsupported value: ${shown}: supported values: ${(p.allowedValues as unknown[]).map((x) => JSON.stringify(x)).join(', ')}`,
      };
    case 'minimum':
    case 'exclusiveMinimum':
      return {
        field,
        message: `Invalid value: ${shown}: ${field} in body should be greater than or equal to ${String(p.limit)}`,
      };
    case 'maximum':
    case 'exclusiveMaximum':
      return {
        field,
        message: `Invalid value: ${shown}: ${field} in body should be less than or equal to ${String(p.limit)}`,
      };
    case 'minLength':
      return {
        field,
        message: `Invalid value: ${shown}: ${field} in body should be at least ${String(p.limit)} chars long`,
      };
    case 'maxLength':
      return { field, message: `Too long: may not be more than ${String(p.limit)} bytes` };
    case 'minItems':
      return {
        field,
        message: `Invalid value: ${Array.isArray(v) ? v.length : 0}: ${field} in body should have at least ${String(p.limit)} items`,
      };
    case 'maxItems':
      return {
        field,
        message: `Too many: ${Array.isArray(v) ? v.length : 0}: must have at most ${String(p.limit)} items`,
      };
    case 'pattern':
      return {
        field,
        message: `Invalid value: ${shown}: ${field} in body should match '${String(p.pattern)}'`,
      };
    case 'anyOf':
    case 'oneOf':
      return undefined; // the branch errors say what was wrong
    default:
      return { field, message: `Invalid value: ${shown}: ${field} in body ${e.message ?? 'is invalid'}` };
  }
}

export interface CrSchema {
  /**
   * Prunes and defaults `obj` in place, then returns what validation found wrong (empty when
   * valid); `old` (the stored object on an update) is what transition rules see as oldSelf.
   */
  admit(obj: KubeObject, old?: KubeObject): SchemaCause[];
}

export function compileCrdSchema(openAPIV3Schema: unknown): CrSchema | undefined {
  if (!isObject(openAPIV3Schema)) return undefined;
  const root = openAPIV3Schema as Schema;
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults: true, validateFormats: false });
  const jsonSchema = toJsonSchema(root);
  // metadata is validated by the generic object-meta rules, not the CRD schema.
  jsonSchema.properties = { ...(jsonSchema.properties as object), metadata: { type: 'object' } };
  const validate: ValidateFunction = ajv.compile(jsonSchema);
  return {
    admit(obj, old) {
      const keep = { apiVersion: {}, kind: {}, metadata: { 'x-kubernetes-preserve-unknown-fields': true } };
      prune(obj, { ...root, properties: { ...root.properties, ...keep } });
      if (validate(obj)) return crdRuleCauses(root, obj, old);
      const causes = (validate.errors ?? [])
        .map((e) => causeOf(e, obj))
        .filter((c): c is SchemaCause => c !== undefined);
      const seen = new Set<string>();
      return causes.filter(
        (c) => !seen.has(`${c.field}\n${c.message}`) && seen.add(`${c.field}\n${c.message}`),
      );
    },
  };
}
