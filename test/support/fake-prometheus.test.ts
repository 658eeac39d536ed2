import { describe, expect, it } from '@jest/globals';
import type { FakePrometheus } from './fake-prometheus.js';
import { useFakePrometheus } from './use-fake-prometheus.js';

/** The `data` (or the error) of one instant query, as the wire carries it. */
async function ask(prom: FakePrometheus, query: string): Promise<{ status: number; json: { status: string; data?: { result: unknown }; error?: string } }> {
  const res = await fetch(`${prom.url}/api/v1/query`, { method: 'POST', body: new URLSearchParams({ query }) });
  return { status: res.status, json: (await res.json()) as never };
}

describe('fake Prometheus: the operators it evaluates as Prometheus does', () => {
  const prom = useFakePrometheus();

  it('answers `or` with the union by label set, the left side first', async () => {
    prom().on('a_total', { vector: [{ metric: { pod: 'x' }, value: '1' }] });
    prom().on('b_total', { vector: [{ metric: { pod: 'x' }, value: '2' }, { metric: { pod: 'y' }, value: '3' }] });
    const { json } = await ask(prom(), 'a_total or (b_total)');
    expect(json.data!.result).toEqual([
      { metric: { pod: 'x' }, value: [expect.any(Number), '1'] },
      { metric: { pod: 'y' }, value: [expect.any(Number), '3'] },
    ]);
    expect(prom().leaves).toEqual(['a_total', 'b_total']);
    // A missing left side leaves the literal.
    expect((await ask(prom(), 'sum(c_total) or vector(0)')).json.data!.result).toEqual([{ metric: {}, value: [expect.any(Number), '0'] }]);
  });

  it('sets a label with label_replace, from a constant or a capture, and leaves unmatched series alone', async () => {
    prom().on('up', { vector: [{ metric: { pod: 'web-1' }, value: '1' }, { metric: { pod: 'db' }, value: '0' }] });
    const { json } = await ask(prom(), 'label_replace(up, "app", "$1", "pod", "(.*)-[0-9]+")');
    expect(json.data!.result).toEqual([
      { metric: { pod: 'web-1', app: 'web' }, value: [expect.any(Number), '1'] },
      { metric: { pod: 'db' }, value: [expect.any(Number), '0'] },
    ]);
    prom().on('sum(up)', { vector: [{ value: '1' }] });
    prom().on('count(up)', { vector: [{ value: '2' }] });
    const constant = await ask(prom(), 'label_replace((sum(up)), "arm", "7", "", "") or label_replace((count(up)), "arm", "8", "", "")');
    expect(constant.json.data!.result).toEqual([
      { metric: { arm: '7' }, value: [expect.any(Number), '1'] },
      { metric: { arm: '8' }, value: [expect.any(Number), '2'] },
    ]);
  });

  it('refuses what Prometheus refuses: duplicate label sets, scalars in `or`, wrong arity', async () => {
    prom().on('up', { vector: [{ metric: { pod: 'a' }, value: '1' }, { metric: { pod: 'b' }, value: '1' }] });
    prom().on('two', { scalar: '2' });
    const dup = await ask(prom(), 'label_replace(up, "pod", "same", "pod", ".*")');
    expect(dup.status).toBe(422);
    expect(dup.json.error).toBe('vector cannot contain metrics with the same labelset');
    expect((await ask(prom(), 'up or two')).json.error).toContain('not allowed in binary scalar expression');
    expect((await ask(prom(), 'label_replace(up, "a")')).status).toBe(400);
    // A string that holds " or " is not split.
    prom().on('x{a="b or c"}', { vector: [{ value: '5' }] });
    expect((await ask(prom(), 'x{a="b or c"}')).json.data!.result).toEqual([{ metric: {}, value: [expect.any(Number), '5'] }]);
  });
});
