// The policy's settings: each one's validation and default is declared once (S); the zod schema
// nests them into the settings object and its type, and the config spec gives each its env
// variable, flag, accepted form and --help line for src/common/config.ts.
import { z } from 'zod';
import { fields, fromText, type ConfigOf } from '../common/config.js';
import { ValidationError } from '../common/errors.js';
import { DEFAULT_NOVELTY_THRESHOLD } from './selectors/gate.js';

/**
 * Each setting's validation and default, declared once: the settings object below and the env and
 * flag spec (policyConfigSpec, which adds the names, the accepted form and the help line) both use it.
 */
const S = {
  llmTimeoutMs: z.number().int().min(100).max(10_000).default(8_000),
  llmMaxRetries: z.number().int().min(0).max(1).default(1),
  llmMaxTokens: z.number().int().min(16).max(32_768).default(256),
  llmPricePrompt: z.number().min(0).default(0),
  llmPriceCompletion: z.number().min(0).default(0),
  llmPriceCached: z.number().min(0).optional(),
  llmBudgetPipeline: z.number().int().min(0).default(0),
  llmBudgetTotal: z.number().int().min(0).default(0),
  llmMaxConcurrent: z.number().int().min(1).max(10_000).default(16),
  llmGate: z.boolean().default(false),
  llmGateNovelty: z.number().min(0).max(20).default(DEFAULT_NOVELTY_THRESHOLD),
  epsilon: z.number().min(0).max(1).default(0.03),
  temperature: z.number().min(0).max(2).default(0.2),
  contextSampling: z.number().min(0).max(0.9).default(0.1),
  priorWeight: z.number().min(0).max(1e6).default(24),
  bufferMaxEntries: z.number().int().min(1).default(10_000),
  bufferMaxBytes: z.number().int().min(1024).default(32 * 1024 * 1024),
  learning: z.boolean().default(true),
  operatingPoint: z.boolean().default(true),
  creditHorizonWindows: z.number().int().min(1).max(40).default(6),
  retrieval: z.enum(['surprisal', 'recency', 'random']).default('surprisal'),
  promptTokenBudget: z.number().int().min(200).max(100_000).default(2_500),
  scaleUpCooldownMs: z.number().int().min(0).default(30_000),
  scaleDownCooldownMs: z.number().int().min(0).default(60_000),
  stabilizationMs: z.number().int().min(0).default(600_000),
  forecast: z.boolean().default(true),
  forecastShareLeadMs: z.number().int().min(0).max(3_600_000).default(45_000),
  forecastReplicaLeadMs: z.number().int().min(0).max(3_600_000).default(120_000),
  surge: z.boolean().default(true),
  p99Budget: z.number().min(0).max(1).default(0),
  surgeReserve: z.number().min(0).max(10).default(0),
  maxStep: z.number().int().min(1).max(100).default(4),
  dryRun: z.boolean().default(false),
  exposeNames: z.boolean().default(false),
  snapshotIntervalMs: z.number().int().min(1_000).default(60_000),
};

export const llmSettingsSchema = z.object({
  /** OpenAI-compatible base URL, e.g. http://vllm:8000/v1. */
  baseUrl: z.url(),
  model: z.string().min(1),
  apiKey: z.string().min(1).optional(),
  /** Per request; capped at 10 s so one slow call cannot stall a 30 s tick. */
  timeoutMs: S.llmTimeoutMs,
  maxRetries: S.llmMaxRetries,
  /** Cap on the answer's tokens (reasoning included): 256 holds the JSON answer; a reasoning model needs 2000 or more. */
  maxTokens: S.llmMaxTokens,
  /** Dollars per million tokens, for the cost estimate; 0 (a local server) by default. */
  prices: z
    .object({
      promptPerMTok: S.llmPricePrompt,
      completionPerMTok: S.llmPriceCompletion,
      /** Cached prompt tokens; the prompt price when unset. */
      cachedPerMTok: S.llmPriceCached,
    })
    .prefault({}),
});

