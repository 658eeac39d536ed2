// `npm run bench:policy`: SAIR against the baselines on the simulator matrix, then the decision
// cost of a tick. Costs are packed (whole GPUs in use, as a cluster bills them; the cost targets
// use these), with the share-priced figure of earlier results beside them. SAIR runs twice: with the built-in bandit selector, and with the LLM selector
// against the scripted OpenAI-compatible server of test/support/fake-llm.ts over real HTTP. That
// server is a stand-in for a model, not a model: it answers from the prompt by one fixed rule
// (see ruleAnswer there), so "SAIR-LLM(scripted)" measures the LLM path end to end, not an LLM.
// Flags: --seeds N (5) --duration-min M (60) --pipelines a,b|paper|all --workloads x,y|paper|matrix|all
//        --controllers list --jobs N (parallel processes, 2) --tick-runs-min M (240)
//        --feasibility on|off (on: the best static allocation within HPA's cost in stationary cells, and
//        in every cell the P99 floor with every stage at its largest allocation)
//        --warm-runs N (3): for sair-warm, how many runs of the cell (seeds 101..) fill its experience first.
//        --surge-reserve R (4): for sair-reserve, the surge each GPU stage meets by raising shares alone.
// Two more SAIR rows, not run by default, measure what its in-context learning adds: sair-priors is
// SAIR-bandit with its learned statistics ignored (priors and guard only); sair-warm starts every
// measured run with the experience buffer that --warm-runs earlier runs of the same cell left.
// A third, sair-budget, is SAIR-bandit with a P99 budget of half the SLO (SAIR_P99_BUDGET=0.5):
// GPU cuts go deeper where P99 leaves room, which shows what that setting trades. A fourth,
// sair-reserve, is SAIR-bandit with a surge reserve (SAIR_SURGE_RESERVE, --surge-reserve, 4): more
// replicas at smaller shares, so that a 4x surge is met by raising shares, the opposite trade.
// Each (pipeline, workload) cell runs in a child process (`--cell pipeline:workload`) that prints
// its runs' measures as JSON, so cells run in parallel and the parent only aggregates.
import { fork } from 'node:child_process';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseFlags } from '../src/common/config.js';
import { meanCi } from '../src/common/stats.js';
import { createSairController, type SairController } from '../src/policy/controller.js';
import { features } from '../src/policy/experience.js';
import { seededRandom } from '../src/policy/random.js';
import { policySettings, type PolicySettings } from '../src/policy/settings.js';
import type { RewardValue } from '../src/policy/types.js';
import { BASELINES } from '../src/sim/baselines/index.js';
import { createStaticController } from '../src/sim/baselines/static.js';
import type { PipelineModel } from '../src/sim/pipeline.js';
import { BUILTIN_PIPELINES, PAPER_PIPELINES } from '../src/sim/builtin-pipelines.js';
import { BUILTIN_WORKLOADS, MATRIX_WORKLOADS, PAPER_WORKLOADS } from '../src/sim/builtin-workloads.js';
import {
  resolvePipelineArg,
  resolveWorkloadArg,
  runScenario,
  type ControllerFactory,
  type RunResult,
  type SimPorts,
} from '../src/sim/run.js';
import { startFakeLlm, type FakeLlm } from '../test/support/fake-llm.js';
import {
  describeAllocation,
  largestAllocation,
  notStationary,
  STATIONARY_KINDS,
  staticCandidates,
} from './feasibility.js';

const { flags } = parseFlags(process.argv.slice(2));
const list = (name: string, def: string[], groups: Record<string, string[]>): string[] => {
  const raw = flags.get(name);
  if (!raw) return def;
  return raw.split(',').flatMap((x) => groups[x] ?? [x]);
};
const seeds = Number(flags.get('--seeds') ?? 5);
const durationMs = Number(flags.get('--duration-min') ?? 60) * 60_000;
const pipelines = list('--pipelines', PAPER_PIPELINES, { paper: PAPER_PIPELINES, all: BUILTIN_PIPELINES });
const workloads = list('--workloads', PAPER_WORKLOADS, {
  paper: PAPER_WORKLOADS,
  matrix: MATRIX_WORKLOADS,
  all: BUILTIN_WORKLOADS,
});
const controllers = list(
  '--controllers',
  ['sair-bandit', 'sair-llm', 'hpa', 'keda', 'static', 'static-peak', 'oracle'],
  {},
);
const tickRunMs = Number(flags.get('--tick-runs-min') ?? 240) * 60_000;
const jobs = Math.max(1, Number(flags.get('--jobs') ?? Math.min(2, availableParallelism())));
const cellArg = flags.get('--cell');
const warmRuns = Number(flags.get('--warm-runs') ?? 3);
if (!Number.isInteger(warmRuns) || warmRuns < 1)
  throw new Error(`--warm-runs: "${flags.get('--warm-runs')}" is not an integer >= 1`);
