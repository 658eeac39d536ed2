// LLM endpoint settings from the cluster: base URL and model from a ConfigMap (keys `baseUrl`,
// `model`, optional `timeoutMs`), the API key from a Secret, so a key never sits in a Deployment
// or a custom resource. Errors name the object and key and say what to put there.
import type * as k8s from '@kubernetes/client-node';
import { ValidationError } from '../../common/errors.js';
import { statusOf } from '../../common/k8s.js';
import { toUpstreamError } from './retry.js';

/** The ClusterRole (manifests/policy/rbac.yaml) that lets the policy server read a pipeline's LLM settings. */
const READER_ROLE = 'sair-policy-llm-reader';

function readError(where: string, ref: LlmReference, missing: string, err: unknown): Error {
  const status = statusOf(err);
  if (status === 404) return new ValidationError(where, missing);
  const upstream = toUpstreamError(`read ${where}`, err);
  if (status !== 403) return upstream;
  upstream.message += `; let the policy server read it: kubectl -n ${ref.namespace} create rolebinding sair-policy-llm --clusterrole=${READER_ROLE} --serviceaccount=sair-system:sair-policy`;
  return upstream;
}

export interface LlmReference {
  namespace: string;
  configMap?: string;
  secret?: { name: string; key: string };
}

export interface ResolvedLlm {
  baseUrl?: string;
  model?: string;
  apiKey?: string;
  timeoutMs?: number;
}

export async function resolveLlmSettings(core: k8s.CoreV1Api, ref: LlmReference): Promise<ResolvedLlm> {
  const out: ResolvedLlm = {};
  if (ref.configMap) {
    const where = `ConfigMap ${ref.namespace}/${ref.configMap}`;
    const cm = await core.readNamespacedConfigMap({ name: ref.configMap, namespace: ref.namespace }).catch((err: unknown) => {
      throw readError(where, ref, 'an existing ConfigMap with keys baseUrl and model', err);
    });
    const data = cm.data ?? {};
    if (!data.baseUrl || !/^https?:\/\//.test(data.baseUrl)) throw new ValidationError(`${where} key baseUrl`, 'an http(s) URL of an OpenAI-compatible API, e.g. http://vllm:8000/v1', data.baseUrl);
    if (!data.model) throw new ValidationError(`${where} key model`, 'a model name');
    out.baseUrl = data.baseUrl;
    out.model = data.model;
    if (data.timeoutMs !== undefined) {
      const t = Number(data.timeoutMs);
      if (!Number.isInteger(t) || t < 100 || t > 10_000) throw new ValidationError(`${where} key timeoutMs`, 'an integer from 100 to 10000', data.timeoutMs);
      out.timeoutMs = t;
    }
  }
  if (ref.secret) out.apiKey = await readApiKey(core, { namespace: ref.namespace, secret: ref.secret });
  return out;
}

/**
 * The API key in one Secret's key, read by name (a GET: never a list, so nothing else is read).
 * A missing Secret or key is a ValidationError; anything else an UpstreamError.
 */
export async function readApiKey(core: k8s.CoreV1Api, ref: Required<Pick<LlmReference, 'namespace' | 'secret'>>): Promise<string> {
  const where = `Secret ${ref.namespace}/${ref.secret.name}`;
  const secret = await core.readNamespacedSecret({ name: ref.secret.name, namespace: ref.namespace }).catch((err: unknown) => {
    throw readError(where, ref, `an existing Secret with key ${ref.secret.key}`, err);
  });
  const raw = secret.data?.[ref.secret.key] ?? secret.stringData?.[ref.secret.key];
  if (!raw) throw new ValidationError(`${where} key ${ref.secret.key}`, 'the LLM API key (base64 in data, as kubectl create secret writes it)');
  return secret.data?.[ref.secret.key] ? Buffer.from(raw, 'base64').toString('utf8').trim() : raw.trim();
}

/**
 * The LLM settings of a pipeline that names its own endpoint. Its base URL must start with one of
 * the cluster admin's allowed prefixes; it gets the key from its own Secret or none, never the
 * server-wide key (which would go to an endpoint the tenant chose); only timeouts and retries
 * come from the server's settings.
 */
export function pipelineLlm<T extends { baseUrl: string; model: string; apiKey?: string; timeoutMs?: number }>(
  server: Partial<T> | undefined,
  own: ResolvedLlm,
  allowed: readonly string[],
  where: string,
): T {
  if (!own.baseUrl || !own.model) throw new ValidationError(`${where} spec.llm.configMapRef`, 'a ConfigMap with keys baseUrl and model');
  if (!allowed.some((prefix) => own.baseUrl!.startsWith(prefix))) {
    throw new ValidationError(
      `${where} LLM endpoint`,
      allowed.length === 0 ? 'allowed by the cluster admin: SAIR_LLM_ALLOWED_ENDPOINTS lists none, so pipelines use the server-wide endpoint' : `a URL starting with one of SAIR_LLM_ALLOWED_ENDPOINTS (${allowed.join(', ')})`,
      own.baseUrl,
    );
  }
  const { apiKey: _serverKey, baseUrl: _b, model: _m, ...rest } = server ?? {};
  return { ...rest, baseUrl: own.baseUrl, model: own.model, ...(own.timeoutMs !== undefined ? { timeoutMs: own.timeoutMs } : {}), ...(own.apiKey ? { apiKey: own.apiKey } : {}) } as T;
}
