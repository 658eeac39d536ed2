// Reader and writer of the per-pod control file that the CUDA shim (native/) reads. The layout is
// defined once in native/include/sair_control.h; the offsets here mirror it and a test compares
// them with the C compiler's offsetof. The node agent is the only writer of the limits.
import {
  chmodSync,
  closeSync,
  fstatSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { randomBytes } from 'node:crypto';

export const CONTROL_FILE_NAME = 'control';
export const CONTROL_MAGIC = 0x004c544352494153n; // "SAIRCTL\0" as a little-endian u64
export const CONTROL_VERSION = 1;
export const CONTROL_HEADER_SIZE = 256;
export const CONTROL_SLOT_COUNT = 64;
export const CONTROL_SLOT_SIZE = 64;
export const CONTROL_FILE_SIZE = CONTROL_HEADER_SIZE + CONTROL_SLOT_COUNT * CONTROL_SLOT_SIZE;

/** Byte offsets of struct sair_control and struct sair_usage_slot. */
export const CONTROL_OFFSETS = {
  magic: 0,
  version: 8,
  headerSize: 12,
  slotCount: 16,
  slotSize: 20,
  seq: 24,
  gpuCores: 28,
  memoryBytes: 32,
  generation: 40,
  limiterState: 48,
  allocLock: 56,
  slots: CONTROL_HEADER_SIZE,
} as const;

export const SLOT_OFFSETS = {
  pid: 0,
  memoryBytes: 8,
  kernelNs: 16,
  throttledNs: 24,
  heartbeatNs: 32,
  launches: 40,
} as const;

export interface ControlLimits {
  /** Percent of one GPU's time for the whole pod, 1..100. */
  gpuCores: number;
  /** Device memory quota for the whole pod in bytes; 0n = none. */
  memoryBytes: bigint;
}

export interface UsageSlot {
  pid: number;
  memoryBytes: bigint;
  /** GPU time charged to the process by the core limiter. */
  kernelNs: bigint;
  /** Time the process's launches waited for the limiter. */
  throttledNs: bigint;
  /** CLOCK_REALTIME (ns since the epoch) of the process's last launch or allocation. */
  heartbeatNs: bigint;
}

export interface ControlFileContents {
  limits: ControlLimits;
  generation: bigint;
  /** The occupied slots (pid ≠ 0), in slot order. A slot of a dead process stays until a shim reclaims it. */
  slots: UsageSlot[];
}

/** The file exists but is not a control file this code understands; the message says why. */
export class ControlFileError extends Error {
  override readonly name = 'ControlFileError';
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`control file ${path}: ${problem}`);
  }
}

const U64_MAX = (1n << 64n) - 1n;

function checkLimits(limits: ControlLimits): void {
  const { gpuCores, memoryBytes } = limits;
  if (!Number.isInteger(gpuCores) || gpuCores < 1 || gpuCores > 100) {
    throw new RangeError(`limits.gpuCores: ${JSON.stringify(gpuCores)} is not an integer from 1 to 100`);
  }
  if (typeof memoryBytes !== 'bigint' || memoryBytes < 0n || memoryBytes > U64_MAX) {
    throw new RangeError(
      `limits.memoryBytes: ${String(memoryBytes)} is not a bigint from 0n (no quota) to 2^64-1`,
    );
  }
}

function putLimits(buf: Buffer, limits: ControlLimits, generation: bigint): void {
  buf.writeUInt32LE(limits.gpuCores, CONTROL_OFFSETS.gpuCores);
  buf.writeBigUInt64LE(limits.memoryBytes, CONTROL_OFFSETS.memoryBytes);
  buf.writeBigUInt64LE(generation, CONTROL_OFFSETS.generation);
}

/** Create (or replace) a control file with these limits and no usage: temp file + rename, so a
 *  shim never maps a half-written file. The mode is 0666 because the pod's processes, whatever
 *  their uid, write their usage slots into it. */
