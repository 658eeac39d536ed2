// The policy server's HTTP face: probes, Prometheus metrics, a read-only JSON API and the
// dashboard. Thin: it reads the history and the runtime's state and answers; it changes nothing.
// Only the leader decides, so a standby forwards the JSON API to the leader (the Service may send
// a request to any replica); probes and /metrics stay each replica's own.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { jsonReplacer } from '../../common/json.js';
import type { Logger } from '../../common/logger.js';
import { ConfigError, ValidationError } from '../../common/errors.js';
import { DASHBOARD_HTML } from './dashboard.js';
import type { PolicyHistory } from './history.js';

export interface ServerState {
  /** Ready to serve: caches synced (cluster) or simulator running. */
  ready(): { ready: boolean; reason: string };
  leader(): boolean;
  identity: string;
  selector: string;
  /** Pipelines that exist but were refused (invalid spec), with the reason. */
  invalid(): { id: string; error: string }[];
  /** `cluster` or `simulator`, shown in the dashboard header. */
  source: string;
}

export interface ApiServerDeps {
  history: PolicyHistory;
  registry: Registry;
  logger: Logger;
  state: ServerState;
  /** On a standby: the leader's base URL (http://<pod IP>:<port>), or undefined when none is known. */
  leaderUrl?: () => Promise<string | undefined>;
}

/** Marks a forwarded request, so a replica that lost the lease meanwhile answers it instead of forwarding again. */
export const FORWARDED_HEADER = 'x-sair-forwarded-by';

/** Answers a JSON API request from the leader when this replica is a standby; false: answer here. */
async function forwardToLeader(deps: ApiServerDeps, req: express.Request, res: express.Response): Promise<boolean> {
  if (!deps.leaderUrl || deps.state.leader() || req.get(FORWARDED_HEADER)) return false;
  const leader = await deps.leaderUrl().catch(() => undefined);
  if (!leader) return false;
  try {
    const upstream = await fetch(new URL(req.originalUrl, leader), {
      headers: { [FORWARDED_HEADER]: deps.state.identity, ...(req.get('authorization') ? { authorization: req.get('authorization')! } : {}) },
      signal: AbortSignal.timeout(5_000),
    });
    res.status(upstream.status).type(upstream.headers.get('content-type') ?? 'application/json').set(FORWARDED_HEADER, deps.state.identity).send(Buffer.from(await upstream.arrayBuffer()));
  } catch (err) {
    deps.logger.warn({ leader, err: (err as Error).message }, 'could not forward to the leader');
    res.status(502).json({ error: `this replica (${deps.state.identity}) is a standby and the leader at ${leader} did not answer: ${(err as Error).message}; retry in a few seconds (a new leader takes over within the lease duration)` });
  }
  return true;
}

const decisionsQuery = z.object({
  pipeline: z.string().min(1).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

export function createApiApp(deps: ApiServerDeps): express.Express {
  const app = express();
  // Non-finite numbers (an unbounded P99) as SAIR's JSON writes them everywhere, not as null.
  app.set('json replacer', jsonReplacer);
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.type('text/plain').send('ok');
  });
  app.get('/readyz', (_req, res) => {
    const r = deps.state.ready();
    res.status(r.ready ? 200 : 503).type('text/plain').send(r.ready ? 'ok' : `not ready: ${r.reason}`);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.registry.contentType).send(await deps.registry.metrics());
  });
  app.use('/api', (req, res, next) => {
    forwardToLeader(deps, req, res).then((done) => (done ? undefined : next()), next);
  });
  app.get('/api/pipelines', (_req, res) => {
    res.json({
      source: deps.state.source,
      identity: deps.state.identity,
      leader: deps.state.leader(),
      selector: deps.state.selector,
      pipelines: deps.history.list(),
      invalid: deps.state.invalid(),
      llm: deps.history.llm(),
    });
  });
  app.get('/api/llm', (_req, res) => {
    res.json({ selector: deps.state.selector, llm: deps.history.llm() });
  });
  app.get('/api/decisions', (req, res) => {
    const q = decisionsQuery.safeParse(req.query);
    if (!q.success) {
      const issue = q.error.issues[0]!;
      res.status(400).json({ error: `query parameter ${issue.path.join('.')}: ${issue.message}; expected pipeline=<namespace/name> and limit=1..500` });
      return;
    }
    res.json({ decisions: deps.history.recentDecisions({ pipelineId: q.data.pipeline, limit: q.data.limit }) });
  });
  app.get(['/', '/dashboard'], (_req, res) => {
    res.type('html').set('cache-control', 'no-store').send(DASHBOARD_HTML);
  });
  app.use((_req: express.Request, res: express.Response) => {
    res.status(404).json({ error: 'not found; try /api/pipelines, /api/decisions, /api/llm, /metrics or /' });
  });
  return app;
}

export interface RunningServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startApiServer(deps: ApiServerDeps, port: number, host = '0.0.0.0'): Promise<RunningServer> {
  const server = http.createServer(createApiApp(deps));
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' || err.code === 'EACCES' ? new ConfigError([new ValidationError('--port (env SAIR_POLICY_PORT)', `a free port on ${host} (0 picks one)`, port)]) : err),
    );
    server.listen(port, host, () => resolve());
  });
  const bound = (server.address() as AddressInfo).port;
  const shownHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  deps.logger.info({ port: bound }, 'HTTP API listening');
  return {
    url: `http://${shownHost}:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
