// The policy's settings: one zod schema gives the defaults, the validation and the type, and a
// config spec maps each field to an env variable and a flag for src/common/config.ts.
import { z } from 'zod';
import { fields, type ConfigOf } from '../common/config.js';
import { ValidationError } from '../common/errors.js';
import { DEFAULT_NOVELTY_THRESHOLD } from './selectors/gate.js';

export const llmSettingsSchema = z.object({
  /** OpenAI-compatible base URL, e.g. http://vllm:8000/v1. */
  baseUrl: z.url(),
  model: z.string().min(1),
  apiKey: z.string().min(1).optional(),
  /** Per request; capped at 10 s so one slow call cannot stall a 30 s tick. */
  timeoutMs: z.number().int().min(100).max(10_000).default(8_000),
  maxRetries: z.number().int().min(0).max(1).default(1),
  /** Cap on the answer's tokens (reasoning included): 256 holds the JSON answer; a reasoning model needs 2000 or more. */
  maxTokens: z.number().int().min(16).max(32_768).default(256),
  /** Dollars per million tokens, for the cost estimate; 0 (a local server) by default. */
  prices: z
    .object({
      promptPerMTok: z.number().min(0).default(0),
      completionPerMTok: z.number().min(0).default(0),
      /** Cached prompt tokens; the prompt price when unset. */
      cachedPerMTok: z.number().min(0).optional(),
    })
    .prefault({}),
});

export const policySettingsSchema = z.object({
  selector: z.enum(['llm', 'bandit']).default('bandit'),
  llm: llmSettingsSchema.optional(),
  /** Tokens (prompt + completion) the LLM may use per clock hour; then the bandit decides until the hour ends. 0: no limit. */
  llmBudget: z
    .object({
      pipelineTokensPerHour: z.number().int().min(0).default(0),
      totalTokensPerHour: z.number().int().min(0).default(0),
    })
    .prefault({}),
  /**
   * Consult the LLM only where it can help (selectors/gate.ts): a novel state (surprisal above
   * `noveltyThreshold` nats) or a bandit whose two best candidates are within its uncertainty.
   */
  llmGate: z
    .object({
      enabled: z.boolean().default(false),
      noveltyThreshold: z.number().min(0).max(20).default(DEFAULT_NOVELTY_THRESHOLD),
    })
    .prefault({}),
  exploration: z
    .object({
      /** Probability of picking a random candidate instead of the selector's choice. */
      epsilon: z.number().min(0).max(1).default(0.03),
      /** LLM sampling temperature; also scales the bandit's exploration bonus. */
      temperature: z.number().min(0).max(2).default(0.2),
      /** Fraction of retrieved experiences dropped at random from each prompt. */
      contextSampling: z.number().min(0).max(0.9).default(0.1),
      /** How many experiences the bandit counts a candidate's prior as: a few dozen experiences override it. */
      priorWeight: z.number().min(0).max(1e6).default(24),
    })
    .prefault({}),
  buffer: z
    .object({
      maxEntries: z.number().int().min(1).default(10_000),
      maxBytes: z.number().int().min(1024).default(32 * 1024 * 1024),
    })
    .prefault({}),
  /**
   * Learn from experience: credit decisions, remember them, read the memory when choosing, and move
   * the operating point. Off: the priors and the floors alone decide (the ablation).
   */
  learning: z.boolean().default(true),
  /**
   * Also learn the operating point (how hot stages run, how deep GPU cuts go) per pipeline. Off by
   * default: on the tuning seeds it cost more than it saved (docs/experiments.md).
   */
  operatingPoint: z.boolean().default(false),
  /**
   * How many observation windows after a decision its cost and SLO violations are credited to it:
   * long enough for a cold start (1-3 minutes at 30 s windows) to pay off, short enough that the
   * next decisions do not dominate.
   */
  creditHorizonWindows: z.number().int().min(1).max(40).default(6),
  /** Which similar experiences every selector reads first: the most surprising (default), the most recent, or a random draw. */
  retrieval: z.enum(['surprisal', 'recency', 'random']).default('surprisal'),
  /** Rough token budget (4 characters per token) for the variable part of a prompt. */
  promptTokenBudget: z.number().int().min(200).max(100_000).default(2_500),
  cooldowns: z
    .object({
      /** No second scale-up of a stage within this time (emergencies excepted). */
      scaleUpMs: z.number().int().min(0).default(30_000),
      /** No scale-down of a stage within this time of its last change. */
      scaleDownMs: z.number().int().min(0).default(60_000),
      /** A scale-down never goes below the highest need seen over this window. */
      stabilizationMs: z.number().int().min(0).default(600_000),
    })
    .prefault({}),
  forecast: z
    .object({
      /** Look for a recurring pattern in the entry rate and meet it ahead of time (forecast.ts). */
      enabled: z.boolean().default(true),
      /** How far ahead GPU shares rise for a forecast peak: a share applies at once, so a few ticks. */
      shareLeadMs: z.number().int().min(0).max(3_600_000).default(45_000),
      /** How far ahead replicas are added for a forecast peak: scheduling plus a cold start. */
      replicaLeadMs: z.number().int().min(0).max(3_600_000).default(120_000),
    })
    .prefault({}),
  /**
   * Read a surge from the entry rate of the newest scrape interval before the window shows it, and
   * scale every stage's load by it (bottleneck.ts surgeFactor).
   */
  surge: z.boolean().default(true),
  /**
   * How much of the SLO a GPU cut may take P99 to: where P99 leaves that much room, GPU shares are
   * cut past the usual 0.4 of full-batch capacity (normalize.ts gpuCutLimit). 0 keeps every cut at 0.4.
   */
  p99Budget: z.number().min(0).max(1).default(0),
  /**
   * The surge a GPU stage must be able to meet by raising shares alone, as a multiple of its load:
   * it keeps that many times its load in replicas at a whole GPU, each at a smaller share
   * (normalize.ts surgeReserveReplicas). 0 (the default) keeps none.
   */
  surgeReserve: z.number().min(0).max(10).default(0),
  /** Largest replica change of one stage in one tick. */
  maxStep: z.number().int().min(1).max(100).default(4),
  /** Whole-decision deadline (selector chain included), ms. */
  decisionDeadlineMs: z.number().int().min(100).max(60_000).default(12_000),
  /** Record what would be done; change nothing. */
  dryRun: z.boolean().default(false),
  /** Put stage names in prompts (otherwise indices only). */
  exposeNames: z.boolean().default(false),
  snapshotIntervalMs: z.number().int().min(1_000).default(60_000),
  /** JSON-lines decision log file; none when unset. */
  decisionLogPath: z.string().min(1).optional(),
});

