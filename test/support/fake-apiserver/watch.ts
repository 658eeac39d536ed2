// Watch streams in the real wire format: a chunked 200 response of newline-delimited
// {"type": ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, "object": ...} lines. Replays history after the
// requested resourceVersion (or synthetic ADDED events for "0"/absent), turns selector transitions
// into ADDED/DELETED as the watch cache does, and sends a 410 Expired ERROR event and closes when
// the history no longer reaches back to the requested version.
import type { ServerResponse } from 'node:http';
import { apiVersionOf, storageKey, type KubeObject, type ResourceDef } from './resources.js';
import type { Change, Store } from './store.js';
import { errors } from './status.js';

export interface WatchRequest {
  def: ResourceDef;
  /** Tests an object in storage form against the namespace, name and selectors of the request. */
  matches: (obj: KubeObject) => boolean;
  /** Storage form -> the form this request's resource version returns. */
  present: (obj: KubeObject) => KubeObject;
  resourceVersion: string | undefined;
  allowBookmarks: boolean;
  sendInitialEvents: boolean;
  timeoutSeconds: number | undefined;
  bookmarkIntervalMs: number;
}

export class WatchHub {
  private readonly open = new Set<ServerResponse>();

  constructor(private readonly store: Store) {}

  get count(): number {
    return this.open.size;
  }

  /** Ends every open watch stream cleanly, as an apiserver restart or a load balancer does. */
  dropAll(): number {
    const n = this.open.size;
    for (const res of [...this.open]) res.end();
    return n;
  }

  serve(res: ServerResponse, w: WatchRequest): void {
    const { def } = w;
    const store = this.store;
    const storage = storageKey(def);
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    const send = (type: string, object: unknown): void => {
      if (!res.writableEnded) res.write(`${JSON.stringify({ type, object })}\n`);
    };
    const bookmark = (annotations?: Record<string, string>): void =>
      send('BOOKMARK', {
        kind: def.kind,
        apiVersion: apiVersionOf(def),
        metadata: { resourceVersion: String(store.resourceVersion), ...(annotations ? { annotations } : {}) },
      });

    const onChange = (c: Change): void => {
      if (c.storage !== storage) return;
      const now = c.type !== 'DELETED' && w.matches(c.obj);
      const before = c.prev !== undefined && w.matches(c.prev);
      if (c.type === 'DELETED') {
        if (before) send('DELETED', w.present(c.obj));
      } else if (now && before) send('MODIFIED', w.present(c.obj));
      else if (now) send('ADDED', w.present(c.obj));
      else if (before) send('DELETED', w.present(c.obj));
    };

    const rv = w.resourceVersion;
    if (rv === undefined || rv === '' || rv === '0' || w.sendInitialEvents) {
      for (const obj of store.list(storage)) if (w.matches(obj)) send('ADDED', w.present(obj));
      if (w.sendInitialEvents && w.allowBookmarks) bookmark({ 'k8s.io/initial-events-end': 'true' });
    } else {
      const changes = store.changesSince(Number(rv));
      if (changes === undefined) {
        send('ERROR', errors.gone(`too old resource version: ${rv} (${store.oldestWatchableRv + 1})`));
        res.end();
        return;
      }
      for (const c of changes) onChange(c);
    }

    this.open.add(res);
    const unsubscribe = store.subscribe(onChange);
    const timers: NodeJS.Timeout[] = [];
    if (w.allowBookmarks) timers.push(setInterval(bookmark, w.bookmarkIntervalMs));
    if (w.timeoutSeconds !== undefined) timers.push(setTimeout(() => res.end(), w.timeoutSeconds * 1000));
    const cleanup = (): void => {
      unsubscribe();
      for (const t of timers) clearTimeout(t);
      this.open.delete(res);
    };
    res.on('close', cleanup);
    res.on('finish', cleanup);
  }
}
