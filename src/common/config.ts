// Configuration from env and flags, validated with zod once at start. A field is named by its
// env variable and its flag; a bad value fails with both names and the accepted form.
import { z } from 'zod';
import { ConfigError, ValidationError } from './errors.js';
import { LOG_LEVELS } from './logger.js';

export interface FieldSpec<S extends z.ZodType = z.ZodType> {
  env: string;
  /** Absent for a setting read from the environment only (a secret must not sit on a command line). */
  flag?: string;
  /** Accepted form, for errors and --help: `an integer from 1 to 65535`. */
  form: string;
  help: string;
  schema: S;
}

export type ConfigSpec = Record<string, FieldSpec>;
export type ConfigOf<C extends ConfigSpec> = { [K in keyof C]: z.output<C[K]['schema']> };

/** The same setting without its flag: read from the environment (or a Secret through it) only. */
export function envOnly<S extends z.ZodType>(field: FieldSpec<S>): FieldSpec<S> {
  const { flag: _flag, ...rest } = field;
  return rest;
}

/** Helpers for the common field schemas; strings come from env and argv, so they coerce. */
export const fields = {
  port: (def: number) => z.coerce.number().int().min(0).max(65535).default(def),
  positiveInt: (def: number) => z.coerce.number().int().positive().default(def),
  number: (def: number) => z.coerce.number().finite().default(def),
  string: (def: string) => z.string().min(1).default(def),
  optionalString: () => z.string().min(1).optional(),
  boolean: (def: boolean) =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'])
      .default(def ? 'true' : 'false')
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  enumOf: <T extends readonly [string, ...string[]]>(values: T, def: T[number]) => z.enum(values).default(def),
  logLevel: () => z.enum(LOG_LEVELS).default('info'),
};

const BOOLEAN_TEXT: Readonly<Record<string, boolean>> = { true: true, '1': true, yes: true, false: false, '0': false, no: false };

/**
 * A setting declared once as a typed schema (its range and default), read from env and flags,
 * which give text: numbers and booleans are converted first (as `fields` accept them), anything
 * else goes to the schema as it is and fails there with the field's accepted form.
 */
export const fromText = {
  number: <S extends z.ZodType>(schema: S) => z.preprocess((v) => (typeof v === 'string' && v.trim() !== '' ? Number(v) : v), schema),
  boolean: <S extends z.ZodType>(schema: S) => z.preprocess((v) => (typeof v === 'string' && v in BOOLEAN_TEXT ? BOOLEAN_TEXT[v] : v), schema),
  text: <S extends z.ZodType>(schema: S) => schema,
};

/** Parse `--name value`, `--name=value` and bare boolean `--name`; positional args are returned apart. */
export function parseFlags(argv: readonly string[]): { flags: Map<string, string>; positional: string[] } {
  const flags = new Map<string, string>();
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) {
      positional.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    if (eq > 0) {
      flags.set(arg.slice(0, eq), arg.slice(eq + 1));
    } else {
      const next = argv[i + 1];
      if (next !== undefined && !next.startsWith('--')) {
        flags.set(arg, next);
        i++;
      } else {
        flags.set(arg, 'true');
      }
    }
  }
  return { flags, positional };
}

/** Build the config object: flag beats env beats default. Unknown flags are errors too. */
export function loadConfig<C extends ConfigSpec>(
  spec: C,
  env: Record<string, string | undefined>,
  argv: readonly string[],
): ConfigOf<C> {
  const { flags } = parseFlags(argv);
  const known = new Set(Object.values(spec).flatMap((f) => (f.flag ? [f.flag] : [])));
  const problems: ValidationError[] = [];
  for (const flag of flags.keys()) {
    if (!known.has(flag) && flag !== '--help') {
      problems.push(new ValidationError(flag, `one of the flags ${[...known].sort().join(', ')}`, 'unknown flag'));
    }
  }
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(spec)) {
    const fromFlag = field.flag ? flags.get(field.flag) : undefined;
    const raw = fromFlag ?? (env[field.env] === '' ? undefined : env[field.env]);
    const result = field.schema.safeParse(raw);
    if (result.success) {
      out[key] = result.data;
    } else {
      const source = fromFlag !== undefined ? `${field.flag} (env ${field.env})` : field.flag ? `${field.env} (flag ${field.flag})` : field.env;
      problems.push(new ValidationError(source, field.form, raw));
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return out as ConfigOf<C>;
}

/** The --help text for a command. */
export function helpText(command: string, summary: string, spec: ConfigSpec): string {
  const rows = Object.values(spec).map((f) => {
    const def = f.schema.safeParse(undefined);
    const shown = def.success && def.data !== undefined ? ` [default: ${String(def.data)}]` : '';
    return `  ${(f.flag ?? '(env only)').padEnd(24)} ${f.env.padEnd(30)} ${f.help}${shown}\n  ${''.padEnd(56)}accepts ${f.form}`;
  });
  return `Usage: sair ${command} [flags]\n\n${summary}\n\nFlags (each also read from the environment variable beside it):\n${rows.join('\n')}\n`;
}
