// Who may read the JSON API, decided by the cluster as kube-rbac-proxy does: the caller's bearer
// token is checked with a TokenReview (authentication.k8s.io/v1), and each pipeline is shown only
// to a caller a SubjectAccessReview (authorization.k8s.io/v1) allows to `get inferencepipelines`
// in the pipeline's namespace. Answers are cached briefly, so a dashboard polling every 2 s costs
// the API server a review per half minute, not per request.
import { createHash } from 'node:crypto';
import type { KubeClients } from '../../common/k8s.js';
import { toUpstreamError } from '../k8s/retry.js';

export interface ApiUser {
  username: string;
  groups: string[];
  uid?: string;
}

/** The two questions the API asks; `KubeReviewAuth` puts them to the API server. */
export interface ApiAuth {
  /** The token's user, or undefined when the API server does not know the token. */
  authenticate(token: string): Promise<ApiUser | undefined>;
  /** Whether the user may `get inferencepipelines` in the namespace. */
  canReadPipelines(user: ApiUser, namespace: string): Promise<boolean>;
}

interface Cached<T> {
  value: T;
  until: number;
}

export interface ReviewAuthOptions {
  clients: Pick<KubeClients, 'authentication' | 'authorization'>;
  /** How long an answer is reused, ms (kube-rbac-proxy: 2 min authenticated, 5 min allowed). */
  ttlMs?: number;
  now?: () => number;
  /** At most this many answers of each kind are kept; the oldest go first. */
  maxEntries?: number;
}

export class KubeReviewAuth implements ApiAuth {
  private readonly users = new Map<string, Cached<ApiUser | undefined>>();
  private readonly decisions = new Map<string, Cached<boolean>>();
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly maxEntries: number;

  constructor(private readonly o: ReviewAuthOptions) {
    this.ttlMs = o.ttlMs ?? 30_000;
    this.now = o.now ?? Date.now;
    this.maxEntries = o.maxEntries ?? 1_000;
  }

  authenticate(token: string): Promise<ApiUser | undefined> {
    // Keyed by a hash: the cache never holds a caller's token.
    return this.cached(this.users, createHash('sha256').update(token).digest('base64'), async () => {
      const review = await this.o.clients.authentication
        .createTokenReview({ body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token } } })
        .catch((err: unknown) => {
          throw toUpstreamError('TokenReview', err);
        });
      const s = review.status;
      if (!s?.authenticated || !s.user?.username) return undefined;
      return { username: s.user.username, groups: s.user.groups ?? [], ...(s.user.uid ? { uid: s.user.uid } : {}) };
    });
  }

  canReadPipelines(user: ApiUser, namespace: string): Promise<boolean> {
    return this.cached(this.decisions, `${user.username}\n${user.groups.join(',')}\n${namespace}`, async () => {
      const review = await this.o.clients.authorization
        .createSubjectAccessReview({
          body: {
            apiVersion: 'authorization.k8s.io/v1',
            kind: 'SubjectAccessReview',
            spec: {
              user: user.username,
              groups: user.groups,
              ...(user.uid ? { uid: user.uid } : {}),
              resourceAttributes: { namespace, verb: 'get', group: 'sair.dev', resource: 'inferencepipelines' },
            },
          },
        })
        .catch((err: unknown) => {
          throw toUpstreamError('SubjectAccessReview', err);
        });
      return review.status?.allowed === true;
    });
  }

  private async cached<T>(map: Map<string, Cached<T>>, key: string, ask: () => Promise<T>): Promise<T> {
    const now = this.now();
    const hit = map.get(key);
    if (hit && hit.until > now) return hit.value;
    const value = await ask();
    map.delete(key);
    map.set(key, { value, until: now + this.ttlMs });
    if (map.size > this.maxEntries) map.delete(map.keys().next().value!);
    return value;
  }
}

/** The namespace of a pipeline id `<namespace>/<name>` (and `<namespace>/hpa:<name>`). */
export const namespaceOf = (pipelineId: string): string => pipelineId.slice(0, Math.max(0, pipelineId.indexOf('/')));
