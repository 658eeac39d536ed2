// What the HTTP API and the dashboard show: per pipeline, a bounded series of tick points
// (allocation, P99, cost, bottleneck, action) and the recent decision records. In memory only;
// the decision log file is the durable record.
import type { PipelineSpec, ScalingAction, StageAllocation, TickReport } from '../../core/ports.js';
import type { BudgetedLlmStatus } from '../../policy/selectors/budgeted.js';
import type { LlmStatus } from '../../policy/selectors/llm.js';
import type { DecisionRecord } from '../../policy/types.js';
import { costRate as shareCostRate } from '../prometheus/metrics-port.js';

export interface TickPoint {
  time: number;
  replicas: number[];
  readyReplicas: number[];
  gpuCores: (number | null)[];
  /** Finite P99, ms; null when missing or unbounded. */
  p99Ms: number | null;
  /** Requests were dropped, so the P99 is unbounded (shown apart, since JSON has no Infinity). */
  p99Unbounded: boolean;
  /** The cost the decision was made on: packed (whole GPUs) where the cluster tells packing, else share-priced. */
  costRate: number | null;
  /** Share-priced cost of the allocation after the tick: replicas × (replicaHour + gpuHour × share). */
  shareCostRate: number | null;
  bottleneck: number | null;
  /** Non-hold actions of this tick, e.g. "s1 replicas 3", empty for hold. */
  actions: string[];
  reason: string;
  dryRun: boolean;
}

export interface PipelineView {
  id: string;
  mode: PipelineSpec['mode'];
  sloP99Ms: number;
  tickSeconds: number;
  stages: { index: number; name: string; minReplicas: number; maxReplicas: number; gpuCores: PipelineSpec['stages'][number]['gpuCores'] | null }[];
  points: TickPoint[];
  lastError: { time: number; message: string } | null;
  ticks: number;
}

export function actionLabel(a: ScalingAction): string {
  if (a.kind === 'hold') return 'hold';
  return a.kind === 'replicas' ? `s${a.stage} replicas ${a.replicas}` : `s${a.stage} gpu ${a.gpuCores}%`;
}

export class PolicyHistory {
  private readonly pipelines = new Map<string, PipelineView>();
  private readonly decisions: DecisionRecord[] = [];
  private readonly llmSources: (() => LlmStatus | BudgetedLlmStatus)[] = [];

  constructor(private readonly limits: { pointsPerPipeline: number; decisions: number } = { pointsPerPipeline: 720, decisions: 500 }) {}

  private view(spec: PipelineSpec): PipelineView {
    let v = this.pipelines.get(spec.id);
    if (!v) {
      v = { id: spec.id, mode: spec.mode, sloP99Ms: spec.sloP99Ms, tickSeconds: spec.tickSeconds, stages: [], points: [], lastError: null, ticks: 0 };
      this.pipelines.set(spec.id, v);
    }
    v.mode = spec.mode;
    v.sloP99Ms = spec.sloP99Ms;
    v.tickSeconds = spec.tickSeconds;
    v.stages = spec.stages.map((s) => ({ index: s.index, name: s.name, minReplicas: s.minReplicas, maxReplicas: s.maxReplicas, gpuCores: s.gpuCores ?? null }));
    return v;
  }

  /** An LLM selector whose status the API and the dashboard show (one per endpoint the policy uses). */
  addLlm(status: () => LlmStatus | BudgetedLlmStatus): void {
    this.llmSources.push(status);
  }

  /** The status of every LLM selector, read now. */
  llm(): (LlmStatus | BudgetedLlmStatus)[] {
    return this.llmSources.map((s) => s());
  }

  /** Forget pipelines that are gone from the cluster. */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.pipelines.keys()) if (!ids.has(id)) this.pipelines.delete(id);
  }

  recordDecision(record: DecisionRecord): void {
    this.decisions.push(record);
    if (this.decisions.length > this.limits.decisions) this.decisions.splice(0, this.decisions.length - this.limits.decisions);
  }

  recordTick(spec: PipelineSpec, report: TickReport, allocation: readonly StageAllocation[], record: DecisionRecord | undefined): void {
    const v = this.view(spec);
    v.ticks++;
    v.lastError = null;
    v.points.push({
      time: report.time,
      replicas: allocation.map((a) => a.replicas),
      readyReplicas: allocation.map((a) => a.readyReplicas),
      gpuCores: allocation.map((a) => a.gpuCores),
      p99Ms: record?.p99Ms != null && Number.isFinite(record.p99Ms) ? record.p99Ms : null,
      p99Unbounded: record?.p99Ms === Infinity,
      costRate: record?.costRate ?? null,
      shareCostRate: allocation.length > 0 ? shareCostRate(spec, allocation) : null,
      bottleneck: report.bottleneck,
      actions: report.actions.filter((a) => a.kind !== 'hold').map(actionLabel),
      reason: report.reason ?? record?.reason ?? '',
      dryRun: spec.mode === 'DryRun' || record?.dryRun === true,
    });
    if (v.points.length > this.limits.pointsPerPipeline) v.points.splice(0, v.points.length - this.limits.pointsPerPipeline);
  }

  recordError(spec: PipelineSpec, time: number, message: string): void {
    this.view(spec).lastError = { time, message };
  }

  list(): PipelineView[] {
    return [...this.pipelines.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  recentDecisions(options: { pipelineId?: string; limit: number }): DecisionRecord[] {
    const out: DecisionRecord[] = [];
    for (let i = this.decisions.length - 1; i >= 0 && out.length < options.limit; i--) {
      const d = this.decisions[i]!;
      if (!options.pipelineId || d.pipelineId === options.pipelineId) out.push(d);
    }
    return out;
  }
}
