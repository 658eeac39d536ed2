// `npm run bench:policy`: SAIR against every deployed baseline on the simulator, scored the way a
// user choosing an autoscaler would. By default the 24 cells of the paper and issue suites (four
// pipelines x three workloads each), 5 seeds of 60 minutes: SAIR with learning on (`sair`), SAIR
// with learning off (`sair-off`: priors, floors and normalizer only), the deployed baselines (hpa,
// keda, threshold, vpa, static, static-peak) and the oracle, which knows the future and bounds what
// any controller can do. Then the tick cost with 10,000 experiences in memory. Costs are packed:
// whole GPUs that host a replica, as a cluster bills them (share-priced beside it in the totals).
// It ends with: summary: cheapest_at_slo=K/N attainment_995=K/N no_worse_than_hpa=K/N selector_applied_pct=P tick_p99_ms=T
//   attainment_995     cells where SAIR's mean SLO attainment is >= 99.5 %
//   cheapest_at_slo    cells where SAIR attains >= 99.5 % and costs no more than the cheapest deployed
//                      baseline that also does
//   no_worse_than_hpa  cells where SAIR's violations are <= HPA's + 0.1 point and its cost <= HPA's
//   selector_applied_pct  of SAIR's applied non-hold decisions, the share the selector produced
//                      alone (a normalizer clamp of its size counts as the selector's; a floor does not)
// Flags: --seeds N (5) --first-seed S (1) --duration-min M (60) --suites paper,issue | generated
//        --generated-seeds FROM:TO --pipelines a,b --workloads x,y --controllers list --jobs N (2)
//        --retrieval surprisal|recency|random (sair's evidence order) --tick-bench on|off (on)
// Tuning uses seeds 1-5 of the built-in suites; held-out runs use --first-seed 6 or generated scenarios.
// Each cell runs in a child process (`--cell`), which prints its runs' measures as JSON.
import { fork } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../src/common/config.js';
import { meanCi } from '../src/common/stats.js';
import { createSairController } from '../src/policy/controller.js';
import type { DecisionRecord } from '../src/policy/types.js';
import { policySettings, type PolicySettingsInput } from '../src/policy/settings.js';
import { ISSUE_PIPELINES, PAPER_PIPELINES } from '../src/sim/builtin-pipelines.js';
import { MATRIX_WORKLOADS, PAPER_WORKLOADS } from '../src/sim/builtin-workloads.js';
import { controllerFactory } from '../src/sim/controllers.js';
import { runMatrix } from '../src/sim/matrix.js';
import type { ControllerFactory, RunResult } from '../src/sim/run.js';
import { sairTickBench } from './policy-tick.js';

const DEPLOYED = ['hpa', 'keda', 'threshold', 'vpa', 'static', 'static-peak'];
const ATTAIN = 0.995;

const { flags } = parseFlags(process.argv.slice(2));
const num = (name: string, def: number) => Number(flags.get(name) ?? def);
const list = (name: string, def: string[]) => (flags.get(name)?.split(',').map((x) => x.trim()).filter(Boolean) ?? def);

/** One run's measures, as a cell's child process reports them. */
interface Run {
  controller: string;
  seed: number;
  attainment: number;
  /** SLO-violating requests, percentage points. */
  violations: number;
  /** Packed: whole GPUs that host a replica, plus per-replica cost, as a cluster bills (what the targets use). */
  costPerHour: number;
  /** Share-priced: each replica at gpuHour x share (the figure older runs reported). */
  shareCostPerHour: number;
  p99Ms: number;
  /** SAIR only: applied non-hold decisions, and how many of them the selector alone produced. */
  changes?: number;
  bySelector?: number;
}

/** SAIR's controller with learning on or off; counts who produced each applied change. */
function sairFactory(seed: number, extra: PolicySettingsInput, tally: { changes: number; bySelector: number }): ControllerFactory {
  return (ports) =>
    createSairController({
      cluster: ports.cluster,
      metrics: ports.metrics,
      clock: ports.clock,
      config: policySettings({ ...extra }),
      seed,
      onDecision: (d: DecisionRecord) => {
        if (d.applied.length === 0 || d.dryRun) return;
        tally.changes += 1;
        if (d.appliedBy.every((s) => s === 'selector')) tally.bySelector += 1;
      },
    });
}

