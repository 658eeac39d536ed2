// The webhook's Prometheus metrics, registered on the server's own registry.
import { Counter, Histogram, type Registry } from 'prom-client';

export interface WebhookMetrics {
  requests: Counter<'kind' | 'result'>;
  duration: Histogram<'kind'>;
  mutations: Counter<'kind'>;
  denials: Counter<'kind'>;
  errors: Counter<'type'>;
  certReloads: Counter<'result'>;
}

export function createWebhookMetrics(registry: Registry): WebhookMetrics {
  const registers = [registry];
  return {
    requests: new Counter({
      name: 'sair_webhook_admission_requests_total',
      help: 'AdmissionReview requests by object kind and result (mutated, unchanged, skipped, denied, error, bad_request, too_large)',
      labelNames: ['kind', 'result'],
      registers,
    }),
    duration: new Histogram({
      name: 'sair_webhook_admission_duration_seconds',
      help: 'Time from a parsed AdmissionReview to its response being written',
      labelNames: ['kind'],
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    }),
    mutations: new Counter({ name: 'sair_webhook_mutations_total', help: 'Objects patched, by kind', labelNames: ['kind'], registers }),
    denials: new Counter({ name: 'sair_webhook_denials_total', help: 'Objects denied (invalid quota annotations or object), by kind', labelNames: ['kind'], registers }),
    errors: new Counter({
      name: 'sair_webhook_errors_total',
      help: 'Requests that failed: bad_request (400), too_large (413), internal (answered fail-open or fail-closed)',
      labelNames: ['type'],
      registers,
    }),
    certReloads: new Counter({
      name: 'sair_webhook_certificate_reloads_total',
      help: 'Serving certificate reloads from the certificate directory, by result',
      labelNames: ['result'],
      registers,
    }),
  };
}
