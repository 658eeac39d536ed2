// LLM API keys from Secrets, re-read while in use: the LLM selector, through the real openai
// client, sends the key of a Secret in the fake API server to the scripted LLM server; after the
// Secret is rotated, the next request past the refresh interval carries the new key. Time is the
// test's clock, not a sleep.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Writable } from 'node:stream';
import { createLogger } from '../../../src/common/logger.js';
import { createRegistry } from '../../../src/common/metrics.js';
import { LlmKeys } from '../../../src/policy-server/k8s/llm-key.js';
import { createLlmSelector } from '../../../src/policy/selectors/llm.js';
import { buildPrompt } from '../../../src/policy/prompt.js';
import { detectBottleneck } from '../../../src/policy/bottleneck.js';
import { generateCandidates } from '../../../src/policy/candidates.js';
import { startFakeApiServer, type FakeApiServer } from '../../support/fake-apiserver.js';
import { startFakeLlm, type FakeLlm } from '../../support/fake-llm.js';
import { observation, pipeline } from '../../policy/fixtures.js';

const spec = pipeline();
const obs = observation([{ arrival: 100, perReplica: 80, replicas: 2 }, { arrival: 100, perReplica: 30, replicas: 3 }, { arrival: 100, perReplica: 100, replicas: 2 }], { p99Ms: 480, sloViolation: 0.005 });
const bn = detectBottleneck(spec, obs);
const candidates = generateCandidates(spec, obs, bn, 4);
const prompt = buildPrompt({ pipeline: spec, obs, bn, candidates, stats: new Map(), rows: [], exposeNames: false });

const secret = (value: string) => ({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'sair-llm', namespace: 'sair-system' }, type: 'Opaque', data: { apiKey: Buffer.from(value).toString('base64') } });
const ref = { namespace: 'sair-system', name: 'sair-llm', key: 'apiKey' };

describe('LLM API keys from Secrets', () => {
  let api: FakeApiServer;
  let llm: FakeLlm;
  let now: number;
  let logs: string[];
  let keys: LlmKeys;
  const registry = createRegistry('policy', { defaultMetrics: false });

  beforeAll(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
    llm = await startFakeLlm();
  });
  afterAll(async () => {
    await llm.close();
    await api.close();
  });
  beforeEach(() => {
    now = 1_000_000;
    logs = [];
    registry.clear();
    api.seed(secret('sk-one'));
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        logs.push(chunk.toString());
        done();
      },
    });
    keys = new LlmKeys({ core: api.clients('sair-system').core, logger: createLogger('test', 'info', sink), registry, refreshMs: 30_000, now: () => now });
  });

  const ask = async (apiKey: () => Promise<string>) => {
    const sel = createLlmSelector({ baseUrl: llm.url, model: 'scripted', timeoutMs: 2_000, maxRetries: 0 }, { temperature: 0.2, apiKey });
    await sel.choose({ pipelineId: 'ml/chat', candidates, stats: new Map(), bottleneck: bn.stage, prompt, signal: new AbortController().signal });
    return llm.requests.at(-1)!.headers.authorization;
  };
  const secretReads = () => api.requests.filter((r) => r.resource === 'secrets');
  const changes = async () => (await registry.getSingleMetric('sair_policy_llm_key_changes_total')!.get()).values.map((v) => [v.labels.secret, v.value]);

  it('sends the rotated key from the first request after the refresh interval, and logs the change without the key', async () => {
    const apiKey = keys.source(ref);
    expect(await ask(apiKey)).toBe('Bearer sk-one');
    api.seed(secret('sk-two'));
    now += 29_000;
    expect(await ask(apiKey)).toBe('Bearer sk-one');
    now += 1_000;
    expect(await ask(apiKey)).toBe('Bearer sk-two');
    expect(await changes()).toEqual([['sair-system/sair-llm', 1]]);
    const changed = logs.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'LLM API key changed in its Secret; the next request uses the new one');
    expect(changed).toEqual([expect.objectContaining({ secret: 'sair-system/sair-llm', key: 'apiKey' })]);
    expect(logs.join('')).not.toMatch(/sk-one|sk-two/);
  });

  it('reads only the Secret it is given, by name, once per interval however many requests', async () => {
    const before = secretReads().length;
    const apiKey = keys.source(ref, 'sk-one');
    await Promise.all([apiKey(), apiKey(), ask(apiKey)]);
    expect(secretReads().length - before).toBe(0);
    now += 30_000;
    await Promise.all([apiKey(), apiKey(), apiKey()]);
    const reads = secretReads().slice(before);
    expect(reads.map((r) => [r.verb, r.namespace, r.name])).toEqual([['get', 'sair-system', 'sair-llm']]);
  });

  it('keeps the key it has while the API server fails, and stops when the Secret or its key is gone', async () => {
    const apiKey = keys.source(ref, 'sk-one');
    now += 30_000;
    api.injectFault({ verb: 'get', resource: 'secrets', status: 503, times: 1 });
    expect(await apiKey()).toBe('sk-one');
    expect(logs.join('')).toMatch(/LLM API key not re-read; using the one read before/);
    api.remove('secrets', 'sair-system', 'sair-llm');
    now += 30_000;
    await expect(apiKey()).rejects.toThrow('Secret sair-system/sair-llm: missing; expected an existing Secret with key apiKey');
    const sel = createLlmSelector({ baseUrl: llm.url, model: 'scripted', timeoutMs: 2_000, maxRetries: 0 }, { temperature: 0.2, apiKey });
    const asked = llm.requests.length;
    await expect(sel.choose({ pipelineId: 'ml/chat', candidates, stats: new Map(), bottleneck: bn.stage, prompt, signal: new AbortController().signal })).rejects.toThrow(
      /no LLM API key: Secret sair-system\/sair-llm: missing/,
    );
    expect(llm.requests.length).toBe(asked);
  });
});
