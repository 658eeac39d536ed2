// HTTP and TLS for the webhook: HTTPS /mutate (express 5, TLS >= 1.2) with certificates reloaded
// from a watched directory without a restart, a plain-HTTP port for probes and metrics, and a
// graceful shutdown that drains in-flight requests. The admission logic lives in admission.ts.
import { EventEmitter, once } from 'node:events';
import { watch, type FSWatcher } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Registry } from 'prom-client';
import { errorMessage } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { createRegistry } from '../common/metrics.js';
import { admit, internalErrorOutcome, parseReview, reviewResponse, type AdmissionOutcome, type AdmissionRequest } from './admission.js';
import { createWebhookMetrics, type WebhookMetrics } from './metrics.js';

/** kube-apiserver never sends more than 3 MiB in one object; more is refused with 413. */
export const MAX_BODY_BYTES = 3 * 1024 * 1024;
const TLS_MIN_VERSION = 'TLSv1.2';

export interface WebhookServerOptions {
  /** Directory holding tls.crt and tls.key (a Secret volume, or `sair certs --out-dir`). */
  certDir: string;
  certFile?: string;
  keyFile?: string;
  host: string;
  port: number;
  metricsHost: string;
  metricsPort: number;
  /** Deny instead of allow when the webhook itself fails. */
  failClosed: boolean;
  logger: Logger;
  /** How long a shutdown waits for in-flight requests before closing connections. */
  shutdownTimeoutMs: number;
  /** A safety net beside the directory watch; 0 disables it. */
  certPollIntervalMs?: number;
  registry?: Registry;
  /** The admission decision; replaceable so that tests can make it fail. */
  admit?: (request: AdmissionRequest) => AdmissionOutcome;
}

interface KeyPair {
  cert: string;
  key: string;
}