export function createControlFile(path: string, limits: ControlLimits): void {
  checkLimits(limits);
  const buf = Buffer.alloc(CONTROL_FILE_SIZE);
  buf.writeBigUInt64LE(CONTROL_MAGIC, CONTROL_OFFSETS.magic);
  buf.writeUInt32LE(CONTROL_VERSION, CONTROL_OFFSETS.version);
  buf.writeUInt32LE(CONTROL_HEADER_SIZE, CONTROL_OFFSETS.headerSize);
  buf.writeUInt32LE(CONTROL_SLOT_COUNT, CONTROL_OFFSETS.slotCount);
  buf.writeUInt32LE(CONTROL_SLOT_SIZE, CONTROL_OFFSETS.slotSize);
  putLimits(buf, limits, 1n);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', 0o666);
  try {
    writeSync(fd, buf, 0, buf.length, 0);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  chmodSync(tmp, 0o666);
  renameSync(tmp, path);
}

function checkHeader(path: string, buf: Buffer, length: number): void {
  if (length < CONTROL_HEADER_SIZE) {
    throw new ControlFileError(
      path,
      `${length} bytes is too short for a header; expected ${CONTROL_FILE_SIZE} bytes`,
    );
  }
  const magic = buf.readBigUInt64LE(CONTROL_OFFSETS.magic);
  if (magic !== CONTROL_MAGIC) {
    throw new ControlFileError(
      path,
      `magic 0x${magic.toString(16)} is not 0x${CONTROL_MAGIC.toString(16)}; not a SAIR control file`,
    );
  }
  const fields: Array<[string, number, number]> = [
    ['version', CONTROL_OFFSETS.version, CONTROL_VERSION],
    ['header_size', CONTROL_OFFSETS.headerSize, CONTROL_HEADER_SIZE],
    ['slot_count', CONTROL_OFFSETS.slotCount, CONTROL_SLOT_COUNT],
    ['slot_size', CONTROL_OFFSETS.slotSize, CONTROL_SLOT_SIZE],
  ];
  for (const [name, offset, expected] of fields) {
    const got = buf.readUInt32LE(offset);
    if (got !== expected)
      throw new ControlFileError(path, `${name} is ${got}; this reader understands ${expected}`);
  }
  if (length < CONTROL_FILE_SIZE) {
    throw new ControlFileError(
      path,
      `${length} bytes is shorter than the ${CONTROL_FILE_SIZE} bytes of version ${CONTROL_VERSION}`,
    );
  }
}

/** Read limits (seqlock-consistent), the generation and the occupied usage slots. */
export function readControlFile(path: string): ControlFileContents {
  for (let attempt = 0; attempt < 100; attempt++) {
    const buf = readFileSync(path);
    checkHeader(path, buf, buf.length);
    const seq = buf.readUInt32LE(CONTROL_OFFSETS.seq);
    // One read() copies the header in one go, so an even seq means the limits in this copy are whole.
    if (seq % 2 === 1) continue;
    const gpuCores = buf.readUInt32LE(CONTROL_OFFSETS.gpuCores);
    if (gpuCores < 1 || gpuCores > 100) {
      throw new ControlFileError(path, `gpu_cores is ${gpuCores}; expected an integer from 1 to 100`);
    }
    const slots: UsageSlot[] = [];
    for (let i = 0; i < CONTROL_SLOT_COUNT; i++) {
      const base = CONTROL_OFFSETS.slots + i * CONTROL_SLOT_SIZE;
      const pid = buf.readInt32LE(base + SLOT_OFFSETS.pid);
      if (pid === 0) continue;
      slots.push({
        pid,
        memoryBytes: buf.readBigUInt64LE(base + SLOT_OFFSETS.memoryBytes),
        kernelNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.kernelNs),
        throttledNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.throttledNs),
        heartbeatNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.heartbeatNs),
      });
    }
    return {
      limits: { gpuCores, memoryBytes: buf.readBigUInt64LE(CONTROL_OFFSETS.memoryBytes) },
      generation: buf.readBigUInt64LE(CONTROL_OFFSETS.generation),
      slots,
    };
  }
  throw new ControlFileError(
    path,
    'seq stayed odd over 100 reads; a limits write was interrupted (rewrite the limits)',
  );
}

/** Change the limits in place, as the node agent does on a live change: seq goes odd, the fields
 *  and generation are written, seq goes even. Each step is its own pwrite, and the shims map the
 *  same page-cache page, so they see the steps in order. Single writer: the node agent. */
export function writeLimits(path: string, limits: ControlLimits): void {
  checkLimits(limits);
  const fd = openSync(path, 'r+');
  try {
    const header = Buffer.alloc(CONTROL_HEADER_SIZE);
    readSync(fd, header, 0, CONTROL_HEADER_SIZE, 0);
    checkHeader(path, header, fstatSync(fd).size);
    const seq = header.readUInt32LE(CONTROL_OFFSETS.seq);
    const begin = seq % 2 === 1 ? seq : (seq + 1) >>> 0;
    const u32 = Buffer.alloc(4);
    u32.writeUInt32LE(begin);
    writeSync(fd, u32, 0, 4, CONTROL_OFFSETS.seq);
    const fields = Buffer.alloc(CONTROL_OFFSETS.limiterState - CONTROL_OFFSETS.gpuCores);
    const generation = header.readBigUInt64LE(CONTROL_OFFSETS.generation) + 1n;
    fields.writeUInt32LE(limits.gpuCores, 0);
    fields.writeBigUInt64LE(limits.memoryBytes, CONTROL_OFFSETS.memoryBytes - CONTROL_OFFSETS.gpuCores);
    fields.writeBigUInt64LE(generation & U64_MAX, CONTROL_OFFSETS.generation - CONTROL_OFFSETS.gpuCores);
    writeSync(fd, fields, 0, fields.length, CONTROL_OFFSETS.gpuCores);
    u32.writeUInt32LE((begin + 1) >>> 0);
    writeSync(fd, u32, 0, 4, CONTROL_OFFSETS.seq);
  } finally {
    closeSync(fd);
  }
}
