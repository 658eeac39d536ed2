// `npm run bench:policy-server`: the policy server at production size. The built CLI (`sair
// policy`, its own OS process, so its RSS is the server's alone) runs against the fake API server
// with 1,000 InferencePipelines of 3 stages and 10,000 managed pods in 20 opted-in namespaces
// (each pipeline's first stage has an HPA SAIR took over), the fake Prometheus and the scripted
// LLM server capped at 8 requests at a time (300 ms each, so about 27 answers a second against
// 33 ticks a second that each ask it), SAIR_SHARDS=6, ticks every 30 s, and the NODE_OPTIONS of
// manifests/policy/deployment.yaml (the V8 heap cap its memory limit is sized for).
//   1. one replica alone for 2 minutes: tick lag (how late scheduled ticks start after their due
//      time, from sair_policy_tick_lag_seconds) p99, its RSS, the LLM's queueing;
//   2. a second replica joins: how many shards and pipelines each holds once they are split;
//   3. the second is killed (SIGKILL, its Leases not released): failover, from the kill to every
//      one of its pipelines having ticked on the first (a status.lastDecision after the kill);
//   4. the first is killed too: with the failsafe (`sair failsafe`, default 180 s, 10 s poll,
//      running since the start), hpa_restore_s from the last renewal of any shard Lease to every
//      taken-over HPA scaling on its own behavior again.
// Targets: tick lag p99 <= 1000 ms, RSS <= 512 MiB, failover <= 30 s, HPA restore <= 240 s.
// About 7 minutes; every wait gives up with an error. Argument: the number of pipelines (1000).
// It ends with: summary: pipelines=N tick_lag_p99_ms=X rss_mib=Y failover_s=Z hpa_restore_s=W
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { resolve } from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import { loadFailsafeConfig, startFailsafe } from '../src/cmd/failsafe.js';
import { takeOver, type HpaObject } from '../src/common/hpa-takeover.js';
import { shardName, shardOf } from '../src/core/shards.js';
import { policySettings } from '../src/policy/settings.js';
import { startFakeApiServer, type FakeApiServer } from '../test/support/fake-apiserver.js';
import { kustomizeBuild } from '../test/support/manifests.js';
import { startFakeLlm } from '../test/support/fake-llm.js';
import { startFakePrometheus } from '../test/support/fake-prometheus.js';

const PIPELINES = Number(process.argv[2] ?? 1000);
const NAMESPACES = 20;
const SHARDS = 6;
const TICK_SECONDS = 30;
/** Pods per stage: 4 + 3 + 3, so 10 per pipeline. */
const STAGE_PODS = [4, 3, 3];
const LEASE_SECONDS = 15;
const CLI = resolve(import.meta.dirname, '../src/cli.js');
const LLM_SLOTS = 8;
const LLM_SERVICE_MS = 300;

/** The policy container's NODE_OPTIONS, as the Deployment sets them. */
function deploymentNodeOptions(): string {
  type Dep = { kind: string; spec: { template: { spec: { containers: { env?: { name: string; value?: string }[] }[] } } } };
  const dep = kustomizeBuild(resolve(import.meta.dirname, '../../manifests/policy')).find((o) => o.kind === 'Deployment') as unknown as Dep;
  return dep.spec.template.spec.containers[0]!.env?.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '';
}