export type PolicySettings = z.output<typeof policySettingsSchema>;
export type PolicySettingsInput = z.input<typeof policySettingsSchema>;
export type LlmSettings = z.output<typeof llmSettingsSchema>;
export type LlmSettingsInput = z.input<typeof llmSettingsSchema>;

/** Settings from a partial object; throws a ValidationError naming the first bad field. */
export function policySettings(input: PolicySettingsInput = {}): PolicySettings {
  const result = policySettingsSchema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  throw new ValidationError(`policy settings ${issue.path.join('.') || '(root)'}`, issue.message);
}

/** Env variables and flags for `sair policy` and `sair start`; see settingsFromConfig. */
export const policyConfigSpec = {
  selector: {
    env: 'SAIR_POLICY_SELECTOR',
    flag: '--selector',
    form: 'llm or bandit',
    help: 'who picks the action (llm needs SAIR_LLM_BASE_URL and SAIR_LLM_MODEL; defaults to llm when they are set)',
    schema: z.enum(['llm', 'bandit']).optional(),
  },
  llmBaseUrl: {
    env: 'SAIR_LLM_BASE_URL',
    flag: '--llm-base-url',
    form: 'an http(s) URL of an OpenAI-compatible API, e.g. http://vllm:8000/v1',
    help: 'LLM endpoint',
    schema: z.url().optional(),
  },
  llmModel: { env: 'SAIR_LLM_MODEL', flag: '--llm-model', form: 'a model name', help: 'LLM model', schema: fields.optionalString() },
  llmApiKey: { env: 'SAIR_LLM_API_KEY', flag: '--llm-api-key', form: 'an API key', help: 'LLM API key (optional)', schema: fields.optionalString() },
  llmTimeoutMs: {
    env: 'SAIR_LLM_TIMEOUT_MS',
    flag: '--llm-timeout-ms',
    form: 'an integer from 100 to 10000',
    help: 'LLM request timeout',
    schema: z.coerce.number().int().min(100).max(10_000).default(8_000),
  },
  llmMaxRetries: {
    env: 'SAIR_LLM_MAX_RETRIES',
    flag: '--llm-max-retries',
    form: '0 or 1',
    help: 'LLM retries',
    schema: z.coerce.number().int().min(0).max(1).default(1),
  },
  llmMaxTokens: {
    env: 'SAIR_LLM_MAX_TOKENS',
    flag: '--llm-max-tokens',
    form: 'an integer from 16 to 32768',
    help: "cap on the LLM's answer in tokens, reasoning included (reasoning models need 2000 or more)",
    schema: z.coerce.number().int().min(16).max(32_768).default(256),
  },
  llmPricePrompt: {
    env: 'SAIR_LLM_PRICE_PROMPT',
    flag: '--llm-price-prompt',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of prompt tokens, for the LLM cost estimate',
    schema: z.coerce.number().min(0).default(0),
  },
  llmPriceCompletion: {
    env: 'SAIR_LLM_PRICE_COMPLETION',
    flag: '--llm-price-completion',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of completion tokens, for the LLM cost estimate',
    schema: z.coerce.number().min(0).default(0),
  },
  llmPriceCached: {
    env: 'SAIR_LLM_PRICE_CACHED',
    flag: '--llm-price-cached',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of cached prompt tokens (default: the prompt price)',
    schema: z.coerce.number().min(0).optional(),
  },
  llmBudgetPipeline: {
    env: 'SAIR_LLM_BUDGET_PIPELINE_TOKENS_PER_HOUR',
    flag: '--llm-budget-pipeline-tokens-per-hour',
    form: 'an integer >= 0 (0: no limit)',
    help: 'LLM tokens one pipeline may use per hour before the bandit decides until the hour ends',
    schema: z.coerce.number().int().min(0).default(0),
  },
  llmBudgetTotal: {
    env: 'SAIR_LLM_BUDGET_TOKENS_PER_HOUR',
    flag: '--llm-budget-tokens-per-hour',
    form: 'an integer >= 0 (0: no limit)',
    help: 'LLM tokens all pipelines together may use per hour',
    schema: z.coerce.number().int().min(0).default(0),
  },
  llmGate: {
    env: 'SAIR_LLM_GATE',
    flag: '--llm-gate',
    form: 'true or false',
    help: "consult the LLM only in novel states or when the bandit's two best candidates are within its uncertainty",
    schema: fields.boolean(false),
  },
  llmGateNovelty: {
    env: 'SAIR_LLM_GATE_NOVELTY',
    flag: '--llm-gate-novelty',
    form: 'a number from 0 to 20 (nats)',
    help: 'surprisal of a state above which the gate consults the LLM',
    schema: z.coerce.number().min(0).max(20).default(DEFAULT_NOVELTY_THRESHOLD),
  },
  epsilon: {
    env: 'SAIR_EXPLORATION_EPSILON',
    flag: '--exploration-epsilon',
    form: 'a number from 0 to 1',
    help: 'chance of a random candidate',
    schema: z.coerce.number().min(0).max(1).default(0.03),
  },
  temperature: {
    env: 'SAIR_EXPLORATION_TEMPERATURE',
    flag: '--exploration-temperature',
    form: 'a number from 0 to 2',
    help: 'LLM temperature and bandit bonus scale',
    schema: z.coerce.number().min(0).max(2).default(0.2),
  },
  contextSampling: {
    env: 'SAIR_CONTEXT_SAMPLING',
    flag: '--context-sampling',
    form: 'a number from 0 to 0.9',
    help: 'fraction of experiences dropped at random from each prompt',
    schema: z.coerce.number().min(0).max(0.9).default(0.1),
  },
  priorWeight: {
    env: 'SAIR_BANDIT_PRIOR_WEIGHT',
    flag: '--bandit-prior-weight',
    form: 'a number from 0 to 1000000',
    help: 'experiences a candidate\'s prior is worth to the bandit',
    schema: z.coerce.number().min(0).max(1e6).default(24),
  },
  learning: {
    env: 'SAIR_POLICY_LEARNING',
    flag: '--learning',
    form: 'true or false',
    help: 'learn from experience (false: priors and floors alone decide)',
    schema: fields.boolean(true),
  },
  operatingPoint: {
    env: 'SAIR_OPERATING_POINT',
    flag: '--operating-point',
    form: 'true or false',
    help: 'also learn how hot stages run and how deep GPU cuts go, per pipeline (experimental)',
    schema: fields.boolean(false),
  },
  creditHorizonWindows: {
    env: 'SAIR_CREDIT_HORIZON_WINDOWS',
    flag: '--credit-horizon-windows',
    form: 'an integer from 1 to 40',
    help: 'observation windows after a decision whose cost and SLO violations are credited to it',
    schema: z.coerce.number().int().min(1).max(40).default(6),
  },
  retrieval: {
    env: 'SAIR_POLICY_RETRIEVAL',
    flag: '--retrieval',
    form: 'surprisal, recency or random',
    help: 'which similar experiences every selector reads first',
    schema: z.enum(['surprisal', 'recency', 'random']).default('surprisal'),
  },
  bufferMaxEntries: {
    env: 'SAIR_BUFFER_MAX_ENTRIES',
    flag: '--buffer-max-entries',
    form: 'a positive integer',
    help: 'experience buffer size',
    schema: fields.positiveInt(10_000),
  },
  bufferMaxBytes: {
    env: 'SAIR_BUFFER_MAX_BYTES',
    flag: '--buffer-max-bytes',
    form: 'an integer >= 1024',
    help: 'experience buffer memory bound',
    schema: z.coerce.number().int().min(1024).default(32 * 1024 * 1024),
  },
  promptTokenBudget: {
    env: 'SAIR_PROMPT_TOKEN_BUDGET',
    flag: '--prompt-token-budget',
    form: 'an integer from 200 to 100000',
    help: 'tokens for experiences in a prompt',
    schema: z.coerce.number().int().min(200).max(100_000).default(2_500),
  },
  scaleUpCooldownMs: {
    env: 'SAIR_SCALE_UP_COOLDOWN_MS',
    flag: '--scale-up-cooldown-ms',
    form: 'an integer >= 0',
    help: 'per-stage scale-up cooldown',
    schema: z.coerce.number().int().min(0).default(30_000),
  },
  scaleDownCooldownMs: {
    env: 'SAIR_SCALE_DOWN_COOLDOWN_MS',
    flag: '--scale-down-cooldown-ms',
    form: 'an integer >= 0',
    help: 'per-stage scale-down cooldown',
    schema: z.coerce.number().int().min(0).default(60_000),
  },
  stabilizationMs: {
    env: 'SAIR_STABILIZATION_MS',
    flag: '--stabilization-ms',
    form: 'an integer >= 0',
    help: 'scale-down stabilization window',
    schema: z.coerce.number().int().min(0).default(600_000),
  },
  forecast: { env: 'SAIR_FORECAST', flag: '--forecast', form: 'true or false', help: 'meet recurring load peaks ahead of time', schema: fields.boolean(true) },
  surgeReserve: {
    env: 'SAIR_SURGE_RESERVE',
    flag: '--surge-reserve',
    form: 'a number from 0 to 10',
    help: 'a surge of this many times the load each GPU stage meets by raising shares alone (0: none)',
    schema: z.coerce.number().min(0).max(10).default(0),
  },
  surge: {
    env: 'SAIR_SURGE',
    flag: '--surge',
    form: 'true or false',
    help: "size stages for a surge the newest scrape's entry rate shows before the window does",
    schema: fields.boolean(true),
  },
  forecastShareLeadMs: {
    env: 'SAIR_FORECAST_SHARE_LEAD_MS',
    flag: '--forecast-share-lead-ms',
    form: 'an integer from 0 to 3600000',
    help: 'how early GPU shares rise for a forecast peak',
    schema: z.coerce.number().int().min(0).max(3_600_000).default(45_000),
  },
  forecastReplicaLeadMs: {
    env: 'SAIR_FORECAST_REPLICA_LEAD_MS',
    flag: '--forecast-replica-lead-ms',
    form: 'an integer from 0 to 3600000 (at least the slowest cold start)',
    help: 'how early replicas are added for a forecast peak',
    schema: z.coerce.number().int().min(0).max(3_600_000).default(120_000),
  },
  p99Budget: {
    env: 'SAIR_P99_BUDGET',
    flag: '--p99-budget',
    form: 'a number from 0 to 1',
    help: 'share of the SLO a GPU cut may take P99 to (0: cuts stop at 0.4 of full-batch capacity)',
    schema: z.coerce.number().min(0).max(1).default(0),
  },
  maxStep: { env: 'SAIR_MAX_STEP', flag: '--max-step', form: 'an integer from 1 to 100', help: 'largest replica change per tick', schema: z.coerce.number().int().min(1).max(100).default(4) },
  dryRun: { env: 'SAIR_DRY_RUN', flag: '--dry-run', form: 'true or false', help: 'record decisions, change nothing', schema: fields.boolean(false) },
  exposeNames: {
    env: 'SAIR_PROMPT_EXPOSE_NAMES',
    flag: '--prompt-expose-names',
    form: 'true or false',
    help: 'put stage names in prompts',
    schema: fields.boolean(false),
  },
  snapshotPath: {
    env: 'SAIR_SNAPSHOT_PATH',
    flag: '--snapshot-path',
    form: 'a file path',
    help: 'experience snapshot file (restored on start)',
    schema: fields.optionalString(),
  },
  snapshotIntervalMs: {
    env: 'SAIR_SNAPSHOT_INTERVAL_MS',
    flag: '--snapshot-interval-ms',
    form: 'an integer >= 1000',
    help: 'how often to write the snapshot',
    schema: z.coerce.number().int().min(1_000).default(60_000),
  },
  decisionLogPath: {
    env: 'SAIR_DECISION_LOG',
    flag: '--decision-log',
    form: 'a file path',
    help: 'JSON-lines decision log',
    schema: fields.optionalString(),
  },
};

