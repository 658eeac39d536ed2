// One directory per allocation (a container's set of sair.dev/gpu slots) under the allocation
// root, holding the limits file and the state file the device plugin mounts into that container
// alone. The id is a hash of the slot ids, so the plugin (at Allocate) and the node agent (from
// the kubelet's PodResources answer) name the same directory without sharing any state.
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { LIMITS_FILE_NAME, STATE_FILE_NAME, createLimitsFile, createStateFile, type ControlLimits } from './control-file.js';

const ID = /^[0-9a-f]{20}$/;

/** The allocation id of a set of slot ids (order and duplicates do not matter). */
export function allocationId(slotIds: readonly string[]): string {
  const key = [...new Set(slotIds)].sort().join('\n');
  return createHash('sha256').update(key).digest('hex').slice(0, 20);
}

export interface AllocationPaths {
  dir: string;
  limits: string;
  state: string;
}

export class AllocationFiles {
  constructor(readonly root: string) {}

  paths(id: string): AllocationPaths {
    const dir = join(this.root, id);
    return { dir, limits: join(dir, LIMITS_FILE_NAME), state: join(dir, STATE_FILE_NAME) };
  }

  /** Fresh files for an allocation: the given limits and an empty state. */
  create(id: string, limits: ControlLimits): AllocationPaths {
    const p = this.paths(id);
    mkdirSync(this.root, { recursive: true, mode: 0o755 });
    mkdirSync(p.dir, { recursive: true });
    // Root's own directory: the pod sees only the two files mounted into it, never this one.
    chmodSync(p.dir, 0o755);
    createLimitsFile(p.limits, limits);
    createStateFile(p.state);
    return p;
  }

  /** Allocation directories on disk with their age in ms (from the directory's mtime). */
  list(nowMs: number): { id: string; ageMs: number }[] {
    let names: string[];
    try {
      names = readdirSync(this.root);
    } catch {
      return [];
    }
    const out: { id: string; ageMs: number }[] = [];
    for (const name of names) {
      if (!ID.test(name)) continue;
      try {
        out.push({ id: name, ageMs: nowMs - statSync(join(this.root, name)).mtimeMs });
      } catch {
        // Removed meanwhile.
      }
    }
    return out;
  }

  remove(id: string): void {
    if (ID.test(id)) rmSync(this.paths(id).dir, { recursive: true, force: true });
  }
}
