// The Kubernetes HPA v2 algorithm, pure: the replica calculator (tolerance, not-ready and missing
// pods) and the behavior normalization (stabilization windows, rate-limit policies, min/max), as
// pkg/controller/podautoscaler does it. Times are ms; the state lives in HpaState, one per HPA.

export interface ScalingPolicy {
  type: 'Pods' | 'Percent';
  value: number;
  periodSeconds: number;
}

export interface ScalingRules {
  stabilizationWindowSeconds: number;
  selectPolicy: 'Max' | 'Min' | 'Disabled';
  policies: ScalingPolicy[];
}

export interface HpaBehavior {
  scaleUp: ScalingRules;
  scaleDown: ScalingRules;
}

/** The defaults the API server fills in when spec.behavior is omitted. */
export const DEFAULT_BEHAVIOR: HpaBehavior = {
  scaleUp: {
    stabilizationWindowSeconds: 0,
    selectPolicy: 'Max',
    policies: [
      { type: 'Pods', value: 4, periodSeconds: 15 },
      { type: 'Percent', value: 100, periodSeconds: 15 },
    ],
  },
  scaleDown: { stabilizationWindowSeconds: 300, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }] },
};

export const DEFAULT_TOLERANCE = 0.1;

/**
 * Replicas for a Utilization (or per-pod AverageValue) target, as the replica calculator does it.
 * `usage` is the mean over ready pods with metrics; not-ready pods count as 0 when that would
 * scale up; pods with missing metrics count as 0 on scale-up and as the target (100 %) on
 * scale-down, and if that flips the direction or lands within tolerance, nothing changes.
 */
export function replicasForPerPodTarget(x: {
  currentReplicas: number;
  readyPods: number;
  unreadyPods: number;
  missingPods?: number;
  usage: number;
  target: number;
  tolerance?: number;
  /** Usage assumed for missing pods on scale-down (100 % for utilization; the target otherwise). */
  missingDownUsage?: number;
}): number {
  const tol = x.tolerance ?? DEFAULT_TOLERANCE;
  const missing = x.missingPods ?? 0;
  const usageRatio = x.usage / x.target;
  const scaleUpWithUnready = x.unreadyPods > 0 && usageRatio > 1;
  if (!scaleUpWithUnready && missing === 0) {
    if (Math.abs(1 - usageRatio) <= tol) return x.currentReplicas;
    return Math.ceil(usageRatio * x.readyPods);
  }
  let total = x.usage * x.readyPods;
  let pods = x.readyPods;
  if (missing > 0) {
    total += usageRatio < 1 ? missing * Math.max(x.missingDownUsage ?? x.target, x.target) : 0;
    pods += missing;
  }
  if (scaleUpWithUnready) pods += x.unreadyPods;
  const newRatio = total / pods / x.target;
  if (Math.abs(1 - newRatio) <= tol || (usageRatio < 1 && newRatio > 1) || (usageRatio > 1 && newRatio < 1)) return x.currentReplicas;
  const next = Math.ceil(newRatio * pods);
  if ((newRatio < 1 && next > x.currentReplicas) || (newRatio > 1 && next < x.currentReplicas)) return x.currentReplicas;
  return next;
}

/** Replicas for an External metric with an AverageValue target (what KEDA feeds the HPA). */
export function replicasForExternalAverage(x: { currentReplicas: number; total: number; targetPerPod: number; tolerance?: number }): number {
  const tol = x.tolerance ?? DEFAULT_TOLERANCE;
  const usageRatio = x.total / (x.targetPerPod * x.currentReplicas);
  if (Math.abs(1 - usageRatio) <= tol) return x.currentReplicas;
  return Math.ceil(x.total / x.targetPerPod);
}

interface ScaleEvent {
  t: number;
  change: number;
}

