// The experience snapshot in chunked ConfigMaps, against the fake API server: what one leader
// saves the next one loads, whole; a standby's save is refused before it is sent; older
// generations are removed.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import type * as k8s from '@kubernetes/client-node';
import { NotLeaderError } from '../../../src/common/errors.js';
import { ALWAYS_LEADING, type WriteGuard } from '../../../src/policy-server/k8s/guard.js';
import { ConfigMapSnapshotStore } from '../../../src/policy-server/k8s/snapshot-store.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';

const standby: WriteGuard = {
  writeOptions: () => {
    throw new NotLeaderError('sair-system/sair-policy');
  },
};

describe('ConfigMap snapshot store', () => {
  let api: FakeApiServer;
  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  });
  afterAll(async () => {
    await api.close();
  });
  const store = (guard: WriteGuard) => new ConfigMapSnapshotStore({ core: api.clients('sair-system').core, namespace: 'sair-system', name: 'snap', guard, callTimeoutMs: 5_000 });
  const configMaps = () => api.list<k8s.V1ConfigMap>('configmaps', 'sair-system').map((c) => c.metadata!.name!).sort();

  it('round-trips a snapshot larger than one object, and keeps only the latest generation', async () => {
    expect(await store(ALWAYS_LEADING).load()).toBeNull();
    // Random bytes do not compress: 2 MiB needs three chunks.
    const big = randomBytes(2 * 1024 * 1024);
    await store(ALWAYS_LEADING).save(big);
    expect(configMaps().filter((n) => n.startsWith('snap-'))).toHaveLength(3);
    expect(Buffer.from((await store(ALWAYS_LEADING).load())!).equals(big)).toBe(true);

    const small = Buffer.from(JSON.stringify({ version: 1, cells: [] }));
    await store(ALWAYS_LEADING).save(small);
    expect(configMaps().filter((n) => n.startsWith('snap-'))).toHaveLength(1);
    expect(Buffer.from((await store(ALWAYS_LEADING).load())!).toString()).toBe(small.toString());
  });

  it('a standby never writes', async () => {
    const before = configMaps();
    await expect(store(standby).save(Buffer.from('stale'))).rejects.toThrow(/not the holder of a valid Lease/);
    expect(configMaps()).toEqual(before);
  });
});
