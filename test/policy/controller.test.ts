import { createSairController } from '../../src/policy/controller.js';
import type { ClusterPort, MetricsPort, PipelineObservation, ScalingAction, TickReport } from '../../src/policy/ports.js';
import { policySettings } from '../../src/policy/settings.js';
import { observation, pipeline } from './fixtures.js';

function world(obs: () => PipelineObservation) {
  const applied: ScalingAction[] = [];
  const reports: TickReport[] = [];
  let t = 0;
  const cluster: ClusterPort = {
    listPipelines: async () => [pipeline()],
    allocation: async () => obs().allocation,
    apply: async (_id, a) => void applied.push(a),
    report: async (_id, r) => void reports.push(r),
  };
  const metrics: MetricsPort = { observe: async () => obs() };
  const clock = { now: () => t, sleep: async (ms: number) => void (t += ms), advance: (ms: number) => (t += ms) };
  return { cluster, metrics, clock, applied, reports };
}

describe('SAIR controller tick', () => {
  it('scales up the saturated stage and reports it as the bottleneck', async () => {
    const w = world(() =>
      observation(
        [
          { arrival: 100, perReplica: 80, replicas: 2 },
          { arrival: 100, perReplica: 30, replicas: 2, gpuCores: 50 },
          { arrival: 100, perReplica: 100, replicas: 2 },
        ],
        { p99Ms: 900, sloViolation: 0.2 },
      ),
    );
    const c = createSairController({ ...w, config: policySettings({ exploration: { epsilon: 0 } }) });
    const report = await c.tick(pipeline());
    expect(report.bottleneck).toBe(1);
    expect(w.applied.some((a) => a.kind === 'replicas' && a.stage === 1 && a.replicas > 2)).toBe(true);
    const [d] = c.recentDecisions(5);
    expect(d?.bottleneck).toBe(1);
    expect(d?.candidates).toContain(d?.proposed);
  });
});
