// `sair device-plugin` end to end in one process, with --fake-gpus: it installs the shim, registers
// with a fake kubelet, keeps the limits file of a pod the kubelet admitted in line with its
// annotations (PodResources), serves whole GPUs beside the slots, and on SIGTERM stops and removes
// its sockets; restarted, it withholds from its first lists what the kubelet already allocated.
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '../../src/common/errors.js';
import { readLimitsFile } from '../../src/device-plugin/control-file.js';
import type * as k8s from '@kubernetes/client-node';
import { command } from '../../src/cmd/device-plugin.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';
import { FakeKubelet } from '../support/fake-kubelet.js';
import { eventually } from '../support/eventually.js';


describe('sair device-plugin', () => {
  let dir: string;
  let api: FakeApiServer;
  let kubelet: FakeKubelet;
  const savedKubeconfig = process.env['KUBECONFIG'];

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sair-main-'));
    api = await startFakeApiServer({ namespaces: ['default', 'ml'] });
    writeFileSync(join(dir, 'kubeconfig'), api.kubeConfig().exportConfig());
    process.env['KUBECONFIG'] = join(dir, 'kubeconfig');
    mkdirSync(join(dir, 'pod-resources'));
    kubelet = await FakeKubelet.start(dir, { podResourcesDir: join(dir, 'pod-resources') });
  });

  afterEach(async () => {
    if (savedKubeconfig === undefined) delete process.env['KUBECONFIG'];
    else process.env['KUBECONFIG'] = savedKubeconfig;
    await kubelet.close();
    await api.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves fake GPUs, installs the shim, keeps an admitted pod\'s limits file and stops on SIGTERM', async () => {
    writeFileSync(join(dir, 'shim.so'), 'ELF shim');
    const pod = api.seed<k8s.V1Pod>({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'bert-0', namespace: 'ml', annotations: { 'sair.dev/gpu-cores': '45' } },
      spec: { nodeName: 'gpu-1', containers: [{ name: 'main', image: 'bert', resources: { limits: { 'sair.dev/gpu': '1' } } }] },
    });
    const argv = [
      '--node-name', 'gpu-1', '--fake-gpus', '2', '--slots-per-gpu', '3', '--socket-dir', dir,
      '--lib-dir', join(dir, 'lib'), '--shim-source', join(dir, 'shim.so'), '--allocation-root', join(dir, 'alloc'),
      '--pod-resources-socket', join(dir, 'pod-resources', 'kubelet.sock'), '--metrics-port', '0', '--log-level', 'silent',
    ];
    const run = command.run(argv, {});
    // Stopped whatever fails, so a failed expectation does not leave the agent running.
    let shared = '';
    try {
      await kubelet.waitForRegistrations(2);
      expect(kubelet.registrations.map((r) => [r.request.resource_name, r.request.endpoint]).sort()).toEqual([
        ['sair.dev/gpu', 'sair-gpu.sock'],
        ['sair.dev/gpu-whole', 'sair-gpu-whole.sock'],
      ]);
      const devices = await kubelet.waitForDevices((d) => d.length > 0);
      expect(devices).toHaveLength(6);
      await expect(kubelet.waitForDevices((d) => d.length > 0, 'sair.dev/gpu-whole')).resolves.toHaveLength(2);
      expect(readFileSync(join(dir, 'lib', 'libsair-cuda.so'), 'utf8')).toBe('ELF shim');
      const allocated = (await kubelet.admitPod(pod)).get('main')!;
      const limits = allocated.mounts.find((m) => m.container_path === '/run/sair/limits')!.host_path;
      // One slot of three, until the agent (at its next resync) applies the pod's annotation.
      expect(readLimitsFile(limits).limits.gpuCores).toBe(33);
      await eventually(() => (readLimitsFile(limits).limits.gpuCores === 45 ? true : undefined), 8000, 'the annotation\'s share');
      // Placement is binpack by default: a second one-slot pod goes onto the GPU the first holds 45 % of.
      const neighbour = api.seed<k8s.V1Pod>({ ...pod, metadata: { name: 'bert-1', namespace: 'ml' } });
      expect((await kubelet.admitPod(neighbour)).get('main')!.envs['SAIR_GPU_UUID']).toBe(allocated.envs['SAIR_GPU_UUID']);
      shared = allocated.envs['SAIR_GPU_UUID']!;
    } finally {
      process.emit('SIGTERM');
      await run;
    }
    expect(existsSync(join(dir, 'sair-gpu.sock'))).toBe(false);
    expect(existsSync(join(dir, 'sair-gpu-whole.sock'))).toBe(false);

    // Restarted under the running pods: its first whole-GPU list already withholds the shared GPU.
    const again = command.run(argv, {});
    try {
      await kubelet.waitForRegistrations(4);
      const first = kubelet.deviceListsOf('sair.dev/gpu-whole')[0] ?? (await kubelet.waitForDevices((d) => d.length > 0, 'sair.dev/gpu-whole'));
      expect(first.find((d) => d.ID === shared)?.health).toBe('Unhealthy');
      expect(first.filter((d) => d.health === 'Healthy')).toHaveLength(1);
    } finally {
      process.emit('SIGTERM');
      await again;
    }
  }, 20000);

  it('fails with the flag, the variable and the accepted form on bad config', async () => {
    await expect(command.run(['--slots-per-gpu', '0'], {})).rejects.toThrow(ConfigError);
    await expect(command.run(['--slots-per-gpu', '0'], { SAIR_NODE_NAME: 'n' })).rejects.toThrow(
      '--slots-per-gpu (env SAIR_SLOTS_PER_GPU): "0" is not an integer from 1 to 100',
    );
    await expect(command.run(['--placement', 'pack'], { SAIR_NODE_NAME: 'n' })).rejects.toThrow('--placement (env SAIR_PLACEMENT): "pack" is not binpack or spread');
  });

  it('without NVML and without --fake-gpus, fails saying so', async () => {
    await expect(
      command.run(['--node-name', 'n', '--nvml-library', join(dir, 'libnvidia-ml.so.1'), '--log-level', 'silent', '--socket-dir', dir], {}),
    ).rejects.toThrow(/cannot open .*libnvidia-ml\.so\.1/);
    expect(existsSync(join(dir, 'sair-gpu.sock'))).toBe(false);
  });
});
