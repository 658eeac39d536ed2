// Writes one usage slot into a state file, at the offsets of the codec, and holds a slot's OFD
// write lock the way a running shim does (native/src/control.c), so tests can check what the
// agent reads back and which processes it counts as running.
import { closeSync, openSync, writeSync } from 'node:fs';
import koffi from 'koffi';
import { STATE_OFFSETS, STATE_SLOT_SIZE, SLOT_OFFSETS, type UsageSlot } from '../../src/device-plugin/control-file.js';

export function writeUsageSlot(path: string, index: number, slot: UsageSlot): void {
  const buf = Buffer.alloc(STATE_SLOT_SIZE);
  buf.writeInt32LE(slot.pid, SLOT_OFFSETS.pid);
  buf.writeBigUInt64LE(slot.memoryBytes, SLOT_OFFSETS.memoryBytes);
  buf.writeBigUInt64LE(slot.kernelNs, SLOT_OFFSETS.kernelNs);
  buf.writeBigUInt64LE(slot.throttledNs, SLOT_OFFSETS.throttledNs);
  buf.writeBigUInt64LE(slot.heartbeatNs, SLOT_OFFSETS.heartbeatNs);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, buf, 0, buf.length, STATE_OFFSETS.slots + index * STATE_SLOT_SIZE);
  } finally {
    closeSync(fd);
  }
}

const F_OFD_SETLK = 37;
const F_WRLCK = 1;
const libc = koffi.load('libc.so.6');
const flock = koffi.struct({ l_type: 'short', l_whence: 'short', l_start: 'int64', l_len: 'int64', l_pid: 'int' });
const fcntl = libc.func('int fcntl(int fd, int cmd, ...)');

/** Takes slot `index`'s lock on a file description of its own, as the owning shim does; returns the release. */
export function holdSlotLock(path: string, index: number): () => void {
  const fd = openSync(path, 'r+');
  const fl = { l_type: F_WRLCK, l_whence: 0, l_start: STATE_OFFSETS.slots + index * STATE_SLOT_SIZE, l_len: STATE_SLOT_SIZE, l_pid: 0 };
  if ((fcntl(fd, F_OFD_SETLK, koffi.pointer(flock), fl) as number) !== 0) {
    closeSync(fd);
    throw new Error(`could not lock slot ${index} of ${path}`);
  }
  return () => closeSync(fd);
}
