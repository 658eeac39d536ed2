// The pod-deletion-cost the node agent keeps on GPU pods: the share others hold on the pod's GPU,
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

  it('are written with the node agent\'s mark, rewritten only when they change, and never over a cost someone else set', () => {
    expect(deletionCostPatch(undefined, 40)).toEqual({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' });
    expect(deletionCostPatch({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' }, 40)).toBeNull();
    expect(deletionCostPatch({ [POD_DELETION_COST]: '40', [SAIR_DELETION_COST]: '40' }, 0)).toEqual({ [POD_DELETION_COST]: '0', [SAIR_DELETION_COST]: '0' });
    // From the pod template, or changed by a person after the agent wrote it: theirs.
    expect(deletionCostPatch({ [POD_DELETION_COST]: '100' }, 0)).toBeNull();
    expect(deletionCostPatch({ [POD_DELETION_COST]: '7', [SAIR_DELETION_COST]: '40' }, 0)).toBeNull();
  });
});
