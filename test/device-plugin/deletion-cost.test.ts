// The pod-deletion-cost the node agent keeps on GPU pods: the share the namespace's other pods hold on the pod's GPU,
// so a ReplicaSet scales down the replica whose GPU it leaves emptiest; a cost someone else set stays.
import { POD_DELETION_COST, SAIR_DELETION_COST, deletionCostPatch, deletionCosts } from '../../src/device-plugin/deletion-cost.js';

const at = (pod: string, gpus: string[], gpuCores: number) => ({ namespace: 'ml', pod, gpus, gpuCores });

describe('deletion costs', () => {
  it('are the share the other allocations hold on the pod\'s GPU, the most over the GPUs it spans', () => {
    const costs = deletionCosts([at('alone', ['g0'], 40), at('x', ['g1'], 30), at('y', ['g1'], 50), at('wide', ['g1', 'g2'], 10), at('z', ['g2'], 25)]);
    expect(Object.fromEntries(costs)).toEqual({ 'ml/alone': 0, 'ml/x': 60, 'ml/y': 40, 'ml/wide': 80, 'ml/z': 10 });
  });

  it('count a pod\'s own containers as its own', () => {
    const costs = deletionCosts([at('p', ['g0'], 20), at('p', ['g0'], 30), at('q', ['g0'], 10)]);
    expect(costs.get('ml/p')).toBe(10);
    expect(costs.get('ml/q')).toBe(50);
  });

  it('count only the pod\'s own namespace, so another tenant on the GPU neither shows in them nor reorders them', () => {
    const alone = deletionCosts([at('a', ['g0'], 40), at('b', ['g1'], 30), at('c', ['g1'], 20)]);
    const neighbours = [
      { namespace: 'other', pod: 'n1', gpus: ['g0'], gpuCores: 50 },
      { namespace: 'other', pod: 'n2', gpus: ['g1'], gpuCores: 10 },
    ];
    const shared = deletionCosts([at('a', ['g0'], 40), ...neighbours, at('b', ['g1'], 30), at('c', ['g1'], 20)]);
    for (const pod of ['ml/a', 'ml/b', 'ml/c']) expect(shared.get(pod)).toBe(alone.get(pod));
    expect(Object.fromEntries(alone)).toEqual({ 'ml/a': 0, 'ml/b': 20, 'ml/c': 30 });
    // The neighbours' costs count only theirs: n1 and n2 are each alone in their namespace on their GPU.
    expect(shared.get('other/n1')).toBe(0);
    expect(shared.get('other/n2')).toBe(0);
  });

  it('are written with the node agent\'s mark, rewritten only when they change, and never over a cost someone else set', () => {
    expect(deletionCostPatch(undefined, 40)).toEqual({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' });
    expect(deletionCostPatch({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' }, 40)).toBeNull();
    expect(deletionCostPatch({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' }, 0)).toEqual({ [POD_DELETION_COST]: '0', [SAIR_DELETION_COST]: '0' });
    // From the pod template, or changed by a person after the agent wrote it: theirs.
    expect(deletionCostPatch({ [POD_DELETION_COST]: '100' }, 0)).toBeNull();
    expect(deletionCostPatch({ [POD_DELETION_COST]: '7', [SAIR_DELETION_COST]: '40' }, 0)).toBeNull();
  });
});
