// Installs the CUDA shim (libsair-cuda.so) into the host directory that GPU containers mount.
// Each build is written once under a versioned name (content hash) through temp file, fsync and
// rename, and the stable name is a symlink swapped with a rename, so a container starting at any
// moment maps either the old or the new library, never a torn one. Running processes keep the
// file they mapped; older versions beyond the previous one are removed.
import { createHash } from 'node:crypto';
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

export const SHIM_NAME = 'libsair-cuda.so';

export interface InstallResult {
  /** The versioned file the stable name now points at. */
  file: string;
  version: string;
  /** False when that version was already installed and current. */
  changed: boolean;
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function writeAtomically(path: string, data: Buffer, mode: number): void {
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, data, 0, data.length, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

function currentTarget(link: string): string | undefined {
  try {
    return readlinkSync(link);
  } catch {
    return undefined;
  }
}

/** Installs `source` into `libDir` unless the same content is already current there. */
export function installShim(source: string, libDir: string): InstallResult {
  let data: Buffer;
  try {
    data = readFileSync(source);
  } catch (err) {
    throw new Error(`shim library ${source} cannot be read (${(err as Error).message}); build it with 'make -C native' or set --shim-source`, {
      cause: err,
    });
  }
  const version = createHash('sha256').update(data).digest('hex').slice(0, 16);
  const versioned = `${SHIM_NAME}.${version}`;
  const link = join(libDir, SHIM_NAME);
  mkdirSync(libDir, { recursive: true, mode: 0o755 });

  const target = join(libDir, versioned);
  let present: boolean;
  try {
    present = statSync(target).size === data.length && createHash('sha256').update(readFileSync(target)).digest('hex').startsWith(version);
  } catch {
    present = false;
  }
  if (present && currentTarget(link) === versioned) return { file: target, version, changed: false };

  if (!present) writeAtomically(target, data, 0o755);
  const tmpLink = `${link}.tmp-${process.pid}`;
  rmSync(tmpLink, { force: true });
  symlinkSync(versioned, tmpLink);
  renameSync(tmpLink, link);
  fsyncDir(libDir);
  pruneOldVersions(libDir, versioned);
  return { file: target, version, changed: true };
}

/** Keeps the current version and the most recent previous one (by mtime). */
function pruneOldVersions(libDir: string, current: string): void {
  const old = readdirSync(libDir)
    .filter((name) => name.startsWith(`${SHIM_NAME}.`) && name !== current && !name.includes('.tmp-'))
    .map((name) => ({ name, mtime: statSync(join(libDir, name)).mtimeMs }))
    .sort((a, b) => b.mtime - a.mtime);
  for (const { name } of old.slice(1)) rmSync(join(libDir, name), { force: true });
}