/** A request body that could not be read: 400 (not JSON, cut short) or 413 (over the limit). */
class BodyError extends Error {
  constructor(
    readonly status: 400 | 413,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Read and parse a JSON body of at most `limit` bytes. Leaner than express.json() (no charset
 * negotiation or decoder streams: kube-apiserver sends UTF-8 JSON), which matters per admission.
 */
function jsonBody(limit: number): express.RequestHandler {
  return (req, _res, next) => {
    const declared = Number(req.headers['content-length']);
    if (declared > limit) {
      req.resume();
      next(new BodyError(413, `body: ${declared} bytes, larger than ${limit} bytes (3 MiB); an AdmissionReview is never that large`));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > limit) {
        failed = true;
        next(new BodyError(413, `body: larger than ${limit} bytes (3 MiB); an AdmissionReview is never that large`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (failed) return;
      try {
        req.body = JSON.parse((chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size)).toString('utf8'));
      } catch (err) {
        next(new BodyError(400, `body: not valid JSON (${errorMessage(err)}); expected an AdmissionReview`));
        return;
      }
      next();
    });
    req.on('aborted', () => {
      failed = true;
    });
  };
}

function statusBody(code: number, message: string): object {
  return { apiVersion: 'v1', kind: 'Status', status: 'Failure', code, message };
}

/**
 * Emits 'certificate' with `{ ok: boolean, error?: string }` after every reload attempt that found
 * new files or failed, 'request' with the in-flight count when a request arrives, and 'drained'
 * once a shutdown has finished the last in-flight request.
 */
export class WebhookServer extends EventEmitter {
  readonly registry: Registry;
  readonly metrics: WebhookMetrics;
  private readonly log: Logger;
  private https?: https.Server;
  private plain?: http.Server;
  private watcher?: FSWatcher;
  private poll?: NodeJS.Timeout;
  private reloadTimer?: NodeJS.Timeout;
  private current?: KeyPair;
  private inFlight = 0;
  private stopping = false;
  private stopped?: Promise<void>;

  constructor(private readonly options: WebhookServerOptions) {
    super();
    this.log = options.logger;
    this.registry = options.registry ?? createRegistry('webhook');
    this.metrics = createWebhookMetrics(this.registry);
  }

  private get certPath(): string {
    return path.join(this.options.certDir, this.options.certFile ?? 'tls.crt');
  }

  private get keyPath(): string {
    return path.join(this.options.certDir, this.options.keyFile ?? 'tls.key');
  }

  private async readKeyPair(): Promise<KeyPair> {
    const [cert, key] = await Promise.all([readFile(this.certPath, 'utf8'), readFile(this.keyPath, 'utf8')]);
    // Throws on a half-written file or a key that does not match the certificate.
    tls.createSecureContext({ cert, key, minVersion: TLS_MIN_VERSION });
    return { cert, key };
  }

  /** Load the files again; applied only when they changed and form a valid pair. */
  async reloadCertificate(): Promise<boolean> {
    let pair: KeyPair;
    try {
      pair = await this.readKeyPair();
    } catch (err) {
      // Mid-rotation the directory can hold a new certificate beside the old key; the next event retries.
      this.metrics.certReloads.inc({ result: 'error' });
      this.log.warn({ certDir: this.options.certDir, err: errorMessage(err) }, 'certificate reload failed; keeping the current one');
      this.emit('certificate', { ok: false, error: errorMessage(err) });
      return false;
    }
    if (this.current && pair.cert === this.current.cert && pair.key === this.current.key) return false;
    this.https?.setSecureContext({ ...pair, minVersion: TLS_MIN_VERSION });
    this.current = pair;
    this.metrics.certReloads.inc({ result: 'ok' });
    this.log.info({ certDir: this.options.certDir }, 'serving certificate loaded');
    this.emit('certificate', { ok: true });
    return true;
  }

  private scheduleReload(): void {
    // A Secret update is several renames in a row (kubelet swaps the `..data` link); coalesce them.
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => void this.reloadCertificate(), 50);
  }

  private app(): express.Express {
    const app = express();
    app.disable('x-powered-by');
    app.set('etag', false);
    app.post('/mutate', jsonBody(MAX_BODY_BYTES), (req: Request, res: Response) => {
      this.handleMutate(req, res);
    });
    app.use((req: Request, res: Response) => {
      res.status(404).json(statusBody(404, `${req.method} ${req.path}: not found; POST AdmissionReviews to /mutate`));
    });
    app.use((err: unknown, req: Request, res: Response, _next: NextFunction) => {
      if (err instanceof BodyError && err.status === 413) {
        this.metrics.errors.inc({ type: 'too_large' });
        this.metrics.requests.inc({ kind: 'other', result: 'too_large' });
        this.log.warn({ path: req.path, limitBytes: MAX_BODY_BYTES }, 'request body too large');
        // The rest of an oversized body is not read: close the connection after answering.
        res.set('connection', 'close').status(413).json(statusBody(413, err.message));
      } else if (err instanceof BodyError) {
        this.metrics.errors.inc({ type: 'bad_request' });
        this.metrics.requests.inc({ kind: 'other', result: 'bad_request' });
        this.log.warn({ path: req.path, err: err.message }, 'malformed request body');
        res.status(400).json(statusBody(400, err.message));
      } else {
        this.metrics.errors.inc({ type: 'internal' });
        this.log.error({ path: req.path, err: errorMessage(err) }, 'request failed');
        const status = (err as { status?: number }).status;
        const code = typeof status === 'number' && status >= 400 && status < 600 ? status : 500;
        res.status(code).json(statusBody(code, errorMessage(err)));
      }
    });
    return app;
  }

  private handleMutate(req: Request, res: Response): void {
    const started = process.hrtime.bigint();
    const parsed = parseReview(req.body);
    if (!parsed.ok) {
      this.metrics.errors.inc({ type: 'bad_request' });
      this.metrics.requests.inc({ kind: 'other', result: 'bad_request' });
      this.log.warn({ err: parsed.message }, 'bad AdmissionReview');
      res.status(400).json(statusBody(400, parsed.message));
      return;
    }
    const { request } = parsed;
    let outcome: AdmissionOutcome;
    let internal: unknown;
    try {
      outcome = (this.options.admit ?? admit)(request);
    } catch (err) {
      internal = err;
      outcome = internalErrorOutcome(err, this.options.failClosed);
      this.metrics.errors.inc({ type: 'internal' });
    }
    res.json(reviewResponse(parsed.apiVersion, request.uid, outcome));
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    this.metrics.duration.observe({ kind: outcome.kind }, seconds);
    this.metrics.requests.inc({ kind: outcome.kind, result: outcome.result });
    if (outcome.result === 'mutated') this.metrics.mutations.inc({ kind: outcome.kind });
    if (outcome.result === 'denied') this.metrics.denials.inc({ kind: outcome.kind });
    const fields = {
      uid: request.uid,
      kind: request.kind.kind,
      operation: request.operation,
      namespace: request.namespace,
      name: request.name,
      result: outcome.result,
      allowed: outcome.allowed,
      patchOps: outcome.patch.length,
      ms: Math.round(seconds * 1e6) / 1e3,
    };
    if (internal !== undefined) {
      this.log.error({ ...fields, failClosed: this.options.failClosed, err: errorMessage(internal) }, 'admission failed internally');
    } else if (outcome.result === 'denied') {
      this.log.warn({ ...fields, reason: outcome.status?.message }, 'admission denied');
    } else if (outcome.warnings.length > 0) {
      this.log.warn({ ...fields, warnings: outcome.warnings }, 'admitted with warnings');
    } else if (outcome.result === 'mutated') {
      this.log.info(fields, 'admitted with patch');
    } else {
      // Unchanged objects are the common case on a busy cluster; keep them out of info logs.
      this.log.debug(fields, 'admitted unchanged');
    }
  }

  private async probe(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (url === '/readyz') {
      const ready = !this.stopping && this.current !== undefined && this.https?.listening === true;
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
    } else if (url === '/metrics') {
      const body = await this.registry.metrics();
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(body);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /healthz, /readyz or /metrics\n');
    }
  }

  /** Load the certificate, listen on both ports and start watching the certificate directory. */
  async start(): Promise<{ port: number; metricsPort: number }> {
    const pair = await this.readKeyPair().catch((err: unknown) => {
      throw new Error(`cannot load the serving certificate from ${this.options.certDir}: ${errorMessage(err)}`, { cause: err });
    });
    this.current = pair;
    const server = https.createServer({ ...pair, minVersion: TLS_MIN_VERSION }, this.app());
    server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
      this.inFlight++;
      this.emit('request', this.inFlight);
      res.once('close', () => {
        this.inFlight--;
        if (this.stopping && this.inFlight === 0) this.emit('drained');
      });
    });
    server.on('tlsClientError', (err: Error) => this.log.debug({ err: errorMessage(err) }, 'TLS handshake failed'));
    this.https = server;
    this.plain = http.createServer((req, res) => {
      this.probe(req, res).catch((err: unknown) => {
        this.log.error({ err: errorMessage(err) }, 'probe failed');
        if (!res.headersSent) res.writeHead(500).end();
      });
    });
    server.listen(this.options.port, this.options.host);
    this.plain.listen(this.options.metricsPort, this.options.metricsHost);
    try {
      await Promise.all([once(server, 'listening'), once(this.plain, 'listening')]);
    } catch (err) {
      // One port may be taken (EADDRINUSE): close the other so the process can exit.
      server.close();
      this.plain.close();
      throw new Error(`cannot listen on ${this.options.host}:${this.options.port} and :${this.options.metricsPort}: ${errorMessage(err)}`, { cause: err });
    }

