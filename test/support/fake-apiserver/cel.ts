// CEL for the fake API server: CRD `x-kubernetes-validations` rules and ValidatingAdmissionPolicy
// expressions, evaluated with @marcbachmann/cel-js. Chosen over @bufbuild/cel (needs protobuf
// descriptors for every type, and two more packages) and cel-js (unmaintained, chevrotain and
// ramda): it has no dependencies, evaluates plain JSON maps, supports the macros Kubernetes rules
// use (has, all, exists, exists_one, map, filter) and string functions, and compares int with
// double as cel-go does. Kubernetes' extension libraries (quantity, url, ip, lists, regex
// extensions beyond `matches`) are not there; a rule that calls one fails as an evaluation error.
import { Environment, type ParseResult } from '@marcbachmann/cel-js';

type Schema = {
  type?: string;
  properties?: Record<string, Schema>;
  additionalProperties?: Schema | boolean;
  items?: Schema;
  'x-kubernetes-validations'?: CelRule[];
  [k: string]: unknown;
};

export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
}

const env = new Environment({ unlistedVariablesAreDyn: true, homogeneousAggregateLiterals: false });
const programs = new Map<string, ParseResult>();

/** Parses once per expression; throws the parse error. */
function program(expression: string): ParseResult {
  let p = programs.get(expression);
  if (!p) programs.set(expression, (p = env.parse(expression)));
  return p;
}

export function evaluate(expression: string, vars: Record<string, unknown>): unknown {
  return program(expression)(vars);
}

/** JSON as CEL sees it: integers are int (BigInt) unless the schema says number (double). */
export function toCel(value: unknown, schema?: Schema): unknown {
  if (typeof value === 'number') {
    if (schema?.type === 'number') return value;
    return Number.isInteger(value) ? BigInt(value) : value;
  }
  if (Array.isArray(value)) return value.map((v) => toCel(v, schema?.items));
  if (value !== null && typeof value === 'object') {
    const extra = typeof schema?.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, toCel(v, schema?.properties?.[k] ?? extra)]),
    );
  }
  return value;
}

function errorText(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0]!;
}

export interface CelCause {
  field: string;
  message: string;
}

function causeFor(rule: CelRule, type: string, field: string, text: string): CelCause {
  switch (rule.reason) {
    case 'FieldValueForbidden':
      return { field, message: `Forbidden: ${text}` };
    case 'FieldValueRequired':
      return { field, message: `Required value: ${text}` };
    case 'FieldValueDuplicate':
      return { field, message: `Duplicate value: "${type}"` };
    default:
      return { field, message: `Invalid value: "${type}": ${text}` };
  }
}

function checkRules(schema: Schema, value: unknown, old: unknown, path: string): CelCause[] {
  const causes: CelCause[] = [];
  for (const rule of schema['x-kubernetes-validations'] ?? []) {
    // Transition rules (those naming oldSelf) run only on an update that had a value here.
    if (/\boldSelf\b/.test(rule.rule) && old === undefined) continue;
    const vars = { self: toCel(value, schema), oldSelf: toCel(old, schema) };
    const field = rule.fieldPath ? `${path}${rule.fieldPath.startsWith('.') ? '' : '.'}${rule.fieldPath}` : path;
    const type = schema.type ?? 'object';
    let result: unknown;
    try {
      result = evaluate(rule.rule, vars);
    } catch (err) {
      causes.push(causeFor(rule, type, field, `${errorText(err)} evaluating rule: ${rule.rule}`));
      continue;
    }
    if (result === true) continue;
    let text = rule.message ?? `failed rule: ${rule.rule}`;
    if (rule.messageExpression) {
      try {
        const m = evaluate(rule.messageExpression, vars);
        if (typeof m === 'string' && m.trim() !== '') text = m;
      } catch {
        // The real server falls back to message (or the rule) when messageExpression fails.
      }
    }
    causes.push(causeFor(rule, type, field, text));
  }
  return causes;
}

/**
 * The CRD's `x-kubernetes-validations` rules over an object that passed its OpenAPI schema, as the
 * apiextensions server's CEL validator runs them: every node with rules, `self` its value,
 * `oldSelf` the stored value at the same place (objects and map values are matched by key; list
 * items are not matched, so transition rules under lists do not run).
 */
export function crdRuleCauses(schema: Schema, value: unknown, old: unknown, path = ''): CelCause[] {
  if (value === undefined || value === null) return [];
  const causes = checkRules(schema, value, old, path || '<nil>');
  const isObj = (v: unknown): v is Record<string, unknown> =>
    v !== null && typeof v === 'object' && !Array.isArray(v);
  if (Array.isArray(value) && schema.items) {
    value.forEach((item, i) => causes.push(...crdRuleCauses(schema.items!, item, undefined, `${path}[${i}]`)));
  } else if (isObj(value)) {
    const extra = typeof schema.additionalProperties === 'object' ? schema.additionalProperties : undefined;
    for (const [k, v] of Object.entries(value)) {
      const ps = schema.properties?.[k] ?? extra;
      if (!ps) continue;
      const child = path ? `${path}.${k}` : k;
      causes.push(...crdRuleCauses(ps, v, isObj(old) ? old[k] : undefined, child));
    }
  }
  return causes;
}
