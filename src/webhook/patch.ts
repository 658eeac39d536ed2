// The JSON patch (RFC 6902) an admission response carries, made by diffing the original and
// the mutated object, so no one writes patch paths (or their ~0/~1 escapes) by hand.
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';

export type { Operation };

export function diffPatch(before: object, after: object): Operation[] {
  return before === after ? [] : jsonpatch.compare(before, after);
}

/** The patch as admission.k8s.io expects it: base64 of the JSON array. */
export function encodePatch(ops: readonly Operation[]): string {
  return Buffer.from(JSON.stringify(ops)).toString('base64');
}
