// Certificates for clusters without cert-manager: a CA and a serving certificate for the
// webhook Service (node-forge), written to a Secret with the CA patched into the
// MutatingWebhookConfiguration's caBundle, or to a directory for local use.
import { constants, generateKeyPairSync, privateEncrypt, randomBytes } from 'node:crypto';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import path from 'node:path';
import type * as k8s from '@kubernetes/client-node';
import forge from 'node-forge';
import { UpstreamError, errorMessage } from '../common/errors.js';
import { statusOf, type KubeClients } from '../common/k8s.js';
import type { Logger } from '../common/logger.js';

export interface CertBundle {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertRequest {
  commonName: string;
  dnsNames: string[];
  ipAddresses?: string[];
  validityDays: number;
  now?: Date;
}

const DAY_MS = 86_400_000;

/** The names kube-apiserver may use to reach a Service: it dials <service>.<namespace>.svc. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

interface RsaKeys {
  publicKey: forge.pki.rsa.PublicKey;
  /** PKCS#1 PEM. */
  pem: string;
  /** What forge's `certificate.sign` calls: a PKCS#1 v1.5 SHA-256 signature of the digest. */
  signer: { sign(md: forge.md.MessageDigest): string };
}

// DER of DigestInfo's AlgorithmIdentifier for SHA-256 plus the OCTET STRING header (RFC 8017 9.2).
const SHA256_DIGEST_INFO = Buffer.from('3031300d060960864801650304020105000420', 'hex');

/**
 * RSA 2048 keys and signatures from node:crypto. forge does the certificate structure only:
 * its pure-JavaScript big-number code takes seconds per key or signature in some runtimes.
 */
function rsaKeys(): RsaKeys {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048, publicExponent: 0x10001 });
  return {
    publicKey: forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }).toString()) as forge.pki.rsa.PublicKey,
    pem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
    signer: {
      sign(md) {
        const digestInfo = Buffer.concat([SHA256_DIGEST_INFO, Buffer.from(md.digest().getBytes(), 'binary')]);
        return privateEncrypt({ key: privateKey, padding: constants.RSA_PKCS1_PADDING }, digestInfo).toString('binary');
      },
    },
  };
}

function serial(): string {
  // Positive (leading byte below 0x80) and unique enough that no two certificates collide.
  return `01${randomBytes(15).toString('hex')}`;
}

function validity(cert: forge.pki.Certificate, now: Date, days: number): void {
  // A little slack in the past so that nodes with a skewed clock accept it at once.
  cert.validity.notBefore = new Date(now.getTime() - 5 * 60_000);
  cert.validity.notAfter = new Date(now.getTime() + days * DAY_MS);
}

/** A new CA and a serving certificate it signed (RSA 2048, SHA-256). */
export function generateCertificates(req: CertRequest): CertBundle {
  const now = req.now ?? new Date();
  const caKeys = rsaKeys();
  const ca = forge.pki.createCertificate();
  ca.publicKey = caKeys.publicKey;
  ca.serialNumber = serial();
  validity(ca, now, req.validityDays);
  const caSubject = [{ name: 'commonName', value: `${req.commonName} CA` }, { name: 'organizationName', value: 'sair' }];
  ca.setSubject(caSubject);
  ca.setIssuer(caSubject);
  ca.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  ca.sign(caKeys.signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());

  const keys = rsaKeys();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  validity(cert, now, req.validityDays);
  cert.setSubject([{ name: 'commonName', value: req.commonName }]);
  cert.setIssuer(caSubject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    {
      name: 'subjectAltName',
      altNames: [...req.dnsNames.map((value) => ({ type: 2, value })), ...(req.ipAddresses ?? []).map((ip) => ({ type: 7, ip }))],
    },
    { name: 'authorityKeyIdentifier', keyIdentifier: ca.generateSubjectKeyIdentifier().getBytes() },
  ]);
  cert.sign(caKeys.signer as unknown as forge.pki.rsa.PrivateKey, forge.md.sha256.create());
  return {
    caCert: forge.pki.certificateToPem(ca),
    caKey: caKeys.pem,
    cert: forge.pki.certificateToPem(cert),
    key: keys.pem,
  };
}

