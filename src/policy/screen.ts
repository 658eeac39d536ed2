// Screening of the candidates against the normalizer: a change that only gives capacity back and
// that the normalizer would turn into what it does for hold is no choice, so no selector is offered
// it. Pure, like the normalizer it runs.
import type { BottleneckResult } from './bottleneck.js';
import { liftToFloors, type Floor } from './floors.js';
import type { Anticipation } from './forecast.js';
import { normalize, type NormalizeSettings, type WindowState } from './normalize.js';
import type { PipelineObservation, PipelineSpec, ScalingAction } from '../core/ports.js';
import type { Candidate } from './types.js';

/** Whether an action gives capacity back: fewer replicas or less GPU share than the stage has. */
function reduces(a: ScalingAction, obs: PipelineObservation): boolean {
  if (a.kind === 'hold') return false;
  const alloc = obs.allocation[a.stage];
  if (!alloc) return false;
  return a.kind === 'replicas' ? a.replicas < alloc.replicas : alloc.gpuCores !== null && a.gpuCores < alloc.gpuCores;
}

/** Applied actions in one canonical order, to compare two guard results. */
const appliedKey = (actions: readonly ScalingAction[]): string =>
  actions
    .flatMap((a) => (a.kind === 'hold' ? [] : [a.kind === 'replicas' ? `s${a.stage}r${a.replicas}` : `s${a.stage}g${a.gpuCores}`]))
    .sort()
    .join(',');

/**
 * The candidates left once those that only give capacity back and that the normalizer would turn into
 * exactly what it does for hold (a trim in its cooldown or stabilized where the stage is, a GPU cut
 * the window's peak forbids) are screened out: such a candidate is no choice, and offering it let
 * the bandit spend tick after tick on it (video-multiframe burst: a blocked replica trim was
 * proposed for ten minutes while a frame-model share of 100 % at 0.15 of its capacity was never
 * cut). Changes that add capacity stay whatever the normalizer would do with them: screening them
 * during an emergency leaves only the ones larger than the floors. Hold always stays.
 */
export function screenCandidates(
  candidates: readonly Candidate[],
  pipeline: PipelineSpec,
  obs: PipelineObservation,
  bn: BottleneckResult,
  floors: readonly Floor[],
  state: WindowState,
  now: number,
  settings: NormalizeSettings,
  anticipation: Anticipation | null = null,
): { candidates: Candidate[]; screened: string[] } {
  const dry = (actions: readonly ScalingAction[]) =>
    appliedKey(normalize(pipeline, obs, bn, liftToFloors(actions, floors, obs), state, now, settings, anticipation).actions);
  let asHold: string | undefined;
  const kept: Candidate[] = [];
  const screened: string[] = [];
  for (const c of candidates) {
    const onlyGivesBack = c.actions.length > 0 && c.actions.every((a) => reduces(a, obs));
    if (onlyGivesBack && dry(c.actions) === (asHold ??= dry([]))) screened.push(c.id);
    else kept.push(c);
  }
  return { candidates: kept, screened };
}
