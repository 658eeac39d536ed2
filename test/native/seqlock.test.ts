// The node agent's writer (src/device-plugin/control-file.ts) against the shim's own reader
// (native/src/control.c, linked into prog_seqlock): while limits change thousands of times a
// second, every read is a whole pair that was written, and the changes are seen as they happen.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LIMITS_FILE_NAME, createLimitsFile, writeLimits } from '../../src/device-plugin/control-file.js';
import { BUILD_DIR, buildNative, programEnv } from './programs.js';

const MiB = 1n << 20n;

beforeAll(() => buildNative(), 180_000);

it('gives the shim whole, current limits while the agent rewrites them', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sair-seqlock-'));
  try {
    const path = join(dir, LIMITS_FILE_NAME);
    createLimitsFile(path, { gpuCores: 10, memoryBytes: 10n * MiB });
    const child = spawn(join(BUILD_DIR, 'test', 'prog_seqlock'), ['1500'], { env: programEnv({ gpuDir: dir, limitsFile: path }) });
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
    expect(JSON.parse((await lines.next()).value as string)).toEqual({ cmd: 'started' });
    let writes = 0;
    for (const until = Date.now() + 1000; Date.now() < until; writes++) {
      const cores = writes % 2 === 0 ? 90 : 10;
      writeLimits(path, { gpuCores: cores, memoryBytes: BigInt(cores) * MiB });
    }
    const report = JSON.parse((await lines.next()).value as string) as { reads: number; mismatches: number; seen: Record<string, number> };
    expect(writes).toBeGreaterThan(1000);
    expect(report.reads).toBeGreaterThan(100_000);
    expect(report.mismatches).toBe(0);
    expect(Object.keys(report.seen).sort()).toEqual(['10', '90']);
    expect(report.seen['90']).toBeGreaterThan(0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 30_000);
