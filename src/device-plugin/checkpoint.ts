// Which slots the kubelet gave to which container, from the kubelet's device manager checkpoint
// (<device-plugins>/kubelet_internal_checkpoint, JSON). That file is the kubelet's own record of
// allocations and survives plugin restarts, so slots in use are counted from it.
import { readFileSync } from 'node:fs';
import { z } from 'zod';

const Entry = z.object({
  PodUID: z.string(),
  ContainerName: z.string(),
  ResourceName: z.string(),
  // Kubernetes >= 1.20: NUMA node -> ids; older kubelets: a plain list.
  DeviceIDs: z.union([z.record(z.string(), z.array(z.string()).nullable()), z.array(z.string())]).nullable(),
});
const Checkpoint = z.object({
  Data: z.object({ PodDeviceEntries: z.array(Entry).nullable().optional() }),
});

export interface ContainerSlots {
  podUid: string;
  container: string;
  slotIds: string[];
}

export const CHECKPOINT_FILE = 'kubelet_internal_checkpoint';

/** The containers holding `resource` slots; [] when the file is missing. Throws on a malformed file. */
export function readAllocations(path: string, resource: string): ContainerSlots[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new Error(`kubelet checkpoint ${path} is not JSON: ${(err as Error).message}`, { cause: err });
  }
  const parsed = Checkpoint.safeParse(json);
  if (!parsed.success) throw new Error(`kubelet checkpoint ${path} is not in the expected form: ${parsed.error.message}`);
  const out: ContainerSlots[] = [];
  for (const e of parsed.data.Data.PodDeviceEntries ?? []) {
    if (e.ResourceName !== resource || !e.DeviceIDs) continue;
    const ids = Array.isArray(e.DeviceIDs) ? e.DeviceIDs : Object.values(e.DeviceIDs).flatMap((v) => v ?? []);
    out.push({ podUid: e.PodUID, container: e.ContainerName, slotIds: [...new Set(ids)] });
  }
  return out;
}
