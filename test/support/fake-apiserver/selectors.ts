// labelSelector and fieldSelector query parameters, parsed and matched with the grammar of
// k8s.io/apimachinery/pkg/labels and pkg/fields. Bad selectors fail with the real 400 messages.
import type { KubeObject } from './resources.js';
import { errors } from './status.js';

type LabelRequirement =
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | '!exists' };

export type LabelSelector = LabelRequirement[];

/** Splits on commas that are not inside parentheses. */
function splitTerms(selector: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of selector) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else current += ch;
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t !== '');
}

const keyPattern =
  /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const valuePattern = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

function checkKey(key: string, term: string): string {
  if (!keyPattern.test(key) || key.length > 317) {
    throw errors.badRequest(`unable to parse requirement: invalid label key "${key}" in "${term}"`);
  }
  return key;
}

function checkValue(value: string, term: string): string {
  if (!valuePattern.test(value) || value.length > 63) {
    throw errors.badRequest(`unable to parse requirement: invalid label value: "${value}" in "${term}"`);
  }
  return value;
}

export function parseLabelSelector(selector: string | undefined): LabelSelector {
  if (!selector) return [];
  return splitTerms(selector).map((term): LabelRequirement => {
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(term);
    if (set) {
      const values = set[3]!
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '');
      return {
        key: checkKey(set[1]!, term),
        op: set[2] as 'in' | 'notin',
        values: values.map((v) => checkValue(v, term)),
      };
    }
    const cmp = /^([^=!\s]+)\s*(==|=|!=)\s*(.*)$/.exec(term);
    if (cmp) {
      return {
        key: checkKey(cmp[1]!, term),
        op: cmp[2] === '!=' ? '!=' : '=',
        value: checkValue(cmp[3]!.trim(), term),
      };
    }
    if (term.startsWith('!')) return { key: checkKey(term.slice(1).trim(), term), op: '!exists' };
    if (/\s/.test(term) || /[<>]/.test(term)) {
      throw errors.badRequest(
        `unable to parse requirement: found '${term}', expected: in, notin, =, ==, !=, gt, lt`,
      );
    }
    return { key: checkKey(term, term), op: 'exists' };
  });
}

export function matchesLabels(selector: LabelSelector, labels: Record<string, string> | undefined): boolean {
  const l = labels ?? {};
  return selector.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case '=':
        return has && v === r.value;
      case '!=':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v!);
      case 'notin':
        return !has || !r.values.includes(v!);
      case 'exists':
        return has;
      case '!exists':
        return !has;
    }
  });
}

/** A LabelSelector object (matchLabels/matchExpressions) rendered as the query-string form, as Scale.status.selector is. */
export function formatLabelSelector(sel: unknown): string {
  if (!sel || typeof sel !== 'object') return '';
  const s = sel as {
    matchLabels?: Record<string, string>;
    matchExpressions?: { key: string; operator: string; values?: string[] }[];
  };
  const parts = Object.entries(s.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of s.matchExpressions ?? []) {
    const values = [...(e.values ?? [])].sort().join(',');
    if (e.operator === 'In') parts.push(`${e.key} in (${values})`);
    else if (e.operator === 'NotIn') parts.push(`${e.key} notin (${values})`);
    else if (e.operator === 'Exists') parts.push(e.key);
    else if (e.operator === 'DoesNotExist') parts.push(`!${e.key}`);
  }
  return parts.join(',');
}

export type FieldSelector = { field: string; op: '=' | '!='; value: string }[];

export function parseFieldSelector(selector: string | undefined, allowed: readonly string[]): FieldSelector {
  if (!selector) return [];
  return splitTerms(selector).map((term) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term);
    if (!m) throw errors.badRequest(`invalid selector: '${selector}'; can't understand '${term}'`);
    const field = m[1]!.trim();
    if (!allowed.includes(field)) {
      throw errors.badRequest(`field label not supported: ${field}`);
    }
    return { field, op: m[2] === '!=' ? '!=' : '=', value: m[3]!.trim() };
  });
}

function fieldValue(obj: KubeObject, path: string): string {
  let v: unknown = obj;
  for (const part of path.split('.')) {
    if (v === null || typeof v !== 'object') return '';
    v = (v as Record<string, unknown>)[part];
  }
  if (v === undefined || v === null) return path === 'spec.hostNetwork' ? 'false' : '';
  // The real event field set renders `source` as the component name.
  if (path === 'source' && typeof v === 'object')
    return String((v as { component?: string }).component ?? '');
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

export function matchesFields(selector: FieldSelector, obj: KubeObject): boolean {
  return selector.every((r) => (fieldValue(obj, r.field) === r.value) === (r.op === '='));
}
