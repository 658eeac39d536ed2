import { ConfigError, ValidationError } from '../../src/common/errors.js';
import { helpText, loadConfig } from '../../src/common/config.js';
import { policyConfigSpec, policySettings, settingsFromConfig } from '../../src/policy/settings.js';

describe('policy settings', () => {
  it('declares each setting once: the defaults from env and flags are the settings object\'s defaults', () => {
    expect(settingsFromConfig(loadConfig(policyConfigSpec, {}, []))).toEqual(policySettings());
    // Text from env and flags reaches the same validation as a programmatic value.
    expect(settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_CREDIT_HORIZON_WINDOWS: '12', SAIR_POLICY_LEARNING: 'no' }, ['--max-step', '2']))).toMatchObject({ creditHorizonWindows: 12, learning: false, maxStep: 2 });
    expect(() => loadConfig(policyConfigSpec, { SAIR_CREDIT_HORIZON_WINDOWS: '41' }, [])).toThrow(/SAIR_CREDIT_HORIZON_WINDOWS \(flag --credit-horizon-windows\): "41" is not an integer from 1 to 40/);
    expect(() => loadConfig(policyConfigSpec, { SAIR_POLICY_LEARNING: 'maybe' }, [])).toThrow(/SAIR_POLICY_LEARNING \(flag --learning\): "maybe" is not true or false/);
  });

  it('has sane defaults: the bandit, bounded buffer, short LLM timeout', () => {
    const s = settingsFromConfig(loadConfig(policyConfigSpec, {}, []));
    expect(s).toMatchObject({ selector: 'bandit', llm: undefined, dryRun: false, exposeNames: false, buffer: { maxEntries: 10_000 } });
    expect(s).toEqual(policySettings());
  });

  it('turns the LLM on when an endpoint and a model are set', () => {
    const s = settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_LLM_BASE_URL: 'http://vllm:8000/v1', SAIR_LLM_MODEL: 'qwen' }, ['--llm-timeout-ms', '3000']));
    expect(s.selector).toBe('llm');
    expect(s.llm).toEqual({
      baseUrl: 'http://vllm:8000/v1',
      model: 'qwen',
      apiKey: undefined,
      timeoutMs: 3000,
      maxRetries: 1,
      maxTokens: 256,
      prices: { promptPerMTok: 0, completionPerMTok: 0, cachedPerMTok: undefined },
    });
    expect(s.llmBudget).toEqual({ pipelineTokensPerHour: 0, totalTokensPerHour: 0 });
    expect(s.llmGate).toEqual({ enabled: false, noveltyThreshold: Math.log(20) });
  });

  it('reads the LLM cost, budget and gate settings', () => {
    const env = { SAIR_LLM_BASE_URL: 'https://api.openai.com/v1', SAIR_LLM_MODEL: 'o4-mini', SAIR_LLM_PRICE_PROMPT: '1.1', SAIR_LLM_BUDGET_TOKENS_PER_HOUR: '500000' };
    const argv = ['--llm-price-completion', '4.4', '--llm-price-cached', '0.275', '--llm-max-tokens', '4000', '--llm-budget-pipeline-tokens-per-hour', '100000', '--llm-gate', '--llm-gate-novelty', '4'];
    const s = settingsFromConfig(loadConfig(policyConfigSpec, env, argv));
    expect(s.llm).toMatchObject({ maxTokens: 4000, prices: { promptPerMTok: 1.1, completionPerMTok: 4.4, cachedPerMTok: 0.275 } });
    expect(s.llmBudget).toEqual({ pipelineTokensPerHour: 100_000, totalTokensPerHour: 500_000 });
    expect(s.llmGate).toEqual({ enabled: true, noveltyThreshold: 4 });
  });

  it('rejects values outside their limits, naming the variable and the accepted form', () => {
    expect(() => loadConfig(policyConfigSpec, { SAIR_LLM_TIMEOUT_MS: '30000', SAIR_LLM_MAX_RETRIES: '3' }, [])).toThrow(ConfigError);
    try {
      loadConfig(policyConfigSpec, { SAIR_LLM_TIMEOUT_MS: '30000' }, []);
    } catch (err) {
      expect((err as Error).message).toMatch(/SAIR_LLM_TIMEOUT_MS \(flag --llm-timeout-ms\): "30000" is not an integer from 100 to 10000/);
    }
    expect(() => settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_LLM_BASE_URL: 'http://x/v1' }, []))).toThrow(/both set/);
    expect(() => settingsFromConfig(loadConfig(policyConfigSpec, {}, ['--selector', 'llm']))).toThrow(ValidationError);
    expect(() => policySettings({ llm: { baseUrl: 'http://x', model: 'm', timeoutMs: 20_000 } })).toThrow(/policy settings llm\.timeoutMs/);
  });

  it('forecasts recurring load by default, with lead times that can be set or turned off', () => {
    expect(policySettings().forecast).toEqual({ enabled: true, shareLeadMs: 45_000, replicaLeadMs: 120_000 });
    const s = settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_FORECAST: 'false', SAIR_FORECAST_REPLICA_LEAD_MS: '180000' }, ['--forecast-share-lead-ms', '30000']));
    expect(s.forecast).toEqual({ enabled: false, shareLeadMs: 30_000, replicaLeadMs: 180_000 });
    expect(() => loadConfig(policyConfigSpec, { SAIR_FORECAST_REPLICA_LEAD_MS: '-5' }, [])).toThrow(/SAIR_FORECAST_REPLICA_LEAD_MS \(flag --forecast-replica-lead-ms\): "-5" is not an integer from 0 to 3600000/);
  });

  it('takes the bandit prior weight from the environment', () => {
    expect(policySettings().exploration.priorWeight).toBe(24);
    expect(settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_BANDIT_PRIOR_WEIGHT: '1000000' }, [])).exploration.priorWeight).toBe(1e6);
    expect(() => loadConfig(policyConfigSpec, { SAIR_BANDIT_PRIOR_WEIGHT: '-1' }, [])).toThrow(/SAIR_BANDIT_PRIOR_WEIGHT \(flag --bandit-prior-weight\): "-1" is not a number from 0 to 1000000/);
  });

  it('spends no P99 budget unless told to, and takes one from 0 to 1', () => {
    expect(policySettings().p99Budget).toBe(0);
    expect(settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_P99_BUDGET: '0.5' }, [])).p99Budget).toBe(0.5);
    expect(() => loadConfig(policyConfigSpec, { SAIR_P99_BUDGET: '1.5' }, [])).toThrow(/SAIR_P99_BUDGET \(flag --p99-budget\): "1.5" is not a number from 0 to 1/);
  });

  it('keeps no surge reserve unless told to, and takes one from 0 to 10', () => {
    expect(policySettings().surgeReserve).toBe(0);
    expect(settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_SURGE_RESERVE: '4' }, [])).surgeReserve).toBe(4);
    expect(() => loadConfig(policyConfigSpec, { SAIR_SURGE_RESERVE: '11' }, [])).toThrow(/SAIR_SURGE_RESERVE \(flag --surge-reserve\): "11" is not a number from 0 to 10/);
  });

  it('reads surges unless told not to', () => {
    expect(policySettings().surge).toBe(true);
    expect(settingsFromConfig(loadConfig(policyConfigSpec, { SAIR_SURGE: 'false' }, [])).surge).toBe(false);
    expect(() => loadConfig(policyConfigSpec, { SAIR_SURGE: 'maybe' }, [])).toThrow(/SAIR_SURGE \(flag --surge\): "maybe" is not true or false/);
  });

  it('documents every flag', () => {
    expect(helpText('policy', 'the ICRL policy', policyConfigSpec)).toMatch(/--llm-base-url\s+SAIR_LLM_BASE_URL/);
  });
});
