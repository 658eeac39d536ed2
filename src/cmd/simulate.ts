// `sair simulate`: run a pipeline x workload x controller scenario in the simulator and print a
// table, writing JSON and a self-contained HTML plot; or, with --matrix, every scenario x
// controller x seed with mean ± 95 % CI. Flags and env go through src/common/config.ts.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { fields, helpText, loadConfig, type ConfigOf, type ConfigSpec } from '../common/config.js';
import { ConfigError, ValidationError } from '../common/errors.js';
import { BUILTIN_PIPELINES, ISSUE_PIPELINES, PAPER_PIPELINES } from '../sim/builtin-pipelines.js';
import { BUILTIN_WORKLOADS, MATRIX_WORKLOADS, PAPER_WORKLOADS } from '../sim/builtin-workloads.js';
import { BASELINE_NAMES, controllerFactory, type SeededFactory } from '../sim/controllers.js';
import { matrixTable, runHtml, runTable, summarizeMatrix, toJson } from '../sim/report.js';
import { generateScenario, generateSuite, HELD_OUT_SEEDS, scenarioYaml } from '../sim/generator.js';
import { runMatrix, type MatrixScenario } from '../sim/matrix.js';
import type { RunResult } from '../sim/run.js';

const SUMMARY = 'Simulate a pipeline under a workload and a controller (or the whole matrix) and report P99, SLO, cost and bottlenecks';

const DURATION_FORM = 'a duration such as 2h, 90m, 600s or 1500ms';

/** Parse `2h`, `90m`, `600s`, `1500ms` (or bare seconds) into ms. */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!m) return null;
  const v = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? v : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : v * 3_600_000;
  return ms > 0 ? ms : null;
}

const duration = (def: string) =>
  z
    .string()
    .default(def)
    .transform((s, ctx) => {
      const ms = parseDuration(s);
      if (ms === null) {
        ctx.addIssue({ code: 'custom', message: DURATION_FORM });
        return z.NEVER;
      }
      return ms;
    });

const SEED_RANGE_FORM = `a range FROM:TO of generator seeds (integers >= 0, FROM <= TO, at most 1000 of them), such as ${HELD_OUT_SEEDS.from}:${HELD_OUT_SEEDS.to} (the held-out set)`;

/** Parse `FROM:TO` (inclusive) into the first seed and the count, or null. */
export function parseSeedRange(text: string): { from: number; count: number } | null {
  const m = /^(\d+):(\d+)$/.exec(text.trim());
  if (!m) return null;
  const from = Number(m[1]);
  const to = Number(m[2]);
  return to >= from && to - from < 1000 && Number.isSafeInteger(to) ? { from, count: to - from + 1 } : null;
}

const nameList = (known: readonly string[]) =>
  z
    .string()
    .min(1)
    .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))
    .refine((xs) => xs.length > 0 && xs.every((x) => known.includes(x)))
    .optional();

const fileOrNameList = () =>
  z
    .string()
    .min(1)
    .transform((s) => s.split(',').map((x) => x.trim()).filter((x) => x !== ''))
    .optional();

interface LlmEndpoint {
  baseUrl: string;
  model: string;
  apiKey?: string;
}

/** SAIR's own controller (the bandit, or an OpenAI-compatible LLM when an endpoint is set), loaded only when asked for. */
function sairFactory(llm: LlmEndpoint | undefined): SeededFactory {
  return async (seed) => {
    const [{ createSairController }, { policySettings }] = await Promise.all([import('../policy/controller.js'), import('../policy/settings.js')]);
    const config = policySettings(llm ? { selector: 'llm', llm: { ...llm } } : { selector: 'bandit' });
    return (ports) => createSairController({ cluster: ports.cluster, metrics: ports.metrics, clock: ports.clock, config, seed });
  };
}

export const CONTROLLER_NAMES = [...BASELINE_NAMES, 'sair'];

