// Where the leader's HTTP API is, for a standby that forwards to it: the Lease names the holder
// (its pod name, the identity it campaigns with) and the holder's pod its IP. Cached briefly, so a
// burst of dashboard requests reads the API server once.
import type * as k8s from '@kubernetes/client-node';
import { statusOf } from '../../common/k8s.js';

export interface LeaderAddressOptions {
  core: k8s.CoreV1Api;
  coordination: k8s.CoordinationV1Api;
  namespace: string;
  leaseName: string;
  /** The port every replica's HTTP API listens on. */
  port: number;
  cacheMs?: number;
  now?: () => number;
}

export function leaderAddress(o: LeaderAddressOptions): () => Promise<string | undefined> {
  const now = o.now ?? Date.now;
  let cached: { at: number; url: string | undefined } | undefined;
  const read = async (): Promise<string | undefined> => {
    try {
      const holder = (await o.coordination.readNamespacedLease({ name: o.leaseName, namespace: o.namespace })).spec?.holderIdentity;
      if (!holder) return undefined;
      const ip = (await o.core.readNamespacedPod({ name: holder, namespace: o.namespace })).status?.podIP;
      return ip ? `http://${ip.includes(':') ? `[${ip}]` : ip}:${o.port}` : undefined;
    } catch (err) {
      if (statusOf(err) === 404) return undefined;
      throw err;
    }
  };
  return async () => {
    if (cached && now() - cached.at < (o.cacheMs ?? 2_000)) return cached.url;
    const url = await read();
    cached = { at: now(), url };
    return url;
  };
}
