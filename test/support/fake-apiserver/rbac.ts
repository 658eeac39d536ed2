// Authentication and RBAC authorization for requests that present a ServiceAccount token issued by
// the fake (tokenFor), following kube-apiserver's RBAC authorizer
// (plugin/pkg/auth/authorizer/rbac/rbac.go, pkg/apis/rbac/v1/evaluation_helpers.go) over the
// Roles, ClusterRoles, RoleBindings and ClusterRoleBindings stored in the fake: a ClusterRoleBinding
// grants everywhere, a RoleBinding (to a Role or a ClusterRole) in its namespace; a rule matches on
// verb, API group, resource or resource/subresource (`*` and `*/sub` included) and, when it lists
// resourceNames, the object's name (so create, list and watch of all are never granted by a named
// rule). The refusal is the real 403 (staging/src/k8s.io/apiserver/pkg/endpoints/handlers/
// responsewriters/errors.go): `pods "x" is forbidden: User "system:serviceaccount:ns:sa" cannot get
// resource "pods" in API group "" in the namespace "ml"` ("at the cluster scope" without one,
// `deployments/scale` for a subresource). Discovery, /version and health paths are open to every
// authenticated user (the system:discovery and system:public-info-viewer ClusterRoles).
// Left out: ClusterRole aggregation, the other built-in roles and bindings, impersonation.
import { randomBytes, randomUUID } from 'node:crypto';
import type { KubeObject } from './resources.js';
import { ApiError } from './status.js';

export interface UserInfo {
  username: string;
  groups: string[];
  /** What the authenticator adds; a token bound to a pod carries its pod and node (below). */
  extra?: Record<string, string[]>;
}

/** A ServiceAccount token projected into a pod: bound to that pod and its node, as the kubelet asks for it. */
export interface TokenBinding {
  pod: string;
  node: string;
}

export interface RequestAttributes {
  user: UserInfo;
  verb: string;
  group: string;
  /** Plural resource; undefined for a non-resource path. */
  resource?: string;
  subresource?: string;
  namespace?: string;
  name?: string;
  path: string;
}

interface PolicyRule {
  verbs?: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}
interface Subject {
  kind: string;
  name: string;
  namespace?: string;
}
interface RoleRef {
  kind: string;
  name: string;
}

export const ADMIN: UserInfo = {
  username: 'kubernetes-admin',
  groups: ['system:masters', 'system:authenticated'],
};
export const ANONYMOUS: UserInfo = { username: 'system:anonymous', groups: ['system:unauthenticated'] };

const OPEN_PATHS = [/^\/(api|apis|openapi)(\/.*)?$/, /^\/version\/?$/, /^\/(healthz|livez|readyz)$/];

/** The bearer tokens the fake has issued, each for one ServiceAccount. */
export class TokenIssuer {
  private readonly tokens = new Map<string, UserInfo>();

  issue(namespace: string, serviceAccount: string, boundTo?: TokenBinding): string {
    const token = `fake-sa.${namespace}.${serviceAccount}.${randomBytes(12).toString('base64url')}`;
    this.tokens.set(token, {
      username: `system:serviceaccount:${namespace}:${serviceAccount}`,
      groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      // kube-apiserver 1.30+ puts a bound token's pod and node into user.extra under these keys.
      ...(boundTo
        ? {
            extra: {
              'authentication.kubernetes.io/pod-name': [boundTo.pod],
              'authentication.kubernetes.io/pod-uid': [randomUUID()],
              'authentication.kubernetes.io/node-name': [boundTo.node],
              'authentication.kubernetes.io/node-uid': [randomUUID()],
            },
          }
        : {}),
    });
    return token;
  }

  userOf(token: string): UserInfo | undefined {
    return this.tokens.get(token);
  }
}

function subjectMatches(s: Subject, user: UserInfo, bindingNamespace: string | undefined): boolean {
  switch (s.kind) {
    case 'ServiceAccount':
      return user.username === `system:serviceaccount:${s.namespace ?? bindingNamespace}:${s.name}`;
    case 'User':
      return user.username === s.name;
    case 'Group':
      return user.groups.includes(s.name);
    default:
      return false;
  }
}

