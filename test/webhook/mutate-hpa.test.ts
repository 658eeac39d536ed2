import { mutateHpa } from '../../src/webhook/mutate-hpa.js';
import type { HorizontalPodAutoscaler } from '../../src/webhook/k8s-types.js';

function hpa(behavior?: HorizontalPodAutoscaler['spec']['behavior'], metadata: HorizontalPodAutoscaler['metadata'] = { name: 'web' }): HorizontalPodAutoscaler {
  const spec: HorizontalPodAutoscaler['spec'] = { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' }, minReplicas: 1, maxReplicas: 10 };
  if (behavior !== undefined) spec.behavior = behavior;
  return { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata, spec };
}

function run(input: HorizontalPodAutoscaler): HorizontalPodAutoscaler {
  const r = mutateHpa(input);
  if (!r.allowed) throw new Error(r.message);
  return r.object;
}

const userBehavior = {
  scaleUp: { stabilizationWindowSeconds: 0, selectPolicy: 'Max', policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }] },
  scaleDown: { stabilizationWindowSeconds: 300, policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] },
};

describe('mutateHpa', () => {
  it('disables both directions of an HPA without behavior, remembering "null"', () => {
    const out = run(hpa());
    expect(out.spec.behavior).toEqual({ scaleUp: { selectPolicy: 'Disabled' }, scaleDown: { selectPolicy: 'Disabled' } });
    expect(out.metadata).toEqual({
      name: 'web',
      labels: { 'sair.dev/managed': 'true' },
      annotations: { 'sair.dev/original-behavior': 'null', 'sair.dev/managed': 'true' },
    });
  });

  it('keeps the rest of an existing behavior and stores the original as JSON', () => {
    const input = hpa(structuredClone(userBehavior));
    const out = run(input);
    expect(out.spec.behavior).toEqual({
      scaleUp: { ...userBehavior.scaleUp, selectPolicy: 'Disabled' },
      scaleDown: { ...userBehavior.scaleDown, selectPolicy: 'Disabled' },
    });
    expect(JSON.parse(out.metadata!.annotations!['sair.dev/original-behavior']!)).toEqual(userBehavior);
    expect(input.spec.behavior).toEqual(userBehavior);
  });

  it('is idempotent, also after the API server defaults the disabled rules', () => {
    const once = run(hpa(structuredClone(userBehavior)));
    expect(run(once)).toEqual(once);
    const fromNull = run(hpa());
    const defaulted = structuredClone(fromNull);
    defaulted.spec.behavior!.scaleUp = { ...defaulted.spec.behavior!.scaleUp, stabilizationWindowSeconds: 0, policies: [{ type: 'Pods', value: 4, periodSeconds: 15 }] };
    expect(run(defaulted)).toEqual(defaulted);
    expect(run(defaulted).metadata!.annotations!['sair.dev/original-behavior']).toBe('null');
  });

  it('takes a user update that re-enables scaling as the new original', () => {
    const managed = run(hpa(structuredClone(userBehavior)));
    const edited = structuredClone(managed);
    edited.spec.behavior = { scaleUp: { selectPolicy: 'Min' } };
    const out = run(edited);
    expect(JSON.parse(out.metadata!.annotations!['sair.dev/original-behavior']!)).toEqual({ scaleUp: { selectPolicy: 'Min' } });
    expect(out.spec.behavior).toEqual({ scaleUp: { selectPolicy: 'Disabled' }, scaleDown: { selectPolicy: 'Disabled' } });
  });

  it('restores the original behavior when the HPA is labelled sair.dev/inject=false', () => {
    const managed = run(hpa(structuredClone(userBehavior), { name: 'web', labels: { team: 'a' } }));
    managed.metadata!.labels!['sair.dev/inject'] = 'false';
    const out = run(managed);
    expect(out.spec.behavior).toEqual(userBehavior);
    expect(out.metadata).toEqual({ name: 'web', labels: { team: 'a', 'sair.dev/inject': 'false' }, annotations: {} });

    const managedNull = run(hpa());
    managedNull.metadata!.labels!['sair.dev/inject'] = 'false';
    const restored = run(managedNull);
    expect(restored.spec).not.toHaveProperty('behavior');
  });

  it('leaves an opted-out HPA that SAIR never managed alone', () => {
    const input = hpa(structuredClone(userBehavior), { name: 'web', labels: { 'sair.dev/inject': 'false' } });
    expect(mutateHpa(input)).toEqual({ allowed: true, object: input, warnings: [] });
  });

  it('replaces an unreadable stored original with the current behavior', () => {
    const input = hpa({ scaleDown: { selectPolicy: 'Min' } }, { name: 'web', annotations: { 'sair.dev/original-behavior': '{broken' } });
    const out = run(input);
    expect(out.metadata!.annotations!['sair.dev/original-behavior']).toBe('{"scaleDown":{"selectPolicy":"Min"}}');
  });

  it('warns on opt-out when the stored original cannot be read', () => {
    const input = hpa({ scaleUp: { selectPolicy: 'Disabled' } }, { name: 'web', labels: { 'sair.dev/inject': 'false', 'sair.dev/managed': 'true' }, annotations: { 'sair.dev/original-behavior': '[1]' } });
    const r = mutateHpa(input);
    expect(r).toMatchObject({ allowed: true, warnings: [expect.stringContaining('sair.dev/original-behavior is not a JSON object or null')] });
  });

  it('leaves an HPA the failsafe suspended as it is, so its own behavior keeps scaling until the failsafe takes it over again', () => {
    const suspended = hpa(userBehavior, {
      name: 'web',
      labels: { 'sair.dev/managed': 'true' },
      annotations: { 'sair.dev/original-behavior': JSON.stringify(userBehavior), 'sair.dev/managed': 'true', 'sair.dev/failsafe': '{"reason":"no leader","since":"2026-01-01T00:00:00Z"}' },
    });
    expect(run(suspended)).toEqual(suspended);
  });
});
