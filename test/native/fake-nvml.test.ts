// The fake libnvidia-ml.so.1 (native/test/fake_nvml.c), queried by a C program the way the device
// plugin queries NVML, while a shim-limited program runs on the same fake GPU: per-process
// utilization and memory come from the shared device timeline.
import { rmSync } from 'node:fs';
import { Driver, buildNative, freshGpuDir, programEnv, runJson } from './programs.js';

interface NvmlDevice {
  rc: number;
  error: string;
  uuid: string;
  name: string;
  memory: { total: number; used: number; free: number };
  gpuUtil: number;
  pci: { rc: number; busId: string; deviceId: number };
  sizeRc: number;
  sizeCount: number;
  procRc: number;
  procs: Array<{ pid: number; smUtil: number }>;
}

interface NvmlReport {
  beforeInit: number;
  init: number;
  count: number;
  devices: NvmlDevice[];
  shutdown: number;
}

const MiB = 1 << 20;
let gpuDir: string;

beforeAll(() => buildNative(), 180_000);
beforeEach(() => (gpuDir = freshGpuDir()));
afterEach(() => rmSync(gpuDir, { recursive: true, force: true }));

describe('fake NVML', () => {
  it('reports devices, memory, health and per-process utilization from the device timeline', async () => {
    const d = await Driver.start(programEnv({ gpuDir, shim: true, cores: 40 }));
    try {
      expect((await d.send(`alloc alloc ${100 * MiB}`)).rc).toBe(0);
      d.write('run 1000 1500 1 kernel');
      await new Promise((r) => setTimeout(r, 1000)); // let 700 ms of limited work fill the window
      const nvml = await runJson<NvmlReport>(
        'prog_nvml',
        ['500'],
        programEnv({ gpuDir, extra: { FAKE_GPU_COUNT: '2', FAKE_GPU_UNHEALTHY: '1', FAKE_GPU_MEMORY_MIB: '8192' } }),
        10_000,
      );
      await d.next(10_000);
      expect(nvml).toMatchObject({ beforeInit: 1, init: 0, count: 2, shutdown: 0 }); // 1 = NVML_ERROR_UNINITIALIZED
      const [gpu0, gpu1] = nvml.devices;
      expect(gpu0).toMatchObject({
        rc: 0,
        uuid: 'GPU-5a1f0000-0000-4000-8000-000000000000',
        name: 'SAIR Fake GPU',
        memory: { total: 8192 * MiB, used: 100 * MiB, free: 8092 * MiB },
        pci: { rc: 0, busId: '00000000:10:00.0' },
        sizeRc: 7, // NVML_ERROR_INSUFFICIENT_SIZE, with the count, for a NULL buffer
        sizeCount: 1,
        procRc: 0,
      });
      expect(gpu0!.procs).toHaveLength(1);
      expect(gpu0!.procs[0]!.pid).toBe(d.pid);
      expect(Math.abs(gpu0!.procs[0]!.smUtil - 40)).toBeLessThanOrEqual(8);
      expect(gpu1).toMatchObject({ rc: 15, error: 'GPU is lost', pci: { rc: 15 }, procRc: 15 });
    } finally {
      await d.kill();
    }
  }, 30_000);

  it('answers NVML_ERROR_NOT_FOUND when no process used the GPU', async () => {
    const nvml = await runJson<NvmlReport>('prog_nvml', ['200'], programEnv({ gpuDir }), 10_000);
    expect(nvml.count).toBe(1);
    expect(nvml.devices[0]).toMatchObject({ rc: 0, memory: { total: 16384 * MiB, used: 0 }, sizeRc: 6, sizeCount: 0, procRc: 6 });
  }, 20_000);
});
