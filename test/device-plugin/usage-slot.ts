// Writes one usage slot into a control file the way the shim does (native/src: pid last, after
// the counters), at the offsets of the codec, so tests can check what the agent reads back.
import { closeSync, openSync, writeSync } from 'node:fs';
import { CONTROL_OFFSETS, CONTROL_SLOT_SIZE, SLOT_OFFSETS, type UsageSlot } from '../../src/device-plugin/control-file.js';

export function writeUsageSlot(path: string, index: number, slot: UsageSlot): void {
  const buf = Buffer.alloc(CONTROL_SLOT_SIZE);
  buf.writeInt32LE(slot.pid, SLOT_OFFSETS.pid);
  buf.writeBigUInt64LE(slot.memoryBytes, SLOT_OFFSETS.memoryBytes);
  buf.writeBigUInt64LE(slot.kernelNs, SLOT_OFFSETS.kernelNs);
  buf.writeBigUInt64LE(slot.throttledNs, SLOT_OFFSETS.throttledNs);
  buf.writeBigUInt64LE(slot.heartbeatNs, SLOT_OFFSETS.heartbeatNs);
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, buf, 0, buf.length, CONTROL_OFFSETS.slots + index * CONTROL_SLOT_SIZE);
  } finally {
    closeSync(fd);
  }
}
