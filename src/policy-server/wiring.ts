// Builds the SAIR controller and the runtime that drives it, joined once: the controller must exist
// before the runtime, yet its decisions must reach the runtime's history, so they pass through a
// forward that is set as soon as the runtime is built. `sair policy`, `sair start` and the tests share it.
import type { Registry } from 'prom-client';
import type { Logger } from '../common/logger.js';
import type { PolicyHistory } from './api/history.js';
import { createSairController, type SairController } from '../policy/controller.js';
import { newLedger } from '../policy/selectors/budget.js';
import { withBudget } from '../policy/selectors/budgeted.js';
import { CallLimiter, withLimit } from '../policy/selectors/limited.js';
import { TUNING } from '../policy/tuning.js';
import { createLlmSelector, type LlmCall, type LlmObserver } from '../policy/selectors/llm.js';
import { createLlmMetrics, createLlmQueueMetrics } from './llm-metrics.js';
import type { ClusterPort, Clock, Controller, MetricsPort } from '../core/ports.js';
import { PolicyRuntime, type RuntimeDeps } from './runtime.js';
import type { PolicySettings } from '../policy/settings.js';
import type { DecisionRecord } from '../policy/types.js';

export interface PolicyPorts {
  cluster: ClusterPort;
  metrics: MetricsPort;
  clock: Clock;
  logger: Logger;
  /** The first controller and the runtime register their metrics here. */
  registry: Registry;
  history: PolicyHistory;
}

export interface PolicyLoopOptions extends Pick<
  RuntimeDeps,
  'ownership' | 'pollMs' | 'backoff' | 'afterDecision' | 'beforeLeading'
> {
  seed?: number;
  snapshotPath?: string;
  /** Sees each decision after the runtime has recorded it. */
  onDecision?: (record: DecisionRecord) => void;
  /** The LLM API key of the controller of `key` ('' the first), asked before each request; settings.llm.apiKey when undefined. */
  apiKeyFor?: (key: string) => (() => Promise<string>) | undefined;
  /**
   * The controller the runtime drives, from the first one and a factory for more (one per LLM
   * reference in a cluster). Each key gets its own snapshot and decision log file. Default: the first.
   */
  route?: (
    first: SairController,
    make: (settings: PolicySettings, key: string) => SairController,
  ) => Controller;
}

export interface PolicyLoop {
  /** The first controller, built from the settings given. */
  controller: SairController;
  runtime: PolicyRuntime;
  /** Snapshot and close every controller built so far; call after runtime.stop(). */
  close(): Promise<void>;
}

/** A file path of its own for the controller of one key; the path itself for the first (key ''). */
function pathForKey(file: string | undefined, key: string): string | undefined {
  return file && (key ? `${file}.${key.replace(/[^a-z0-9.-]/gi, '_')}` : file);
}

export function createPolicyLoop(
  ports: PolicyPorts,
  settings: PolicySettings,
  options: PolicyLoopOptions,
): PolicyLoop {
  const { cluster, metrics, clock, logger, registry, history } = ports;
  const decisions: { forward?: (r: DecisionRecord) => void } = {};
  const controllers: SairController[] = [];
  // One token budget for the whole server: every pipeline and every LLM endpoint draws on it.
  const ledger = newLedger(clock.now());
  // And one limit of LLM calls in flight.
  const limiter = new CallLimiter({ limit: settings.llmMaxConcurrent, maxWaiting: settings.llmMaxConcurrent * TUNING.llmWaitingPerSlot, ...createLlmQueueMetrics(registry) });
  const llmMetrics: { observer?: LlmObserver } = {};
  const observer = { onCall: (c: LlmCall) => llmMetrics.observer?.onCall(c) };
  const llmSelector = (s: PolicySettings, key: string) => {
    if (s.selector !== 'llm' || !s.llm) return undefined;
    const llm = withBudget(
      withLimit(
        createLlmSelector(s.llm, { temperature: s.exploration.temperature, deadlineMs: s.decisionDeadlineMs, observer, logger, apiKey: options.apiKeyFor?.(key) }),
        limiter,
      ),
      { limits: s.llmBudget, ledger },
      clock,
    );
    history.addLlm(llm.status);
    return llm;
  };
  const make = (s: PolicySettings, key: string) => {
    const c = createSairController({
      llmSelector: llmSelector(s, key),
      cluster,
      metrics,
      clock,
      config: { ...s, decisionLogPath: pathForKey(s.decisionLogPath, key) },
      logger,
      // Metric names are unique per registry, so only the first controller registers them.
      registry: controllers.length === 0 ? registry : undefined,
      seed: options.seed,
      onDecision: (r) => decisions.forward?.(r),
      snapshotPath: pathForKey(options.snapshotPath, key),
    });
    controllers.push(c);
    return c;
  };
  const first = make(settings, '');
  // The selectors' observer counts LLM tokens per pipeline, cached ones included.
  llmMetrics.observer = createLlmMetrics(registry);
  const runtime = new PolicyRuntime({
    cluster,
    controller: options.route ? options.route(first, make) : first,
    clock,
    logger,
    registry,
    history,
    ownership: options.ownership,
    pollMs: options.pollMs,
    backoff: options.backoff,
    afterDecision: options.afterDecision,
    beforeLeading: options.beforeLeading,
  });
  const extra = options.onDecision;
  decisions.forward = extra
    ? (r) => {
        runtime.onDecision(r);
        extra(r);
      }
    : runtime.onDecision;
  return {
    controller: first,
    runtime,
    close: async () => {
      await Promise.all(controllers.map((c) => c.close()));
    },
  };
}
