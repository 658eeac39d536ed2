// What `sair simulate` prints and writes: a text table per run, a matrix table of mean ± 95 %
// confidence intervals over seeds, JSON (Infinity spelled out), and a self-contained HTML page
// with SVG plots of load, replicas, GPU share, P99 and cost over time. Pure: strings in, strings out.
import { toJson as encode } from '../common/json.js';
import { meanCi, type MeanCi } from '../common/stats.js';
import type { RunCost, RunResult, TimelinePoint } from './run.js';

/** A run or matrix as indented JSON, Infinity kept. */
export const toJson = (value: unknown): string => encode(value, 2);

export function fmtMs(ms: number | null): string {
  if (ms === null) return '-';
  if (!Number.isFinite(ms)) return 'inf';
  return ms >= 10_000 ? `${(ms / 1000).toFixed(1)}s` : ms >= 100 ? ms.toFixed(0) : ms.toFixed(1);
}

const pct = (x: number | null): string => (x === null ? '-' : `${(100 * x).toFixed(1)}%`);

function table(header: string[], rows: string[][], rightAlign: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (rightAlign[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const costText = (c: RunCost): string =>
  `${c.dollars.toFixed(3)} ($${c.per1kRequests === null ? '-' : c.per1kRequests.toFixed(4)} per 1k requests, $${c.meanRatePerHour.toFixed(2)}/h)`;

function clusterText(r: RunResult): string {
  const c = r.cluster;
  const size = typeof c.gpuNodes === 'number' ? `${c.gpuNodes} x ${c.gpusPerNode} GPUs` : `${c.gpuNodes} GPU nodes`;
  return (
    `${size} (${c.placement}, ${c.slotPercent}% slots): ${c.meanGpusInUse.toFixed(2)} GPUs in use on average, ${c.peakGpusInUse} at most; ` +
    `${c.meanPendingReplicas.toFixed(2)} replicas pending for room on average; ${c.clampedShareChanges} share changes clamped`
  );
}

/** The text report of one run. */
export function runTable(r: RunResult): string {
  const head =
    `${r.pipeline} x ${r.workload} x ${r.controller}, seed ${r.seed}, ${(r.durationMs / 60_000).toFixed(0)} min simulated (${(r.wallMs / 1000).toFixed(2)} s wall, ${r.events} events)\n` +
    `requests ${r.requests.arrived} arrived, ${r.requests.completed} completed, ${r.requests.dropped} dropped, ${r.requests.inSystem} in system at the end\n` +
    `end-to-end P50 ${fmtMs(r.latency.p50Ms)} ms  P95 ${fmtMs(r.latency.p95Ms)} ms  P99 ${fmtMs(r.latency.p99Ms)} ms (SLO ${r.sloP99Ms} ms; drops count as infinite)\n` +
    `SLO violations ${pct(r.sloViolationRate)}  attainment ${pct(r.sloAttainment)}\n` +
    `cost packed $${costText(r.cost.packed)}  share-priced $${costText(r.cost)}\n` +
    `cluster ${clusterText(r)}\n` +
    `bottleneck detection ${r.bottleneck.accuracy === null ? 'not reported by this controller' : `${pct(r.bottleneck.accuracy)} of ${r.bottleneck.reportedTicks} reported ticks`}` +
    (r.tickErrors > 0 ? `\ncontroller errors on ${r.tickErrors} of ${r.ticks} ticks; last: ${r.lastTickError ?? ''}` : '');
  const rows = r.stages.map((s) => [
    String(s.index),
    s.name,
    s.kind,
    pct(s.utilization),
    s.meanReplicas.toFixed(2),
    s.meanGpuCores === null ? '-' : s.meanGpuCores.toFixed(0),
    s.throughputPerS.toFixed(1),
    fmtMs(s.meanSojournMs),
    String(s.drops),
    pct(s.bottleneckShare),
  ]);
  return `${head}\n\n${table(['#', 'stage', 'kind', 'util', 'replicas', 'gpu%', 'req/s', 'time ms', 'drops', 'bottleneck'], rows, [true, false, false, true, true, true, true, true, true, true])}\n`;
}

export interface MatrixRow {
  pipeline: string;
  workload: string;
  controller: string;
  seeds: number[];
  p99Ms: MeanCi;
  sloViolation: MeanCi;
  /** Share-priced (as before packing). */
  costDollars: MeanCi;
  costPer1k: MeanCi;
  /** Packed: whole GPUs in use, replicas placed. */
  packedCostDollars: MeanCi;
  packedCostPer1k: MeanCi;
  bottleneckAccuracy: MeanCi | null;
}

export function summarizeMatrix(results: RunResult[]): MatrixRow[] {
  const groups = new Map<string, RunResult[]>();
  for (const r of results) {
    const key = `${r.pipeline}\u0000${r.workload}\u0000${r.controller}`;
    const g = groups.get(key) ?? [];
    g.push(r);
    groups.set(key, g);
  }
  return [...groups.values()].map((g) => {
    const acc = g.map((r) => r.bottleneck.accuracy).filter((a): a is number => a !== null);
    return {
      pipeline: g[0]!.pipeline,
      workload: g[0]!.workload,
      controller: g[0]!.controller,
      seeds: g.map((r) => r.seed),
      p99Ms: meanCi(g.map((r) => r.latency.p99Ms)),
      sloViolation: meanCi(g.map((r) => r.sloViolationRate)),
      costDollars: meanCi(g.map((r) => r.cost.dollars)),
      costPer1k: meanCi(g.map((r) => r.cost.per1kRequests ?? 0)),
      packedCostDollars: meanCi(g.map((r) => r.cost.packed.dollars)),
      packedCostPer1k: meanCi(g.map((r) => r.cost.packed.per1kRequests ?? 0)),
      bottleneckAccuracy: acc.length > 0 ? meanCi(acc) : null,
    };
  });
}

function showCi(m: MeanCi, fmt: (x: number) => string): string {
  if (!Number.isFinite(m.mean)) return 'inf';
  if (Number.isNaN(m.ci)) return fmt(m.mean);
  if (!Number.isFinite(m.ci)) return `${fmt(m.mean)} ± inf`;
  return `${fmt(m.mean)} ± ${fmt(m.ci)}`;
}

export function matrixTable(rows: MatrixRow[]): string {
  const body = rows.map((r) => [
    r.pipeline,
    r.workload,
    r.controller,
    String(r.seeds.length),
    showCi(r.p99Ms, (x) => fmtMs(x)),
    showCi(r.sloViolation, (x) => `${(100 * x).toFixed(1)}%`),
    showCi(r.packedCostPer1k, (x) => x.toFixed(4)),
    showCi(r.costPer1k, (x) => x.toFixed(4)),
    r.bottleneckAccuracy === null ? '-' : showCi(r.bottleneckAccuracy, (x) => `${(100 * x).toFixed(0)}%`),
  ]);
  return `${table(['pipeline', 'workload', 'controller', 'seeds', 'P99 ms', 'SLO violations', '$/1k packed', '$/1k share-priced', 'bottleneck acc.'], body, [false, false, false, true, true, true, true, true, true])}\n`;
}

// ---- HTML / SVG ---------------------------------------------------------------------------

const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];
const W = 900;
const H = 150;
const PAD = { l: 60, r: 10, t: 10, b: 22 };

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Series {
  label: string;
  color: string;
  values: (number | null)[];
  step?: boolean;
}

function chart(title: string, t: number[], series: Series[], opts: { log?: boolean; hline?: { y: number; label: string }; unit: string }): string {
  const finite = series.flatMap((s) => s.values.filter((v): v is number => v !== null && Number.isFinite(v)));
  if (opts.hline) finite.push(opts.hline.y);
  let lo = opts.log ? Math.max(1e-3, Math.min(...finite.filter((v) => v > 0), opts.hline?.y ?? Infinity)) : 0;
  let hi = Math.max(1e-9, ...finite);
  if (opts.log) {
    lo = Math.pow(10, Math.floor(Math.log10(lo)));
    hi = Math.pow(10, Math.ceil(Math.log10(hi * 1.01)));
  } else hi *= 1.08;
  const tMax = Math.max(1, t[t.length - 1] ?? 1);
  const x = (v: number): number => PAD.l + ((W - PAD.l - PAD.r) * v) / tMax;
  const y = (v: number): number => {
    const f = opts.log ? (Math.log10(Math.max(v, lo)) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo)) : v / hi;
    return H - PAD.b - (H - PAD.t - PAD.b) * Math.min(1, Math.max(0, f));
  };
  const paths = series.map((s) => {
    let d = '';
    let prev: number | null = null;
    s.values.forEach((v, i) => {
      if (v === null) {
        prev = null;
        return;
      }
      // Infinite P99 (drops) is drawn at the top edge.
      const yv = Number.isFinite(v) ? y(v) : PAD.t;
      const xv = x(t[i]!);
      if (prev === null) d += `M${xv.toFixed(1)},${yv.toFixed(1)}`;
      else if (s.step) d += `H${xv.toFixed(1)}V${yv.toFixed(1)}`;
      else d += `L${xv.toFixed(1)},${yv.toFixed(1)}`;
      prev = yv;
    });
    return `<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"><title>${esc(s.label)}</title></path>`;
  });
  const ticks = opts.log
    ? Array.from({ length: Math.round(Math.log10(hi / lo)) + 1 }, (_, i) => lo * Math.pow(10, i))
    : [0, hi / 2, hi].map((v) => Number(v.toPrecision(2)));
  const yAxis = ticks
    .map((v) => `<text x="${PAD.l - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v >= 1000 ? `${v / 1000}k` : v}</text><line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#eee"/>`)
    .join('');
  const minutes = tMax / 60_000;
  const step = minutes > 180 ? 60 : minutes > 60 ? 15 : minutes > 20 ? 5 : 1;
  const xAxis = Array.from({ length: Math.floor(minutes / step) + 1 }, (_, i) => i * step)
    .map((m) => `<text x="${x(m * 60_000).toFixed(1)}" y="${H - 6}" text-anchor="middle">${m}m</text>`)
    .join('');
  const hline = opts.hline
    ? `<line x1="${PAD.l}" x2="${W - PAD.r}" y1="${y(opts.hline.y).toFixed(1)}" y2="${y(opts.hline.y).toFixed(1)}" stroke="#000" stroke-dasharray="4 3"/><text x="${W - PAD.r - 4}" y="${(y(opts.hline.y) - 4).toFixed(1)}" text-anchor="end">${esc(opts.hline.label)}</text>`
    : '';
  const legend = series.map((s) => `<span style="color:${s.color}">&#9632; ${esc(s.label)}</span>`).join(' ');
  return `<section><h2>${esc(title)} <small>(${esc(opts.unit)})</small></h2><div class="legend">${legend}</div><svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">${yAxis}${xAxis}${hline}${paths.join('')}</svg></section>`;
}

/** A self-contained HTML page (inline CSS and SVG, no scripts or external files) for one run. */
export function runHtml(r: RunResult): string {
  const tl: TimelinePoint[] = r.timeline;
  const t = tl.map((p) => p.t);
  const stageSeries = (pick: (p: TimelinePoint, i: number) => number | null, filter: (i: number) => boolean = () => true): Series[] =>
    r.stages
      .filter((s) => filter(s.index))
      .map((s) => ({ label: `${s.index} ${s.name}`, color: COLORS[s.index % COLORS.length]!, values: tl.map((p) => pick(p, s.index)), step: true }));
  const gpuStages = (i: number): boolean => r.stages[i]!.kind === 'gpu';
  const charts = [
    chart('Load', t, [
      { label: 'arrivals', color: COLORS[0]!, values: tl.map((p) => p.arrivalRate) },
      { label: 'completions', color: COLORS[2]!, values: tl.map((p) => p.throughput) },
    ], { unit: 'requests/s' }),
    chart('Replicas', t, stageSeries((p, i) => p.replicas[i] ?? null), { unit: 'asked for, per stage' }),
    chart('GPU share', t, stageSeries((p, i) => p.gpuCores[i] ?? null, gpuStages), { unit: '% of one GPU per replica' }),
    chart('End-to-end P99', t, [{ label: 'P99 per scrape interval', color: COLORS[1]!, values: tl.map((p) => p.p99Ms) }], {
      log: true,
      hline: { y: r.sloP99Ms, label: `SLO ${r.sloP99Ms} ms` },
      unit: 'ms, log scale; drops drawn at the top',
    }),
    chart('GPUs in use', t, [{ label: 'whole GPUs hosting a replica', color: COLORS[3]!, values: tl.map((p) => p.gpusInUse), step: true }, ...stageSeries((p, i) => p.pendingReplicas[i] ?? null, gpuStages).map((s) => ({ ...s, label: `${s.label} pending for room` }))], {
      unit: 'GPUs; replicas pending for room per GPU stage',
    }),
    chart('Cost rate', t, [
      { label: 'packed (whole GPUs)', color: COLORS[4]!, values: tl.map((p) => p.packedCostRate) },
      { label: 'share-priced', color: COLORS[5]!, values: tl.map((p) => p.costRate) },
    ], { unit: '$/hour' }),
  ];
  const title = `${r.pipeline} × ${r.workload} × ${r.controller} (seed ${r.seed})`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font:13px system-ui,sans-serif;margin:20px;color:#222}h1{font-size:18px}h2{font-size:14px;margin:14px 0 2px}small{color:#666;font-weight:normal}
svg{display:block;border:1px solid #ddd;background:#fff}svg text{font-size:10px;fill:#555}.legend{font-size:12px}pre{background:#f7f7f7;padding:8px;overflow:auto}</style>
</head><body><h1>${esc(title)}</h1>
<pre>${esc(runTable(r))}</pre>
${charts.join('\n')}
</body></html>
`;
}
