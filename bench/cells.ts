// What bench:policy and bench:learning share: the cells of the built-in suites, and running each
// cell in a child process of the same script (`--cell pipeline:workload`, which prints its result
// as JSON), a few at a time, so cells run in parallel and the parent only aggregates.
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ValidationError } from '../src/common/errors.js';
import { ISSUE_PIPELINES, PAPER_PIPELINES, builtinPipeline } from '../src/sim/builtin-pipelines.js';
import { MATRIX_WORKLOADS, PAPER_WORKLOADS } from '../src/sim/builtin-workloads.js';
import type { PipelineModel } from '../src/sim/pipeline.js';

export type Pair = [pipeline: string, workload: string];

/** The cells of the paper, issue and generated suites, or the cross of the given pipelines and workloads. */
export function suiteCells(suites: readonly string[], pipelines?: readonly string[], workloads?: readonly string[], generatedSeeds = '1000:1011'): Pair[] {
  const pairs: Pair[] = [];
  if (pipelines || workloads) {
    for (const p of pipelines ?? PAPER_PIPELINES) for (const w of workloads ?? PAPER_WORKLOADS) pairs.push([p, w]);
    return pairs;
  }
  if (suites.includes('paper')) for (const p of PAPER_PIPELINES) for (const w of PAPER_WORKLOADS) pairs.push([p, w]);
  if (suites.includes('issue')) for (const p of ISSUE_PIPELINES) for (const w of MATRIX_WORKLOADS) pairs.push([p, w]);
  if (suites.includes('generated')) {
    // A generated scenario is the pair gen:SEED; the cell's runner asks the generator for it.
    const m = /^(\d+):(\d+)$/.exec(generatedSeeds);
    if (!m || Number(m[1]) > Number(m[2])) throw new ValidationError('--generated-seeds', 'FROM:TO, two seeds with FROM <= TO (e.g. 1000:1011)', generatedSeeds);
    for (let s = Number(m[1]); s <= Number(m[2]); s++) pairs.push(['gen', String(s)]);
  }
  return pairs;
}

/**
 * The GPU nodes `--cluster` puts every cell's pipeline on: absent, the pipeline's own (the
 * built-ins run on 'unlimited' nodes, where a share rise that does not fit moves the replica);
 * 'autoscaled' adds nodes the same way but clamps that rise, as a node agent does.
 */
export function clusterFlag(value: string | undefined): 'autoscaled' | 'unlimited' | undefined {
  if (value === undefined || value === 'autoscaled' || value === 'unlimited') return value;
  throw new ValidationError('--cluster', '"autoscaled" or "unlimited"', value);
}

/** A cell's pipeline with its `gpuNodes` replaced by `cluster` (clusterFlag), or as it is. */
export function onCluster(pipeline: string | PipelineModel, cluster: 'autoscaled' | 'unlimited' | undefined): string | PipelineModel {
  if (cluster === undefined) return pipeline;
  const model = typeof pipeline === 'string' ? builtinPipeline(pipeline) : pipeline;
  if (!model) throw new ValidationError('--pipelines', 'the names of built-in pipelines', pipeline);
  return { ...model, cluster: { ...model.cluster, gpuNodes: cluster } };
}

/**
 * In a cell's child process (`--cell pipeline:workload` among the flags), runs the cell and prints
 * its result as JSON; returns whether it did, so the parent's code runs only in the parent.
 */
export async function runAsCell<T>(cellArg: string | undefined, runCell: (pipeline: string, workload: string) => Promise<T>): Promise<boolean> {
  if (!cellArg) return false;
  const [p, w] = cellArg.split(':');
  process.stdout.write(JSON.stringify(await runCell(p!, w!)));
  return true;
}

/** Runs `script` (an import.meta.url) once per cell with `--cell`, `jobs` at a time; results in the cells' order. */
export async function runCellsInChildren<T>(script: string, pairs: readonly Pair[], jobs: number): Promise<T[]> {
  const results: T[] = new Array(pairs.length);
  let next = 0;
  let done = 0;
  const one = (p: string, w: string) =>
    new Promise<T>((resolve, reject) => {
      const child = fork(fileURLToPath(script), [...process.argv.slice(2), '--cell', `${p}:${w}`], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as T) : reject(new Error(`cell ${p}:${w} exited ${code}`))));
    });
  await Promise.all(
    Array.from({ length: Math.max(1, jobs) }, async () => {
      while (next < pairs.length) {
        const at = next++;
        const [p, w] = pairs[at]!;
        results[at] = await one(p, w);
        process.stderr.write(`\r${++done}/${pairs.length} cells`);
      }
    }),
  );
  process.stderr.write('\n');
  return results;
}
