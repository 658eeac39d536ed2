// The combined tick query against a real Prometheus, where one is installed (`prometheus` on the
// PATH, or SAIR_PROMETHEUS_BIN; Debian and Ubuntu package it as `prometheus`). It scrapes a small
// exporter of the presets' series every second, then every built-in query is asked alone and as
// an arm of TickQueries.combine at the same instant: each arm must answer what its query answers
// alone. Without a Prometheus binary the test is skipped and says so.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PrometheusClient } from '../../../src/policy-server/prometheus/client.js';
import { ARM_LABEL, TickQueries } from '../../../src/policy-server/prometheus/metrics-port.js';
import { BATCH_QUERIES, GPU_CORES_ENFORCED_QUERY, PRESETS, clampedPodsQuery, gpusInUseQuery, render } from '../../../src/policy-server/prometheus/queries.js';

async function freePort(): Promise<number> {
  const probe = http.createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

const BIN = process.env.SAIR_PROMETHEUS_BIN ?? 'prometheus';
const HAVE = spawnSync(BIN, ['--version']).status === 0;

/** Counters that grow with time, gauges that move, for two pods of `pre` and two of `llm` in ml. */
function exposition(t: number): string {
  const lines: string[] = [];
  const pods = { pre: ['pre-6d8f7-abc12', 'pre-6d8f7-def34'], llm: ['llm-5c9b2-ghi56', 'llm-5c9b2-jkl78'] };
  Object.values(pods).forEach((names, d) =>
    names.forEach((pod, p) => {
      const l = `namespace="ml",pod="${pod}"`;
      const rate = 10 * (d + 1) + p;
      const n = rate * t;
      lines.push(`http_request_duration_seconds_count{${l}} ${n}`, `http_request_duration_seconds_count{${l},code="503"} ${0.1 * n}`);
      for (const [le, f] of [['0.05', 0.3], ['0.1', 0.7], ['0.5', 0.95], ['+Inf', 1]] as const) lines.push(`http_request_duration_seconds_bucket{${l},le="${le}"} ${f * n}`);
      lines.push(`container_cpu_usage_seconds_total{${l},container="app"} ${0.4 * t}`, `kube_pod_container_resource_requests{${l},resource="cpu"} 1`);
      lines.push(`vllm:e2e_request_latency_seconds_count{${l}} ${n}`, `vllm:num_requests_waiting{${l}} ${Math.round(5 + 3 * Math.sin(t / 5))}`);
      for (const [le, f] of [['0.2', 0.5], ['1', 0.9], ['+Inf', 1]] as const) lines.push(`vllm:e2e_request_latency_seconds_bucket{${l},le="${le}"} ${f * n}`);
      lines.push(`vllm:gpu_cache_usage_perc{${l}} ${0.5 + 0.1 * p}`);
      lines.push(`nv_inference_request_success{${l}} ${n}`, `nv_inference_request_failure{${l}} ${0.01 * n}`, `nv_inference_pending_request_count{${l}} 2`);
      lines.push(`nv_inference_request_duration_us{${l}} ${5000 * n}`, `nv_inference_request_summary_us{${l},quantile="0.99"} ${9000 + p}`, `nv_gpu_utilization{${l}} 0.6`);
      lines.push(`nv_inference_count{${l}} ${n}`, `nv_inference_exec_count{${l}} ${n / 4}`, `nv_inference_compute_infer_duration_us{${l}} ${3000 * n}`);
      lines.push(`sair_device_plugin_pod_gpu_kernel_seconds_total{${l}} ${0.3 * t}`, `sair_device_plugin_pod_gpu_cores_limit_percent{${l}} ${40 + 10 * p}`);
      // Each pod's slots on a GPU; the two pre pods share GPU-0.
      lines.push(`sair_device_plugin_container_gpu_slots{${l},container="main",uuid="GPU-${d === 0 ? 0 : p + 1}"} ${2 + p}`);
    }),
  );
  return `${lines.join('\n')}\n`;
}

describe('the combined tick query on a real Prometheus', () => {
  let exporter: http.Server;
  let prometheus: ChildProcess | undefined;
  let dir: string;
  let client: PrometheusClient;

  beforeAll(async () => {
    if (!HAVE) return;
    exporter = http.createServer((_, res) => res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(exposition(Date.now() / 1000)));
    await new Promise<void>((r) => exporter.listen(0, '127.0.0.1', r));
    dir = mkdtempSync(path.join(tmpdir(), 'sair-prom-'));
    const target = `127.0.0.1:${(exporter.address() as AddressInfo).port}`;
    writeFileSync(
      path.join(dir, 'prometheus.yml'),
      `global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n- job_name: presets\n  honor_labels: true\n  static_configs: [{targets: ['${target}']}]\n`,
    );
    const port = await freePort();
    prometheus = spawn(BIN, [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], { stdio: 'ignore' });
    client = new PrometheusClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 5_000 });
    // Ready once a rate over the scrapes has a value.
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const v = await client.value('sum(rate(http_request_duration_seconds_count{namespace="ml"}[10s]))').catch(() => null);
      if (v !== null && v > 0) break;
      await new Promise((r) => setTimeout(r, 500));
    }
  }, 40_000);

  afterAll(async () => {
    prometheus?.kill('SIGKILL');
    exporter?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  (HAVE ? it : it.skip)(`answers every arm as its query alone (${HAVE ? BIN : 'no prometheus binary: skipped'})`, async () => {
    const alone: string[] = [];
    for (const deployment of ['pre', 'llm']) {
      const values = { namespace: 'ml', deployment, windowSeconds: 10 };
      for (const preset of ['generic', 'vllm', 'triton'] as const) {
        for (const template of Object.values(PRESETS[preset])) alone.push(render(template, values));
        const batch = BATCH_QUERIES[preset];
        if (batch) alone.push(render(batch.batchSize, values), render(batch.batchServiceMs, values));
      }
      alone.push(render(GPU_CORES_ENFORCED_QUERY, values), clampedPodsQuery(values, 50), `deriv((${render(PRESETS.vllm.queueLength!, values)})[10s:])`);
    }
    alone.push(gpusInUseQuery('ml', ['pre', 'llm']), gpusInUseQuery('ml', ['llm']));
    // Both asked at one instant with four scrapes in every window.
    await new Promise((r) => setTimeout(r, 4_000));
    const at = new Date();
    const combined = await client.query(TickQueries.combine(alone), at);
    const byArm = new Map(combined.map((s) => [s.metric[ARM_LABEL], s.value]));
    for (const [i, q] of alone.entries()) {
      const single = await client.query(q, at);
      expect(single.length).toBeLessThanOrEqual(1);
      expect([q, byArm.get(String(i)) ?? null]).toEqual([q, single[0]?.value ?? null]);
    }
    // Every query has data here (so each arm is checked against a number), except deriv, whose
    // subquery needs a whole window of the gauge.
    expect(combined.length).toBeGreaterThanOrEqual(alone.length - 2);
    // The GPUs held: pre's two pods share one, llm's two hold one each.
    expect((await client.query(gpusInUseQuery('ml', ['pre', 'llm']), at))[0]?.value).toBe(3);
    expect((await client.query(gpusInUseQuery('ml', ['llm']), at))[0]?.value).toBe(2);
    // Each Deployment's pods run at 40 % and 50 %: one below 50, none below 40 (no answer).
    expect((await client.query(clampedPodsQuery({ namespace: 'ml', deployment: 'llm', windowSeconds: 10 }, 50), at))[0]?.value).toBe(1);
    expect(await client.query(clampedPodsQuery({ namespace: 'ml', deployment: 'llm', windowSeconds: 10 }, 40), at)).toEqual([]);
  }, 60_000);
});
