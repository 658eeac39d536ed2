// Runs a `sair <command>` as its own OS process, the way a cluster runs each part in its own
// container: the real CLI (src/cli.ts) from source on the project's Node 24, with flags and env,
// its pino JSON log lines collected so a test can await one, and SIGTERM or SIGKILL to stop it.
// Node strips the TypeScript types itself; a small resolve hook maps the sources' `./x.js`
// imports to `./x.ts` (what tsc does at build time), so no build step or dist/ is involved.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = resolve(ROOT, 'node_modules/.bin/node');
const CLI = resolve(ROOT, 'src/cli.ts');

const LOADER = `
import { registerHooks } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
registerHooks({
  resolve(specifier, context, next) {
    if (specifier.startsWith('.') && specifier.endsWith('.js') && context.parentURL?.startsWith('file:')) {
      const url = new URL(specifier, context.parentURL);
      const ts = new URL(url.href.slice(0, -3) + '.ts');
      if (!existsSync(fileURLToPath(url)) && existsSync(fileURLToPath(ts))) return next(ts.href, context);
    }
    return next(specifier, context);
  },
});`;

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export class SairProcess extends EventEmitter {
  readonly logs: LogLine[] = [];
  /** Lines that were not JSON (stderr, a crash's stack). */
  readonly text: string[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly name: string,
    private readonly child: ChildProcessWithoutNullStreams,
  ) {
    super();
    const take = (line: string): void => {
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        parsed = undefined;
      }
      if (parsed && typeof parsed === 'object') {
        this.logs.push(parsed as LogLine);
        this.emit('log', parsed);
      } else if (line.trim() !== '') this.text.push(line);
    };
    createInterface({ input: child.stdout }).on('line', take);
    createInterface({ input: child.stderr }).on('line', take);
    this.exited = new Promise((done) =>
      child.on('close', (code, signal) => {
        this.exitInfo = { code, signal };
        this.emit('exit', this.exitInfo);
        done(this.exitInfo);
      }),
    );
  }

  /** Starts `sair <command> <args>` with exactly `env` (plus a plain PATH) as its environment, as a container gets only its own. */
  static start(command: string, args: string[], env: Record<string, string> = {}): SairProcess {
    const child = spawn(
      NODE,
      ['--experimental-transform-types', '--no-warnings', '--import', `data:text/javascript,${encodeURIComponent(LOADER)}`, CLI, command, ...args],
      { cwd: ROOT, env: { PATH: '/usr/local/bin:/usr/bin:/bin', ...env } },
    );
    return new SairProcess(command, child);
  }

  get pid(): number {
    return this.child.pid ?? 0;
  }

  /** Resolves with the first log line (already seen or coming) that `test` accepts; rejects on exit or timeout. */
  waitForLog(test: (line: LogLine) => boolean, timeoutMs: number, what: string): Promise<LogLine> {
    const seen = this.logs.find(test);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolvePromise, reject) => {
      const cleanup = (): void => {
        clearTimeout(timer);
        this.off('log', onLog);
        this.off('exit', onExit);
      };
      const onLog = (line: LogLine): void => {
        if (!test(line)) return;
        cleanup();
        resolvePromise(line);
      };
      const onExit = (): void => {
        cleanup();
        reject(new Error(`sair ${this.name} exited (${JSON.stringify(this.exitInfo)}) before ${what}; output:\n${this.tail()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`sair ${this.name}: no ${what} within ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
      this.on('log', onLog);
      this.on('exit', onExit);
      if (this.exitInfo) onExit();
    });
  }

  /** The last lines it printed, for failure messages. */
  tail(n = 30): string {
    return [...this.logs.slice(-n).map((l) => JSON.stringify(l)), ...this.text.slice(-n)].join('\n');
  }

  /** Resolves with how the process ended; rejects if it still runs after timeoutMs (it is then killed). */
  async waitForExit(timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        reject(new Error(`sair ${this.name} still running after ${timeoutMs} ms; output:\n${this.tail()}`));
      }, timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Sends `signal` and resolves once the process has exited (SIGKILL after timeoutMs). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 15_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (this.exitInfo) return this.exitInfo;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
