// Webhook load benchmark: autocannon over HTTPS keep-alive against POST /mutate with a realistic
// 3-container GPU pod, and in the same run against a bare express HTTPS endpoint that returns a
// fixed AdmissionReview; then /mutate at a fixed 1,000 req/s. Each server runs in a worker thread
// (its own event loop), autocannon on the main thread. Targets on a 2-core machine: ratio >= 0.7,
// p99 <= 5 ms at 1,000 req/s. Env: BENCH_SECONDS (default 10), BENCH_CONNECTIONS (default 10).
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import express from 'express';
import { pino } from 'pino';
import { generateCertificates, writeCertFiles } from '../src/webhook/certs.js';
import { sampleReview } from '../src/webhook/sample.js';
import { WebhookServer } from '../src/webhook/server.js';

interface ServerData {
  kind: 'webhook' | 'bare';
  certDir: string;
}

async function serve(data: ServerData): Promise<number> {
  if (data.kind === 'webhook') {
    // Info-level logs, one line per request as in production, serialized but sent to /dev/null.
    const logger = pino({ level: 'info', base: { part: 'webhook' } }, pino.destination({ dest: '/dev/null', sync: false }));
    const server = new WebhookServer({
      certDir: data.certDir,
      host: '127.0.0.1',
      port: 0,
      metricsHost: '127.0.0.1',
      metricsPort: 0,
      failClosed: false,
      logger,
      shutdownTimeoutMs: 1000,
      certPollIntervalMs: 0,
    });
    return (await server.start()).port;
  }
  const { readFile } = await import('node:fs/promises');
  const fixed = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    response: { uid: '705ab4f5-6393-11e8-b7cc-42010a800002', allowed: true },
  });
  const app = express();
  app.post('/mutate', (_req, res) => {
    res.type('application/json').send(fixed);
  });
  const server = https.createServer(
    { cert: await readFile(path.join(data.certDir, 'tls.crt')), key: await readFile(path.join(data.certDir, 'tls.key')), minVersion: 'TLSv1.2' },
    app,
  );
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

if (!isMainThread) {
  void serve(workerData as ServerData).then((port) => parentPort!.postMessage(port));
}

function startWorker(data: ServerData): Promise<{ port: number; worker: Worker }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('message', (port: number) => resolve({ port, worker }));
    worker.once('error', reject);
  });
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

async function load(port: number, body: string, seconds: number, connections: number, overallRate?: number): Promise<Figures> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    duration: seconds,
    ...(overallRate ? { overallRate } : {}),
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, non2xx: result.non2xx, errors: result.errors };
}

async function checkResponse(port: number, body: string): Promise<void> {
  const text = await new Promise<string>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/mutate', method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let s = '';
      res.on('data', (c: Buffer) => (s += c.toString()));
      res.on('end', () => resolve(s));
    });
    req.on('error', reject);
    req.end(body);
  });
  const patch = (JSON.parse(text) as { response?: { patch?: string } }).response?.patch;
  if (!patch) throw new Error(`the webhook did not return a patch: ${text.slice(0, 300)}`);
  const ops = JSON.parse(Buffer.from(patch, 'base64').toString()) as unknown[];
  process.stdout.write(`sanity: /mutate returns a ${ops.length}-operation patch for the sample pod (${body.length} bytes)\n`);
}

async function main(): Promise<void> {
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 10);
  const certDir = await mkdtemp(path.join(tmpdir(), 'sair-bench-'));
  await writeCertFiles(certDir, generateCertificates({ commonName: 'localhost', dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], validityDays: 1 }));
  const webhook = await startWorker({ kind: 'webhook', certDir });
  const bare = await startWorker({ kind: 'bare', certDir });
  const body = JSON.stringify(sampleReview());
  await checkResponse(webhook.port, body);

  const line = (name: string, f: Figures): string =>
    `${name.padEnd(28)} ${f.rps.toFixed(0).padStart(7)} req/s  p50 ${f.p50.toFixed(2).padStart(6)} ms  p99 ${f.p99.toFixed(2).padStart(6)} ms  non2xx ${f.non2xx}  errors ${f.errors}\n`;
  // Figures on a shared machine depend on what else runs; say how busy it was.
  process.stdout.write(`machine: ${cpus().length} CPUs, load average ${loadavg().map((l) => l.toFixed(2)).join(' ')} at start\n`);
  process.stdout.write(`autocannon: ${connections} keep-alive HTTPS connections, ${seconds} s per run\n`);
  await load(webhook.port, body, 2, connections); // warm-up (JIT, TLS sessions)
  await load(bare.port, body, 2, connections);
  const w = await load(webhook.port, body, seconds, connections);
  process.stdout.write(line('webhook /mutate (max)', w));
  const b = await load(bare.port, body, seconds, connections);
  process.stdout.write(line('bare express (max)', b));
  const ratio = w.rps / b.rps;
  process.stdout.write(`ratio webhook/bare: ${ratio.toFixed(2)} (target >= 0.7)\n`);
  const fixed = await load(webhook.port, body, seconds, connections, 1000);
  process.stdout.write(line('webhook /mutate @1000 req/s', fixed));
  process.stdout.write(`p99 at 1000 req/s: ${fixed.p99.toFixed(2)} ms (target <= 5 ms); load average now ${loadavg()[0]!.toFixed(2)}\n`);

  await Promise.all([webhook.worker.terminate(), bare.worker.terminate()]);
  await rm(certDir, { recursive: true, force: true });
  process.stdout.write(`summary: webhook_rps=${w.rps.toFixed(0)} bare_rps=${b.rps.toFixed(0)} ratio=${ratio.toFixed(2)} p99_ms_at_1000=${fixed.p99.toFixed(2)}\n`);
}

if (isMainThread) {
  main().catch((err: unknown) => {
    process.stderr.write(`bench:webhook failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