export const policySettingsSchema = z.object({
  selector: z.enum(['llm', 'bandit']).default('bandit'),
  llm: llmSettingsSchema.optional(),
  /** LLM calls in flight at most, for the whole server; a decision that finds no free slot before its deadline is the bandit's. */
  llmMaxConcurrent: S.llmMaxConcurrent,
  /** Tokens (prompt + completion) the LLM may use per clock hour; then the bandit decides until the hour ends. 0: no limit. */
  llmBudget: z
    .object({
      pipelineTokensPerHour: S.llmBudgetPipeline,
      totalTokensPerHour: S.llmBudgetTotal,
    })
    .prefault({}),
  /**
   * Consult the LLM only where it can help (selectors/gate.ts): a novel state (surprisal above
   * `noveltyThreshold` nats) or a bandit whose two best candidates are within its uncertainty.
   */
  llmGate: z
    .object({
      enabled: S.llmGate,
      noveltyThreshold: S.llmGateNovelty,
    })
    .prefault({}),
  exploration: z
    .object({
      /** Probability of picking a random candidate instead of the selector's choice. */
      epsilon: S.epsilon,
      /** LLM sampling temperature; also scales the bandit's exploration bonus. */
      temperature: S.temperature,
      /** Fraction of retrieved experiences dropped at random from each prompt. */
      contextSampling: S.contextSampling,
      /** How many experiences the bandit counts a candidate's prior as: a few dozen experiences override it. */
      priorWeight: S.priorWeight,
    })
    .prefault({}),
  buffer: z
    .object({
      maxEntries: S.bufferMaxEntries,
      maxBytes: S.bufferMaxBytes,
    })
    .prefault({}),
  /**
   * Learn from experience: credit decisions, remember them, read the memory when choosing, and move
   * the operating point. Off: the priors and the floors alone decide (the ablation).
   */
  learning: S.learning,
  /**
   * With learning on, also learn how deep each GPU stage may be cut and how much surge reserve each
   * cheap stage keeps (operating-point.ts). Off keeps every stage at the safe default while the
   * memory still learns.
   */
  operatingPoint: S.operatingPoint,
  /**
   * How many observation windows after a decision its cost and SLO violations are credited to it:
   * long enough for a cold start (1-3 minutes at 30 s windows) to pay off, short enough that the
   * next decisions do not dominate.
   */
  creditHorizonWindows: S.creditHorizonWindows,
  /** Which similar experiences every selector reads first: the most surprising (default), the most recent, or a random draw. */
  retrieval: S.retrieval,
  /** Rough token budget (4 characters per token) for the variable part of a prompt. */
  promptTokenBudget: S.promptTokenBudget,
  cooldowns: z
    .object({
      /** No second scale-up of a stage within this time (emergencies excepted). */
      scaleUpMs: S.scaleUpCooldownMs,
      /** No scale-down of a stage within this time of its last change. */
      scaleDownMs: S.scaleDownCooldownMs,
      /** A scale-down never goes below the highest need seen over this window. */
      stabilizationMs: S.stabilizationMs,
    })
    .prefault({}),
  forecast: z
    .object({
      /** Look for a recurring pattern in the entry rate and meet it ahead of time (forecast.ts). */
      enabled: S.forecast,
      /** How far ahead GPU shares rise for a forecast peak: a share applies at once, so a few ticks. */
      shareLeadMs: S.forecastShareLeadMs,
      /** How far ahead replicas are added for a forecast peak: scheduling plus a cold start. */
      replicaLeadMs: S.forecastReplicaLeadMs,
    })
    .prefault({}),
  /**
   * Read a surge from the entry rate of the newest scrape interval before the window shows it, and
   * scale every stage's load by it (bottleneck.ts surgeFactor).
   */
  surge: S.surge,
  /**
   * How much of the SLO a GPU cut may take P99 to: where P99 leaves that much room, GPU shares are
   * cut past the usual 0.4 of full-batch capacity (normalize.ts gpuCutLimit). 0 keeps every cut at 0.4.
   */
  p99Budget: S.p99Budget,
  /**
   * The surge a GPU stage must be able to meet by raising shares alone, as a multiple of its load:
   * it keeps that many times its load in replicas at a whole GPU, each at a smaller share
   * (normalize.ts surgeReserveReplicas). 0 (the default) keeps none.
   */
  surgeReserve: S.surgeReserve,
  /** Largest replica change of one stage in one tick. */
  maxStep: S.maxStep,
  /** Whole-decision deadline (selector chain included), ms. */
  decisionDeadlineMs: z.number().int().min(100).max(60_000).default(12_000),
  /** Record what would be done; change nothing. */
  dryRun: S.dryRun,
  /** Put stage names in prompts (otherwise indices only). */
  exposeNames: S.exposeNames,
  snapshotIntervalMs: S.snapshotIntervalMs,
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
    schema: fromText.number(S.llmTimeoutMs),
  },
  llmMaxRetries: {
    env: 'SAIR_LLM_MAX_RETRIES',
    flag: '--llm-max-retries',
    form: '0 or 1',
    help: 'LLM retries',
    schema: fromText.number(S.llmMaxRetries),
  },
  llmMaxTokens: {
    env: 'SAIR_LLM_MAX_TOKENS',
    flag: '--llm-max-tokens',
    form: 'an integer from 16 to 32768',
    help: "cap on the LLM's answer in tokens, reasoning included (reasoning models need 2000 or more)",
    schema: fromText.number(S.llmMaxTokens),
  },
  llmPricePrompt: {
    env: 'SAIR_LLM_PRICE_PROMPT',
    flag: '--llm-price-prompt',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of prompt tokens, for the LLM cost estimate',
    schema: fromText.number(S.llmPricePrompt),
  },
  llmPriceCompletion: {
    env: 'SAIR_LLM_PRICE_COMPLETION',
    flag: '--llm-price-completion',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of completion tokens, for the LLM cost estimate',
    schema: fromText.number(S.llmPriceCompletion),
  },
  llmPriceCached: {
    env: 'SAIR_LLM_PRICE_CACHED',
    flag: '--llm-price-cached',
    form: 'a number >= 0 (dollars per million tokens)',
    help: 'price of cached prompt tokens (default: the prompt price)',
    schema: fromText.number(S.llmPriceCached),
  },
  llmBudgetPipeline: {
    env: 'SAIR_LLM_BUDGET_PIPELINE_TOKENS_PER_HOUR',
    flag: '--llm-budget-pipeline-tokens-per-hour',
    form: 'an integer >= 0 (0: no limit)',
    help: 'LLM tokens one pipeline may use per hour before the bandit decides until the hour ends',
    schema: fromText.number(S.llmBudgetPipeline),
  },
  llmBudgetTotal: {
    env: 'SAIR_LLM_BUDGET_TOKENS_PER_HOUR',
    flag: '--llm-budget-tokens-per-hour',
    form: 'an integer >= 0 (0: no limit)',
    help: 'LLM tokens all pipelines together may use per hour',
    schema: fromText.number(S.llmBudgetTotal),
  },
  llmMaxConcurrent: {
    env: 'SAIR_LLM_MAX_CONCURRENT',
    flag: '--llm-max-concurrent',
    form: 'an integer from 1 to 10000',
    help: 'LLM calls in flight at most for the whole server; a decision that waits past its deadline for a slot is left to the bandit',
    schema: fromText.number(S.llmMaxConcurrent),
  },
  llmGate: {
    env: 'SAIR_LLM_GATE',
    flag: '--llm-gate',
    form: 'true or false',
    help: "consult the LLM only in novel states or when the bandit's two best candidates are within its uncertainty",
    schema: fromText.boolean(S.llmGate),
  },
  llmGateNovelty: {
    env: 'SAIR_LLM_GATE_NOVELTY',
    flag: '--llm-gate-novelty',
    form: 'a number from 0 to 20 (nats)',
    help: 'surprisal of a state above which the gate consults the LLM',
    schema: fromText.number(S.llmGateNovelty),
  },
  epsilon: {
    env: 'SAIR_EXPLORATION_EPSILON',
    flag: '--exploration-epsilon',
    form: 'a number from 0 to 1',
    help: 'chance of a random candidate',
    schema: fromText.number(S.epsilon),
  },
  temperature: {
    env: 'SAIR_EXPLORATION_TEMPERATURE',
    flag: '--exploration-temperature',
    form: 'a number from 0 to 2',
    help: 'LLM temperature and bandit bonus scale',
    schema: fromText.number(S.temperature),
  },
  contextSampling: {
    env: 'SAIR_CONTEXT_SAMPLING',
    flag: '--context-sampling',
    form: 'a number from 0 to 0.9',
    help: 'fraction of experiences dropped at random from each prompt',
    schema: fromText.number(S.contextSampling),
  },
  priorWeight: {
    env: 'SAIR_BANDIT_PRIOR_WEIGHT',
    flag: '--bandit-prior-weight',
    form: 'a number from 0 to 1000000',
    help: 'experiences a candidate\'s prior is worth to the bandit',
    schema: fromText.number(S.priorWeight),
  },
  learning: {
    env: 'SAIR_POLICY_LEARNING',
    flag: '--learning',
    form: 'true or false',
    help: 'learn from experience (false: priors and floors alone decide)',
    schema: fromText.boolean(S.learning),
  },
  operatingPoint: {
    env: 'SAIR_OPERATING_POINT',
    flag: '--operating-point',
    form: 'true or false',
    help: 'with learning on, also learn how deep each GPU stage may be cut and how much surge reserve each CPU stage keeps (off: the safe defaults)',
    schema: fromText.boolean(S.operatingPoint),
  },
  creditHorizonWindows: {
    env: 'SAIR_CREDIT_HORIZON_WINDOWS',
    flag: '--credit-horizon-windows',
    form: 'an integer from 1 to 40',
    help: 'observation windows after a decision whose cost and SLO violations are credited to it',
    schema: fromText.number(S.creditHorizonWindows),
  },
  retrieval: {
    env: 'SAIR_POLICY_RETRIEVAL',
    flag: '--retrieval',
    form: 'surprisal, recency or random',
    help: 'which similar experiences every selector reads first',
    schema: fromText.text(S.retrieval),
  },
  bufferMaxEntries: {
    env: 'SAIR_BUFFER_MAX_ENTRIES',
    flag: '--buffer-max-entries',
    form: 'a positive integer',
    help: 'experience buffer size',
    schema: fromText.number(S.bufferMaxEntries),
  },
  bufferMaxBytes: {
    env: 'SAIR_BUFFER_MAX_BYTES',
    flag: '--buffer-max-bytes',
    form: 'an integer >= 1024',
    help: 'experience buffer memory bound',
    schema: fromText.number(S.bufferMaxBytes),
  },
  promptTokenBudget: {
    env: 'SAIR_PROMPT_TOKEN_BUDGET',
    flag: '--prompt-token-budget',
    form: 'an integer from 200 to 100000',
    help: 'tokens for experiences in a prompt',
    schema: fromText.number(S.promptTokenBudget),
  },
  scaleUpCooldownMs: {
    env: 'SAIR_SCALE_UP_COOLDOWN_MS',
    flag: '--scale-up-cooldown-ms',
    form: 'an integer >= 0',
    help: 'per-stage scale-up cooldown',
    schema: fromText.number(S.scaleUpCooldownMs),
  },
  scaleDownCooldownMs: {
    env: 'SAIR_SCALE_DOWN_COOLDOWN_MS',
    flag: '--scale-down-cooldown-ms',
    form: 'an integer >= 0',
    help: 'per-stage scale-down cooldown',
    schema: fromText.number(S.scaleDownCooldownMs),
  },
  stabilizationMs: {
    env: 'SAIR_STABILIZATION_MS',
    flag: '--stabilization-ms',
    form: 'an integer >= 0',
    help: 'scale-down stabilization window',
    schema: fromText.number(S.stabilizationMs),
  },
  forecast: { env: 'SAIR_FORECAST', flag: '--forecast', form: 'true or false', help: 'meet recurring load peaks ahead of time', schema: fromText.boolean(S.forecast) },
  surgeReserve: {
    env: 'SAIR_SURGE_RESERVE',
    flag: '--surge-reserve',
    form: 'a number from 0 to 10',
    help: 'a surge of this many times the load each GPU stage meets by raising shares alone (0: none)',
    schema: fromText.number(S.surgeReserve),
  },
  surge: {
    env: 'SAIR_SURGE',
    flag: '--surge',
    form: 'true or false',
    help: "size stages for a surge the newest scrape's entry rate shows before the window does",
    schema: fromText.boolean(S.surge),
  },
  forecastShareLeadMs: {
    env: 'SAIR_FORECAST_SHARE_LEAD_MS',
    flag: '--forecast-share-lead-ms',
    form: 'an integer from 0 to 3600000',
    help: 'how early GPU shares rise for a forecast peak',
    schema: fromText.number(S.forecastShareLeadMs),
  },
  forecastReplicaLeadMs: {
    env: 'SAIR_FORECAST_REPLICA_LEAD_MS',
    flag: '--forecast-replica-lead-ms',
    form: 'an integer from 0 to 3600000 (at least the slowest cold start)',
    help: 'how early replicas are added for a forecast peak',
    schema: fromText.number(S.forecastReplicaLeadMs),
  },
  p99Budget: {
    env: 'SAIR_P99_BUDGET',
    flag: '--p99-budget',
    form: 'a number from 0 to 1',
    help: 'share of the SLO a GPU cut may take P99 to (0: cuts stop at 0.4 of full-batch capacity)',
    schema: fromText.number(S.p99Budget),
  },
  maxStep: { env: 'SAIR_MAX_STEP', flag: '--max-step', form: 'an integer from 1 to 100', help: 'largest replica change per tick', schema: fromText.number(S.maxStep) },
  dryRun: { env: 'SAIR_DRY_RUN', flag: '--dry-run', form: 'true or false', help: 'record decisions, change nothing', schema: fromText.boolean(S.dryRun) },
  exposeNames: {
    env: 'SAIR_PROMPT_EXPOSE_NAMES',
    flag: '--prompt-expose-names',
    form: 'true or false',
    help: 'put stage names in prompts',
    schema: fromText.boolean(S.exposeNames),
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
    schema: fromText.number(S.snapshotIntervalMs),
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
    llmMaxConcurrent: cfg.llmMaxConcurrent,
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
