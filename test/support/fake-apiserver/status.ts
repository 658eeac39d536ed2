// metav1.Status bodies for errors, built exactly as kube-apiserver's k8s.io/apimachinery
// errors package builds them (same reasons, codes, messages and details).
import { qualifiedName, type ResourceDef } from './resources.js';

export interface StatusCause {
  reason?: string;
  message?: string;
  field?: string;
}

export interface StatusBody {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure' | 'Success';
  message?: string;
  reason?: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    uid?: string;
    causes?: StatusCause[];
    retryAfterSeconds?: number;
  };
  code: number;
}

/** Thrown inside the server; the router answers with `status` as the body and `status.code` as the HTTP code. */
export class ApiError extends Error {
  constructor(
    readonly status: StatusBody,
    readonly headers: Record<string, string> = {},
  ) {
    super(status.message);
  }
}

function failure(code: number, reason: string, message: string, details?: StatusBody['details']): StatusBody {
  const body: StatusBody = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    code,
  };
  if (details) body.details = details;
  return body;
}

function detailsFor(def: ResourceDef, name: string): NonNullable<StatusBody['details']> {
  return def.group ? { name, group: def.group, kind: def.plural } : { name, kind: def.plural };
}

export const errors = {
  notFound(def: ResourceDef, name: string): ApiError {
    return new ApiError(
      failure(404, 'NotFound', `${qualifiedName(def)} "${name}" not found`, detailsFor(def, name)),
    );
  },
  namespaceNotFound(namespace: string): ApiError {
    return new ApiError(
      failure(404, 'NotFound', `namespaces "${namespace}" not found`, {
        name: namespace,
        kind: 'namespaces',
      }),
    );
  },
  /** An unknown path: the real server's generic 404 body. */
  pathNotFound(): ApiError {
    return new ApiError(failure(404, 'NotFound', 'the server could not find the requested resource', {}));
  },
  alreadyExists(def: ResourceDef, name: string): ApiError {
    return new ApiError(
      failure(409, 'AlreadyExists', `${qualifiedName(def)} "${name}" already exists`, detailsFor(def, name)),
    );
  },
  conflict(
    def: ResourceDef,
    name: string,
    why = 'the object has been modified; please apply your changes to the latest version and try again',
  ): ApiError {
    return new ApiError(
      failure(
        409,
        'Conflict',
        `Operation cannot be fulfilled on ${qualifiedName(def)} "${name}": ${why}`,
        detailsFor(def, name),
      ),
    );
  },
  invalid(
    def: ResourceDef,
    name: string,
    causes: Required<Pick<StatusCause, 'field' | 'message'>>[],
  ): ApiError {
    const list = causes.map((c) => `${c.field}: ${c.message}`);
    const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`;
    const details = {
      name,
      ...(def.group ? { group: def.group } : {}),
      kind: def.kind,
      causes: causes.map((c) => ({ reason: reasonOfCause(c.message), message: c.message, field: c.field })),
    };
    return new ApiError(
      failure(
        422,
        'Invalid',
        `${def.kind}${def.group ? `.${def.group}` : ''} "${name}" is invalid: ${summary}`,
        details,
      ),
    );
  },
  /** admission.NewForbidden: `pods "x" is forbidden: <why>` (Pod Security and other admission plugins). */
  forbidden(def: ResourceDef, name: string, why: string): ApiError {
    const prefix = name ? `${qualifiedName(def)} "${name}"` : qualifiedName(def);
    return new ApiError(failure(403, 'Forbidden', `${prefix} is forbidden: ${why}`, detailsFor(def, name)));
  },
  /** A 422 without field causes, as a failing JSON patch `test` operation gets. */
  unprocessable(message: string): ApiError {
    return new ApiError(failure(422, 'Invalid', message));
  },
  badRequest(message: string): ApiError {
    return new ApiError(failure(400, 'BadRequest', message));
  },
  methodNotAllowed(): ApiError {
    return new ApiError(
      failure(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {}),
    );
  },
  unsupportedMediaType(accepted: string[]): ApiError {
    const message = `the body of the request was in an unknown format - accepted media types include: ${accepted.join(', ')}`;
    return new ApiError(failure(415, 'UnsupportedMediaType', message));
  },
  gone(message: string): StatusBody {
    return failure(410, 'Expired', message);
  },
  internal(message: string): ApiError {
    return new ApiError(
      failure(500, 'InternalError', `Internal error occurred: ${message}`, { causes: [{ message }] }),
    );
  },
  /**
   * A fault the test asked for: 409, 429, 500, 503 or any other code, with the body the real server
   * sends for it; a 409 or 404 on an object names it as the real Conflict and NotFound do.
   */
  injected(
    code: number,
    message: string | undefined,
    retryAfterSeconds: number,
    target?: { def: ResourceDef; name?: string },
  ): ApiError {
    const retry = { 'Retry-After': String(retryAfterSeconds) };
    switch (code) {
      case 409: {
        if (target?.name && !message) return errors.conflict(target.def, target.name);
        const why =
          'the object has been modified; please apply your changes to the latest version and try again';
        return new ApiError(failure(409, 'Conflict', message ?? `Operation cannot be fulfilled: ${why}`));
      }
      case 404:
        if (target?.name && !message) return errors.notFound(target.def, target.name);
        return new ApiError(
          failure(404, 'NotFound', message ?? 'the server could not find the requested resource', {}),
        );
      case 429: {
        const msg = message ?? 'Too many requests, please try again later.';
        return new ApiError(failure(429, 'TooManyRequests', msg, { retryAfterSeconds }), retry);
      }
      case 500:
        return errors.internal(message ?? 'injected fault');
      case 503: {
        const msg = message ?? 'the server is currently unable to handle the request';
        return new ApiError(failure(503, 'ServiceUnavailable', msg, { retryAfterSeconds }), retry);
      }
      case 403:
        return new ApiError(failure(403, 'Forbidden', message ?? 'forbidden'));
      case 504: {
        const msg = message ?? 'the server was unable to return a response in the time allotted';
        return new ApiError(failure(504, 'Timeout', msg));
      }
      default:
        return new ApiError(
          failure(code, code >= 500 ? 'InternalError' : 'BadRequest', message ?? `injected fault ${code}`),
        );
    }
  },
};

function reasonOfCause(message: string): string {
  if (message.startsWith('Required value')) return 'FieldValueRequired';
  if (message.startsWith('Invalid value')) return 'FieldValueInvalid';
  if (message.startsWith('Forbidden')) return 'FieldValueForbidden';
  if (message.startsWith('Unsupported value')) return 'FieldValueNotSupported';
  if (message.startsWith('Too long')) return 'FieldValueTooLong';
  if (message.startsWith('Too many')) return 'FieldValueTooMany';
  if (message.startsWith('Duplicate value')) return 'FieldValueDuplicate';
  if (message.startsWith('Not found')) return 'FieldValueNotFound';
  return 'FieldValueInvalid';
}

export function successStatus(
  def: ResourceDef,
  name: string,
  uid: string | undefined,
): Record<string, unknown> {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    details: { ...detailsFor(def, name), ...(uid ? { uid } : {}) },
  };
}
