// What `sair policy` and `sair start` share: the HTTP flags and the policy's own settings.
import { fields } from '../common/config.js';
import { policyConfigSpec, type PolicyConfig } from '../policy/settings.js';

export const serverSpec = {
  port: { env: 'SAIR_POLICY_PORT', flag: '--port', form: 'an integer from 0 to 65535 (0 picks a free port)', help: 'HTTP port for the API and dashboard', schema: fields.port(8080) },
  logLevel: { env: 'SAIR_LOG_LEVEL', flag: '--log-level', form: 'fatal, error, warn, info, debug, trace or silent', help: 'log level', schema: fields.logLevel() },
};

/** The policy's own settings out of a command's whole config. */
export function pickPolicy(cfg: PolicyConfig): PolicyConfig {
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(policyConfigSpec)) out[k] = (cfg as Record<string, unknown>)[k];
  return out as PolicyConfig;
}
