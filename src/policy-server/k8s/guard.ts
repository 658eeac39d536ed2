// Who may write to the cluster now. The leader elector implements it (its lease valid at this
// moment); without leader election this replica always may. With shards each pipeline's writes
// ask the elector of the pipeline's shard (GuardFor).
import type * as k8s from '@kubernetes/client-node';

export type CallOptions = k8s.ConfigurationOptions<k8s.ObservableMiddleware>;

export interface WriteGuard {
  /** Per-call options for one write; throws NotLeaderError when this replica may not write now. */
  writeOptions(opt?: CallOptions): CallOptions;
}

export const ALWAYS_LEADING: WriteGuard = { writeOptions: (opt) => opt ?? {} };

/** The guard for writes on behalf of one pipeline (its shard's Lease). */
export type GuardFor = (pipelineId: string) => WriteGuard;