    this.watcher = watch(this.options.certDir, () => this.scheduleReload());
    this.watcher.on('error', (err) => this.log.warn({ err: errorMessage(err) }, 'certificate directory watch failed; relying on polling'));
    const interval = this.options.certPollIntervalMs ?? 60_000;
    if (interval > 0) {
      this.poll = setInterval(() => void this.reloadCertificate(), interval);
      this.poll.unref();
    }
    const ports = { port: (server.address() as AddressInfo).port, metricsPort: (this.plain.address() as AddressInfo).port };
    this.log.info({ ...ports, host: this.options.host, certDir: this.options.certDir, failClosed: this.options.failClosed }, 'webhook listening');
    return ports;
  }

  /** Stop taking connections, finish in-flight requests (up to shutdownTimeoutMs), then close. */
  stop(): Promise<void> {
    this.stopped ??= this.drain();
    return this.stopped;
  }

  private async drain(): Promise<void> {
    this.stopping = true;
    this.watcher?.close();
    clearInterval(this.poll);
    clearTimeout(this.reloadTimer);
    const server = this.https;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      if (this.inFlight > 0) {
        this.log.info({ inFlight: this.inFlight }, 'draining in-flight requests');
        const timer = setTimeout(() => {
          this.log.warn({ inFlight: this.inFlight }, 'shutdown timeout; closing remaining connections');
          server.closeAllConnections();
        }, this.options.shutdownTimeoutMs);
        await Promise.race([once(this, 'drained'), closed]);
        clearTimeout(timer);
      }
      // Keep-alive connections with no request in flight would hold close() open.
      server.closeIdleConnections();
      const force = setTimeout(() => server.closeAllConnections(), this.options.shutdownTimeoutMs);
      await closed;
      clearTimeout(force);
    }
    if (this.plain) {
      const plain = this.plain;
      const closed = new Promise<void>((resolve) => plain.close(() => resolve()));
      plain.closeAllConnections();
      await closed;
    }
    this.log.info('webhook stopped');
  }
}
