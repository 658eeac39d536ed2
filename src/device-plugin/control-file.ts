// Reader and writer of an allocation's two files that the CUDA shim (native/) maps: the limits
// file (written only by the node agent, read-only to the container) and the state file (written by
// the container's shims: limiter, memory lock, usage slots). The layout is defined once in
// native/include/sair_control.h; the offsets here mirror it and a test compares them with the C
// compiler's offsetof. The state file is reachable by the pod, so it is read only through
// readExactFile (never follows a link, never blocks, exact size).
import { chmodSync, closeSync, constants, fstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { readExactFile, type ExactFile } from './exact-file.js';

export const LIMITS_FILE_NAME = 'limits';
export const STATE_FILE_NAME = 'state';
export const CONTROL_VERSION = 2;
export const LIMITS_MAGIC = 0x004d494c52494153n; // "SAIRLIM\0" as a little-endian u64
export const LIMITS_FILE_SIZE = 64;
export const STATE_MAGIC = 0x0041545352494153n; // "SAIRSTA\0" as a little-endian u64
export const STATE_HEADER_SIZE = 64;
export const STATE_SLOT_COUNT = 64;
export const STATE_SLOT_SIZE = 64;
export const STATE_FILE_SIZE = STATE_HEADER_SIZE + STATE_SLOT_COUNT * STATE_SLOT_SIZE;

/** Byte offsets of struct sair_limits_file. */
export const LIMITS_OFFSETS = {
  magic: 0,
  version: 8,
  size: 12,
  seq: 16,
  gpuCores: 20,
  memoryBytes: 24,
  generation: 32,
} as const;

/** Byte offsets of struct sair_state_file. */
export const STATE_OFFSETS = {
  magic: 0,
  version: 8,
  headerSize: 12,
  slotCount: 16,
  slotSize: 20,
  limiterState: 24,
  allocLock: 32,
  slots: STATE_HEADER_SIZE,
} as const;

/** Byte offsets of struct sair_usage_slot. */
export const SLOT_OFFSETS = {
  pid: 0,
  memoryBytes: 8,
  kernelNs: 16,
  throttledNs: 24,
  heartbeatNs: 32,
  launches: 40,
} as const;

export interface ControlLimits {
  /** Percent of one GPU's time for the whole allocation, 1..100. */
  gpuCores: number;
  /** Device memory quota for the whole allocation in bytes; 0n = none. */
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

export interface LimitsFileContents {
  limits: ControlLimits;
  generation: bigint;
}

/** The file exists but is not a file of this layout; the message says why. */
export class ControlFileError extends Error {
  override readonly name = 'ControlFileError';
  constructor(
    readonly path: string,
    problem: string,
  ) {
    super(`${path}: ${problem}`);
  }
}

const U64_MAX = (1n << 64n) - 1n;
// Never follow a link, never wait on a FIFO or device: the files live where a pod's bind mount ends.
const SAFE_OPEN = constants.O_NOFOLLOW | constants.O_NONBLOCK;

function checkLimits(limits: ControlLimits): void {
  const { gpuCores, memoryBytes } = limits;
  if (!Number.isInteger(gpuCores) || gpuCores < 1 || gpuCores > 100) {
    throw new RangeError(`limits.gpuCores: ${JSON.stringify(gpuCores)} is not an integer from 1 to 100`);
  }
  if (typeof memoryBytes !== 'bigint' || memoryBytes < 0n || memoryBytes > U64_MAX) {
    throw new RangeError(`limits.memoryBytes: ${String(memoryBytes)} is not a bigint from 0n (no quota) to 2^64-1`);
  }
}

/** Writes `buf` to a temp file beside `path` with `mode`, then renames it over `path`. */
function replaceFile(path: string, buf: Buffer, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  const fd = openSync(tmp, 'wx', mode);
  try {
    writeSync(fd, buf, 0, buf.length, 0);
  } catch (err) {
    closeSync(fd);
    unlinkSync(tmp);
    throw err;
  }
  closeSync(fd);
  // The umask may have taken bits off; the shims need exactly this mode.
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

/** Create (or replace) a limits file: temp file + rename, so a shim never maps a half-written file.
 *  0644: the container reads it (through a read-only mount), only the node agent writes it. */
export function createLimitsFile(path: string, limits: ControlLimits): void {
  checkLimits(limits);
  const buf = Buffer.alloc(LIMITS_FILE_SIZE);
  buf.writeBigUInt64LE(LIMITS_MAGIC, LIMITS_OFFSETS.magic);
  buf.writeUInt32LE(CONTROL_VERSION, LIMITS_OFFSETS.version);
  buf.writeUInt32LE(LIMITS_FILE_SIZE, LIMITS_OFFSETS.size);
  buf.writeUInt32LE(limits.gpuCores, LIMITS_OFFSETS.gpuCores);
  buf.writeBigUInt64LE(limits.memoryBytes, LIMITS_OFFSETS.memoryBytes);
  buf.writeBigUInt64LE(1n, LIMITS_OFFSETS.generation);
  replaceFile(path, buf, 0o644);
}

/** Create (or replace) an empty state file. 0666: the container's processes, whatever their uid,
 *  write their usage into it; it is mounted into that one container only. */
export function createStateFile(path: string): void {
  const buf = Buffer.alloc(STATE_FILE_SIZE);
  buf.writeBigUInt64LE(STATE_MAGIC, STATE_OFFSETS.magic);
  buf.writeUInt32LE(CONTROL_VERSION, STATE_OFFSETS.version);
  buf.writeUInt32LE(STATE_HEADER_SIZE, STATE_OFFSETS.headerSize);
  buf.writeUInt32LE(STATE_SLOT_COUNT, STATE_OFFSETS.slotCount);
  buf.writeUInt32LE(STATE_SLOT_SIZE, STATE_OFFSETS.slotSize);
  replaceFile(path, buf, 0o666);
}

function checkLimitsHeader(path: string, buf: Buffer): void {
  const magic = buf.readBigUInt64LE(LIMITS_OFFSETS.magic);
  if (magic !== LIMITS_MAGIC) throw new ControlFileError(path, `magic 0x${magic.toString(16)} is not 0x${LIMITS_MAGIC.toString(16)}; not a SAIR limits file`);
  const version = buf.readUInt32LE(LIMITS_OFFSETS.version);
  if (version !== CONTROL_VERSION) throw new ControlFileError(path, `version is ${version}; this reader understands ${CONTROL_VERSION}`);
  const size = buf.readUInt32LE(LIMITS_OFFSETS.size);
  if (size !== LIMITS_FILE_SIZE) throw new ControlFileError(path, `size field is ${size}; expected ${LIMITS_FILE_SIZE}`);
}

/** Opens a limits file for reading or writing in place: a regular file of exactly its size, no link. */
function openLimits(path: string, write: boolean): number {
  const fd = openSync(path, (write ? constants.O_RDWR : constants.O_RDONLY) | SAFE_OPEN);
  const st = fstatSync(fd);
  if (!st.isFile() || st.size !== LIMITS_FILE_SIZE) {
    closeSync(fd);
    throw new ControlFileError(path, `${st.isFile() ? `${st.size} bytes` : 'not a regular file'}; expected a regular file of ${LIMITS_FILE_SIZE} bytes`);
  }
  return fd;
}

/** Read the limits (seqlock-consistent) and the generation. */
export function readLimitsFile(path: string): LimitsFileContents {
  const fd = openLimits(path, false);
  try {
    const buf = Buffer.alloc(LIMITS_FILE_SIZE);
    for (let attempt = 0; attempt < 100; attempt++) {
      readSync(fd, buf, 0, LIMITS_FILE_SIZE, 0);
      checkLimitsHeader(path, buf);
      // One read() copies the file in one go, so an even seq means the limits in this copy are whole.
      if (buf.readUInt32LE(LIMITS_OFFSETS.seq) % 2 === 1) continue;
      const gpuCores = buf.readUInt32LE(LIMITS_OFFSETS.gpuCores);
      if (gpuCores < 1 || gpuCores > 100) throw new ControlFileError(path, `gpu_cores is ${gpuCores}; expected an integer from 1 to 100`);
      return {
        limits: { gpuCores, memoryBytes: buf.readBigUInt64LE(LIMITS_OFFSETS.memoryBytes) },
        generation: buf.readBigUInt64LE(LIMITS_OFFSETS.generation),
      };
    }
  } finally {
    closeSync(fd);
  }
  throw new ControlFileError(path, 'seq stayed odd over 100 reads; a limits write was interrupted (rewrite the limits)');
}

/** Change the limits in place, as the node agent does on a live change: seq goes odd, the fields
 *  and generation are written, seq goes even. Each step is its own pwrite, and the shims map the
 *  same page-cache page, so they see the steps in order. Single writer: the node agent. In place,
 *  never by rename: the container's read-only bind mount holds this inode. */
export function writeLimits(path: string, limits: ControlLimits): void {
  checkLimits(limits);
  const fd = openLimits(path, true);
  try {
    const header = Buffer.alloc(LIMITS_FILE_SIZE);
    readSync(fd, header, 0, LIMITS_FILE_SIZE, 0);
    checkLimitsHeader(path, header);
    const seq = header.readUInt32LE(LIMITS_OFFSETS.seq);
    const begin = seq % 2 === 1 ? seq : (seq + 1) >>> 0;
    const u32 = Buffer.alloc(4);
    u32.writeUInt32LE(begin);
    writeSync(fd, u32, 0, 4, LIMITS_OFFSETS.seq);
    const fields = Buffer.alloc(LIMITS_OFFSETS.generation + 8 - LIMITS_OFFSETS.gpuCores);
    const generation = header.readBigUInt64LE(LIMITS_OFFSETS.generation) + 1n;
    fields.writeUInt32LE(limits.gpuCores, 0);
    fields.writeBigUInt64LE(limits.memoryBytes, LIMITS_OFFSETS.memoryBytes - LIMITS_OFFSETS.gpuCores);
    fields.writeBigUInt64LE(generation & U64_MAX, LIMITS_OFFSETS.generation - LIMITS_OFFSETS.gpuCores);
    writeSync(fd, fields, 0, fields.length, LIMITS_OFFSETS.gpuCores);
    u32.writeUInt32LE((begin + 1) >>> 0);
    writeSync(fd, u32, 0, 4, LIMITS_OFFSETS.seq);
  } finally {
    closeSync(fd);
  }
}

/** The occupied usage slots of a state file's bytes (pid ≠ 0), with their indexes, in slot order. */
export function parseState(path: string, buf: Buffer): { index: number; slot: UsageSlot }[] {
  const magic = buf.readBigUInt64LE(STATE_OFFSETS.magic);
  if (magic !== STATE_MAGIC) throw new ControlFileError(path, `magic 0x${magic.toString(16)} is not 0x${STATE_MAGIC.toString(16)}; not a SAIR state file`);
  const fields: Array<[string, number, number]> = [
    ['version', STATE_OFFSETS.version, CONTROL_VERSION],
    ['header_size', STATE_OFFSETS.headerSize, STATE_HEADER_SIZE],
    ['slot_count', STATE_OFFSETS.slotCount, STATE_SLOT_COUNT],
    ['slot_size', STATE_OFFSETS.slotSize, STATE_SLOT_SIZE],
  ];
  for (const [name, offset, expected] of fields) {
    const got = buf.readUInt32LE(offset);
    if (got !== expected) throw new ControlFileError(path, `${name} is ${got}; this reader understands ${expected}`);
  }
  const out: { index: number; slot: UsageSlot }[] = [];
  for (let i = 0; i < STATE_SLOT_COUNT; i++) {
    const base = STATE_OFFSETS.slots + i * STATE_SLOT_SIZE;
    const pid = buf.readInt32LE(base + SLOT_OFFSETS.pid);
    if (pid === 0) continue;
    out.push({
      index: i,
      slot: {
        pid,
        memoryBytes: buf.readBigUInt64LE(base + SLOT_OFFSETS.memoryBytes),
        kernelNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.kernelNs),
        throttledNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.throttledNs),
        heartbeatNs: buf.readBigUInt64LE(base + SLOT_OFFSETS.heartbeatNs),
      },
    });
  }
  return out;
}

/** A state file's occupied slots, read safely (off the event loop, exact size, no link, no FIFO). */
export async function readStateFile(path: string): Promise<UsageSlot[]> {
  return readExactFile(path, STATE_FILE_SIZE, (file: ExactFile) => parseState(path, file.bytes).map((s) => s.slot));
}
