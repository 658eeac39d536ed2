// Integration: the real HTTPS server on a loopback port, AdmissionReviews shaped as
// kube-apiserver sends them, patches applied with an RFC 6902 library.
import { once } from 'node:events';
import https from 'node:https';
import tls from 'node:tls';
import jsonpatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import type { CertBundle } from '../../src/webhook/certs.js';
import type { Pod } from '../../src/webhook/k8s-types.js';
import { samplePod, sampleReview } from '../../src/webhook/sample.js';
import { MAX_BODY_BYTES, WebhookServer, type WebhookServerOptions } from '../../src/webhook/server.js';
import { SecretVolume, get, logSink, post, testBundle, testServerOptions, type LogSink } from './helpers.js';

const SHIM = '/usr/local/sair/lib/libsair-cuda.so';

interface Running {
  server: WebhookServer;
  port: number;
  metricsPort: number;
  volume: SecretVolume;
  sink: LogSink;
}

let bundle: CertBundle;
let running: Running[] = [];

beforeAll(() => {
  bundle = testBundle();
});

afterEach(async () => {
  await Promise.all(running.map(async (r) => {
    await r.server.stop();
    await r.volume.remove();
  }));
  running = [];
});

async function start(options: Partial<WebhookServerOptions> = {}, certs: CertBundle = bundle): Promise<Running> {
  const volume = await SecretVolume.create(certs);
  const sink = logSink();
  const server = new WebhookServer({ ...testServerOptions(volume.dir, sink.logger), ...options });
  const ports = await server.start();
  const r = { server, volume, sink, ...ports };
  running.push(r);
  return r;
}

interface ReviewResponse {
  apiVersion: string;
  kind: string;
  response: { uid: string; allowed: boolean; patchType?: string; patch?: string; warnings?: string[]; status?: { code: number; message: string } };
}

async function review(r: Running, body: unknown): Promise<ReviewResponse> {
  const res = await post(r.port, JSON.stringify(body), { ca: bundle.caCert });
  expect(res.status).toBe(200);
  return res.json as ReviewResponse;
}

function patchOf(resp: ReviewResponse): Operation[] {
  expect(resp.response.patchType).toBe('JSONPatch');
  return JSON.parse(Buffer.from(resp.response.patch!, 'base64').toString('utf8')) as Operation[];
}

function apply<T>(doc: T, ops: Operation[]): T {
  return jsonpatch.applyPatch(structuredClone(doc), ops, true, false).newDocument;
}

const envMap = (c: { env?: { name: string; value?: string; valueFrom?: unknown }[] }): Map<string, unknown> =>
  new Map((c.env ?? []).map((e) => [e.name, e.value ?? e.valueFrom]));

