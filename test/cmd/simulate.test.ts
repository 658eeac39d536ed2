// `sair simulate` end to end, in process: files written, table and matrix output, flag errors.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../../src/common/errors.js';
import { parseDuration, runSimulate } from '../../src/cmd/simulate.js';
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
    const ci = meanCi([1, 2, 3]);
    expect(ci.mean).toBe(2);
    expect(ci.ci).toBeCloseTo(4.303 / Math.sqrt(3), 6);
    expect(meanCi([5]).ci).toBeNaN();
    expect(meanCi([1, Infinity]).mean).toBe(Infinity);
  });
});
