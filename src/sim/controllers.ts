// Controllers by name for `sair simulate`: the baselines, plus whatever controllers the caller
// hands in (the `sair simulate` command adds SAIR's own; the simulator never imports it).
import { BASELINES } from './baselines/index.js';
import type { ControllerFactory } from './run.js';

/** Makes a fresh-controller factory for one seed. */
export type SeededFactory = (seed: number) => ControllerFactory | Promise<ControllerFactory>;

export const BASELINE_NAMES = Object.keys(BASELINES);

/** A fresh-controller factory by name: a baseline, or one of `extra`. */
export async function controllerFactory(name: string, seed: number, extra: Readonly<Record<string, SeededFactory>> = {}): Promise<ControllerFactory> {
  const baseline = BASELINES[name];
  if (baseline) return baseline.factory;
  const make = extra[name];
  if (!make) throw new Error(`unknown controller ${name}; expected one of ${[...BASELINE_NAMES, ...Object.keys(extra)].join(', ')}`);
  return make(seed);
}