const surgeReserve = Number(flags.get('--surge-reserve') ?? 4);
if (!(surgeReserve > 0 && surgeReserve <= 10)) throw new Error(`--surge-reserve: "${flags.get('--surge-reserve')}" is not a number above 0 and at most 10`);
const feasibilityFlag = flags.get('--feasibility') ?? 'on';
if (feasibilityFlag !== 'on' && feasibilityFlag !== 'off') {
  throw new Error(`--feasibility: "${feasibilityFlag}" is not on or off`);
}
const feasibilityOn = feasibilityFlag === 'on' && controllers.includes('hpa');
/** Static allocations screened at one seed per cell, and how many of the best are rerun with every seed. */
const SCREEN_MAX_RUNS = 60;
const CONFIRM_BEST = 3;

/** What the table needs of one run (a RunResult without its timeline). Infinity travels as null. */
interface Run {
  p99: number;
  viol: number;
  attain: number;
  /** Packed $/h (whole GPUs in use, replicas placed): what the cost targets compare. */
  cost: number;
  /** Share-priced $/h (replicas x share of a GPU), the figure before packing; printed beside. */
  shareCost: number;
  acc: number | null;
  /** SLO attainment over the requests finished after the first surge (see violationSplit). */
  attainLater: number;
  /** Fraction of the run's SLO-violating requests that finished up to the end of the first surge; null when none did violate. */
  earlyViolShare: number | null;
  /** When the first surge began, ms from the start; null when the rate never surged. */
  surgeAt: number | null;
  tickErrors: number;
  lastTickError?: string;
}

/** A surge: the arrival rate of a scrape above this multiple of the run's median rate. */
const SURGE = 1.5;
/** How long after the first surge began its violations are counted as its own (queues drain, replicas start). */
const SURGE_TAIL_MS = 5 * 60_000;

/**
 * Violating and finished requests per scrape (throughput x scrape interval approximates finished),
 * split at the end of the run's first surge: the first time the load jumps, no reactive controller
 * has seen it before (for the paper's burst, the burst at 9 min; for the spike workload, the spike
 * at 20 min, its only one in an hour).
 */
function violationSplit(r: RunResult): {
  attainLater: number;
  earlyViolShare: number | null;
  surgeAt: number | null;
} {
  const rates = r.timeline.map((p) => p.arrivalRate).sort((a, b) => a - b);
  const median = rates[Math.floor(rates.length / 2)] ?? 0;
  const surgeAt = r.timeline.find((p) => p.arrivalRate > SURGE * median)?.t ?? null;
  const split = surgeAt === null ? -Infinity : surgeAt + SURGE_TAIL_MS;
  let early = 0;
  let late = 0;
  let lateDone = 0;
  let prevT = 0;
  for (const p of r.timeline) {
    const done = p.throughput * ((p.t - prevT) / 1000);
    prevT = p.t;
    const bad = (p.sloViolation ?? 0) * done;
    if (p.t <= split) early += bad;
    else {
      late += bad;
      lateDone += done;
    }
  }
  return {
    attainLater: lateDone > 0 ? 1 - late / lateDone : 1,
    earlyViolShare: early + late > 0 ? early / (early + late) : null,
    surgeAt,
  };
}

const toRun = (r: RunResult): Run => ({
  p99: r.latency.p99Ms,
  viol: r.sloViolationRate,
  attain: r.sloAttainment,
  cost: r.cost.packed.meanRatePerHour,
  shareCost: r.cost.meanRatePerHour,
  acc: r.bottleneck.accuracy,
  ...violationSplit(r),
  tickErrors: r.tickErrors,
  ...(r.lastTickError !== undefined ? { lastTickError: r.lastTickError } : {}),
});

function sairFactory(
  config: PolicySettings,
  seed: number,
  onCreate?: (c: SairController) => void,
): ControllerFactory {
  return (p: SimPorts) => {
    const c = createSairController({
      cluster: p.cluster,
      metrics: p.metrics,
      clock: p.clock,
      config,
      seed,
      intervalMs: 15_000,
    });
    onCreate?.(c);
    return c;
  };
}

function factoryFor(name: string, seed: number, llm: FakeLlm | null): ControllerFactory {
  if (name === 'sair-bandit') return sairFactory(policySettings({ selector: 'bandit' }), seed);
  if (name === 'sair-warm')
    return sairFactory(policySettings({ selector: 'bandit' }), seed, (c) => {
      if (warm.dump) c.buffer.load(warm.dump);
      warm.last = c;
    });
  if (name === 'sair-priors')
    return sairFactory(policySettings({ selector: 'bandit', exploration: { priorWeight: 1e6 } }), seed);
  if (name === 'sair-budget') return sairFactory(policySettings({ selector: 'bandit', p99Budget: 0.5 }), seed);
  if (name === 'sair-reserve') return sairFactory(policySettings({ selector: 'bandit', surgeReserve }), seed);
  if (name === 'sair-llm') {
    if (!llm) throw new Error('sair-llm needs the scripted server');
    return sairFactory(
      policySettings({
        selector: 'llm',
        llm: { baseUrl: llm.url, model: 'scripted-rule', timeoutMs: 2_000, maxRetries: 0 },
      }),
      seed,
    );
  }
  const b = BASELINES[name];
  if (!b)
    throw new Error(
      `--controllers: unknown controller "${name}"; expected sair-bandit, sair-llm, sair-priors, sair-warm, sair-budget, sair-reserve or one of ${Object.keys(BASELINES).join(', ')}`,
    );
  return b.factory;
}

