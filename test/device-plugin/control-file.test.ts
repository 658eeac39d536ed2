import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CONTROL_FILE_NAME,
  CONTROL_FILE_SIZE,
  CONTROL_MAGIC,
  CONTROL_OFFSETS,
  CONTROL_SLOT_COUNT,
  CONTROL_SLOT_SIZE,
  CONTROL_VERSION,
  ControlFileError,
  SLOT_OFFSETS,
  createControlFile,
  readControlFile,
  writeLimits,
} from '../../src/device-plugin/control-file.js';

const NATIVE = resolve(import.meta.dirname, '../../native');

describe('control file layout', () => {
  it('agrees with the C header (offsetof printed by a compiled program)', () => {
    execFileSync('make', ['-s', '-C', NATIVE, 'build/test/print_layout'], { stdio: 'pipe', timeout: 60_000 });
    const c = JSON.parse(
      execFileSync(join(NATIVE, 'build/test/print_layout'), { timeout: 10_000 }).toString(),
    ) as Record<string, number | string>;
    expect(BigInt(c.magic_value as string)).toBe(CONTROL_MAGIC);
    expect(c.version_value).toBe(CONTROL_VERSION);
    expect({
      magic: c.magic,
      version: c.version,
      headerSize: c.header_size,
      slotCount: c.slot_count,
      slotSize: c.slot_size,
      seq: c.seq,
      gpuCores: c.gpu_cores,
      memoryBytes: c.memory_bytes,
      generation: c.generation,
      limiterState: c.limiter_state,
      allocLock: c.alloc_lock,
      slots: c.slots,
    }).toEqual(CONTROL_OFFSETS);
    expect({
      pid: c.slot_pid,
      memoryBytes: c.slot_memory_bytes,
      kernelNs: c.slot_kernel_ns,
      throttledNs: c.slot_throttled_ns,
      heartbeatNs: c.slot_heartbeat_ns,
      launches: c.slot_launches,
    }).toEqual(SLOT_OFFSETS);
    expect(c.slot_count_value).toBe(CONTROL_SLOT_COUNT);
    expect(c.slot_size_value).toBe(CONTROL_SLOT_SIZE);
    expect(c.file_size).toBe(CONTROL_FILE_SIZE);
  }, 60_000);
});

describe('control file codec', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sair-ctl-'));
    path = join(dir, CONTROL_FILE_NAME);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('creates a file that reads back with its limits, generation 1 and no slots', () => {
    createControlFile(path, { gpuCores: 30, memoryBytes: 8n << 30n });
    expect(statSync(path).size).toBe(CONTROL_FILE_SIZE);
    expect(statSync(path).mode & 0o777).toBe(0o666);
    expect(readControlFile(path)).toEqual({
      limits: { gpuCores: 30, memoryBytes: 8n << 30n },
      generation: 1n,
      slots: [],
    });
  });

  it('changes limits in place, bumping the generation and leaving seq even', () => {
    createControlFile(path, { gpuCores: 30, memoryBytes: 0n });
    writeLimits(path, { gpuCores: 75, memoryBytes: 123456789n });
    writeLimits(path, { gpuCores: 5, memoryBytes: 1n });
    const got = readControlFile(path);
    expect(got.limits).toEqual({ gpuCores: 5, memoryBytes: 1n });
    expect(got.generation).toBe(3n);
    expect(readFileSync(path).readUInt32LE(CONTROL_OFFSETS.seq)).toBe(4);
  });

  it('keeps usage slots written by the shim when limits change, and reports occupied ones', () => {
    createControlFile(path, { gpuCores: 50, memoryBytes: 0n });
    const buf = readFileSync(path);
    const slot = CONTROL_OFFSETS.slots + 3 * CONTROL_SLOT_SIZE;
    buf.writeInt32LE(4242, slot + SLOT_OFFSETS.pid);
    buf.writeBigUInt64LE(1024n, slot + SLOT_OFFSETS.memoryBytes);
    buf.writeBigUInt64LE(5n, slot + SLOT_OFFSETS.kernelNs);
    buf.writeBigUInt64LE(6n, slot + SLOT_OFFSETS.throttledNs);
    buf.writeBigUInt64LE(7n, slot + SLOT_OFFSETS.heartbeatNs);
    writeFileSync(path, buf);
    writeLimits(path, { gpuCores: 60, memoryBytes: 0n });
    expect(readControlFile(path).slots).toEqual([
      { pid: 4242, memoryBytes: 1024n, kernelNs: 5n, throttledNs: 6n, heartbeatNs: 7n },
    ]);
  });

  it('rejects bad limits naming the field and the accepted form', () => {
    expect(() => createControlFile(path, { gpuCores: 0, memoryBytes: 0n })).toThrow(
      'limits.gpuCores: 0 is not an integer from 1 to 100',
    );
    expect(() => createControlFile(path, { gpuCores: 50.5, memoryBytes: 0n })).toThrow(/gpuCores/);
    expect(() => createControlFile(path, { gpuCores: 50, memoryBytes: -1n })).toThrow(
      /limits.memoryBytes: -1 is not a bigint/,
    );
  });

  it('throws a clear error on malformed files', () => {
    writeFileSync(path, Buffer.alloc(10));
    expect(() => readControlFile(path)).toThrow(ControlFileError);
    expect(() => readControlFile(path)).toThrow(/too short/);
    writeFileSync(path, Buffer.alloc(CONTROL_FILE_SIZE));
    expect(() => readControlFile(path)).toThrow(/not a SAIR control file/);
    expect(() => writeLimits(path, { gpuCores: 5, memoryBytes: 0n })).toThrow(/not a SAIR control file/);
    createControlFile(path, { gpuCores: 50, memoryBytes: 0n });
    const buf = readFileSync(path);
    buf.writeUInt32LE(2, CONTROL_OFFSETS.version);
    writeFileSync(path, buf);
    expect(() => readControlFile(path)).toThrow(/version is 2; this reader understands 1/);
    buf.writeUInt32LE(1, CONTROL_OFFSETS.version);
    buf.writeUInt32LE(101, CONTROL_OFFSETS.gpuCores);
    writeFileSync(path, buf);
    expect(() => readControlFile(path)).toThrow(/gpu_cores is 101/);
    writeFileSync(path, buf.subarray(0, 1000));
    expect(() => readControlFile(path)).toThrow(/shorter than the 4352 bytes/);
  });

  it('recovers from an interrupted write (odd seq) on the next writeLimits', () => {
    createControlFile(path, { gpuCores: 50, memoryBytes: 0n });
    const buf = readFileSync(path);
    buf.writeUInt32LE(7, CONTROL_OFFSETS.seq);
    writeFileSync(path, buf);
    expect(() => readControlFile(path)).toThrow(/seq stayed odd/);
    writeLimits(path, { gpuCores: 20, memoryBytes: 0n });
    expect(readControlFile(path).limits.gpuCores).toBe(20);
    expect(readFileSync(path).readUInt32LE(CONTROL_OFFSETS.seq)).toBe(8);
  });
});
