// A koffi binding to the few NVML calls the device plugin needs: device count, UUID, name,
// memory, utilization, per-process utilization and PCI bus id. libnvidia-ml.so.1 is opened at
// run time; without it (no GPU, no driver) loadNvml throws NvmlUnavailableError.
import koffi, { type LibraryHandle } from 'koffi';

export const NVML_SUCCESS = 0;
export const NVML_ERROR_NOT_FOUND = 6;
export const NVML_ERROR_INSUFFICIENT_SIZE = 7;

/** The NVML library could not be opened or initialised: no GPU or no driver on this node. */
export class NvmlUnavailableError extends Error {
  override readonly name = 'NvmlUnavailableError';
}

/** An NVML call returned an error code; `message` carries nvmlErrorString's text. */
export class NvmlError extends Error {
  override readonly name = 'NvmlError';
  constructor(
    readonly call: string,
    readonly code: number,
    text: string,
  ) {
    super(`${call} failed: ${text} (NVML error ${code})`);
  }
}

export interface MemoryInfo {
  totalBytes: bigint;
  freeBytes: bigint;
  usedBytes: bigint;
}

export interface Utilization {
  /** Percent of time over the last sample period that a kernel was running. */
  gpuPercent: number;
  memoryPercent: number;
}

export interface ProcessUtilization {
  pid: number;
  /** CPU timestamp of the sample, in microseconds. */
  timeStampUs: bigint;
  smPercent: number;
  memoryPercent: number;
}

/** An opaque NVML device handle. */
export type NvmlHandle = { readonly __nvmlDevice: unique symbol };

export interface Nvml {
  deviceCount(): number;
  handleByIndex(index: number): NvmlHandle;
  uuid(device: NvmlHandle): string;
  name(device: NvmlHandle): string;
  memory(device: NvmlHandle): MemoryInfo;
  utilization(device: NvmlHandle): Utilization;
  /** Samples newer than `sinceUs` (0 = everything the driver still holds); [] when none. */
  processUtilization(device: NvmlHandle, sinceUs: bigint): ProcessUtilization[];
  pciBusId(device: NvmlHandle): string;
  shutdown(): void;
}

// Types stay anonymous: koffi's named-type registry is process-wide, and this module may load twice.
const BUFFER_SIZE = 96; // NVML_DEVICE_UUID_V2_BUFFER_SIZE and NVML_DEVICE_NAME_V2_BUFFER_SIZE are 96

const nvmlDevice = koffi.pointer(koffi.opaque());
const nvmlMemory = koffi.struct({
  total: 'unsigned long long',
  free: 'unsigned long long',
  used: 'unsigned long long',
});
const nvmlUtilization = koffi.struct({ gpu: 'unsigned int', memory: 'unsigned int' });
const nvmlProcessSample = koffi.struct({
  pid: 'unsigned int',
  timeStamp: 'unsigned long long',
  smUtil: 'unsigned int',
  memUtil: 'unsigned int',
  encUtil: 'unsigned int',
  decUtil: 'unsigned int',
});
const nvmlPciInfo = koffi.struct({
  busIdLegacy: koffi.array('char', 16, 'String'),
  domain: 'unsigned int',
  bus: 'unsigned int',
  device: 'unsigned int',
  pciDeviceId: 'unsigned int',
  pciSubSystemId: 'unsigned int',
  busId: koffi.array('char', 32, 'String'),
});
const SAMPLE_SIZE = koffi.sizeof(nvmlProcessSample);

function cString(buf: Buffer): string {
  const end = buf.indexOf(0);
  return buf.toString('utf8', 0, end < 0 ? buf.length : end);
}

