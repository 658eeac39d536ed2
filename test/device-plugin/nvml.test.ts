// The koffi NVML binding and the GPU inventory against the fake libnvidia-ml.so.1 from native/test
// (built by `make -C native fake`, which `npm test` runs first). The fake reads FAKE_GPU_* at
// nvmlInit and measures utilization on shared timeline files in FAKE_GPU_DIR.
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import koffi from 'koffi';
import { createLogger } from '../../src/common/logger.js';
import { GpuInventory, nvmlBackend } from '../../src/device-plugin/gpus.js';
import { NvmlError, NvmlUnavailableError, loadNvml, type Nvml } from '../../src/device-plugin/nvml.js';

const FAKE_NVML = resolve('native/build/fake/libnvidia-ml.so.1');
const log = createLogger('device-plugin', 'silent');

// struct ft_device / ft_proc of native/test/fake_timeline.h: the fake driver's shared timeline.
const PROCS_OFFSET = 16;

/** Puts this process on fake GPU `index` with one finished 500 ms kernel and `memory` bytes held. */
function addBusyProcess(dir: string, index: number, memory: bigint): void {
  const now = process.hrtime.bigint(); // CLOCK_MONOTONIC, the fake's ft_now()
  const proc = Buffer.alloc(40 + 16);
  proc.writeInt32LE(process.pid, 0);
  proc.writeBigUInt64LE(now - 2_000_000_000n, 8); // first_ns
  proc.writeBigUInt64LE(500_000_000n, 16); // scheduled_ns
  proc.writeBigUInt64LE(memory, 24); // memory_bytes
  proc.writeBigUInt64LE(1n, 32); // ring_next
  proc.writeBigUInt64LE(now - 600_000_000n, 40); // ring[0].start
  proc.writeBigUInt64LE(now - 100_000_000n, 48); // ring[0].end
  const fd = openSync(join(dir, `gpu${index}.timeline`), 'r+');
  try {
    writeSync(fd, proc, 0, proc.length, PROCS_OFFSET);
  } finally {
    closeSync(fd);
  }
}

// Jest gives each test file its own copy of process.env, which never reaches the C environment the
// fake library reads with getenv(); set the real one through libc.
const libc = koffi.load('libc.so.6');
const setenv = libc.func('int setenv(const char *name, const char *value, int overwrite)');
const unsetenv = libc.func('int unsetenv(const char *name)');
const ENV = ['FAKE_GPU_COUNT', 'FAKE_GPU_MEMORY_MIB', 'FAKE_GPU_UNHEALTHY', 'FAKE_GPU_DIR'] as const;
function setEnv(name: (typeof ENV)[number], value: string | undefined): void {
  if (value === undefined) unsetenv(name);
  else setenv(name, value, 1);
}

describe('NVML through koffi, against the fake libnvidia-ml', () => {
  let dir: string;
  let nvml: Nvml | undefined;

  beforeAll(() => {
    if (!existsSync(FAKE_NVML)) throw new Error(`${FAKE_NVML} is missing; run 'make -C native fake' (npm test does)`);
  });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sair-nvml-'));
    setEnv('FAKE_GPU_DIR', dir);
    setEnv('FAKE_GPU_COUNT', '2');
    setEnv('FAKE_GPU_MEMORY_MIB', '8192');
    setEnv('FAKE_GPU_UNHEALTHY', undefined);
  });

  afterEach(() => {
    nvml?.shutdown();
    nvml = undefined;
    for (const k of ENV) setEnv(k, undefined);
    rmSync(dir, { recursive: true, force: true });
  });

  it('says clearly when the library cannot be opened', () => {
    expect(() => loadNvml(join(dir, 'libnvidia-ml.so.1'))).toThrow(NvmlUnavailableError);
    expect(() => loadNvml(join(dir, 'libnvidia-ml.so.1'))).toThrow(/cannot open .*libnvidia-ml\.so\.1/);
  });

  it('reads count, UUID, name, memory, utilization and PCI bus id', () => {
    nvml = loadNvml(FAKE_NVML);
    expect(nvml.deviceCount()).toBe(2);
    const h = nvml.handleByIndex(1);
    expect(nvml.uuid(h)).toBe('GPU-5a1f0000-0000-4000-8000-000000000001');
    expect(nvml.name(h)).toBe('SAIR Fake GPU');
    expect(nvml.memory(h)).toEqual({ totalBytes: 8n << 30n, freeBytes: 8n << 30n, usedBytes: 0n });
    expect(nvml.utilization(h)).toEqual({ gpuPercent: 0, memoryPercent: 0 });
    expect(nvml.processUtilization(h, 0n)).toEqual([]);
    expect(nvml.pciBusId(h)).toBe('00000000:11:00.0');
  });

  it('reads per-process utilization and memory from a busy device', () => {
    nvml = loadNvml(FAKE_NVML);
    const h = nvml.handleByIndex(0);
    addBusyProcess(dir, 0, 1n << 30n);
    expect(nvml.memory(h).usedBytes).toBe(1n << 30n);
    expect(nvml.utilization(h).gpuPercent).toBe(50);
    const samples = nvml.processUtilization(h, 0n);
    expect(samples).toHaveLength(1);
    expect(samples[0]).toMatchObject({ pid: process.pid, smPercent: 50, memoryPercent: 0 });
    expect(samples[0]!.timeStampUs).toBeGreaterThan(BigInt(Date.now() - 60_000) * 1000n);
  });

  it('reports a lost GPU as an NvmlError with the NVML text, and the inventory lists it unhealthy', () => {
    setEnv('FAKE_GPU_UNHEALTHY', '1');
    nvml = loadNvml(FAKE_NVML);
    expect(() => nvml!.uuid(nvml!.handleByIndex(1))).toThrow(NvmlError);
    expect(() => nvml!.memory(nvml!.handleByIndex(1))).toThrow('nvmlDeviceGetMemoryInfo failed: GPU is lost (NVML error 15)');

    const sysfs = join(dir, 'sys');
    mkdirSync(join(sysfs, 'bus/pci/devices/0000:10:00.0'), { recursive: true });
    writeFileSync(join(sysfs, 'bus/pci/devices/0000:10:00.0/numa_node'), '1\n');
    const inventory = new GpuInventory(nvmlBackend(nvml), log, sysfs);
    const gpus = inventory.discover();
    expect(gpus.map((g) => ({ uuid: g.uuid, healthy: g.healthy, numaNode: g.numaNode }))).toEqual([
      { uuid: 'GPU-5a1f0000-0000-4000-8000-000000000000', healthy: true, numaNode: 1 },
      { uuid: 'GPU-index-1', healthy: false, numaNode: undefined },
    ]);
    expect(gpus[1]!.reason).toContain('GPU is lost');
  });
});
