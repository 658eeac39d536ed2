// manifests/failsafe: the Deployment runs `sair failsafe` with settings it accepts, its RBAC
// grants exactly the calls the failsafe makes, and its admission policy applies to its ServiceAccount.
import { describe, expect, it } from '@jest/globals';
import path from 'node:path';
import { loadFailsafeConfig } from '../../src/cmd/failsafe.js';
import { kustomizeBuild, type ManifestObject } from '../support/manifests.js';

const objs = kustomizeBuild(path.resolve('manifests/failsafe'));
const find = (kind: string, name: string) => objs.find((o) => o.kind === kind && o.metadata.name === name) as ManifestObject & Record<string, never>;

describe('manifests/failsafe', () => {
  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
  const rules = (kind: string) => (find(kind, 'sair-failsafe') as unknown as { rules: Rule[] }).rules;

  it('runs `sair failsafe` on two replicas with env it accepts and the default 180 s delay', () => {
    const dep = find('Deployment', 'sair-failsafe') as unknown as {
      spec: { replicas: number; template: { spec: { serviceAccountName: string; containers: { args: string[]; env: { name: string; value?: string; valueFrom?: unknown }[] }[] } } };
    };
    const c = dep.spec.template.spec.containers[0]!;
    expect(dep.spec.replicas).toBe(2);
    expect(c.args).toEqual(['failsafe']);
    expect(dep.spec.template.spec.serviceAccountName).toBe('sair-failsafe');
    const env = Object.fromEntries(c.env.filter((e) => e.value !== undefined).map((e) => [e.name, e.value]));
    const cfg = loadFailsafeConfig({ ...env, SAIR_POD_NAME: 'x' }, []);
    expect(cfg.failsafeAfterSeconds).toBe(180);
    // The shard count is the policy server's own setting, not a second copy of it.
    expect(c.env.find((e) => e.name === 'SAIR_SHARDS')!.valueFrom).toEqual({ configMapKeyRef: { name: 'sair-policy', key: 'SAIR_SHARDS', optional: true } });
  });

  it('may list namespaces, HPAs and InferencePipelines, update HPAs, create Events and read Leases in sair-system, nothing more', () => {
    const cluster = rules('ClusterRole');
    expect(cluster).toEqual([
      { apiGroups: [''], resources: ['namespaces'], verbs: ['list'] },
      { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], verbs: ['list', 'update'] },
      { apiGroups: ['sair.dev'], resources: ['inferencepipelines'], verbs: ['list'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
    ]);
    expect(rules('Role')).toEqual([{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get'] }]);
    expect((find('Role', 'sair-failsafe') as unknown as { metadata: { namespace: string } }).metadata.namespace).toBe('sair-system');
  });

  it("holds the Deployment's ServiceAccount to its admission policy, which denies", () => {
    const sa = (find('Deployment', 'sair-failsafe') as unknown as { spec: { template: { spec: { serviceAccountName: string } } } }).spec.template.spec.serviceAccountName;
    const policy = find('ValidatingAdmissionPolicy', 'sair-failsafe-least-privilege') as unknown as { spec: { failurePolicy: string; matchConditions: { expression: string }[] } };
    const binding = find('ValidatingAdmissionPolicyBinding', 'sair-failsafe-least-privilege') as unknown as { spec: object };
    expect(policy.spec.failurePolicy).toBe('Fail');
    expect(policy.spec.matchConditions.map((c) => c.expression)).toEqual([`request.userInfo.username == 'system:serviceaccount:sair-system:${sa}'`]);
    expect(binding.spec).toEqual({ policyName: 'sair-failsafe-least-privilege', validationActions: ['Deny'] });
  });
});