const log = (msg: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${msg}`);

async function until<T>(probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs: number, what: string, everyMs = 250): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

function seedCluster(api: FakeApiServer): string[] {
  const ids: string[] = [];
  for (let n = 0; n < NAMESPACES; n++) api.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: `team-${n}`, labels: { 'sair.dev/enabled': 'true' } } });
  for (let i = 0; i < PIPELINES; i++) {
    const ns = `team-${i % NAMESPACES}`;
    const name = `p${i}`;
    ids.push(`${ns}/${name}`);
    const stages = STAGE_PODS.map((pods, s) => ({ name: `s${s}`, deployment: `${name}-s${s}`, pods, gpu: s === 1 }));
    for (const st of stages) {
      const labels = { app: st.deployment };
      const annotations = st.gpu ? { 'sair.dev/gpu-cores': '50' } : {};
      api.seed({
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: st.deployment, namespace: ns },
        spec: { replicas: st.pods, selector: { matchLabels: labels }, template: { metadata: { labels, annotations }, spec: { containers: [{ name: 'main', image: 'example/serve:1' }] } } },
        status: { replicas: st.pods, readyReplicas: st.pods },
      });
      for (let k = 0; k < st.pods; k++) {
        api.seed({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `${st.deployment}-7c9f8-${k}`, namespace: ns, labels: { ...labels, 'pod-template-hash': '7c9f8', 'sair.dev/managed': 'true' }, annotations },
          spec: { containers: [{ name: 'main', image: 'example/serve:1' }] },
          status: { phase: 'Running' },
        });
      }
    }
    const hpa = {
      apiVersion: 'autoscaling/v2',
      kind: 'HorizontalPodAutoscaler',
      metadata: { name: `${name}-s0`, namespace: ns },
      spec: { scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: `${name}-s0` }, minReplicas: 1, maxReplicas: 10, behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } },
    };
    api.seed(takeOver(hpa as unknown as HpaObject).object);
    api.seed({
      apiVersion: 'sair.dev/v1alpha1',
      kind: 'InferencePipeline',
      metadata: { name, namespace: ns },
      spec: {
        slo: { p99Ms: 500 },
        tickSeconds: TICK_SECONDS,
        stages: stages.map((st) => ({
          name: st.name,
          deployment: st.deployment,
          minReplicas: 1,
          maxReplicas: 8,
          ...(st.gpu ? { gpuCores: { min: 10, max: 100, step: 10 } } : {}),
        })),
      },
    });
  }
  return ids;
}

interface Replica {
  identity: string;
  url: string;
  child: ChildProcess;
}

function startReplica(identity: string, port: number, env: Record<string, string>): Replica {
  const child = spawn(process.execPath, [CLI, 'policy', '--port', String(port), '--host', '127.0.0.1'], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env, SAIR_POD_NAME: identity },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return { identity, url: `http://127.0.0.1:${port}`, child };
}

function rssMib(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { rss: kib('VmRSS') / 1024, peak: kib('VmHWM') / 1024 };
}

/** Cumulative buckets of a Prometheus histogram in a /metrics text: upper bound -> count. */
function buckets(text: string, name: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const m of text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"[^}]*\\} (\\S+)$`, 'gm'))) out.set(m[1] === '+Inf' ? Infinity : Number(m[1]), Number(m[2]));
  return out;
}

/** The q-quantile of the observations between two scrapes, interpolated within a bucket as histogram_quantile does. */
function quantile(before: Map<number, number>, after: Map<number, number>, q: number): { value: number; n: number } {
  const bounds = [...after.keys()].sort((a, b) => a - b);
  const counts = bounds.map((b) => (after.get(b) ?? 0) - (before.get(b) ?? 0));
  const n = counts.at(-1) ?? 0;
  const rank = q * n;
  for (let i = 0; i < bounds.length; i++) {
    if (counts[i]! >= rank) {
      const lo = i === 0 ? 0 : bounds[i - 1]!;
      const hi = bounds[i]!;
      if (!Number.isFinite(hi)) return { value: lo, n };
      const below = i === 0 ? 0 : counts[i - 1]!;
      const inBucket = counts[i]! - below;
      return { value: lo + (hi - lo) * (inBucket > 0 ? (rank - below) / inBucket : 0), n };
    }
  }
  return { value: NaN, n };
}

const metricsOf = async (r: Replica) => (await fetch(`${r.url}/metrics`)).text();
const pct = (xs: number[], q: number) => (xs.length === 0 ? 0 : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))]!);

