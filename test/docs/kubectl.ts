// A tiny kubectl for the documentation tests: exactly the verbs docs/quickstart.md uses, sent through
// the real @kubernetes/client-node (KubernetesObjectApi, which finds resources by discovery as
// kubectl does) to the fake API server. Mutating verbs: apply -f <file from the doc> | -k <dir>,
// create namespace|configmap|secret generic (--from-literal)|serviceaccount|rolebinding
// (--clusterrole, --serviceaccount), label, patch --type merge,
// rollout restart, delete -k. Read-only verbs (get, port-forward) and commands that need a real
// cluster's nodes or pods are reported as not run, so a test can check that nothing else appears.
// `apply -k` and `delete -k` build the kustomization's resource list the way kustomize does
// (resources recursively, the `namespace:` transform), validate every object against the Kubernetes
// schemas (kubernetes-models), and send the kinds the fake API server serves.
import { join } from 'node:path';
import * as k8s from '@kubernetes/client-node';
import { CLUSTER_SCOPED, kustomizeBuild, validateManifest, yamlDocs } from '../support/manifests.js';

export type Obj = k8s.KubernetesObject & { apiVersion: string; kind: string; metadata: k8s.V1ObjectMeta & { name: string } };



/** Kinds the fake API server serves; the others of a kustomization are validated but not sent. */
export const SERVED_KINDS = new Set(['Namespace', 'CustomResourceDefinition', 'MutatingWebhookConfiguration', 'ConfigMap', 'Secret', 'Service', 'ServiceAccount', 'Deployment', 'HorizontalPodAutoscaler', 'Lease', 'Role', 'ClusterRole', 'RoleBinding', 'ClusterRoleBinding']);

/** kubectl resource names (and short names) the doc uses. */
const RESOURCES: Record<string, { apiVersion: string; kind: string }> = {
  namespace: { apiVersion: 'v1', kind: 'Namespace' },
  node: { apiVersion: 'v1', kind: 'Node' },
  configmap: { apiVersion: 'v1', kind: 'ConfigMap' },
  secret: { apiVersion: 'v1', kind: 'Secret' },
  pod: { apiVersion: 'v1', kind: 'Pod' },
  deployment: { apiVersion: 'apps/v1', kind: 'Deployment' },
  hpa: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  horizontalpodautoscaler: { apiVersion: 'autoscaling/v2', kind: 'HorizontalPodAutoscaler' },
  inferencepipeline: { apiVersion: 'sair.dev/v1alpha1', kind: 'InferencePipeline' },
  ip: { apiVersion: 'sair.dev/v1alpha1', kind: 'InferencePipeline' },
};

function resourceOf(name: string): { apiVersion: string; kind: string } {
  const r = RESOURCES[name.replace(/s$/, '')] ?? RESOURCES[name];
  if (!r) throw new Error(`kubectl: resource type "${name}" is not known to this test kubectl; expected one of ${Object.keys(RESOURCES).join(', ')}`);
  return r;
}

/** Splits a shell command line into words (single and double quotes, no expansion). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let quote: '"' | "'" | null = null;
  let has = false;
  for (const ch of line) {
    if (quote) {
      if (ch === quote) quote = null;
      else cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      has = true;
    } else if (/\s/.test(ch)) {
      if (has || cur) words.push(cur);
      cur = '';
      has = false;
    } else cur += ch;
  }
  if (quote) throw new Error(`unterminated quote in: ${line}`);
  if (has || cur) words.push(cur);
  return words;
}




export interface KubectlResult {
  ran: boolean;
  /** Why it was not run (read-only, or needs a real cluster). */
  note?: string;
  objects?: Obj[];
}

export class Kubectl {
  private readonly objects: k8s.KubernetesObjectApi;

  constructor(
    kc: k8s.KubeConfig,
    /** Files the doc defines (`# file: x.yaml` blocks), by name. */
    private readonly files: Map<string, string>,
    /** Repository root, for `-k manifests/`. */
    private readonly root: string,
  ) {
    this.objects = k8s.KubernetesObjectApi.makeApiClient(kc);
  }

