#!/usr/bin/env node
// `sair <command>`: one binary for every part. Commands load lazily so that, say, the webhook
// never loads gRPC or the simulator.
import type { Command } from './common/command.js';
import { ConfigError } from './common/errors.js';

const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  // One line per command, added by the part that implements it.
  webhook: { summary: 'Mutating admission webhook (GPU shim injection, HPA takeover)', load: async () => (await import('./cmd/webhook.js')).command },
  'device-plugin': { summary: 'GPU node DaemonSet: kubelet device plugin (sair.dev/gpu slots), shim installer, per-pod limits agent', load: async () => (await import('./cmd/device-plugin.js')).command },
  certs: { summary: 'Webhook CA and serving certificate: Secret + caBundle, or files', load: async () => (await import('./cmd/certs.js')).command },
  policy: { summary: 'ICRL policy server in a cluster: InferencePipelines and HPAs, Prometheus, leader election, HTTP API', load: async () => (await import('./cmd/policy.js')).command },
  failsafe: { summary: 'Restores HPAs their own behavior while no policy-server leader renews its Lease', load: async () => (await import('./cmd/failsafe.js')).command },
  start: { summary: 'Policy server on the embedded simulator with its dashboard (what npm start runs)', load: async () => (await import('./cmd/start.js')).command },
  check: { summary: "Preflight of the current kubeconfig's cluster for SAIR; each failed check says what to do", load: async () => (await import('./cmd/check.js')).command },
  simulate: { summary: 'Discrete-event simulator: pipeline x workload x controller (HPA, KEDA, static, oracle, SAIR), or --matrix', load: async () => (await import('./cmd/simulate.js')).command },
};

function usage(): string {
  const rows = Object.entries(commands).map(([name, c]) => `  ${name.padEnd(16)} ${c.summary}`);
  return `Usage: sair <command> [flags]\n\nCommands:\n${rows.join('\n')}\n\nRun 'npx sair <command> --help' for a command's flags.\n`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === 'help' || name === '-h') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const entry = commands[name];
  if (!entry) {
    process.stderr.write(`sair: unknown command "${name}"; expected one of ${Object.keys(commands).join(', ')}\n\n${usage()}`);
    return 2;
  }
  const command = await entry.load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(command.help());
    return 0;
  }
  try {
    return (await command.run(rest, process.env)) ?? 0;
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`sair ${name}: ${err.message}\n\nRun 'sair ${name} --help' for the accepted flags.\n`);
      return 2;
    }
    process.stderr.write(`sair ${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