export const simulateSpec = {
  pipeline: { env: 'SAIR_SIM_PIPELINE', flag: '--pipeline', form: `a built-in pipeline (${BUILTIN_PIPELINES.join(', ')}) or a YAML file`, help: 'Pipeline to simulate', schema: fields.string('nlp-chain') },
  workload: { env: 'SAIR_SIM_WORKLOAD', flag: '--workload', form: `a built-in workload (${BUILTIN_WORKLOADS.join(', ')}) or a YAML file`, help: 'Arrival pattern', schema: fields.string('diurnal') },
  controller: {
    env: 'SAIR_SIM_CONTROLLER',
    flag: '--controller',
    form: `one or more of ${CONTROLLER_NAMES.join(', ')}, comma-separated`,
    help: 'Controller(s) to run; default hpa, or all of them with --matrix',
    schema: nameList(CONTROLLER_NAMES),
  },
  seed: { env: 'SAIR_SIM_SEED', flag: '--seed', form: 'an integer >= 0', help: 'PRNG seed (first seed with --matrix)', schema: z.coerce.number().int().min(0).default(1) },
  duration: { env: 'SAIR_SIM_DURATION', flag: '--duration', form: DURATION_FORM, help: 'Simulated time per run (default shown in ms)', schema: duration('1h') },
  out: { env: 'SAIR_SIM_OUT', flag: '--out', form: 'a directory path', help: 'Where the JSON and HTML files go', schema: fields.string('out/sim') },
  format: { env: 'SAIR_SIM_FORMAT', flag: '--format', form: '"table" or "json"', help: 'What goes to stdout', schema: fields.enumOf(['table', 'json'] as const, 'table') },
  matrix: { env: 'SAIR_SIM_MATRIX', flag: '--matrix', form: 'true or false', help: 'Run every pipeline x workload x controller x seed', schema: fields.boolean(false) },
  suite: {
    env: 'SAIR_SIM_SUITE',
    flag: '--suite',
    form: '"issue", "paper", "all" or "generated"',
    help: `Scenarios for --matrix: issue (${ISSUE_PIPELINES.join(', ')} x ${MATRIX_WORKLOADS.join(', ')}), paper (${PAPER_PIPELINES.join(', ')} x ${PAPER_WORKLOADS.join(', ')}), all, or generated (each generated pipeline with its own workload, see --generated-seeds)`,
    schema: fields.enumOf(['issue', 'paper', 'all', 'generated'] as const, 'issue'),
  },
  generatedSeeds: {
    env: 'SAIR_SIM_GENERATED_SEEDS',
    flag: '--generated-seeds',
    form: SEED_RANGE_FORM,
    help: `Generator seeds for --suite generated; ${HELD_OUT_SEEDS.from}-${HELD_OUT_SEEDS.to} are held out for reporting, 1-99 are for development`,
    schema: z.string().default(`${HELD_OUT_SEEDS.from}:${HELD_OUT_SEEDS.from + 19}`).refine((s) => parseSeedRange(s) !== null),
  },
  generate: {
    env: 'SAIR_SIM_GENERATE',
    flag: '--generate',
    form: 'a generator seed, an integer >= 0',
    help: 'Write generated scenario SEED as gen-SEED-pipeline.yaml and gen-SEED-workload.yaml under --out (runs nothing)',
    schema: z.coerce.number().int().min(0).optional(),
  },
  seeds: { env: 'SAIR_SIM_SEEDS', flag: '--seeds', form: 'an integer from 1 to 30', help: 'Seeds per scenario with --matrix', schema: z.coerce.number().int().min(1).max(30).default(3) },
  pipelines: {
    env: 'SAIR_SIM_PIPELINES',
    flag: '--pipelines',
    form: 'pipeline names or YAML files, comma-separated',
    help: 'Pipelines for --matrix, instead of the suite’s',
    schema: fileOrNameList(),
  },
  workloads: {
    env: 'SAIR_SIM_WORKLOADS',
    flag: '--workloads',
    form: 'workload names or YAML files, comma-separated',
    help: 'Workloads for --matrix, instead of the suite’s',
    schema: fileOrNameList(),
  },
  progress: { env: 'SAIR_SIM_PROGRESS', flag: '--progress', form: '"auto", "always" or "never"', help: 'Progress bar on stderr (auto: when stderr is a terminal and the work is long)', schema: fields.enumOf(['auto', 'always', 'never'] as const, 'auto') },
  scrapeInterval: { env: 'SAIR_SIM_SCRAPE_INTERVAL', flag: '--scrape-interval', form: DURATION_FORM, help: 'Prometheus-like scrape interval (default in ms)', schema: duration('15s') },
  window: { env: 'SAIR_SIM_WINDOW', flag: '--window', form: DURATION_FORM, help: 'Metrics query window, rate over this (default in ms)', schema: duration('30s') },
  llmBaseUrl: { env: 'SAIR_LLM_BASE_URL', flag: '--llm-base-url', form: 'an http(s) URL of an OpenAI-compatible API', help: 'LLM for --controller sair (default: the bandit)', schema: fields.optionalString() },
  llmModel: { env: 'SAIR_LLM_MODEL', flag: '--llm-model', form: 'a model name', help: 'Model for --llm-base-url', schema: fields.optionalString() },
  llmApiKey: { env: 'SAIR_LLM_API_KEY', flag: '--llm-api-key', form: 'an API key', help: 'Key for --llm-base-url, if it needs one', schema: fields.optionalString() },
} satisfies ConfigSpec;