interface Stat {
  mean: number;
  ci: number;
}
function stat(xs: number[]): Stat {
  if (xs.some((x) => !Number.isFinite(x))) return { mean: Infinity, ci: NaN };
  const { mean, ci } = meanCi(xs);
  return { mean, ci };
}
const show = (s: Stat, digits: number, scale = 1) =>
  !Number.isFinite(s.mean)
    ? 'inf'
    : `${(s.mean * scale).toFixed(digits)}${Number.isFinite(s.ci) ? ` ±${(s.ci * scale).toFixed(digits)}` : ''}`;

/** The feasibility search of one stationary cell (no nulls: the parent reads null as Infinity). */
interface Feasibility {
  rate: number;
  hpaP99s: number[];
  hpaCost: number;
  method: string;
  /** P99 per seed with every stage at its most replicas and largest share, whatever it costs. */
  floorP99s: number[];
  /** What that floor costs, $/h (mean over the seeds). */
  floorCost: number;
  screened: number;
  confirmed: number;
  runs: number;
  wallS: number;
  /** The lowest mean P99 among confirmed allocations within HPA's cost at >= 99 % attainment. */
  best?: { allocation: string; p99s: number[]; cost: number };
}

interface CellResult {
  byController: Record<string, Run[]>;
  llmCalls: number;
  feasibility?: Feasibility;
}

interface Cell {
  pipeline: string;
  workload: string;
  byController: Map<string, Run[]>;
  llmCalls: number;
  feasibility?: Feasibility;
}

const meanOf = (runs: Run[], f: (r: Run) => number) => stat(runs.map(f)).mean;

/** The parent reads every JSON null as Infinity (a P99 of dropped requests); the nullable fields get their null back. */
const nullIfInfinite = (x: number | null): number | null => (x === Infinity ? null : x);

/**
 * Static allocations within HPA's mean cost (bench/feasibility.ts picks them), each run at seed 1;
 * the CONFIRM_BEST lowest P99s at >= 99 % attainment are rerun with every seed, and the best of
 * those by mean P99 is the cell's answer.
 */
async function feasibilitySearch(pipeline: string, workload: string, hpa: Run[]): Promise<Feasibility> {
  const started = performance.now();
  const model = resolvePipelineArg(pipeline);
  const rate = resolveWorkloadArg(workload, model, 1).meanRate(0, durationMs);
  const hpaCost = meanOf(hpa, (r) => r.cost);
  const { allocations, method } = staticCandidates(model, rate, hpaCost, SCREEN_MAX_RUNS);
  let runCount = 0;
  const run = async (a: (typeof allocations)[number], seed: number): Promise<Run> => {
    runCount++;
    const controller: ControllerFactory = (p) => createStaticController(p, { ...a, name: 'static-search' });
    return toRun(await runScenario({ pipeline: model, workload, controller, seed, durationMs }));
  };
  const admissible = (runs: Run[]) =>
    meanOf(runs, (r) => r.cost) <= hpaCost + 1e-6 && meanOf(runs, (r) => r.attain) >= 0.99;
  const screened: { allocation: (typeof allocations)[number]; runs: Run[] }[] = [];
  for (const a of allocations) screened.push({ allocation: a, runs: [await run(a, 1)] });
  const finalists = screened
    .filter((c) => admissible(c.runs))
    .sort((x, y) => x.runs[0]!.p99 - y.runs[0]!.p99)
    .slice(0, CONFIRM_BEST);
  for (const f of finalists) {
    for (let seed = 2; seed <= seeds; seed++) f.runs.push(await run(f.allocation, seed));
  }
  const floor = await floorRuns(model, workload);
  runCount += floor.length;
  const best = finalists
    .filter((f) => admissible(f.runs))
    .sort((x, y) => meanOf(x.runs, (r) => r.p99) - meanOf(y.runs, (r) => r.p99))[0];
  return {
    rate,
    hpaP99s: hpa.map((r) => r.p99),
    hpaCost,
    method,
    floorP99s: floor.map((r) => r.p99),
    floorCost: meanOf(floor, (r) => r.cost),
    screened: screened.length,
    confirmed: finalists.length,
    runs: runCount,
    wallS: (performance.now() - started) / 1000,
    ...(best
      ? {
          best: {
            allocation: describeAllocation(model, best.allocation),
            p99s: best.runs.map((r) => r.p99),
            cost: meanOf(best.runs, (r) => r.cost),
          },
        }
      : {}),
  };
}