/** The per-HPA memory of recommendations and scale events. */
export class HpaState {
  private readonly recommendations: { t: number; r: number }[] = [];
  private readonly upEvents: ScaleEvent[] = [];
  private readonly downEvents: ScaleEvent[] = [];

  constructor(private readonly behavior: HpaBehavior = DEFAULT_BEHAVIOR) {}

  /**
   * From the calculator's desired count to the count to set: stabilize, then rate-limit, then
   * clamp to [min, max]. Records the recommendation (and, via recordScale, the scale event).
   */
  normalize(now: number, currentReplicas: number, desired: number, minReplicas: number, maxReplicas: number): number {
    const stabilized = this.stabilize(now, currentReplicas, desired);
    return this.rateLimit(now, currentReplicas, stabilized, minReplicas, maxReplicas);
  }

  recordScale(now: number, previous: number, next: number): void {
    if (next > previous) this.upEvents.push({ t: now, change: next - previous });
    else if (next < previous) this.downEvents.push({ t: now, change: previous - next });
    const keep = (rules: ScalingRules): number => Math.max(0, ...rules.policies.map((p) => p.periodSeconds)) * 1000;
    prune(this.upEvents, now - keep(this.behavior.scaleUp));
    prune(this.downEvents, now - keep(this.behavior.scaleDown));
  }

  private stabilize(now: number, current: number, desired: number): number {
    const upCutoff = now - this.behavior.scaleUp.stabilizationWindowSeconds * 1000;
    const downCutoff = now - this.behavior.scaleDown.stabilizationWindowSeconds * 1000;
    let up = desired;
    let down = desired;
    for (const rec of this.recommendations) {
      if (rec.t > upCutoff) up = Math.min(up, rec.r);
      if (rec.t > downCutoff) down = Math.max(down, rec.r);
    }
    let recommendation = current;
    if (recommendation < up) recommendation = up;
    if (recommendation > down) recommendation = down;
    this.recommendations.push({ t: now, r: desired });
    const oldest = Math.min(upCutoff, downCutoff);
    while (this.recommendations.length > 0 && this.recommendations[0]!.t <= oldest) this.recommendations.shift();
    return recommendation;
  }

  private rateLimit(now: number, current: number, desired: number, min: number, max: number): number {
    if (desired > current) {
      let limit = this.limit(now, current, this.behavior.scaleUp, 'up');
      if (limit < current) limit = current;
      return Math.min(desired, Math.min(max, limit));
    }
    if (desired < current) {
      let limit = this.limit(now, current, this.behavior.scaleDown, 'down');
      if (limit > current) limit = current;
      return Math.max(desired, Math.max(min, limit));
    }
    return Math.min(max, Math.max(min, desired));
  }

  private limit(now: number, current: number, rules: ScalingRules, dir: 'up' | 'down'): number {
    if (rules.selectPolicy === 'Disabled') return current;
    const pickMax = (dir === 'up') === (rules.selectPolicy === 'Max');
    let result = pickMax ? -Infinity : Infinity;
    for (const p of rules.policies) {
      const cutoff = now - p.periodSeconds * 1000;
      const added = sumSince(this.upEvents, cutoff);
      const deleted = sumSince(this.downEvents, cutoff);
      const periodStart = current - added + deleted;
      let proposed: number;
      if (dir === 'up') proposed = p.type === 'Pods' ? periodStart + p.value : Math.ceil(periodStart * (1 + p.value / 100));
      else proposed = p.type === 'Pods' ? periodStart - p.value : Math.trunc(periodStart * (1 - p.value / 100));
      result = pickMax ? Math.max(result, proposed) : Math.min(result, proposed);
    }
    return result;
  }
}

function sumSince(events: ScaleEvent[], cutoff: number): number {
  let n = 0;
  for (const e of events) if (e.t > cutoff) n += e.change;
  return n;
}

function prune(events: ScaleEvent[], cutoff: number): void {
  while (events.length > 0 && events[0]!.t <= cutoff) events.shift();
}