  async run(line: string): Promise<KubectlResult> {
    const words = shellWords(line);
    if (words[0] !== 'kubectl') throw new Error(`not a kubectl command: ${line}`);
    const flags = new Map<string, string>();
    const args: string[] = [];
    const literals: string[] = [];
    for (let i = 1; i < words.length; i++) {
      const w = words[i]!;
      if (w === '--all-namespaces' || w === '-A') flags.set('all', 'true');
      else if (['-n', '--namespace', '-f', '-k', '-l', '-p', '--type', '-o', '--field-selector', '--for'].includes(w)) flags.set(w === '--namespace' ? '-n' : w, words[++i] ?? '');
      else if (w.startsWith('--from-literal=')) literals.push(w.slice('--from-literal='.length));
      else args.push(w);
    }
    const ns = flags.get('-n');
    const [verb, ...rest] = args;
    switch (verb) {
      case 'get':
      case 'port-forward':
      case 'logs':
      case 'describe':
        return { ran: false, note: 'read-only' };
      case 'apply':
        return flags.has('-k') ? this.applyAll(kustomizeBuild(join(this.root, flags.get('-k')!))) : this.applyAll(this.file(flags.get('-f')));
      case 'delete':
        if (!flags.has('-k')) throw new Error(`kubectl delete: only -k is supported here: ${line}`);
        return this.deleteAll(kustomizeBuild(join(this.root, flags.get('-k')!)));
      case 'create':
        return this.create(rest, ns, literals);
      case 'label':
        return this.label(rest, ns, flags);
      case 'patch': {
        if (flags.get('--type') !== 'merge') throw new Error(`kubectl patch: only --type merge is supported here: ${line}`);
        const [type, name] = rest;
        const r = resourceOf(type!);
        const body = JSON.parse(flags.get('-p') ?? '{}') as Record<string, unknown>;
        const patched = await this.objects.patch({ ...body, apiVersion: r.apiVersion, kind: r.kind, metadata: { name, ...(ns ? { namespace: ns } : {}) } } as Obj, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
        return { ran: true, objects: [patched as Obj] };
      }
      case 'rollout': {
        // `kubectl rollout restart` stamps the pod template, so the Deployment rolls its pods.
        const [sub, type, name] = rest;
        if (sub !== 'restart') return { ran: false, note: 'read-only' };
        const r = resourceOf(type!);
        const body = { spec: { template: { metadata: { annotations: { 'kubectl.kubernetes.io/restartedAt': new Date().toISOString() } } } } };
        const patched = await this.objects.patch({ ...body, apiVersion: r.apiVersion, kind: r.kind, metadata: { name: name!, namespace: ns ?? 'default' } } as Obj, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch);
        return { ran: true, objects: [patched as Obj] };
      }
      default:
        throw new Error(`kubectl ${verb}: not supported by the test kubectl (${line})`);
    }
  }

  private file(name: string | undefined): Obj[] {
    const text = name === undefined ? undefined : this.files.get(name);
    if (text === undefined) throw new Error(`kubectl apply -f ${name}: the doc defines no such file (a yaml block starting with "# file: ${name}")`);
    return yamlDocs<Obj>(text, name!);
  }

  private async applyAll(objs: Obj[]): Promise<KubectlResult> {
    const sent: Obj[] = [];
    for (const o of objs) {
      validateManifest(o);
      if (!SERVED_KINDS.has(o.kind) && !o.apiVersion.startsWith('sair.dev/')) continue;
      let existing: Obj | undefined;
      try {
        existing = (await this.objects.read(o as Parameters<k8s.KubernetesObjectApi['read']>[0])) as Obj;
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
      if (existing) sent.push((await this.objects.replace({ ...o, metadata: { ...o.metadata, resourceVersion: existing.metadata.resourceVersion } })) as Obj);
      else sent.push((await this.objects.create(o)) as Obj);
    }
    return { ran: true, objects: sent };
  }

  private async deleteAll(objs: Obj[]): Promise<KubectlResult> {
    const gone: Obj[] = [];
    for (const o of [...objs].reverse()) {
      validateManifest(o);
      if (!SERVED_KINDS.has(o.kind)) continue;
      try {
        await this.objects.delete(o);
        gone.push(o);
      } catch (err) {
        // A namespace deleted first takes its objects with it, as in a real cluster.
        if ((err as { code?: number }).code !== 404) throw err;
      }
    }
    return { ran: true, objects: gone };
  }

  private async create(rest: string[], ns: string | undefined, literals: string[]): Promise<KubectlResult> {
    const [type, ...more] = rest;
    const namespace = ns ?? 'default';
    let obj: Obj;
    const data = Object.fromEntries(literals.map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    if (type === 'namespace') obj = { apiVersion: 'v1', kind: 'Namespace', metadata: { name: more[0]! } };
    else if (type === 'configmap') obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: more[0]!, namespace }, data } as Obj;
    else if (type === 'secret' && more[0] === 'generic') {
      obj = { apiVersion: 'v1', kind: 'Secret', type: 'Opaque', metadata: { name: more[1]!, namespace }, data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, Buffer.from(v).toString('base64')])) } as Obj;
    } else if (type === 'serviceaccount') obj = { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: more[0]!, namespace } } as Obj;
    else if (type === 'rolebinding') {
      // `kubectl create rolebinding <name> --clusterrole=<role> --serviceaccount=<ns>:<name>`
      const flag = (name: string) => more.find((w) => w.startsWith(`--${name}=`))?.slice(name.length + 3);
      const role = flag('clusterrole');
      const [saNamespace, saName] = (flag('serviceaccount') ?? '').split(':');
      if (!role || !saNamespace || !saName) throw new Error(`kubectl create ${rest.join(' ')}: the test kubectl needs --clusterrole= and --serviceaccount=<ns>:<name>`);
      obj = {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: more[0]!, namespace },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role },
        subjects: [{ kind: 'ServiceAccount', name: saName, namespace: saNamespace }],
      } as Obj;
    } else throw new Error(`kubectl create ${rest.join(' ')}: not supported by the test kubectl`);
    return { ran: true, objects: [(await this.objects.create(obj)) as Obj] };
  }

  /** `kubectl label <type> <name>|-l sel [--all-namespaces] key=value|key-`: a merge patch of metadata.labels. */
  private async label(rest: string[], ns: string | undefined, flags: Map<string, string>): Promise<KubectlResult> {
    const [type, ...more] = rest;
    const r = resourceOf(type!);
    const names = flags.has('-l') ? [] : [more.shift()!];
    const labels: Record<string, string | null> = {};
    for (const kv of more) {
      if (kv.endsWith('-')) labels[kv.slice(0, -1)] = null;
      else labels[kv.slice(0, kv.indexOf('='))] = kv.slice(kv.indexOf('=') + 1);
    }
    let targets: { name: string; namespace?: string }[] = names.map((name) => ({ name, ...(ns && !CLUSTER_SCOPED.has(r.kind) ? { namespace: ns } : {}) }));
    if (flags.has('-l')) {
      const list = await this.objects.list(r.apiVersion, r.kind, flags.has('all') ? undefined : (ns ?? 'default'), undefined, undefined, undefined, undefined, flags.get('-l'));
      targets = list.items.map((o) => ({ name: o.metadata!.name!, namespace: o.metadata!.namespace }));
    }
    const out: Obj[] = [];
    for (const t of targets) {
      out.push((await this.objects.patch({ apiVersion: r.apiVersion, kind: r.kind, metadata: { ...t, labels } } as unknown as Obj, undefined, undefined, undefined, undefined, k8s.PatchStrategy.MergePatch)) as Obj);
    }
    return { ran: true, objects: out };
  }
}

/** The doc's code blocks in order, with the `## ` section each is in. */
export function codeBlocks(markdown: string): { section: string; lang: string; body: string }[] {
  const out: { section: string; lang: string; body: string }[] = [];
  let section = '';
  const lines = markdown.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    if (line.startsWith('## ')) section = line.slice(3).trim();
    const fence = /^```(\w*)\s*$/.exec(line);
    if (!fence) continue;
    const body: string[] = [];
    for (i++; i < lines.length && !lines[i]!.startsWith('```'); i++) body.push(lines[i]!);
    out.push({ section, lang: fence[1] ?? '', body: body.join('\n') });
  }
  return out;
}

/** `# file: name` yaml blocks of the doc. */
export function docFiles(markdown: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const b of codeBlocks(markdown)) {
    const m = /^# file: (\S+)/.exec(b.body);
    if (b.lang === 'yaml' && m) files.set(m[1]!, b.body);
  }
  return files;
}
