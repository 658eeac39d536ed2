// Drives the native test programs (native/build/test/*) against the fake GPU, with or without the
// shim preloaded. Shared by the shim tests and bench/shim.ts. Each program gets a minimal env of
// its own, so nothing from the caller's environment (an LD_PRELOAD, a real CUDA) leaks in.
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';

/** The repository's native/ directory, found from here whether this runs from test/ or dist-bench/. */
function findNativeDir(): string {
  for (let dir = import.meta.dirname; dir !== dirname(dir); dir = dirname(dir)) {
    if (existsSync(join(dir, 'native', 'Makefile'))) return join(dir, 'native');
  }
  throw new Error(`no native/Makefile above ${import.meta.dirname}`);
}

export const NATIVE_DIR = findNativeDir();
export const BUILD_DIR = join(NATIVE_DIR, 'build');
export const SHIM_PATH = join(BUILD_DIR, 'libsair-cuda.so');
export const FAKE_LIB_DIR = join(BUILD_DIR, 'fake');

export function buildNative(): void {
  execFileSync('make', ['-s', '-C', NATIVE_DIR, 'fake'], { stdio: 'pipe', timeout: 180_000 });
}

export interface ProgramEnv {
  /** Directory of the fake GPU's timeline: one per test, so tests never share a device. */
  gpuDir: string;
  shim?: boolean;
  cores?: number;
  memoryBytes?: bigint;
  /** SAIR_LIMITS_FILE and SAIR_STATE_FILE: the allocation's two files. */
  limitsFile?: string;
  stateFile?: string;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  /** SAIR_LIMITER_BURST_MS: how far ahead of its share a pod may run after being idle. */
  burstMs?: number;
  extra?: Record<string, string>;
}

export function freshGpuDir(): string {
  return mkdtempSync(join(tmpdir(), 'sair-fake-gpu-'));
}

export function programEnv(opts: ProgramEnv): Record<string, string> {
  const env: Record<string, string> = {
    PATH: '/usr/local/bin:/usr/bin:/bin',
    FAKE_GPU_DIR: opts.gpuDir,
    LD_LIBRARY_PATH: FAKE_LIB_DIR,
    ...opts.extra,
  };
  if (opts.shim) env.LD_PRELOAD = SHIM_PATH;
  if (opts.cores !== undefined) env.SAIR_GPU_CORES = String(opts.cores);
  if (opts.memoryBytes !== undefined) env.SAIR_GPU_MEMORY = opts.memoryBytes.toString();
  if (opts.limitsFile !== undefined) env.SAIR_LIMITS_FILE = opts.limitsFile;
  if (opts.stateFile !== undefined) env.SAIR_STATE_FILE = opts.stateFile;
  if (opts.logLevel !== undefined) env.SAIR_LOG_LEVEL = opts.logLevel;
  if (opts.burstMs !== undefined) env.SAIR_LIMITER_BURST_MS = String(opts.burstMs);
  return env;
}

export interface ProgramResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Run a program to completion; rejects if it outlives timeoutMs (it is killed first). */
export function runProgram(name: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<ProgramResult> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(join(BUILD_DIR, 'test', name), args, { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${name} ${args.join(' ')} did not finish within ${timeoutMs} ms (hang?); stderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolvePromise({ code, signal, stdout, stderr });
    });
  });
}

export async function runJson<T>(name: string, args: string[], env: Record<string, string>, timeoutMs: number): Promise<T> {
  const r = await runProgram(name, args, env, timeoutMs);
  if (r.code !== 0) throw new Error(`${name} ${args.join(' ')} exited with ${r.code ?? r.signal}; stderr: ${r.stderr}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  return JSON.parse(line) as T;
}

export type Reply = Record<string, unknown> & { cmd: string };

/** prog_driver: one command per line in, one JSON line out. */
export class Driver {
  private readonly lines: Interface;
  private readonly queue: Reply[] = [];
  private readonly waiters: Array<{ resolve: (r: Reply) => void; reject: (e: Error) => void }> = [];
  private exited = false;
  stderr = '';
  pid = 0;
  /** The exit status once the program has exited (null when killed by a signal). */
  exitCode: number | null = null;

  private constructor(private readonly child: ChildProcessWithoutNullStreams) {
    this.lines = createInterface({ input: child.stdout });
    this.lines.on('line', (line) => {
      const reply = JSON.parse(line) as Reply;
      const waiter = this.waiters.shift();
      if (waiter) waiter.resolve(reply);
      else this.queue.push(reply);
    });
    child.stderr.on('data', (d: Buffer) => (this.stderr += d.toString()));
    // A program that exits on its own closes the pipe; a late write must not crash the caller.
    child.stdin.on('error', () => undefined);
    child.on('close', (code, signal) => {
      this.exited = true;
      this.exitCode = code;
      for (const w of this.waiters.splice(0)) w.reject(new Error(`prog_driver exited (${code ?? signal}); stderr: ${this.stderr}`));
    });
  }

  static async start(env: Record<string, string>): Promise<Driver> {
    const d = new Driver(spawn(join(BUILD_DIR, 'test', 'prog_driver'), [], { env }));
    const ready = await d.next(10_000);
    d.pid = Number(ready.pid);
    return d;
  }

  /** The next reply line, whatever command it answers. */
  next(timeoutMs: number): Promise<Reply> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.exited) return Promise.reject(new Error(`prog_driver has exited; stderr: ${this.stderr}`));
    return new Promise((resolvePromise, reject) => {
      const timer = setTimeout(() => reject(new Error(`prog_driver gave no reply within ${timeoutMs} ms (hang?)`)), timeoutMs);
      this.waiters.push({
        resolve: (r) => {
          clearTimeout(timer);
          resolvePromise(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  write(command: string): void {
    this.child.stdin.write(`${command}\n`);
  }

  send(command: string, timeoutMs = 20_000): Promise<Reply> {
    this.write(command);
    return this.next(timeoutMs);
  }

  kill(): Promise<void> {
    return new Promise((resolvePromise) => {
      if (this.exited) return resolvePromise();
      this.child.once('close', () => resolvePromise());
      this.child.kill('SIGKILL');
    });
  }

  /** Ask the program to exit (if it has not already) and wait until it has. */
  async exit(): Promise<void> {
    if (this.exited) return;
    const closed = new Promise<void>((resolvePromise) => this.child.once('close', () => resolvePromise()));
    if (this.child.stdin.writable) this.child.stdin.end('exit\n');
    await closed;
  }
}