/**
 * Whether a serving certificate is still good: signed by the CA, naming every DNS name, and
 * valid for at least `renewBeforeDays` more. Unparseable input is simply not good.
 */
export function certificateUsable(bundle: Pick<CertBundle, 'caCert' | 'cert'>, dnsNames: string[], now: Date, renewBeforeDays: number): boolean {
  try {
    const ca = forge.pki.certificateFromPem(bundle.caCert);
    const cert = forge.pki.certificateFromPem(bundle.cert);
    if (!ca.verify(cert)) return false;
    if (cert.validity.notBefore.getTime() > now.getTime()) return false;
    if (cert.validity.notAfter.getTime() - now.getTime() < renewBeforeDays * DAY_MS) return false;
    const san = cert.getExtension('subjectAltName') as { altNames?: { type: number; value: string }[] } | null;
    const names = new Set((san?.altNames ?? []).filter((n) => n.type === 2).map((n) => n.value));
    return dnsNames.every((n) => names.has(n));
  } catch {
    return false;
  }
}

function caStillValid(caPem: string, now: Date): boolean {
  try {
    const ca = forge.pki.certificateFromPem(caPem);
    return ca.validity.notAfter.getTime() > now.getTime();
  } catch {
    return false;
  }
}

/** ca.crt, tls.crt and tls.key in `dir` (keys 0600), each written atomically. */
export async function writeCertFiles(dir: string, bundle: CertBundle): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files: [string, string, number][] = [
    ['ca.crt', bundle.caCert, 0o644],
    ['tls.crt', bundle.cert, 0o644],
    ['tls.key', bundle.key, 0o600],
  ];
  for (const [name, content, mode] of files) {
    const tmp = path.join(dir, `.${name}.tmp`);
    await writeFile(tmp, content, { mode });
    await rename(tmp, path.join(dir, name));
  }
}

export interface InstallOptions {
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  service: string;
  validityDays: number;
  /** Keep a Secret whose certificate is still good for this many days. */
  renewBeforeDays: number;
  /** Make new certificates even when the Secret's are still good. */
  force: boolean;
  /** More DNS names or IP addresses for the certificate, beside the Service's names. */
  extraNames?: string[];
  now?: Date;
  logger: Logger;
}

export interface InstallResult {
  /** Whether a new CA and certificate were made (false: the Secret's were still good). */
  generated: boolean;
  /** Webhooks in the configuration whose caBundle was set. */
  webhooksPatched: number;
  /** PEM: the current CA, then the previous one while it is still valid. */
  caBundle: string;
}

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string | undefined): string => Buffer.from(s ?? '', 'base64').toString('utf8');

function upstream(what: string, err: unknown): UpstreamError {
  return new UpstreamError('kube-apiserver', `${what}: ${errorMessage(err)}`, statusOf(err), { cause: err });
}

async function readSecret(clients: KubeClients, namespace: string, name: string): Promise<k8s.V1Secret | undefined> {
  try {
    return await clients.core.readNamespacedSecret({ name, namespace });
  } catch (err) {
    if (statusOf(err) === 404) return undefined;
    throw upstream(`reading Secret ${namespace}/${name}`, err);
  }
}

