// Leader election on a coordination.k8s.io/v1 Lease in the fake API server, with short durations:
// one leader at a time, failover when the leader dies without releasing, fast handover on release.
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { LeaderElector } from '../../../src/policy-server/k8s/leader.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';

const logger = createLogger('test', 'silent');

describe('Lease leader election', () => {
  let api: FakeApiServer;
  const electors: LeaderElector[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  });
  afterEach(async () => {
    await Promise.all(electors.splice(0).map((e) => e.stop({ release: false })));
    api.remove('leases', 'sair-system', 'sair-policy');
  });
  afterAll(async () => {
    await api.close();
  });

  /** A client of its own (bearer token = identity), so a fault can partition one candidate off. */
  const coordinationFor = (identity: string) => api.clients('sair-system', identity).coordination;

  function elector(identity: string, leaseDurationSeconds = 1) {
    const changes: { leading: boolean; at: number }[] = [];
    let notify: (() => void) | undefined;
    const e = new LeaderElector({
      coordination: coordinationFor(identity),
      namespace: 'sair-system',
      name: 'sair-policy',
      identity,
      leaseDurationSeconds,
      renewDeadlineMs: 800,
      retryPeriodMs: 100,
      logger,
      registry: createRegistry('policy', { defaultMetrics: false }),
      onChange: (leading) => {
        changes.push({ leading, at: Date.now() });
        notify?.();
      },
    });
    electors.push(e);
    const becomes = (leading: boolean, timeoutMs = 5_000) =>
      new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${identity} did not become ${leading ? 'leader' : 'standby'} in ${timeoutMs} ms`)), timeoutMs);
        const check = () => {
          if (e.isLeader() === leading) {
            clearTimeout(timer);
            notify = undefined;
            resolve(Date.now());
          }
        };
        notify = check;
        check();
      });
    return { e, changes, becomes };
  }

  /** Resolves when either candidate leads; checks each 20 ms (a lease has no event to await). */
  const someoneLeads = (a: LeaderElector, b: LeaderElector) =>
    new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        if (a.isLeader() || b.isLeader()) resolve();
        else if (Date.now() - started > 5_000) reject(new Error('no leader within 5 s'));
        else return;
        clearInterval(poll);
      }, 20);
    });

  const lease = () => api.get<k8s.V1Lease>('leases', 'sair-system', 'sair-policy')!;

  it('one candidate leads and the other stands by; the lease says who and is renewed', async () => {
    const a = elector('policy-a');
    a.e.start();
    await a.becomes(true);
    const b = elector('policy-b');
    b.e.start();
    const first = lease();
    expect(first.spec).toMatchObject({ holderIdentity: 'policy-a', leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(String(first.spec!.renewTime)).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);
    // Several renewals later A still leads and B never did.
    const renewedAfter = new Date(String(first.spec!.renewTime)).getTime();
    await new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (new Date(String(lease().spec!.renewTime)).getTime() > renewedAfter + 300) {
          clearInterval(poll);
          resolve();
        }
      }, 50);
    });
    expect(a.e.isLeader()).toBe(true);
    expect(b.e.isLeader()).toBe(false);
    expect(b.changes).toEqual([]);
    expect(lease().spec!.holderIdentity).toBe('policy-a');
  });

  it('a standby takes over when the leader dies without releasing, within the lease duration plus a retry', async () => {
    const a = elector('policy-a');
    a.e.start();
    await a.becomes(true);
    const b = elector('policy-b');
    b.e.start();
    const died = Date.now();
    await a.e.stop({ release: false });
    const tookOver = await b.becomes(true);
    expect(tookOver - died).toBeLessThan(30_000);
    expect(tookOver - died).toBeGreaterThanOrEqual(900);
    expect(lease().spec).toMatchObject({ holderIdentity: 'policy-b', leaseTransitions: 1 });
  });

  it('graceful shutdown releases the lease and a standby takes it at its next try, long before it would expire', async () => {
    // A 60 s lease: without the release, B could not lead within the 5 s the wait allows.
    const a = elector('policy-a', 60);
    a.e.start();
    await a.becomes(true);
    const b = elector('policy-b', 60);
    b.e.start();
    await a.e.stop();
    expect(lease().spec!.holderIdentity).toBe('');
    await b.becomes(true);
    expect(lease().spec).toMatchObject({ holderIdentity: 'policy-b', leaseTransitions: 1 });
  });

  it('a leader that cannot renew steps down, and never two leaders at once', async () => {
    const a = elector('policy-a');
    const b = elector('policy-b');
    a.e.start();
    b.e.start();
    await someoneLeads(a.e, b.e);
    expect(a.e.isLeader() && b.e.isLeader()).toBe(false);
    const leader = a.e.isLeader() ? a : b;
    const fault = api.injectFault({ verb: 'get', resource: 'leases.coordination.k8s.io', status: 503, times: 1000 });
    await leader.becomes(false);
    fault.cancel();
    // Someone leads again once the API server answers.
    await someoneLeads(a.e, b.e);
    expect(a.e.isLeader() && b.e.isLeader()).toBe(false);
  });

  it('a hung API server: lease calls time out, and the leader stops acting the moment its renew deadline passes', async () => {
    const a = elector('policy-a');
    a.e.start();
    await a.becomes(true);
    const lastGood = new Date(String(lease().spec!.renewTime)).getTime();
    // Every lease call now hangs for 20 s: far past the renew deadline (800 ms).
    const fault = api.injectFault({ resource: 'leases.coordination.k8s.io', delayMs: 20_000, times: 1000 });
    const steppedDown = await a.becomes(false, 3_000);
    fault.cancel();
    // Down by the deadline after the last renewal that landed, not after a call finally failed.
    expect(steppedDown - lastGood).toBeLessThan(800 + 700);
    expect(a.changes.map((c) => c.leading)).toEqual([true, false]);
    expect(() => a.e.writeOptions()).toThrow(/not the holder of a valid Lease sair-system\/sair-policy/);
    // The calls it made gave up after their timeout (a third of the deadline), they did not hang for 20 s.
    await a.becomes(true, 5_000);
  });

  it('a partition with two candidates: the cut-off leader stops before the other takes over, and its writes are refused', async () => {
    const a = elector('policy-a');
    a.e.start();
    await a.becomes(true);
    const b = elector('policy-b');
    b.e.start();
    // A cannot reach the API server any more; B can.
    const fault = api.injectFault({ token: 'policy-a', delayMs: 30_000, times: 1000 });
    const options = a.e.writeOptions();
    const aDown = await a.becomes(false, 3_000);
    const bUp = await b.becomes(true, 5_000);
    fault.cancel();
    expect(aDown).toBeLessThan(bUp);
    expect(lease().spec).toMatchObject({ holderIdentity: 'policy-b' });
    // A write A prepared while it led is aborted by the end of its lease, not sent under B's.
    const write = api.clients('sair-system').core.createNamespacedConfigMap({ namespace: 'sair-system', body: { metadata: { name: 'late-write' } } }, options);
    await expect(write).rejects.toThrow(/not the holder of a valid Lease/);
    expect(api.get('configmaps', 'sair-system', 'late-write')).toBeUndefined();
    expect(a.changes.filter((c) => c.leading).length).toBe(1);
  });
});
