// Keeps the controller's experience snapshot file and a SnapshotStore the next leader can read in
// step: before this replica's first tick as leader it writes the store's latest snapshot to the
// file (the controller restores from it on its first tick); while it leads it uploads the file
// whenever the controller has rewritten it, so a failover loses at most one snapshot interval. A
// standby never uploads: the store refuses writes without a valid lease.
import { readFile, stat } from 'node:fs/promises';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { SnapshotStore } from '../core/ports.js';
import { writeFileDurably } from '../policy/snapshot-file.js';

export interface SnapshotSyncOptions {
  store: SnapshotStore;
  /** The controller's snapshot file. */
  path: string;
  logger: Logger;
  isLeader: () => boolean;
}

export class SnapshotSync {
  private uploadedMtime = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly o: SnapshotSyncOptions) {}

  /** The store's latest snapshot into the file; call before the first tick as leader. */
  async restore(): Promise<void> {
    try {
      const data = await this.o.store.load();
      if (!data) return;
      await writeFileDurably(this.o.path, data);
      this.uploadedMtime = (await stat(this.o.path)).mtimeMs;
      this.o.logger.info({ bytes: data.length }, 'experience snapshot fetched for the new leader');
    } catch (err) {
      this.o.logger.error({ err: errorMessage(err) }, 'experience snapshot not fetched; the controller starts from its own file or empty');
    }
  }

  /** Upload the file if the controller rewrote it since the last upload and this replica leads. */
  flush(): Promise<void> {
    this.busy = this.busy.then(async () => {
      if (!this.o.isLeader()) return;
      let mtime: number;
      try {
        mtime = (await stat(this.o.path)).mtimeMs;
      } catch {
        return;
      }
      if (mtime <= this.uploadedMtime) return;
      try {
        const data = await readFile(this.o.path);
        await this.o.store.save(data);
        this.uploadedMtime = mtime;
        this.o.logger.debug({ bytes: data.length }, 'experience snapshot stored');
      } catch (err) {
        this.o.logger.error({ err: errorMessage(err) }, 'experience snapshot not stored; trying again');
      }
    });
    return this.busy;
  }

  start(everyMs: number): void {
    this.timer = setInterval(() => void this.flush(), everyMs);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }
}
