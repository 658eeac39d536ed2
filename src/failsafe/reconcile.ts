// What the failsafe does to one HPA, from the level it observes (level-based: the same inputs
// give the same answer, so running twice, or on two replicas, is harmless). Pure.
import { hasMarks, isTakenOver, release, suspend, suspensionOf, takeOver, type HpaObject } from '../common/hpa-takeover.js';
import { LABEL_INJECT } from '../core/names.js';

export type HpaAction = 'take-over' | 'suspend' | 'release';

export interface HpaInputs {
  /** The HPA's namespace carries sair.dev/enabled=true. */
  namespaceEnabled: boolean;
  /**
   * The Leases that went unrenewed past the failsafe delay among those of the shards that may own
   * this HPA; empty while SAIR is alive for it.
   */
  staleLeases: readonly string[];
  /** RFC 3339 time written into a new suspension. */
  now: string;
}

export interface HpaDecision {
  action: HpaAction;
  object: HpaObject;
  reason: string;
  warnings: string[];
}

/** The change the HPA needs, or undefined when it already is as it should be. */
export function reconcileHpa(hpa: HpaObject, inputs: HpaInputs): HpaDecision | undefined {
  const optedOut = hpa.metadata?.labels?.[LABEL_INJECT] === 'false';
  if (optedOut || !inputs.namespaceEnabled) {
    if (!hasMarks(hpa)) return undefined;
    const r = release(hpa);
    const reason = optedOut ? `the HPA is labelled ${LABEL_INJECT}=false` : 'its namespace is no longer opted in';
    return { action: 'release', object: r.object, reason, warnings: r.warnings };
  }
  if (inputs.staleLeases.length > 0) {
    // An HPA SAIR never took over already scales on its own.
    if (!isTakenOver(hpa)) return undefined;
    const reason = `no policy-server replica renewed Lease ${inputs.staleLeases.join(', ')} within the failsafe delay`;
    const r = suspend(hpa, { reason, since: inputs.now });
    return r.changed ? { action: 'suspend', object: r.object, reason, warnings: r.warnings } : undefined;
  }
  if (isTakenOver(hpa)) return undefined;
  const r = takeOver(hpa);
  if (!r.changed) return undefined;
  const reason = suspensionOf(hpa) ? 'a policy-server leader is back' : 'an HPA in an opted-in namespace that SAIR had not taken over';
  return { action: 'take-over', object: r.object, reason, warnings: [] };
}
