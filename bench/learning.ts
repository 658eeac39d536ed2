// `npm run bench:learning`: does SAIR get better from its own experience? Every cell of the paper and
// issue suites runs for 8 hours (3 seeds) with learning on and with learning off (priors, floors and
// normalizer alone). Per hour it prints packed cost, violating requests and the objective both minimize:
// cost + PENALTY dollars per violating request. The gain is the relative drop in the objective over
// the last 4 hours, learning on against off, averaged over cells; worst_cell is the worst single cell.
// Writes a learning curve (objective per hour, on and off, relative to off's mean) to out/learning.svg.
// Two oracles (they know the future; the SLO split evenly per stage, and along the path) run beside
// them as a bound: no learning can gain more in a cell than off's objective above the better
// oracle's, so the bench prints that headroom per cell and its mean. It is a bound only as far as the
// oracles pack their GPUs as well as the others: the bench prints each variant's stranded GPUs
// (fragmentation none of them repacks), and the oracles strand some too.
// Ends with: summary: learning_gain_pct=G worst_cell_pct=W cells=N
// Flags: --seeds N (3) --first-seed S (1) --hours H (8) --last-hours L (4) --jobs N (2)
//        --suites paper,issue,generated --generated-seeds FROM:TO (1000:1011; generated scenarios, as
//        bench:policy's, which nothing was tuned on) --pipelines a,b --workloads x,y (instead of the
//        suites) --bound on|off (on: run the oracles)
//        --sair-settings JSON (policy settings merged into both variants, for experiments)
//        --cluster autoscaled|unlimited (the built-ins' own: unlimited; autoscaled clamps share rises)
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseFlags } from '../src/common/config.js';
import { createSairController } from '../src/policy/controller.js';
import { policySettings, type PolicySettingsInput } from '../src/policy/settings.js';
import { PAPER_PIPELINES } from '../src/sim/builtin-pipelines.js';
import { PAPER_WORKLOADS } from '../src/sim/builtin-workloads.js';
import { BASELINES } from '../src/sim/baselines/index.js';
import { generateScenario } from '../src/sim/generator.js';
import { runMatrix } from '../src/sim/matrix.js';
import type { RunResult } from '../src/sim/run.js';
import { clusterFlag, onCluster, runAsCell, runCellsInChildren, suiteCells } from './cells.js';
import { strandedGpus } from './stranded.js';

/** Dollars one SLO-violating request is worth: at 100 req/s, 1 % of requests violating costs $3.60 an hour, about a GPU's price. */
const PENALTY = 0.001;
const HOUR = 3_600_000;

const { flags } = parseFlags(process.argv.slice(2));
const num = (name: string, def: number) => Number(flags.get(name) ?? def);
const list = (name: string, def: string[]) => (flags.get(name)?.split(',').map((x) => x.trim()).filter(Boolean) ?? def);
const hours = num('--hours', 8);
const lastHours = num('--last-hours', 4);
const bound = flags.get('--bound') !== 'off';
const cluster = clusterFlag(flags.get('--cluster'));
const extra = JSON.parse(flags.get('--sair-settings') ?? '{}') as PolicySettingsInput;

/** Per hour of one run: dollars spent and requests that missed the SLO. */
function perHour(r: RunResult): { cost: number; violating: number }[] {
  const out = Array.from({ length: hours }, () => ({ cost: 0, violating: 0 }));
  let prev = 0;
  for (const p of r.timeline) {
    const h = Math.min(hours - 1, Math.floor(prev / HOUR));
    const dt = (p.t - prev) / 1000;
    out[h]!.cost += (p.packedCostRate * dt) / 3600;
    out[h]!.violating += p.arrivalRate * (p.sloViolation ?? 0) * dt;
    prev = p.t;
  }
  return out;
}

interface CellRuns {
  pipeline: string;
  workload: string;
  /** [variant][seed][hour] */
  on: { cost: number; violating: number }[][];
  off: { cost: number; violating: number }[][];
  /** The two oracles' runs (SLO split evenly, and along the path); empty with --bound off. */
  oracle: { cost: number; violating: number }[][];
  oraclePath: { cost: number; violating: number }[][];
  /** Per variant, each seed's stranded GPUs (strandedGpus). */
  stranded: { on: number[]; off: number[]; oracle: number[]; oraclePath: number[] };
}

