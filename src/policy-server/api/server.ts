// The policy server's HTTP face: probes, Prometheus metrics, a read-only JSON API and the
// dashboard. Thin: it reads the history and the runtime's state and answers; it changes nothing.
// Only the leader decides, so a standby forwards the JSON API to the leader (the Service may send
// a request to any replica); probes and /metrics stay each replica's own. With shards, a replica
// answers for the pipelines of the shards it holds, and one that holds none forwards to the
// holder of the first shard.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import type { Registry } from 'prom-client';
import { z } from 'zod';
import { jsonReplacer } from '../../common/json.js';
import type { Logger } from '../../common/logger.js';
import { ConfigError, ValidationError } from '../../common/errors.js';
import { namespaceOf, type ApiAuth, type ApiUser } from './auth.js';
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
  /** With sharding: the shards this replica holds (it answers for their pipelines) out of how many. */
  shards?(): { held: number[]; of: number };
  /** With sharding: whether this replica holds the pipeline's shard now (its history may lag a shard just given back). */
  holds?(pipelineId: string): boolean;
}

export interface ApiServerDeps {
  history: PolicyHistory;
  registry: Registry;
  logger: Logger;
  state: ServerState;
  /** On a standby: the leader's base URL (http://<pod IP>:<port>), or undefined when none is known. */
  leaderUrl?: () => Promise<string | undefined>;
  /**
   * With it, /api/* needs a Kubernetes bearer token and shows each caller only the pipelines of
   * namespaces it may `get inferencepipelines` in; without it (`sair start`) the API is open.
   */
  auth?: ApiAuth;
}

const HOW_TO_AUTHENTICATE =
  'send a Kubernetes bearer token (a user may read the pipelines of namespaces where it may get inferencepipelines): ' +
  'curl -H "Authorization: Bearer $(kubectl create token <serviceaccount> -n <namespace>)" <url>, ' +
  'or open the dashboard at /#token=<token>';

/** Authenticates /api/* requests by TokenReview; the user goes to res.locals.user. */
function authenticate(auth: ApiAuth, logger: Logger): express.RequestHandler {
  return (req, res, next) => {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.get('authorization') ?? '')?.[1];
    const refuse = (why: string) => res.status(401).set('www-authenticate', 'Bearer realm="sair-policy"').json({ error: `${why}; ${HOW_TO_AUTHENTICATE}` });
    if (!token) {
      refuse('no bearer token');
      return;
    }
    auth.authenticate(token).then(
      (user) => {
        if (!user) return refuse('the Kubernetes API server did not accept the token (TokenReview)');
        res.locals.user = user;
        next();
      },
      (err: unknown) => {
        logger.warn({ err: (err as Error).message }, 'TokenReview failed');
        res.status(503).json({ error: `cannot check the token: ${(err as Error).message}; retry, and check the policy server may create tokenreviews (ClusterRole sair-policy)` });
      },
    );
  };
}

/** Which of these pipeline ids the caller may see; everything when the API is open. */
async function visibleTo(deps: ApiServerDeps, res: express.Response, ids: string[]): Promise<(id: string) => boolean> {
  const user = res.locals.user as ApiUser | undefined;
  if (!deps.auth || !user) return () => true;
  const auth = deps.auth;
  const namespaces = [...new Set(ids.map(namespaceOf))];
  const allowed = new Set((await Promise.all(namespaces.map(async (ns) => ((await auth.canReadPipelines(user, ns)) ? ns : undefined)))).filter((ns) => ns !== undefined));
  return (id) => allowed.has(namespaceOf(id));
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
  if (deps.auth) app.use('/api', authenticate(deps.auth, deps.logger));
  app.use('/api', (req, res, next) => {
    forwardToLeader(deps, req, res).then((done) => (done ? undefined : next()), next);
  });
  app.get('/api/pipelines', async (_req, res) => {
    const holds = deps.state.holds ?? (() => true);
    const pipelines = deps.history.list().filter((p) => holds(p.id));
    const invalid = deps.state.invalid();
    const visible = await visibleTo(deps, res, [...pipelines.map((p) => p.id), ...invalid.map((i) => i.id)]);
    res.json({
      source: deps.state.source,
      identity: deps.state.identity,
      leader: deps.state.leader(),
      ...(deps.state.shards ? { shards: deps.state.shards() } : {}),
      selector: deps.state.selector,
      pipelines: pipelines.filter((p) => visible(p.id)),
      invalid: invalid.filter((i) => visible(i.id)),
      llm: deps.history.llm(),
    });
  });
  app.get('/api/llm', (_req, res) => {
    res.json({ selector: deps.state.selector, llm: deps.history.llm() });
  });
  app.get('/api/decisions', async (req, res) => {
    const q = decisionsQuery.safeParse(req.query);
    if (!q.success) {
      const issue = q.error.issues[0]!;
      res.status(400).json({ error: `query parameter ${issue.path.join('.')}: ${issue.message}; expected pipeline=<namespace/name> and limit=1..500` });
      return;
    }
    if (!deps.auth) {
      res.json({ decisions: deps.history.recentDecisions({ pipelineId: q.data.pipeline, limit: q.data.limit }) });
      return;
    }
    // Filter first, then take the newest `limit`, so a caller's page is full when it can be.
    const all = deps.history.recentDecisions({ pipelineId: q.data.pipeline, limit: Number.MAX_SAFE_INTEGER });
    const visible = await visibleTo(deps, res, [...(q.data.pipeline ? [q.data.pipeline] : []), ...all.map((d) => d.pipelineId)]);
    if (q.data.pipeline && !visible(q.data.pipeline)) {
      const user = (res.locals.user as ApiUser).username;
      res.status(403).json({ error: `${user} may not get inferencepipelines in namespace ${namespaceOf(q.data.pipeline)}: bind it ClusterRole sair-pipeline-viewer there (kubectl -n ${namespaceOf(q.data.pipeline)} create rolebinding sair-viewer --clusterrole=sair-pipeline-viewer --user=${user}; the view, edit and admin roles include it)` });
      return;
    }
    res.json({ decisions: all.filter((d) => visible(d.pipelineId)).slice(0, q.data.limit) });
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
