// `sair simulate` end to end, in process: files written, table and matrix output, flag errors.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../src/common/errors.js';
import { parseDuration, parseSeedRange, runSimulate } from '../../src/cmd/simulate.js';
import { generateScenario } from '../../src/sim/generator.js';
import { loadPipelineFile } from '../../src/sim/pipeline.js';
import { loadWorkloadFile } from '../../src/sim/workload.js';
import { meanCi } from '../../src/common/stats.js';

function io() {
  const out: string[] = [];
  const err: string[] = [];
  return { out, err, io: { stdout: (s: string) => out.push(s), stderr: (s: string) => err.push(s), isTty: false } };
}

describe('sair simulate', () => {
  it('prints a table and writes JSON and a self-contained HTML plot', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-sim-'));
    const o = io();
    await runSimulate(['--pipeline', 'audio-qa', '--workload', 'spike', '--controller', 'hpa,oracle', '--duration', '20m', '--seed', '3', '--out', dir], {}, o.io);
    const text = o.out.join('');
    expect(text).toContain('audio-qa x spike x hpa, seed 3, 20 min simulated');
    expect(text).toMatch(/P99 [\d.]+s? ms/);
    expect(text).toContain('bottleneck detection 100.0% of');
    const json = JSON.parse(readFileSync(join(dir, 'audio-qa-spike-oracle-s3.json'), 'utf8')) as { latency: { p99Ms: number }; timeline: unknown[] };
    expect(json.latency.p99Ms).toBeGreaterThan(0);
    expect(json.timeline).toHaveLength(80);
    const html = readFileSync(join(dir, 'audio-qa-spike-hpa-s3.html'), 'utf8');
    expect(html.startsWith('<!doctype html>')).toBe(true);
    for (const title of ['Load', 'Replicas', 'GPU share', 'End-to-end P99', 'GPUs in use', 'Cost rate']) expect(html).toContain(`<h2>${title} `);
    expect((html.match(/<svg /g) ?? []).length).toBe(6);
    expect(html).toContain('packed (whole GPUs)');
    expect(text).toMatch(/cost packed \$[\d.]+ .* share-priced \$[\d.]+/);
    expect(html).not.toMatch(/<script|src="http|href="http/);
    expect(o.err.join('')).toBe('');
  }, 30_000);

  it('--matrix runs every scenario x controller x seed and prints mean ± 95% CI', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-sim-'));
    const o = io();
    const results = await runSimulate(
      ['--matrix', '--pipelines', 'rag,audio-qa', '--workloads', 'spike', '--controller', 'static,oracle', '--seeds', '2', '--duration', '10m', '--out', dir, '--progress', 'always'],
      {},
      o.io,
    );
    expect(results).toHaveLength(8);
    const text = o.out.join('');
    expect(text).toContain('±');
    expect(text.split('\n').filter((l) => /^(rag|audio-qa) +spike +(static|oracle) +2 /.test(l))).toHaveLength(4);
    expect(o.err.join('')).toContain('100%');
    const matrix = JSON.parse(readFileSync(join(dir, 'matrix.json'), 'utf8')) as { rows: unknown[]; runs: unknown[] };
    expect(matrix.rows).toHaveLength(4);
    expect(matrix.runs).toHaveLength(8);
  }, 30_000);

  it('runs SAIR’s own controller from src/policy as --controller sair', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-sim-'));
    const o = io();
    const [r] = await runSimulate(['--pipeline', 'rag', '--workload', 'spike', '--controller', 'sair', '--duration', '10m', '--out', dir, '--format', 'json'], {}, o.io);
    expect(r!.controller).toBe('sair');
    expect(r!.tickErrors).toBe(0);
    expect(r!.ticks).toBeGreaterThan(10);
    expect(JSON.parse(o.out.join('')).controller).toBe('sair');
  }, 30_000);

  it('--generate writes a scenario as YAML files that load back to the same model and run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-gen-'));
    const o = io();
    expect(await runSimulate(['--generate', '1003', '--out', dir], {}, o.io)).toEqual([]);
    const pipelinePath = join(dir, 'gen-1003-pipeline.yaml');
    const workloadPath = join(dir, 'gen-1003-workload.yaml');
    expect(o.out.join('')).toContain(`wrote ${pipelinePath} and ${workloadPath}`);
    const g = generateScenario(1003);
    expect(loadPipelineFile(pipelinePath)).toEqual(g.pipeline);
    const w = loadWorkloadFile(workloadPath, { referenceRate: g.pipeline.referenceRate, seed: 1 });
    expect(w.name).toBe(g.workload.name);
    expect(w.peakRate(3_600_000)).toBeCloseTo(g.peakRelative * g.pipeline.referenceRate, 6);
    const [r] = await runSimulate(['--pipeline', pipelinePath, '--workload', workloadPath, '--controller', 'static-peak', '--duration', '5m', '--out', dir, '--format', 'json'], {}, o.io);
    expect(r!.pipeline).toBe('gen-1003');
    expect(r!.workload).toBe(g.workload.name);
    expect(r!.requests.arrived).toBeGreaterThan(0);
  }, 30_000);

  it('--suite generated runs each generated pipeline with its own workload', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-gen-'));
    const o = io();
    const results = await runSimulate(['--matrix', '--suite', 'generated', '--generated-seeds', '5:7', '--controller', 'static-peak', '--seeds', '1', '--duration', '5m', '--out', dir], {}, o.io);
    expect(results.map((r) => `${r.pipeline} ${r.workload}`)).toEqual([5, 6, 7].map((s) => `gen-${s} ${generateScenario(s).workload.name}`));
    expect(o.out.join('')).toMatch(/^gen-6 +gen-6-/m);
  }, 30_000);

  it('names the flag and the accepted form for bad input', async () => {
    const o = io();
    const fail = (argv: string[]) => runSimulate(argv, {}, o.io).then(
      () => '',
      (e: unknown) => {
        expect(e).toBeInstanceOf(ConfigError);
        return (e as Error).message;
      },
    );
    expect(await fail(['--duration', 'soon'])).toContain('--duration (env SAIR_SIM_DURATION): "soon" is not a duration such as 2h, 90m, 600s or 1500ms');
    expect(await fail(['--controller', 'hpa,magic'])).toContain('--controller (env SAIR_SIM_CONTROLLER): "hpa,magic" is not one or more of hpa, keda');
    expect(await fail(['--llm-base-url', 'http://x'])).toContain('both set (an LLM endpoint) or both unset');
    expect(await fail(['--colour'])).toContain('--colour');
    expect(await fail(['--matrix', '--suite', 'generated', '--generated-seeds', '10-20'])).toContain(
      '--generated-seeds (env SAIR_SIM_GENERATED_SEEDS): "10-20" is not a range FROM:TO of generator seeds (integers >= 0, FROM <= TO, at most 1000 of them), such as 1000:1099 (the held-out set)',
    );
    expect(await fail(['--matrix', '--suite', 'generated', '--pipelines', 'rag'])).toContain('--pipelines / --workloads (SAIR_SIM_PIPELINES / SAIR_SIM_WORKLOADS): "rag" is not unset with --suite generated');
    expect(await fail(['--generate', 'x'])).toContain('--generate (env SAIR_SIM_GENERATE): "x" is not a generator seed, an integer >= 0');
    expect(await fail(['--suite', 'random'])).toContain('"issue", "paper", "all" or "generated"');
    const file = join(mkdtempSync(join(tmpdir(), 'sair-sim-')), 'a-file');
    writeFileSync(file, '');
    expect(await fail(['--out', join(file, 'x'), '--duration', '1m'])).toContain(`--out (env SAIR_SIM_OUT): "${join(file, 'x')} (ENOTDIR)" is not a directory that can be created and written`);
  });

  it('parses durations and computes t-based confidence intervals', () => {
    expect(parseDuration('2h')).toBe(7_200_000);
    expect(parseDuration('90m')).toBe(5_400_000);
    expect(parseDuration('1.5s')).toBe(1500);
    expect(parseDuration('250ms')).toBe(250);
    expect(parseDuration('0s')).toBeNull();
    expect(parseSeedRange('1000:1019')).toEqual({ from: 1000, count: 20 });
    expect(parseSeedRange('7:7')).toEqual({ from: 7, count: 1 });
    for (const bad of ['9:8', '1:1001', '-1:3', '1:', 'a:b']) expect(parseSeedRange(bad)).toBeNull();
    const ci = meanCi([1, 2, 3]);
    expect(ci.mean).toBe(2);
    expect(ci.ci).toBeCloseTo(4.303 / Math.sqrt(3), 6);
    expect(meanCi([5]).ci).toBeNaN();
    expect(meanCi([1, Infinity]).mean).toBe(Infinity);
  });
});