const has = (list: string[] | undefined, v: string): boolean =>
  (list ?? []).some((x) => x === '*' || x === v);

function ruleAllows(r: PolicyRule, a: RequestAttributes): boolean {
  if (!has(r.verbs, a.verb)) return false;
  if (a.resource === undefined) {
    return (r.nonResourceURLs ?? []).some(
      (u) => u === '*' || u === a.path || (u.endsWith('*') && a.path.startsWith(u.slice(0, -1))),
    );
  }
  if (!has(r.apiGroups, a.group)) return false;
  const full = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
  const resourceOk = (r.resources ?? []).some(
    (x) => x === '*' || x === full || (a.subresource !== undefined && x === `*/${a.subresource}`),
  );
  if (!resourceOk) return false;
  return !r.resourceNames?.length || (a.name !== undefined && r.resourceNames.includes(a.name));
}

export interface RbacObjects {
  roles: KubeObject[];
  clusterRoles: KubeObject[];
  roleBindings: KubeObject[];
  clusterRoleBindings: KubeObject[];
}

/** Whether RBAC (plus the open discovery paths and system:masters) allows the request. */
export function authorize(rbac: RbacObjects, a: RequestAttributes): boolean {
  if (a.user.groups.includes('system:masters')) return true;
  if (a.resource === undefined && a.verb === 'get' && OPEN_PATHS.some((p) => p.test(a.path))) {
    return (
      a.user.groups.includes('system:authenticated') || /^\/(version\/?|healthz|livez|readyz)$/.test(a.path)
    );
  }
  const rulesOf = (ref: RoleRef, namespace: string | undefined): PolicyRule[] => {
    const role =
      ref.kind === 'ClusterRole'
        ? rbac.clusterRoles.find((r) => r.metadata?.name === ref.name)
        : rbac.roles.find((r) => r.metadata?.name === ref.name && r.metadata?.namespace === namespace);
    return (role?.rules as PolicyRule[] | undefined) ?? [];
  };
  const granted = (b: KubeObject, namespace: string | undefined): boolean =>
    ((b.subjects as Subject[] | undefined) ?? []).some((s) => subjectMatches(s, a.user, namespace)) &&
    rulesOf(b.roleRef as RoleRef, namespace).some((r) => ruleAllows(r, a));
  if (rbac.clusterRoleBindings.some((b) => granted(b, undefined))) return true;
  if (a.namespace === undefined) return false;
  return rbac.roleBindings.some((b) => b.metadata?.namespace === a.namespace && granted(b, a.namespace));
}

/** The 403 the authorization filter answers with. */
export function forbidden(a: RequestAttributes): ApiError {
  let message: string;
  let qualified = '';
  if (a.resource === undefined) {
    message = `User "${a.user.username}" cannot ${a.verb} path "${a.path}"`;
  } else {
    const resource = a.subresource ? `${a.resource}/${a.subresource}` : a.resource;
    const where = a.namespace ? `in the namespace "${a.namespace}"` : 'at the cluster scope';
    message = `User "${a.user.username}" cannot ${a.verb} resource "${resource}" in API group "${a.group}" ${where}`;
    qualified = a.group ? `${a.resource}.${a.group}` : a.resource;
  }
  const prefix = !qualified
    ? 'forbidden'
    : a.name
      ? `${qualified} "${a.name}" is forbidden`
      : `${qualified} is forbidden`;
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${prefix}: ${message}`,
    reason: 'Forbidden',
    details: {
      ...(a.name ? { name: a.name } : {}),
      ...(a.group ? { group: a.group } : {}),
      ...(a.resource ? { kind: a.resource } : {}),
    },
    code: 403,
  });
}

export function unauthorized(): ApiError {
  return new ApiError({
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: 'Unauthorized',
    reason: 'Unauthorized',
    code: 401,
  });
}
