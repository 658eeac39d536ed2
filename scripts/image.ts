// `npm run image -- [--image NAME[:TAG]] [--platform os/arch[,os/arch]] [--push] [--build-arg K=V] [--dry-run]`:
// builds SAIR's one image from the top-level Dockerfile, with `docker buildx build` when buildx is
// installed (several platforms at once, pushed) and plain `docker build` (one platform) otherwise.
// The argument handling is pure (imageCommands) so a test can check it without a Docker engine.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface ImageOptions {
  /** NAME:TAG, e.g. registry.example.com/sair:0.1.0. */
  image: string;
  platforms: string[];
  push: boolean;
  buildArgs: string[];
  dryRun: boolean;
}

export class ImageArgError extends Error {
  override readonly name = 'ImageArgError';
}

const PLATFORM = /^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/;
/** A reference's last path part holds the tag, after a registry host that may have a :port. */
const hasTag = (image: string) => /:[\w][\w.-]{0,127}$/.test(image.slice(image.lastIndexOf('/') + 1));

/** Options from argv; `version` (package.json's) is the tag when --image names none. */
export function parseImageArgs(argv: readonly string[], version: string): ImageOptions {
  const o: ImageOptions = { image: `sair:${version}`, platforms: ['linux/amd64'], push: false, buildArgs: [], dryRun: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.includes('=') && arg.startsWith('--') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '' || v.startsWith('--')) throw new ImageArgError(`${flag} needs a value, e.g. ${flag === '--image' ? '--image registry.example.com/sair:0.1.0' : flag === '--platform' ? '--platform linux/amd64,linux/arm64' : '--build-arg NODE_IMAGE=node:24.21.0-bookworm-slim@sha256:...'}`);
      return v;
    };
    switch (flag) {
      case '--image': {
        const v = value();
        o.image = hasTag(v) ? v : `${v}:${version}`;
        break;
      }
      case '--platform': {
        o.platforms = value().split(',').map((p) => p.trim()).filter((p) => p !== '');
        const bad = o.platforms.find((p) => !PLATFORM.test(p));
        if (bad !== undefined || o.platforms.length === 0) throw new ImageArgError(`--platform: ${JSON.stringify(bad ?? '')} is not os/arch[/variant]; for example linux/amd64 or linux/amd64,linux/arm64`);
        break;
      }
      case '--build-arg': {
        const v = value();
        if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(v)) throw new ImageArgError(`--build-arg: ${JSON.stringify(v)} is not NAME=value`);
        o.buildArgs.push(v);
        break;
      }
      case '--push':
        o.push = true;
        break;
      case '--dry-run':
        o.dryRun = true;
        break;
      default:
        throw new ImageArgError(`unknown argument ${JSON.stringify(arg)}; expected --image NAME[:TAG], --platform os/arch[,os/arch], --push, --build-arg NAME=value or --dry-run`);
    }
  }
  return o;
}

/** The docker commands that build (and push) the image; throws when this Docker cannot do what was asked. */
export function imageCommands(o: ImageOptions, tools: { buildx: boolean }): string[][] {
  const args = o.buildArgs.flatMap((a) => ['--build-arg', a]);
  if (tools.buildx) {
    if (o.platforms.length > 1 && !o.push) {
      throw new ImageArgError(`${o.platforms.length} platforms (${o.platforms.join(',')}) are built as one multi-platform image, which buildx can push but not load into the local engine: add --push, or build one --platform at a time`);
    }
    return [['docker', 'buildx', 'build', '--platform', o.platforms.join(','), '--tag', o.image, ...args, o.push ? '--push' : '--load', '--file', 'Dockerfile', '.']];
  }
  if (o.platforms.length > 1) {
    throw new ImageArgError(`several platforms (${o.platforms.join(',')}) need docker buildx, which this Docker lacks: install the buildx plugin (https://docs.docker.com/build/), or build one --platform at a time`);
  }
  const build = ['docker', 'build', '--platform', o.platforms[0]!, '--tag', o.image, ...args, '--file', 'Dockerfile', '.'];
  return o.push ? [build, ['docker', 'push', o.image]] : [build];
}

function main(argv: readonly string[]): number {
  const root = fileURLToPath(new URL('..', import.meta.url));
  const { version } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  try {
    const o = parseImageArgs(argv, version);
    const probe = o.dryRun ? { status: 0, error: undefined } : spawnSync('docker', ['buildx', 'version'], { stdio: 'ignore' });
    if (probe.error) throw new ImageArgError(`docker was not found on PATH (${probe.error.message}): install Docker with the buildx plugin, or run with --dry-run to print the commands`);
    const commands = imageCommands(o, { buildx: probe.status === 0 });
    for (const c of commands) {
      process.stdout.write(`${c.join(' ')}\n`);
      if (o.dryRun) continue;
      const r = spawnSync(c[0]!, c.slice(1), { cwd: root, stdio: 'inherit' });
      if (r.status !== 0) {
        process.stderr.write(`npm run image: \`${c[1] === 'buildx' ? 'docker buildx build' : `docker ${c[1]}`}\` failed (exit ${r.status ?? r.signal}); its output is above.\n`);
        return 1;
      }
    }
    if (!o.dryRun) process.stdout.write(`built ${o.image}${o.push ? ' and pushed it' : ''}; set it in manifests/kustomization.yaml (images:) before kubectl apply -k manifests/\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof ImageArgError)) throw err;
    process.stderr.write(`npm run image: ${err.message}\n`);
    return 2;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) process.exitCode = main(process.argv.slice(2));
