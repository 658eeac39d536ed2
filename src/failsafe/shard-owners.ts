// Which shards may own an HPA, for the failsafe: the shard of the HPA's own single-stage pipeline
// (namespace/hpa:name) and the shard of every InferencePipeline that names the HPA's Deployment
// as a stage. The policy server scales such a Deployment through the pipeline when the pipeline's
// spec is valid and through the HPA otherwise; the failsafe does not judge specs, so it follows
// both: the HPA gets its behavior back when either Lease lapses (sometimes more than needed,
// never less). Pure.
import type * as k8s from '@kubernetes/client-node';
import { hpaPipelineId, shardOf } from '../core/shards.js';

/** An InferencePipeline as listed: only its namespace, name and the stages' Deployments are read. */
export interface PipelineObject {
  metadata?: { namespace?: string; name?: string };
  spec?: unknown;
}

/** `namespace/deployment` -> ids of the pipelines naming it as a stage. */
export function claimsOf(pipelines: readonly PipelineObject[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const p of pipelines) {
    const ns = p.metadata?.namespace ?? '';
    const stages = (p.spec as { stages?: unknown } | undefined)?.stages;
    if (!Array.isArray(stages)) continue;
    for (const s of stages as { deployment?: unknown }[]) {
      if (typeof s?.deployment !== 'string') continue;
      const key = `${ns}/${s.deployment}`;
      out.set(key, [...(out.get(key) ?? []), `${ns}/${p.metadata?.name ?? ''}`]);
    }
  }
  return out;
}

/** The shards whose Lease decides for this HPA, sorted. */
export function shardsOfHpa(hpa: k8s.V2HorizontalPodAutoscaler, claims: ReadonlyMap<string, readonly string[]>, shards: number): number[] {
  const ns = hpa.metadata?.namespace ?? '';
  const target = hpa.spec?.scaleTargetRef;
  const ids = [hpaPipelineId(ns, hpa.metadata?.name ?? ''), ...(target?.kind === 'Deployment' ? (claims.get(`${ns}/${target.name}`) ?? []) : [])];
  return [...new Set(ids.map((id) => shardOf(id, shards)))].sort((a, b) => a - b);
}
