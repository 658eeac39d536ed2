// `sair device-plugin`: the DaemonSet process on every GPU node. It finds the GPUs (NVML, or
// --fake-gpus N), installs the CUDA shim on the host, serves and registers the kubelet device
// plugins (shared slots and whole GPUs, one socket each, one ledger of who holds which GPU), runs
// the node agent that keeps each allocation's limits file in line with its pod, and exports
// metrics on :9400. SIGTERM stops everything in reverse order and removes the plugin sockets.
import { join } from 'node:path';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { untilSignal } from '../common/shutdown.js';
import { fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { errorMessage } from '../common/errors.js';
import { createKubeClients, loadKubeConfig } from '../common/k8s.js';
import { createLogger, type Logger } from '../common/logger.js';
import { NodeAgent } from '../device-plugin/agent.js';
import { AllocationFiles } from '../device-plugin/allocations.js';
import { PodResourcesClient } from '../device-plugin/pod-resources.js';
import { FakeGpuBackend, GpuInventory, nvmlBackend, type GpuBackend } from '../device-plugin/gpus.js';
import { installShim } from '../device-plugin/installer.js';
import { DevicePluginMetrics } from '../device-plugin/metrics.js';
import { NvmlUnavailableError, loadNvml } from '../device-plugin/nvml.js';
import { DEVICE_LIST_STRATEGIES, DevicePluginServer, PLUGIN_OPTIONS } from '../device-plugin/plugin.js';
import { GpuLedger } from '../device-plugin/gpu-ledger.js';
import { Registrar } from '../device-plugin/registration.js';
import { SLOT_PLACEMENTS } from '../device-plugin/slots.js';

const SUMMARY = 'Kubelet device plugins for fractional GPU slots (sair.dev/gpu) and whole GPUs (sair.dev/gpu-whole), and the node agent that writes live per-pod GPU limits';

export const spec = {
  nodeName: {
    env: 'SAIR_NODE_NAME',
    flag: '--node-name',
    form: 'the Kubernetes node name (from the downward API spec.nodeName)',
    help: 'node this agent serves',
    schema: z.string().min(1),
  },
  slotsPerGpu: {
    env: 'SAIR_SLOTS_PER_GPU',
    flag: '--slots-per-gpu',
    form: 'an integer from 1 to 100',
    help: 'sair.dev/gpu slots advertised per physical GPU',
    schema: z.coerce.number().int().min(1).max(100).default(10),
  },
  socketDir: {
    env: 'SAIR_DEVICE_PLUGIN_DIR',
    flag: '--socket-dir',
    form: 'a directory path',
    help: 'kubelet device plugin directory (holds kubelet.sock)',
    schema: fields.string('/var/lib/kubelet/device-plugins'),
  },
  socketName: {
    env: 'SAIR_DEVICE_PLUGIN_SOCKET',
    flag: '--socket-name',
    form: 'a file name ending in .sock',
    help: 'name of the slots plugin\'s socket in the socket directory; the whole-GPU plugin\'s is the same name with -whole before .sock',
    schema: z.string().regex(/^[A-Za-z0-9._-]+\.sock$/).default('sair-gpu.sock'),
  },
  libDir: {
    env: 'SAIR_SHIM_HOST_DIR',
    flag: '--lib-dir',
    form: 'a directory path',
    help: 'host directory the shim is installed into (mounted into GPU containers)',
    schema: fields.string('/var/lib/sair/lib'),
  },
  containerLibDir: {
    env: 'SAIR_SHIM_CONTAINER_DIR',
    flag: '--container-lib-dir',
    form: 'an absolute path',
    help: 'where GPU containers see the shim directory',
    schema: fields.string('/usr/local/sair/lib'),
  },
  shimSource: {
    env: 'SAIR_SHIM_SOURCE',
    flag: '--shim-source',
    form: 'a file path, or "none" to skip installing the shim',
    help: 'libsair-cuda.so shipped in this image',
    schema: fields.string('/opt/sair/lib/libsair-cuda.so'),
  },
  allocationRoot: {
    env: 'SAIR_ALLOCATION_ROOT',
    flag: '--allocation-root',
    form: 'a directory path, the same inside this container as on the host',
    help: 'host directory of per-allocation limits and state files (mounted into GPU containers)',
    schema: fields.string('/run/sair/alloc'),
  },
  deviceListStrategy: {
    env: 'SAIR_DEVICE_LIST_STRATEGY',
    flag: '--device-list-strategy',
    form: 'one of envvar, cdi-cri, both',
    help: 'how a container is given its GPU: NVIDIA_VISIBLE_DEVICES (NVIDIA runtime as default), CDI devices nvidia.com/gpu=<uuid> (containerd >= 1.7 or CRI-O >= 1.23 with CDI), or both',
    schema: fields.enumOf(DEVICE_LIST_STRATEGIES, 'both'),
  },
  placement: {
    env: 'SAIR_PLACEMENT',
    flag: '--placement',
    form: 'binpack or spread',
    help: 'which GPU of this node a shared request is preferred on: the fullest with room (binpack: fewest GPUs held) or the freest (spread: most room for share rises)',
    schema: fields.enumOf(SLOT_PLACEMENTS, 'binpack'),
  },
  podResourcesSocket: {
    env: 'SAIR_POD_RESOURCES_SOCKET',
    flag: '--pod-resources-socket',
    form: 'a unix socket path',
    help: 'the kubelet PodResources API, which says which pod holds which slots',
    schema: fields.string('/var/lib/kubelet/pod-resources/kubelet.sock'),
  },
  fakeGpus: {
    env: 'SAIR_FAKE_GPUS',
    flag: '--fake-gpus',
    form: 'an integer from 0 to 64 (0 = use NVML)',
    help: 'serve N fake GPUs instead of NVML (development and tests)',
    schema: z.coerce.number().int().min(0).max(64).default(0),
  },
  nvmlLibrary: {
    env: 'SAIR_NVML_LIBRARY',
    flag: '--nvml-library',
    form: 'a library name or path',
    help: 'NVML library to open',
    schema: fields.string('libnvidia-ml.so.1'),
  },
  sysfsRoot: {
    env: 'SAIR_SYSFS_ROOT',
    flag: '--sysfs-root',
    form: 'a directory path',
    help: 'sysfs mount, for GPU NUMA nodes',
    schema: fields.string('/sys'),
  },
  metricsPort: {
    env: 'SAIR_METRICS_PORT',
    flag: '--metrics-port',
    form: 'an integer from 0 to 65535',
    help: 'Prometheus metrics port',
    schema: fields.port(9400),
  },
  metricsHost: {
    env: 'SAIR_METRICS_HOST',
    flag: '--metrics-host',
    form: 'an IP address to bind',
    help: 'address the metrics port binds (the DaemonSet passes the pod IP)',
    schema: fields.string('127.0.0.1'),
  },
  healthIntervalSeconds: {
    env: 'SAIR_HEALTH_INTERVAL_SECONDS',
    flag: '--health-interval',
    form: 'a number of seconds greater than 0',
    help: 'how often GPU health and usage are polled',
    schema: z.coerce.number().positive().default(5),
  },
  resyncSeconds: {
    env: 'SAIR_RESYNC_SECONDS',
    flag: '--resync-interval',
    form: 'a number of seconds greater than 0',
    help: 'how often every pod\'s control file is checked and repaired',
    schema: z.coerce.number().positive().default(5),
  },
  logLevel: {
    env: 'SAIR_LOG_LEVEL',
    flag: '--log-level',
    form: 'one of fatal, error, warn, info, debug, trace, silent',
    help: 'log level',
    schema: fields.logLevel(),
  },
};

export type DevicePluginConfig = ConfigOf<typeof spec>;

function openBackend(cfg: DevicePluginConfig, log: Logger): GpuBackend {
  if (cfg.fakeGpus > 0) {
    log.warn({ gpus: cfg.fakeGpus }, 'serving fake GPUs (--fake-gpus); no NVML is used');
    return new FakeGpuBackend(cfg.fakeGpus);
  }
  try {
    return nvmlBackend(loadNvml(cfg.nvmlLibrary));
  } catch (err) {
    if (err instanceof NvmlUnavailableError) {
      log.error({ err: err.message }, 'NVML is not available: no NVIDIA driver or GPU on this node. Run on a GPU node, or pass --fake-gpus N for development');
    }
    throw err;
  }
}

/** Starts every piece; resolves with a stop function. */
export async function startDevicePlugin(cfg: DevicePluginConfig, log: Logger): Promise<() => Promise<void>> {
  const stops: Array<() => Promise<void> | void> = [];
  const stop = async (): Promise<void> => {
    for (const s of stops.reverse()) {
      try {
        await s();
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'error while stopping');
      }
    }
  };
  try {
    const inventory = new GpuInventory(openBackend(cfg, log), log, cfg.sysfsRoot);
    stops.push(() => inventory.close());
    inventory.discover();

    const install = (): void => {
      if (cfg.shimSource === 'none') return;
      const r = installShim(cfg.shimSource, cfg.libDir);
      if (r.changed) log.info({ file: r.file, version: r.version }, 'CUDA shim installed');
    };
    install();

    const clients = createKubeClients(loadKubeConfig());
    const files = new AllocationFiles(cfg.allocationRoot);
    const podResources = new PodResourcesClient(cfg.podResourcesSocket);
    stops.push(() => podResources.close());
    const gpuMemory = (uuid: string): bigint => inventory.byUuid(uuid)?.memoryTotalBytes ?? 0n;
    const ledger = new GpuLedger();
    // The metrics read the agent at scrape time, and the agent counts clamps and deletion-cost writes into the metrics.
    const metrics = new DevicePluginMetrics(
      {
        gpus: () => inventory.list(),
        slotsPerGpu: cfg.slotsPerGpu,
        allocations: () => agent.usage(),
        slotIds: (id) => agent.slotIds(id),
      },
      log,
    );
    const agent = new NodeAgent(
      clients.kc,
      clients,
      podResources,
      files,
      { nodeName: cfg.nodeName, resyncMs: cfg.resyncSeconds * 1000, slotsPerGpu: cfg.slotsPerGpu, gpuMemory, ledger },
      log,
      { onClamp: (ref) => metrics.clamped(ref), onDeletionCost: (result) => metrics.deletionCost(result) },
    );

    // The ledger learns what the kubelet already allocated before any device is listed, so a plugin
    // restarted under running pods never offers a GPU the other way in the meantime.
    await agent.reconcileNow();
    // One server and socket per resource, as the kubelet expects; both read and claim one ledger.
    const common = {
      slotsPerGpu: cfg.slotsPerGpu,
      hostLibDir: cfg.libDir,
      containerLibDir: cfg.containerLibDir,
      allocations: files,
      freeShare: (uuid: string) => agent.freeShare(uuid),
      placement: cfg.placement,
      deviceListStrategy: cfg.deviceListStrategy,
      ledger,
    };
    const sockets = { slots: cfg.socketName, whole: cfg.socketName.replace(/\.sock$/, '-whole.sock') };
    for (const use of ['slots', 'whole'] as const) {
      const plugin = new DevicePluginServer({ ...common, use, socketPath: join(cfg.socketDir, sockets[use]) }, inventory, log);
      const registrar = new Registrar(plugin, { resourceName: plugin.resourceName, options: PLUGIN_OPTIONS }, log);
      stops.push(() => plugin.close());
      stops.push(() => registrar.stop());
      await registrar.start();
    }

    stops.push(() => agent.stop());
    await agent.start();

    const server = await metrics.listen(cfg.metricsPort, cfg.metricsHost);
    stops.push(() => new Promise<void>((resolve) => server.close(() => resolve())));

    const health = setInterval(() => inventory.refresh(), cfg.healthIntervalSeconds * 1000);
    // The shim is checked again now and then, so a replaced source or a damaged host copy is repaired.
    const reinstall = setInterval(() => {
      try {
        install();
      } catch (err) {
        log.error({ err: errorMessage(err) }, 'shim reinstall failed');
      }
    }, 60_000);
    stops.push(() => {
      clearInterval(health);
      clearInterval(reinstall);
    });
    log.info({ node: cfg.nodeName, gpus: inventory.list().length, slotsPerGpu: cfg.slotsPerGpu }, 'device plugin started');
    return stop;
  } catch (err) {
    await stop();
    throw err;
  }
}

export const command: Command = {
  name: 'device-plugin',
  summary: SUMMARY,
  help: () => helpText('device-plugin', SUMMARY, spec),
  async run(argv, env) {
    const cfg = loadConfig(spec, env, argv);
    const log = createLogger('device-plugin', cfg.logLevel);
    // Listening starts before start-up, so a SIGTERM that arrives while starting still stops cleanly.
    const signalled = untilSignal(log);
    const stop = await startDevicePlugin(cfg, log);
    await signalled;
    await stop();
    log.info('stopped');
  },
};
