// PATCH bodies, by Content-Type, as kube-apiserver applies them:
// - application/json-patch+json (RFC 6902) through fast-json-patch; a failing operation is 422.
// - application/merge-patch+json (RFC 7386): maps merge, null deletes, lists are replaced.
// - application/strategic-merge-patch+json, the common cases only: maps merge, null deletes, lists
//   of objects with a known merge key are merged by that key (containers, initContainers,
//   ephemeralContainers, env, volumes, imagePullSecrets by name; volumeMounts by mountPath; ports
//   by containerPort, or by port under a Service; conditions by type; ownerReferences by uid),
//   `$patch: delete` / `$patch: replace` directives work in maps and merged lists, finalizers merge
//   as a set; every other list is replaced. Custom resources refuse it with 415, like the real server.
// - application/apply-patch+yaml (server-side apply) is not implemented: 415, as from a server
//   without it.
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { clone } from './resources.js';
import { errors, ApiError } from './status.js';

const PATCH_TYPES = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
} as const;

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonObject = { [k: string]: Json };

function isObject(v: unknown): v is JsonObject {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function acceptedPatchTypes(custom: boolean): string[] {
  return custom
    ? [PATCH_TYPES.json, PATCH_TYPES.merge]
    : [PATCH_TYPES.json, PATCH_TYPES.merge, PATCH_TYPES.strategic];
}

/** Whether a (well-formed) PATCH body names metadata.resourceVersion: a precondition, as on the real server. */
export function patchNamesResourceVersion(body: string): boolean {
  try {
    const patch = JSON.parse(body) as unknown;
    if (Array.isArray(patch)) {
      return patch.some(
        (op) => isObject(op) && op.path === '/metadata/resourceVersion' && op.op !== 'remove',
      );
    }
    return isObject(patch) && isObject(patch.metadata) && typeof patch.metadata.resourceVersion === 'string';
  } catch {
    return false;
  }
}

/** Applies a PATCH body to `current`, returning a new object; throws ApiError with the real status. */
export function applyPatch(contentType: string, current: object, body: string, custom: boolean): object {
  const accepted = acceptedPatchTypes(custom);
  if (!accepted.includes(contentType)) throw errors.unsupportedMediaType(accepted);
  let patch: unknown;
  try {
    patch = JSON.parse(body);
  } catch (err) {
    throw errors.badRequest(`error decoding patch: ${(err as Error).message}`);
  }
  switch (contentType) {
    case PATCH_TYPES.json:
      return applyJsonPatch(current, patch);
    case PATCH_TYPES.merge:
      if (!isObject(patch))
        throw errors.badRequest('error decoding patch: merge patch must be a JSON object');
      return mergePatch(clone(current) as Json, patch) as object;
    default:
      if (!isObject(patch))
        throw errors.badRequest('error decoding patch: strategic merge patch must be a JSON object');
      return strategicMerge(clone(current) as JsonObject, patch, []);
  }
}

function applyJsonPatch(current: object, patch: unknown): object {
  if (!Array.isArray(patch))
    throw errors.badRequest('json: cannot unmarshal object into Go value of type jsonpatch.Patch');
  try {
    return jsonpatch.applyPatch(clone(current), patch as Operation[], true, true, true).newDocument;
  } catch (err) {
    if (err instanceof ApiError) throw err;
    const e = err as { name?: string; message?: string };
    if (e.name === 'TEST_OPERATION_FAILED') throw unprocessable(`testing value failed`);
    if (e.name?.startsWith('OPERATION_') && /INVALID|REQUIRED|NOT_AN_OBJECT|SEQUENCE/.test(e.name)) {
      throw errors.badRequest(`invalid JSON patch: ${String(e.message).split('\n')[0]}`);
    }
    throw unprocessable(String(e.message).split('\n')[0] ?? 'patch failed');
  }
}

/** The generic 422 the real server answers when a JSON patch cannot be applied. */
function unprocessable(cause: string): ApiError {
  const err = errors.unprocessable('the server rejected our request due to an error in our request');
  err.status.details = { causes: [{ reason: 'UnexpectedServerResponse', message: cause }] };
  return err;
}

/** RFC 7386. */
function mergePatch(target: Json, patch: Json): Json {
  if (!isObject(patch)) return clone(patch);
  const out: JsonObject = isObject(target) ? target : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k] ?? null, v);
  }
  return out;
}

/** The merge key of a list, by its field name and the field that holds it. */
function mergeKeyFor(path: string[]): string | undefined {
  const field = path[path.length - 1];
  switch (field) {
    case 'containers':
    case 'initContainers':
    case 'ephemeralContainers':
    case 'env':
    case 'volumes':
    case 'imagePullSecrets':
      return 'name';
    case 'volumeMounts':
      return 'mountPath';
    case 'volumeDevices':
      return 'devicePath';
    case 'ports':
      // Service ports merge by port; container ports by containerPort.
      return path.length === 2 && path[0] === 'spec' ? 'port' : 'containerPort';
    case 'conditions':
      return 'type';
    case 'ownerReferences':
      return 'uid';
    case 'hostAliases':
      return 'ip';
    case 'topologySpreadConstraints':
      return 'topologyKey';
    default:
      return undefined;
  }
}

const setLists = new Set(['finalizers']);

function strategicMerge(target: JsonObject, patch: JsonObject, path: string[]): JsonObject {
  if (patch.$patch === 'replace') {
    const { $patch: _, ...rest } = patch;
    return rest;
  }
  if (patch.$patch === 'delete') return {};
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$patch' || k === '$retainKeys' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      const list = target[field];
      if (Array.isArray(list) && Array.isArray(v)) target[field] = list.filter((x) => !v.includes(x));
      continue;
    }
    const childPath = [...path, k];
    if (v === null) delete target[k];
    else if (isObject(v)) target[k] = strategicMerge(isObject(target[k]) ? target[k] : {}, v, childPath);
    else if (Array.isArray(v)) target[k] = mergeList(target[k], v, childPath);
    else target[k] = v;
  }
  return target;
}

function mergeList(current: Json | undefined, patch: Json[], path: string[]): Json[] {
  const existing = Array.isArray(current) ? current : [];
  const field = path[path.length - 1]!;
  if (setLists.has(field)) return [...existing, ...patch.filter((p) => !existing.includes(p))];
  const key = mergeKeyFor(path);
  if (!key || !patch.every(isObject)) return patch.filter((p) => !(isObject(p) && p.$patch !== undefined));
  if (patch.some((p) => isObject(p) && p.$patch === 'replace')) {
    return patch.filter((p) => !(isObject(p) && p.$patch === 'replace'));
  }
  const out = existing.map((e) => clone(e));
  for (const item of patch as JsonObject[]) {
    const idx = out.findIndex((e) => isObject(e) && e[key] === item[key]);
    if (item.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
    } else if (idx >= 0) out[idx] = strategicMerge(out[idx] as JsonObject, item, path);
    else out.push(strategicMerge({}, item, path));
  }
  return out;
}