async function main(): Promise<void> {
  const started = Date.now();
  const api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
  const ids = seedCluster(api);
  log(`seeded ${ids.length} pipelines, ${api.list('deployments.apps').length} Deployments, ${api.list('pods').length} pods, ${api.list('horizontalpodautoscalers').length} HPAs in ${((Date.now() - started) / 1000).toFixed(1)} s`);

  const prom = await startFakePrometheus();
  prom.on('http_request_duration_seconds_count', { vector: [{ value: '20' }] });
  prom.on('code=~', { vector: [{ value: '0' }] });
  prom.on('container_cpu_usage_seconds_total', { vector: [{ value: '0.5' }] });
  prom.on('histogram_quantile', { vector: [{ value: '150' }] });
  prom.on('sair_device_plugin_pod_gpu_kernel_seconds_total', { vector: [{ value: '0.4' }] });
  const llm = await startFakeLlm({ maxConcurrent: LLM_SLOTS, serviceMs: LLM_SERVICE_MS });

  const failsafe = await startFailsafe(loadFailsafeConfig({ SAIR_KUBE_API_SERVER: api.url, SAIR_LOG_LEVEL: 'silent', SAIR_FAILSAFE_HOST: '127.0.0.1', SAIR_SHARDS: String(SHARDS) }, ['--port', '0']));
  const env = {
    SAIR_KUBE_API_SERVER: api.url,
    SAIR_POD_NAMESPACE: 'sair-system',
    SAIR_SHARDS: String(SHARDS),
    SAIR_LEASE_DURATION_SECONDS: String(LEASE_SECONDS),
    SAIR_PROMETHEUS_URL: prom.url,
    SAIR_LLM_BASE_URL: llm.url,
    SAIR_LLM_MODEL: 'scripted',
    SAIR_API_AUTH: 'none',
    SAIR_LOG_LEVEL: 'warn',
    NODE_OPTIONS: deploymentNodeOptions(),
  };
  log(`policy servers run with NODE_OPTIONS=${env.NODE_OPTIONS}`);
  const replicas: Replica[] = [];
  const stopAll = () => replicas.forEach((r) => r.child.kill('SIGKILL'));
  process.on('exit', stopAll);

  // 1. One replica alone.
  const a = startReplica('policy-a', await freePort(), env);
  replicas.push(a);
  const lastDecision = (id: string) => {
    const [ns, name] = id.split('/') as [string, string];
    const t = api.get<{ status?: { lastDecision?: { time?: string } } }>('inferencepipelines.sair.dev', ns, name)?.status?.lastDecision?.time;
    return t ? new Date(t).getTime() : 0;
  };
  const aStarted = Date.now();
  await until(() => ids.every((id) => lastDecision(id) > 0), 180_000, 'every pipeline ticks once on policy-a', 1_000);
  log(`policy-a decided for all ${ids.length} pipelines ${((Date.now() - aStarted) / 1000).toFixed(1)} s after it started`);
  // Scheduled ticks start one interval after the first; measure two minutes of them.
  await new Promise((r) => setTimeout(r, TICK_SECONDS * 1000));
  const before = await metricsOf(a);
  const waitsBefore = llm.queueing.waitsMs.length;
  const rss: number[] = [];
  const heapUsed: number[] = [];
  const measureUntil = Date.now() + 120_000;
  for (let i = 0; Date.now() < measureUntil; i++) {
    rss.push(rssMib(a.child.pid!).rss);
    if (i % 5 === 0) heapUsed.push(Number(/^sair_policy_nodejs_heap_size_used_bytes(?:\{[^}]*\})? (\S+)$/m.exec(await metricsOf(a))?.[1] ?? NaN) / 2 ** 20);
    await new Promise((r) => setTimeout(r, 1_000));
  }
  const after = await metricsOf(a);
  const lag = quantile(buckets(before, 'sair_policy_tick_lag_seconds'), buckets(after, 'sair_policy_tick_lag_seconds'), 0.99);
  const lag50 = quantile(buckets(before, 'sair_policy_tick_lag_seconds'), buckets(after, 'sair_policy_tick_lag_seconds'), 0.5);
  const ticks = (text: string) => Number(/^sair_policy_ticks_total\{[^}]*outcome="ok"[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
  const llmCalls = quantile(buckets(before, 'sair_policy_llm_latency_seconds'), buckets(after, 'sair_policy_llm_latency_seconds'), 0.99);
  const slotWait = quantile(buckets(before, 'sair_policy_llm_queue_wait_seconds'), buckets(after, 'sair_policy_llm_queue_wait_seconds'), 0.99);
  const fallbacks = (text: string) => Number(/^sair_policy_fallbacks_total\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
  const waits = llm.queueing.waitsMs.slice(waitsBefore);
  const rssMax = Math.max(...rss);
  const peak = rssMib(a.child.pid!).peak;
  log(`one replica, 120 s: ${ticks(after) - ticks(before)} ticks ok, tick lag p50 ${(lag50.value * 1000).toFixed(0)} ms p99 ${(lag.value * 1000).toFixed(0)} ms over ${lag.n} scheduled ticks`);
  log(`RSS ${rssMax.toFixed(0)} MiB at most while measured (peak since start ${peak.toFixed(0)} MiB); V8 heap in use ${Math.min(...heapUsed).toFixed(0)} to ${Math.max(...heapUsed).toFixed(0)} MiB`);
  log(
    `LLM (${LLM_SLOTS} slots x ${LLM_SERVICE_MS} ms): ${waits.length} calls answered; at the model server queue wait p50 ${pct(waits, 0.5)} ms p99 ${pct(waits, 0.99)} ms, ` +
      `longest queue ${llm.queueing.maxQueued}; in the policy server a decision's wait for one of its ${policySettings({}).llmMaxConcurrent} call slots p99 ${(slotWait.value * 1000).toFixed(0)} ms (${slotWait.n} decisions), ` +
      `LLM call p99 ${(llmCalls.value * 1000).toFixed(0)} ms, ${fallbacks(after) - fallbacks(before)} decisions left to the bandit`,
  );

  // 2. A second replica joins; the shards are split.
  const b = startReplica('policy-b', await freePort(), env);
  replicas.push(b);
  const holder = (shard: number) => api.get<k8s.V1Lease>('leases', 'sair-system', shardName('sair-policy', shard, SHARDS))?.spec?.holderIdentity ?? '';
  const held = (identity: string) => Array.from({ length: SHARDS }, (_, s) => s).filter((s) => holder(s) === identity);
  const joined = Date.now();
  await until(() => held('policy-a').length === SHARDS / 2 && held('policy-b').length === SHARDS / 2, 120_000, 'the shards are split between the two replicas', 500);
  const mine = (identity: string) => ids.filter((id) => held(identity).includes(shardOf(id, SHARDS)));
  log(`policy-b joined; ${((Date.now() - joined) / 1000).toFixed(1)} s later policy-a holds shards ${held('policy-a').join(',')} (${mine('policy-a').length} pipelines), policy-b holds ${held('policy-b').join(',')} (${mine('policy-b').length} pipelines)`);
  const bPipelines = mine('policy-b');
  const splitAt = Date.now();
  await until(() => bPipelines.every((id) => lastDecision(id) > splitAt), 120_000, 'policy-b ticks its pipelines', 1_000);
  const shown = async (r: Replica) => ((await (await fetch(`${r.url}/api/pipelines`)).json()) as { pipelines: unknown[] }).pipelines.length;
  log(`each replica's API shows its own: policy-a ${await shown(a)} pipelines, policy-b ${await shown(b)}`);

  // 3. policy-b is killed: its shards lapse and move to policy-a.
  b.child.kill('SIGKILL');
  const killedB = Date.now();
  const tookOver = await until(() => held('policy-a').length === SHARDS && Date.now(), 120_000, "policy-a takes policy-b's shards", 100);
  const failedOver = await until(() => bPipelines.every((id) => lastDecision(id) > killedB) && Date.now(), 120_000, "policy-a ticks policy-b's pipelines", 250);
  const failoverS = (failedOver - killedB) / 1000;
  log(`policy-b killed: policy-a held its shards ${((tookOver - killedB) / 1000).toFixed(1)} s later and had ticked all its ${bPipelines.length} pipelines ${failoverS.toFixed(1)} s after the kill`);

  // 4. policy-a is killed too: the failsafe hands every HPA its own behavior back.
  a.child.kill('SIGKILL');
  await new Promise((r) => setTimeout(r, 500));
  const lastRenewal = Math.max(...Array.from({ length: SHARDS }, (_, s) => new Date(String(api.get<k8s.V1Lease>('leases', 'sair-system', shardName('sair-policy', s, SHARDS))!.spec!.renewTime)).getTime()));
  const own = () => api.list<k8s.V2HorizontalPodAutoscaler>('horizontalpodautoscalers').filter((h) => h.spec?.behavior?.scaleUp?.selectPolicy !== 'Disabled').length;
  log('policy-a killed; waiting for the failsafe (180 s after the last renewal)');
  const restoredAt = await until(() => own() === PIPELINES && Date.now(), 300_000, 'the failsafe restores every HPA', 1_000);
  const restoreS = (restoredAt - lastRenewal) / 1000;
  log(`all ${PIPELINES} HPAs scale on their own behavior ${restoreS.toFixed(1)} s after the last renewal`);

  await failsafe.stop();
  await llm.close();
  await prom.close();
  await api.close();
  log(`done in ${((Date.now() - started) / 60_000).toFixed(1)} min`);
  console.log(`summary: pipelines=${PIPELINES} tick_lag_p99_ms=${Math.round(lag.value * 1000)} rss_mib=${Math.round(rssMax)} failover_s=${failoverS.toFixed(1)} hpa_restore_s=${restoreS.toFixed(1)}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
