// The one matrix runner: every pipeline x workload (or each given pipeline-workload pair) x
// controller x seed, in that order, through runScenario. `sair simulate --matrix` and the
// benchmarks both use it, so a figure printed by one can be reproduced by the other. Cells run one
// after another; a caller that wants parallelism runs several matrices (one per cell) in child
// processes.
import type { PipelineModel } from './pipeline.js';
import { runScenario, type ControllerFactory, type RunResult } from './run.js';
import type { WorkloadFile } from './workload.js';

/** One pipeline with its own workload (a generated scenario), instead of a product. */
export interface MatrixScenario {
  pipeline: string | PipelineModel;
  workload: string | WorkloadFile;
}

export type MatrixOptions = MatrixRuns & ({ pipelines: readonly (string | PipelineModel)[]; workloads: readonly (string | WorkloadFile)[] } | { scenarios: readonly MatrixScenario[] });

interface MatrixRuns {
  controllers: readonly string[];
  seeds: readonly number[];
  /** A fresh controller factory for one run. */
  factory: (controller: string, seed: number) => ControllerFactory | Promise<ControllerFactory>;
  durationMs: number;
  scrapeIntervalMs?: number;
  windowMs?: number;
  /** Runs done (fractional within a run) out of the total, and the run's label. */
  onProgress?: (done: number, total: number, label: string) => void;
  /** Each finished run, as soon as it finishes. */
  onRun?: (r: RunResult) => void;
}

const nameOf = (x: string | { name?: string; kind?: string }): string => (typeof x === 'string' ? x : (x.name ?? x.kind ?? '?'));

export async function runMatrix(opts: MatrixOptions): Promise<RunResult[]> {
  const scenarios = 'scenarios' in opts ? opts.scenarios : opts.pipelines.flatMap((pipeline) => opts.workloads.map((workload) => ({ pipeline, workload })));
  const total = scenarios.length * opts.controllers.length * opts.seeds.length;
  const results: RunResult[] = [];
  for (const { pipeline, workload } of scenarios) {
    for (const controller of opts.controllers) {
      for (const seed of opts.seeds) {
        const label = `${nameOf(pipeline)} x ${nameOf(workload)} x ${controller} seed ${seed}`;
        const done = results.length;
        const r = await runScenario({
          pipeline,
          workload,
          controller: await opts.factory(controller, seed),
          seed,
          durationMs: opts.durationMs,
          ...(opts.scrapeIntervalMs !== undefined ? { scrapeIntervalMs: opts.scrapeIntervalMs } : {}),
          ...(opts.windowMs !== undefined ? { windowMs: opts.windowMs } : {}),
          onProgress: (f) => opts.onProgress?.(done + f, total, label),
        });
        // Named as asked: two variants of one controller (say, learning on and off) stay apart.
        const named = r.controller === controller ? r : { ...r, controller };
        results.push(named);
        opts.onProgress?.(results.length, total, label);
        opts.onRun?.(named);
      }
    }
  }
  return results;
}
