// manifests/: every object that `kubectl apply -k manifests/` installs validates against the
// Kubernetes schemas (kubernetes-models); the policy server's Deployment, RBAC and ConfigMap fit
// what `sair policy` needs; the InferencePipeline CRD's OpenAPI schema (through ajv) and the zod
// schema the adapter uses agree on sample objects.
import { describe, expect, it } from '@jest/globals';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Ajv } from 'ajv';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { loadPolicyConfig } from '../../../src/cmd/policy.js';
import { parseInferencePipeline, toPipelineSpec } from '../../../src/policy-server/k8s/pipeline-resource.js';
import { hasSchema, kustomizeBuild, readYaml, validateManifest, type ManifestObject } from '../../support/manifests.js';

type Obj = ManifestObject;

const ROOT = path.resolve('manifests');
const all = kustomizeBuild(ROOT);
const policy = kustomizeBuild(path.join(ROOT, 'policy'));
const find = (objs: Obj[], kind: string, name?: string): Obj => {
  const o = objs.find((x) => x.kind === kind && (name === undefined || x.metadata.name === name));
  if (!o) throw new Error(`no ${kind} ${name ?? ''}`);
  return o;
};

describe('manifests/kustomization.yaml', () => {
  it('installs every part: each directory with a kustomization is listed', () => {
    const top = readYaml(path.join(ROOT, 'kustomization.yaml'))[0] as unknown as { resources: string[] };
    const parts = readdirSync(ROOT).filter((d) => existsSync(path.join(ROOT, d, 'kustomization.yaml')));
    expect(parts).toEqual(expect.arrayContaining(['crds', 'policy', 'webhook']));
    for (const part of parts) expect(top.resources).toContain(part);
    expect(find(all, 'Namespace', 'sair-system')).toBeDefined();
  });

  it('validates every object against its Kubernetes schema', () => {
    expect(all.length).toBeGreaterThanOrEqual(20);
    for (const o of all) {
      if (!hasSchema(o)) throw new Error(`no schema for ${o.apiVersion} ${o.kind} (${o.metadata.name})`);
      expect(() => validateManifest(o)).not.toThrow();
    }
  });

  it('the schema validation catches broken objects', () => {
    const dep = structuredClone(find(policy, 'Deployment')) as unknown as { spec: { replicas: unknown } };
    dep.spec.replicas = 'two';
    expect(() => new Deployment(dep as never).validate()).toThrow();
    const crd = structuredClone(find(all, 'CustomResourceDefinition')) as unknown as { spec: { scope: unknown } };
    delete (crd.spec as { scope?: unknown }).scope;
    expect(() => new CustomResourceDefinition(crd as never).validate()).toThrow();
  });
});

