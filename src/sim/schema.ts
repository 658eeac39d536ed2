// Shared helpers for the simulator's YAML files: zod schemas whose error text is the accepted
// form, and the conversion of zod issues into ValidationErrors that name the field.
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigError, ValidationError } from '../common/errors.js';

export const num = {
  /** A finite number >= min (and <= max when given). */
  atLeast: (min: number, max?: number) => {
    const form = max === undefined ? `a number >= ${min}` : `a number from ${min} to ${max}`;
    const base = z.number({ error: form }).finite({ error: form }).min(min, { error: form });
    return max === undefined ? base : base.max(max, { error: form });
  },
  positive: () => z.number({ error: 'a number > 0' }).finite({ error: 'a number > 0' }).positive({ error: 'a number > 0' }),
  int: (min: number, max?: number) => {
    const form = max === undefined ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    const base = z.number({ error: form }).int({ error: form }).min(min, { error: form });
    return max === undefined ? base : base.max(max, { error: form });
  },
};

export const name = () =>
  z
    .string({ error: 'a name of letters, digits, "-" and "_"' })
    .regex(/^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/, { error: 'a name of letters, digits, "-" and "_"' });

function pathText(path: readonly PropertyKey[]): string {
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out === '' ? '(top level)' : out;
}

function valueAt(input: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = input;
  for (const p of path) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<PropertyKey, unknown>)[p];
  }
  return v;
}

/** Validate `input` against `schema`; every problem becomes a ValidationError named `<source>: <path>`. */
export function validate<S extends z.ZodType>(schema: S, input: unknown, source: string): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const problems = result.error.issues.flatMap((issue) => {
    if (issue.code === 'unrecognized_keys') {
      return issue.keys.map((key) => {
        const path = [...issue.path, key];
        return new ValidationError(`${source}: ${pathText(path)}`, 'a known field here (check the spelling)', valueAt(input, path) ?? null);
      });
    }
    return [new ValidationError(`${source}: ${pathText(issue.path)}`, issue.message, valueAt(input, issue.path))];
  });
  throw new ConfigError(problems);
}

/** Parse YAML text; a syntax error names the file, line and column. */
export function parseYamlText(text: string, source: string): unknown {
  try {
    return parseYaml(text);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    throw new ConfigError([new ValidationError(source, 'valid YAML', msg.split('\n')[0])]);
  }
}
