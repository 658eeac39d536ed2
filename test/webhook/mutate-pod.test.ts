import { mutatePod, withShimPreload, type MutationResult } from '../../src/webhook/mutate-pod.js';
import type { Container, EnvVar, Pod } from '../../src/webhook/k8s-types.js';
import { samplePod } from '../../src/webhook/sample.js';

const SHIM = '/usr/local/sair/lib/libsair-cuda.so';

function gpu(name: string, extra: Partial<Container> = {}, count: string | number = 1): Container {
  return { name, image: 'cuda:12', resources: { limits: { 'nvidia.com/gpu': count } }, ...extra };
}

function pod(containers: Container[], metadata: Pod['metadata'] = {}, spec: Partial<Pod['spec']> = {}): Pod {
  return { apiVersion: 'v1', kind: 'Pod', metadata, spec: { containers, ...spec } };
}

function allowed(result: MutationResult<Pod>): { object: Pod; warnings: string[] } {
  if (!result.allowed) throw new Error(`denied: ${result.message}`);
  return result;
}

function envOf(c: Container): Record<string, EnvVar> {
  return Object.fromEntries((c.env ?? []).map((e) => [e.name, e]));
}

describe('mutatePod', () => {
  it('injects env, mounts, volumes and the injected annotation into a GPU container', () => {
    const input = pod([gpu('infer')], { annotations: { 'sair.dev/gpu-cores': '40', 'sair.dev/gpu-memory': '2Gi' } });
    const { object, warnings } = allowed(mutatePod(input));
    expect(warnings).toEqual([]);
    const c = object.spec.containers[0]!;
    expect(envOf(c)).toEqual({
      SAIR_POD_UID: { name: 'SAIR_POD_UID', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.uid' } } },
      SAIR_POD_NAME: { name: 'SAIR_POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
      SAIR_POD_NAMESPACE: { name: 'SAIR_POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
      SAIR_CONTAINER_NAME: { name: 'SAIR_CONTAINER_NAME', value: 'infer' },
      SAIR_GPU_CORES: { name: 'SAIR_GPU_CORES', value: '40' },
      SAIR_GPU_MEMORY: { name: 'SAIR_GPU_MEMORY', value: String(2 * 1024 ** 3) },
      SAIR_CONTROL_DIR: { name: 'SAIR_CONTROL_DIR', value: '/run/sair' },
      LD_PRELOAD: { name: 'LD_PRELOAD', value: SHIM },
    });
    expect(c.volumeMounts).toEqual([
      { name: 'sair-lib', mountPath: '/usr/local/sair/lib', readOnly: true },
      { name: 'sair-control', mountPath: '/run/sair', subPathExpr: '$(SAIR_POD_UID)' },
    ]);
    expect(object.spec.volumes).toEqual([
      { name: 'sair-lib', hostPath: { path: '/var/lib/sair/lib', type: 'DirectoryOrCreate' } },
      { name: 'sair-control', hostPath: { path: '/run/sair/pods', type: 'DirectoryOrCreate' } },
    ]);
    expect(object.metadata?.annotations).toEqual({ 'sair.dev/gpu-cores': '40', 'sair.dev/gpu-memory': '2Gi', 'sair.dev/injected': 'true' });
    // A fractional share of one GPU becomes a shared slot.
    expect(c.resources).toEqual({ limits: { 'sair.dev/gpu': '1' } });
  });

  it('never modifies its input (deep-frozen, so any write would throw)', () => {
    const deepFreeze = <T>(o: T): T => {
      if (o && typeof o === 'object') {
        for (const v of Object.values(o)) deepFreeze(v);
        Object.freeze(o);
      }
      return o;
    };
    const input = samplePod() as unknown as Pod;
    input.spec.initContainers = [gpu('init', { env: [{ name: 'LD_PRELOAD', value: '/x.so' }], volumeMounts: [{ name: 'v', mountPath: '/v' }] })];
    const copy = structuredClone(input);
    const { object } = allowed(mutatePod(deepFreeze(input)));
    expect(input).toEqual(copy);
    expect(object).not.toEqual(copy);
  });

  it('defaults to a whole GPU and no memory quota without annotations, and creates the annotations map', () => {
    const { object } = allowed(mutatePod(pod([gpu('a')], undefined)));
    const env = envOf(object.spec.containers[0]!);
    expect(env.SAIR_GPU_CORES?.value).toBe('100');
    expect(env.SAIR_GPU_MEMORY?.value).toBe('0');
    expect(object.spec.containers[0]!.resources).toEqual({ limits: { 'nvidia.com/gpu': 1 } });
    expect(object.metadata).toEqual({ labels: { 'sair.dev/managed': 'true' }, annotations: { 'sair.dev/injected': 'true' } });
  });

  it('touches only the containers and init containers that ask for a GPU', () => {
    const input = pod([{ name: 'cpu', image: 'x' }, gpu('g1'), { name: 'zero', resources: { limits: { 'nvidia.com/gpu': '0' } } }], {}, {
      initContainers: [{ name: 'init-cpu', image: 'x' }, { name: 'warmup', resources: { requests: { 'sair.dev/gpu': '1' } } }],
    });
    const { object } = allowed(mutatePod(input));
    expect(object.spec.containers[0]).toEqual({ name: 'cpu', image: 'x' });
    expect(object.spec.containers[2]).toEqual({ name: 'zero', resources: { limits: { 'nvidia.com/gpu': '0' } } });
    expect(object.spec.initContainers![0]).toEqual({ name: 'init-cpu', image: 'x' });
    expect(envOf(object.spec.initContainers![1]!).SAIR_CONTAINER_NAME?.value).toBe('warmup');
    expect(envOf(object.spec.containers[1]!).SAIR_CONTAINER_NAME?.value).toBe('g1');
  });

  it('keeps existing env, mounts and volumes and puts the shim first in an existing LD_PRELOAD', () => {
    const input = pod(
      [
        gpu('g', {
          env: [
            { name: 'A', value: '1' },
            { name: 'LD_PRELOAD', value: '/lib/libtcmalloc.so' },
            { name: 'SAIR_GPU_CORES', value: '5' },
          ],
          volumeMounts: [{ name: 'data', mountPath: '/data' }],
        }),
      ],
      {},
      { volumes: [{ name: 'data', emptyDir: {} }] },
    );
    const { object } = allowed(mutatePod(input));
    const c = object.spec.containers[0]!;
    expect(c.env!.slice(0, 3)).toEqual([
      { name: 'A', value: '1' },
      { name: 'LD_PRELOAD', value: `${SHIM}:/lib/libtcmalloc.so` },
      // A value the user set by hand is overwritten by the pod's real quota, in place.
      { name: 'SAIR_GPU_CORES', value: '100' },
    ]);
    expect(c.volumeMounts![0]).toEqual({ name: 'data', mountPath: '/data' });
    expect(object.spec.volumes![0]).toEqual({ name: 'data', emptyDir: {} });
    expect(object.spec.volumes).toHaveLength(3);
  });

  it('is idempotent: a second pass changes nothing', () => {
    for (const input of [samplePod() as unknown as Pod, pod([gpu('a'), gpu('b', {}, 2)], { annotations: { 'sair.dev/gpu-cores': '10' } })]) {
      const once = allowed(mutatePod(input)).object;
      const twice = allowed(mutatePod(once)).object;
      expect(twice).toEqual(once);
    }
  });

  it('leaves a pod labelled sair.dev/inject=false alone, even with bad annotations', () => {
    const input = pod([gpu('g')], { labels: { 'sair.dev/inject': 'false' }, annotations: { 'sair.dev/gpu-cores': 'lots' } });
    const result = allowed(mutatePod(input));
    expect(result.object).toBe(input);
  });

  it('leaves a pod without GPU containers alone, warning about quota annotations that do nothing', () => {
    const plain = pod([{ name: 'web', image: 'nginx' }]);
    expect(allowed(mutatePod(plain))).toEqual({ allowed: true, object: plain, warnings: [] });
    const annotated = pod([{ name: 'web' }], { annotations: { 'sair.dev/gpu-memory': '1Gi' } });
    const { object, warnings } = allowed(mutatePod(annotated));
    expect(object).toBe(annotated);
    expect(warnings).toEqual([expect.stringContaining('sair.dev/gpu-memory set, but no container asks for nvidia.com/gpu or sair.dev/gpu')]);
  });

  it.each([
    ['sair.dev/gpu-cores', '0', 'sair.dev/gpu-cores: "0" is not an integer from 1 to 100'],
    ['sair.dev/gpu-cores', '50%', 'sair.dev/gpu-cores: "50%" is not an integer from 1 to 100'],
    ['sair.dev/gpu-memory', '8GB', 'sair.dev/gpu-memory: "8GB" is not a Kubernetes quantity greater than 0'],
  ])('denies %s=%s with code 400 naming the annotation, value and form', (key, value, message) => {
    const result = mutatePod(pod([gpu('g')], { annotations: { [key]: value } }));
    expect(result).toEqual({ allowed: false, code: 400, message: expect.stringContaining(message) });
  });

  it('keeps whole GPUs when the share is 100 or the container asks for several', () => {
    const whole = allowed(mutatePod(pod([gpu('g')], { annotations: { 'sair.dev/gpu-cores': '100' } }))).object;
    expect(whole.spec.containers[0]!.resources).toEqual({ limits: { 'nvidia.com/gpu': 1 } });
    const multi = allowed(mutatePod(pod([gpu('g', {}, '2')], { annotations: { 'sair.dev/gpu-cores': '50' } })));
    expect(multi.object.spec.containers[0]!.resources).toEqual({ limits: { 'nvidia.com/gpu': '2' } });
    expect(multi.warnings).toEqual([expect.stringContaining('asks for 2 whole GPUs')]);
  });

  it('converts nvidia.com/gpu in both limits and requests to a slot', () => {
    const c = gpu('g', { resources: { limits: { cpu: '1', 'nvidia.com/gpu': '1' }, requests: { 'nvidia.com/gpu': '1', cpu: '1' } } });
    const { object } = allowed(mutatePod(pod([c], { annotations: { 'sair.dev/gpu-cores': '25' } })));
    expect(object.spec.containers[0]!.resources).toEqual({ limits: { cpu: '1', 'sair.dev/gpu': '1' }, requests: { cpu: '1', 'sair.dev/gpu': '1' } });
  });

  it('warns and leaves LD_PRELOAD alone when it comes from valueFrom', () => {
    const preload = { name: 'LD_PRELOAD', valueFrom: { configMapKeyRef: { name: 'cm', key: 'preload' } } };
    const { object, warnings } = allowed(mutatePod(pod([gpu('g', { env: [preload] })])));
    expect(object.spec.containers[0]!.env![0]).toEqual(preload);
    expect(warnings).toEqual([expect.stringContaining('LD_PRELOAD comes from valueFrom')]);
  });

  it('replaces a user volume or mount that reuses a SAIR name with the real one', () => {
    const input = pod([gpu('g', { volumeMounts: [{ name: 'sair-control', mountPath: '/elsewhere' }] })], {}, { volumes: [{ name: 'sair-control', emptyDir: {} }] });
    const { object } = allowed(mutatePod(input));
    expect(object.spec.volumes).toContainEqual({ name: 'sair-control', hostPath: { path: '/run/sair/pods', type: 'DirectoryOrCreate' } });
    expect(object.spec.containers[0]!.volumeMounts).toEqual([
      { name: 'sair-control', mountPath: '/run/sair', subPathExpr: '$(SAIR_POD_UID)' },
      { name: 'sair-lib', mountPath: '/usr/local/sair/lib', readOnly: true },
    ]);
  });
});

describe('withShimPreload', () => {
  it.each([
    [undefined, SHIM],
    ['', SHIM],
    ['/a.so', `${SHIM}:/a.so`],
    ['/a.so /b.so', `${SHIM}:/a.so:/b.so`],
    [`/a.so:${SHIM}`, `${SHIM}:/a.so`],
    [`${SHIM}:/a.so`, `${SHIM}:/a.so`],
    [`${SHIM} /a.so`, `${SHIM} /a.so`],
    [`${SHIM}:${SHIM}`, SHIM],
  ])('%j becomes %j', (existing, expected) => {
    expect(withShimPreload(existing)).toBe(expected);
  });
});
