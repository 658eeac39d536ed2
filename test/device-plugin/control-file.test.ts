import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CONTROL_VERSION,
  ControlFileError,
  LIMITS_FILE_SIZE,
  LIMITS_MAGIC,
  LIMITS_OFFSETS,
  SLOT_OFFSETS,
  STATE_FILE_SIZE,
  STATE_MAGIC,
  STATE_OFFSETS,
  STATE_SLOT_COUNT,
  STATE_SLOT_SIZE,
  createLimitsFile,
  createStateFile,
  readLimitsFile,
  readStateFile,
  writeLimits,
} from '../../src/device-plugin/control-file.js';
import { writeUsageSlot } from './usage-slot.js';

const NATIVE = resolve(import.meta.dirname, '../../native');

describe('limits and state file layout', () => {
  it('agrees with the C header (offsetof printed by a compiled program)', () => {
    execFileSync('make', ['-s', '-C', NATIVE, 'build/test/print_layout'], { stdio: 'pipe', timeout: 60_000 });
    const c = JSON.parse(execFileSync(join(NATIVE, 'build/test/print_layout'), { timeout: 10_000 }).toString()) as Record<string, number | string>;
    expect(BigInt(c.limits_magic_value as string)).toBe(LIMITS_MAGIC);
    expect(BigInt(c.state_magic_value as string)).toBe(STATE_MAGIC);
    expect(c.version_value).toBe(CONTROL_VERSION);
    const l = (f: string) => c[`sair_limits_file.${f}`];
    expect({ magic: l('magic'), version: l('version'), size: l('size'), seq: l('seq'), gpuCores: l('gpu_cores'), memoryBytes: l('memory_bytes'), generation: l('generation') }).toEqual(LIMITS_OFFSETS);
    const s = (f: string) => c[`sair_state_file.${f}`];
    expect({
      magic: s('magic'),
      version: s('version'),
      headerSize: s('header_size'),
      slotCount: s('slot_count'),
      slotSize: s('slot_size'),
      limiterState: s('limiter_state'),
      allocLock: s('alloc_lock'),
      slots: s('slots'),
    }).toEqual(STATE_OFFSETS);
    const u = (f: string) => c[`sair_usage_slot.${f}`];
    expect({ pid: u('pid'), memoryBytes: u('memory_bytes'), kernelNs: u('kernel_ns'), throttledNs: u('throttled_ns'), heartbeatNs: u('heartbeat_ns'), launches: u('launches') }).toEqual(SLOT_OFFSETS);
    expect(c.slot_count_value).toBe(STATE_SLOT_COUNT);
    expect(c.slot_size_value).toBe(STATE_SLOT_SIZE);
    expect(c.limits_file_size).toBe(LIMITS_FILE_SIZE);
    expect(c.state_file_size).toBe(STATE_FILE_SIZE);
  }, 60_000);
});

describe('limits and state file codec', () => {
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'sair-files-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a limits file readable by all, written by its owner only, and changes it in place', () => {
    const path = join(dir, 'limits');
    createLimitsFile(path, { gpuCores: 30, memoryBytes: 2n << 30n });
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readLimitsFile(path)).toEqual({ limits: { gpuCores: 30, memoryBytes: 2n << 30n }, generation: 1n });
    const inode = statSync(path).ino;
    writeLimits(path, { gpuCores: 70, memoryBytes: 0n });
    expect(readLimitsFile(path)).toEqual({ limits: { gpuCores: 70, memoryBytes: 0n }, generation: 2n });
    expect(statSync(path).ino).toBe(inode);
  });

  it('refuses limits out of range and files of another layout, naming the problem', () => {
    const path = join(dir, 'limits');
    expect(() => createLimitsFile(path, { gpuCores: 0, memoryBytes: 0n })).toThrow('limits.gpuCores: 0 is not an integer from 1 to 100');
    writeFileSync(path, Buffer.alloc(LIMITS_FILE_SIZE, 0x5a));
    expect(() => readLimitsFile(path)).toThrow(ControlFileError);
    expect(() => writeLimits(path, { gpuCores: 5, memoryBytes: 0n })).toThrow(/not a SAIR limits file/);
    writeFileSync(path, Buffer.alloc(10));
    expect(() => readLimitsFile(path)).toThrow(/10 bytes; expected a regular file of 64 bytes/);
  });

  it('creates an empty state file any process of the container can write, and reads its occupied slots', async () => {
    const path = join(dir, 'state');
    createStateFile(path);
    expect(statSync(path).mode & 0o777).toBe(0o666);
    expect(statSync(path).size).toBe(STATE_FILE_SIZE);
    expect(await readStateFile(path)).toEqual([]);
    const slot = { pid: 42, memoryBytes: 5n, kernelNs: 6n, throttledNs: 7n, heartbeatNs: 8n };
    writeUsageSlot(path, 3, slot);
    expect(await readStateFile(path)).toEqual([slot]);
  });
});
