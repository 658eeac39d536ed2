// ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1) as kube-apiserver's
// ValidatingAdmissionPolicy plugin runs it (staging/src/k8s.io/apiserver/pkg/admission/plugin/policy/
// validating: dispatcher.go, validator.go): for every binding whose policy's matchConstraints and own
// matchResources match the request (rules, namespaceSelector, objectSelector) and whose
// matchConditions hold, each validation expression is evaluated with object, oldObject, request,
// namespaceObject and variables. A false one under the `Deny` action refuses the request:
// `<resource> "x" is forbidden: ValidatingAdmissionPolicy 'p' with binding 'b' denied request: <message>`
// (the message, or `failed expression: <expr>`), reason the validation's reason (default Invalid,
// so 422), the message also as the one cause. `Warn` turns it into a warning
// `Validation failed for ValidatingAdmissionPolicy 'p' with binding 'b': <message>`. An expression
// that errors is a denial under failurePolicy Fail (the default) and is skipped under Ignore.
// On DELETE `object` is null and `oldObject` the stored object, as for the real server's
// deleteValidation. Left out: paramKind/paramRef (a binding with a paramRef is skipped),
// auditAnnotations, the `authorizer` variable, CONNECT, type checking of the policy.
import { evaluate, toCel } from './cel.js';
import type { Operation } from './handlers.js';
import { qualifiedName, type KubeObject, type ResourceDef } from './resources.js';
import { formatLabelSelector, matchesLabels, parseLabelSelector } from './selectors.js';
import { ApiError, type StatusBody } from './status.js';

interface ResourceRule {
  apiGroups?: string[];
  apiVersions?: string[];
  operations?: string[];
  resources?: string[];
  resourceNames?: string[];
  scope?: string;
}
interface MatchResources {
  namespaceSelector?: object;
  objectSelector?: object;
  resourceRules?: ResourceRule[];
  excludeResourceRules?: ResourceRule[];
}
interface Policy {
  metadata?: { name?: string };
  spec?: {
    failurePolicy?: 'Fail' | 'Ignore';
    matchConstraints?: MatchResources;
    matchConditions?: { name: string; expression: string }[];
    variables?: { name: string; expression: string }[];
    validations?: { expression: string; message?: string; messageExpression?: string; reason?: string }[];
    paramKind?: object;
  };
}
interface Binding {
  metadata?: { name?: string };
  spec?: {
    policyName?: string;
    validationActions?: string[];
    matchResources?: MatchResources;
    paramRef?: object;
  };
}

export interface PolicyRequest {
  op: Operation;
  def: ResourceDef;
  subresource?: string;
  obj: KubeObject;
  old?: KubeObject;
  namespace?: KubeObject;
  user: { username: string; groups: string[] };
}

const CODES: Record<string, number> = {
  Invalid: 422,
  Forbidden: 403,
  Unauthorized: 401,
  BadRequest: 400,
  NotFound: 404,
  AlreadyExists: 409,
  Conflict: 409,
  RequestEntityTooLarge: 413,
};

const has = (list: string[] | undefined, v: string): boolean =>
  (list ?? []).some((x) => x === '*' || x === v);

function ruleMatches(r: ResourceRule, req: PolicyRequest): boolean {
  const { def } = req;
  const resource = req.subresource ? `${def.plural}/${req.subresource}` : def.plural;
  const resourceOk = (r.resources ?? []).some(
    (x) =>
      x === resource ||
      x === '*/*' ||
      (x === '*' && !req.subresource) ||
      (req.subresource !== undefined && (x === `${def.plural}/*` || x === `*/${req.subresource}`)),
  );
  const scope = r.scope ?? '*';
  if ((scope === 'Namespaced' && !def.namespaced) || (scope === 'Cluster' && def.namespaced)) return false;
  const name = req.obj.metadata?.name ?? '';
  return (
    resourceOk &&
    has(r.apiGroups, def.group) &&
    has(r.apiVersions, def.version) &&
    has(r.operations, req.op) &&
    (!r.resourceNames?.length || r.resourceNames.includes(name))
  );
}

function selects(selector: object | undefined, labels: Record<string, string> | undefined): boolean {
  return !selector || matchesLabels(parseLabelSelector(formatLabelSelector(selector)), labels);
}

function matches(m: MatchResources | undefined, req: PolicyRequest, requireRules: boolean): boolean {
  if (!m) return !requireRules;
  if (requireRules || m.resourceRules) {
    if (!(m.resourceRules ?? []).some((r) => ruleMatches(r, req))) return false;
  }
  if ((m.excludeResourceRules ?? []).some((r) => ruleMatches(r, req))) return false;
  if (req.def.namespaced && !selects(m.namespaceSelector, req.namespace?.metadata?.labels)) return false;
  const objLabels = req.obj.metadata?.labels;
  return (
    selects(m.objectSelector, objLabels) ||
    (req.old !== undefined && selects(m.objectSelector, req.old.metadata?.labels))
  );
}

