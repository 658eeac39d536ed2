// manifests/webhook with each of its certificate components (manifests/components/certs-job and
// cert-manager): every object validates against the Kubernetes OpenAPI schema (kubernetes-models),
// every kustomization lists files that exist, and the settings the webhook needs are there.
import path from 'node:path';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { hasSchema, kustomizeBuild, validateManifest, type ManifestObject } from '../support/manifests.js';

const ROOT = path.resolve('manifests/webhook');

type Obj = ManifestObject;

const all = kustomizeBuild(ROOT, { components: ['../components/certs-job'] });
const find = (kind: string, name?: string): Obj => {
  const o = all.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind} ${name ?? ''}`);
  return o;
};

describe('manifests/webhook', () => {
  it('validates every built-in object against its schema', () => {
    expect(all.length).toBeGreaterThanOrEqual(12);
    for (const o of all) {
      if (!hasSchema(o)) throw new Error(`no schema for ${o.apiVersion} ${o.kind}`);
      expect(() => validateManifest(o)).not.toThrow();
    }
  });

  it('the validation catches a broken object', () => {
    const broken = structuredClone(find('Deployment')) as unknown as { spec: { replicas: unknown } };
    broken.spec.replicas = 'two';
    expect(() => new Deployment(broken as never).validate()).toThrow();
  });

  it('registers a pods and an autoscaling/v2 HPA webhook (CREATE, UPDATE) with the required settings, never for kube-system or sair-system', () => {
    const mwc = find('MutatingWebhookConfiguration') as unknown as { webhooks: Record<string, unknown>[] };
    expect(mwc.webhooks).toHaveLength(2);
    for (const w of mwc.webhooks) {
      expect(w).toMatchObject({
        admissionReviewVersions: ['v1'],
        sideEffects: 'None',
        timeoutSeconds: 5,
        failurePolicy: 'Ignore',
        reinvocationPolicy: 'IfNeeded',
        clientConfig: { service: { name: 'sair-webhook', namespace: 'sair-system', path: '/mutate', port: 443 } },
        namespaceSelector: {
          matchLabels: { 'sair.dev/enabled': 'true' },
          matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: ['kube-system', 'sair-system'] }],
        },
        objectSelector: { matchExpressions: [{ key: 'sair.dev/inject', operator: 'NotIn', values: ['false'] }] },
      });
    }
    expect(mwc.webhooks[0]!.rules).toEqual([{ operations: ['CREATE', 'UPDATE'], apiGroups: [''], apiVersions: ['v1'], resources: ['pods'], scope: 'Namespaced' }]);
    expect(mwc.webhooks[1]!.rules).toEqual([
      { operations: ['CREATE', 'UPDATE'], apiGroups: ['autoscaling'], apiVersions: ['v2'], resources: ['horizontalpodautoscalers'], scope: 'Namespaced' },
    ]);
  });

  it('runs 2 non-root replicas with a read-only root fs, resources, probes and the cert Secret as a directory', () => {
    const d = find('Deployment') as unknown as { spec: { replicas: number; template: { spec: Record<string, unknown> & { containers: Record<string, unknown>[]; volumes: { name: string; secret?: { secretName: string } }[] } } } };
    expect(d.spec.replicas).toBe(2);
    const pod = d.spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true });
    expect(pod.automountServiceAccountToken).toBe(false);
    const c = pod.containers[0]!;
    expect(c.securityContext).toMatchObject({ readOnlyRootFilesystem: true, allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } });
    expect(c.resources).toMatchObject({ requests: { cpu: expect.any(String), memory: expect.any(String) }, limits: { memory: expect.any(String) } });
    expect(c.readinessProbe).toMatchObject({ httpGet: { path: '/readyz' } });
    expect(c.livenessProbe).toMatchObject({ httpGet: { path: '/healthz' } });
    expect(pod.volumes).toContainEqual({ name: 'certs', secret: { secretName: 'sair-webhook-tls' } });
    expect(c.volumeMounts).toContainEqual({ name: 'certs', mountPath: '/etc/sair/webhook/certs', readOnly: true });
    expect(find('PodDisruptionBudget')).toMatchObject({ spec: { minAvailable: 1 } });
  });

  it('grants the certs job only the Secret and this one webhook configuration', () => {
    const cr = find('ClusterRole') as unknown as { rules: unknown[] };
    expect(cr.rules).toEqual([{ apiGroups: ['admissionregistration.k8s.io'], resources: ['mutatingwebhookconfigurations'], resourceNames: ['sair-webhook'], verbs: ['get', 'update'] }]);
    const role = find('Role') as unknown as { rules: { resources: string[]; verbs: string[] }[] };
    expect(role.rules.flatMap((r) => r.resources)).toEqual(['secrets', 'secrets']);
    expect(role.rules.flatMap((r) => r.verbs).sort()).toEqual(['create', 'get', 'update']);
    expect(find('ServiceAccount', 'sair-webhook')).toMatchObject({ automountServiceAccountToken: false });
    expect(all.filter((o) => o.kind.includes('Binding')).map((o) => o.metadata.name)).toEqual(['sair-certs', 'sair-certs']);
  });

  it('with the cert-manager component instead: a Certificate for the Service, the inject-ca-from annotation, no Job', () => {
    const withCertManager = kustomizeBuild(ROOT, { components: ['../components/cert-manager'] });
    const cert = withCertManager.find((o) => o.kind === 'Certificate' && o.metadata.name === 'sair-webhook') as unknown as { spec: { secretName: string; dnsNames: string[] } };
    expect(cert.spec.secretName).toBe('sair-webhook-tls');
    expect(cert.spec.dnsNames).toContain('sair-webhook.sair-system.svc');
    expect(withCertManager.find((o) => o.kind === 'MutatingWebhookConfiguration')!.metadata.annotations).toEqual({ 'cert-manager.io/inject-ca-from': 'sair-system/sair-webhook' });
    expect(withCertManager.filter((o) => ['Job', 'CronJob'].includes(o.kind) || o.metadata.name === 'sair-certs')).toEqual([]);
  });
});
