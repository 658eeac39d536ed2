// The cost of one SAIR tick with a full memory: 10,000 experiences spread over the states and
// actions a pipeline visits are loaded before a four-hour run, and each tick's compute time
// (without cluster I/O or an LLM call) is recorded. The steady state excludes the first ticks,
// which run before the JIT has compiled the hot paths. The measure is the process's CPU time,
// because wall time on a shared machine includes other processes' time. It also includes V8's
// helper threads (concurrent GC marking, background compilation), which work for the simulated
// cluster in this process as well, so the wall time of the same ticks is printed beside it: on a
// quiet machine it is the tick's latency, and the tick's own work can hide in neither.
import { createSairController, type SairController } from '../src/policy/controller.js';
import { features } from '../src/policy/experience.js';
import { seededRandom } from '../src/policy/random.js';
import { policySettings } from '../src/policy/settings.js';
import type { RewardValue } from '../src/policy/types.js';
import { runScenario } from '../src/sim/run.js';

const WARMUP = 20;

export interface TickCost {
  ticks: number;
  p50Ms: number;
  p99Ms: number;
  /** The same ticks' wall time: at least their CPU time, plus whatever else ran meanwhile. */
  wallP99Ms: number;
  experiences: number;
  cells: number;
  bytes: number;
}

export async function sairTickBench(opts: { experiences: number; pipeline?: string; workload?: string; durationMs?: number }): Promise<TickCost> {
  const cpu: number[] = [];
  const wall: number[] = [];
  let controller: SairController | null = null;
  await runScenario({
    pipeline: opts.pipeline ?? 'nlp-chain',
    workload: opts.workload ?? 'diurnal',
    seed: 1,
    durationMs: opts.durationMs ?? 4 * 3_600_000,
    controller: (p) => {
      const c = createSairController({
        cluster: p.cluster,
        metrics: p.metrics,
        clock: p.clock,
        config: policySettings(),
        seed: 1,
        onDecision: (d) => {
          cpu.push(d.computeCpuMs);
          wall.push(d.computeMs);
        },
      });
      const rand = seededRandom(11);
      const n = p.pipeline.stages.length;
      const keys = ['hold'];
      for (let i = 0; i < n; i++) keys.push(`s${i}+1`, `s${i}+2`, `s${i}+3`, `s${i}-1`, `s${i}-2`, `s${i}:gpu+`, `s${i}:gpu-`);
      const out = { p99Ratio: 0.5, costRate: 1, sloViolation: 0 };
      for (let k = 0; k < opts.experiences; k++) {
        c.buffer.add(p.pipeline.id, {
          time: k,
          features: features(Math.floor(rand() * n), Array.from({ length: n }, () => rand() * 1.4), rand() * 1.5),
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
  const quantile = (xs: number[], p: number) => {
    const steady = xs.slice(WARMUP).sort((a, b) => a - b);
    return steady[Math.min(steady.length - 1, Math.max(0, Math.ceil(p * steady.length) - 1))] ?? NaN;
  };
  const q = (p: number) => quantile(cpu, p);
  const s = (controller as SairController | null)?.bufferStats() ?? { cells: 0, experiences: 0, bytes: 0 };
  return { ticks: cpu.length, p50Ms: q(0.5), p99Ms: q(0.99), wallP99Ms: quantile(wall, 0.99), ...s };
}