/** Every stage at its most replicas and largest share for the whole run, once per seed. */
async function floorRuns(model: PipelineModel, workload: string): Promise<Run[]> {
  const controller: ControllerFactory = (p) =>
    createStaticController(p, { ...largestAllocation(model), name: 'static-floor' });
  const runs: Run[] = [];
  for (let seed = 1; seed <= seeds; seed++) {
    runs.push(toRun(await runScenario({ pipeline: model, workload, controller, seed, durationMs })));
  }
  return runs;
}

/**
 * A cell whose load varies over time gets only the floor: every stage at its largest allocation
 * for the whole run. No controller within the stages' bounds holds more capacity at any moment,
 * and in the simulator more capacity never lengthens a wait, so a floor above the target rules the
 * target out there, at any cost.
 */
async function floorOnly(pipeline: string, workload: string, hpa: Run[]): Promise<Feasibility> {
  const started = performance.now();
  const model = resolvePipelineArg(pipeline);
  const floor = await floorRuns(model, workload);
  return {
    rate: resolveWorkloadArg(workload, model, 1).meanRate(0, durationMs),
    hpaP99s: hpa.map((r) => r.p99),
    hpaCost: meanOf(hpa, (r) => r.cost),
    method: 'floor only (load varies over time)',
    floorP99s: floor.map((r) => r.p99),
    floorCost: meanOf(floor, (r) => r.cost),
    screened: 0,
    confirmed: 0,
    runs: floor.length,
    wallS: (performance.now() - started) / 1000,
  };
}

/** sair-warm: the experience the warm-up hours left, which every measured run starts from. */
const warm: { dump: ReturnType<SairController['buffer']['dump']> | null; last: SairController | null } = {
  dump: null,
  last: null,
};

/** One cell, in this process: every controller and seed, then the feasibility search if it applies. */
async function runCell(pipeline: string, workload: string): Promise<CellResult> {
  const llm = controllers.includes('sair-llm') ? await startFakeLlm() : null;
  try {
    const byController: Record<string, Run[]> = {};
    const run = (name: string, seed: number) =>
      runScenario({ pipeline, workload, controller: factoryFor(name, seed, llm), seed, durationMs });
    for (const name of controllers) {
      const runs: Run[] = [];
      if (name === 'sair-warm') {
        // Warm-up runs of the same cell on other seeds, each going on from the last one's experience.
        warm.dump = null;
        for (let h = 0; h < warmRuns; h++) {
          await run(name, 101 + h);
          warm.dump = warm.last!.buffer.dump();
        }
      }
      for (let seed = 1; seed <= seeds; seed++) runs.push(toRun(await run(name, seed)));
      byController[name] = runs;
    }
    const hpa = byController.hpa;
    const feasibility =
      feasibilityOn && hpa
        ? notStationary(workload) === null
          ? await feasibilitySearch(pipeline, workload, hpa)
          : await floorOnly(pipeline, workload, hpa)
        : undefined;
    return { byController, llmCalls: llm?.requests.length ?? 0, ...(feasibility ? { feasibility } : {}) };
  } finally {
    await llm?.close();
  }
}

function runCellInChild(pipeline: string, workload: string): Promise<Cell> {
  const args = process.argv.slice(2).filter((a, i, all) => a !== '--jobs' && all[i - 1] !== '--jobs');
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [...args, '--cell', `${pipeline}:${workload}`], {
      stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
    });
    let out = '';
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code !== 0) return reject(new Error(`cell ${pipeline}:${workload} exited with ${code}`));
      const parsed = JSON.parse(out, (_k, v: unknown) => (v === null ? Infinity : v)) as CellResult;
      const byController = new Map(
        Object.entries(parsed.byController).map(([k, runs]) => [
          k,
          runs.map((r) => ({
            ...r,
            acc: nullIfInfinite(r.acc),
            earlyViolShare: nullIfInfinite(r.earlyViolShare),
            surgeAt: nullIfInfinite(r.surgeAt),
          })),
        ]),
      );
      resolve({
        pipeline,
        workload,
        byController,
        llmCalls: parsed.llmCalls,
        ...(parsed.feasibility ? { feasibility: parsed.feasibility } : {}),
      });
    });
  });
}

