import { afterAll, beforeAll, beforeEach } from '@jest/globals';
import { startFakePrometheus, type FakePrometheus } from './fake-prometheus.js';

/**
 * One fake Prometheus for the enclosing `describe`, with its rules and logs cleared before each
 * test. Kept apart from fake-prometheus.ts, which the policy-server bench loads outside jest.
 */
export function useFakePrometheus(): () => FakePrometheus {
  let prom: FakePrometheus | undefined;
  beforeAll(async () => {
    prom = await startFakePrometheus();
  });
  afterAll(async () => {
    await prom?.close();
  });
  beforeEach(() => prom!.reset());
  return () => prom!;
}
