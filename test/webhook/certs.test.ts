// Certificates: what node-forge makes must satisfy Node's TLS stack, and `sair certs` must write
// the Secret and caBundle through the real client-node against the fake API server.
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { createLogger } from '../../src/common/logger.js';
import { certificateUsable, generateCertificates, installCertificates, serviceDnsNames, writeCertFiles, type InstallOptions } from '../../src/webhook/certs.js';
import { runCerts, certsSpec } from '../../src/cmd/certs.js';
import { loadConfig } from '../../src/common/config.js';
import { startFakeApiServer, type FakeApiServer } from '../support/fake-apiserver.js';

const DNS = serviceDnsNames('sair-webhook', 'sair-system');

describe('generateCertificates', () => {
  const bundle = generateCertificates({ commonName: 'sair-webhook.sair-system.svc', dnsNames: DNS, ipAddresses: ['127.0.0.1'], validityDays: 30 });

  it('makes a CA and a serving certificate for the Service names that Node accepts', () => {
    const ca = new X509Certificate(bundle.caCert);
    const cert = new X509Certificate(bundle.cert);
    expect(ca.ca).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.checkHost('sair-webhook.sair-system.svc')).toBe('sair-webhook.sair-system.svc');
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.checkHost('evil.example.com')).toBeUndefined();
    expect(cert.keyUsage).toContain('1.3.6.1.5.5.7.3.1');
    const days = (Date.parse(cert.validTo) - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(29);
    expect(days).toBeLessThan(31);
  });

  it('serves TLS that a client trusting only the CA accepts', async () => {
    const server = tls.createServer({ cert: bundle.cert, key: bundle.key }, (s) => s.end('hi'));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const client = tls.connect({ host: '127.0.0.1', port, servername: 'sair-webhook.sair-system.svc', ca: bundle.caCert });
    await once(client, 'secureConnect');
    expect(client.authorized).toBe(true);
    client.destroy();
    server.close();
  });

  it('tells a usable certificate from an expiring, foreign or misnamed one', () => {
    const now = new Date();
    expect(certificateUsable(bundle, DNS, now, 7)).toBe(true);
    expect(certificateUsable(bundle, DNS, now, 60)).toBe(false);
    expect(certificateUsable(bundle, [...DNS, 'other.svc'], now, 7)).toBe(false);
    const other = generateCertificates({ commonName: 'x', dnsNames: DNS, validityDays: 30 });
    expect(certificateUsable({ caCert: other.caCert, cert: bundle.cert }, DNS, now, 7)).toBe(false);
    expect(certificateUsable({ caCert: 'garbage', cert: bundle.cert }, DNS, now, 7)).toBe(false);
  });

  it('writes the files for local use, keys readable by the owner only', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sair-certs-'));
    try {
      await writeCertFiles(dir, bundle);
      expect(await readFile(path.join(dir, 'tls.crt'), 'utf8')).toBe(bundle.cert);
      expect(await readFile(path.join(dir, 'ca.crt'), 'utf8')).toBe(bundle.caCert);
      expect((await stat(path.join(dir, 'tls.key'))).mode & 0o777).toBe(0o600);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('sair certs against the (fake) API server', () => {
  let api: FakeApiServer;
  const mwc = parse(readFileSync('manifests/webhook/base/mutatingwebhookconfiguration.yaml', 'utf8')) as object;
  const logger = createLogger('certs', 'silent');
  const options = (over: Partial<InstallOptions> = {}): InstallOptions => ({
    namespace: 'sair-system',
    secretName: 'sair-webhook-tls',
    webhookConfigName: 'sair-webhook',
    service: 'sair-webhook',
    validityDays: 365,
    renewBeforeDays: 30,
    force: false,
    logger,
    ...over,
  });
  const caBundles = (): string[] =>
    (api.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('mutatingwebhookconfigurations', undefined, 'sair-webhook')!.webhooks).map((w) =>
      Buffer.from(w.clientConfig.caBundle ?? '', 'base64').toString('utf8'),
    );
  const secret = (): { type: string; data: Record<string, string> } => api.get('secrets', 'sair-system', 'sair-webhook-tls')!;
  const dec = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

  beforeEach(async () => {
    api = await startFakeApiServer({ namespaces: ['default', 'sair-system'] });
    api.seed(mwc);
  });
  afterEach(async () => {
    await api.close();
  });

  it('writes a kubernetes.io/tls Secret and the CA into both webhooks, then keeps a good certificate', async () => {
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c: Buffer) => (printed += c.toString()));
    await runCerts(loadConfig(certsSpec, {}, ['--log-level', 'silent']), api.clients(), out);
    expect(printed).toContain('new certificate written to Secret sair-system/sair-webhook-tls; caBundle set on 2 webhook(s) of sair-webhook');
    const s = secret();
    expect(s.type).toBe('kubernetes.io/tls');
    const ca = dec(s.data['ca.crt']);
    expect(new X509Certificate(dec(s.data['tls.crt'])).checkIssued(new X509Certificate(ca))).toBe(true);
    expect(new X509Certificate(dec(s.data['tls.crt'])).checkHost('sair-webhook.sair-system.svc')).toBeTruthy();
    expect(caBundles()).toEqual([ca, ca]);

    const writes = api.requests.length;
    const again = await installCertificates(api.clients(), options());
    expect(again).toMatchObject({ generated: false, webhooksPatched: 2 });
    expect(dec(secret().data['ca.crt'])).toBe(ca);
    expect(api.requests.slice(writes).map((r) => r.verb)).toEqual(['get', 'get']);
  });

  it('rotates on --force, trusting the old and the new CA until the next rotation', async () => {
    await installCertificates(api.clients(), options());
    const oldCa = dec(secret().data['ca.crt']);
    const r = await installCertificates(api.clients(), options({ force: true }));
    const newCa = dec(secret().data['ca.crt']);
    expect(r.generated).toBe(true);
    expect(newCa).not.toBe(oldCa);
    expect(caBundles()).toEqual([newCa + oldCa, newCa + oldCa]);
    // A re-run soon after (the Job re-applied) keeps the certificate and does not drop the old CA.
    expect(await installCertificates(api.clients(), options())).toMatchObject({ generated: false });
    expect(caBundles()).toEqual([newCa + oldCa, newCa + oldCa]);
  });

  it('sets the CA on a webhook that lost its caBundle, even when the certificate is kept', async () => {
    await installCertificates(api.clients(), options());
    const ca = dec(secret().data['ca.crt']);
    const config = api.get<{ webhooks: { clientConfig: { caBundle?: string } }[] }>('mutatingwebhookconfigurations', undefined, 'sair-webhook')!;
    delete config.webhooks[1]!.clientConfig.caBundle;
    api.seed({ apiVersion: 'admissionregistration.k8s.io/v1', kind: 'MutatingWebhookConfiguration', ...config });
    expect(await installCertificates(api.clients(), options())).toMatchObject({ generated: false, webhooksPatched: 2 });
    expect(caBundles()).toEqual([ca, ca]);
  });

  it('renews a certificate that expires within renewBeforeDays', async () => {
    await installCertificates(api.clients(), options({ validityDays: 10 }));
    const first = secret().data['tls.crt'];
    expect((await installCertificates(api.clients(), options())).generated).toBe(true);
    expect(secret().data['tls.crt']).not.toBe(first);
  });

  it('retries a conflicting caBundle update and reports a missing configuration clearly', async () => {
    const fault = api.injectFault({ verb: 'update', resource: 'mutatingwebhookconfigurations', status: 409, times: 2 });
    await expect(installCertificates(api.clients(), options())).resolves.toMatchObject({ webhooksPatched: 2 });
    expect(fault.hits).toBe(2);
    expect(caBundles()[0]).toBe(dec(secret().data['ca.crt']));
    api.remove('mutatingwebhookconfigurations', undefined, 'sair-webhook');
    await expect(installCertificates(api.clients(), options({ force: true }))).rejects.toThrow(
      'kube-apiserver: MutatingWebhookConfiguration sair-webhook not found; apply manifests/webhook first',
    );
  });

  it('surfaces a failed Secret write with the status', async () => {
    api.injectFault({ verb: 'create', resource: 'secrets', status: 500 });
    await expect(installCertificates(api.clients(), options())).rejects.toMatchObject({
      name: 'UpstreamError',
      status: 500,
      message: expect.stringContaining('writing Secret sair-system/sair-webhook-tls'),
    });
  });
});

describe('sair certs --out-dir', () => {
  it('writes files for localhost and the Service without touching a cluster', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sair-certs-out-'));
    try {
      const out = new PassThrough();
      let printed = '';
      out.on('data', (c: Buffer) => (printed += c.toString()));
      await runCerts(loadConfig(certsSpec, {}, ['--out-dir', dir, '--extra-names', 'webhook.example.com,10.0.0.7', '--log-level', 'silent']), undefined, out);
      const cert = new X509Certificate(await readFile(path.join(dir, 'tls.crt')));
      expect(cert.checkHost('localhost')).toBe('localhost');
      expect(cert.checkHost('webhook.example.com')).toBe('webhook.example.com');
      expect(cert.checkIP('10.0.0.7')).toBe('10.0.0.7');
      expect(printed).toContain(`to ${dir}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
