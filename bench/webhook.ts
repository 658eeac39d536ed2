// Webhook load benchmark: autocannon over HTTPS keep-alive against POST /mutate with a realistic
// 3-container GPU pod, and in the same run against a bare express HTTPS endpoint that returns a
// fixed AdmissionReview (the webhook's own answer for that pod, precomputed, so both send the same
// bytes); then /mutate at a fixed 1,000 req/s from an open-loop client. Each server runs in a worker thread
// (its own event loop), autocannon on the main thread. Targets on a 2-core machine: ratio >= 0.7,
// p99 <= 5 ms at 1,000 req/s. Env: BENCH_SECONDS (per run, default 5), BENCH_CONNECTIONS
// (default 10), BENCH_ROUNDS (alternating full-speed rounds, default 3).
import { mkdtemp, rm } from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import autocannon from 'autocannon';
import express from 'express';
import { pino } from 'pino';
import { generateCertificates, writeCertFiles } from '../src/webhook/certs.js';
import { admit, parseReview, reviewResponse } from '../src/webhook/admission.js';
import { sampleReview } from '../src/webhook/sample.js';
import { WebhookServer } from '../src/webhook/server.js';

let served = 0;

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
    server.on('request', () => served++);
    return (await server.start()).port;
  }
  const { readFile } = await import('node:fs/promises');
  // The same AdmissionReview the webhook answers for the sample pod, computed once: the bare
  // endpoint sends as many bytes back, so the comparison isolates the webhook's own work.
  const parsed = parseReview(sampleReview());
  if (!parsed.ok) throw new Error(parsed.message);
  const fixed = JSON.stringify(reviewResponse(parsed.apiVersion, parsed.request.uid, admit(parsed.request)));
  const app = express();
  app.post('/mutate', (_req, res) => {
    served++;
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
  void serve(workerData as ServerData).then((port) => {
    parentPort!.postMessage(port);
    // CPU time of this thread alone: robust against other processes on a shared machine.
    parentPort!.on('message', () => {
      const cpu = process.threadCpuUsage();
      parentPort!.postMessage({ cpuUs: cpu.user + cpu.system, served });
    });
  });
}

function startWorker(data: ServerData): Promise<{ port: number; worker: Worker }> {
  const worker = new Worker(new URL(import.meta.url), { workerData: data });
  return new Promise((resolve, reject) => {
    worker.once('message', (port: number) => resolve({ port, worker }));
    worker.once('error', reject);
  });
}

/** The server thread's CPU time so far and the requests it has served. */
function serverCpu(worker: Worker): Promise<{ cpuUs: number; served: number }> {
  return new Promise((resolve) => {
    worker.once('message', resolve);
    worker.postMessage('cpu');
  });
}

/** Run `fn` and return the server thread's CPU microseconds per request served meanwhile. */
async function cpuPerRequest<T>(worker: Worker, fn: () => Promise<T>): Promise<{ result: T; usPerRequest: number }> {
  const before = await serverCpu(worker);
  const result = await fn();
  const after = await serverCpu(worker);
  return { result, usPerRequest: (after.cpuUs - before.cpuUs) / Math.max(1, after.served - before.served) };
}

interface Figures {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

interface Paced {
  sent: number;
  failed: number;
  /** Milliseconds from writing the request to the end of the response. */
  p50: number;
  p99: number;
  max: number;
  /** p99 measured from when each request was due, so client lag counts too. */
  p99FromSchedule: number;
}

const percentile = (sorted: number[], q: number): number => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? NaN;

/** One keep-alive TLS connection that sends a prebuilt request and reads one response at a time. */
class RawConnection {
  private buffered: Buffer = Buffer.alloc(0);
  private onResponse?: (status: number) => void;
  busy = false;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('data', (chunk: Buffer) => this.read(chunk));
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  send(request: Buffer): Promise<number> {
    this.busy = true;
    return new Promise((resolve) => {
      this.onResponse = resolve;
      this.socket.write(request);
    });
  }

  private read(chunk: Buffer): void {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    const headerEnd = this.buffered.indexOf('\r\n\r\n');
    if (headerEnd < 0) return;
    const head = this.buffered.subarray(0, headerEnd).toString('latin1');
    const length = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
    if (this.buffered.length < headerEnd + 4 + length) return;
    this.buffered = this.buffered.subarray(headerEnd + 4 + length);
    this.busy = false;
    this.onResponse?.(Number(head.slice(9, 12)));
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * An open-loop client at a fixed rate: request i is due at start + i/rate and goes out on an idle
 * keep-alive connection of a pool, whatever the earlier ones are doing (autocannon's overallRate
 * sends each second's quota back to back and then waits, which measures bursts). Raw TLS sockets
 * and a prebuilt request keep the client cheap on a 2-core machine.
 */
async function paced(port: number, body: string, rate: number, seconds: number): Promise<Paced> {
  const request = Buffer.from(
    `POST /mutate HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: keep-alive\r\n\r\n${body}`,
  );
  const pool = await Promise.all(Array.from({ length: 16 }, () => RawConnection.open(port)));
  const latencies: number[] = [];
  const fromSchedule: number[] = [];
  const waiting: number[] = []; // due times of requests with no idle connection yet
  let failed = 0;
  let completed = 0;
  const total = Math.round(rate * seconds);
  const start = performance.now();
  let next = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const dispatch = (conn: RawConnection, due: number): void => {
    const sentAt = performance.now();
    void conn.send(request).then((status) => {
      const done = performance.now();
      if (status === 200) {
        latencies.push(done - sentAt);
        fromSchedule.push(done - due);
      } else failed++;
      if (++completed === total) finish();
      const queued = waiting.shift();
      if (queued !== undefined) dispatch(conn, queued);
    });
  };
  const tick = (): void => {
    const now = performance.now();
    while (next < total && start + (next * 1000) / rate <= now) {
      const due = start + (next * 1000) / rate;
      const idle = pool.find((c) => !c.busy);
      if (idle) dispatch(idle, due);
      else waiting.push(due);
      next++;
    }
    if (next < total) setTimeout(tick, Math.max(0, start + (next * 1000) / rate - performance.now()));
  };
  tick();
  await finished;
  for (const c of pool) c.close();
  latencies.sort((a, b) => a - b);
  fromSchedule.sort((a, b) => a - b);
  return {
    sent: total,
    failed,
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    max: latencies.at(-1) ?? NaN,
    p99FromSchedule: percentile(fromSchedule, 0.99),
  };
}

async function load(port: number, body: string, seconds: number, connections: number): Promise<Figures> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/mutate`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    connections,
    duration: seconds,
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
  const seconds = Number(process.env.BENCH_SECONDS ?? 5);
  const connections = Number(process.env.BENCH_CONNECTIONS ?? 10);
  const rounds = Number(process.env.BENCH_ROUNDS ?? 3);
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
  process.stdout.write(`autocannon: ${connections} keep-alive HTTPS connections, ${seconds} s per run, ${rounds} alternating rounds at full speed\n`);
  await load(webhook.port, body, 2, connections); // warm-up (JIT, TLS sessions)
  await load(bare.port, body, 2, connections);
  // Alternate the two targets so that a burst of load from elsewhere on a shared machine hits
  // both alike; each one's best round estimates its capacity.
  const ws: Figures[] = [];
  const bs: Figures[] = [];
  const wCpu: number[] = [];
  const bCpu: number[] = [];
  for (let round = 1; round <= rounds; round++) {
    const wr = await cpuPerRequest(webhook.worker, () => load(webhook.port, body, seconds, connections));
    ws.push(wr.result);
    wCpu.push(wr.usPerRequest);
    process.stdout.write(line(`webhook /mutate round ${round}`, wr.result));
    const br = await cpuPerRequest(bare.worker, () => load(bare.port, body, seconds, connections));
    bs.push(br.result);
    bCpu.push(br.usPerRequest);
    process.stdout.write(line(`bare express round ${round}`, br.result));
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(
    `server-thread CPU per request (median of rounds): webhook ${median(wCpu).toFixed(0)} us, bare ${median(bCpu).toFixed(0)} us, ratio bare/webhook ${(median(bCpu) / median(wCpu)).toFixed(2)}\n`,
  );
  const best = (fs: Figures[]): Figures => fs.reduce((a, f) => (f.rps > a.rps ? f : a));
  const w = best(ws);
  const b = best(bs);
  process.stdout.write(line('webhook /mutate (best)', w));
  process.stdout.write(line('bare express (best)', b));
  const ratio = w.rps / b.rps;
  process.stdout.write(`ratio webhook/bare: ${ratio.toFixed(2)} (target >= 0.7)\n`);
  await paced(webhook.port, body, 1000, 1); // warm-up: TLS handshakes of the pool
  const fixed = await paced(webhook.port, body, 1000, Math.max(seconds, 10));
  process.stdout.write(
    `webhook /mutate @1000 req/s (open loop, ${fixed.sent} requests, ${fixed.failed} failed): p50 ${fixed.p50.toFixed(2)} ms  p99 ${fixed.p99.toFixed(2)} ms  max ${fixed.max.toFixed(2)} ms  p99 from schedule ${fixed.p99FromSchedule.toFixed(2)} ms\n`,
  );
  // The same open-loop load on the bare endpoint says how much of that is the machine.
  await paced(bare.port, body, 1000, 1);
  const fixedBare = await paced(bare.port, body, 1000, Math.max(seconds, 10));
  process.stdout.write(
    `bare express @1000 req/s (open loop, ${fixedBare.sent} requests, ${fixedBare.failed} failed): p50 ${fixedBare.p50.toFixed(2)} ms  p99 ${fixedBare.p99.toFixed(2)} ms  max ${fixedBare.max.toFixed(2)} ms  p99 from schedule ${fixedBare.p99FromSchedule.toFixed(2)} ms\n`,
  );
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