const SAIR_VARIANTS: Record<string, PolicySettingsInput> = {
  sair: { learning: true },
  'sair-off': { learning: false },
};

async function runCell(pipeline: string, workload: string): Promise<Run[]> {
  const seeds = Array.from({ length: num('--seeds', 5) }, (_, i) => num('--first-seed', 1) + i);
  const controllers = list('--controllers', ['sair', 'sair-off', ...DEPLOYED, 'oracle']);
  const retrieval = flags.get('--retrieval') as PolicySettingsInput['retrieval'];
  const tallies = new Map<string, { changes: number; bySelector: number }>();
  const results = await runMatrix({
    pipelines: [pipeline],
    workloads: [workload],
    controllers,
    seeds,
    durationMs: num('--duration-min', 60) * 60_000,
    factory: (name, seed) => {
      const variant = SAIR_VARIANTS[name];
      if (!variant) return controllerFactory(name, seed);
      const tally = { changes: 0, bySelector: 0 };
      tallies.set(`${name}:${seed}`, tally);
      return sairFactory(seed, { ...variant, ...(retrieval ? { retrieval } : {}) }, tally);
    },
  });
  return results.map((r: RunResult) => {
    const tally = tallies.get(`${r.controller}:${r.seed}`);
    return {
      controller: r.controller,
      seed: r.seed,
      attainment: r.sloAttainment,
      violations: 100 * r.sloViolationRate,
      costPerHour: r.cost.packed.meanRatePerHour,
      shareCostPerHour: r.cost.meanRatePerHour,
      p99Ms: r.latency.p99Ms,
      ...(tally ? { changes: tally.changes, bySelector: tally.bySelector } : {}),
    };
  });
}

function runCellInChild(pipeline: string, workload: string): Promise<Run[]> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [...process.argv.slice(2), '--cell', `${pipeline}:${workload}`], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as Run[]) : reject(new Error(`cell ${pipeline}:${workload} exited ${code}`))));
  });
}

interface Cell {
  pipeline: string;
  workload: string;
  runs: Run[];
}

const mean = (xs: number[]) => meanCi(xs).mean;
const of = (c: Cell, controller: string) => c.runs.filter((r) => r.controller === controller);
const stat = (c: Cell, controller: string, f: (r: Run) => number) => mean(of(c, controller).map(f));

function verdicts(cells: Cell[], sair: string) {
  let attained = 0;
  let cheapest = 0;
  let noWorse = 0;
  for (const c of cells) {
    const att = stat(c, sair, (r) => r.attainment);
    const cost = stat(c, sair, (r) => r.costPerHour);
    if (att >= ATTAIN) {
      attained++;
      const rivals = DEPLOYED.filter((b) => of(c, b).length > 0 && stat(c, b, (r) => r.attainment) >= ATTAIN).map((b) => stat(c, b, (r) => r.costPerHour));
      if (rivals.every((x) => cost <= x + 1e-9)) cheapest++;
    }
    if (of(c, 'hpa').length > 0 && stat(c, sair, (r) => r.violations) <= stat(c, 'hpa', (r) => r.violations) + 0.1 && cost <= stat(c, 'hpa', (r) => r.costPerHour) + 1e-9) noWorse++;
  }
  const runs = cells.flatMap((c) => of(c, sair));
  const changes = runs.reduce((s, r) => s + (r.changes ?? 0), 0);
  const bySelector = runs.reduce((s, r) => s + (r.bySelector ?? 0), 0);
  return { attained, cheapest, noWorse, selectorPct: changes > 0 ? (100 * bySelector) / changes : 0, changes };
}

