// `sair policy`: the policy server in a cluster (informers, Prometheus, leader election, HTTP API)
// wired to SAIR's controller.
import os from 'node:os';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { envOnly, fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { errorMessage } from '../common/errors.js';
import { createKubeClients, kubeConfigForServer, loadKubeConfig } from '../common/k8s.js';
import { createLogger, type Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { PolicyHistory } from '../policy-server/api/history.js';
import { startApiServer } from '../policy-server/api/server.js';
import { KubeReviewAuth } from '../policy-server/api/auth.js';
import type { SairController } from '../policy/controller.js';
import { ALWAYS_LEADING, KubeCluster, type WriteGuard } from '../policy-server/k8s/cluster.js';
import { createPolicyInformers } from '../policy-server/k8s/informers.js';
import { DEFAULT_LEASE_SECONDS, leaseTimings } from '../policy-server/k8s/leader.js';
import { ShardLeases } from '../policy-server/k8s/shard-leases.js';
import { singleShard } from '../policy-server/runtime.js';
import { shardName } from '../core/shards.js';
import { NotLeaderError } from '../common/errors.js';
import { leaderAddress } from '../policy-server/k8s/leader-address.js';
import { pipelineLlm, resolveLlmSettings, type ResolvedLlm } from '../policy-server/k8s/llm-settings.js';
import { LlmKeys } from '../policy-server/k8s/llm-key.js';
import type { Clock, Controller, PipelineSpec } from '../core/ports.js';
import { PrometheusClient } from '../policy-server/prometheus/client.js';
import { createPrometheusMetrics } from '../policy-server/prometheus/metrics-port.js';
import { policyConfigSpec, settingsFromConfig, type PolicySettings } from '../policy/settings.js';
import { createPolicyLoop } from '../policy-server/wiring.js';
import { SnapshotSync } from '../policy-server/snapshot-sync.js';
import { ConfigMapSnapshotStore } from '../policy-server/k8s/snapshot-store.js';
import { untilSignal } from '../common/shutdown.js';
import { leaseSpec } from './lease-options.js';
import { pickPolicy, serverSpec } from './policy-options.js';

const clusterSpec = {
  ...serverSpec,
  ...leaseSpec,
  host: { env: 'SAIR_POLICY_HOST', flag: '--host', form: 'an address to listen on', help: 'listen address', schema: fields.string('0.0.0.0') },
  apiAuth: {
    env: 'SAIR_API_AUTH',
    flag: '--api-auth',
    form: 'kubernetes or none',
    help: 'who may read /api: kubernetes (a bearer token checked by TokenReview, pipelines shown by SubjectAccessReview) or none (anyone who reaches the port)',
    schema: z.enum(['kubernetes', 'none']).default('kubernetes'),
  },
  prometheusUrl: {
    env: 'SAIR_PROMETHEUS_URL',
    flag: '--prometheus-url',
    form: 'an http(s) URL of the Prometheus HTTP API, e.g. http://prometheus-operated.monitoring:9090',
    help: 'Prometheus to read stage metrics from',
    schema: z.url().default('http://prometheus-operated.monitoring.svc:9090'),
  },
  prometheusTimeoutMs: {
    env: 'SAIR_PROMETHEUS_TIMEOUT_MS',
    flag: '--prometheus-timeout-ms',
    form: 'an integer from 100 to 60000',
    help: 'per-query timeout',
    schema: z.coerce.number().int().min(100).max(60_000).default(5_000),
  },
  prometheusMaxConcurrent: {
    env: 'SAIR_PROMETHEUS_MAX_CONCURRENT',
    flag: '--prometheus-max-concurrent',
    form: 'an integer from 1 to 1000',
    help: 'Prometheus queries in flight at most; the rest wait their turn',
    schema: z.coerce.number().int().min(1).max(1000).default(16),
  },
  leaderElection: { env: 'SAIR_LEADER_ELECTION', flag: '--leader-election', form: 'true or false', help: 'campaign for the Lease or shard Leases (off: this replica always leads, for every pipeline)', schema: fields.boolean(true) },
  leaseDurationSeconds: {
    env: 'SAIR_LEASE_DURATION_SECONDS',
    flag: '--lease-duration-seconds',
    form: 'an integer from 1 to 60',
    help: 'how long a silent leader keeps the Lease (renewals every third of it)',
    schema: z.coerce.number().int().min(1).max(60).default(DEFAULT_LEASE_SECONDS),
  },
  snapshotConfigMap: {
    env: 'SAIR_SNAPSHOT_CONFIGMAP',
    flag: '--snapshot-configmap',
    form: 'a ConfigMap name, or "none"',
    help: 'keep the experience snapshot in ConfigMaps of this name in --namespace (one set per shard: <name>-shard-<i>-of-<n>), so the next holder loads it ("none": the file only)',
    schema: fields.string('sair-policy-snapshot'),
  },
  pollMs: { env: 'SAIR_POLICY_POLL_MS', flag: '--poll-ms', form: 'an integer from 50 to 60000', help: 'how often the loop looks for due ticks', schema: z.coerce.number().int().min(50).max(60_000).default(1_000) },
  llmConfigMap: {
    env: 'SAIR_LLM_CONFIGMAP',
    flag: '--llm-configmap',
    form: 'a ConfigMap name (keys baseUrl, model, optional timeoutMs)',
    help: 'LLM endpoint from a ConfigMap in --namespace (flags and env win)',
    schema: fields.optionalString(),
  },
  llmSecret: { env: 'SAIR_LLM_SECRET', flag: '--llm-secret', form: 'a Secret name', help: 'LLM API key from this Secret in --namespace', schema: fields.optionalString() },
  llmSecretKey: { env: 'SAIR_LLM_SECRET_KEY', flag: '--llm-secret-key', form: 'a key of the Secret', help: 'key holding the API key', schema: fields.string('apiKey') },
  llmKeyRefreshSeconds: {
    env: 'SAIR_LLM_KEY_REFRESH_SECONDS',
    flag: '--llm-key-refresh-seconds',
    form: 'an integer from 1 to 3600',
    help: 'an LLM API key from a Secret (SAIR_LLM_SECRET, spec.llm.secretRef) is read again when older than this, so a rotated key is used without a restart',
    schema: z.coerce.number().int().min(1).max(3600).default(30),
  },
  defaultSloMs: {
    env: 'SAIR_DEFAULT_SLO_P99_MS',
    flag: '--default-slo-p99-ms',
    form: 'a number >= 1',
    help: 'P99 SLO for HPA-managed Deployments without sair.dev/slo-p99-ms',
    schema: z.coerce.number().min(1).default(500),
  },
  defaultTickSeconds: { env: 'SAIR_DEFAULT_TICK_SECONDS', flag: '--default-tick-seconds', form: 'an integer from 5 to 3600', help: 'tick for HPA-managed Deployments', schema: z.coerce.number().int().min(5).max(3600).default(30) },
  gpuHourPrice: { env: 'SAIR_GPU_HOUR_PRICE', flag: '--gpu-hour-price', form: 'a number >= 0', help: 'dollars per GPU-hour for HPA-managed Deployments', schema: z.coerce.number().min(0).default(2.5) },
  replicaHourPrice: { env: 'SAIR_REPLICA_HOUR_PRICE', flag: '--replica-hour-price', form: 'a number >= 0', help: 'dollars per replica-hour for HPA-managed Deployments', schema: z.coerce.number().min(0).default(0.05) },
  ...policyConfigSpec,
  // The key comes from env (a Secret through env) or SAIR_LLM_SECRET, never from the command line.
  llmApiKey: envOnly(policyConfigSpec.llmApiKey),
  llmAllowedEndpoints: {
    env: 'SAIR_LLM_ALLOWED_ENDPOINTS',
    flag: '--llm-allowed-endpoints',
    form: 'comma-separated URL prefixes, e.g. http://vllm.llm.svc:8000/,https://api.openai.com/',
    help: 'endpoints an InferencePipeline may name in spec.llm (none: pipelines use the server-wide one)',
    schema: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((x) => x.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^https?:\/\/[^/]+/, 'an http(s) URL prefix'))),
  },
};

