// Virtual time for controllers in the simulator. `sleep` parks the caller until the driver
// (run.ts) advances the simulation past the wake-up time, so a controller that waits (say, for a
// modelled LLM call) costs simulated time, not wall time.
import type { Clock } from '../core/ports.js';

interface Sleeper {
  at: number;
  seq: number;
  resolve: () => void;
}

export class VirtualClock implements Clock {
  private readonly sleepers: Sleeper[] = [];
  private seq = 0;
  private onSleep: (() => void) | null = null;

  constructor(private readonly time: () => number) {}

  now(): number {
    return this.time();
  }

  sleep(ms: number): Promise<void> {
    if (!(ms > 0)) return Promise.resolve();
    return new Promise<void>((resolve) => {
      this.sleepers.push({ at: this.time() + ms, seq: this.seq++, resolve });
      this.sleepers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const notify = this.onSleep;
      this.onSleep = null;
      notify?.();
    });
  }

  /** Wake-up time of the earliest sleeper, Infinity when none. */
  nextWake(): number {
    return this.sleepers[0]?.at ?? Infinity;
  }

  /** Resolve every sleeper due at or before the current time. */
  wakeDue(): void {
    const now = this.time();
    while (this.sleepers.length > 0 && this.sleepers[0]!.at <= now) this.sleepers.shift()!.resolve();
  }

  /** Resolve the earliest sleeper whatever the time (the run is over). */
  wakeNext(): void {
    this.sleepers.shift()?.resolve();
  }

  /** Resolves the next time someone calls sleep. */
  sleepCalled(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.onSleep = resolve;
    });
  }
}
