// `npm run bench:policy`: SAIR against the baselines on the simulator matrix, then the decision
// cost of a tick. SAIR runs twice: with the built-in bandit selector, and with the LLM selector
// against the scripted OpenAI-compatible server of test/support/fake-llm.ts over real HTTP. That
// server is a stand-in for a model, not a model: it answers from the prompt by one fixed rule
// (see ruleAnswer there), so "SAIR-LLM(scripted)" measures the LLM path end to end, not an LLM.
// Flags: --seeds N (5) --duration-min M (60) --pipelines a,b|paper|all --workloads x,y|paper|all
//        --controllers list --tick-runs-min M (240).
import { performance } from 'node:perf_hooks';
import { parseFlags } from '../src/common/config.js';
import { createSairController, type SairController } from '../src/policy/controller.js';
import { features } from '../src/policy/experience.js';
import { seededRandom } from '../src/policy/random.js';
import { policySettings, type PolicySettings } from '../src/policy/settings.js';
import type { RewardValue } from '../src/policy/types.js';
import { BASELINES } from '../src/sim/baselines/index.js';
import { BUILTIN_PIPELINES, PAPER_PIPELINES } from '../src/sim/builtin-pipelines.js';
import { BUILTIN_WORKLOADS, MATRIX_WORKLOADS, PAPER_WORKLOADS } from '../src/sim/builtin-workloads.js';
import { runScenario, type ControllerFactory, type RunResult, type SimPorts } from '../src/sim/run.js';
import { startFakeLlm, type FakeLlm } from '../test/support/fake-llm.js';

const { flags } = parseFlags(process.argv.slice(2));
const list = (name: string, def: string[], groups: Record<string, string[]>): string[] => {
  const raw = flags.get(name);
  if (!raw) return def;
  return raw.split(',').flatMap((x) => groups[x] ?? [x]);
};
const seeds = Number(flags.get('--seeds') ?? 5);
const durationMs = Number(flags.get('--duration-min') ?? 60) * 60_000;
const pipelines = list('--pipelines', PAPER_PIPELINES, { paper: PAPER_PIPELINES, all: BUILTIN_PIPELINES });
const workloads = list('--workloads', [...PAPER_WORKLOADS, ...MATRIX_WORKLOADS], {
  paper: PAPER_WORKLOADS,
  matrix: MATRIX_WORKLOADS,
  all: BUILTIN_WORKLOADS,
});
const controllers = list('--controllers', ['sair-bandit', 'sair-llm', 'hpa', 'keda', 'static', 'static-peak', 'oracle'], {});
const tickRunMs = Number(flags.get('--tick-runs-min') ?? 240) * 60_000;

function sairFactory(config: PolicySettings, seed: number, onCreate?: (c: SairController) => void): ControllerFactory {
  return (p: SimPorts) => {
    const c = createSairController({ cluster: p.cluster, metrics: p.metrics, clock: p.clock, config, seed, intervalMs: 15_000 });
    onCreate?.(c);
    return c;
  };
}

function factoryFor(name: string, seed: number, llm: FakeLlm | null): ControllerFactory {
  if (name === 'sair-bandit') return sairFactory(policySettings({ selector: 'bandit' }), seed);
  if (name === 'sair-llm') {
    if (!llm) throw new Error('sair-llm needs the scripted server');
    return sairFactory(policySettings({ selector: 'llm', llm: { baseUrl: llm.url, model: 'scripted-rule', timeoutMs: 2_000, maxRetries: 0 } }), seed);
  }
  const b = BASELINES[name];
  if (!b) throw new Error(`--controllers: unknown controller "${name}"; expected sair-bandit, sair-llm or one of ${Object.keys(BASELINES).join(', ')}`);
  return b.factory;
}

// Two-sided 95 % Student t quantiles by degrees of freedom.
const T95 = [NaN, 12.71, 4.3, 3.18, 2.78, 2.57, 2.45, 2.36, 2.31, 2.26, 2.23, 2.2, 2.18, 2.16, 2.14, 2.13, 2.12, 2.11, 2.1, 2.09, 2.09];
interface Stat {
  mean: number;
  ci: number;
}
function stat(xs: number[]): Stat {
  const n = xs.length;
  if (n === 0) return { mean: NaN, ci: NaN };
  if (xs.some((x) => !Number.isFinite(x))) return { mean: Infinity, ci: NaN };
  const mean = xs.reduce((s, x) => s + x, 0) / n;
  if (n < 2) return { mean, ci: NaN };
  const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / (n - 1));
  return { mean, ci: ((T95[n - 1] ?? 1.96) * sd) / Math.sqrt(n) };
}
const show = (s: Stat, digits: number, scale = 1) =>
  !Number.isFinite(s.mean) ? 'inf' : `${(s.mean * scale).toFixed(digits)}${Number.isFinite(s.ci) ? ` ±${(s.ci * scale).toFixed(digits)}` : ''}`;

