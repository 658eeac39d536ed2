// scripts/image.ts (`npm run image`) and the Dockerfile it builds, checked without a Docker engine:
// the docker commands each set of arguments gives, the errors that say what to do, and that the
// Dockerfile's bases are pinned and run the Node version of the `node` devDependency.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ImageArgError, imageCommands, parseImageArgs } from '../../scripts/image.js';

const ROOT = resolve(import.meta.dirname, '../..');
const pkg = JSON.parse(readFileSync(resolve(ROOT, 'package.json'), 'utf8')) as { version: string; devDependencies: Record<string, string>; scripts: Record<string, string> };
const dockerfile = readFileSync(resolve(ROOT, 'Dockerfile'), 'utf8');

/** Global ARG defaults, with ${VAR} resolved as BuildKit does. */
function dockerArgs(text: string): Map<string, string> {
  const args = new Map<string, string>();
  for (const m of text.matchAll(/^ARG (\w+)=(\S+)$/gm)) args.set(m[1]!, m[2]!.replace(/\$\{(\w+)\}/g, (_, v: string) => args.get(v) ?? ''));
  return args;
}

describe('npm run image', () => {
  it('is the script in package.json', () => {
    expect(pkg.scripts['image']).toBe('node scripts/image.ts');
  });

  it('builds with buildx for the given platforms and pushes, with the package version as the default tag', () => {
    const o = parseImageArgs(['--image', 'registry.example.com:5000/ml/sair', '--platform', 'linux/amd64,linux/arm64', '--push'], '0.1.0');
    expect(o.image).toBe('registry.example.com:5000/ml/sair:0.1.0');
    expect(imageCommands(o, { buildx: true })).toEqual([
      ['docker', 'buildx', 'build', '--platform', 'linux/amd64,linux/arm64', '--tag', 'registry.example.com:5000/ml/sair:0.1.0', '--push', '--file', 'Dockerfile', '.'],
    ]);
  });

  it('loads a one-platform build into the local engine, and keeps an explicit tag and build args', () => {
    const o = parseImageArgs(['--image=ghcr.io/me/sair:dev', '--build-arg', 'NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:abc'], '0.1.0');
    expect(imageCommands(o, { buildx: true })).toEqual([
      ['docker', 'buildx', 'build', '--platform', 'linux/amd64', '--tag', 'ghcr.io/me/sair:dev', '--build-arg', 'NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:abc', '--load', '--file', 'Dockerfile', '.'],
    ]);
    expect(parseImageArgs([], '0.1.0').image).toBe('sair:0.1.0');
  });

  it('without buildx: docker build --platform, then docker push', () => {
    const o = parseImageArgs(['--image', 'registry.example.com/sair:0.1.0', '--platform', 'linux/arm64', '--push'], '0.1.0');
    expect(imageCommands(o, { buildx: false })).toEqual([
      ['docker', 'build', '--platform', 'linux/arm64', '--tag', 'registry.example.com/sair:0.1.0', '--file', 'Dockerfile', '.'],
      ['docker', 'push', 'registry.example.com/sair:0.1.0'],
    ]);
  });

  it('refuses what Docker cannot do, saying what to do instead', () => {
    const multi = parseImageArgs(['--platform', 'linux/amd64,linux/arm64'], '0.1.0');
    expect(() => imageCommands(multi, { buildx: true })).toThrow(/add --push/);
    expect(() => imageCommands(multi, { buildx: false })).toThrow(/install the buildx plugin/);
    expect(() => parseImageArgs(['--platform', 'amd64'], '0.1.0')).toThrow(ImageArgError);
    expect(() => parseImageArgs(['--platform', 'amd64'], '0.1.0')).toThrow(/for example linux\/amd64/);
    expect(() => parseImageArgs(['--image'], '0.1.0')).toThrow(/--image needs a value/);
    expect(() => parseImageArgs(['--tag', 'x'], '0.1.0')).toThrow(/unknown argument "--tag"; expected --image/);
    expect(() => parseImageArgs(['--build-arg', 'oops'], '0.1.0')).toThrow(/is not NAME=value/);
  });

  it('runs under the pinned Node and prints the commands with --dry-run', () => {
    const node = resolve(ROOT, 'node_modules/.bin/node');
    const out = execFileSync(node, ['scripts/image.ts', '--dry-run', '--image', 'registry.example.com/sair', '--platform', 'linux/amd64,linux/arm64', '--push'], { cwd: ROOT, encoding: 'utf8' });
    expect(out.trim()).toBe(`docker buildx build --platform linux/amd64,linux/arm64 --tag registry.example.com/sair:${pkg.version} --push --file Dockerfile .`);
  });
});

describe('Dockerfile', () => {
  const args = dockerArgs(dockerfile);
  const froms = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]!.replace(/^\$\{(\w+)\}$/, (_, v: string) => args.get(v) ?? v));

  it('runs the Node version of the `node` devDependency, in the build and the runtime stage', () => {
    expect(args.get('NODE_VERSION')).toBe(pkg.devDependencies['node']);
    const nodeStages = froms.filter((f) => f.startsWith('node:'));
    expect(nodeStages).toHaveLength(2);
    for (const f of nodeStages) expect(f).toBe(`node:${pkg.devDependencies['node']}-bookworm-slim`);
  });

  it('pins every base by an exact version tag (no floating major or latest)', () => {
    expect(froms).toHaveLength(3);
    for (const f of froms) {
      const tag = f.slice(f.lastIndexOf(':') + 1);
      expect(tag).toMatch(/^\d+\.\d+\.\d+-/);
    }
  });
});
