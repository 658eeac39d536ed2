// What the LLM costs and how much it may spend. Pure: the ledger is a value the caller keeps, and
// time comes in as an argument. A budget counts prompt plus completion tokens per clock hour, per
// pipeline and for the whole server; once either is spent, the bandit decides until the hour ends.
import type { TokenUsage } from './errors.js';

const HOUR_MS = 3_600_000;

export interface BudgetLimits {
  /** Tokens per hour one pipeline's decisions may use; 0: no limit. */
  pipelineTokensPerHour: number;
  /** Tokens per hour all pipelines together may use; 0: no limit. */
  totalTokensPerHour: number;
}

/** Dollars per million tokens; cached prompt tokens at `cachedPerMTok` when given, else at the prompt price. */
export interface LlmPrices {
  promptPerMTok: number;
  completionPerMTok: number;
  cachedPerMTok?: number;
}

export interface BudgetLedger {
  /** Start of the hour the counts belong to, ms. */
  hourStart: number;
  total: number;
  perPipeline: Map<string, number>;
}

export function newLedger(now = 0): BudgetLedger {
  return { hourStart: hourOf(now), total: 0, perPipeline: new Map() };
}

export const hourOf = (now: number) => Math.floor(now / HOUR_MS) * HOUR_MS;

/** Tokens a budget counts for one call: the whole prompt (cached or not) and the completion. */
export const budgetTokens = (u: TokenUsage) => u.prompt + u.completion;

/** Starts a new hour when `now` has left the ledger's. Mutates the ledger. */
function roll(ledger: BudgetLedger, now: number): void {
  const hour = hourOf(now);
  if (hour === ledger.hourStart) return;
  ledger.hourStart = hour;
  ledger.total = 0;
  ledger.perPipeline.clear();
}

/** Adds one call's tokens to the hour of `now`. Mutates the ledger. */
export function charge(ledger: BudgetLedger, pipelineId: string, usage: TokenUsage, now: number): void {
  roll(ledger, now);
  const n = budgetTokens(usage);
  ledger.total += n;
  ledger.perPipeline.set(pipelineId, (ledger.perPipeline.get(pipelineId) ?? 0) + n);
}

export type BudgetVerdict = { ok: true } | { ok: false; why: string; until: number };

/** Whether the pipeline may consult the LLM at `now`; when not, why and until when. */
export function checkBudget(ledger: BudgetLedger, pipelineId: string, limits: BudgetLimits, now: number): BudgetVerdict {
  roll(ledger, now);
  const until = ledger.hourStart + HOUR_MS;
  const at = new Date(until).toISOString().slice(11, 16);
  const used = ledger.perPipeline.get(pipelineId) ?? 0;
  if (limits.pipelineTokensPerHour > 0 && used >= limits.pipelineTokensPerHour) {
    return { ok: false, until, why: `LLM budget spent: pipeline ${pipelineId} used ${used} of its ${limits.pipelineTokensPerHour} tokens this hour; the bandit decides until ${at} UTC` };
  }
  if (limits.totalTokensPerHour > 0 && ledger.total >= limits.totalTokensPerHour) {
    return { ok: false, until, why: `LLM budget spent: all pipelines used ${ledger.total} of the server's ${limits.totalTokensPerHour} tokens this hour; the bandit decides until ${at} UTC` };
  }
  return { ok: true };
}

/** The dollar estimate of some tokens at the configured prices. */
export function costDollars(u: TokenUsage, prices: LlmPrices): number {
  const cached = Math.min(u.cached, u.prompt);
  const cachedPrice = prices.cachedPerMTok ?? prices.promptPerMTok;
  return ((u.prompt - cached) * prices.promptPerMTok + cached * cachedPrice + u.completion * prices.completionPerMTok) / 1e6;
}
