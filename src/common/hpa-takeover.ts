// SAIR's contract on an HPA it takes over, shared by the webhook (on create and update) and the
// failsafe (when SAIR is gone, or a namespace or HPA opts out): taken over, the HPA's scale-up and
// scale-down are Disabled and its own behavior is kept in an annotation; suspended, that behavior
// is back in force and a second annotation says why, so the webhook leaves it alone; released,
// every SAIR mark is gone. Pure: each function returns a new object and never changes its input.
import { ANNOTATION_FAILSAFE, ANNOTATION_ORIGINAL_BEHAVIOR, LABEL_MANAGED } from '../core/names.js';

export interface HpaScalingRules {
  selectPolicy?: string;
  [key: string]: unknown;
}

export interface HpaBehavior {
  scaleUp?: HpaScalingRules;
  scaleDown?: HpaScalingRules;
  [key: string]: unknown;
}

/** The few fields of an autoscaling/v2 HorizontalPodAutoscaler this contract reads or writes. */
export interface HpaObject {
  metadata?: { labels?: Record<string, string>; annotations?: Record<string, string>; [key: string]: unknown };
  spec: { behavior?: HpaBehavior | null; [key: string]: unknown };
  [key: string]: unknown;
}

export interface Changed<T> {
  object: T;
  /** False when the object already was in the wanted state (nothing to write). */
  changed: boolean;
  warnings: string[];
}

/** Why the failsafe handed an HPA its behavior back, and since when (RFC 3339). */
export interface Suspension {
  reason: string;
  since: string;
}

/** The behavior SAIR sets: the original with both directions disabled. */
function disabledBehavior(original: HpaBehavior | null | undefined): HpaBehavior {
  const b: HpaBehavior = structuredClone(original ?? {});
  b.scaleUp = { ...b.scaleUp, selectPolicy: 'Disabled' };
  b.scaleDown = { ...b.scaleDown, selectPolicy: 'Disabled' };
  return b;
}

/** The stored original behavior: an object, null (there was none), or undefined (absent or unreadable). */
function storedOriginal(hpa: HpaObject): { value: HpaBehavior | null } | undefined {
  const raw = hpa.metadata?.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR];
  if (raw === undefined) return undefined;
  try {
    const parsed: unknown = JSON.parse(raw);
    if (parsed === null || (typeof parsed === 'object' && !Array.isArray(parsed))) return { value: parsed as HpaBehavior | null };
  } catch {
    // An edited or corrupted annotation is replaced by the behavior the HPA has now.
  }
  return undefined;
}

function isDisabled(hpa: HpaObject): boolean {
  const b = hpa.spec.behavior;
  return b?.scaleUp?.selectPolicy === 'Disabled' && b.scaleDown?.selectPolicy === 'Disabled';
}

/** True when the HPA carries any of SAIR's marks. */
export function hasMarks(hpa: HpaObject): boolean {
  const a = hpa.metadata?.annotations ?? {};
  return a[ANNOTATION_ORIGINAL_BEHAVIOR] !== undefined || a[LABEL_MANAGED] !== undefined || a[ANNOTATION_FAILSAFE] !== undefined || hpa.metadata?.labels?.[LABEL_MANAGED] !== undefined;
}

/** The failsafe's note on a suspended HPA, or undefined when it is not suspended. */
export function suspensionOf(hpa: HpaObject): Suspension | undefined {
  const raw = hpa.metadata?.annotations?.[ANNOTATION_FAILSAFE];
  if (raw === undefined) return undefined;
  try {
    const parsed = JSON.parse(raw) as Partial<Suspension>;
    return { reason: String(parsed.reason ?? 'unknown'), since: String(parsed.since ?? '') };
  } catch {
    return { reason: raw, since: '' };
  }
}

/** True when SAIR scales this HPA's target: taken over and not suspended. */
export function isTakenOver(hpa: HpaObject): boolean {
  return storedOriginal(hpa) !== undefined && isDisabled(hpa) && suspensionOf(hpa) === undefined;
}

/** The original behavior back on the HPA (a copy); warns when the stored one cannot be read. */
function withOriginal(hpa: HpaObject): { object: HpaObject; warnings: string[] } {
  const out = structuredClone(hpa);
  const stored = storedOriginal(hpa);
  const warnings: string[] = [];
  if (stored) {
    if (stored.value === null) delete out.spec.behavior;
    else out.spec.behavior = stored.value;
  } else if (hpa.metadata?.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR] !== undefined) {
    warnings.push(`${ANNOTATION_ORIGINAL_BEHAVIOR} is not a JSON object or null; spec.behavior left as it is, check its selectPolicy`);
  }
  return { object: out, warnings };
}

/**
 * Take the HPA over: its current behavior becomes the stored original unless it is already taken
 * over (an original stored and both directions still disabled, whatever the API server defaulted
 * since); a suspension ends.
 */
export function takeOver(hpa: HpaObject): Changed<HpaObject> {
  const out = structuredClone(hpa);
  const metadata = (out.metadata ??= {});
  const annotations = (metadata.annotations ??= {});
  const labels = (metadata.labels ??= {});
  const suspended = annotations[ANNOTATION_FAILSAFE] !== undefined;
  delete annotations[ANNOTATION_FAILSAFE];
  // A suspended HPA runs its own behavior, which may have been edited since: that is the original now.
  if (suspended || !storedOriginal(out) || !isDisabled(out)) {
    const current = out.spec.behavior ?? null;
    annotations[ANNOTATION_ORIGINAL_BEHAVIOR] = JSON.stringify(current);
    out.spec.behavior = disabledBehavior(current);
  }
  annotations[LABEL_MANAGED] = 'true';
  labels[LABEL_MANAGED] = 'true';
  return { object: out, changed: JSON.stringify(out) !== JSON.stringify(hpa), warnings: [] };
}

/** Give the HPA its behavior back for good and remove every SAIR mark (the HPA opted out). */
export function release(hpa: HpaObject): Changed<HpaObject> {
  if (!hasMarks(hpa)) return { object: hpa, changed: false, warnings: [] };
  const { object, warnings } = suspensionOf(hpa) ? { object: structuredClone(hpa), warnings: [] } : withOriginal(hpa);
  delete object.metadata!.annotations?.[ANNOTATION_ORIGINAL_BEHAVIOR];
  delete object.metadata!.annotations?.[ANNOTATION_FAILSAFE];
  delete object.metadata!.annotations?.[LABEL_MANAGED];
  delete object.metadata!.labels?.[LABEL_MANAGED];
  return { object, changed: true, warnings };
}

/** Give a taken-over HPA its behavior back while SAIR is gone, keeping the marks to take it over again. */
export function suspend(hpa: HpaObject, why: Suspension): Changed<HpaObject> {
  if (suspensionOf(hpa) || !storedOriginal(hpa)) return { object: hpa, changed: false, warnings: [] };
  const { object, warnings } = withOriginal(hpa);
  (object.metadata!.annotations ??= {})[ANNOTATION_FAILSAFE] = JSON.stringify(why);
  return { object, changed: true, warnings };
}
