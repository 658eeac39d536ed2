// The failsafe with its default settings against the fake API server on loopback: a leader renews
// the Lease, 20 taken-over HPAs wait; the leader dies without releasing; the time from its last
// renewal to every HPA scaling on its own behavior again is `hpa_restore_s` (target <= 240 s with
// the default 180 s delay and 10 s poll). Then a leader returns and the HPAs are taken over again.
// Bounded: it gives up after 300 s.
import type * as k8s from '@kubernetes/client-node';
import { startFailsafe, loadFailsafeConfig } from '../src/cmd/failsafe.js';
import { takeOver, type HpaObject } from '../src/common/hpa-takeover.js';
import { createLogger } from '../src/common/logger.js';
import { LeaderElector, leaseTimings } from '../src/policy-server/k8s/leader.js';
import { startFakeApiServer } from '../test/support/fake-apiserver.js';

const HPAS = 20;
const logger = createLogger('bench', 'silent');

async function until(test: () => boolean, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (!test()) {
    if (Date.now() - started > timeoutMs) throw new Error(`not reached within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return Date.now();
}

async function main(): Promise<void> {
  const api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'ml', labels: { 'sair.dev/enabled': 'true' } } });
  for (let i = 0; i < HPAS; i++) {
    const hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: `web-${i}`, namespace: 'ml' },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `web-${i}` }, minReplicas: 1, maxReplicas: 10, behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } },
    };
    api.seed(takeOver(hpa as unknown as HpaObject).object);
  }
  const elector = (identity: string) =>
    new LeaderElector({ coordination: api.clients('sair-system').coordination, namespace: 'sair-system', name: 'sair-policy', identity, leaseDurationSeconds: 15, ...leaseTimings(15), logger });
  const a = elector('policy-a');
  a.start();
  await until(() => a.isLeader(), 10_000);
  const failsafe = await startFailsafe(loadFailsafeConfig({ SAIR_KUBE_API_SERVER: api.url, SAIR_LOG_LEVEL: 'silent', SAIR_FAILSAFE_HOST: '127.0.0.1' }, ['--port', '0']));
  await new Promise((r) => setTimeout(r, 5_000));
  await a.stop({ release: false });
  const lease = api.get<k8s.V1Lease>('leases', 'sair-system', 'sair-policy')!;
  const lastRenewal = new Date(String(lease.spec!.renewTime)).getTime();
  console.log(`leader stopped without releasing; last renewal ${new Date(lastRenewal).toISOString()}`);
  const own = () => api.list<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers', 'ml').filter((h) => h.spec?.behavior?.scaleUp?.selectPolicy !== 'Disabled').length;
  const restoredAt = await until(() => own() === HPAS, 300_000);
  const restoreS = (restoredAt - lastRenewal) / 1000;
  console.log(`all ${HPAS} HPAs scale on their own behavior ${restoreS.toFixed(1)} s after the last renewal`);
  const b = elector('policy-b');
  b.start();
  const ledAt = await until(() => b.isLeader(), 60_000);
  const takenAt = await until(() => own() === 0, 60_000);
  console.log(`a leader returned; HPAs taken over again ${((takenAt - ledAt) / 1000).toFixed(1)} s later`);
  await b.stop();
  await failsafe.stop();
  await api.close();
  console.log(`summary: hpas=${HPAS} failsafe_after_s=180 poll_s=10 hpa_restore_s=${restoreS.toFixed(1)} retake_s=${((takenAt - ledAt) / 1000).toFixed(1)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
