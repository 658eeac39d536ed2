// The HPA mutation: SAIR takes over scaling by disabling the HPA's own scale-up and scale-down
// (selectPolicy Disabled), keeping the user's behavior in an annotation so that opting out
// (label sair.dev/inject=false) restores it. Pure and idempotent.
import { ANNOTATION_ORIGINAL_BEHAVIOR, LABEL_INJECT, LABEL_MANAGED } from '../core/names.js';
import type { HorizontalPodAutoscaler, HpaBehavior } from './k8s-types.js';
import type { MutationResult } from './mutate-pod.js';

/** The behavior SAIR sets: the original with both directions disabled. */
function managedBehavior(original: HpaBehavior | null | undefined): HpaBehavior {
  const b: HpaBehavior = structuredClone(original ?? {});
  b.scaleUp = { ...b.scaleUp, selectPolicy: 'Disabled' };
  b.scaleDown = { ...b.scaleDown, selectPolicy: 'Disabled' };
  return b;
}

/** The stored original behavior: an object, null (there was none), or undefined (absent or unreadable). */
function storedOriginal(annotations: Record<string, string> | undefined): { value: HpaBehavior | null } | undefined {
  const raw = annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR];
  if (raw === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed === null || (typeof parsed === 'object' && !Array.isArray(parsed))) return { value: parsed as HpaBehavior | null };
  } catch {
    // An edited or corrupted annotation is replaced by the behavior the HPA has now.
  }
  return undefined;
}

function release(hpa: HorizontalPodAutoscaler): MutationResult<HorizontalPodAutoscaler> {
  const stored = storedOriginal(hpa.metadata?.annotations);
  const hasMarks =
    hpa.metadata?.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR] !== undefined ||
    hpa.metadata?.annotations?.[LABEL_MANAGED] !== undefined ||
    hpa.metadata?.labels?.[LABEL_MANAGED] !== undefined;
  if (!hasMarks) return { allowed: true, object: hpa, warnings: [] };
  const out = structuredClone(hpa);
  const warnings: string[] = [];
  if (stored) {
    if (stored.value === null) delete out.spec.behavior;
    else out.spec.behavior = stored.value;
  } else if (hpa.metadata?.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR] !== undefined) {
    warnings.push(`${ANNOTATION_ORIGINAL_BEHAVIOR} is not a JSON object or null; spec.behavior left as it is, check its selectPolicy`);
  }
  delete out.metadata!.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR];
  delete out.metadata!.annotations?.[LABEL_MANAGED];
  delete out.metadata!.labels?.[LABEL_MANAGED];
  return { allowed: true, object: out, warnings };
}

/** Mutate an HPA being created or updated. The input is never modified. */
export function mutateHpa(hpa: HorizontalPodAutoscaler): MutationResult<HorizontalPodAutoscaler> {
  if (hpa.metadata?.labels?.[LABEL_INJECT] === 'false') return release(hpa);
  const out = structuredClone(hpa);
  const metadata = (out.metadata ??= {});
  const annotations = (metadata.annotations ??= {});
  const labels = (metadata.labels ??= {});
  const current = out.spec.behavior ?? null;
  const stored = storedOriginal(annotations);
  // Already managed when an original is stored and both directions are still disabled (the API
  // server may have defaulted the other fields since). Anything else is a new intent from the
  // user, which becomes the original.
  const disabled = current?.scaleUp?.selectPolicy === 'Disabled' && current.scaleDown?.selectPolicy === 'Disabled';
  if (!stored || !disabled) {
    annotations[ANNOTATION_ORIGINAL_BEHAVIOR] = JSON.stringify(current);
    out.spec.behavior = managedBehavior(current);
  }
  annotations[LABEL_MANAGED] = 'true';
  labels[LABEL_MANAGED] = 'true';
  return { allowed: true, object: out, warnings: [] };
}
