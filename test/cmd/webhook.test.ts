// `sair webhook` and `sair certs` as commands: config errors, --help, and the --dev mode whose
// printed curl command must work as pasted.
import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { promisify } from 'node:util';
import { ConfigError } from '../../src/common/errors.js';
import { loadConfig } from '../../src/common/config.js';
import { certsSpec, command as certsCommand } from '../../src/cmd/certs.js';
import { command, runWebhook, webhookSpec } from '../../src/cmd/webhook.js';

const run = promisify(execFile);

describe('sair webhook', () => {
  it('lists every flag with its env variable in --help', () => {
    const help = command.help();
    for (const f of Object.values(webhookSpec)) {
      expect(help).toContain(f.flag);
      expect(help).toContain(f.env);
    }
    expect(certsCommand.help()).toContain('--out-dir');
  });

  it('rejects bad values naming the variable and the accepted form', () => {
    expect(() => loadConfig(webhookSpec, { SAIR_WEBHOOK_PORT: '70000' }, ['--fail-closed', 'maybe'])).toThrow(ConfigError);
    expect(() => loadConfig(webhookSpec, { SAIR_WEBHOOK_PORT: '70000' }, [])).toThrow('SAIR_WEBHOOK_PORT (flag --port): "70000" is not an integer from 0 to 65535');
    expect(() => loadConfig(certsSpec, {}, ['--validity-days', '0'])).toThrow('--validity-days (env SAIR_CERT_VALIDITY_DAYS): "0" is not a positive integer (days)');
  });

  it('fails at start with a clear message when the certificate directory is empty', async () => {
    const cfg = loadConfig(webhookSpec, {}, ['--cert-dir', '/nonexistent/sair', '--port', '0', '--metrics-port', '0', '--log-level', 'silent']);
    await expect(runWebhook(cfg)).rejects.toThrow('cannot load the serving certificate from /nonexistent/sair');
  });

  it('--dev prints a curl command that, pasted into a shell, gets a patched sample pod back', async () => {
    const out = new PassThrough();
    let printed = '';
    const ready = new Promise<void>((resolve) => {
      out.on('data', (c: Buffer) => {
        printed += c.toString();
        if (printed.includes('curl ')) resolve();
      });
    });
    const cfg = loadConfig(webhookSpec, {}, ['--dev', '--port', '0', '--metrics-port', '0', '--log-level', 'silent']);
    const signals = new EventEmitter();
    const running = runWebhook(cfg, out, signals);
    await ready;
    const curl = printed.split('\n').find((l) => l.trim().startsWith('curl '))!.trim();
    const { stdout } = await run('bash', ['-c', curl], { timeout: 20_000 });
    const review = JSON.parse(stdout) as { response: { allowed: boolean; patch: string } };
    expect(review.response.allowed).toBe(true);
    const ops = JSON.parse(Buffer.from(review.response.patch, 'base64').toString()) as { path: string }[];
    expect(ops.map((o) => o.path)).toContain('/metadata/annotations/sair.dev~1injected');
    signals.emit('SIGTERM', 'SIGTERM');
    await running;
    expect(signals.listenerCount('SIGTERM') + signals.listenerCount('SIGINT')).toBe(0);
    // The throwaway certificate directory goes with the server.
    const caPath = /--cacert (\S+)/.exec(curl)![1]!;
    expect(existsSync(path.dirname(caPath))).toBe(false);
  });
});
