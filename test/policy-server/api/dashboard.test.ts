// The HTTP API and the dashboard on the embedded simulator (what `npm start` runs): the page is
// loaded in headless Debian Chromium through playwright-core and must draw its charts from the
// live data the API serves.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { chromium, type BrowserContext } from 'playwright-core';
import { loadStartConfig, startEmbedded, type EmbeddedServer } from '../../../src/cmd/start.js';
import type { PipelineView, TickPoint } from '../../../src/policy-server/api/history.js';
import { dashboardPage } from './dashboard-page.js';

// The page functions below run in the browser; the project compiles without the DOM library.
declare const document: { querySelector(selector: string): { getAttribute(name: string): string | null } | null; body: { getAttribute(name: string): string | null } };

const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

interface PipelinesBody {
  source: string;
  leader: boolean;
  selector: string;
  pipelines: PipelineView[];
}

describe('policy HTTP API and dashboard on the embedded simulator', () => {
  let embedded: EmbeddedServer;
  const lines: string[] = [];

  beforeAll(async () => {
    const out = { write: (s: string) => lines.push(s) > 0 } as unknown as NodeJS.WritableStream;
    embedded = await startEmbedded(loadStartConfig({}, ['--port', '0', '--speed', '200', '--log-level', 'silent', '--seed', '3']), out);
  });
  afterAll(async () => {
    await embedded.stop();
  });

  const get = (p: string) => fetch(`${embedded.url}${p}`);
  /** Resolves once the simulator has ticked `n` times (each tick is 30 simulated seconds, 150 ms here). */
  const ticks = (n: number) =>
    new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if ((embedded.history.list()[0]?.ticks ?? 0) >= n) resolve();
        else if (Date.now() - started > 25_000) reject(new Error(`fewer than ${n} ticks in 25 s`));
        else return;
        clearInterval(poll);
      }, 25);
    });

  it('prints the dashboard URL and one line per decision', async () => {
    await ticks(3);
    const banner = lines.find((l) => l.startsWith('SAIR policy server'));
    expect(banner).toContain('SAIR policy server on the embedded simulator: pipeline nlp-chain (4 stages');
    expect(banner).toContain(`Dashboard: ${embedded.url}/`);
    expect(lines.filter((l) => l.startsWith('sim ')).length).toBeGreaterThanOrEqual(3);
  });

  it('serves probes, metrics and the JSON API with live data', async () => {
    await ticks(3);
    expect(await (await get('/healthz')).text()).toBe('ok');
    expect((await get('/readyz')).status).toBe(200);
    const metrics = await (await get('/metrics')).text();
    expect(metrics).toMatch(/sair_policy_decisions_total\{[^}]*selector="bandit"/);
    expect(metrics).toMatch(/sair_policy_ticks_total\{[^}]*outcome="ok"[^}]*\} [1-9]/);
    expect(metrics).toContain('sair_policy_tick_compute_seconds_bucket');
    const body = (await (await get('/api/pipelines')).json()) as PipelinesBody;
    expect(body).toMatchObject({ source: 'simulator', leader: true, selector: 'bandit' });
    const [p] = body.pipelines;
    expect(p!.id).toBe('sim/nlp-chain');
    expect(p!.stages.map((s) => s.name)).toEqual(['tokenize', 'embed', 'classify', 'postprocess']);
    expect(p!.points.length).toBeGreaterThanOrEqual(3);
    expect(p!.points.at(-1)!.replicas).toHaveLength(4);
    const decisions = (await (await get('/api/decisions?limit=2')).json()) as { decisions: { pipelineId: string; time: number }[] };
    expect(decisions.decisions).toHaveLength(2);
    expect(decisions.decisions[0]!.time).toBeGreaterThan(decisions.decisions[1]!.time);
    const bad = await get('/api/decisions?limit=zero');
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toContain('query parameter limit');
    expect((await get('/nope')).status).toBe(404);
  });

  (existsSync(CHROMIUM) ? it : it.skip)(
    'renders per-pipeline charts from the live data in headless Chromium',
    async () => {
      const profile = mkdtempSync(path.join(os.tmpdir(), 'sair-chromium-'));
      let context: BrowserContext | undefined;
      try {
        context = await chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS, viewport: { width: 1400, height: 1100 } });
        const page = context.pages()[0] ?? (await context.newPage());
        const failed: string[] = [];
        page.on('requestfailed', (r) => failed.push(r.url()));
        page.on('pageerror', (e) => failed.push(`page error: ${e.message}`));
        await page.goto(`${embedded.url}/`);

        // The charts grow as the simulator ticks: the page polls the API.
        await page.waitForFunction(() => Number(document.querySelector('[data-testid="chart-replicas"] path[data-points]')?.getAttribute('data-points') ?? 0) >= 5, undefined, {
          timeout: 25_000,
        });
        const firstCount = Number(await page.getAttribute('[data-testid="chart-replicas"] path[data-points]', 'data-points'));
        await page.waitForFunction(
          (n) => Number(document.querySelector('[data-testid="chart-replicas"] path[data-points]')?.getAttribute('data-points') ?? 0) > n,
          firstCount,
          { timeout: 25_000 },
        );

        // Freeze the data, let the page refresh once more, then compare the page with the API.
        await embedded.pause();
        const updated = await page.getAttribute('body', 'data-updated');
        await page.waitForFunction((u) => document.body.getAttribute('data-updated') !== u, updated, { timeout: 10_000 });
        const api = ((await (await get('/api/pipelines')).json()) as PipelinesBody).pipelines[0]!;
        const last = api.points.at(-1)!;
        const section = page.locator('section[data-pipeline="sim/nlp-chain"]');

        // One replicas line per stage, each with every tick of the API.
        const replicaSeries = section.locator('[data-testid="chart-replicas"] path[data-series]');
        expect(await replicaSeries.count()).toBe(4);
        for (const n of await replicaSeries.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-points'))))) expect(n).toBe(api.points.length);
        // GPU share lines for the two GPU stages only.
        expect(await section.locator('[data-testid="chart-gpu"] path[data-series]').evaluateAll((els) => els.map((e) => e.getAttribute('data-series')))).toEqual(['s1 embed', 's2 classify']);
        // P99 against the SLO line, and the cost line, drawn from the same points.
        const p99Points = api.points.filter((x) => x.p99Ms !== null).length;
        expect(Number(await section.locator('[data-testid="chart-p99"] path[data-series="P99"]').getAttribute('data-points'))).toBe(p99Points);
        expect(await section.locator('[data-testid="chart-p99"] path[data-series="SLO"]').count()).toBe(1);
        // Its axis is logarithmic, labelled at powers of ten.
        const decades = await section.locator('[data-testid="chart-p99"] text.tick').allTextContents();
        expect(decades.length).toBeGreaterThanOrEqual(2);
        for (const label of decades) expect(label).toMatch(/^(10*|0\.0*1)$/);
        expect(Number(await section.locator('[data-testid="chart-cost"] path[data-series="$/hour"]').getAttribute('data-points'))).toBe(api.points.filter((x) => x.costRate !== null).length);
        expect(Number(await section.locator('[data-testid="chart-cost"] path[data-series="share-priced $/hour"]').getAttribute('data-points'))).toBe(api.points.filter((x) => x.shareCostRate !== null).length);
        expect(await section.locator('[data-testid="chart-bottleneck"] circle').count()).toBe(api.points.filter((x) => x.bottleneck !== null).length);
        expect(await section.locator('[data-testid="chart-decisions"] circle').count()).toBeGreaterThanOrEqual(api.points.length);
        // The headline numbers are the latest point's.
        expect(await section.locator('[data-testid="replicas"]').textContent()).toBe(last.replicas.join(' / '));
        const names = ['tokenize', 'embed', 'classify', 'postprocess'];
        expect(await section.locator('[data-testid="bottleneck"]').textContent()).toBe(last.bottleneck === null ? '–' : `s${last.bottleneck} ${names[last.bottleneck]}`);
        expect(await section.locator('[data-testid="p99"]').textContent()).toContain('/ 250 ms');
        expect(await page.locator('[data-testid="decisions"] tbody tr').count()).toBe(Math.min(20, embedded.controller.recentDecisions(100).length));
        // A path really spans the chart: its first and last x differ.
        const d = (await section.locator('[data-testid="chart-replicas"] path[data-series]').first().getAttribute('d'))!;
        const xs = [...d.matchAll(/[MH]([\d.]+)/g)].map((m) => Number(m[1]));
        expect(Math.max(...xs) - Math.min(...xs)).toBeGreaterThan(200);
        expect(failed).toEqual([]);

        const shot = path.join(os.tmpdir(), 'sair-dashboard.png');
        await page.screenshot({ path: shot, fullPage: true });
      } finally {
        await context?.close();
        rmSync(profile, { recursive: true, force: true });
      }
    },
    90_000,
  );
});

