// Reads the fake GPU's device timeline (native/test/fake_timeline.h: struct ft_device in
// $FAKE_GPU_DIR/gpu<index>.timeline) to tell how much GPU time a process has really received:
// the same computation as ft_busy_until() in C, so a test measures a workload's achieved share
// from the device's side, independently of the shim's own accounting.
import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

// struct ft_device { u64 device_tail; u64 launches; struct ft_proc procs[64]; }
// struct ft_proc { i32 pid; u32 reserved; u64 first_ns, scheduled_ns, memory_bytes, ring_next; struct { u64 start, end; } ring[4096]; }
const PROCS_OFFSET = 16;
const MAX_PROCS = 64;
const RING = 4096;
const PROC_HEADER = 40;
const PROC_SIZE = PROC_HEADER + RING * 16;

/** CLOCK_MONOTONIC in ns, the timeline's clock (ft_now()). */
export const monotonicNs = (): bigint => process.hrtime.bigint();

export class DeviceTimeline {
  private readonly file: string;

  constructor(gpuDir: string, index = 0) {
    this.file = join(gpuDir, `gpu${index}.timeline`);
  }

  private read(offset: number, length: number): Buffer {
    const buf = Buffer.alloc(length);
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, length, offset);
    } finally {
      closeSync(fd);
    }
    return buf;
  }

  /** The slot of `pid` on the device, or undefined while it has not reached the device. */
  slotOf(pid: number): number | undefined {
    for (let i = 0; i < MAX_PROCS; i++) {
      if (this.read(PROCS_OFFSET + i * PROC_SIZE, 4).readInt32LE(0) === pid) return i;
    }
    return undefined;
  }

  /** GPU time (ns) the process in `slot` has received by monotonic time `t`: scheduled minus what is still queued or running. */
  busyUntil(slot: number, t: bigint): bigint {
    const p = this.read(PROCS_OFFSET + slot * PROC_SIZE, PROC_SIZE);
    const scheduled = p.readBigUInt64LE(16);
    const next = p.readBigUInt64LE(32);
    const n = next < BigInt(RING) ? Number(next) : RING;
    let pending = 0n;
    for (let i = 0; i < n; i++) {
      const at = PROC_HEADER + Number((next - 1n - BigInt(i)) % BigInt(RING)) * 16;
      const start = p.readBigUInt64LE(at);
      const end = p.readBigUInt64LE(at + 8);
      if (end <= t) continue;
      pending += end - (start > t ? start : t);
    }
    return pending > scheduled ? 0n : scheduled - pending;
  }
}

/** Samples a process's received GPU time every `intervalMs`, so shares over any past window can be read. */
export class ShareRecorder {
  private readonly samples: { wallMs: number; t: bigint; busy: bigint }[] = [];
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly timeline: DeviceTimeline,
    private readonly slot: number,
    intervalMs = 25,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const t = monotonicNs();
    this.samples.push({ wallMs: Date.now(), t, busy: this.timeline.busyUntil(this.slot, t) });
  }

  /** Fraction of the GPU the process received between two wall-clock times (ms since the epoch). */
  share(fromMs: number, toMs: number): number {
    const a = this.samples.find((s) => s.wallMs >= fromMs);
    const b = [...this.samples].reverse().find((s) => s.wallMs <= toMs);
    if (!a || !b || b.t <= a.t) throw new Error(`no samples between ${fromMs} and ${toMs}`);
    return Number(b.busy - a.busy) / Number(b.t - a.t);
  }

  stop(): void {
    clearInterval(this.timer);
  }
}
