// The one JSON codec for SAIR's own files and answers: plain JSON turns Infinity (an unbounded
// P99 when requests are dropped) and NaN into null, which reads as "missing"; here they are
// written as the strings "Infinity", "-Infinity" and "NaN" and read back as numbers.

/** JSON.stringify's replacer for the same encoding (express: app.set('json replacer', jsonReplacer)). */
export const jsonReplacer = (_k: string, v: unknown): unknown => (typeof v === 'number' && !Number.isFinite(v) ? (Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity') : v);

const SPECIAL: Readonly<Record<string, number>> = { Infinity: Infinity, '-Infinity': -Infinity, NaN: NaN };

/** JSON text with non-finite numbers kept (as strings); `indent` as in JSON.stringify. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(value, jsonReplacer, indent);
}

/** Parses what toJson wrote, turning "Infinity", "-Infinity" and "NaN" back into numbers. */
export function fromJson(text: string): unknown {
  return JSON.parse(text, (_k, v: unknown) => (typeof v === 'string' && v in SPECIAL ? SPECIAL[v] : v));
}
