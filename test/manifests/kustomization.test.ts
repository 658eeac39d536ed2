// manifests/kustomization.yaml, what `kubectl apply -k manifests/` installs: one `images:` entry
// names the image of every container, exactly one certificate component is wired (certs-job by
// default, cert-manager as the documented switch), and the optional prometheus-operator component's
// ServiceMonitors reach every part. Where kubectl is installed, test/support's kustomize build is
// checked against `kubectl kustomize` for each combination the docs name.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { containersOf, kustomizeBuild, readYaml, yamlDocs, type ManifestObject } from '../support/manifests.js';

const ROOT = path.resolve('manifests');
const top = readYaml<{ components: string[]; images: { name: string; newName: string; newTag: string }[] }>(path.join(ROOT, 'kustomization.yaml'))[0]!;
const pkg = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
const VARIANTS: Record<string, string[]> = {
  default: ['components/certs-job'],
  'cert-manager': ['components/cert-manager'],
  'certs-job + prometheus-operator': ['components/certs-job', 'components/prometheus-operator'],
  'cert-manager + prometheus-operator': ['components/cert-manager', 'components/prometheus-operator'],
  'certs-job + prometheus-operator + monitoring': ['components/certs-job', 'components/prometheus-operator', 'components/monitoring'],
};
const key = (o: ManifestObject) => `${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

describe('manifests/kustomization.yaml', () => {
  it('wires the certs-job component by default and names cert-manager and prometheus-operator as the switches', () => {
    expect(top.components).toEqual(['components/certs-job']);
    const text = readFileSync(path.join(ROOT, 'kustomization.yaml'), 'utf8');
    expect(text).toContain('# - components/cert-manager');
    expect(text).toContain('# - components/prometheus-operator');
    expect(text).toContain('# - components/monitoring');
  });

  it('one images: entry sets the image of every container, at the package version', () => {
    expect(top.images).toEqual([{ name: 'sair', newName: expect.any(String), newTag: pkg.version }]);
    for (const components of Object.values(VARIANTS)) {
      const images = kustomizeBuild(ROOT, { components }).flatMap(containersOf).map((c) => c.image);
      expect(images.length).toBeGreaterThanOrEqual(3);
      expect(new Set(images)).toEqual(new Set([`${top.images[0]!.newName}:${pkg.version}`]));
    }
  });

  it('the Secret has one writer: the certs Job and CronJob, or cert-manager, never both', () => {
    const byDefault = kustomizeBuild(ROOT);
    expect(byDefault.filter((o) => ['Job', 'CronJob'].includes(o.kind)).map((o) => o.metadata.name)).toEqual(['sair-certs', 'sair-certs-renew']);
    expect(byDefault.some((o) => o.apiVersion.startsWith('cert-manager.io/'))).toBe(false);
    const withCertManager = kustomizeBuild(ROOT, { components: VARIANTS['cert-manager'] });
    expect(withCertManager.filter((o) => o.metadata.name.startsWith('sair-certs'))).toEqual([]);
    expect(withCertManager.filter((o) => o.kind === 'Certificate').map((o) => (o['spec'] as { secretName: string }).secretName)).toContain('sair-webhook-tls');
  });

  describe('components/prometheus-operator', () => {
    const objs = kustomizeBuild(ROOT, { components: VARIANTS['certs-job + prometheus-operator'] });
    type Svc = ManifestObject & { spec: { selector: Record<string, string>; ports: { name: string; targetPort: string }[] } };
    type Monitor = ManifestObject & { spec: { selector: { matchLabels: Record<string, string> }; namespaceSelector: { matchNames: string[] }; endpoints: { port: string; honorLabels?: boolean }[] } };
    const services = objs.filter((o): o is Svc => o.kind === 'Service');
    const monitors = objs.filter((o): o is Monitor => o.kind === 'ServiceMonitor');

    it('has one ServiceMonitor per part, each selecting a Service port that exists, with honorLabels', () => {
      expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['sair-device-plugin', 'sair-policy', 'sair-webhook']);
      for (const m of monitors) {
        const svc = services.filter((s) => Object.entries(m.spec.selector.matchLabels).every(([k, v]) => s.metadata.labels?.[k] === v));
        expect(svc).toHaveLength(1);
        expect(m.spec.namespaceSelector.matchNames).toEqual([svc[0]!.metadata.namespace]);
        for (const e of m.spec.endpoints) {
          expect(svc[0]!.spec.ports.map((p) => p.name)).toContain(e.port);
          expect(e.honorLabels).toBe(true);
        }
      }
    });

    it('adds a Service that selects the device plugin pods on their metrics port', () => {
      const svc = services.find((s) => s.metadata.name === 'sair-device-plugin')!;
      const ds = objs.find((o) => o.kind === 'DaemonSet') as ManifestObject & { spec: { template: { metadata: { labels: Record<string, string> }; spec: { containers: { ports: { name: string }[] }[] } } } };
      expect(ds.spec.template.metadata.labels).toMatchObject(svc.spec.selector);
      expect(ds.spec.template.spec.containers[0]!.ports.map((p) => p.name)).toContain(svc.spec.ports[0]!.targetPort);
    });
  });

  const kubectl = (() => {
    try {
      execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore', timeout: 10_000 });
      return true;
    } catch {
      return false;
    }
  })();
  (kubectl ? it : it.skip)('builds the same objects as `kubectl kustomize`, for every documented combination', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sair-kustomize-'));
    try {
      const k = readYaml<Record<string, unknown> & { resources: string[] }>(path.join(ROOT, 'kustomization.yaml'))[0]!;
      for (const [name, components] of Object.entries(VARIANTS)) {
        writeFileSync(path.join(dir, 'kustomization.yaml'), stringify({ ...k, resources: k.resources.map((r) => path.relative(dir, path.join(ROOT, r))), components: components.map((c) => path.relative(dir, path.join(ROOT, c))) }));
        const out = execFileSync('kubectl', ['kustomize', '--load-restrictor', 'LoadRestrictionsNone', dir], { encoding: 'utf8', timeout: 30_000 });
        const real = yamlDocs(out, `kubectl kustomize (${name})`).sort((a, b) => key(a).localeCompare(key(b)));
        const ours = kustomizeBuild(ROOT, { components }).sort((a, b) => key(a).localeCompare(key(b)));
        expect(ours).toEqual(real);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
