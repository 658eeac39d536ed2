// The LLM selector under a token budget: before each call the ledger is checked, and once the
// pipeline's or the server's tokens for this hour are spent the wrapper refuses at once with a
// SelectorError('budget'), so decide.ts lets the bandit decide and the decision's fallbackReason
// says "LLM budget spent: ...". Every call's tokens, failed ones included, are charged. Whoever
// wires it shares one ledger among all selectors of the server.
import type { Clock } from '../../core/ports.js';
import type { Selection, SelectionInput } from '../types.js';
import { checkBudget, charge, hourOf, type BudgetLedger, type BudgetLimits } from './budget.js';
import { SelectorError } from './errors.js';
import type { LlmSelection, LlmSelector, LlmStatus } from './llm.js';

export interface Budget {
  limits: BudgetLimits;
  ledger: BudgetLedger;
}

export interface BudgetStatus {
  limits: BudgetLimits;
  hourStart: number;
  /** Tokens used this hour by all pipelines, and by each. */
  total: number;
  pipelines: Record<string, number>;
  /** Decisions this selector left to the bandit because the budget was spent. */
  refused: number;
  /** Why the last refusal happened, while its hour lasts. */
  spent: string | null;
}

export interface BudgetedLlmStatus extends LlmStatus {
  budget: BudgetStatus;
}

export interface BudgetedLlmSelector extends LlmSelector {
  status(): BudgetedLlmStatus;
}

export function withBudget(inner: LlmSelector, budget: Budget, clock: Pick<Clock, 'now'>): BudgetedLlmSelector {
  let refused = 0;
  let spent: { why: string; until: number } | null = null;
  return {
    name: 'llm',
    async choose(input: SelectionInput): Promise<Selection> {
      const now = clock.now();
      const verdict = checkBudget(budget.ledger, input.pipelineId, budget.limits, now);
      if (!verdict.ok) {
        refused++;
        spent = verdict;
        throw new SelectorError('budget', verdict.why);
      }
      try {
        const selection = (await inner.choose(input)) as LlmSelection;
        if (selection.usage) charge(budget.ledger, input.pipelineId, selection.usage, clock.now());
        return selection;
      } catch (err) {
        if (err instanceof SelectorError && err.usage) charge(budget.ledger, input.pipelineId, err.usage, clock.now());
        throw err;
      }
    },
    status(): BudgetedLlmStatus {
      const now = clock.now();
      const current = spent !== null && now < spent.until ? spent : null;
      const s = inner.status();
      // The ledger moves to a new hour only when it is next charged or checked.
      const fresh = budget.ledger.hourStart === hourOf(now);
      return {
        ...s,
        summary: current ? `fallback: bandit, because ${current.why}` : s.summary,
        budget: {
          limits: budget.limits,
          hourStart: hourOf(now),
          total: fresh ? budget.ledger.total : 0,
          pipelines: fresh ? Object.fromEntries(budget.ledger.perPipeline) : {},
          refused,
          spent: current?.why ?? null,
        },
      };
    },
  };
}
