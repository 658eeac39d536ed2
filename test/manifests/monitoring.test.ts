// components/monitoring: the PrometheusRule and the Grafana dashboard parse, and every series they
// query is one SAIR exports (a name declared in src/), so no alert waits on a metric that never
// exists and no panel stays empty because of a typo; and, where promtool is installed, that
// Prometheus's own parser accepts every rule and query.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { kustomizeBuild, readYaml, type ManifestObject } from '../support/manifests.js';

const DIR = path.resolve('manifests/components/monitoring');

type Rule = { alert: string; expr: string; for: string; labels: { severity: string }; annotations: { summary: string; description: string } };
type Dashboard = { uid: string; panels: { id: number; title: string; targets: { expr: string }[] }[] };

/** Every `sair_*` metric name declared in src/ (prom-client `name:` or a helper's first argument). */
function exported(): { names: Set<string>; histograms: Set<string> } {
  const names = new Set<string>();
  const histograms = new Set<string>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith('.ts')) {
        const text = readFileSync(p, 'utf8');
        for (const m of text.matchAll(/['"](sair_[a-z0-9_]+)['"]/g)) names.add(m[1]!);
        for (const m of text.matchAll(/new Histogram\(\{\s*name:\s*['"](sair_[a-z0-9_]+)['"]/g)) histograms.add(m[1]!);
      }
    }
  };
  walk(path.resolve('src'));
  return { names, histograms };
}

/** The metric names a PromQL expression reads: `sair_*` identifiers not followed by `(`. */
const metricsIn = (expr: string): string[] => [...expr.matchAll(/\b(sair_[a-z0-9_]+)\b(?!\s*\()/g)].map((m) => m[1]!);

describe('components/monitoring', () => {
  const rule = readYaml(path.join(DIR, 'prometheusrule.yaml'))[0] as ManifestObject & { spec: { groups: { name: string; rules: Rule[] }[] } };
  const rules = rule.spec.groups.flatMap((g) => g.rules);
  const dashboard = JSON.parse(readFileSync(path.join(DIR, 'sair-dashboard.json'), 'utf8')) as Dashboard;
  const { names, histograms } = exported();
  const isExported = (m: string): boolean =>
    names.has(m) || [...histograms].some((h) => ['_bucket', '_sum', '_count'].some((s) => m === h + s));

  it('alerts on a missing leader, the failsafe, LLM fallbacks and SLO breaches, each with a severity and what to do', () => {
    expect(rules.map((r) => r.alert)).toEqual(
      expect.arrayContaining(['SairPolicyLeaderMissing', 'SairFailsafeActive', 'SairLlmFallbacks', 'SairPipelineSloBreach']),
    );
    expect(rules.find((r) => r.alert === 'SairPolicyLeaderMissing')).toMatchObject({ for: '5m', expr: expect.stringContaining('sair_policy_leader_is_leader') });
    expect(rules.find((r) => r.alert === 'SairFailsafeActive')!.expr).toContain('sair_failsafe_active');
    expect(rules.find((r) => r.alert === 'SairLlmFallbacks')!.expr).toContain('rate(sair_policy_fallbacks_total');
    expect(rules.find((r) => r.alert === 'SairPipelineSloBreach')!.expr).toMatch(/sair_policy_pipeline_p99_seconds[\s\S]*\/[\s\S]*sair_policy_pipeline_slo_seconds/);
    for (const r of rules) {
      expect([r.alert, r.labels.severity]).toEqual([r.alert, expect.stringMatching(/^(critical|warning)$/)]);
      expect(r.for).toMatch(/^\d+m$/);
      expect(r.annotations.summary.length).toBeGreaterThan(10);
      expect(r.annotations.description.length).toBeGreaterThan(40);
    }
  });

  it('the dashboard is Grafana JSON whose panels each query something', () => {
    expect(dashboard.uid).toBe('sair-overview');
    expect(new Set(dashboard.panels.map((p) => p.id)).size).toBe(dashboard.panels.length);
    for (const p of dashboard.panels) {
      expect([p.title, p.targets.length]).toEqual([p.title, expect.any(Number)]);
      expect(p.targets.length).toBeGreaterThan(0);
    }
  });

  it('queries only series SAIR exports', () => {
    const queries = [
      ...rules.map((r) => [r.alert, r.expr] as const),
      ...rules.flatMap((r) => [...r.annotations.description.matchAll(/query "([^"]+)"/g)].map((m) => [r.alert, m[1]!] as const)),
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => [p.title, t.expr] as const)),
    ];
    for (const [where, expr] of queries) {
      const metrics = metricsIn(expr);
      expect([where, metrics.length > 0]).toEqual([where, true]);
      for (const m of metrics) expect([where, m, isExported(m)]).toEqual([where, m, true]);
    }
    // The test itself would catch a typo: a name SAIR does not declare is not exported.
    expect(isExported('sair_policy_leader_is_leadr')).toBe(false);
  });

  // Prometheus's own checker, where it is installed (`promtool` on the PATH, or
  // SAIR_PROMTOOL_BIN; Debian packages it with `prometheus`): the rule groups as Prometheus loads
  // them, and each dashboard query as a recording rule, so a PromQL or template error fails here
  // and not in the cluster. Skipped, saying so, without it.
  const promtool = process.env.SAIR_PROMTOOL_BIN ?? 'promtool';
  const havePromtool = spawnSync(promtool, ['--version']).status === 0;
  (havePromtool ? it : it.skip)(`Prometheus's promtool accepts the rules and every dashboard query (${havePromtool ? promtool : 'no promtool: skipped'})`, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sair-promtool-'));
    try {
      const recording = dashboard.panels.flatMap((p) => p.targets.map((t, i) => ({ record: `sair_dashboard:panel_${p.id}_${i}`, expr: t.expr })));
      const files = {
        'rules.json': { groups: rule.spec.groups },
        'dashboard.json': { groups: [{ name: 'dashboard', rules: recording }] },
        // A file with a mistake, so the check is seen to fail on one.
        'broken.json': { groups: [{ name: 'broken', rules: [{ alert: 'Broken', expr: 'sum(rate(sair_policy_ticks_total[5m])' }] }] },
      };
      for (const [name, content] of Object.entries(files)) writeFileSync(path.join(dir, name), JSON.stringify(content));
      const check = (name: string) => spawnSync(promtool, ['check', 'rules', path.join(dir, name)], { encoding: 'utf8' });
      for (const name of ['rules.json', 'dashboard.json']) {
        const out = check(name);
        expect([name, out.status, out.stdout + out.stderr]).toEqual([name, 0, expect.stringContaining('SUCCESS')]);
      }
      expect(check('broken.json').status).not.toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ships the dashboard as a ConfigMap the Grafana sidecar loads', () => {
    const built = kustomizeBuild(path.resolve('manifests'), { components: ['components/certs-job', 'components/prometheus-operator', 'components/monitoring'] });
    const cm = built.find((o) => o.kind === 'ConfigMap' && o.metadata.name === 'sair-grafana-dashboard') as ManifestObject & { data: Record<string, string> };
    expect(cm.metadata).toMatchObject({ namespace: 'sair-system', labels: { grafana_dashboard: '1' } });
    expect(JSON.parse(cm.data['sair-dashboard.json']!)).toEqual(dashboard);
    expect(built.find((o) => o.kind === 'PrometheusRule')?.metadata.namespace).toBe('sair-system');
  });
});