describe('manifests/policy', () => {
  type Container = { args: string[]; image: string; env: { name: string; value?: string; valueFrom?: unknown }[]; envFrom: { configMapRef: { name: string } }[]; ports: { name: string; containerPort: number }[]; readinessProbe: { httpGet: { path: string; port: string } }; livenessProbe: { httpGet: { path: string; port: string } } };
  const dep = find(policy, 'Deployment', 'sair-policy') as unknown as { spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: { serviceAccountName: string; containers: Container[] } } } };
  const c = dep.spec.template.spec.containers[0]!;

  it('runs two replicas of `sair policy` with probes on its HTTP port and the pod name as Lease identity', () => {
    expect(dep.spec.replicas).toBe(2);
    expect(c.args).toEqual(['policy']);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http' });
    expect(c.env.find((e) => e.name === 'SAIR_POD_NAME')!.valueFrom).toEqual({ fieldRef: { fieldPath: 'metadata.name' } });
    expect(dep.spec.template.metadata.labels['sair.dev/inject']).toBe('false');
    const svc = find(policy, 'Service', 'sair-policy') as unknown as { spec: { selector: Record<string, string>; ports: { targetPort: string }[] } };
    expect(c.ports.map((p) => p.name)).toContain(svc.spec.ports[0]!.targetPort);
    for (const [k, v] of Object.entries(svc.spec.selector)) expect(dep.spec.template.metadata.labels[k]).toBe(v);
  });

  it('the ConfigMap and env are settings `sair policy` accepts', () => {
    const cm = find(policy, 'ConfigMap', c.envFrom[0]!.configMapRef.name) as unknown as { data: Record<string, string> };
    const env: Record<string, string> = { ...cm.data };
    for (const e of c.env) env[e.name] = e.value ?? 'from-downward-api';
    const cfg = loadPolicyConfig(env, []);
    expect(cfg.prometheusUrl).toBe(cm.data.SAIR_PROMETHEUS_URL);
    expect(cfg.port).toBe(8080);
    expect(cfg.leaderElection).toBe(true);
    expect(cfg.shards).toBe(6);
    // A bad value is caught the same way.
    expect(() => loadPolicyConfig({ ...env, SAIR_PROMETHEUS_TIMEOUT_MS: 'soon' }, [])).toThrow('SAIR_PROMETHEUS_TIMEOUT_MS');
  });

  type Rule = { apiGroups: string[]; resources: string[]; verbs: string[]; resourceNames?: string[] };
  const rules = (kind: string, name: string) => (find(policy, kind, name) as unknown as { rules: Rule[] }).rules;
  const allows = (rs: Rule[], group: string, resource: string, verb: string, name?: string) =>
    rs.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb) && (!r.resourceNames || (name !== undefined && r.resourceNames.includes(name))));

  it('lets only the other replica and Prometheus connect to the HTTP port (NetworkPolicy)', () => {
    type NetPol = Obj & { spec: { podSelector: { matchLabels: Record<string, string> }; policyTypes: string[]; ingress: { from: object[]; ports: { port: string }[] }[] } };
    type Dep = Obj & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: { ports: { name: string }[] }[] } } } };
    const np = find(policy, 'NetworkPolicy', 'sair-policy') as NetPol;
    const dep = find(policy, 'Deployment', 'sair-policy') as Dep;
    expect(dep.spec.template.metadata.labels).toMatchObject(np.spec.podSelector.matchLabels);
    expect(np.spec.policyTypes).toEqual(['Ingress']);
    const ports = dep.spec.template.spec.containers[0]!.ports.map((p) => p.name);
    for (const rule of np.spec.ingress) for (const p of rule.ports) expect(ports).toContain(p.port);
    expect(np.spec.ingress.flatMap((r) => r.from)).toEqual([
      { podSelector: { matchLabels: np.spec.podSelector.matchLabels } },
      { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } },
    ]);
  });

  it('grants what the adapter calls and nothing broader (least privilege)', () => {
    const cluster = rules('ClusterRole', 'sair-policy');
    const needed: [string, string, string][] = [
      ['', 'namespaces', 'watch'],
      ['sair.dev', 'inferencepipelines', 'watch'],
      ['sair.dev', 'inferencepipelines/status', 'patch'],
      ['apps', 'deployments', 'watch'],
      ['apps', 'deployments', 'patch'],
      ['apps', 'deployments/scale', 'get'],
      ['apps', 'deployments/scale', 'update'],
      ['autoscaling', 'horizontalpodautoscalers', 'watch'],
      ['', 'pods', 'watch'],
      ['', 'pods', 'patch'],
      ['', 'events', 'create'],
      ['', 'events', 'patch'],
    ];
    for (const [g, r, v] of needed) expect([g, r, v, allows(cluster, g, r, v)]).toEqual([g, r, v, true]);
    for (const r of cluster) {
      expect(r.verbs).not.toContain('*');
      expect(r.resources).not.toContain('*');
      expect(r.resources).not.toContain('secrets');
      expect(r.verbs).not.toContain('delete');
    }
    expect(allows(cluster, 'apps', 'deployments', 'create')).toBe(false);
    expect(allows(cluster, '', 'pods', 'create')).toBe(false);
    const ns = rules('Role', 'sair-policy');
    // Lease names depend on the shard count and the pods, so RBAC cannot list them; the admission
    // policy narrows the writes to SAIR's names (least-privilege.test.ts).
    for (const verb of ['get', 'list', 'create', 'update', 'delete']) expect(allows(ns, 'coordination.k8s.io', 'leases', verb, 'sair-policy-shard-0-of-6')).toBe(true);
    expect(allows(ns, '', 'secrets', 'get', 'sair-llm')).toBe(true);
    expect(allows(ns, '', 'secrets', 'get', 'other')).toBe(false);
    expect(allows(ns, '', 'configmaps', 'create')).toBe(true);
  });
});

