// `sair certs`: makes the webhook's CA and serving certificate for clusters without cert-manager,
// writes the Secret and patches the caBundle; with --out-dir, writes the files for local use.
import { isIP } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';
import { z } from 'zod';
import type { Command } from '../common/command.js';
import { fields, helpText, loadConfig, type ConfigOf } from '../common/config.js';
import { createKubeClients, loadKubeConfig, type KubeClients } from '../common/k8s.js';
import { createLogger } from '../common/logger.js';
import { generateCertificates, installCertificates, serviceDnsNames, writeCertFiles } from '../webhook/certs.js';

const SUMMARY = 'Make the webhook CA and serving certificate, write the Secret and patch the caBundle (or write files with --out-dir)';

export const certsSpec = {
  namespace: { env: 'SAIR_NAMESPACE', flag: '--namespace', form: 'a namespace name', help: 'namespace of the webhook Service and Secret', schema: fields.string('sair-system') },
  service: { env: 'SAIR_WEBHOOK_SERVICE', flag: '--service', form: 'a Service name', help: 'webhook Service the certificate is for', schema: fields.string('sair-webhook') },
  secret: { env: 'SAIR_WEBHOOK_SECRET', flag: '--secret', form: 'a Secret name', help: 'Secret to write (type kubernetes.io/tls, plus ca.crt)', schema: fields.string('sair-webhook-tls') },
  webhookConfig: {
    env: 'SAIR_WEBHOOK_CONFIGURATION',
    flag: '--webhook-config',
    form: 'a MutatingWebhookConfiguration name',
    help: 'configuration whose webhooks get the caBundle',
    schema: fields.string('sair-webhook'),
  },
  validityDays: { env: 'SAIR_CERT_VALIDITY_DAYS', flag: '--validity-days', form: 'a positive integer (days)', help: 'certificate lifetime', schema: fields.positiveInt(365) },
  renewBeforeDays: {
    env: 'SAIR_CERT_RENEW_BEFORE_DAYS',
    flag: '--renew-before-days',
    form: 'a positive integer (days)',
    help: 'keep an existing certificate valid for at least this long',
    schema: fields.positiveInt(30),
  },
  force: { env: 'SAIR_CERT_FORCE', flag: '--force', form: 'true or false', help: 'make new certificates even if the current ones are good', schema: fields.boolean(false) },
  extraNames: {
    env: 'SAIR_CERT_EXTRA_NAMES',
    flag: '--extra-names',
    form: 'a comma-separated list of DNS names and IP addresses',
    help: 'more names for the serving certificate (for a webhook reached by URL)',
    schema: z
      .string()
      .default('')
      .transform((v) => v.split(',').map((n) => n.trim()).filter((n) => n.length > 0)),
  },
  outDir: {
    env: 'SAIR_CERT_OUT_DIR',
    flag: '--out-dir',
    form: 'a directory path',
    help: 'write ca.crt, tls.crt and tls.key here instead of to the cluster',
    schema: fields.optionalString(),
  },
  kubeconfig: { env: 'KUBECONFIG', flag: '--kubeconfig', form: 'a kubeconfig file path', help: 'cluster to write to (default: in-cluster or ~/.kube/config)', schema: fields.optionalString() },
  logLevel: { env: 'SAIR_LOG_LEVEL', flag: '--log-level', form: 'one of fatal, error, warn, info, debug, trace, silent', help: 'log level', schema: fields.logLevel() },
};
export type CertsConfig = ConfigOf<typeof certsSpec>;

export async function runCerts(cfg: CertsConfig, clients?: KubeClients, out: NodeJS.WritableStream = process.stdout): Promise<void> {
  const logger = createLogger('certs', cfg.logLevel);
  const dnsNames = serviceDnsNames(cfg.service, cfg.namespace);
  if (cfg.outDir) {
    const names = [...dnsNames, 'localhost', ...cfg.extraNames.filter((n) => !isIP(n))];
    const ips = ['127.0.0.1', ...cfg.extraNames.filter((n) => isIP(n))];
    const bundle = generateCertificates({ commonName: `${cfg.service}.${cfg.namespace}.svc`, dnsNames: names, ipAddresses: ips, validityDays: cfg.validityDays });
    await writeCertFiles(cfg.outDir, bundle);
    out.write(`wrote ca.crt, tls.crt and tls.key for ${[...names, ...ips].join(', ')} to ${cfg.outDir}\n`);
    return;
  }
  let kube = clients;
  if (!kube) {
    let kc: KubeConfig;
    if (cfg.kubeconfig) {
      kc = new KubeConfig();
      kc.loadFromFile(cfg.kubeconfig);
    } else {
      kc = loadKubeConfig();
    }
    kube = createKubeClients(kc);
  }
  const result = await installCertificates(kube, {
    namespace: cfg.namespace,
    secretName: cfg.secret,
    webhookConfigName: cfg.webhookConfig,
    service: cfg.service,
    validityDays: cfg.validityDays,
    renewBeforeDays: cfg.renewBeforeDays,
    force: cfg.force,
    extraNames: cfg.extraNames,
    logger,
  });
  out.write(
    `${result.generated ? 'new certificate written to' : 'certificate still valid in'} Secret ${cfg.namespace}/${cfg.secret}; caBundle set on ${result.webhooksPatched} webhook(s) of ${cfg.webhookConfig}\n`,
  );
}

export const command: Command = {
  name: 'certs',
  summary: SUMMARY,
  help: () => helpText('certs', SUMMARY, certsSpec),
  run: (argv, env) => runCerts(loadConfig(certsSpec, env, argv)),
};
