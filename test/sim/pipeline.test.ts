import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { BUILTIN_PIPELINES, PAPER_PIPELINES, builtinPipeline } from '../../src/sim/builtin-pipelines.js';
import { loadPipelineFile, parsePipeline, pipelineSpec } from '../../src/sim/pipeline.js';

const stage = (name: string, extra: Record<string, unknown> = {}) => ({
  name,
  kind: 'cpu',
  service: { baseMs: 0, perItemMs: 5 },
  replicas: { min: 1, initial: 1, max: 3 },
  ...extra,
});

function errorOf(input: unknown): string {
  try {
    parsePipeline(input, 'p.yaml');
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('no error');
}

describe('pipelines', () => {
  it('has the paper’s four CPU -> GPU -> CPU pipelines and SAIR’s own four, all valid', () => {
    expect(BUILTIN_PIPELINES).toHaveLength(8);
    for (const name of PAPER_PIPELINES) {
      expect(builtinPipeline(name)!.stages.map((s) => s.kind)).toEqual(['cpu', 'gpu', 'cpu']);
    }
    const video = builtinPipeline('video-analytics')!;
    expect(video.stages.find((s) => s.name === 'aggregate')!.upstream).toHaveLength(3);
    expect(video.stages[0]!.downstream).toHaveLength(3);
  });

  it('chains stages by default and exposes the controller view through pipelineSpec', () => {
    const p = parsePipeline({ name: 'c', sloP99Ms: 100, stages: [stage('a'), stage('b', { kind: 'gpu', gpuCores: { initial: 40, min: 20, max: 80, step: 20 } })] });
    expect(p.stages[1]!.upstream).toEqual([0]);
    const spec = pipelineSpec(p);
    expect(spec.id).toBe('sim/c');
    expect(spec.stages[1]).toEqual({ index: 1, name: 'b', minReplicas: 1, maxReplicas: 3, gpuCores: { min: 20, max: 80, step: 20 }, upstream: [0], maxBatch: 1 });
    expect(spec.stages[0]!.gpuCores).toBeUndefined();
  });

  it('names the field and the accepted form for bad files', () => {
    expect(errorOf({ name: 'x', sloP99Ms: 0, stages: [stage('a')] })).toContain('p.yaml: sloP99Ms: 0 is not a number > 0');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { kind: 'tpu' })] })).toContain('p.yaml: stages[0].kind: "tpu" is not "cpu" or "gpu"');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { maxBatch: 2.5 })] })).toContain('stages[0].maxBatch: 2.5 is not an integer from 1 to 4096');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { kind: 'gpu' })] })).toContain('stages[0].gpuCores');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { replicas: { min: 2, initial: 1, max: 3 } })] })).toContain('stages[0].replicas.initial: 1 is not min <= initial <= max');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a'), stage('b', { upstream: ['nope'] })] })).toContain('p.yaml: stages[1].upstream[0]: "nope" is not the name of another stage');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a'), stage('a')] })).toContain('stages[1].name: "a" is not a name used by no other stage');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { upstream: ['b'] }), stage('b', { upstream: ['a'] })] })).toContain('is not a graph without cycles');
    expect(errorOf({ name: 'x', sloP99Ms: 10, stages: [stage('a', { batchSize: 4 })] })).toContain('stages[0].batchSize: 4 is not a known field here');
  });

  it('reads the cluster section; without gpuNodes the cluster gives each GPU replica the bounds allow a GPU', () => {
    const gpu = (name: string, max: number) => stage(name, { kind: 'gpu', gpuCores: { initial: 40 }, replicas: { min: 1, initial: 1, max } });
    const sized = parsePipeline({ name: 'c', sloP99Ms: 100, stages: [stage('a'), gpu('b', 6), gpu('c', 5)] });
    expect(sized.cluster).toEqual({ gpuNodes: 2, gpusPerNode: 8, slotPercent: 10, placement: 'binpack' });
    const declared = parsePipeline({ name: 'c', sloP99Ms: 100, cluster: { gpuNodes: 'unlimited', gpusPerNode: 4, slotPercent: 25, placement: 'spread' }, stages: [gpu('b', 6)] });
    expect(declared.cluster).toEqual({ gpuNodes: 'unlimited', gpusPerNode: 4, slotPercent: 25, placement: 'spread' });
    expect(parsePipeline({ name: 'd', sloP99Ms: 100, cluster: { gpuNodes: 'autoscaled' }, stages: [gpu('b', 6)] }).cluster.gpuNodes).toBe('autoscaled');
    for (const name of BUILTIN_PIPELINES) expect(builtinPipeline(name)!.cluster.gpuNodes).toBe('unlimited');
    expect(errorOf({ name: 'x', sloP99Ms: 10, cluster: { gpuNodes: 0 }, stages: [stage('a')] })).toContain('p.yaml: cluster.gpuNodes: 0 is not an integer >= 1, "autoscaled" or "unlimited"');
    expect(errorOf({ name: 'x', sloP99Ms: 10, cluster: { slotPercent: 30 }, stages: [stage('a')] })).toContain("cluster.slotPercent: 30 is not an integer from 1 to 100 that divides 100 (100 / the device plugin's --slots-per-gpu)");
    expect(errorOf({ name: 'x', sloP99Ms: 10, cluster: { placement: 'random' }, stages: [stage('a')] })).toContain('cluster.placement: "random" is not "binpack" or "spread"');
  });

  it('loads YAML files and reports unreadable ones by path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sair-pipe-'));
    const path = join(dir, 'p.yaml');
    writeFileSync(
      path,
      ['name: mine', 'sloP99Ms: 300', 'stages:', '  - name: pre', '    kind: cpu', '    service: { baseMs: 1, perItemMs: 2 }', '    replicas: { min: 1, initial: 2, max: 4 }'].join('\n'),
    );
    const p = loadPipelineFile(path);
    expect(p.name).toBe('mine');
    expect(p.stages[0]!.replicas.initial).toBe(2);
    expect(p.requestTimeoutMs).toBe(10_000);
    expect(() => loadPipelineFile(join(dir, 'missing.yaml'))).toThrow(/--pipeline: .*missing\.yaml \(ENOENT\)" is not a built-in pipeline name or a readable YAML file/);
  });
});
