import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { installShim } from '../../src/device-plugin/installer.js';

describe('shim installer', () => {
  let dir: string;
  let src: string;
  let lib: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'sair-inst-'));
    src = join(dir, 'libsair-cuda.so');
    lib = join(dir, 'host', 'var', 'lib', 'sair', 'lib');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('installs a versioned file behind the stable name, and does nothing the second time', () => {
    writeFileSync(src, 'ELF build 1');
    const first = installShim(src, lib);
    expect(first.changed).toBe(true);
    expect(readlinkSync(join(lib, 'libsair-cuda.so'))).toBe(`libsair-cuda.so.${first.version}`);
    expect(readFileSync(join(lib, 'libsair-cuda.so'), 'utf8')).toBe('ELF build 1');
    expect(statSync(first.file).mode & 0o777).toBe(0o755);
    expect(installShim(src, lib)).toEqual({ ...first, changed: false });
    expect(readdirSync(lib).filter((n) => n.includes('.tmp-'))).toEqual([]);
  });

  it('switches the stable name on upgrade, keeps the previous build for running processes and prunes older ones', () => {
    const versions: string[] = [];
    for (const build of ['ELF build 1', 'ELF build 2', 'ELF build 3']) {
      writeFileSync(src, build);
      versions.push(installShim(src, lib).version);
    }
    expect(new Set(versions).size).toBe(3);
    expect(readFileSync(join(lib, 'libsair-cuda.so'), 'utf8')).toBe('ELF build 3');
    expect(readdirSync(lib).sort()).toEqual(['libsair-cuda.so', `libsair-cuda.so.${versions[1]}`, `libsair-cuda.so.${versions[2]}`].sort());
  });

  it('repairs a damaged installed copy', () => {
    writeFileSync(src, 'ELF good');
    const r = installShim(src, lib);
    writeFileSync(r.file, 'truncat');
    expect(installShim(src, lib).changed).toBe(true);
    expect(readFileSync(join(lib, 'libsair-cuda.so'), 'utf8')).toBe('ELF good');
  });

  it('names the missing source and how to get it', () => {
    expect(() => installShim(join(dir, 'nope.so'), lib)).toThrow(/shim library .*nope\.so cannot be read .*make -C native.*--shim-source/);
    expect(existsSync(join(lib, 'libsair-cuda.so'))).toBe(false);
  });
});