export type PolicyConfig = ConfigOf<typeof policyConfigSpec>;

/** PolicySettings from a loaded policyConfigSpec; an LLM endpoint without a model (or the reverse) is an error. */
export function settingsFromConfig(cfg: PolicyConfig): PolicySettings {
  if ((cfg.llmBaseUrl === undefined) !== (cfg.llmModel === undefined)) {
    throw new ValidationError('SAIR_LLM_BASE_URL / SAIR_LLM_MODEL', 'both set (an LLM endpoint) or both unset (the bandit decides)');
  }
  if (cfg.selector === 'llm' && cfg.llmBaseUrl === undefined) {
    throw new ValidationError('SAIR_POLICY_SELECTOR (flag --selector)', 'bandit unless SAIR_LLM_BASE_URL and SAIR_LLM_MODEL are set', 'llm');
  }
  const llm =
    cfg.llmBaseUrl !== undefined && cfg.llmModel !== undefined
      ? {
          baseUrl: cfg.llmBaseUrl,
          model: cfg.llmModel,
          apiKey: cfg.llmApiKey,
          timeoutMs: cfg.llmTimeoutMs,
          maxRetries: cfg.llmMaxRetries,
          maxTokens: cfg.llmMaxTokens,
          prices: { promptPerMTok: cfg.llmPricePrompt, completionPerMTok: cfg.llmPriceCompletion, cachedPerMTok: cfg.llmPriceCached },
        }
      : undefined;
  return policySettings({
    selector: cfg.selector ?? (llm ? 'llm' : 'bandit'),
    llm,
    llmBudget: { pipelineTokensPerHour: cfg.llmBudgetPipeline, totalTokensPerHour: cfg.llmBudgetTotal },
    llmGate: { enabled: cfg.llmGate, noveltyThreshold: cfg.llmGateNovelty },
    exploration: { epsilon: cfg.epsilon, temperature: cfg.temperature, contextSampling: cfg.contextSampling, priorWeight: cfg.priorWeight },
    buffer: { maxEntries: cfg.bufferMaxEntries, maxBytes: cfg.bufferMaxBytes },
    learning: cfg.learning,
    operatingPoint: cfg.operatingPoint,
    creditHorizonWindows: cfg.creditHorizonWindows,
    retrieval: cfg.retrieval,
    promptTokenBudget: cfg.promptTokenBudget,
    cooldowns: { scaleUpMs: cfg.scaleUpCooldownMs, scaleDownMs: cfg.scaleDownCooldownMs, stabilizationMs: cfg.stabilizationMs },
    forecast: { enabled: cfg.forecast, shareLeadMs: cfg.forecastShareLeadMs, replicaLeadMs: cfg.forecastReplicaLeadMs },
    surge: cfg.surge,
    surgeReserve: cfg.surgeReserve,
    p99Budget: cfg.p99Budget,
    maxStep: cfg.maxStep,
    dryRun: cfg.dryRun,
    exposeNames: cfg.exposeNames,
    snapshotIntervalMs: cfg.snapshotIntervalMs,
    decisionLogPath: cfg.decisionLogPath,
  });
}