async function matrix(): Promise<Cell[]> {
  const todo: [string, string][] = [];
  for (const p of pipelines) for (const w of workloads) todo.push([p, w]);
  const cells: Cell[] = new Array(todo.length);
  let next = 0;
  let done = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < todo.length) {
      const i = next++;
      const [p, w] = todo[i]!;
      cells[i] = await runCellInChild(p, w);
      for (const [name, runs] of cells[i]!.byController) {
        for (const r of runs)
          if (r.tickErrors > 0)
            process.stderr.write(
              `warning: ${name} ${p}/${w}: ${r.tickErrors} tick errors, last: ${r.lastTickError}\n`,
            );
      }
      process.stderr.write(
        `  ${++done}/${todo.length} cells, ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
      );
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, todo.length) }, worker));
  return cells;
}

function printTable(cells: Cell[]): void {
  const header = [
    'pipeline',
    'workload',
    'controller',
    'P99 ms',
    'SLO viol %',
    'cost $/h packed',
    'share-priced $/h',
    'bottleneck acc %',
  ];
  const rows: string[][] = [];
  for (const c of cells) {
    for (const [name, runs] of c.byController) {
      const acc = runs.map((r) => r.acc).filter((a): a is number => a !== null);
      rows.push([
        c.pipeline,
        c.workload,
        name === 'sair-llm' ? 'SAIR-LLM(scripted)' : name === 'sair-bandit' ? 'SAIR-bandit' : name,
        show(stat(runs.map((r) => r.p99)), 0),
        show(stat(runs.map((r) => r.viol)), 2, 100),
        show(stat(runs.map((r) => r.cost)), 3),
        show(stat(runs.map((r) => r.shareCost)), 3),
        acc.length > 0 ? show(stat(acc), 1, 100) : '-',
      ]);
    }
  }
  console.log(
    `\nSimulator matrix: ${pipelines.length} pipelines x ${workloads.length} workloads, ${seeds} seeds each, ${durationMs / 60_000} min per run; mean ±95% CI`,
  );
  printColumns(header, rows);
}

function printColumns(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

/**
 * A cell's P99 target (half HPA's mean P99) and whether a mean's margin to it lies inside the 95 %
 * CIs of the two means, where the verdict could flip with other seeds.
 */
function p99Target(f: Feasibility): { hpa: Stat; target: number; withinCis: (x: Stat) => boolean } {
  const hpa = stat(f.hpaP99s);
  const target = 0.5 * hpa.mean;
  return { hpa, target, withinCis: (x) => Math.abs(x.mean - target) < Math.hypot(x.ci, 0.5 * hpa.ci) };
}

/** The columns both feasibility tables start with: the cell, HPA's P99 and cost, and the P99 target. */
function targetColumns(c: Cell, t: { hpa: Stat; target: number }): string[] {
  return [c.pipeline, c.workload, show(t.hpa, 1), c.feasibility!.hpaCost.toFixed(3), t.target.toFixed(1)];
}

/** Which cells' P99 target (<= 50 % of HPA's P99 at no more than its cost) any static allocation reaches. */
function printFeasibility(cells: Cell[]): void {
  if (feasibilityFlag === 'off') return;
  if (!controllers.includes('hpa')) {
    console.log(
      '\nFeasibility: skipped, --controllers does not include hpa (its cost is the budget and its P99 the reference).',
    );
    return;
  }
  const searched = cells.filter((c) => c.feasibility && notStationary(c.workload) === null);
  const skipped = workloads.filter((w) => notStationary(w) !== null);
  const skipLines = () => {
    for (const w of skipped) console.log(`  ${w}: no search, ${notStationary(w)} (the floor below still does)`);
  };
  if (searched.length === 0) {
    console.log(`\nFeasibility: no stationary workload (${STATIONARY_KINDS.join(', ')}) among --workloads.`);
    skipLines();
    printFloors(cells);
    return;
  }
  console.log(
    `\nFeasibility: the lowest P99 found among static allocations at no more than HPA's mean packed cost and >= 99% SLO attainment, per stationary cell` +
      `\n(candidates screened at seed 1, the ${CONFIRM_BEST} lowest P99s rerun with all ${seeds} seeds, ${durationMs / 60_000} min per run; means over the seeds;` +
      `\n ±95% CI; target = 50% of HPA's P99; floor = every stage at its most replicas and largest share, whatever it costs)`,
  );
  const header = [
    'pipeline',
    'workload',
    'HPA P99 ms',
    'HPA $/h',
    'target P99 ms',
    'best P99 ms',
    'best $/h',
    'best/HPA',
    'P99 target',
    'floor P99 ms',
    'allocation',
  ];
  const rows = searched.map((c) => {
    const f = c.feasibility!;
    const t = p99Target(f);
    const { hpa, target, withinCis } = t;
    const b = f.best;
    const best = b ? stat(b.p99s) : undefined;
    const close = best !== undefined && withinCis(best);
    const verdict = best !== undefined && best.mean <= target ? 'reachable' : 'not reachable';
    return [
      ...targetColumns(c, t),
      best ? show(best, 1) : '-',
      b ? b.cost.toFixed(3) : '-',
      best ? (best.mean / hpa.mean).toFixed(3) : '-',
      close ? `${verdict} (within CIs)` : verdict,
      show(stat(f.floorP99s), 1),
      b ? b.allocation : 'none within the cost at >= 99% attainment',
    ];
  });
  printColumns(header, rows);
  for (const c of searched) {
    const f = c.feasibility!;
    console.log(
      `  ${c.pipeline}/${c.workload} at ${f.rate.toFixed(0)} req/s: ${f.method}; ${f.screened} screened, ${f.confirmed} confirmed, ${f.runs} runs in ${f.wallS.toFixed(1)} s`,
    );
  }
  skipLines();
  if (
    searched.some((c) => resolvePipelineArg(c.pipeline).stages.filter((s) => s.kind === 'gpu').length > 1)
  ) {
    console.log(
      '  With more than one GPU stage every GPU stage gets the same share step, so the search is partial there and "not reachable" weaker.',
    );
  }
  console.log(
    '  Under stationary load a controller can only chase random fluctuations, minutes late after cold starts, so a static allocation is about the best it can hold: where the target is not reachable, no autoscaler, SAIR included, should be expected to meet it.',
  );
  printFloors(cells);
}