function requestVar(req: PolicyRequest): object {
  const { def } = req;
  return {
    operation: req.op,
    name: req.obj.metadata?.name ?? '',
    namespace: req.obj.metadata?.namespace ?? '',
    kind: { group: def.group, version: def.version, kind: def.kind },
    resource: { group: def.group, version: def.version, resource: def.plural },
    subResource: req.subresource ?? '',
    userInfo: req.user,
    dryRun: false,
  };
}

function denial(req: PolicyRequest, message: string, reason: string): ApiError {
  const name = req.obj.metadata?.name ?? '';
  const status: StatusBody = {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `${qualifiedName(req.def)}${name ? ` "${name}"` : ''} is forbidden: ${message}`,
    reason,
    details: {
      name,
      ...(req.def.group ? { group: req.def.group } : {}),
      kind: req.def.plural,
      causes: [{ message }],
    },
    code: CODES[reason] ?? 400,
  };
  return new ApiError(status);
}

/**
 * `variables` as the apiserver composes them: each is evaluated when an expression first reads it,
 * once, so one that cannot be evaluated for this request (a field this kind lacks) fails only the
 * expressions that use it.
 */
function lazyVariables(list: { name: string; expression: string }[], vars: Record<string, unknown>): object {
  const variables = {};
  for (const v of list) {
    let done: { value: unknown } | { error: unknown } | undefined;
    Object.defineProperty(variables, v.name, {
      enumerable: true,
      get() {
        if (!done) {
          try {
            done = { value: evaluate(v.expression, vars) };
          } catch (error) {
            done = { error };
          }
        }
        if ('error' in done) throw done.error;
        return done.value;
      },
    });
  }
  return variables;
}

/** Runs every matching policy binding; throws the first denial, returns the warnings. */
export function runValidatingPolicies(
  policies: KubeObject[],
  bindings: KubeObject[],
  req: PolicyRequest,
): string[] {
  const warnings: string[] = [];
  const byName = new Map(policies.map((p) => [p.metadata?.name, p as Policy]));
  const sorted = (bindings as Binding[])
    .slice()
    .sort((a, b) => ((a.metadata?.name ?? '') < (b.metadata?.name ?? '') ? -1 : 1));
  for (const binding of sorted) {
    const policy = byName.get(binding.spec?.policyName);
    const spec = policy?.spec;
    if (!policy || !spec || binding.spec?.paramRef || spec.paramKind) continue;
    if (!matches(spec.matchConstraints, req, true) || !matches(binding.spec?.matchResources, req, false))
      continue;
    const vars: Record<string, unknown> = {
      object: req.op === 'DELETE' ? null : toCel(req.obj),
      oldObject: req.old ? toCel(req.old) : null,
      request: toCel(requestVar(req)),
      namespaceObject: req.namespace ? toCel(req.namespace) : null,
      params: null,
    };
    const policyName = policy.metadata?.name ?? '';
    const bindingName = binding.metadata?.name ?? '';
    const actions = binding.spec?.validationActions ?? [];
    const fail = (message: string, reason: string): void => {
      if (actions.includes('Deny'))
        throw denial(
          req,
          `ValidatingAdmissionPolicy '${policyName}' with binding '${bindingName}' denied request: ${message}`,
          reason,
        );
      if (actions.includes('Warn'))
        warnings.push(
          `Validation failed for ValidatingAdmissionPolicy '${policyName}' with binding '${bindingName}': ${message}`,
        );
    };
    try {
      vars.variables = lazyVariables(spec.variables ?? [], vars);
      if (!(spec.matchConditions ?? []).every((c) => evaluate(c.expression, vars) === true)) continue;
    } catch (err) {
      if (spec.failurePolicy !== 'Ignore') fail(`${(err as Error).message.split('\n')[0]}`, 'Invalid');
      continue;
    }
    for (const v of spec.validations ?? []) {
      let result: unknown;
      try {
        result = evaluate(v.expression, vars);
      } catch (err) {
        if (spec.failurePolicy !== 'Ignore')
          fail(
            `expression '${v.expression}' resulted in error: ${(err as Error).message.split('\n')[0]}`,
            'Invalid',
          );
        continue;
      }
      if (result === true) continue;
      let message = v.message ?? `failed expression: ${v.expression.trim()}`;
      if (v.messageExpression) {
        try {
          const m = evaluate(v.messageExpression, vars);
          if (typeof m === 'string' && m.trim() !== '') message = m;
        } catch {
          // A failing messageExpression falls back to message, as on the real server.
        }
      }
      fail(message, v.reason ?? 'Invalid');
    }
  }
  return warnings;
}
