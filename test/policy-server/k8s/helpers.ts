// Fixtures for the cluster adapter tests: objects as a cluster would hold them, and a way to wait
// until an informer's cache shows something (driven by its events, not by sleeping).
import * as k8s from '@kubernetes/client-node';
import type { FakeApiServer } from '../../support/fake-apiserver.js';
import type { Informed } from '../../../src/policy-server/k8s/informers.js';

export function namespace(name: string, enabled: boolean): k8s.V1Namespace {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: enabled ? { 'sair.dev/enabled': 'true' } : {} } };
}

export function deployment(ns: string, name: string, replicas: number, gpuCores?: number): k8s.V1Deployment {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: ns },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name }, annotations: gpuCores ? { 'sair.dev/gpu-cores': String(gpuCores) } : {} },
        spec: { containers: [{ name: 'main', image: 'example/serve:1' }] },
      },
    },
    status: { replicas, readyReplicas: replicas },
  };
}

export function pod(ns: string, deploymentName: string, suffix: string, gpuCores?: number): k8s.V1Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: `${deploymentName}-7c9f8-${suffix}`,
      namespace: ns,
      labels: { app: deploymentName, 'pod-template-hash': '7c9f8', 'sair.dev/managed': 'true' },
      annotations: gpuCores ? { 'sair.dev/gpu-cores': String(gpuCores) } : {},
    },
    spec: { containers: [{ name: 'main', image: 'example/serve:1' }] },
    status: { phase: 'Running' },
  };
}

export function hpa(ns: string, name: string, target: string, min: number, max: number, labels: Record<string, string> = { 'sair.dev/managed': 'true' }): k8s.V2HorizontalPodAutoscaler {
  return {
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name, namespace: ns, labels },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: target },
      minReplicas: min,
      maxReplicas: max,
      metrics: [{ type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 70 } } }],
      behavior: { scaleUp: { selectPolicy: 'Disabled' }, scaleDown: { selectPolicy: 'Disabled' } },
    },
  };
}

export function pipeline(ns: string, name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return { apiVersion: 'sair.dev/v1alpha1', kind: 'InferencePipeline', metadata: { name, namespace: ns }, spec };
}

/** Resolves once `test` holds for the informer's cache, re-checking on each of its events. */
export function until<T extends k8s.KubernetesObject>(informed: Informed<T>, test: (items: readonly T[]) => boolean, timeoutMs = 5_000): Promise<void> {
  return new Promise((resolve, reject) => {
    const check = () => {
      if (test(informed.informer.list())) {
        informed.informer.off(k8s.CHANGE, check);
        clearTimeout(timer);
        resolve();
      }
    };
    const timer = setTimeout(() => {
      informed.informer.off(k8s.CHANGE, check);
      reject(new Error(`informer cache did not reach the expected state in ${timeoutMs} ms`));
    }, timeoutMs);
    informed.informer.on(k8s.CHANGE, check);
    check();
  });
}

/** Requests that changed something, for "nothing was written" assertions. */
export function writes(api: FakeApiServer, resource: string, subresource?: string) {
  return api.requests.filter(
    (r) => r.resource === resource && (subresource === undefined || r.subresource === subresource) && ['create', 'update', 'patch', 'delete'].includes(r.verb ?? ''),
  );
}