/** The y coordinates of a series' line in one chart of the page's HTML. */
function pathYs(html: string, chart: string, series: string): number[] {
  const svg = new RegExp(`<svg data-testid="${chart}"[^]*?</svg>`).exec(html)![0];
  const d = new RegExp(`<path data-series="${series}"[^>]* d="([^"]*)"`).exec(svg)![1]!;
  return [...d.matchAll(/[ML][\d.]+,([\d.]+)/g)].map((m) => Number(m[1]));
}

describe('dashboard P99 chart', () => {
  const page = dashboardPage();
  const pipelineSection = page['pipelineSection'] as (p: PipelineView) => string;

  const point = (i: number, p99Ms: number): TickPoint => ({
    time: 1_700_000_000_000 + i * 30_000,
    replicas: [1],
    readyReplicas: [1],
    gpuCores: [null],
    p99Ms,
    p99Unbounded: false,
    costRate: 0.05,
    shareCostRate: 0.05,
    bottleneck: 0,
    actions: [],
    reason: 'hold',
    dryRun: false,
  });
  const view = (p99s: number[]): PipelineView => ({
    id: 'ml/chat',
    mode: 'Active',
    sloP99Ms: 250,
    tickSeconds: 30,
    stages: [{ index: 0, name: 'web', minReplicas: 1, maxReplicas: 4, gpuCores: null }],
    points: p99s.map((v, i) => point(i, v)),
    lastError: null,
    ticks: p99s.length,
  });

  it('a start-up spike does not flatten the later points, which stay on their side of the SLO line', () => {
    const html = pipelineSection(view([60_000, 120, 180, 240, 400, 600]));
    const ys = pathYs(html, 'chart-p99', 'P99');
    const [slo] = pathYs(html, 'chart-p99', 'SLO');
    expect(ys).toHaveLength(6);
    // SVG y grows downwards: from 120 ms to 600 ms the line climbs a fifth of the chart's 122 px.
    expect(ys[1]! - ys[5]!).toBeGreaterThan(20);
    for (let i = 1; i < 5; i++) expect(ys[i]!).toBeGreaterThan(ys[i + 1]!);
    for (const y of ys.slice(1, 4)) expect(y).toBeGreaterThan(slo!);
    for (const y of ys.slice(4)) expect(y).toBeLessThan(slo!);
    const labels = [...html.matchAll(/<text class="tick"[^>]*>([^<]*)</g)].map((m) => m[1]);
    expect(labels).toEqual(['100', '1000', '10000', '100000']);
  });

  it('an empty series and a zero P99 still draw on the axis', () => {
    expect(pathYs(pipelineSection(view([])), 'chart-p99', 'P99')).toEqual([]);
    const ys = pathYs(pipelineSection(view([0, 50])), 'chart-p99', 'P99');
    expect(ys).toHaveLength(2);
    expect(ys.every((y) => y >= 8 && y <= 130)).toBe(true);
  });
});
