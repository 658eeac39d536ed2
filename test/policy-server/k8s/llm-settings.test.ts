// LLM settings from the cluster: base URL and model from a ConfigMap, the key from a Secret, for
// the whole server or per InferencePipeline (spec.llm), against the fake API server and the
// scripted OpenAI-compatible server.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { pipelineLlm, resolveLlmSettings } from '../../../src/policy-server/k8s/llm-settings.js';
import { loadPolicyConfig, startCluster, type ClusterServer } from '../../../src/cmd/policy.js';
import { eventually } from '../../support/eventually.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { startFakeLlm, type FakeLlm } from '../../support/fake-llm.js';
import { startFakePrometheus, type FakePrometheus } from '../../support/fake-prometheus.js';
import { deployment, namespace, pipeline, pod } from './helpers.js';

const configMap = (ns: string, name: string, data: Record<string, string>) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace: ns }, data });
const secret = (ns: string, name: string, key: string, value: string) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace: ns },
  type: 'Opaque',
  data: { [key]: Buffer.from(value).toString('base64') },
});

describe('LLM settings from ConfigMaps and Secrets', () => {
  let api: FakeApiServer;
  let prom: FakePrometheus;
  let llm: FakeLlm;
  const servers: ClusterServer[] = [];

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
    prom = await startFakePrometheus();
    llm = await startFakeLlm();
    api.seed(namespace('ml', true));
    for (const name of ['a', 'b']) {
      api.seed(deployment('ml', name, 1));
      api.seed(pod('ml', name, 'aaaaa'));
    }
    prom.on((q) => q.includes('http_request_duration_seconds_count') && !q.includes('code=~'), { vector: [{ value: '30' }] });
    prom.on('code=~', { vector: [{ value: '0' }] });
    prom.on('container_cpu_usage_seconds_total', { vector: [{ value: '0.9' }] });
    prom.on('histogram_quantile', { vector: [{ value: '900' }] });
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await llm.close();
    await prom.close();
    await api.close();
  });

  it('reads base URL, model and timeout from the ConfigMap and the key from the Secret', async () => {
    api.seed(configMap('sair-system', 'sair-llm', { baseUrl: 'http://vllm.llm:8000/v1', model: 'qwen', timeoutMs: '4000' }));
    api.seed(secret('sair-system', 'sair-llm', 'apiKey', 'sk-test\n'));
    const core = api.clients('sair-system').core;
    expect(await resolveLlmSettings(core, { namespace: 'sair-system', configMap: 'sair-llm', secret: { name: 'sair-llm', key: 'apiKey' } })).toEqual({
      baseUrl: 'http://vllm.llm:8000/v1',
      model: 'qwen',
      timeoutMs: 4000,
      apiKey: 'sk-test',
    });
  });

  it('names the object, the key and the accepted form when something is wrong', async () => {
    const core = api.clients('sair-system').core;
    api.seed(configMap('sair-system', 'no-url', { model: 'qwen' }));
    api.seed(configMap('sair-system', 'slow', { baseUrl: 'http://x/v1', model: 'm', timeoutMs: '60000' }));
    await expect(resolveLlmSettings(core, { namespace: 'sair-system', configMap: 'missing' })).rejects.toThrow(
      'ConfigMap sair-system/missing: missing; expected an existing ConfigMap with keys baseUrl and model',
    );
    await expect(resolveLlmSettings(core, { namespace: 'sair-system', configMap: 'no-url' })).rejects.toThrow('ConfigMap sair-system/no-url key baseUrl: missing; expected an http(s) URL');
    await expect(resolveLlmSettings(core, { namespace: 'sair-system', configMap: 'slow' })).rejects.toThrow('key timeoutMs: "60000" is not an integer from 100 to 10000');
    await expect(resolveLlmSettings(core, { namespace: 'sair-system', secret: { name: 'sair-llm', key: 'token' } })).rejects.toThrow('Secret sair-system/sair-llm key token: missing');
  });

  it('`sair policy` takes the server-wide endpoint from SAIR_LLM_CONFIGMAP and SAIR_LLM_SECRET', async () => {
    api.seed(configMap('sair-system', 'server-llm', { baseUrl: llm.url, model: 'scripted' }));
    const server = await startCluster(
      loadPolicyConfig(
        {
          SAIR_KUBE_API_SERVER: api.url,
          SAIR_PROMETHEUS_URL: prom.url,
          SAIR_POD_NAMESPACE: 'sair-system',
          SAIR_LEADER_ELECTION: 'false',
          SAIR_LLM_CONFIGMAP: 'server-llm',
          SAIR_LLM_SECRET: 'sair-llm',
          SAIR_LOG_LEVEL: 'silent',
          SAIR_API_AUTH: 'none',
          SAIR_POLICY_HOST: '127.0.0.1',
        },
        ['--port', '0'],
      ),
    );
    const body = (await (await fetch(`${server.url}/api/pipelines`)).json()) as { selector: string };
    await server.stop();
    expect(body.selector).toBe('llm');
    // A reference to something that is not there stops the start with the reason.
    await expect(
      startCluster(loadPolicyConfig({ SAIR_KUBE_API_SERVER: api.url, SAIR_POD_NAMESPACE: 'sair-system', SAIR_LLM_CONFIGMAP: 'nope', SAIR_LOG_LEVEL: 'silent' }, ['--port', '0'])),
    ).rejects.toThrow('ConfigMap sair-system/nope');
  });

  it('a pipeline that names its own endpoint is decided by that LLM, with the key from its Secret; the others by the bandit', async () => {
    const before = llm.requests.length;
    api.seed(configMap('ml', 'team-llm', { baseUrl: llm.url, model: 'scripted' }));
    api.seed(secret('ml', 'team-llm', 'apiKey', 'sk-team'));
    api.seed(pipeline('ml', 'with-llm', { slo: { p99Ms: 300 }, tickSeconds: 5, llm: { configMapRef: { name: 'team-llm' }, secretRef: { name: 'team-llm' } }, stages: [{ name: 'a', deployment: 'a', maxReplicas: 4 }] }));
    api.seed(pipeline('ml', 'plain', { slo: { p99Ms: 300 }, tickSeconds: 5, stages: [{ name: 'b', deployment: 'b', maxReplicas: 4 }] }));
    const server = await startCluster(
      loadPolicyConfig(
        { SAIR_KUBE_API_SERVER: api.url, SAIR_PROMETHEUS_URL: prom.url, SAIR_POD_NAME: 'p-0', SAIR_POD_NAMESPACE: 'sair-system', SAIR_LEADER_ELECTION: 'false', SAIR_POLICY_POLL_MS: '100', SAIR_LOG_LEVEL: 'silent', SAIR_API_AUTH: 'none', SAIR_POLICY_HOST: '127.0.0.1', SAIR_LLM_ALLOWED_ENDPOINTS: llm.url, SAIR_LLM_API_KEY: 'sk-server' },
        ['--port', '0'],
      ),
    );
    servers.push(server);
    type Decisions = { decisions: { pipelineId: string; selector: string; fallbackReason: string | null }[] };
    const decisions = async () => ((await (await fetch(`${server.url}/api/decisions`)).json()) as Decisions).decisions;
    await new Promise<void>((resolve, reject) => {
      const started = Date.now();
      const poll = setInterval(() => {
        void decisions().then((d) => {
          if (new Set(d.map((x) => x.pipelineId)).size === 2) resolve();
          else if (Date.now() - started > 10_000) reject(new Error('both pipelines did not decide within 10 s'));
          else return;
          clearInterval(poll);
        });
      }, 50);
    });
    const byPipeline = new Map((await decisions()).map((d) => [d.pipelineId, d]));
    expect(byPipeline.get('ml/with-llm')).toMatchObject({ selector: 'llm', fallbackReason: null });
    expect(byPipeline.get('ml/plain')!.selector).toBe('bandit');
    const calls = llm.requests.slice(before);
    expect(calls.length).toBeGreaterThanOrEqual(1);
    expect(calls.map((r) => r.headers.authorization)).toEqual(calls.map(() => 'Bearer sk-team'));
    expect(calls[0]!.body.model).toBe('scripted');
  });

  it('a rotated Secret, server-wide or a pipeline\'s, is sent to the LLM without a restart', async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop()));
    api.seed(secret('sair-system', 'sair-llm', 'apiKey', 'sk-server'));
    api.seed(secret('ml', 'team-llm', 'apiKey', 'sk-team'));
    const before = llm.requests.length;
    const server = await startCluster(
      loadPolicyConfig(
        {
          SAIR_KUBE_API_SERVER: api.url,
          SAIR_PROMETHEUS_URL: prom.url,
          SAIR_POD_NAMESPACE: 'sair-system',
          SAIR_LEADER_ELECTION: 'false',
          SAIR_POLICY_POLL_MS: '100',
          SAIR_LOG_LEVEL: 'silent',
          SAIR_API_AUTH: 'none',
          SAIR_POLICY_HOST: '127.0.0.1',
          SAIR_LLM_CONFIGMAP: 'server-llm',
          SAIR_LLM_SECRET: 'sair-llm',
          SAIR_LLM_ALLOWED_ENDPOINTS: llm.url,
          SAIR_LLM_KEY_REFRESH_SECONDS: '1',
        },
        ['--port', '0'],
      ),
    );
    servers.push(server);
    const sent = () => new Set(llm.requests.slice(before).map((r) => r.headers.authorization));
    // ml/plain asks the server-wide endpoint, ml/with-llm its own; both tick every 5 s.
    await eventually(() => (sent().has('Bearer sk-server') && sent().has('Bearer sk-team') ? true : undefined), 10_000, 'both keys in use');
    api.seed(secret('sair-system', 'sair-llm', 'apiKey', 'sk-server-2'));
    api.seed(secret('ml', 'team-llm', 'apiKey', 'sk-team-2'));
    await eventually(() => (sent().has('Bearer sk-server-2') && sent().has('Bearer sk-team-2') ? true : undefined), 15_000, 'both rotated keys in use');
    expect([...sent()].sort()).toEqual(['Bearer sk-server', 'Bearer sk-server-2', 'Bearer sk-team', 'Bearer sk-team-2']);
  });

  it('a pipeline endpoint never gets the server-wide key, and must be on the admin allow-list', () => {
    const server = { baseUrl: 'http://central:8000/v1', model: 'm', apiKey: 'sk-server', timeoutMs: 2_000 };
    const own = pipelineLlm(server, { baseUrl: 'http://team.ml:8000/v1', model: 'team' }, ['http://team.ml:8000/'], 'InferencePipeline ml/p');
    expect(own).toEqual({ baseUrl: 'http://team.ml:8000/v1', model: 'team', timeoutMs: 2_000 });
    expect(pipelineLlm(server, { baseUrl: 'http://team.ml:8000/v1', model: 'team', apiKey: 'sk-team' }, ['http://team.ml:8000/'], 'x').apiKey).toBe('sk-team');
    expect(() => pipelineLlm(server, { baseUrl: 'http://evil.example/v1', model: 'team' }, ['http://team.ml:8000/'], 'InferencePipeline ml/p')).toThrow(
      'InferencePipeline ml/p LLM endpoint: "http://evil.example/v1" is not a URL starting with one of SAIR_LLM_ALLOWED_ENDPOINTS (http://team.ml:8000/)',
    );
    expect(() => pipelineLlm(server, { baseUrl: 'http://team.ml:8000/v1', model: 'team' }, [], 'x')).toThrow(/SAIR_LLM_ALLOWED_ENDPOINTS lists none/);
  });

  it('takes no API key on the command line', () => {
    expect(() => loadPolicyConfig({}, ['--llm-api-key', 'sk-x'])).toThrow(/unknown flag/);
    expect(loadPolicyConfig({ SAIR_LLM_API_KEY: 'sk-x' }, []).llmApiKey).toBe('sk-x');
  });
});