interface Cell {
  pipeline: string;
  workload: string;
  byController: Map<string, RunResult[]>;
}

async function matrix(llm: FakeLlm | null): Promise<Cell[]> {
  const cells: Cell[] = [];
  const total = pipelines.length * workloads.length * controllers.length * seeds;
  let done = 0;
  const started = performance.now();
  for (const pipeline of pipelines) {
    for (const workload of workloads) {
      const cell: Cell = { pipeline, workload, byController: new Map() };
      for (const name of controllers) {
        const runs: RunResult[] = [];
        for (let seed = 1; seed <= seeds; seed++) {
          const r = await runScenario({ pipeline, workload, controller: factoryFor(name, seed, llm), seed, durationMs });
          if (r.tickErrors > 0) process.stderr.write(`warning: ${name} ${pipeline}/${workload} seed ${seed}: ${r.tickErrors} tick errors, last: ${r.lastTickError}\n`);
          runs.push(r);
          done++;
        }
        cell.byController.set(name, runs);
      }
      cells.push(cell);
      process.stderr.write(`  ${done}/${total} runs, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    }
  }
  return cells;
}

function printTable(cells: Cell[]): void {
  const header = ['pipeline', 'workload', 'controller', 'P99 ms', 'SLO viol %', 'cost $/h', 'bottleneck acc %'];
  const rows: string[][] = [];
  for (const c of cells) {
    for (const [name, runs] of c.byController) {
      const acc = runs.map((r) => r.bottleneck.accuracy).filter((a): a is number => a !== null);
      rows.push([
        c.pipeline,
        c.workload,
        name === 'sair-llm' ? 'SAIR-LLM(scripted)' : name === 'sair-bandit' ? 'SAIR-bandit' : name,
        show(stat(runs.map((r) => r.latency.p99Ms)), 0),
        show(stat(runs.map((r) => r.sloViolationRate)), 2, 100),
        show(stat(runs.map((r) => r.cost.meanRatePerHour)), 3),
        acc.length > 0 ? show(stat(acc), 1, 100) : '-',
      ]);
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (r: string[]) => r.map((x, i) => x.padEnd(widths[i]!)).join('  ');
  console.log(`\nSimulator matrix: ${pipelines.length} pipelines x ${workloads.length} workloads, ${seeds} seeds each, ${durationMs / 60_000} min per run; mean ±95% CI`);
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}

interface Verdicts {
  p99BetterThanHpa: [number, number];
  costBelowStaticPeak: [number, number];
  accuracy: number | null;
}

function verdicts(cells: Cell[], sair: string): Verdicts {
  let p99k = 0;
  let p99n = 0;
  let costk = 0;
  let costn = 0;
  const acc: number[] = [];
  for (const c of cells) {
    const s = c.byController.get(sair);
    if (!s) continue;
    const mean = (runs: RunResult[], f: (r: RunResult) => number) => stat(runs.map(f)).mean;
    for (const r of s) if (r.bottleneck.accuracy !== null) acc.push(r.bottleneck.accuracy);
    const hpa = c.byController.get('hpa');
    if (hpa) {
      p99n++;
      const better = mean(s, (r) => r.latency.p99Ms) <= 0.5 * mean(hpa, (r) => r.latency.p99Ms);
      const cheaper = mean(s, (r) => r.cost.meanRatePerHour) <= mean(hpa, (r) => r.cost.meanRatePerHour);
      if (better && cheaper) p99k++;
    }
    const peak = c.byController.get('static-peak');
    if (peak) {
      costn++;
      const cheap = mean(s, (r) => r.cost.meanRatePerHour) <= 0.7 * mean(peak, (r) => r.cost.meanRatePerHour);
      const attained = mean(s, (r) => r.sloAttainment) >= 0.99;
      if (cheap && attained) costk++;
    }
  }
  return { p99BetterThanHpa: [p99k, p99n], costBelowStaticPeak: [costk, costn], accuracy: acc.length > 0 ? acc.reduce((a, b) => a + b, 0) / acc.length : null };
}

function printPerWorkload(cells: Cell[], sair: string): void {
  console.log(`\nTargets per workload for ${sair} (P99 <= 50% of HPA at no higher cost; cost <= 70% of static-peak at >= 99% attainment):`);
  for (const w of workloads) {
    const v = verdicts(
      cells.filter((c) => c.workload === w),
      sair,
    );
    console.log(
      `  ${w.padEnd(10)} p99_better_than_hpa=${v.p99BetterThanHpa.join('/')} cost_below_static_peak=${v.costBelowStaticPeak.join('/')} bottleneck_accuracy=${v.accuracy?.toFixed(3) ?? '-'}`,
    );
  }
}

/** p99 of the tick's compute time (no LLM call) with 10,000 experiences, and the memory it holds. */
async function decisionCost(): Promise<{ p99Ms: number; experiences: number; cells: number; bytes: number }> {
  const config = policySettings({ selector: 'bandit' });
  let controller: SairController | null = null;
  const times: number[] = [];
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
        onDecision: (d) => times.push(d.computeMs),
      });
      // 10,000 experiences spread over the states and actions this pipeline visits.
      const rand = seededRandom(11);
      const n = p.pipeline.stages.length;
      const keys = ['hold'];
      for (let i = 0; i < n; i++) keys.push(`s${i}+1`, `s${i}+2`, `s${i}+3`, `s${i}-1`, `s${i}-2`, `s${i}:gpu+`, `s${i}:gpu-`);
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
  const sorted = times.sort((a, b) => a - b);
  const p99 = sorted[Math.min(sorted.length - 1, Math.ceil(0.99 * sorted.length) - 1)] ?? NaN;
  const c = controller as SairController | null;
  const s = c ? c.bufferStats() : { cells: 0, experiences: 0, bytes: 0 };
  console.log(
    `\nDecision cost (${pipeline}/diurnal, ${r.ticks} ticks, bandit selector, no LLM call): tick compute p50=${sorted[Math.floor(sorted.length / 2)]?.toFixed(3)} ms p99=${p99.toFixed(3)} ms max=${sorted[sorted.length - 1]?.toFixed(3)} ms`,
  );
  console.log(`  buffer: ${s.experiences} experiences in ${s.cells} cells, ~${(s.bytes / 1024 / 1024).toFixed(2)} MiB estimated (limits ${config.buffer.maxEntries} cells, ${config.buffer.maxBytes / 1024 / 1024} MiB)`);
  return { p99Ms: p99, ...s };
}

async function memoryBound(): Promise<void> {
  const config = policySettings({ buffer: { maxEntries: 10_000, maxBytes: 8 * 1024 * 1024 } });
  const { ExperienceBuffer } = await import('../src/policy/experience.js');
  const b = new ExperienceBuffer(config.buffer);
  const rand = seededRandom(5);
  const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
  const heap0 = process.memoryUsage().heapUsed;
  for (let k = 0; k < 200_000; k++) {
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
  const heap1 = process.memoryUsage().heapUsed;
  console.log(
    `  memory bound: after 200,000 inserts the buffer holds ${b.size} cells / ${b.experiences} experiences, ~${(b.bytes / 1024 / 1024).toFixed(2)} MiB estimated (limit 8 MiB); heap grew ${((heap1 - heap0) / 1024 / 1024).toFixed(1)} MiB`,
  );
}

const needsLlm = controllers.includes('sair-llm');
const llm = needsLlm ? await startFakeLlm() : null;
try {
  const started = performance.now();
  const cells = await matrix(llm);
  printTable(cells);
  if (controllers.includes('sair-llm')) printPerWorkload(cells, 'sair-llm');
  printPerWorkload(cells, 'sair-bandit');
  if (llm) console.log(`\nSAIR-LLM(scripted): ${llm.requests.length} chat completions served by the scripted rule server (a stand-in for a model, not a model).`);
  const cost = await decisionCost();
  await memoryBound();
  const v = verdicts(cells, 'sair-bandit');
  console.log(`\nmatrix wall time ${((performance.now() - started) / 1000).toFixed(0)} s; the summary is for SAIR-bandit`);
  console.log(
    `summary: p99_better_than_hpa=${v.p99BetterThanHpa.join('/')} cost_below_static_peak=${v.costBelowStaticPeak.join('/')} bottleneck_accuracy=${v.accuracy?.toFixed(3) ?? 'n/a'} tick_p99_ms=${cost.p99Ms.toFixed(2)}`,
  );
} finally {
  await llm?.close();
}
