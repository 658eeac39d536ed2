// `sair failsafe`: a small Deployment apart from the policy server. When no policy-server replica
// has renewed a Lease for --failsafe-after-seconds, it hands every HPA SAIR took over that this
// Lease (its shard's, with --shards) decides for its own behavior back, and takes them over again
// once the Lease is renewed; it also releases HPAs whose namespace lost its opt-in label or that
// are labelled sair.dev/inject=false.
import os from 'node:os';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { createKubeClients, kubeConfigForServer, loadKubeConfig } from '../common/k8s.js';
import { createLogger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { untilSignal } from '../common/shutdown.js';
import { Failsafe } from '../failsafe/failsafe.js';
import { startFailsafeHttp } from '../failsafe/http.js';
import { leaseSpec } from './lease-options.js';

const failsafeSpec = {
  ...leaseSpec,
  failsafeAfterSeconds: {
    env: 'SAIR_FAILSAFE_AFTER_SECONDS',
    flag: '--failsafe-after-seconds',
    form: 'an integer from 30 to 3600',
    help: "HPAs get their own behavior back once the policy-server Lease (with shards, their shard's) has gone unrenewed this long",
    schema: z.coerce.number().int().min(30).max(3600).default(180),
  },
  port: { env: 'SAIR_FAILSAFE_PORT', flag: '--port', form: 'an integer from 0 to 65535 (0 picks a free port)', help: 'HTTP port for /metrics and /healthz', schema: fields.port(8081) },
  host: { env: 'SAIR_FAILSAFE_HOST', flag: '--host', form: 'an address to listen on', help: 'listen address', schema: fields.string('0.0.0.0') },
  pollSeconds: {
    env: 'SAIR_FAILSAFE_POLL_SECONDS',
    flag: '--poll-seconds',
    form: 'an integer from 1 to 300',
    help: 'how often the Leases and HPAs are read',
    schema: z.coerce.number().int().min(1).max(300).default(10),
  },
  callTimeoutMs: {
    env: 'SAIR_FAILSAFE_CALL_TIMEOUT_MS',
    flag: '--call-timeout-ms',
    form: 'an integer from 100 to 60000',
    help: 'each API call fails after this long',
    schema: z.coerce.number().int().min(100).max(60_000).default(5_000),
  },
  logLevel: { env: 'SAIR_LOG_LEVEL', flag: '--log-level', form: 'fatal, error, warn, info, debug, trace or silent', help: 'log level', schema: fields.logLevel() },
};

export type FailsafeConfig = ConfigOf<typeof failsafeSpec>;

export function loadFailsafeConfig(env: Record<string, string | undefined>, argv: readonly string[]): FailsafeConfig {
  return loadConfig(failsafeSpec, env, argv);
}

export interface RunningFailsafe {
  url: string;
  failsafe: Failsafe;
  stop(): Promise<void>;
}

export async function startFailsafe(cfg: FailsafeConfig): Promise<RunningFailsafe> {
  const logger = createLogger('failsafe', cfg.logLevel);
  const kc = cfg.apiServer ? kubeConfigForServer(cfg.apiServer, cfg.namespace) : loadKubeConfig();
  const registry = createRegistry('failsafe');
  const failsafe = new Failsafe({
    clients: createKubeClients(kc),
    logger,
    registry,
    leaseNamespace: cfg.namespace,
    leaseName: cfg.leaseName,
    shards: cfg.shards,
    afterMs: cfg.failsafeAfterSeconds * 1000,
    callTimeoutMs: cfg.callTimeoutMs,
    identity: cfg.identity ?? os.hostname(),
  });
  const http = await startFailsafeHttp(registry, cfg.port, cfg.host);
  failsafe.start(cfg.pollSeconds * 1000);
  logger.info({ lease: cfg.leaseName, shards: cfg.shards, afterSeconds: cfg.failsafeAfterSeconds, metrics: `${http.url}/metrics` }, 'failsafe started');
  return {
    url: http.url,
    failsafe,
    async stop() {
      await failsafe.stop();
      await http.close();
    },
  };
}

export const command: Command = {
  name: 'failsafe',
  summary: 'hands HPAs their own behavior back while no policy-server leader renews its Lease; takes them over again when one does',
  help: () => helpText('failsafe', command.summary, failsafeSpec),
  async run(argv, env) {
    const cfg = loadFailsafeConfig(env, argv);
    const running = await startFailsafe(cfg);
    await untilSignal(createLogger('failsafe', cfg.logLevel));
    await running.stop();
  },
};
