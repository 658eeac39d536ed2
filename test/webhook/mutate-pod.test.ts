import { checkPodUpdate, mutatePod, withShimPreload, type MutationResult } from '../../src/webhook/mutate-pod.js';
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
  it('preloads the shim and sets the annotations\' limits in a container that gets a slot, and adds no volumes', () => {
    const input = pod([gpu('infer')], { annotations: { 'sair.dev/gpu-cores': '40', 'sair.dev/gpu-memory': '2Gi' } });
    const { object, warnings } = allowed(mutatePod(input));
    expect(warnings).toEqual([]);
    const c = object.spec.containers[0]!;
    expect(envOf(c)).toEqual({
      SAIR_GPU_CORES: { name: 'SAIR_GPU_CORES', value: '40' },
      SAIR_GPU_MEMORY: { name: 'SAIR_GPU_MEMORY', value: String(2 * 1024 ** 3) },
      LD_PRELOAD: { name: 'LD_PRELOAD', value: SHIM },
    });
    expect(c.volumeMounts).toBeUndefined();
    expect(object.spec.volumes).toBeUndefined();
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

  it('gives a whole GPU SAIR\'s whole-GPU resource and nothing else (no shim, no label), and sets only the limits the annotations name on a slot', () => {
    const whole = allowed(mutatePod(pod([gpu('a')]))).object;
    expect(whole).toEqual(pod([{ ...gpu('a'), resources: { limits: { 'sair.dev/gpu-whole': '1' } } }]));
    // Idempotent: a second pass leaves it as it is.
    expect(allowed(mutatePod(whole)).object).toBe(whole);
    const { object } = allowed(mutatePod(pod([{ name: 's', resources: { limits: { 'sair.dev/gpu': '2' } } }])));
    // Without annotations the slots' share, from the device plugin, stands.
    expect(envOf(object.spec.containers[0]!)).toEqual({ LD_PRELOAD: { name: 'LD_PRELOAD', value: SHIM } });
    expect(object.metadata).toEqual({ labels: { 'sair.dev/managed': 'true' }, annotations: { 'sair.dev/injected': 'true' } });
  });

  it('touches only the containers and init containers that get a slot', () => {
    const input = pod([{ name: 'cpu', image: 'x' }, { name: 'g1', resources: { limits: { 'sair.dev/gpu': '1' } } }, { name: 'zero', resources: { limits: { 'nvidia.com/gpu': '0' } } }], {}, {
      initContainers: [{ name: 'init-cpu', image: 'x' }, { name: 'warmup', resources: { requests: { 'sair.dev/gpu': '1' } } }],
    });
    const { object } = allowed(mutatePod(input));
    expect(object.spec.containers[0]).toEqual({ name: 'cpu', image: 'x' });
    expect(object.spec.containers[2]).toEqual({ name: 'zero', resources: { limits: { 'nvidia.com/gpu': '0' } } });
    expect(object.spec.initContainers![0]).toEqual({ name: 'init-cpu', image: 'x' });
    expect(envOf(object.spec.initContainers![1]!).LD_PRELOAD?.value).toBe(SHIM);
    expect(envOf(object.spec.containers[1]!).LD_PRELOAD?.value).toBe(SHIM);
  });

  it('keeps existing env and mounts and puts the shim first in an existing LD_PRELOAD', () => {
    const input = pod(
      [gpu('g', { env: [{ name: 'A', value: '1' }, { name: 'LD_PRELOAD', value: '/lib/libtcmalloc.so' }], volumeMounts: [{ name: 'data', mountPath: '/data' }] })],
      { annotations: { 'sair.dev/gpu-cores': '25' } },
      { volumes: [{ name: 'data', emptyDir: {} }] },
    );
    const c = allowed(mutatePod(input)).object.spec.containers[0]!;
    expect(c.env).toEqual([
      { name: 'A', value: '1' },
      { name: 'LD_PRELOAD', value: `${SHIM}:/lib/libtcmalloc.so` },
      { name: 'SAIR_GPU_CORES', value: '25' },
    ]);
    expect(c.volumeMounts).toEqual([{ name: 'data', mountPath: '/data' }]);
  });

  it('is idempotent: a second pass over its own output passes and changes nothing', () => {
    for (const input of [samplePod() as unknown as Pod, pod([gpu('a'), gpu('b', {}, 2)], { annotations: { 'sair.dev/gpu-cores': '10', 'sair.dev/gpu-memory': '1Gi' } })]) {
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

  it('converts whole GPUs (a share of 100, or several GPUs) to sair.dev/gpu-whole, warning that a share is not enforced on them', () => {
    const whole = allowed(mutatePod(pod([gpu('g')], { annotations: { 'sair.dev/gpu-cores': '100' } }))).object;
    expect(whole.spec.containers[0]!.resources).toEqual({ limits: { 'sair.dev/gpu-whole': '1' } });
    const c = gpu('g', { resources: { limits: { cpu: '1', 'nvidia.com/gpu': '2' }, requests: { 'nvidia.com/gpu': '2' } } });
    const multi = allowed(mutatePod(pod([c], { annotations: { 'sair.dev/gpu-cores': '50' } })));
    expect(multi.object.spec.containers[0]!.resources).toEqual({ limits: { cpu: '1', 'sair.dev/gpu-whole': '2' }, requests: { 'sair.dev/gpu-whole': '2' } });
    expect(multi.object.spec.containers[0]!.env).toBeUndefined();
    expect(multi.warnings).toEqual([expect.stringContaining('asks for 2 whole GPUs')]);
  });

  it('converts nvidia.com/gpu in both limits and requests to a slot', () => {
    const c = gpu('g', { resources: { limits: { cpu: '1', 'nvidia.com/gpu': '1' }, requests: { 'nvidia.com/gpu': '1', cpu: '1' } } });
    const { object } = allowed(mutatePod(pod([c], { annotations: { 'sair.dev/gpu-cores': '25' } })));
    expect(object.spec.containers[0]!.resources).toEqual({ limits: { cpu: '1', 'sair.dev/gpu': '1' }, requests: { cpu: '1', 'sair.dev/gpu': '1' } });
  });

  it('warns and leaves LD_PRELOAD alone when it comes from valueFrom', () => {
    const preload = { name: 'LD_PRELOAD', valueFrom: { configMapKeyRef: { name: 'cm', key: 'preload' } } };
    const { object, warnings } = allowed(mutatePod(pod([gpu('g', { env: [preload] })], { annotations: { 'sair.dev/gpu-cores': '30' } })));
    expect(object.spec.containers[0]!.env![0]).toEqual(preload);
    expect(warnings).toEqual([expect.stringContaining('LD_PRELOAD comes from valueFrom')]);
  });
});

describe('mutatePod refuses what would undo isolation', () => {
  const slotted = { annotations: { 'sair.dev/gpu-cores': '30', 'sair.dev/injected': 'true' } };
  it.each([
    ['a SAIR_* variable SAIR would not set', [gpu('g', { env: [{ name: 'SAIR_STATE_FILE', value: '/tmp/x' }] })], {}, 'spec.containers[0].env[0].name: SAIR_STATE_FILE is set by SAIR'],
    ['a different share than the annotation', [gpu('g', { env: [{ name: 'SAIR_GPU_CORES', value: '100' }] })], {}, 'spec.containers[0].env[0].name: SAIR_GPU_CORES is set by SAIR'],
    ['a variable listed twice', [gpu('g', { env: [{ name: 'SAIR_GPU_CORES', value: '30' }, { name: 'SAIR_GPU_CORES', value: '100' }] })], {}, 'spec.containers[0].env[1].name: SAIR_GPU_CORES is listed twice'],
    ['SAIR_* in a container without a GPU', [{ name: 'side', env: [{ name: 'SAIR_POD_UID', value: 'x' }] }, gpu('g')], {}, 'spec.containers[0].env[0].name: SAIR_POD_UID'],
    ['an envFrom prefix in SAIR\'s namespace', [gpu('g', { envFrom: [{ prefix: 'SAIR_', configMapRef: { name: 'cm' } }] })], {}, 'spec.containers[0].envFrom[0].prefix'],
    ['a mount over the shim', [gpu('g', { volumeMounts: [{ name: 'mine', mountPath: '/usr/local/sair/lib' }] })], { volumes: [{ name: 'mine', emptyDir: {} }] }, 'spec.containers[0].volumeMounts[0].mountPath: /usr/local/sair/lib'],
    ['a volume with a SAIR name', [gpu('g')], { volumes: [{ name: 'sair-lib', emptyDir: {} }] }, 'spec.volumes[0].name: "sair-lib"'],
    ['a hostPath to SAIR\'s files', [gpu('g')], { volumes: [{ name: 'h', hostPath: { path: '/run/sair/alloc' } }] }, 'spec.volumes[0].hostPath.path: /run/sair/alloc'],
    ['a hostPath above SAIR\'s files', [gpu('g')], { volumes: [{ name: 'h', hostPath: { path: '/var/lib/' } }] }, 'spec.volumes[0].hostPath.path: /var/lib/ reaches /var/lib/sair'],
  ] as [string, Container[], Partial<Pod['spec']>, string][])('%s, naming the field', (_what, containers, spec, message) => {
    for (const metadata of [{ annotations: { 'sair.dev/gpu-cores': '30' } }, slotted]) {
      const result = mutatePod(pod(containers, metadata, spec));
      expect(result).toEqual({ allowed: false, code: 403, message: expect.stringContaining(message) });
    }
  });
});

describe('checkPodUpdate', () => {
  const POLICY = 'system:serviceaccount:sair-system:sair-policy';
  const before = pod([gpu('g')], { annotations: { 'sair.dev/gpu-cores': '30' } });
  it('lets only the policy server change a running pod\'s GPU quota annotations', () => {
    const raised = pod([gpu('g')], { annotations: { 'sair.dev/gpu-cores': '90' } });
    expect(checkPodUpdate(before, raised, POLICY, POLICY).allowed).toBe(true);
    expect(checkPodUpdate(before, raised, 'alice', POLICY)).toEqual({
      allowed: false,
      code: 403,
      message: expect.stringContaining('metadata.annotations[sair.dev/gpu-cores]: a running pod\'s GPU quota is changed only by the SAIR policy server'),
    });
    expect(checkPodUpdate(before, pod([gpu('g')], { annotations: {} }), 'alice', POLICY).allowed).toBe(false);
    expect(checkPodUpdate(before, pod([gpu('g')], { annotations: { 'sair.dev/gpu-cores': '30', other: 'x' } }), 'alice', POLICY).allowed).toBe(true);
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
