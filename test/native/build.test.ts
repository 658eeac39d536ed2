// The native build: it fails with a message that says what is missing and what to do.
import { spawnSync } from 'node:child_process';
import { NATIVE_DIR } from './programs.js';

function make(...args: string[]) {
  return spawnSync('make', ['-s', '-C', NATIVE_DIR, ...args], { encoding: 'utf8', timeout: 60_000 });
}

describe('native build', () => {
  it('names the missing CUDA headers and how to point at them', () => {
    const r = make('CUDA_HOME=/nonexistent/cuda');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain('native: /nonexistent/cuda/include/cuda.h not found; install the CUDA toolkit headers or set CUDA_HOME');
  }, 60_000);

  it('names the missing compiler', () => {
    const r = make('CC=no-such-cc');
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("native: C compiler 'no-such-cc' not found");
  }, 60_000);

  it('builds the shim without any link-time dependency on libcuda or NVML', () => {
    expect(make().status).toBe(0);
    const needed = spawnSync('readelf', ['-d', `${NATIVE_DIR}/build/libsair-cuda.so`], { encoding: 'utf8' }).stdout;
    expect(needed).toContain('NEEDED');
    expect(needed).not.toMatch(/libcuda|libnvidia-ml/);
  }, 60_000);
});