describe('InferencePipeline CRD', () => {
  const crd = find(all, 'CustomResourceDefinition', 'inferencepipelines.sair.dev') as unknown as {
    spec: { versions: { name: string; subresources: Record<string, unknown>; additionalPrinterColumns: { jsonPath: string }[]; schema: { openAPIV3Schema: Record<string, unknown> } }[] };
  };
  const version = crd.spec.versions[0]!;

  /** OpenAPI v3 (Kubernetes structural schema) to JSON Schema for ajv: `nullable`, and x-kubernetes-* dropped. */
  function toJsonSchema(s: unknown): unknown {
    if (Array.isArray(s)) return s.map(toJsonSchema);
    if (!s || typeof s !== 'object') return s;
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(s)) {
      if (k.startsWith('x-kubernetes-') || k === 'nullable') continue;
      out[k] = k === 'properties' ? Object.fromEntries(Object.entries(v as object).map(([p, ps]) => [p, toJsonSchema(ps)])) : toJsonSchema(v);
    }
    if ((s as { nullable?: boolean }).nullable && typeof out.type === 'string') out.type = [out.type, 'null'];
    if (out.type === 'object' && out.properties && out.additionalProperties === undefined && !('x-kubernetes-preserve-unknown-fields' in s)) out.additionalProperties = false;
    return out;
  }
  const ajv = new Ajv({ allErrors: true, strict: true, strictTypes: false, formats: { 'date-time': true } });
  const validate = ajv.compile(toJsonSchema(version.schema.openAPIV3Schema) as object);

  const valid = {
    apiVersion: 'sair.dev/v1alpha1',
    kind: 'InferencePipeline',
    metadata: { name: 'video', namespace: 'ml' },
    spec: {
      stages: [
        { name: 'decode', deployment: 'decode', minReplicas: 1, maxReplicas: 8, metrics: { preset: 'generic' } },
        { name: 'detect', deployment: 'detect', maxReplicas: 6, upstream: ['decode'], maxBatch: 16, gpuCores: { min: 10, max: 100, step: 10 }, metrics: { preset: 'triton', selector: 'model="yolo"' } },
        { name: 'ocr', deployment: 'ocr', maxReplicas: 4, upstream: ['decode'] },
        { name: 'aggregate', deployment: 'aggregate', maxReplicas: 3, upstream: ['detect', 'ocr'], metrics: { queries: { latencyP99Ms: 'max(agg_p99_ms{namespace="{namespace}"})' } } },
      ],
      slo: { p99Ms: 800 },
      cost: { gpuHour: 2.1, replicaHour: 0.04 },
      tickSeconds: 30,
      mode: 'DryRun',
      metrics: { p99Query: 'histogram_quantile(0.99, sum by (le) (rate(e2e_bucket[1m]))) * 1000' },
      llm: { configMapRef: { name: 'sair-llm' }, secretRef: { name: 'sair-llm', key: 'apiKey' } },
    },
    status: {
      observedGeneration: 3,
      bottleneck: 1,
      bottleneckStage: 'detect',
      p99Ms: 640.5,
      sloP99Ms: 800,
      costRate: 3.21,
      replicas: '2/3/1/1',
      lastDecision: { id: 'd000001-ml/video', time: '2026-01-01T00:00:00.000Z', action: 'detect: replicas -> 3', reason: 'queue growing', applied: true },
      conditions: [{ type: 'Ready', status: 'True', reason: 'Deciding', message: 'ok', lastTransitionTime: '2026-01-01T00:00:00.000Z' }],
    },
  };
  const broken: [string, (o: typeof valid) => void][] = [
    ['no stages', (o) => ((o.spec as { stages: unknown[] }).stages = [])],
    ['a bad mode', (o) => ((o.spec as { mode: string }).mode = 'Sometimes')],
    ['an unknown metrics preset', (o) => ((o.spec.stages[0]!.metrics as { preset: string }).preset = 'tgi')],
    ['a GPU share over 100', (o) => ((o.spec.stages[1]!.gpuCores as { max: number }).max = 150)],
    ['maxReplicas 0', (o) => (o.spec.stages[0]!.maxReplicas = 0)],
    ['a maxBatch of 0', (o) => (o.spec.stages[1]!.maxBatch = 0)],
    ['an upper-case stage name', (o) => (o.spec.stages[0]!.name = 'Decode')],
    ['an SLO of 0', (o) => (o.spec.slo.p99Ms = 0)],
    ['a tick of 1 s', (o) => (o.spec.tickSeconds = 1)],
    ['an unknown spec field', (o) => ((o.spec as Record<string, unknown>).replicas = 3)],
    ['a missing deployment', (o) => delete (o.spec.stages[2] as { deployment?: string }).deployment],
  ];

  it('has the status subresource and printer columns that point into the schema', () => {
    expect(version.subresources).toEqual({ status: {} });
    const root = version.schema.openAPIV3Schema as { properties: Record<string, { properties?: Record<string, unknown> }> };
    for (const col of version.additionalPrinterColumns) {
      const parts = col.jsonPath.split('.').filter(Boolean);
      if (parts[0] === 'metadata') continue;
      let node: { properties?: Record<string, unknown> } | undefined = { properties: root.properties };
      for (const p of parts) node = node?.properties?.[p] as typeof node;
      expect([col.jsonPath, node !== undefined]).toEqual([col.jsonPath, true]);
    }
  });

  it('accepts a full sample, in the CRD schema and in the adapter', () => {
    expect(validate(valid) ? [] : validate.errors).toEqual([]);
    expect(parseInferencePipeline(valid).spec.stages).toHaveLength(4);
    // maxBatch reaches the controller's view only where it is set.
    expect(toPipelineSpec(parseInferencePipeline(valid)).stages.map((s) => s.maxBatch)).toEqual([undefined, 16, undefined, undefined]);
  });

  it.each(broken)('both refuse %s', (_what, breakIt) => {
    const o = structuredClone(valid);
    breakIt(o);
    expect(validate(o)).toBe(false);
    expect(() => parseInferencePipeline(o)).toThrow(/^spec\./);
  });

  it('the adapter also enforces what only the CEL rule and ordering express', () => {
    const o = structuredClone(valid);
    o.spec.stages[0]!.minReplicas = 9;
    expect(validate(o)).toBe(true);
    expect(() => parseInferencePipeline(o)).toThrow('spec.stages[0].maxReplicas: 8 is not maxReplicas >= minReplicas');
    const p = structuredClone(valid);
    p.spec.stages[1]!.upstream = ['aggregate'];
    expect(() => parseInferencePipeline(p)).toThrow('spec.stages[1].upstream[0]: "aggregate" is not the name of an earlier stage');
  });
});