async function runCell(pipeline: string, workload: string): Promise<CellRuns> {
  const seeds = Array.from({ length: num('--seeds', 3) }, (_, i) => num('--first-seed', 1) + i);
  // A generated scenario is named gen:SEED; its pipeline and workload come from the generator.
  const generated = pipeline === 'gen' ? generateScenario(Number(workload)) : null;
  const results = await runMatrix({
    ...(generated ? { scenarios: [{ pipeline: onCluster(generated.pipeline, cluster), workload: generated.workload }] } : { pipelines: [onCluster(pipeline, cluster)], workloads: [workload] }),
    controllers: bound ? ['on', 'off', 'oracle', 'oracle-path'] : ['on', 'off'],
    seeds,
    durationMs: hours * HOUR,
    factory: (name, seed) =>
      name === 'oracle' || name === 'oracle-path'
        ? BASELINES[name]!.factory
        : (p) => createSairController({ cluster: p.cluster, metrics: p.metrics, clock: p.clock, config: policySettings({ ...extra, learning: name === 'on' }), seed }),
  });
  const on = results.filter((r) => r.controller === 'on');
  const off = results.filter((r) => r.controller === 'off');
  const oracle = results.filter((r) => r.controller === 'oracle');
  const oraclePath = results.filter((r) => r.controller === 'oracle-path');
  return {
    pipeline,
    workload,
    on: on.map(perHour),
    off: off.map(perHour),
    oracle: oracle.map(perHour),
    oraclePath: oraclePath.map(perHour),
    stranded: { on: on.map(strandedGpus), off: off.map(strandedGpus), oracle: oracle.map(strandedGpus), oraclePath: oraclePath.map(strandedGpus) },
  };
}

const objective = (h: { cost: number; violating: number }) => h.cost + PENALTY * h.violating;
/** Mean over seeds of each hour's objective. */
const curve = (runs: { cost: number; violating: number }[][]) => Array.from({ length: hours }, (_, h) => runs.reduce((s, r) => s + objective(r[h]!), 0) / runs.length);
const sumLast = (xs: number[]) => xs.slice(hours - lastHours).reduce((a, b) => a + b, 0);

function svg(on: number[], off: number[]): string {
  const W = 640;
  const H = 320;
  const pad = 40;
  const all = [...on, ...off];
  const lo = Math.min(...all) * 0.95;
  const hi = Math.max(...all) * 1.05;
  const x = (h: number) => pad + ((W - 2 * pad) * h) / Math.max(1, hours - 1);
  const y = (v: number) => H - pad - ((H - 2 * pad) * (v - lo)) / (hi - lo || 1);
  const line = (xs: number[], color: string) => `<polyline fill="none" stroke="${color}" stroke-width="2" points="${xs.map((v, h) => `${x(h).toFixed(1)},${y(v).toFixed(1)}`).join(' ')}"/>`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif" font-size="12">`,
    `<text x="${pad}" y="20">objective per hour (cost + $${PENALTY}/violating request), relative to learning off's mean</text>`,
    line(off, '#888'),
    line(on, '#1565c0'),
    `<text x="${W - 150}" y="40" fill="#1565c0">learning on</text><text x="${W - 150}" y="56" fill="#888">learning off</text>`,
    ...Array.from({ length: hours }, (_, h) => `<text x="${x(h) - 4}" y="${H - pad + 16}">${h + 1}</text>`),
    `<text x="${W / 2 - 20}" y="${H - 6}">hour</text>`,
    '</svg>',
  ].join('\n');
}