/** Write the Secret (kubernetes.io/tls, plus ca.crt) and set caBundle on every webhook of the configuration. */
export async function installCertificates(clients: KubeClients, opts: InstallOptions): Promise<InstallResult> {
  const now = opts.now ?? new Date();
  const extra = opts.extraNames ?? [];
  const dnsNames = [...serviceDnsNames(opts.service, opts.namespace), ...extra.filter((n) => !isIP(n))];
  const ipAddresses = extra.filter((n) => isIP(n));
  const existing = await readSecret(clients, opts.namespace, opts.secretName);
  const old = existing?.data ? { caCert: unb64(existing.data['ca.crt']), cert: unb64(existing.data['tls.crt']) } : undefined;
  const keep = !opts.force && old !== undefined && certificateUsable(old, dnsNames, now, opts.renewBeforeDays);
  let caBundle: string;
  if (keep) {
    caBundle = old.caCert;
    opts.logger.info({ secret: `${opts.namespace}/${opts.secretName}` }, 'existing certificate still valid; keeping it');
  } else {
    const bundle = generateCertificates({ commonName: `${opts.service}.${opts.namespace}.svc`, dnsNames, ipAddresses, validityDays: opts.validityDays, now });
    // Until kubelet brings the new Secret to every webhook pod (up to a minute or two), some still
    // serve the old certificate: trust the previous CA as well, while it is valid.
    caBundle = bundle.caCert + (old && caStillValid(old.caCert, now) ? old.caCert : '');
    const body: k8s.V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      // A Secret's type cannot change; one made by hand as Opaque keeps working as a volume.
      type: existing?.type ?? 'kubernetes.io/tls',
      metadata: {
        name: opts.secretName,
        namespace: opts.namespace,
        labels: { 'app.kubernetes.io/name': 'sair-webhook', 'app.kubernetes.io/managed-by': 'sair-certs' },
        ...(existing?.metadata?.resourceVersion ? { resourceVersion: existing.metadata.resourceVersion } : {}),
      },
      // The CA key is not stored: rotation makes a new CA, so nothing needs it again.
      data: { 'tls.crt': b64(bundle.cert), 'tls.key': b64(bundle.key), 'ca.crt': b64(bundle.caCert) },
    };
    try {
      if (existing) await clients.core.replaceNamespacedSecret({ name: opts.secretName, namespace: opts.namespace, body });
      else await clients.core.createNamespacedSecret({ namespace: opts.namespace, body });
    } catch (err) {
      throw upstream(`writing Secret ${opts.namespace}/${opts.secretName}`, err);
    }
    opts.logger.info({ secret: `${opts.namespace}/${opts.secretName}`, dnsNames }, existing ? 'certificate rotated' : 'certificate created');
  }
  // A kept certificate leaves a caBundle that already trusts its CA alone: a re-run shortly after a
  // rotation must not drop the previous CA while pods may still serve with it.
  const webhooksPatched = await patchCaBundle(clients, opts.webhookConfigName, caBundle, keep ? 'contains' : 'exact');
  opts.logger.info({ webhookConfiguration: opts.webhookConfigName, webhooks: webhooksPatched }, 'caBundle set');
  return { generated: !keep, webhooksPatched, caBundle };
}

/**
 * Set caBundle (PEM) on every webhook; retried on a write conflict. With 'contains', a webhook
 * whose caBundle already includes `caPem` is left as it is. Returns how many webhooks it covers.
 */
export async function patchCaBundle(clients: KubeClients, name: string, caPem: string, mode: 'exact' | 'contains' = 'exact'): Promise<number> {
  const caBundle = b64(caPem);
  const fine = (current: string | undefined): boolean =>
    mode === 'exact' ? current === caBundle : current !== undefined && unb64(current).includes(caPem.trim());
  for (let attempt = 1; ; attempt++) {
    let config: k8s.V1MutatingWebhookConfiguration;
    try {
      config = await clients.admissionregistration.readMutatingWebhookConfiguration({ name });
    } catch (err) {
      if (statusOf(err) === 404) {
        throw new UpstreamError('kube-apiserver', `MutatingWebhookConfiguration ${name} not found; apply manifests/webhook first`, 404, { cause: err });
      }
      throw upstream(`reading MutatingWebhookConfiguration ${name}`, err);
    }
    const webhooks = config.webhooks ?? [];
    if (webhooks.every((w) => fine(w.clientConfig.caBundle))) return webhooks.length;
    for (const w of webhooks) if (!fine(w.clientConfig.caBundle)) w.clientConfig.caBundle = caBundle;
    try {
      await clients.admissionregistration.replaceMutatingWebhookConfiguration({ name, body: config });
      return webhooks.length;
    } catch (err) {
      if (statusOf(err) !== 409 || attempt >= 5) throw upstream(`updating MutatingWebhookConfiguration ${name}`, err);
    }
  }
}