describe('webhook server: mutation over HTTPS', () => {
  it('patches a 3-container GPU pod with init containers, existing env, volumes and LD_PRELOAD', async () => {
    const r = await start();
    const pod = samplePod() as unknown as Pod;
    pod.spec.initContainers = [
      { name: 'fetch-model', image: 'busybox', resources: { limits: { cpu: '1' } } },
      { name: 'warmup', image: 'cuda', resources: { limits: { 'nvidia.com/gpu': '1' } }, env: [{ name: 'LD_PRELOAD', value: '/a.so /b.so' }] },
    ];
    const resp = await review(r, sampleReview(pod as unknown as Record<string, unknown>, 'uid-3c'));
    expect(resp).toMatchObject({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-3c', allowed: true } });
    const out = apply(pod, patchOf(resp));

    const [pre, server, postc] = out.spec.containers;
    expect(pre).toEqual(pod.spec.containers[0]);
    expect(postc).toEqual(pod.spec.containers[2]);
    expect(out.spec.initContainers![0]).toEqual(pod.spec.initContainers[0]);
    const env = envMap(server!);
    expect(env.get('CUDA_VISIBLE_DEVICES')).toBe('0');
    expect(env.get('LD_PRELOAD')).toBe(`${SHIM}:/opt/tritonserver/lib/libtcmalloc.so`);
    expect(env.get('SAIR_GPU_CORES')).toBe('30');
    expect(env.get('SAIR_GPU_MEMORY')).toBe(String(8 * 1024 ** 3));
    expect(envMap(out.spec.initContainers![1]!).get('LD_PRELOAD')).toBe(`${SHIM}:/a.so:/b.so`);
    expect(envMap(out.spec.initContainers![1]!).get('SAIR_GPU_CORES')).toBe('30');
    // The device plugin mounts the shim and the allocation's files: no volumes from the webhook.
    expect(server!.volumeMounts).toEqual(pod.spec.containers[1]!.volumeMounts);
    expect(server!.resources).toEqual({ limits: { cpu: '4', memory: '16Gi', 'sair.dev/gpu': '1' }, requests: { cpu: '2', memory: '8Gi', 'sair.dev/gpu': '1' } });
    expect(out.spec.volumes!.map((v) => v.name)).toEqual(['models', 'kube-api-access-x2vns']);
    expect(out.metadata!.annotations!['sair.dev/injected']).toBe('true');

    // A second pass (reinvocationPolicy IfNeeded) sends back the patched pod: nothing more to add.
    const again = await review(r, sampleReview(out as unknown as Record<string, unknown>, 'uid-3c-2'));
    expect(again.response).toEqual({ uid: 'uid-3c-2', allowed: true });
  });

  it('adds the annotations map when the pod has none, escaping keys in patch paths', async () => {
    const r = await start();
    const pod = { metadata: { name: 'p', namespace: 'ml', labels: { 'example.com/tier~1': 'gpu', 'a/b': 'c' } }, spec: { containers: [{ name: 'c', image: 'x', resources: { limits: { 'sair.dev/gpu': 1 } } }] } };
    const ops = patchOf(await review(r, sampleReview(pod)));
    expect(ops).toContainEqual({ op: 'add', path: '/metadata/annotations', value: { 'sair.dev/injected': 'true' } });
    const out = apply(pod, ops) as unknown as Pod;
    expect(out.metadata!.labels).toEqual({ ...pod.metadata.labels, 'sair.dev/managed': 'true' });

    const annotated = { ...pod, metadata: { ...pod.metadata, annotations: { 'x~y/z': '1' } } };
    const ops2 = patchOf(await review(r, sampleReview(annotated)));
    expect(ops2).toContainEqual({ op: 'add', path: '/metadata/annotations/sair.dev~1injected', value: 'true' });
    expect(apply(annotated, ops2).metadata.annotations).toEqual({ 'x~y/z': '1', 'sair.dev/injected': 'true' });
  });

  it('answers v1beta1 in v1beta1', async () => {
    const r = await start();
    const resp = await review(r, { ...sampleReview(), apiVersion: 'admission.k8s.io/v1beta1' });
    expect(resp.apiVersion).toBe('admission.k8s.io/v1beta1');
    expect(resp.response.allowed).toBe(true);
  });

  it('takes over an HPA and hands its behavior back on opt-out', async () => {
    const r = await start();
    const hpa = { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler', metadata: { name: 'web', namespace: 'ml' }, spec: { maxReplicas: 5, behavior: { scaleDown: { stabilizationWindowSeconds: 60 } } } };
    const req = (object: unknown, operation = 'CREATE'): unknown => {
      const base = sampleReview(object as Record<string, unknown>);
      return { ...base, request: { ...(base.request as object), kind: { group: 'autoscaling', version: 'v2', kind: 'HorizontalPodAutoscaler' }, operation } };
    };
    const managed = apply(hpa, patchOf(await review(r, req(hpa)))) as typeof hpa & { metadata: { labels: Record<string, string>; annotations: Record<string, string> } };
    expect(managed.spec.behavior).toEqual({ scaleDown: { stabilizationWindowSeconds: 60, selectPolicy: 'Disabled' }, scaleUp: { selectPolicy: 'Disabled' } });
    expect(managed.metadata.annotations['sair.dev/original-behavior']).toBe('{"scaleDown":{"stabilizationWindowSeconds":60}}');
    expect(managed.metadata.labels['sair.dev/managed']).toBe('true');
    managed.metadata.labels['sair.dev/inject'] = 'false';
    const released = apply(managed, patchOf(await review(r, req(managed, 'UPDATE'))));
    expect(released.spec).toEqual(hpa.spec);
  });
});

describe('webhook server: bad input', () => {
  const warnLines = (r: Running): Record<string, unknown>[] => r.sink.lines.filter((l) => l.level === 'warn' || l.level === 'error');

  it.each([
    ['malformed JSON', '{"apiVersion": "admission.k8s.io/v1", ', 400, 'body: not valid JSON'],
    ['a missing uid', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE' } }), 400, 'request.uid: missing'],
    ['a wrong kind', JSON.stringify({ ...sampleReview(), kind: 'AdmissionRequest' }), 400, 'kind: "AdmissionRequest" is not AdmissionReview'],
    ['an unknown apiVersion', JSON.stringify({ ...sampleReview(), apiVersion: 'admission.k8s.io/v9' }), 400, 'apiVersion: "admission.k8s.io/v9" is not one of'],
    ['a JSON array', '[]', 400, 'body: expected a JSON object'],
  ])('answers %s with HTTP 400, a clear message and one log line', async (_label, body, status, message) => {
    const r = await start();
    const res = await post(r.port, body, { ca: bundle.caCert });
    expect(res.status).toBe(status);
    expect(res.json).toMatchObject({ kind: 'Status', code: status, message: expect.stringContaining(message) });
    expect(warnLines(r)).toHaveLength(1);
  });

  it('refuses a body over 3 MiB with 413 and keeps serving', async () => {
    const r = await start();
    const big = JSON.stringify({ ...sampleReview(), padding: 'x'.repeat(MAX_BODY_BYTES) });
    const res = await post(r.port, big, { ca: bundle.caCert });
    expect(res.status).toBe(413);
    expect(res.json).toMatchObject({ code: 413, message: expect.stringContaining('larger than 3145728 bytes') });
    expect(warnLines(r)).toHaveLength(1);
    expect((await post(r.port, JSON.stringify(sampleReview()), { ca: bundle.caCert })).status).toBe(200);
  });

  it('refuses an oversized chunked body (no Content-Length) with 413 while it streams', async () => {
    const r = await start();
    const status = await new Promise<number>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', servername: 'localhost', port: r.port, path: '/mutate', method: 'POST', ca: bundle.caCert, agent: false, headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      // The server may close the connection before the whole body is sent.
      req.on('error', (err: NodeJS.ErrnoException) => (err.code === 'ECONNRESET' || err.code === 'EPIPE' ? undefined : reject(err)));
      const chunk = 'x'.repeat(1024 * 1024);
      for (let i = 0; i < 4; i++) req.write(chunk);
      req.end();
    });
    expect(status).toBe(413);
    expect(r.sink.lines.filter((l) => l.level === 'warn')).toHaveLength(1);
    expect((await post(r.port, JSON.stringify(sampleReview()), { ca: bundle.caCert })).status).toBe(200);
  });

  it('accepts a 2.9 MiB review', async () => {
    const r = await start();
    const pod = samplePod() as { metadata: { annotations: Record<string, string> } };
    pod.metadata.annotations.big = 'x'.repeat(MAX_BODY_BYTES - 100_000);
    const resp = await review(r, sampleReview(pod as unknown as Record<string, unknown>));
    expect(resp.response.allowed).toBe(true);
  });

  it('denies an object without spec and an invalid quota with code 400 and one log line each', async () => {
    const r = await start();
    const noSpec = await review(r, sampleReview({ metadata: { name: 'x' } }, 'u1'));
    expect(noSpec.response).toEqual({ uid: 'u1', allowed: false, status: { code: 400, message: 'request.object.spec: missing; expected an object' } });
    const pod = samplePod() as { metadata: { annotations: Record<string, string> } };
    pod.metadata.annotations['sair.dev/gpu-cores'] = '150';
    const bad = await review(r, sampleReview(pod as unknown as Record<string, unknown>, 'u2'));
    expect(bad.response).toMatchObject({ uid: 'u2', allowed: false, status: { code: 400, message: expect.stringContaining('sair.dev/gpu-cores: "150" is not an integer from 1 to 100') } });
    expect(warnLines(r)).toHaveLength(2);
  });

  it('fails open with a warning on an internal error, or closed when configured', async () => {
    const boom = (): never => {
      throw new Error('boom');
    };
    const open = await start({ admit: boom });
    const resp = await review(open, sampleReview(samplePod(), 'u-open'));
    expect(resp.response).toEqual({ uid: 'u-open', allowed: true, warnings: ['sair webhook internal error: boom; admitted unchanged'] });
    expect(warnLines(open)).toEqual([expect.objectContaining({ level: 'error', uid: 'u-open', err: 'boom' })]);
    const closed = await start({ admit: boom, failClosed: true });
    const denied = await review(closed, sampleReview(samplePod(), 'u-closed'));
    expect(denied.response).toEqual({ uid: 'u-closed', allowed: false, status: { code: 500, message: 'sair webhook internal error: boom' } });
  });

  it('fails to start with a clear error when its port is taken', async () => {
    const r = await start();
    const second = new WebhookServer({
      certDir: r.volume.dir,
      host: '127.0.0.1',
      port: r.port,
      metricsHost: '127.0.0.1',
      metricsPort: 0,
      failClosed: false,
      logger: logSink().logger,
      shutdownTimeoutMs: 1000,
      certPollIntervalMs: 0,
    });
    await expect(second.start()).rejects.toThrow(`cannot listen on 127.0.0.1:${r.port}`);
  });

  it('answers unknown paths with 404', async () => {
    const r = await start();
    const res = await post(r.port, '{}', { ca: bundle.caCert, path: '/validate' });
    expect(res.status).toBe(404);
  });
});

describe('webhook server: TLS, probes and metrics', () => {
  it('speaks TLS 1.2 or newer only', async () => {
    const r = await start();
    const modern = tls.connect({ host: '127.0.0.1', port: r.port, servername: 'localhost', ca: bundle.caCert });
    await once(modern, 'secureConnect');
    expect(['TLSv1.2', 'TLSv1.3']).toContain(modern.getProtocol());
    modern.destroy();
    const old = tls.connect({ host: '127.0.0.1', port: r.port, servername: 'localhost', ca: bundle.caCert, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    const [err] = (await once(old, 'error')) as [Error];
    expect(err.message).toMatch(/protocol|version|alert/i);
  });

  it('serves /healthz, /readyz and /metrics on the plain port', async () => {
    const r = await start();
    await review(r, sampleReview());
    await post(r.port, 'nope', { ca: bundle.caCert });
    expect(await get(r.metricsPort, '/healthz')).toEqual({ status: 200, body: 'ok\n' });
    expect(await get(r.metricsPort, '/readyz')).toEqual({ status: 200, body: 'ready\n' });
    const metrics = (await get(r.metricsPort, '/metrics')).body;
    expect(metrics).toContain('sair_webhook_admission_requests_total{kind="Pod",result="mutated",part="webhook"} 1');
    expect(metrics).toContain('sair_webhook_mutations_total{kind="Pod",part="webhook"} 1');
    expect(metrics).toContain('sair_webhook_errors_total{type="bad_request",part="webhook"} 1');
    expect(metrics).toMatch(/sair_webhook_admission_duration_seconds_count\{part="webhook",kind="Pod"\} 1/);
    expect((await get(r.metricsPort, '/nope')).status).toBe(404);
  });
});

describe('webhook server: certificate rotation and shutdown', () => {
  it('picks up a rotated Secret (..data swap) without losing a request in flight', async () => {
    const r = await start();
    const next = testBundle();
    const ca = [bundle.caCert, next.caCert];
    const agent = new https.Agent({ keepAlive: true, maxSockets: 2 });
    const seen = new Set<string>();
    const failures: unknown[] = [];
    let sent = 0;
    let rotated = false;
    let afterRotation = 0;
    // Four clients: two reuse keep-alive connections, two handshake for every request.
    const client = async (keepAlive: boolean, id: number): Promise<void> => {
      while (!rotated || afterRotation < 40) {
        const uid = `c${id}-${sent++}`;
        try {
          const res = await post(r.port, JSON.stringify(sampleReview(samplePod(), uid)), { ca, ...(keepAlive ? { agent } : {}) });
          if (res.status !== 200 || (res.json as ReviewResponse).response.uid !== uid) failures.push(res.body);
          seen.add(res.fingerprint);
          if (rotated) afterRotation++;
        } catch (err) {
          failures.push(err);
        }
      }
    };
    const clients = [client(true, 1), client(true, 2), client(false, 3), client(false, 4)];
    const reloaded = once(r.server, 'certificate');
    await r.volume.rotate(next);
    expect(await reloaded).toEqual([{ ok: true }]);
    rotated = true;
    await Promise.all(clients);
    agent.destroy();
    expect(failures).toEqual([]);
    expect(seen.size).toBe(2);
    const fresh = await post(r.port, JSON.stringify(sampleReview()), { ca: next.caCert });
    expect(fresh.status).toBe(200);
    await expect(post(r.port, JSON.stringify(sampleReview()), { ca: bundle.caCert })).rejects.toThrow(/certificate/);
  });

  it('keeps the current certificate when a rotation brings a key that does not match', async () => {
    const r = await start();
    const other = testBundle();
    const failed = once(r.server, 'certificate');
    await r.volume.rotate({ cert: other.cert, key: bundle.key, caCert: other.caCert });
    const [event] = (await failed) as [{ ok: boolean; error: string }];
    expect(event.ok).toBe(false);
    expect((await post(r.port, JSON.stringify(sampleReview()), { ca: bundle.caCert })).status).toBe(200);
    expect((await get(r.metricsPort, '/metrics')).body).toContain('sair_webhook_certificate_reloads_total{result="error",part="webhook"} 1');
  });

  it('drains an in-flight request on shutdown and then refuses connections', async () => {
    const r = await start();
    const body = JSON.stringify(sampleReview(samplePod(), 'in-flight'));
    const result = new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = https.request(
        { host: '127.0.0.1', servername: 'localhost', port: r.port, path: '/mutate', method: 'POST', ca: bundle.caCert, agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
        (res) => {
          let text = '';
          res.on('data', (c: Buffer) => (text += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
        },
      );
      req.on('error', reject);
      req.write(body.slice(0, 100));
      // The rest of the body goes once shutdown has begun.
      void once(r.server, 'request').then(async () => {
        const stopping = r.server.stop();
        expect((await get(r.metricsPort, '/readyz')).status).toBe(503);
        req.end(body.slice(100));
        await stopping;
      });
    });
    const res = await result;
    expect(res.status).toBe(200);
    expect((JSON.parse(res.text) as ReviewResponse).response.uid).toBe('in-flight');
    await r.server.stop();
    await expect(post(r.port, body, { ca: bundle.caCert })).rejects.toThrow(/ECONNREFUSED/);
  });
});