function printTable(cells: Cell[], controllers: string[]): void {
  const head = ['cell', ...controllers];
  const rows = cells.map((c) => [
    `${c.pipeline} ${c.workload}`,
    ...controllers.map((k) => (of(c, k).length === 0 ? '-' : `${stat(c, k, (r) => r.costPerHour).toFixed(2)} ${(100 * stat(c, k, (r) => r.attainment)).toFixed(2)}%`)),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((x, i) => (i === 0 ? x.padEnd(widths[i]!) : x.padStart(widths[i]!))).join('  ');
  console.log('\nmean packed cost $/h and SLO attainment per cell (oracle: knows the future; a bound, not a rival)');
  console.log(line(head));
  for (const r of rows) console.log(line(r));
}

async function main(): Promise<void> {
  const cellArg = flags.get('--cell');
  if (cellArg) {
    const [p, w] = cellArg.split(':');
    process.stdout.write(JSON.stringify(await runCell(p!, w!)));
    return;
  }
  const suites = list('--suites', ['paper', 'issue']);
  const pairs: [string, string][] = [];
  if (flags.has('--pipelines') || flags.has('--workloads')) {
    for (const p of list('--pipelines', PAPER_PIPELINES)) for (const w of list('--workloads', PAPER_WORKLOADS)) pairs.push([p, w]);
  } else {
    if (suites.includes('paper')) for (const p of PAPER_PIPELINES) for (const w of PAPER_WORKLOADS) pairs.push([p, w]);
    if (suites.includes('issue')) for (const p of ISSUE_PIPELINES) for (const w of MATRIX_WORKLOADS) pairs.push([p, w]);
  }
  const jobs = Math.max(1, num('--jobs', Math.min(2, availableParallelism())));
  const controllers = list('--controllers', ['sair', 'sair-off', ...DEPLOYED, 'oracle']);
  console.log(
    `bench:policy: ${pairs.length} cells x ${controllers.length} controllers x ${num('--seeds', 5)} seeds (from ${num('--first-seed', 1)}), ${num('--duration-min', 60)} min each, ${jobs} jobs; load average ${loadavg()[0]!.toFixed(1)}`,
  );
  const cells: Cell[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: jobs }, async () => {
      while (next < pairs.length) {
        const [p, w] = pairs[next++]!;
        cells.push({ pipeline: p, workload: w, runs: await runCellInChild(p, w) });
        process.stderr.write(`\r${cells.length}/${pairs.length} cells`);
      }
    }),
  );
  process.stderr.write('\n');
  cells.sort((a, b) => pairs.findIndex(([p, w]) => p === a.pipeline && w === a.workload) - pairs.findIndex(([p, w]) => p === b.pipeline && w === b.workload));
  printTable(cells, controllers);
  const n = cells.length;
  for (const v of ['sair', 'sair-off'].filter((x) => controllers.includes(x))) {
    const r = verdicts(cells, v);
    const cost = mean(cells.map((c) => stat(c, v, (x) => x.costPerHour)));
    const shareCost = mean(cells.map((c) => stat(c, v, (x) => x.shareCostPerHour)));
    const viol = mean(cells.map((c) => stat(c, v, (x) => x.violations)));
    console.log(
      `${v.padEnd(9)} attainment_995=${r.attained}/${n} cheapest_at_slo=${r.cheapest}/${n} no_worse_than_hpa=${r.noWorse}/${n} selector_applied_pct=${r.selectorPct.toFixed(1)} (${r.changes} changes) mean cost ${cost.toFixed(3)} $/h packed (${shareCost.toFixed(3)} share-priced), violations ${viol.toFixed(3)} points`,
    );
  }
  const main = verdicts(cells, 'sair');
  let tickP99 = NaN;
  if ((flags.get('--tick-bench') ?? 'on') === 'on') {
    const t = await sairTickBench({ experiences: 10_000 });
    tickP99 = t.p99Ms;
    console.log(`tick compute with ${t.experiences} experiences in memory (${t.cells} cells, ${(t.bytes / 1e6).toFixed(1)} MB): p50 ${t.p50Ms.toFixed(2)} ms, p99 ${t.p99Ms.toFixed(2)} ms over ${t.ticks} ticks`);
  }
  console.log(
    `summary: cheapest_at_slo=${main.cheapest}/${n} attainment_995=${main.attained}/${n} no_worse_than_hpa=${main.noWorse}/${n} selector_applied_pct=${main.selectorPct.toFixed(1)} tick_p99_ms=${tickP99.toFixed(2)}`,
  );
}

await main();