export type SimulateConfig = ConfigOf<typeof simulateSpec>;

export interface Io {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** Whether stderr is a terminal (for the progress bar). */
  isTty: boolean;
}

/** A progress bar on stderr, redrawn at most every 100 ms of wall time. */
function progressBar(io: Io, enabled: boolean, total: number): { update: (done: number, label: string) => void; end: () => void } {
  let last = 0;
  return {
    update(done, label) {
      if (!enabled) return;
      const now = performance.now();
      if (now - last < 100 && done < total) return;
      last = now;
      const f = Math.min(1, done / total);
      const width = 30;
      const filled = Math.round(f * width);
      io.stderr(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(100 * f).toFixed(0).padStart(3)}% ${label.slice(0, 60).padEnd(60)}`);
    },
    end() {
      if (enabled) io.stderr(`\r${' '.repeat(100)}\r`);
    },
  };
}

/** The pipeline-workload pairs to run: one, the suite's product, the product of --pipelines and --workloads, or the generated scenarios. */
function matrixScenarios(cfg: SimulateConfig): MatrixScenario[] {
  if (!cfg.matrix) return [{ pipeline: cfg.pipeline, workload: cfg.workload }];
  if (cfg.suite === 'generated') {
    if (cfg.pipelines !== undefined || cfg.workloads !== undefined) {
      throw new ConfigError([new ValidationError('--pipelines / --workloads (SAIR_SIM_PIPELINES / SAIR_SIM_WORKLOADS)', 'unset with --suite generated (each generated pipeline has its own workload)', [...(cfg.pipelines ?? []), ...(cfg.workloads ?? [])].join(','))]);
    }
    const range = parseSeedRange(cfg.generatedSeeds)!;
    return generateSuite(range.from, range.count).map((g) => ({ pipeline: g.pipeline, workload: g.workload }));
  }
  const suite = {
    issue: { pipelines: ISSUE_PIPELINES, workloads: MATRIX_WORKLOADS },
    paper: { pipelines: PAPER_PIPELINES, workloads: PAPER_WORKLOADS },
    all: { pipelines: BUILTIN_PIPELINES, workloads: [...MATRIX_WORKLOADS, ...PAPER_WORKLOADS] },
  }[cfg.suite];
  const workloads = cfg.workloads ?? suite.workloads;
  return (cfg.pipelines ?? suite.pipelines).flatMap((pipeline) => workloads.map((workload) => ({ pipeline, workload })));
}

function makeOutDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (err) {
    throw new ConfigError([new ValidationError('--out (env SAIR_SIM_OUT)', 'a directory that can be created and written', `${dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)]);
  }
}

/** `--generate SEED`: the scenario's two YAML files, ready for --pipeline and --workload. */
function writeGenerated(seed: number, dir: string, io: Io): void {
  const g = generateScenario(seed);
  const yaml = scenarioYaml(g);
  const pipelinePath = join(dir, `${g.name}-pipeline.yaml`);
  const workloadPath = join(dir, `${g.name}-workload.yaml`);
  writeFileSync(pipelinePath, yaml.pipeline);
  writeFileSync(workloadPath, yaml.workload);
  const p = g.pipeline;
  io.stdout(
    `${g.name}: ${p.stages.length} stages (${p.stages.map((s) => `${s.name}/${s.kind}`).join(', ')}), SLO ${p.sloP99Ms} ms, reference rate ${p.referenceRate}/s; workload ${g.shape}, peak ${g.peakRelative}x\n` +
      `wrote ${pipelinePath} and ${workloadPath}\nrun it: npx sair simulate --pipeline ${pipelinePath} --workload ${workloadPath} --controller hpa,oracle\n`,
  );
}

