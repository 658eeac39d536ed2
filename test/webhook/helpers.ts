// Shared by the webhook tests: a Secret-volume-like certificate directory (kubelet's atomic
// writer layout: timestamped dir, `..data` link, per-file links), an HTTPS client, and a
// log sink that collects pino lines.
import { mkdtemp, mkdir, rename, rm, symlink, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TLSSocket } from 'node:tls';
import { createLogger, type Logger } from '../../src/common/logger.js';
import { generateCertificates, installCertificates, type CertBundle } from '../../src/webhook/certs.js';
import { WebhookServer, type WebhookServerOptions } from '../../src/webhook/server.js';
import type { FakeApiServer } from '../support/fake-apiserver.js';

export function testBundle(): CertBundle {
  return generateCertificates({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validityDays: 1 });
}

/** A directory laid out the way kubelet projects a Secret, with `rotate` doing its atomic swap. */
export class SecretVolume {
  private generation = 0;
  private constructor(readonly dir: string) {}

  static async create(bundle: Pick<CertBundle, 'cert' | 'key' | 'caCert'>): Promise<SecretVolume> {
    const v = new SecretVolume(await mkdtemp(path.join(tmpdir(), 'sair-certs-')));
    await v.rotate(bundle);
    await symlink('..data/tls.crt', path.join(v.dir, 'tls.crt'));
    await symlink('..data/tls.key', path.join(v.dir, 'tls.key'));
    await symlink('..data/ca.crt', path.join(v.dir, 'ca.crt'));
    return v;
  }

  /** Write a new timestamped directory, point `..data_tmp` at it and rename it over `..data`. */
  async rotate(files: { cert: string; key: string; caCert: string }): Promise<void> {
    const previous = this.generation > 0 ? `..gen_${this.generation}` : undefined;
    const name = `..gen_${++this.generation}`;
    await mkdir(path.join(this.dir, name));
    await writeFile(path.join(this.dir, name, 'tls.crt'), files.cert);
    await writeFile(path.join(this.dir, name, 'tls.key'), files.key);
    await writeFile(path.join(this.dir, name, 'ca.crt'), files.caCert);
    await symlink(name, path.join(this.dir, '..data_tmp'));
    await rename(path.join(this.dir, '..data_tmp'), path.join(this.dir, '..data'));
    if (previous) await rm(path.join(this.dir, previous), { recursive: true });
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export interface HttpResult {
  status: number;
  body: string;
  json: unknown;
  /** SHA-256 fingerprint of the certificate the server presented. */
  fingerprint: string;
}

export function post(port: number, body: string | Buffer, options: { ca: string | string[]; agent?: https.Agent; path?: string; headers?: Record<string, string> }): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: '127.0.0.1',
        servername: 'localhost',
        port,
        path: options.path ?? '/mutate',
        method: 'POST',
        ca: options.ca,
        agent: options.agent ?? false,
        headers: { 'content-type': 'application/json', ...options.headers },
        timeout: 10_000,
      },
      (res) => {
        const fingerprint = (res.socket as TLSSocket).getPeerCertificate().fingerprint256;
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, body: text, json, fingerprint });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.end(body);
  });
}

export function get(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: urlPath, agent: false, timeout: 10_000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

export interface LogSink {
  logger: Logger;
  lines: Record<string, unknown>[];
}

export function logSink(): LogSink {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger('webhook', 'debug', { write: (msg: string) => void lines.push(JSON.parse(msg) as Record<string, unknown>) });
  return { logger, lines };
}

/** The webhook server as the tests run it: loopback, ports the OS picks, no certificate polling. */
export function testServerOptions(certDir: string, logger: Logger): WebhookServerOptions {
  return { certDir, host: '127.0.0.1', port: 0, metricsHost: '127.0.0.1', metricsPort: 0, failClosed: false, logger, shutdownTimeoutMs: 5000, certPollIntervalMs: 0 };
}

/**
 * `sair certs` filling Secret sair-webhook-tls and the caBundle in `api` (which must hold the
 * manifests' MutatingWebhookConfiguration), then the real webhook serving that Secret on loopback.
 * Returns the server's port (for the fake's resolveService) and how to stop both.
 */
export async function startWebhookBehind(api: FakeApiServer): Promise<{ port: number; stop: () => Promise<void> }> {
  await installCertificates(api.clients(), {
    namespace: 'sair-system',
    secretName: 'sair-webhook-tls',
    webhookConfigName: 'sair-webhook',
    service: 'sair-webhook',
    validityDays: 30,
    renewBeforeDays: 7,
    force: false,
    extraNames: ['localhost'],
    logger: createLogger('certs', 'silent'),
  });
  const secret = api.get<{ data: Record<string, string> }>('secrets', 'sair-system', 'sair-webhook-tls')!;
  const dec = (k: string): string => Buffer.from(secret.data[k]!, 'base64').toString('utf8');
  const volume = await SecretVolume.create({ cert: dec('tls.crt'), key: dec('tls.key'), caCert: dec('ca.crt') });
  const server = new WebhookServer(testServerOptions(volume.dir, logSink().logger));
  const { port } = await server.start();
  return {
    port,
    async stop() {
      await server.stop();
      await volume.remove();
    },
  };
}