/**
 * Whether a cell's P99 target is out of reach: the floor is above it (any cell), or under
 * stationary load no allocation within HPA's cost reaches it; `close` when the margin is inside the
 * 95 % CIs. Null when nothing rules it out.
 */
function ruledOut(c: Cell): { close: boolean } | null {
  const f = c.feasibility;
  if (!f) return null;
  const { target, withinCis } = p99Target(f);
  const margin = (x: Stat) => ({ close: withinCis(x) });
  const floor = stat(f.floorP99s);
  if (floor.mean > target) return margin(floor);
  if (notStationary(c.workload) !== null) return null;
  const best = f.best ? stat(f.best.p99s) : undefined;
  if (best === undefined) return { close: false };
  return best.mean > target ? margin(best) : null;
}

/** The floor of the cells whose load varies, then per workload how many cells' P99 targets are out of reach. */
function printFloors(cells: Cell[]): void {
  const varying = cells.filter((c) => c.feasibility && notStationary(c.workload) !== null);
  if (varying.length > 0) {
    console.log(
      `\nP99 floor where load varies over time: every stage at its most replicas and largest share for the whole run, whatever it costs (${seeds} seeds; ±95% CI).` +
        `\nNo controller within the stages' bounds holds more capacity, and in the simulator more capacity never lengthens a wait: a floor above the target rules it out.`,
    );
    const rows = varying.map((c) => {
      const f = c.feasibility!;
      const t = p99Target(f);
      const floor = stat(f.floorP99s);
      const close = t.withinCis(floor);
      const verdict = floor.mean > t.target ? 'out of reach' : 'not ruled out';
      return [
        ...targetColumns(c, t),
        show(floor, 1),
        f.floorCost.toFixed(3),
        close ? `${verdict} (within CIs)` : verdict,
      ];
    });
    printColumns(['pipeline', 'workload', 'HPA P99 ms', 'HPA $/h', 'target P99 ms', 'floor P99 ms', 'floor $/h', 'P99 target'], rows);
    console.log(
      '  A floor under the target says only that the largest allocation reaches it; the target also asks for no more than HPA\'s cost.',
    );
  }
  const byWorkload = new Map<string, Cell[]>();
  for (const c of cells) if (c.feasibility) byWorkload.set(c.workload, [...(byWorkload.get(c.workload) ?? []), c]);
  if (byWorkload.size === 0) return;
  console.log(
    '\nP99 target out of reach, per workload (the target is 3 of 4 pipelines per workload; out = above the floor, or beyond every static allocation within HPA\'s cost under stationary load):',
  );
  for (const [workload, list] of byWorkload) {
    const out = list.filter((c) => ruledOut(c) !== null);
    const names = out.map((c) => `${c.pipeline}${ruledOut(c)!.close ? ' (within CIs)' : ''}`);
    console.log(
      `  ${workload.padEnd(10)} ${out.length}/${list.length} out of reach${out.length > 0 ? ` (${names.join(', ')})` : ''}; at most ${list.length - out.length}/${list.length} reachable`,
    );
  }
}

interface Verdicts {
  p99BetterThanHpa: [number, number];
  costBelowStaticPeak: [number, number];
  /** Cells where SAIR's P99 and cost are both no higher than HPA's (and its attainment no lower). */
  dominatesHpa: [number, number];
  accuracy: number | null;
}

