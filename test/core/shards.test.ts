// Which shard a pipeline belongs to and what the shard Leases are called: the policy server and
// the failsafe read both from src/core/shards.ts, so these values are a contract between them.
import { describe, expect, it } from '@jest/globals';
import { fairShare, hpaPipelineId, parsePolicyLease, shardName, shardNames, shardOf, shardPreference } from '../../src/core/shards.js';

describe('shards', () => {
  it('maps a pipeline id to a shard by a hash that never changes between replicas or releases', () => {
    // Fixed values: a change here would move pipelines between replicas on upgrade.
    expect([shardOf('ml/chat', 4), shardOf('ml/video', 4), shardOf(hpaPipelineId('ml', 'web'), 4)]).toEqual([3, 0, 0]);
    expect(shardOf('ml/chat', 1)).toBe(0);
  });

  it('spreads many pipelines evenly', () => {
    const counts = new Array<number>(8).fill(0);
    for (let i = 0; i < 8000; i++) counts[shardOf(`team-${i % 50}/pipeline-${i}`, 8)]!++;
    for (const c of counts) expect(Math.abs(c - 1000)).toBeLessThan(120);
  });

  it('keeps the single Lease name with one shard and names each shard with the layout it belongs to', () => {
    expect(shardNames('sair-policy', 1)).toEqual(['sair-policy']);
    expect(shardNames('sair-policy', 3)).toEqual(['sair-policy-shard-0-of-3', 'sair-policy-shard-1-of-3', 'sair-policy-shard-2-of-3']);
    expect(parsePolicyLease('sair-policy', shardName('sair-policy', 2, 3))).toEqual({ kind: 'shard', shard: 2, shards: 3 });
    expect(parsePolicyLease('sair-policy', 'sair-policy')).toEqual({ kind: 'shard', shard: 0, shards: 1 });
    expect(parsePolicyLease('sair-policy', 'sair-policy-member-sair-policy-7c9f8-x2x4q')).toEqual({ kind: 'member', identity: 'sair-policy-7c9f8-x2x4q' });
    expect(parsePolicyLease('sair-policy', 'sair-policyx')).toBeUndefined();
    expect(parsePolicyLease('sair-policy', 'sair-policy-other')).toBeUndefined();
    expect(parsePolicyLease('sair-policy', 'kube-scheduler')).toBeUndefined();
  });

  it('gives each live replica at most ceil(shards / live)', () => {
    expect([fairShare(4, 1), fairShare(4, 2), fairShare(4, 3), fairShare(4, 0), fairShare(5, 2)]).toEqual([4, 2, 2, 4, 3]);
  });

  it('ranks shards differently for different replicas', () => {
    const rank = (id: string) => [0, 1, 2, 3, 4, 5, 6, 7].sort((a, b) => shardPreference(id, b) - shardPreference(id, a)).join();
    expect(rank('policy-a')).not.toEqual(rank('policy-b'));
  });
});
