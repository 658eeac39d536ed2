// The fake API server's storage: objects by storage key and namespace/name, one global
// resourceVersion counter (as etcd's revision), and a bounded history of changes that watches
// replay from, like the apiserver's watch cache. Watching from a revision older than the history
// is 410 Gone.
import { clone, type KubeObject } from './resources.js';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface Change {
  rv: number;
  storage: string;
  type: ChangeType;
  /** The object after the change (for DELETED: its last state, with the deletion's resourceVersion). */
  obj: KubeObject;
  /** The object before the change, so a selector watch can turn a change into ADDED/DELETED. */
  prev?: KubeObject;
}

function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`;
}

export class Store {
  private revision = 0;
  private readonly objects = new Map<string, Map<string, KubeObject>>();
  private readonly history: Change[] = [];
  /** Every change after this revision is still in `history`. */
  private compactedRv = 0;
  private readonly listeners = new Set<(change: Change) => void>();

  constructor(private readonly historyLimit: number) {}

  get resourceVersion(): number {
    return this.revision;
  }

  get oldestWatchableRv(): number {
    return this.compactedRv;
  }

  get(storage: string, namespace: string | undefined, name: string): KubeObject | undefined {
    return this.objects.get(storage)?.get(objectKey(namespace, name));
  }

  /** Objects of one storage, in one namespace or all, in key order (as etcd lists them). */
  list(storage: string, namespace?: string): KubeObject[] {
    const all = [...(this.objects.get(storage)?.entries() ?? [])];
    return all
      .filter(([key]) => namespace === undefined || key.startsWith(`${namespace}/`))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, obj]) => obj);
  }

  /** Stores a created or updated object; assigns and returns its new resourceVersion. */
  put(storage: string, obj: KubeObject): KubeObject {
    const meta = obj.metadata!;
    const key = objectKey(meta.namespace, meta.name!);
    let bucket = this.objects.get(storage);
    if (!bucket) this.objects.set(storage, (bucket = new Map()));
    const prev = bucket.get(key);
    meta.resourceVersion = String(++this.revision);
    bucket.set(key, obj);
    this.record({ rv: this.revision, storage, type: prev ? 'MODIFIED' : 'ADDED', obj, prev });
    return obj;
  }

  remove(storage: string, namespace: string | undefined, name: string): KubeObject | undefined {
    const bucket = this.objects.get(storage);
    const key = objectKey(namespace, name);
    const prev = bucket?.get(key);
    if (!bucket || !prev) return undefined;
    bucket.delete(key);
    const obj = clone(prev);
    obj.metadata!.resourceVersion = String(++this.revision);
    this.record({ rv: this.revision, storage, type: 'DELETED', obj, prev });
    return obj;
  }

  /** Changes after `rv`, or undefined when the history no longer reaches back that far. */
  changesSince(rv: number): Change[] | undefined {
    if (rv < this.compactedRv) return undefined;
    return this.history.filter((c) => c.rv > rv);
  }

  /** Forgets the history, as an etcd compaction does: watches from older revisions get 410 Gone. */
  compact(): void {
    this.history.length = 0;
    this.compactedRv = this.revision;
  }

  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private record(change: Change): void {
    this.history.push(change);
    while (this.history.length > this.historyLimit) this.compactedRv = this.history.shift()!.rv;
    for (const l of [...this.listeners]) l(change);
  }
}