function verdicts(cells: Cell[], sair: string): Verdicts {
  let p99k = 0;
  let p99n = 0;
  let costk = 0;
  let costn = 0;
  let domk = 0;
  const acc: number[] = [];
  for (const c of cells) {
    const s = c.byController.get(sair);
    if (!s) continue;
    for (const r of s) if (r.acc !== null) acc.push(r.acc);
    const hpa = c.byController.get('hpa');
    if (hpa) {
      p99n++;
      const better = meanOf(s, (r) => r.p99) <= 0.5 * meanOf(hpa, (r) => r.p99);
      const cheaper = meanOf(s, (r) => r.cost) <= meanOf(hpa, (r) => r.cost);
      if (better && cheaper) p99k++;
      const noWorse =
        meanOf(s, (r) => r.p99) <= meanOf(hpa, (r) => r.p99) &&
        meanOf(s, (r) => r.attain) >= meanOf(hpa, (r) => r.attain);
      if (noWorse && cheaper) domk++;
    }
    const peak = c.byController.get('static-peak');
    if (peak) {
      costn++;
      const cheap = meanOf(s, (r) => r.cost) <= 0.7 * meanOf(peak, (r) => r.cost);
      const attained = meanOf(s, (r) => r.attain) >= 0.99;
      if (cheap && attained) costk++;
    }
  }
  return {
    p99BetterThanHpa: [p99k, p99n],
    costBelowStaticPeak: [costk, costn],
    dominatesHpa: [domk, p99n],
    accuracy: acc.length > 0 ? acc.reduce((a, b) => a + b, 0) / acc.length : null,
  };
}

function printPerWorkload(cells: Cell[], sair: string): void {
  console.log(
    `\nTargets per workload for ${sair} (costs packed onto whole GPUs; P99 <= 50% of HPA at no higher cost; cost <= 70% of static-peak at >= 99% attainment; dominates_hpa: P99 and cost no higher than HPA's, attainment no lower):`,
  );
  for (const w of workloads) {
    const v = verdicts(
      cells.filter((c) => c.workload === w),
      sair,
    );
    console.log(
      `  ${w.padEnd(10)} p99_better_than_hpa=${v.p99BetterThanHpa.join('/')} cost_below_static_peak=${v.costBelowStaticPeak.join('/')} bottleneck_accuracy=${v.accuracy?.toFixed(3) ?? '-'} dominates_hpa=${v.dominatesHpa.join('/')}`,
    );
  }
}

/**
 * For the cells where SAIR misses 99 % attainment: how much of what it misses falls in the run's
 * first surge, which no controller has seen yet, and what it attains after it.
 */
function printWhereViolationsFall(cells: Cell[], sair: string): void {
  const rows: string[] = [];
  for (const c of cells) {
    const runs = c.byController.get(sair);
    const attain = runs ? meanOf(runs, (r) => r.attain) : 1;
    if (!runs || attain >= 0.99) continue;
    const shares = runs.map((r) => r.earlyViolShare).filter((x): x is number => x !== null);
    const starts = runs.map((r) => r.surgeAt).filter((x): x is number => x !== null);
    const at =
      starts.length > 0 ? `first surge at ${(stat(starts).mean / 60_000).toFixed(1)} min` : 'no surge';
    rows.push(
      `  ${`${c.pipeline}/${c.workload}`.padEnd(32)} attainment ${(100 * attain).toFixed(2)}%; ${at}; ` +
        `${shares.length > 0 ? (100 * stat(shares).mean).toFixed(0) : '-'}% of its SLO-violating requests up to ${SURGE_TAIL_MS / 60_000} min after it; ` +
        `attainment after that ${(100 * meanOf(runs, (r) => r.attainLater)).toFixed(2)}%`,
    );
  }
  if (rows.length === 0) return;
  console.log(
    `\nWhere ${sair} misses 99% attainment (surge: a scrape's arrival rate above ${SURGE}x the run's median; means over the seeds; per-scrape counts, so approximate):`,
  );
  for (const r of rows) console.log(r);
}

