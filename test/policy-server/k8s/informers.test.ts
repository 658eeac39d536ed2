// The policy server's caches hold the opted-in namespaces' objects and nothing else, against the
// fake API server through the real client-node: a namespace that is not opted in is never listed
// or watched; one that gains sair.dev/enabled=true at runtime is cached, one that loses it is
// dropped (objects and watches), and its pipelines leave the catalog.
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import * as k8s from '@kubernetes/client-node';
import { MERGE_PATCH, type KubeClients } from '../../../src/common/k8s.js';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { PipelineCatalog } from '../../../src/policy-server/k8s/catalog.js';
import { createPolicyInformers, type PolicyInformers } from '../../../src/policy-server/k8s/informers.js';
import { eventually } from '../../support/eventually.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { deployment, hpa, namespace, pipeline, pod, until } from './helpers.js';

const logger = createLogger('test', 'silent');
const hpaDefaults = { sloP99Ms: 500, tickSeconds: 30, cost: { gpuHour: 2.5, replicaHour: 0.05 }, gpuCores: { min: 10, max: 100, step: 10 }, mode: 'Active' as const };
const spec = { slo: { p99Ms: 800 }, stages: [{ name: 'web', deployment: 'web', maxReplicas: 4 }] };
const NAMESPACED = ['inferencepipelines.sair.dev', 'deployments.apps', 'horizontalpodautoscalers.autoscaling', 'pods'];

/** A namespace with one of each kind the server reads, and a pod SAIR does not manage. */
function seedNamespace(api: FakeApiServer, ns: string, enabled: boolean): void {
  api.seed(namespace(ns, enabled));
  api.seed(deployment(ns, 'web', 2));
  api.seed(pod(ns, 'web', 'aaaaa'));
  api.seed({ ...pod(ns, 'web', 'plain'), metadata: { name: 'plain', namespace: ns, labels: { app: 'other' } } });
  api.seed(hpa(ns, 'web', 'web', 1, 4));
  api.seed(pipeline(ns, 'chat', spec));
}

const namespacesOf = (items: readonly k8s.KubernetesObject[]) => [...new Set(items.map((o) => o.metadata?.namespace))].sort();

describe('informer caches scoped to opted-in namespaces', () => {
  let api: FakeApiServer;
  let admin: KubeClients;
  let informers: PolicyInformers;
  let catalog: PipelineCatalog;
  const registry = createRegistry('policy', { defaultMetrics: false });

  beforeEach(async () => {
    api = await startFakeApiServer();
    admin = api.clients('default');
    seedNamespace(api, 'ml', true);
    seedNamespace(api, 'other', false);
    registry.clear();
    informers = createPolicyInformers(api.clients('ml'), logger, { restartDelayMs: 50, registry });
    await informers.waitForSync(5_000);
    catalog = new PipelineCatalog(informers, hpaDefaults);
  });
  afterEach(async () => {
    await informers.stop();
    await api.close();
  });

  const label = (ns: string, enabled: boolean) => admin.core.patchNamespace({ name: ns, body: { metadata: { labels: { 'sair.dev/enabled': enabled ? 'true' : null } } } }, MERGE_PATCH);
  const metric = async (name: string) => (await registry.getSingleMetric(name)!.get()).values.map((v) => [v.labels.resource ?? '', v.value]);

  it('never lists, watches or caches what is outside the opted-in namespaces, nor pods SAIR does not manage', () => {
    for (const i of [informers.pipelines, informers.deployments, informers.hpas, informers.pods]) expect(namespacesOf(i.informer.list())).toEqual(['ml']);
    expect(informers.pods.informer.list().map((p) => p.metadata?.name)).toEqual(['web-7c9f8-aaaaa']);
    const reads = api.requests.filter((r) => NAMESPACED.includes(r.resource ?? '') && (r.verb === 'list' || r.verb === 'watch'));
    expect(reads.length).toBeGreaterThanOrEqual(NAMESPACED.length * 2);
    expect(new Set(reads.map((r) => r.namespace))).toEqual(new Set(['ml']));
    expect(catalog.refresh().map((p) => p.id)).toEqual(['ml/chat']);
    expect(informers.watches()).toBe(1 + NAMESPACED.length);
    expect(api.watchCount).toBe(1 + NAMESPACED.length);
  });

  it('caches a namespace labelled at runtime, and drops its objects, watches and pipelines when the label goes', async () => {
    await label('other', true);
    await until(informers.pipelines, (items) => items.length === 2);
    await until(informers.pods, (items) => items.length === 2);
    await eventually(() => (informers.namespaceSynced('other') ? true : undefined), 5_000, 'the caches of other to list');
    expect(catalog.refresh().map((p) => p.id).sort()).toEqual(['ml/chat', 'other/chat']);
    expect(informers.watches()).toBe(1 + 2 * NAMESPACED.length);
    expect(await metric('sair_policy_informer_watches')).toEqual([['', 9]]);

    const deleted: string[] = [];
    informers.deployments.informer.on(k8s.DELETE, (d) => deleted.push(`${d.metadata?.namespace}/${d.metadata?.name}`));
    await label('other', false);
    await until(informers.pipelines, (items) => items.length === 1);
    await until(informers.deployments, (items) => items.length === 1);
    for (const i of [informers.pipelines, informers.deployments, informers.hpas, informers.pods]) expect(namespacesOf(i.informer.list())).toEqual(['ml']);
    expect(deleted).toEqual(['other/web']);
    expect(catalog.refresh().map((p) => p.id)).toEqual(['ml/chat']);
    expect(informers.watches()).toBe(1 + NAMESPACED.length);
    await eventually(() => (api.watchCount === 1 + NAMESPACED.length ? true : undefined), 5_000, 'the API server to see the watches of other closed');
    expect(await metric('sair_policy_informer_cached_objects')).toEqual([
      ['namespaces', 1],
      ['inferencepipelines', 1],
      ['deployments', 1],
      ['horizontalpodautoscalers', 1],
      ['pods', 1],
    ]);
    // Changes in a namespace no longer opted in do not reach the caches.
    api.seed(deployment('other', 'late', 1));
    await label('ml', true);
    await until(informers.namespaces, (items) => items.length === 1);
    expect(informers.deployments.informer.get('late', 'other')).toBeUndefined();
  });

  it('a deleted opted-in namespace leaves the caches like one that opted out', async () => {
    await admin.core.deleteNamespace({ name: 'ml' });
    await until(informers.pipelines, (items) => items.length === 0);
    await until(informers.pods, (items) => items.length === 0);
    expect(catalog.refresh()).toEqual([]);
    expect(informers.watches()).toBe(1);
  });
});
