// prom-client registries. Each server owns one registry (no global default), so tests and
// several parts in one process never collide. Metric names follow sair_<part>_<thing>_<unit>.
import { Registry, collectDefaultMetrics } from 'prom-client';

export function createRegistry(part: string, options: { defaultMetrics?: boolean } = {}): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ part });
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: `sair_${part.replace(/-/g, '_')}_` });
  return registry;
}