/** p99 of the tick's compute time (no LLM call) with 10,000 experiences, and the memory it holds. */
async function decisionCost(): Promise<{ p99Ms: number; experiences: number; cells: number; bytes: number }> {
  const config = policySettings({ selector: 'bandit' });
  let controller: SairController | null = null;
  const times: number[] = [];
  const cpuTimes: number[] = [];
  const pipeline = 'nlp-chain';
  const r = await runScenario({
    pipeline,
    workload: 'diurnal',
    seed: 1,
    durationMs: tickRunMs,
    controller: (p) => {
      const c = createSairController({
        cluster: p.cluster,
        metrics: p.metrics,
        clock: p.clock,
        config,
        seed: 1,
        intervalMs: p.pipeline.tickSeconds * 1000,
        onDecision: (d) => {
          times.push(d.computeMs);
          cpuTimes.push(d.computeCpuMs);
        },
      });
      // 10,000 experiences spread over the states and actions this pipeline visits.
      const rand = seededRandom(11);
      const n = p.pipeline.stages.length;
      const keys = ['hold'];
      for (let i = 0; i < n; i++)
        keys.push(`s${i}+1`, `s${i}+2`, `s${i}+3`, `s${i}-1`, `s${i}-2`, `s${i}:gpu+`, `s${i}:gpu-`);
      const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
      for (let k = 0; k < 10_000; k++) {
        const pressure = Array.from({ length: n }, () => rand() * 1.4);
        c.buffer.add(p.pipeline.id, {
          time: k,
          features: features(Math.floor(rand() * n), pressure, rand() * 1.5),
          actionKey: keys[Math.floor(rand() * keys.length)]!,
          reward: (Math.floor(rand() * 3) - 1) as RewardValue,
          outcome: out,
          reference: out,
          epsilon: { p99Ratio: 0.05, costRate: 0.02 },
        });
      }
      controller = c;
      return c;
    },
  });
  const q = (xs: number[], p: number) =>
    xs[Math.min(xs.length - 1, Math.max(0, Math.ceil(p * xs.length) - 1))] ?? NaN;
  const sortedOf = (xs: number[]) => [...xs].sort((a, b) => a - b);
  // The first ticks run before the JIT has compiled the hot paths; steady state excludes them.
  const WARMUP = 20;
  const wall = sortedOf(times);
  const cpu = sortedOf(cpuTimes);
  const wallSteady = sortedOf(times.slice(WARMUP));
  const cpuSteady = sortedOf(cpuTimes.slice(WARMUP));
  const p99 = q(cpuSteady, 0.99);
  const c = controller as SairController | null;
  const s = c ? c.bufferStats() : { cells: 0, experiences: 0, bytes: 0 };
  const fmt = (xs: number[]) =>
    `p50=${q(xs, 0.5).toFixed(3)} p99=${q(xs, 0.99).toFixed(3)} max=${q(xs, 1).toFixed(3)} ms`;
  console.log(
    `\nDecision cost (${pipeline}/diurnal, ${r.ticks} ticks, 10,000 experiences preloaded, bandit selector, no LLM call):`,
  );
  console.log(`  all ticks:    wall ${fmt(wall)}; CPU ${fmt(cpu)}`);
  console.log(
    `  steady state (first ${WARMUP} ticks excluded): wall ${fmt(wallSteady)}; CPU ${fmt(cpuSteady)}`,
  );
  console.log(
    `  tick_p99_ms in the summary is the steady-state CPU p99 (wall time on this shared machine includes other processes' time; load average ${loadavg()[0]!.toFixed(1)})`,
  );
  console.log(
    `  buffer: ${s.experiences} experiences in ${s.cells} cells, ~${(s.bytes / 1024 / 1024).toFixed(2)} MiB estimated (limits ${config.buffer.maxEntries} cells, ${config.buffer.maxBytes / 1024 / 1024} MiB)`,
  );
  return { p99Ms: p99, ...s };
}

async function memoryBound(): Promise<void> {
  const config = policySettings({ buffer: { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 } });
  const { ExperienceBuffer } = await import('../src/policy/experience.js');
  const b = new ExperienceBuffer(config.buffer);
  const rand = seededRandom(5);
  const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
  for (let k = 0; k < 50_000; k++) {
    b.add('p', {
      time: k,
      features: features(k % 4, [rand() * 3, rand() * 3, rand() * 3, rand() * 3], rand() * 3),
      actionKey: `s${k % 4}+${1 + (k % 3)}`,
      reward: (Math.floor(rand() * 3) - 1) as RewardValue,
      outcome: out,
      reference: out,
      epsilon: { p99Ratio: 0.05, costRate: 0.02 },
    });
  }
  console.log(
    `  memory bound: after 50,000 inserts the buffer holds ${b.size} cells / ${b.experiences} experiences, ~${(b.bytes / 1024 / 1024).toFixed(2)} MiB estimated (limit 8 MiB); process heap now ${(process.memoryUsage().heapUsed / 1024 / 1024).toFixed(1)} MiB`,
  );
}

if (cellArg) {
  const [p, w] = cellArg.split(':');
  if (!p || !w) throw new Error(`--cell: "${cellArg}" is not pipeline:workload`);
  process.stdout.write(JSON.stringify(await runCell(p, w)));
} else {
  const started = performance.now();
  const cells = await matrix();
  printTable(cells);
  printFeasibility(cells);
  if (controllers.includes('sair-llm')) printPerWorkload(cells, 'sair-llm');
  printPerWorkload(cells, 'sair-bandit');
  printWhereViolationsFall(cells, 'sair-bandit');
  if (controllers.includes('sair-llm')) {
    const calls = cells.reduce((n, c) => n + c.llmCalls, 0);
    console.log(
      `\nSAIR-LLM(scripted): ${calls} chat completions served by the scripted rule server over HTTP (a stand-in for a model, not a model).`,
    );
  }
  console.log(
    `matrix wall time ${((performance.now() - started) / 1000).toFixed(0)} s with ${jobs} parallel cells`,
  );
  const cost = await decisionCost();
  await memoryBound();
  const v = verdicts(cells, 'sair-bandit');
  console.log('\nThe summary is for SAIR-bandit.');
  console.log(
    `summary: p99_better_than_hpa=${v.p99BetterThanHpa.join('/')} cost_below_static_peak=${v.costBelowStaticPeak.join('/')} bottleneck_accuracy=${v.accuracy?.toFixed(3) ?? 'n/a'} tick_p99_ms=${cost.p99Ms.toFixed(2)}`,
  );
}
