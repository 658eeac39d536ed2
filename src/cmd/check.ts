// `sair check`: a preflight of the cluster the current kubeconfig points at, before and after
// installing SAIR. Exit status 1 when a check fails, 0 otherwise (warnings included).
import type { Command } from '../common/command.js';
import { fields, helpText, loadConfig } from '../common/config.js';
import { createKubeClients, kubeConfigForServer, loadKubeConfig } from '../common/k8s.js';
import { z } from 'zod';
import { runChecks } from '../check/checks.js';
import { observeCluster } from '../check/observe.js';
import { renderReport } from '../check/report.js';

export const spec = {
  namespace: { env: 'SAIR_NAMESPACE', flag: '--namespace', form: 'a namespace name', help: 'namespace SAIR is installed in', schema: fields.string('sair-system') },
  prometheusUrl: {
    env: 'SAIR_PROMETHEUS_URL',
    flag: '--prometheus-url',
    form: 'an http(s) URL of the Prometheus HTTP API reachable from here, e.g. http://127.0.0.1:9090 after kubectl port-forward',
    help: 'Prometheus to check (default: SAIR_PROMETHEUS_URL of ConfigMap sair-policy)',
    schema: z.url().optional(),
  },
  apiServer: {
    env: 'SAIR_KUBE_API_SERVER',
    flag: '--kube-api-server',
    form: 'a plain-HTTP API server URL (kubectl proxy), e.g. http://127.0.0.1:8001',
    help: 'talk to this API server instead of the current kubeconfig context',
    schema: z.url().optional(),
  },
  timeoutMs: { env: 'SAIR_CHECK_TIMEOUT_MS', flag: '--timeout-ms', form: 'an integer from 100 to 60000', help: 'per Prometheus query', schema: z.coerce.number().int().min(100).max(60_000).default(5_000) },
};

export const command: Command = {
  name: 'check',
  summary: 'preflight of the current kubeconfig\'s cluster: Kubernetes version, GPU nodes and ownership, Pod Security, image, device plugin, certificates, webhook, Prometheus, the leader',
  help: () => helpText('check', command.summary, spec),
  async run(argv, env) {
    const cfg = loadConfig(spec, env, argv);
    const kc = cfg.apiServer ? kubeConfigForServer(cfg.apiServer, cfg.namespace) : loadKubeConfig();
    const facts = await observeCluster(createKubeClients(kc), { namespace: cfg.namespace, prometheusUrl: cfg.prometheusUrl, timeoutMs: cfg.timeoutMs, now: new Date() });
    const results = runChecks(facts);
    process.stdout.write(renderReport(results, `sair check: ${kc.getCurrentCluster()?.server ?? 'cluster'}, namespace ${cfg.namespace}`));
    return results.some((r) => r.status === 'fail') ? 1 : 0;
  },
};
