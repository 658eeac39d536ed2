import { z } from 'zod';
import { fields, helpText, loadConfig, parseFlags } from '../../src/common/config.js';
import { ConfigError } from '../../src/common/errors.js';

const spec = {
  port: { env: 'SAIR_PORT', flag: '--port', form: 'an integer from 0 to 65535', help: 'listen port', schema: fields.port(8443) },
  dryRun: { env: 'SAIR_DRY_RUN', flag: '--dry-run', form: 'true or false', help: 'change nothing', schema: fields.boolean(false) },
  model: { env: 'SAIR_MODEL', flag: '--model', form: 'a model name', help: 'LLM model', schema: z.string().min(1).optional() },
};

describe('loadConfig', () => {
  it('uses defaults when nothing is set', () => {
    expect(loadConfig(spec, {}, [])).toEqual({ port: 8443, dryRun: false, model: undefined });
  });

  it('prefers a flag over the environment', () => {
    const cfg = loadConfig(spec, { SAIR_PORT: '9000', SAIR_DRY_RUN: 'true' }, ['--port', '9100']);
    expect(cfg).toEqual({ port: 9100, dryRun: true, model: undefined });
  });

  it('accepts --flag=value and a bare boolean flag', () => {
    expect(loadConfig(spec, {}, ['--port=1', '--dry-run'])).toMatchObject({ port: 1, dryRun: true });
  });

  it('names the variable and the accepted form of every bad value', () => {
    let caught: unknown;
    try {
      loadConfig(spec, { SAIR_PORT: 'abc' }, ['--dry-run', 'maybe', '--colour', 'red']);
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(ConfigError);
    const message = (caught as Error).message;
    expect(message).toContain('SAIR_PORT (flag --port): "abc" is not an integer from 0 to 65535');
    expect(message).toContain('--dry-run (env SAIR_DRY_RUN): "maybe" is not true or false');
    expect(message).toContain('--colour');
  });

  it('splits positional arguments from flags', () => {
    expect(parseFlags(['run', '--seed', '3', 'x'])).toEqual({ flags: new Map([['--seed', '3']]), positional: ['run', 'x'] });
  });

  it('documents every flag with its env variable and default', () => {
    const text = helpText('webhook', 'Serves admission.', spec);
    expect(text).toContain('--port');
    expect(text).toContain('SAIR_PORT');
    expect(text).toContain('[default: 8443]');
  });
});
