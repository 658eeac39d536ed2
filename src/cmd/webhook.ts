// `sair webhook`: the mutating admission webhook server. With --dev it makes a throwaway
// certificate, listens on 127.0.0.1 and prints a curl command that posts a sample review.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { untilSignal, type SignalSource } from '../common/shutdown.js';
import { fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { createLogger } from '../common/logger.js';
import { generateCertificates, writeCertFiles } from '../webhook/certs.js';
import { sampleReview } from '../webhook/sample.js';
import { WebhookServer } from '../webhook/server.js';

const SUMMARY = 'Mutating admission webhook: injects the GPU-sharing shim into GPU pods and takes over HPAs in opted-in namespaces';

export const webhookSpec = {
  port: { env: 'SAIR_WEBHOOK_PORT', flag: '--port', form: 'an integer from 0 to 65535', help: 'HTTPS port for POST /mutate', schema: fields.port(8443) },
  host: { env: 'SAIR_WEBHOOK_HOST', flag: '--host', form: 'an IP address or host name', help: 'address for HTTPS (--dev: 127.0.0.1)', schema: fields.optionalString() },
  metricsPort: {
    env: 'SAIR_WEBHOOK_METRICS_PORT',
    flag: '--metrics-port',
    form: 'an integer from 0 to 65535',
    help: 'plain-HTTP port for /healthz, /readyz and /metrics',
    schema: fields.port(8080),
  },
  certDir: {
    env: 'SAIR_WEBHOOK_CERT_DIR',
    flag: '--cert-dir',
    form: 'a directory holding tls.crt and tls.key',
    help: 'serving certificate directory, watched for rotation (ignored with --dev)',
    schema: fields.string('/etc/sair/webhook/certs'),
  },
  failClosed: {
    env: 'SAIR_WEBHOOK_FAIL_CLOSED',
    flag: '--fail-closed',
    form: 'true or false',
    help: 'deny (instead of allow with a warning) when the webhook fails internally',
    schema: fields.boolean(false),
  },
  shutdownTimeoutMs: {
    env: 'SAIR_WEBHOOK_SHUTDOWN_TIMEOUT_MS',
    flag: '--shutdown-timeout-ms',
    form: 'a positive integer (milliseconds)',
    help: 'how long shutdown waits for in-flight requests',
    schema: fields.positiveInt(10_000),
  },
  certPollMs: {
    env: 'SAIR_WEBHOOK_CERT_POLL_MS',
    flag: '--cert-poll-ms',
    form: 'an integer >= 0 (milliseconds; 0 turns polling off)',
    help: 're-read the certificate this often, beside watching the directory',
    schema: z.coerce.number().int().min(0).default(60_000),
  },
  dev: {
    env: 'SAIR_WEBHOOK_DEV',
    flag: '--dev',
    form: 'true or false',
    help: 'local mode: self-signed certificate in a temp dir, 127.0.0.1, prints a sample curl command',
    schema: fields.boolean(false),
  },
  logLevel: { env: 'SAIR_LOG_LEVEL', flag: '--log-level', form: 'one of fatal, error, warn, info, debug, trace, silent', help: 'log level', schema: fields.logLevel() },
};
export type WebhookConfig = ConfigOf<typeof webhookSpec>;

/** The dev certificate and sample request, in a fresh temp directory. */
async function prepareDev(): Promise<{ certDir: string; samplePath: string }> {
  const certDir = await mkdtemp(path.join(tmpdir(), 'sair-webhook-'));
  const bundle = generateCertificates({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validityDays: 7 });
  await writeCertFiles(certDir, bundle);
  const samplePath = path.join(certDir, 'sample-review.json');
  await writeFile(samplePath, `${JSON.stringify(sampleReview(), null, 2)}\n`);
  return { certDir, samplePath };
}

export async function runWebhook(cfg: WebhookConfig, out: NodeJS.WritableStream = process.stdout, signals: SignalSource = process): Promise<void> {
  const logger = createLogger('webhook', cfg.logLevel);
  const dev = cfg.dev ? await prepareDev() : undefined;
  const host = cfg.host ?? (cfg.dev ? '127.0.0.1' : '0.0.0.0');
  const server = new WebhookServer({
    certDir: dev?.certDir ?? cfg.certDir,
    host,
    port: cfg.port,
    metricsHost: cfg.dev ? '127.0.0.1' : '0.0.0.0',
    metricsPort: cfg.metricsPort,
    failClosed: cfg.failClosed,
    shutdownTimeoutMs: cfg.shutdownTimeoutMs,
    certPollIntervalMs: cfg.certPollMs,
    logger,
  });
  const { port, metricsPort } = await server.start();
  if (dev) {
    out.write(
      [
        '',
        `sair webhook (dev) is listening on https://${host}:${port}/mutate, metrics on http://127.0.0.1:${metricsPort}/metrics`,
        `certificate and a sample AdmissionReview are in ${dev.certDir}. Try:`,
        '',
        `  curl -sS --cacert ${path.join(dev.certDir, 'ca.crt')} -H 'Content-Type: application/json' --data @${dev.samplePath} https://localhost:${port}/mutate`,
        '',
        'The response\'s "patch" is base64 JSON Patch; decode it with: ... | node -e \'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(Buffer.from(JSON.parse(s).response.patch,"base64").toString()))\'',
        '',
      ].join('\n'),
    );
  }
  await untilSignal(logger, signals);
  await server.stop();
  if (dev) await rm(dev.certDir, { recursive: true, force: true });
}

export const command: Command = {
  name: 'webhook',
  summary: SUMMARY,
  help: () => helpText('webhook', SUMMARY, webhookSpec),
  run: (argv, env) => runWebhook(loadConfig(webhookSpec, env, argv)),
};
