// Controllers by name for `sair simulate`: the baselines, plus `sair`, SAIR's own controller from
// src/policy (the bandit selector, or an OpenAI-compatible LLM when an endpoint is configured; a
// real LLM call is awaited with the simulation paused, so it costs wall time, not virtual time).
import { BASELINES } from './baselines/index.js';
import type { ControllerFactory } from './run.js';

export interface LlmEndpoint {
  baseUrl: string;
  model: string;
  apiKey?: string;
}

export const CONTROLLER_NAMES = [...Object.keys(BASELINES), 'sair'];

/** A fresh-controller factory by name; `sair` loads src/policy lazily. */
export async function controllerFactory(name: string, opts: { seed: number; llm?: LlmEndpoint }): Promise<ControllerFactory> {
  const baseline = BASELINES[name];
  if (baseline) return baseline.factory;
  if (name !== 'sair') throw new Error(`unknown controller ${name}`);
  const [{ createSairController }, { policySettings }] = await Promise.all([import('../policy/controller.js'), import('../policy/settings.js')]);
  const config = policySettings(opts.llm ? { selector: 'llm', llm: { ...opts.llm } } : { selector: 'bandit' });
  return (ports) => createSairController({ cluster: ports.cluster, metrics: ports.metrics, clock: ports.clock, config, seed: opts.seed });
}
