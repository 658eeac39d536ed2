// npm run bench:shim — the CUDA shim on the fake GPU (native/test): (1) host cost of cuLaunchKernel
// with and without the shim, under the limit, measured in the same run; (2) the GPU share a pod
// really gets (read from the fake device's timeline) against its gpu-cores target, for 1 and 4
// processes. Ends with `summary: launch_overhead_ns=N max_abs_error_points=E`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CONTROL_FILE_NAME, createControlFile } from '../src/device-plugin/control-file.js';
import { buildNative, freshGpuDir, programEnv, runJson } from '../test/native/programs.js';

const TARGETS = [10, 25, 50, 75, 90];
const PROCS = [1, 4];
const KERNEL_US = 1000;
const WARMUP_MS = 500;
const MEASURE_MS = 3000;
const OVERHEAD_ROUNDS = 7;
const LAUNCHES_PER_RUN = 200_000;

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

async function launchCost(shim: boolean): Promise<number[]> {
  const gpuDir = freshGpuDir();
  try {
    // A 50% limit with 0 ns kernels: every launch goes through the limiter and is under the limit.
    const env = programEnv({ gpuDir, shim, cores: shim ? 50 : undefined });
    const r = await runJson<{ ns_per_launch: number[] }>(
      'prog_overhead',
      [String(LAUNCHES_PER_RUN), '5'],
      env,
      120_000,
    );
    return r.ns_per_launch;
  } finally {
    rmSync(gpuDir, { recursive: true, force: true });
  }
}

async function podShare(target: number, procs: number): Promise<{ share: number; perProc: number[] }> {
  const gpuDir = freshGpuDir();
  const controlDir = mkdtempSync(join(tmpdir(), 'sair-bench-pod-'));
  try {
    createControlFile(join(controlDir, CONTROL_FILE_NAME), { gpuCores: target, memoryBytes: 0n });
    const env = programEnv({ gpuDir, shim: true, controlDir });
    const args = [String(procs), String(KERNEL_US), String(WARMUP_MS), String(MEASURE_MS)];
    const r = await runJson<{ share: number; per_proc: number[] }>('prog_share', args, env, 60_000);
    return { share: r.share, perProc: r.per_proc };
  } finally {
    rmSync(gpuDir, { recursive: true, force: true });
    rmSync(controlDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  buildNative();

  // Interleave the two variants so that machine noise hits both alike; the minimum is the cost
  // without interference, the median what a busy machine sees.
  const without: number[] = [];
  const withShim: number[] = [];
  for (let i = 0; i < OVERHEAD_ROUNDS; i++) {
    without.push(...(await launchCost(false)));
    withShim.push(...(await launchCost(true)));
  }
  const overheadMin = Math.min(...withShim) - Math.min(...without);
  const overheadMedian = median(withShim) - median(without);
  console.log('cuLaunchKernel, ns per call (fake driver, 0 ns kernels, 50% limit, under the limit):');
  console.log(`  without shim: min ${Math.min(...without).toFixed(1)}  median ${median(without).toFixed(1)}`);
  console.log(
    `  with shim:    min ${Math.min(...withShim).toFixed(1)}  median ${median(withShim).toFixed(1)}`,
  );
  console.log(
    `  added by the shim: ${overheadMin.toFixed(1)} ns (min vs min), ${overheadMedian.toFixed(1)} ns (median vs median); target <= 100 ns`,
  );
  console.log('');

  console.log(
    `achieved GPU share vs gpu-cores target (${KERNEL_US} us kernels, ${MEASURE_MS} ms after ${WARMUP_MS} ms warm-up; target: |error| <= 3 points):`,
  );
  console.log('  target  procs  achieved  error(points)  per-process');
  let maxError = 0;
  for (const procs of PROCS) {
    for (const target of TARGETS) {
      const { share, perProc } = await podShare(target, procs);
      const error = share * 100 - target;
      maxError = Math.max(maxError, Math.abs(error));
      console.log(
        `  ${String(target).padStart(5)}%  ${String(procs).padStart(5)}  ${(share * 100).toFixed(2).padStart(7)}%  ${error.toFixed(2).padStart(13)}  ${perProc.map((p) => (p * 100).toFixed(1)).join(' ')}`,
      );
    }
  }
  console.log('');
  console.log('real-GPU variant: not run (this machine has no GPU driver; see docs/shim.md)');
  console.log(
    `summary: launch_overhead_ns=${overheadMin.toFixed(1)} max_abs_error_points=${maxError.toFixed(2)}`,
  );
}

await main();
