// The LLM selector through the real openai client against the scripted server over real HTTP:
// valid answers, and every fault ending in a fallback with an action from the candidates.
import { decide } from '../../../src/policy/decide.js';
import { detectBottleneck } from '../../../src/policy/bottleneck.js';
import { generateCandidates } from '../../../src/policy/candidates.js';
import { buildPrompt } from '../../../src/policy/prompt.js';
import { seededRandom } from '../../../src/policy/random.js';
import { createBanditSelector } from '../../../src/policy/selectors/bandit.js';
import { createLlmSelector, parseAnswer, SelectorError } from '../../../src/policy/selectors/llm.js';
import { policySettings } from '../../../src/policy/settings.js';
import { startFakeLlm, type FakeLlm, type FakeLlmFault } from '../../support/fake-llm.js';
import { observation, pipeline } from '../fixtures.js';

const spec = pipeline();
const obs = observation(
  [
    { arrival: 100, perReplica: 80, replicas: 2 },
    { arrival: 100, perReplica: 30, replicas: 3, gpuCores: 50 },
    { arrival: 100, perReplica: 100, replicas: 2 },
  ],
  { p99Ms: 480, sloViolation: 0.005 },
);
const bn = detectBottleneck(spec, obs);
const candidates = generateCandidates(spec, obs, bn, 4);
const prompt = buildPrompt({ pipeline: spec, obs, bn, candidates, stats: new Map(), rows: [], exposeNames: false });
const settings = policySettings({ exploration: { epsilon: 0 }, decisionDeadlineMs: 5_000 });

let llm: FakeLlm;
beforeEach(async () => {
  llm = await startFakeLlm();
});
afterEach(async () => {
  await llm.close();
});

function selector(maxRetries = 0, timeoutMs = 400) {
  return createLlmSelector({ baseUrl: llm.url, model: 'scripted', timeoutMs, maxRetries }, { temperature: 0.2 });
}

async function run(maxRetries = 0) {
  return decide(
    { pipeline: spec, obs, bn, candidates, stats: new Map(), prompt, now: 0 },
    { llm: selector(maxRetries), bandit: createBanditSelector({ exploration: 0.2, random: seededRandom(1) }), settings, random: seededRandom(2) },
  );
}

describe('LLM selector on the scripted OpenAI-compatible server', () => {
  it('decides with a schema-constrained request and records tokens', async () => {
    const d = await run();
    expect(d.selector).toBe('llm');
    expect(d.fallbackReason).toBeNull();
    expect(d.proposed).toBe('s1+3'); // the rule: smallest scale-up of the bottleneck to load/capacity <= 0.7
    expect(d.tokens).toEqual({ prompt: 100, completion: expect.any(Number) });
    const body = llm.requests[0]!.body;
    expect(body.model).toBe('scripted');
    expect(body.response_format?.type).toBe('json_schema');
    expect(body.response_format?.json_schema?.schema.properties.action.enum).toEqual(candidates.map((c) => c.id));
    expect(body.messages[0]).toEqual({ role: 'system', content: prompt.system });
    expect(llm.requests[0]!.headers.authorization).toBe('Bearer none');
  });

  it('parses an answer wrapped in prose and a code fence', async () => {
    llm.script('prose');
    const d = await run();
    expect(d.selector).toBe('llm');
    expect(d.proposed).toBe('s1+3');
  });

  const faults: [FakeLlmFault, RegExp][] = [
    ['timeout', /timeout/],
    ['429', /rate-limited/],
    ['500', /server-error/],
    ['malformed', /malformed/],
    ['outside-enum', /invalid-action/],
    ['truncated', /truncated/],
    ['refusal', /refusal/],
    ['empty', /empty/],
    ['no-choices', /empty/],
  ];
  it.each(faults)('falls back to the bandit on %s, with a candidate action', async (fault, why) => {
    llm.script(fault);
    const d = await run();
    expect(d.selector).toBe('bandit');
    expect(d.fallbackReason).toMatch(why);
    expect(candidates.map((c) => c.id)).toContain(d.proposed);
    for (const a of d.chosen.actions) expect(a.kind === 'hold' || (a.stage >= 0 && a.stage < spec.stages.length)).toBe(true);
  }, 10_000);

  it('retries once when configured and then succeeds', async () => {
    llm.script('429');
    const d = await run(1);
    expect(d.selector).toBe('llm');
    expect(llm.requests).toHaveLength(2);
  });

  it('holds when both the LLM and the bandit fail', async () => {
    llm.script('500');
    const failing = { name: 'bandit' as const, choose: async () => Promise.reject(new Error('stats unavailable')) };
    const d = await decide(
      { pipeline: spec, obs, bn, candidates, stats: new Map(), prompt, now: 0 },
      { llm: selector(), bandit: failing, settings, random: seededRandom(2) },
    );
    expect(d.selector).toBe('hold');
    expect(d.proposed).toBe('hold');
    // The hold is then lifted to the floors by the step (test/policy/step.test.ts).
    expect(d.chosen.actions).toEqual([]);
    expect(d.fallbackReason).toMatch(/llm: server-error.*bandit: stats unavailable/);
  });

  it('is cut off by the decision deadline even when the client would wait longer', async () => {
    llm.script('timeout');
    const d = await decide(
      { pipeline: spec, obs, bn, candidates, stats: new Map(), prompt, now: 0 },
      {
        llm: selector(0, 10_000),
        bandit: createBanditSelector({ exploration: 0.2, random: seededRandom(1) }),
        settings: { ...settings, decisionDeadlineMs: 200 },
        random: seededRandom(2),
      },
    );
    expect(d.selector).toBe('bandit');
    expect(d.fallbackReason).toMatch(/deadline|aborted/);
  });
});

describe('parseAnswer', () => {
  const ids = ['hold', 's0+1'];
  it('accepts plain JSON, JSON in prose and a bare id', () => {
    expect(parseAnswer('{"action":"s0+1","reason":"r","bottleneck":0}', ids)).toEqual({ action: 's0+1', reason: 'r', bottleneck: 0 });
    expect(parseAnswer('ok: {"action":"hold"} done', ids).action).toBe('hold');
    expect(parseAnswer(' hold ', ids).action).toBe('hold');
  });
  it('names what is wrong', () => {
    expect(() => parseAnswer('{"action": 3}', ids)).toThrow(SelectorError);
    expect(() => parseAnswer('{"action":"s7+1"}', ids)).toThrow(/not one of the candidates hold, s0\+1/);
    expect(() => parseAnswer('', ids)).toThrow(/empty/);
  });
});