/** Opens and initialises NVML from `libraryPath` (the soname by default, found by the loader). */
export function loadNvml(libraryPath = 'libnvidia-ml.so.1'): Nvml {
  let lib: LibraryHandle;
  try {
    lib = koffi.load(libraryPath);
  } catch (err) {
    throw new NvmlUnavailableError(`cannot open ${libraryPath}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const fn = {
    init: lib.func('nvmlInit_v2', 'int', []),
    shutdown: lib.func('nvmlShutdown', 'int', []),
    errorString: lib.func('nvmlErrorString', 'const char *', ['int']),
    count: lib.func('nvmlDeviceGetCount_v2', 'int', [koffi.out(koffi.pointer('unsigned int'))]),
    handle: lib.func('nvmlDeviceGetHandleByIndex_v2', 'int', ['unsigned int', koffi.out(koffi.pointer(nvmlDevice))]),
    uuid: lib.func('nvmlDeviceGetUUID', 'int', [nvmlDevice, 'void *', 'unsigned int']),
    name: lib.func('nvmlDeviceGetName', 'int', [nvmlDevice, 'void *', 'unsigned int']),
    memory: lib.func('nvmlDeviceGetMemoryInfo', 'int', [nvmlDevice, koffi.out(koffi.pointer(nvmlMemory))]),
    utilization: lib.func('nvmlDeviceGetUtilizationRates', 'int', [nvmlDevice, koffi.out(koffi.pointer(nvmlUtilization))]),
    processUtilization: lib.func('nvmlDeviceGetProcessUtilization', 'int', [
      nvmlDevice,
      'void *',
      koffi.inout(koffi.pointer('unsigned int')),
      'unsigned long long',
    ]),
    pciInfo: lib.func('nvmlDeviceGetPciInfo_v3', 'int', [nvmlDevice, koffi.out(koffi.pointer(nvmlPciInfo))]),
  };

  const check = (call: string, code: number): void => {
    if (code !== NVML_SUCCESS) throw new NvmlError(call, code, String(fn.errorString(code)));
  };

  const initCode = fn.init() as number;
  if (initCode !== NVML_SUCCESS) {
    throw new NvmlUnavailableError(`nvmlInit_v2 failed: ${String(fn.errorString(initCode))} (NVML error ${initCode})`);
  }

  const text = (call: string, f: ReturnType<LibraryHandle['func']>, device: NvmlHandle): string => {
    const buf = Buffer.alloc(BUFFER_SIZE);
    check(call, f(device, buf, BUFFER_SIZE) as number);
    return cString(buf);
  };

  return {
    deviceCount() {
      const out = [0];
      check('nvmlDeviceGetCount_v2', fn.count(out) as number);
      return out[0]!;
    },
    handleByIndex(index) {
      const out: unknown[] = [null];
      check('nvmlDeviceGetHandleByIndex_v2', fn.handle(index, out) as number);
      return out[0] as NvmlHandle;
    },
    uuid: (device) => text('nvmlDeviceGetUUID', fn.uuid, device),
    name: (device) => text('nvmlDeviceGetName', fn.name, device),
    memory(device) {
      const out: { total?: number | bigint; free?: number | bigint; used?: number | bigint } = {};
      check('nvmlDeviceGetMemoryInfo', fn.memory(device, out) as number);
      return { totalBytes: BigInt(out.total ?? 0), freeBytes: BigInt(out.free ?? 0), usedBytes: BigInt(out.used ?? 0) };
    },
    utilization(device) {
      const out: { gpu?: number; memory?: number } = {};
      check('nvmlDeviceGetUtilizationRates', fn.utilization(device, out) as number);
      return { gpuPercent: out.gpu ?? 0, memoryPercent: out.memory ?? 0 };
    },
    processUtilization(device, sinceUs) {
      // First call with no buffer asks for the sample count (INSUFFICIENT_SIZE); NOT_FOUND = no samples.
      const count = [0];
      const first = fn.processUtilization(device, null, count, sinceUs) as number;
      if (first === NVML_ERROR_NOT_FOUND || (first === NVML_SUCCESS && count[0] === 0)) return [];
      if (first !== NVML_ERROR_INSUFFICIENT_SIZE && first !== NVML_SUCCESS) check('nvmlDeviceGetProcessUtilization', first);
      const buf = Buffer.alloc(Math.max(1, count[0]!) * SAMPLE_SIZE);
      const code = fn.processUtilization(device, buf, count, sinceUs) as number;
      if (code === NVML_ERROR_NOT_FOUND) return [];
      check('nvmlDeviceGetProcessUtilization', code);
      const samples: ProcessUtilization[] = [];
      for (let i = 0; i < count[0]!; i++) {
        const s = koffi.decode(buf, i * SAMPLE_SIZE, nvmlProcessSample) as {
          pid: number;
          timeStamp: number | bigint;
          smUtil: number;
          memUtil: number;
        };
        samples.push({ pid: s.pid, timeStampUs: BigInt(s.timeStamp), smPercent: s.smUtil, memoryPercent: s.memUtil });
      }
      return samples;
    },
    pciBusId(device) {
      const out: { busId?: string } = {};
      check('nvmlDeviceGetPciInfo_v3', fn.pciInfo(device, out) as number);
      return out.busId ?? '';
    },
    shutdown() {
      fn.shutdown();
    },
  };
}
