// Keeps the controller's experience and the SnapshotStores the next holder of each shard reads
// in step. When this replica gains shards, before their pipelines' first tick, it loads each
// shard's latest stored snapshot into the controller (replacing what the controller held for
// those pipelines: a replica that held the shard before keeps a stale copy in memory). While it
// holds shards it uploads, whenever the controller has rewritten its snapshot file, each held
// shard's part to that shard's store, so a failover loses at most one snapshot interval. A
// replica that holds no shard never uploads, and each store refuses writes without a valid lease
// for its shard.
import { readFile, stat } from 'node:fs/promises';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { SnapshotStore } from '../core/ports.js';
import type { SairController } from '../policy/controller.js';
import { encodeSnapshot, parseSnapshot, snapshotPart } from '../policy/snapshot-file.js';

export interface SnapshotSyncOptions {
  /** The store of one shard's part of the experience. */
  storeFor: (shard: number) => SnapshotStore;
  /** Read when a shard's own store is empty: the whole snapshot of a replica that did not shard. */
  previous?: SnapshotStore;
  shardOf: (pipelineId: string) => number;
  /** Shards whose lease this replica holds now. */
  held: () => ReadonlySet<number>;
  controller: Pick<SairController, 'restore'>;
  /** The controller's snapshot file. */
  path: string;
  logger: Logger;
}

export class SnapshotSync {
  private uploadedMtime = 0;
  private timer: NodeJS.Timeout | undefined;
  private busy: Promise<void> = Promise.resolve();

  constructor(private readonly o: SnapshotSyncOptions) {}

  /** Each gained shard's latest stored snapshot into the controller; call before their first tick. */
  async restore(gained: readonly number[]): Promise<void> {
    for (const shard of gained) {
      try {
        const data = (await this.o.storeFor(shard).load()) ?? (await this.o.previous?.load()) ?? null;
        if (!data) continue;
        const snap = parseSnapshot(Buffer.from(data).toString('utf8'), `experience snapshot of shard ${shard}`, 'its ConfigMaps');
        await this.o.controller.restore(snap, (id) => this.o.shardOf(id) === shard);
      } catch (err) {
        this.o.logger.error({ shard, err: errorMessage(err) }, 'experience snapshot not fetched; the shard starts from what this replica holds');
      }
    }
  }

  /** Upload each held shard's part if the controller rewrote the file since the last upload. */
  flush(): Promise<void> {
    this.busy = this.busy.then(async () => {
      const held = this.o.held();
      if (held.size === 0) return;
      let mtime: number;
      try {
        mtime = (await stat(this.o.path)).mtimeMs;
      } catch {
        return;
      }
      if (mtime <= this.uploadedMtime) return;
      let snap;
      try {
        snap = parseSnapshot(await readFile(this.o.path, 'utf8'), `experience snapshot ${this.o.path}`, 'the file');
      } catch (err) {
        this.o.logger.error({ err: errorMessage(err) }, 'experience snapshot not read; trying again');
        return;
      }
      let stored = true;
      for (const shard of held) {
        try {
          const part = Buffer.from(encodeSnapshot(snapshotPart(snap, (id) => this.o.shardOf(id) === shard)));
          await this.o.storeFor(shard).save(part);
          this.o.logger.debug({ shard, bytes: part.length }, 'experience snapshot stored');
        } catch (err) {
          stored = false;
          this.o.logger.error({ shard, err: errorMessage(err) }, 'experience snapshot not stored; trying again');
        }
      }
      if (stored) this.uploadedMtime = mtime;
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
