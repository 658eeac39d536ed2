// The HPA mutation: SAIR takes over scaling by disabling the HPA's own scale-up and scale-down
// (selectPolicy Disabled), keeping the user's behavior in an annotation so that opting out
// (label sair.dev/inject=false) restores it. An HPA the failsafe suspended (SAIR gone) is left as
// it is: the failsafe takes it over again when a leader returns. Pure and idempotent; the
// contract itself is src/common/hpa-takeover.ts, shared with the failsafe.
import { release, suspensionOf, takeOver } from '../common/hpa-takeover.js';
import { LABEL_INJECT } from '../core/names.js';
import type { HorizontalPodAutoscaler } from './k8s-types.js';
import type { MutationResult } from './mutate-pod.js';

/** Mutate an HPA being created or updated. The input is never modified. */
export function mutateHpa(hpa: HorizontalPodAutoscaler): MutationResult<HorizontalPodAutoscaler> {
  if (hpa.metadata?.labels?.[LABEL_INJECT] === 'false') {
    const r = release(hpa);
    return { allowed: true, object: r.object as HorizontalPodAutoscaler, warnings: r.warnings };
  }
  if (suspensionOf(hpa)) return { allowed: true, object: hpa, warnings: [] };
  return { allowed: true, object: takeOver(hpa).object as HorizontalPodAutoscaler, warnings: [] };
}