async function main(): Promise<void> {
  if (await runAsCell(flags.get('--cell'), runCell)) return;
  const custom = flags.has('--pipelines') || flags.has('--workloads');
  const pairs = suiteCells(list('--suites', ['paper', 'issue']), custom ? list('--pipelines', PAPER_PIPELINES) : undefined, custom ? list('--workloads', PAPER_WORKLOADS) : undefined, flags.get('--generated-seeds'));
  const jobs = Math.max(1, num('--jobs', Math.min(2, availableParallelism())));
  console.log(`bench:learning: ${pairs.length} cells x ${num('--seeds', 3)} seeds x ${hours} h, learning on and off; objective = cost + $${PENALTY} per violating request; gain over the last ${lastHours} h`);
  const cells = await runCellsInChildren<CellRuns>(import.meta.url, pairs, jobs);
  const gains: number[] = [];
  const headrooms: number[] = [];
  const relOn = Array.from({ length: hours }, () => 0);
  const relOff = Array.from({ length: hours }, () => 0);
  console.log(`\n${'cell'.padEnd(30)} ${'variant'.padEnd(8)} per hour: $ cost / violating requests`);
  for (const c of cells.sort((a, b) => `${a.pipeline}${a.workload}`.localeCompare(`${b.pipeline}${b.workload}`))) {
    const on = curve(c.on);
    const off = curve(c.off);
    const gain = (100 * (sumLast(off) - sumLast(on))) / sumLast(off);
    gains.push(gain);
    const offMean = off.reduce((a, b) => a + b, 0) / hours;
    on.forEach((v, h) => (relOn[h]! += v / offMean / pairs.length));
    off.forEach((v, h) => (relOff[h]! += v / offMean / pairs.length));
    for (const [name, runs] of [['on', c.on], ['off', c.off], ['oracle', c.oracle], ['oracle-p', c.oraclePath]] as const) {
      if (runs.length === 0) continue;
      const hoursText = Array.from({ length: hours }, (_, h) => {
        const cost = runs.reduce((s, r) => s + r[h]!.cost, 0) / runs.length;
        const viol = runs.reduce((s, r) => s + r[h]!.violating, 0) / runs.length;
        return `${cost.toFixed(2)}/${viol.toFixed(0)}`;
      }).join(' ');
      console.log(`${`${c.pipeline} ${c.workload}`.padEnd(30)} ${name.padEnd(8)} ${hoursText}`);
    }
    let line = `${''.padEnd(30)} gain over the last ${lastHours} h: ${gain.toFixed(2)} %`;
    if (c.oracle.length > 0) {
      // The bound is the better of the two oracles in the cell: each is a controller that knows the future.
      const [which, best] = sumLast(curve(c.oraclePath)) < sumLast(curve(c.oracle)) ? ['oracle-p', c.oraclePath] : ['oracle', c.oracle];
      const headroom = (100 * (sumLast(off) - sumLast(curve(best)))) / sumLast(off);
      headrooms.push(headroom);
      line += `; off above the better oracle (${which}): ${headroom.toFixed(2)} %`;
    }
    console.log(line);
  }
  mkdirSync('out', { recursive: true });
  writeFileSync('out/learning.svg', svg(relOn, relOff));
  console.log(`\nmean objective per hour relative to learning off (all cells): on ${relOn.map((v) => v.toFixed(3)).join(' ')} | off ${relOff.map((v) => v.toFixed(3)).join(' ')}; wrote out/learning.svg`);
  const mean = gains.reduce((a, b) => a + b, 0) / gains.length;
  const stranded = (['on', 'off', 'oracle', 'oraclePath'] as const)
    .filter((v) => cells.some((c) => c.stranded[v].length > 0))
    .map((v) => `${v} ${(cells.reduce((s, c) => s + c.stranded[v].reduce((a, b) => a + b, 0) / c.stranded[v].length, 0) / cells.length).toFixed(3)}`);
  console.log(`stranded GPUs (billed beyond what the placed replicas pack onto; mean over cells and hours): ${stranded.join(', ')}`);
  if (headrooms.length > 0) {
    // A cell where the oracle does worse than off (violations it cannot avoid either) bounds nothing: count it as 0.
    const cap = headrooms.reduce((a, b) => a + Math.max(0, b), 0) / headrooms.length;
    console.log(`bound: learning off's objective is above the better oracle's by ${cap.toFixed(2)} % averaged over cells (negative cells as 0); no learning can gain more than that, save by stranding fewer GPUs than the oracle does`);
  }
  console.log(`summary: learning_gain_pct=${mean.toFixed(2)} worst_cell_pct=${Math.min(...gains).toFixed(2)} cells=${cells.length}`);
}

await main();