type ClusterConfig = ConfigOf<typeof clusterSpec>;

/** `sair policy` settings from env and flags (defaults for the rest). */
export function loadPolicyConfig(env: Record<string, string | undefined>, argv: readonly string[]): ClusterConfig {
  return loadConfig(clusterSpec, env, argv);
}

/** One controller per distinct LLM reference of an InferencePipeline; the server-wide one otherwise. */
function routingController(
  base: SairController,
  settings: PolicySettings,
  make: (settings: PolicySettings, key: string) => SairController,
  referenceOf: (pipelineId: string) => { key: string; resolve: () => Promise<ResolvedLlm> } | undefined,
  allowed: readonly string[],
  logger: Logger,
): Controller {
  const byRef = new Map<string, Promise<SairController>>();
  return {
    name: base.name,
    intervalMs: base.intervalMs,
    async tick(pipeline: PipelineSpec) {
      const ref = referenceOf(pipeline.id);
      if (!ref) return base.tick(pipeline);
      let c = byRef.get(ref.key);
      if (!c) {
        c = ref.resolve().then((llm) => {
          const merged = pipelineLlm<NonNullable<PolicySettings['llm']>>(settings.llm, llm, allowed, `InferencePipeline ${pipeline.id}`);
          logger.info({ pipeline: pipeline.id, baseUrl: merged.baseUrl, model: merged.model }, 'pipeline uses its own LLM endpoint');
          return make({ ...settings, selector: 'llm', llm: merged }, ref.key);
        });
        c.catch(() => byRef.delete(ref.key));
        byRef.set(ref.key, c);
      }
      return (await c).tick(pipeline);
    },
  };
}