function fileStem(r: RunResult): string {
  return `${r.pipeline}-${r.workload}-${r.controller}-s${r.seed}`.replace(/[^A-Za-z0-9_.-]/g, '_');
}

export async function runSimulate(argv: readonly string[], env: Record<string, string | undefined>, io: Io): Promise<RunResult[]> {
  const cfg = loadConfig(simulateSpec, env, argv);
  if ((cfg.llmBaseUrl === undefined) !== (cfg.llmModel === undefined)) {
    throw new ConfigError([new ValidationError('--llm-base-url / --llm-model (SAIR_LLM_BASE_URL / SAIR_LLM_MODEL)', 'both set (an LLM endpoint) or both unset (the bandit decides)')]);
  }
  const llm = cfg.llmBaseUrl !== undefined && cfg.llmModel !== undefined ? { baseUrl: cfg.llmBaseUrl, model: cfg.llmModel, ...(cfg.llmApiKey ? { apiKey: cfg.llmApiKey } : {}) } : undefined;
  if (cfg.generate !== undefined) {
    makeOutDir(cfg.out);
    writeGenerated(cfg.generate, cfg.out, io);
    return [];
  }
  const controllers = cfg.controller ?? (cfg.matrix ? CONTROLLER_NAMES : ['hpa']);
  const scenarios = matrixScenarios(cfg);
  const seeds = cfg.matrix ? Array.from({ length: cfg.seeds }, (_, i) => cfg.seed + i) : [cfg.seed];
  const total = scenarios.length * controllers.length * seeds.length;
  const long = cfg.matrix || total * cfg.duration >= 4 * 3_600_000;
  const bar = progressBar(io, cfg.progress === 'always' || (cfg.progress === 'auto' && io.isTty && long), total);
  makeOutDir(cfg.out);

  const results = await runMatrix({
    scenarios,
    controllers,
    seeds,
    factory: (name, seed) => controllerFactory(name, seed, { sair: sairFactory(llm) }),
    durationMs: cfg.duration,
    scrapeIntervalMs: cfg.scrapeInterval,
    windowMs: cfg.window,
    onProgress: (done, _total, label) => bar.update(done, label),
    onRun: (r) => {
      if (cfg.matrix) return;
      const stem = join(cfg.out, fileStem(r));
      writeFileSync(`${stem}.json`, toJson(r));
      writeFileSync(`${stem}.html`, runHtml(r));
      bar.end();
      if (cfg.format === 'json') io.stdout(`${toJson(r)}\n`);
      else io.stdout(`${runTable(r)}wrote ${stem}.json and ${stem}.html\n\n`);
    },
  });
  bar.end();
  if (cfg.matrix) {
    const rows = summarizeMatrix(results);
    const path = join(cfg.out, 'matrix.json');
    const runs = results.map(({ timeline: _t, bottleneck, ...rest }) => ({ ...rest, bottleneck: { accuracy: bottleneck.accuracy, reportedTicks: bottleneck.reportedTicks } }));
    writeFileSync(path, toJson({ durationMs: cfg.duration, seeds, rows, runs }));
    if (cfg.format === 'json') io.stdout(`${toJson(rows)}\n`);
    else io.stdout(`${matrixTable(rows)}\nmean ± 95% CI over ${seeds.length} seed(s), ${(cfg.duration / 60_000).toFixed(0)} min each; P99 counts drops as infinite. wrote ${path}\n`);
  }
  return results;
}

export const command: Command = {
  name: 'simulate',
  summary: SUMMARY,
  help: () =>
    helpText('simulate', SUMMARY, simulateSpec) +
    `\nPipelines: ${BUILTIN_PIPELINES.join(', ')}\nWorkloads: ${BUILTIN_WORKLOADS.join(', ')}\nControllers: ${CONTROLLER_NAMES.join(', ')}\n` +
    `Examples:\n  npx sair simulate --pipeline rag --workload spike --controller hpa,oracle --duration 2h\n  npx sair simulate --matrix --seeds 5 --duration 1h\n` +
    `  npx sair simulate --matrix --suite generated --generated-seeds 1000:1019 --controller hpa,keda\n  npx sair simulate --generate 1003 --out out/gen\n`,
  async run(argv, env) {
    await runSimulate(argv, env, { stdout: (s) => process.stdout.write(s), stderr: (s) => process.stderr.write(s), isTty: process.stderr.isTTY === true });
  },
};
