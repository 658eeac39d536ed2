// Which resources the fake serves, looked up by URL (group, version, plural) or by a test's
// shorthand (`pods`, `deployments.apps`, `Deployment`, `deploy`), plus the discovery documents
// (/api, /apis, /api/v1, /apis/<group>/<version>) built from the same table.
import {
  apiVersionOf,
  BUILTIN_RESOURCES,
  qualifiedName,
  type KubeObject,
  type ResourceDef,
} from './resources.js';

export class Registry {
  private defs: ResourceDef[] = [...BUILTIN_RESOURCES];

  all(): readonly ResourceDef[] {
    return this.defs;
  }

  find(group: string, version: string, plural: string): ResourceDef | undefined {
    return this.defs.find((d) => d.group === group && d.version === version && d.plural === plural);
  }

  /** Adds or replaces resources (by group, version and plural). */
  add(defs: ResourceDef[]): void {
    for (const def of defs) {
      this.defs = this.defs.filter(
        (d) => !(d.group === def.group && d.version === def.version && d.plural === def.plural),
      );
      this.defs.push(def);
    }
  }

  removeGroupResource(group: string, plural: string): void {
    this.defs = this.defs.filter((d) => !(d.group === group && d.plural === plural));
  }

  /** `pods`, `deployments.apps`, `inferencepipelines.sair.dev`, `Deployment`, `hpa`: the first match, core and older entries first. */
  resolve(name: string): ResourceDef {
    const n = name.toLowerCase();
    const def =
      this.defs.find((d) => qualifiedName(d) === n) ??
      this.defs.find((d) => d.plural === n || d.singular === n || d.kind.toLowerCase() === n) ??
      this.defs.find((d) => d.shortNames?.includes(n));
    if (!def) {
      throw new Error(
        `fake-apiserver: unknown resource "${name}"; expected a plural (pods), plural.group (deployments.apps) or a kind`,
      );
    }
    return def;
  }

  /** The resource an object belongs to, from its apiVersion and kind. */
  forObject(obj: KubeObject): ResourceDef {
    const def = this.defs.find((d) => apiVersionOf(d) === obj.apiVersion && d.kind === obj.kind);
    if (!def) {
      throw new Error(
        `fake-apiserver: no resource serves apiVersion ${JSON.stringify(obj.apiVersion)} kind ${JSON.stringify(obj.kind)}; ` +
          'set both on the object (e.g. apiVersion "apps/v1", kind "Deployment") or create its CRD first',
      );
    }
    return def;
  }

  groupVersions(group: string): string[] {
    return [...new Set(this.defs.filter((d) => d.group === group).map((d) => d.version))];
  }

  /** /api */
  coreDiscovery(): object {
    return {
      kind: 'APIVersions',
      versions: ['v1'],
      serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress: '127.0.0.1:6443' }],
    };
  }

  /** /apis */
  groupList(): object {
    const groups = [...new Set(this.defs.filter((d) => d.group !== '').map((d) => d.group))];
    return { kind: 'APIGroupList', apiVersion: 'v1', groups: groups.map((g) => this.group(g)) };
  }

  /** /apis/<group> */
  group(group: string): object {
    const versions = this.groupVersions(group).map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
    return { kind: 'APIGroup', apiVersion: 'v1', name: group, versions, preferredVersion: versions[0] };
  }

  /** /api/v1, /apis/<group>/<version> */
  resourceList(group: string, version: string): object | undefined {
    const defs = this.defs.filter((d) => d.group === group && d.version === version);
    if (defs.length === 0) return undefined;
    const verbs = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];
    const resources = defs.flatMap((d) => {
      const main = {
        name: d.plural,
        singularName: d.singular,
        namespaced: d.namespaced,
        kind: d.kind,
        verbs,
        ...(d.shortNames ? { shortNames: d.shortNames } : {}),
      };
      const subs = [];
      if (d.status)
        subs.push({
          name: `${d.plural}/status`,
          singularName: '',
          namespaced: d.namespaced,
          kind: d.kind,
          verbs: ['get', 'patch', 'update'],
        });
      if (d.scale) {
        subs.push({
          name: `${d.plural}/scale`,
          singularName: '',
          namespaced: d.namespaced,
          group: 'autoscaling',
          version: 'v1',
          kind: 'Scale',
          verbs: ['get', 'patch', 'update'],
        });
      }
      return [main, ...subs];
    });
    return {
      kind: 'APIResourceList',
      apiVersion: 'v1',
      groupVersion: group ? `${group}/${version}` : version,
      resources,
    };
  }
}