export interface ClusterServer {
  url: string;
  /** True while this replica holds a Lease: the single one, or any shard's. */
  isLeader(): boolean;
  /** The shards whose Lease this replica holds now (shard 0 alone without sharding). */
  held(): ReadonlySet<number>;
  /** Graceful: finish ticks in flight, release the Lease, close the caches and the server. */
  stop(): Promise<void>;
}

/** The policy server in a cluster; resolves once it serves HTTP and campaigns for the Lease. */
export async function startCluster(cfg: ClusterConfig): Promise<ClusterServer> {
  const logger = createLogger('policy', cfg.logLevel);
  const identity = cfg.identity ?? os.hostname();
  const kc = cfg.apiServer ? kubeConfigForServer(cfg.apiServer, cfg.namespace) : loadKubeConfig();
  const clients = createKubeClients(kc);

  // LLM endpoint: flags and env first, then the ConfigMap and Secret.
  const policyCfg = pickPolicy(cfg);
  let secretKey: string | undefined;
  if (cfg.llmConfigMap || cfg.llmSecret) {
    const llm = await resolveLlmSettings(clients.core, {
      namespace: cfg.namespace,
      configMap: cfg.llmConfigMap,
      secret: cfg.llmSecret ? { name: cfg.llmSecret, key: cfg.llmSecretKey } : undefined,
    });
    policyCfg.llmBaseUrl ??= llm.baseUrl;
    policyCfg.llmModel ??= llm.model;
    if (policyCfg.llmApiKey === undefined) secretKey = llm.apiKey;
    policyCfg.llmApiKey ??= llm.apiKey;
    if (llm.timeoutMs !== undefined) policyCfg.llmTimeoutMs = llm.timeoutMs;
  }
  const settings = settingsFromConfig(policyCfg);
  const registry = createRegistry('policy');
  const informers = createPolicyInformers(clients, logger, { registry });
  // Keys from Secrets, by controller key ('' the server-wide one): read again while in use, so a rotation needs no restart.
  const keys = new LlmKeys({ core: clients.core, logger, registry, refreshMs: cfg.llmKeyRefreshSeconds * 1000 });
  const keySources = new Map<string, () => Promise<string>>();
  if (secretKey !== undefined) keySources.set('', keys.source({ namespace: cfg.namespace, name: cfg.llmSecret!, key: cfg.llmSecretKey }, secretKey));
  const leases = cfg.leaderElection
    ? new ShardLeases({
        coordination: clients.coordination,
        namespace: cfg.namespace,
        name: cfg.leaseName,
        shards: cfg.shards,
        identity,
        leaseDurationSeconds: cfg.leaseDurationSeconds,
        ...leaseTimings(cfg.leaseDurationSeconds),
        logger,
        registry,
        // A shard gained: pods and specs may have changed while another replica held it.
        onChange: (_shard, leading) => {
          if (leading) cluster.setActive(true);
        },
      })
    : undefined;
  // Without leader election this replica decides for every pipeline once its caches are synced.
  const ownership = leases ?? singleShard(() => informers.synced());
  const cluster = new KubeCluster({
    clients,
    informers,
    logger,
    registry,
    identity,
    dryRun: settings.dryRun,
    guardFor: leases ? (id) => leases.guardFor(id) : () => ALWAYS_LEADING,
    hpaDefaults: {
      sloP99Ms: cfg.defaultSloMs,
      tickSeconds: cfg.defaultTickSeconds,
      cost: { gpuHour: cfg.gpuHourPrice, replicaHour: cfg.replicaHourPrice },
      gpuCores: { min: 10, max: 100, step: 10 },
      mode: settings.dryRun ? 'DryRun' : 'Active',
    },
  });
  const clock: Clock = { now: () => Date.now(), sleep: (ms) => new Promise((r) => setTimeout(r, ms)) };
  const metrics = createPrometheusMetrics({
    client: new PrometheusClient({ url: cfg.prometheusUrl, timeoutMs: cfg.prometheusTimeoutMs, maxConcurrent: cfg.prometheusMaxConcurrent }),
    clock,
    logger,
    registry,
    sourceFor: (id) => cluster.metricsSource(id),
    allocation: (id) => cluster.allocation(id),
  });
  const history = new PolicyHistory();
  // The LLM endpoint an InferencePipeline names for itself, if any, keyed by where it comes from.
  const referenceOf = (id: string) => {
    const ref = cluster.llmReference(id);
    if (!ref || (!ref.configMapRef && !ref.secretRef)) return undefined;
    const ns = id.split('/')[0]!;
    const key = `${ns}/${ref.configMapRef?.name ?? ''}/${ref.secretRef?.name ?? ''}/${ref.secretRef?.key ?? ''}`;
    const secret = ref.secretRef ? { name: ref.secretRef.name, key: ref.secretRef.key } : undefined;
    return {
      key,
      resolve: async () => {
        const llm = await resolveLlmSettings(clients.core, { namespace: ns, configMap: ref.configMapRef?.name, secret });
        if (secret && llm.apiKey !== undefined) keySources.set(key, keys.source({ namespace: ns, ...secret }, llm.apiKey));
        return llm;
      },
    };
  };

  // A controller per LLM reference keeps its own experience snapshot and decision log file.
  const ports = { cluster, metrics, clock, logger, registry, history };
  const { controller, runtime, close } = createPolicyLoop(ports, settings, {
    snapshotPath: policyCfg.snapshotPath,
    ownership,
    pollMs: cfg.pollMs,
    backoff: { baseMs: 5_000, maxMs: 300_000 },
    afterDecision: (r) => cluster.publishDecision(r),
    beforeLeading: async (gained) => {
      await sync?.restore(gained);
    },
    apiKeyFor: (key) => keySources.get(key),
    route: (first, make) => routingController(first, settings, make, referenceOf, cfg.llmAllowedEndpoints, logger),
  });
  // The experience survives failover: each shard's holder stores that shard's part in ConfigMaps,
  // and whoever gains the shard loads it into the controller before the shard's first tick.
  const snapshotStore = (name: string, guard: WriteGuard) => new ConfigMapSnapshotStore({ core: clients.core, namespace: cfg.namespace, name, guard, callTimeoutMs: 10_000 });
  const readOnly: WriteGuard = {
    writeOptions: () => {
      throw new NotLeaderError(`${cfg.namespace}/${cfg.leaseName}`, 'the snapshot kept from before sharding is only read');
    },
  };
  const sync =
    policyCfg.snapshotPath && cfg.snapshotConfigMap !== 'none'
      ? new SnapshotSync({
          storeFor: (shard) => snapshotStore(shardName(cfg.snapshotConfigMap, shard, cfg.shards), leases?.guardForShard(shard) ?? ALWAYS_LEADING),
          previous: cfg.shards > 1 ? snapshotStore(cfg.snapshotConfigMap, readOnly) : undefined,
          shardOf: (id) => ownership.shardOf(id),
          held: () => ownership.held(),
          controller,
          path: policyCfg.snapshotPath,
          logger,
        })
      : undefined;

  const server = await startApiServer(
    {
      history,
      registry,
      logger,
      // A standby answers the JSON API from the leader (its pod, named by the Lease, on this port).
      auth: cfg.apiAuth === 'kubernetes' ? new KubeReviewAuth({ clients }) : undefined,
      leaderUrl: leases
        ? leaderAddress({ core: clients.core, coordination: clients.coordination, namespace: cfg.namespace, leaseName: shardName(cfg.leaseName, 0, cfg.shards), port: cfg.port })
        : undefined,
      state: {
        ready: () => (informers.synced() ? { ready: true, reason: '' } : { ready: false, reason: 'informer caches not synced' }),
        leader: () => (leases ? leases.isLeader() : true),
        ...(cfg.shards > 1 && leases ? { shards: () => ({ held: leases.status().held, of: cfg.shards }), holds: (id: string) => leases.held().has(leases.shardOf(id)) } : {}),
        identity,
        selector: settings.selector,
        invalid: () => [...cluster.invalidPipelines()].map(([id, error]) => ({ id, error })),
        source: 'cluster',
      },
    },
    cfg.port,
    cfg.host,
  ).catch(async (err: unknown) => {
    await informers.stop();
    throw err;
  });
  await informers.waitForSync(60_000).catch((err: unknown) => logger.warn({ err: errorMessage(err) }, 'starting before every cache synced'));
  if (!leases) cluster.setActive(true);
  leases?.start();
  runtime.start();
  sync?.start(settings.snapshotIntervalMs);
  logger.info({ identity, shards: cfg.shards, selector: settings.selector, prometheus: cfg.prometheusUrl, dashboard: server.url }, 'policy server started');
  return {
    url: server.url,
    isLeader: () => (leases ? leases.isLeader() : true),
    held: () => ownership.held(),
    async stop() {
      await runtime.stop();
      sync?.stop();
      // The controllers write their last snapshot, the holder stores its shards' parts, then lets the leases go.
      await close();
      await sync?.flush();
      await leases?.stop();
      cluster.stop();
      await informers.stop();
      await server.close();
    },
  };
}

export const command: Command = {
  name: 'policy',
  summary: 'the ICRL policy server in a cluster: InferencePipelines and HPAs, Prometheus metrics, leader election, HTTP API',
  help: () => helpText('policy', command.summary, clusterSpec),
  async run(argv, env) {
    const cfg = loadPolicyConfig(env, argv);
    const server = await startCluster(cfg);
    await untilSignal(createLogger('policy', cfg.logLevel));
    await server.stop();
  },
};

