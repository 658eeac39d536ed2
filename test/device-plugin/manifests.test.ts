// manifests/device-plugin: every object validates against the Kubernetes schemas (kubernetes-models),
// and the DaemonSet fits what `sair device-plugin` needs: GPU nodes only, node-critical, the host
// paths the webhook and the shim rely on, env the command understands, least-privilege RBAC.
import path from 'node:path';
import type { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { IDaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import type { IClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import type { IClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { loadConfig } from '../../src/common/config.js';
import { spec } from '../../src/cmd/device-plugin.js';
import { readYaml, validateManifest, type ManifestObject } from '../support/manifests.js';

const DIR = path.resolve('manifests/device-plugin');
const kustomization = readYaml<{ namespace: string; resources: string[] }>(path.join(DIR, 'kustomization.yaml'))[0]!;
const objects: ManifestObject[] = kustomization.resources.flatMap((file) => readYaml(path.join(DIR, file)));
const byKind = <T>(kind: string): T => {
  const o = objects.find((x) => x.kind === kind);
  if (!o) throw new Error(`no ${kind} in manifests/device-plugin`);
  return o as T;
};

describe('manifests/device-plugin', () => {
  it('holds only valid objects', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual([
      'ClusterRole',
      'ClusterRoleBinding',
      'DaemonSet',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
    ]);
    for (const o of objects) expect(() => validateManifest(o)).not.toThrow();
    expect(kustomization.namespace).toBe('sair-system');
  });

  it('runs node-critical on GPU nodes only, tolerating GPU taints', () => {
    const pod = byKind<IDaemonSet>('DaemonSet').spec!.template.spec!;
    expect(pod.nodeSelector).toEqual({ 'sair.dev/gpu-node': 'true' });
    expect(pod.priorityClassName).toBe('system-node-critical');
    expect(pod.tolerations).toEqual(expect.arrayContaining([{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]));
    expect(pod.serviceAccountName).toBe(byKind<ServiceAccount>('ServiceAccount').metadata!.name);
  });

  it('mounts the kubelet socket directories, /var/lib/sair and /run/sair at the same paths as on the host', () => {
    const pod = byKind<IDaemonSet>('DaemonSet').spec!.template.spec!;
    const container = pod.containers[0]!;
    const hostOf = Object.fromEntries((pod.volumes ?? []).map((v) => [v.name, v.hostPath?.path]));
    const mounts = Object.fromEntries((container.volumeMounts ?? []).map((m) => [m.mountPath, hostOf[m.name]]));
    expect(mounts).toEqual({
      '/var/lib/kubelet/device-plugins': '/var/lib/kubelet/device-plugins',
      '/var/lib/kubelet/pod-resources': '/var/lib/kubelet/pod-resources',
      '/var/lib/sair': '/var/lib/sair',
      '/run/sair': '/run/sair',
    });
    expect(container.args).toEqual(['device-plugin']);
    expect(container.securityContext).toMatchObject({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  it('passes env that `sair device-plugin` accepts, with paths inside those mounts', () => {
    const container = byKind<IDaemonSet>('DaemonSet').spec!.template.spec!.containers[0]!;
    const env: Record<string, string> = {};
    for (const e of container.env ?? []) if (e.name.startsWith('SAIR_')) env[e.name] = e.value ?? (e.name === 'SAIR_METRICS_HOST' ? '10.0.0.7' : 'node-from-downward-api');
    expect(container.env!.find((e) => e.name === 'SAIR_NODE_NAME')!.valueFrom).toEqual({ fieldRef: { fieldPath: 'spec.nodeName' } });
    const known = new Set(Object.values(spec).map((f) => f.env));
    expect(Object.keys(env).filter((k) => !known.has(k))).toEqual([]);
    const cfg = loadConfig(spec, env, []);
    expect(cfg.libDir).toBe('/var/lib/sair/lib');
    expect(cfg.allocationRoot).toBe('/run/sair/alloc');
    expect(cfg.podResourcesSocket).toBe('/var/lib/kubelet/pod-resources/kubelet.sock');
    expect(container.env!.find((e) => e.name === 'SAIR_METRICS_HOST')!.valueFrom).toEqual({ fieldRef: { fieldPath: 'status.podIP' } });
    expect(cfg.socketDir).toBe('/var/lib/kubelet/device-plugins');
    expect(container.ports).toEqual([{ name: 'metrics', containerPort: cfg.metricsPort, protocol: 'TCP' }]);
  });

  it('grants only get/list/watch/patch on pods (the patches confined by a policy), create on events and list on InferencePipelines', () => {
    const role = byKind<IClusterRole>('ClusterRole');
    expect(role.rules).toEqual([
      { apiGroups: [''], resources: ['pods'], verbs: ['get', 'list', 'watch', 'patch'] },
      { apiGroups: [''], resources: ['events'], verbs: ['create'] },
      { apiGroups: ['sair.dev'], resources: ['inferencepipelines'], verbs: ['list'] },
    ]);
    const binding = byKind<IClusterRoleBinding>('ClusterRoleBinding');
    expect(binding.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata!.name });
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'sair-device-plugin', namespace: 'sair-system' }]);
  });
});
