// TokenReview (authentication.k8s.io/v1) and SubjectAccessReview (authorization.k8s.io/v1) as
// kube-apiserver answers them (pkg/registry/authentication/tokenreview, pkg/registry/authorization/
// subjectaccessreview): create-only, never stored, validating admission run on the object; the
// answer is the request with its status filled. A TokenReview authenticates the token as a request
// bearing it would be (the fake's ServiceAccount tokens, the admin token, and without strict
// authentication any other as the admin); an unknown one is
// `authenticated` false with an error. A SubjectAccessReview is evaluated by the same RBAC
// authorizer as every request, for the user and groups in its spec. Left out: audiences, the uid
// and extra fields, nonResourceAttributes' reason text, LocalSubjectAccessReview.
import type { RequestContext } from './handlers.js';
import { authorize, type RbacObjects, type UserInfo } from './rbac.js';
import type { KubeObject, ResourceDef } from './resources.js';
import { errors } from './status.js';

export const REVIEW_RESOURCES = new Set(['tokenreviews.authentication.k8s.io', 'subjectaccessreviews.authorization.k8s.io']);

export interface ReviewDeps {
  userOfToken(token: string): UserInfo | undefined;
  rbac(): RbacObjects;
  /** Validating admission (ValidatingAdmissionPolicy) over the review, as its create runs it. */
  validate(def: ResourceDef, obj: KubeObject, ctx: RequestContext): void;
}

interface ReviewSpec {
  token?: string;
  user?: string;
  groups?: string[];
  resourceAttributes?: { namespace?: string; verb?: string; group?: string; resource?: string; subresource?: string; name?: string };
  nonResourceAttributes?: { path?: string; verb?: string };
}

export function review(def: ResourceDef, body: KubeObject, ctx: RequestContext, deps: ReviewDeps): KubeObject {
  const spec = (body.spec ?? {}) as ReviewSpec;
  const obj: KubeObject = { ...body, apiVersion: `${def.group}/${def.version}`, kind: def.kind, metadata: { ...body.metadata } };
  if (def.kind === 'TokenReview') {
    if (!spec.token) throw errors.invalid(def, '', [{ field: 'spec.token', message: 'Required value' }]);
    deps.validate(def, obj, ctx);
    const user = deps.userOfToken(spec.token);
    obj.status = user
      ? { authenticated: true, user: { username: user.username, groups: user.groups, ...(user.extra ? { extra: user.extra } : {}) } }
      : { user: {}, error: '[invalid bearer token, token lookup failed]' };
    return obj;
  }
  const attrs = spec.resourceAttributes;
  const nonResource = spec.nonResourceAttributes;
  if (!spec.user && !spec.groups?.length)
    throw errors.invalid(def, '', [{ field: 'spec.user', message: 'Invalid value: "": at least one of user or group must be specified' }]);
  if (!attrs === !nonResource)
    throw errors.invalid(def, '', [{ field: 'spec.resourceAttributes', message: 'Invalid value: "null": exactly one of nonResourceAttributes or resourceAttributes must be specified' }]);
  deps.validate(def, obj, ctx);
  const user: UserInfo = { username: spec.user ?? '', groups: spec.groups ?? [] };
  const allowed = attrs
    ? authorize(deps.rbac(), {
        user,
        verb: attrs.verb ?? '',
        group: attrs.group ?? '',
        resource: attrs.resource ?? '',
        subresource: attrs.subresource || undefined,
        namespace: attrs.namespace || undefined,
        name: attrs.name || undefined,
        path: '',
      })
    : authorize(deps.rbac(), { user, verb: nonResource?.verb ?? '', group: '', path: nonResource?.path ?? '' });
  obj.status = allowed ? { allowed: true, reason: 'RBAC: allowed by the stored bindings' } : { allowed: false };
  return obj;
}
