// The experience snapshot in ConfigMaps, so a new leader on another node finds it: no volume that
// both nodes must mount (a ReadWriteOnce PVC cannot follow the lease, ReadWriteMany is not in every
// cluster), only objects every cluster has. Gzipped and split into chunks of 700 KiB (933 KiB in
// base64, under the API server's 1 MiB object limit); the 32 MiB buffer limit gzips to a few MiB,
// a handful of chunks. A save writes a new generation's chunks first, then switches the index
// ConfigMap to it (with resourceVersion), then deletes the older generations: a reader sees one
// whole generation or the previous one, and its sha256 is checked.
import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import type * as k8s from '@kubernetes/client-node';
import { ValidationError } from '../../common/errors.js';
import { statusOf, timeoutOptions } from '../../common/k8s.js';
import type { SnapshotStore } from '../../core/ports.js';
import type { WriteGuard } from './guard.js';

export const SNAPSHOT_LABEL = 'sair.dev/snapshot';
const CHUNK_BYTES = 700 * 1024;

export interface ConfigMapSnapshotOptions {
  core: k8s.CoreV1Api;
  namespace: string;
  /** The index ConfigMap; chunks are `<name>-<generation>-<i>`. */
  name: string;
  guard: WriteGuard;
  callTimeoutMs: number;
}

export class ConfigMapSnapshotStore implements SnapshotStore {
  constructor(private readonly o: ConfigMapSnapshotOptions) {}

  private opts() {
    return timeoutOptions(this.o.callTimeoutMs);
  }

  async load(): Promise<Uint8Array | null> {
    const { core, namespace, name } = this.o;
    let index: k8s.V1ConfigMap;
    try {
      index = await core.readNamespacedConfigMap({ name, namespace }, this.opts());
    } catch (err) {
      if (statusOf(err) === 404) return null;
      throw err;
    }
    const { generation, chunks, sha256 } = index.data ?? {};
    const where = `ConfigMap ${namespace}/${name}`;
    if (!generation || !chunks || !sha256) throw new ValidationError(`${where} data`, 'keys generation, chunks and sha256 written by sair (delete it to start empty)');
    const parts = await Promise.all(
      Array.from({ length: Number(chunks) }, async (_, i) => {
        const cm = await core.readNamespacedConfigMap({ name: `${name}-${generation}-${i}`, namespace }, this.opts());
        return Buffer.from(cm.binaryData?.data ?? '', 'base64');
      }),
    );
    const zipped = Buffer.concat(parts);
    if (createHash('sha256').update(zipped).digest('hex') !== sha256) throw new ValidationError(`${where} generation ${generation}`, 'chunks whose sha256 matches the index (delete them to start empty)');
    return new Uint8Array(gunzipSync(zipped));
  }

  async save(data: Uint8Array): Promise<void> {
    const { core, namespace, name, guard } = this.o;
    const zipped = gzipSync(data);
    const generation = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
    const count = Math.max(1, Math.ceil(zipped.length / CHUNK_BYTES));
    const labels = { [SNAPSHOT_LABEL]: name, 'app.kubernetes.io/name': 'sair-policy' };
    for (let i = 0; i < count; i++) {
      await core.createNamespacedConfigMap(
        {
          namespace,
          body: { metadata: { name: `${name}-${generation}-${i}`, namespace, labels: { ...labels, [`${SNAPSHOT_LABEL}-generation`]: generation } }, binaryData: { data: zipped.subarray(i * CHUNK_BYTES, (i + 1) * CHUNK_BYTES).toString('base64') } },
        },
        guard.writeOptions(this.opts()),
      );
    }
    const indexData = { generation, chunks: String(count), sha256: createHash('sha256').update(zipped).digest('hex'), bytes: String(data.length) };
    let existing: k8s.V1ConfigMap | undefined;
    try {
      existing = await core.readNamespacedConfigMap({ name, namespace }, this.opts());
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    if (existing) {
      await core.replaceNamespacedConfigMap({ name, namespace, body: { ...existing, metadata: { ...existing.metadata, labels }, data: indexData } }, guard.writeOptions(this.opts()));
    } else {
      await core.createNamespacedConfigMap({ namespace, body: { metadata: { name, namespace, labels }, data: indexData } }, guard.writeOptions(this.opts()));
    }
    // Older generations: best effort, the next save tries again.
    const old = await core.listNamespacedConfigMap({ namespace, labelSelector: `${SNAPSHOT_LABEL}=${name},${SNAPSHOT_LABEL}-generation,${SNAPSHOT_LABEL}-generation!=${generation}` }, this.opts());
    await Promise.allSettled(old.items.map((cm) => core.deleteNamespacedConfigMap({ name: cm.metadata?.name ?? '', namespace }, guard.writeOptions(this.opts()))));
  }
}
