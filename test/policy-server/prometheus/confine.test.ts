import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ValidationError } from '../../../src/common/errors.js';
import { confineToNamespace } from '../../../src/policy-server/prometheus/confine.js';

const confine = (q: string) => confineToNamespace(q, 'ml', 'spec.metrics.p99Query');

// Prometheus's own parser, where it is installed (`promtool`, or SAIR_PROMTOOL_BIN).
const PROMTOOL = process.env.SAIR_PROMTOOL_BIN ?? 'promtool';
const HAVE_PROMTOOL = spawnSync(PROMTOOL, ['--version']).status === 0;

/** Whether promtool parses `expr` (as a recording rule's expression). */
function parses(expr: string, dir: string): boolean {
  const file = path.join(dir, 'rule.json');
  writeFileSync(file, JSON.stringify({ groups: [{ name: 'g', rules: [{ record: 'r', expr }] }] }));
  return spawnSync(PROMTOOL, ['check', 'rules', file]).status === 0;
}

describe('confineToNamespace', () => {
  it.each([
    ['x', 'x{namespace="ml"}'],
    ['vllm:num_requests_waiting', 'vllm:num_requests_waiting{namespace="ml"}'],
    ['x{a="b"}', 'x{a="b",namespace="ml"}'],
    ['x{namespace=~".*"}', 'x{namespace="ml"}'],
    ['x{namespace!="ml",a="b"}', 'x{namespace="ml",a="b"}'],
    ['x{namespace="prod",a!~"c", namespace=~"p.*"}', 'x{namespace="ml",a!~"c"}'],
    ['{__name__="x"}', '{__name__="x",namespace="ml"}'],
    ['{a="{}"}', '{a="{}",namespace="ml"}'],
    ["x{a='}\\''}", "x{a='}\\'',namespace=\"ml\"}"],
    ['rate(x[5m])', 'rate(x{namespace="ml"}[5m])'],
    ['sum by (namespace) (rate(x{a="b"}[5m]))', 'sum by (namespace) (rate(x{a="b",namespace="ml"}[5m]))'],
    [
      'histogram_quantile(0.99, sum by (le) (rate(h_bucket{job="x"}[5m])))',
      'histogram_quantile(0.99, sum by (le) (rate(h_bucket{job="x",namespace="ml"}[5m])))',
    ],
    ['sum(rate(x[1m])) without (pod, instance)', 'sum(rate(x{namespace="ml"}[1m])) without (pod, instance)'],
    ['a / on(pod) group_left b', 'a{namespace="ml"} / on(pod) group_left b{namespace="ml"}'],
    ['a * ignoring(code) group_right(job) b', 'a{namespace="ml"} * ignoring(code) group_right(job) b{namespace="ml"}'],
    ['a > bool 1e-3 and b or c unless d', 'a{namespace="ml"} > bool 1e-3 and b{namespace="ml"} or c{namespace="ml"} unless d{namespace="ml"}'],
    ['max_over_time(x[10m:1m])', 'max_over_time(x{namespace="ml"}[10m:1m])'],
    ['deriv((sum(q))[60s:])', 'deriv((sum(q{namespace="ml"}))[60s:])'],
    ['x offset 5m', 'x{namespace="ml"} offset 5m'],
    ['rate(x[5m] offset -1h30m)', 'rate(x{namespace="ml"}[5m] offset -1h30m)'],
    ['x @ start()', 'x{namespace="ml"} @ start()'],
    ['1000 * x', '1000 * x{namespace="ml"}'],
    ['0x1F + .5 * Inf - NaN', '0x1F + .5 * Inf - NaN'],
    ['label_replace(x, "a", "$1", "b", "(.*)")', 'label_replace(x{namespace="ml"}, "a", "$1", "b", "(.*)")'],
    ['topk(5, x) or vector(0)', 'topk(5, x{namespace="ml"}) or vector(0)'],
    ['count_values("v", x)', 'count_values("v", x{namespace="ml"})'],
    ['x # y{namespace="prod"}\n+ z', 'x{namespace="ml"} # y{namespace="prod"}\n+ z{namespace="ml"}'],
    ['{"my.metric", a="b"}', '{"my.metric",a="b",namespace="ml"}'],
    ['x{"namespace"="prod"}', 'x{namespace="ml"}'],
    ['sum(by) + offset - sum{namespace="prod"}', 'sum(by{namespace="ml"}) + offset{namespace="ml"} - sum{namespace="ml"}'],
    ['sum without (pod) (x) or and', 'sum without (pod) (x{namespace="ml"}) or and{namespace="ml"}'],
    ['sum(x) by (le)', 'sum(x{namespace="ml"}) by (le)'],
    ['x atan2 y > bool start', 'x{namespace="ml"} atan2 y{namespace="ml"} > bool start{namespace="ml"}'],
    ['a unless on(pod) group_left(job) b', 'a{namespace="ml"} unless on(pod) group_left(job) b{namespace="ml"}'],
  ])('%s', (query, expected) => {
    expect(confine(query)).toBe(expected);
  });

  (HAVE_PROMTOOL ? it : it.skip)(`keeps PromQL that Prometheus parses parseable (${HAVE_PROMTOOL ? PROMTOOL : 'no promtool: skipped'})`, () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sair-confine-'));
    try {
      const queries = [
        'histogram_quantile(0.99, sum by (le) (rate(h_bucket{job="x"}[5m])))',
        'a / on(pod) group_left b',
        'a > bool 1e-3 and b or c unless d',
        'deriv((sum(q))[60s:])',
        'rate(x[5m] offset -1h30m)',
        'x @ start()',
        'label_replace(x, "a", "$1", "b", "(.*)")',
        'topk(5, x) or vector(0)',
        '{"my.metric", a="b"}',
        'sum(by) + offset - sum{namespace="prod"}',
        'sum(x) by (le)',
        'x atan2 y > bool start',
        'min(g{exported_namespace="prod",exported_pod=~"p-.*"}) or min(g{namespace="prod"})',
      ];
      let parsed = 0;
      for (const q of queries) {
        if (!parses(q, dir)) continue;
        parsed++;
        expect([q, confine(q), parses(confine(q), dir)]).toEqual([q, confine(q), true]);
      }
      expect(parsed).toBeGreaterThan(10);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('confines the device plugin series on exported_namespace where a selector names it', () => {
    expect(confine('min(g{exported_namespace="prod",exported_pod=~"p-.*"}) or min(g{namespace="prod"})')).toBe(
      'min(g{exported_namespace="ml",exported_pod=~"p-.*"}) or min(g{namespace="ml"})',
    );
    expect(confine('g{namespace!="a",exported_namespace=~".+"}')).toBe('g{namespace="ml",exported_namespace="ml"}');
  });

  it.each(['x{a="b"', 'x{a="b}', 'x{a=b}', 'x{a}', '(x', 'x)', 'x}', 'rate(x[5m)', 'label_replace(x, "a)', 'sum by (le x'])(
    'rejects %s with the field and the accepted form',
    (query) => {
      expect(() => confine(query)).toThrow(ValidationError);
      expect(() => confine(query)).toThrow(/^spec\.metrics\.p99Query: .* is not PromQL with balanced quotes/);
    },
  );
});
