import type { FleetSite, FleetSummary, FleetVersion } from '@edgeplane/protocol';
import type { Executor } from '../store/db.js';
import { clusterRows, hostGroups, imagesByDigest, siteOfHosts, siteRows } from './fleet.repository.js';
import { IN_SERVICE, siteHealth, UPGRADING } from './site-health.js';

type HostCounts = FleetSite['hosts'];
type ClusterCounts = NonNullable<FleetSite['clusters']>;
interface Acc {
  hosts: HostCounts;
  inService: number;
  online: number;
  clusters: ClusterCounts;
  failing: number;
  lastChange?: string;
}

const newAcc = (): Acc => ({
  hosts: { total: 0, byConnectivity: {}, byState: {} },
  inService: 0,
  online: 0,
  clusters: { total: 0, byPhase: {}, upgrading: 0 },
  failing: 0,
});
const later = (a: string | undefined, b: string | undefined) => (!a || (b && b > a) ? b : a);
const bump = (m: Record<string, number>, k: string, n = 1) => {
  m[k] = (m[k] ?? 0) + n;
};

interface ClusterJson {
  spec: { site?: string; nodes?: { host: string }[] };
  status: { phase?: string; upgrade?: { state?: string }; nodes?: { osImageDigest?: string; kubernetesVersion?: string }[] };
}

/**
 * The fleet summary: hosts counted in SQL by site, state and connectivity; clusters (one per site at
 * most, so thousands, not millions) read once and counted by site, phase and the versions their
 * nodes report. One request for the whole fleet, whatever its size. `withClusters` false leaves
 * cluster counts and versions out (a caller who may not list clusters).
 */
export async function fleetSummary(db: Executor, withClusters: boolean): Promise<FleetSummary> {
  const accs = new Map<string, Acc>();
  const unassigned = newAcc();
  const acc = (site: string | undefined) => {
    if (!site) return unassigned;
    let a = accs.get(site);
    if (!a) {
      a = newAcc();
      accs.set(site, a);
    }
    return a;
  };
  const defined = new Map<string, { displayName?: string; region?: string; latitude?: number; longitude?: number }>();
  for (const r of await siteRows(db)) {
    defined.set(r.name, r);
    acc(r.name);
  }
  for (const g of await hostGroups(db)) {
    const a = acc(g.site);
    a.hosts.total += g.n;
    bump(a.hosts.byState, g.state, g.n);
    bump(a.hosts.byConnectivity, g.connectivity, g.n);
    if (IN_SERVICE.has(g.state)) {
      a.inService += g.n;
      if (g.connectivity === 'online') a.online += g.n;
    }
    a.lastChange = later(a.lastChange, g.changed);
  }

  let versions: FleetSummary['versions'];
  if (withClusters) {
    const clusters = (await clusterRows(db)).map((r) => ({
      name: r.name,
      updated: r.updated_at,
      spec: JSON.parse(r.spec) as ClusterJson['spec'],
      status: JSON.parse(r.status) as ClusterJson['status'],
    }));
    const firstHosts = clusters.filter((c) => !c.spec.site && c.spec.nodes?.[0]).map((c) => c.spec.nodes![0].host);
    const hostSite = await siteOfHosts(db, firstHosts);
    const os = new Map<string, { nodes: number; clusters: string[] }>();
    const kube = new Map<string, { nodes: number; clusters: string[] }>();
    const count = (m: typeof os, key: string, cluster: string) => {
      let v = m.get(key);
      if (!v) {
        v = { nodes: 0, clusters: [] };
        m.set(key, v);
      }
      v.nodes++;
      if (v.clusters.at(-1) !== cluster) v.clusters.push(cluster);
    };
    for (const c of clusters) {
      const site = c.spec.site ?? (c.spec.nodes?.[0] ? hostSite.get(c.spec.nodes[0].host) : undefined);
      const a = acc(site);
      a.clusters.total++;
      const phase = c.status.phase ?? 'Pending';
      bump(a.clusters.byPhase, phase);
      const upgrade = c.status.upgrade?.state;
      if (upgrade && UPGRADING.has(upgrade)) a.clusters.upgrading++;
      if (phase === 'Degraded' || phase === 'Failed' || upgrade === 'Failed') a.failing++;
      a.lastChange = later(a.lastChange, c.updated);
      for (const n of c.status.nodes ?? []) {
        if (n.osImageDigest) count(os, n.osImageDigest, c.name);
        if (n.kubernetesVersion) count(kube, n.kubernetesVersion, c.name);
      }
    }
    const images = await imagesByDigest(db);
    const list = (m: typeof os, label: (k: string) => string): FleetVersion[] =>
      [...m.entries()]
        .map(([key, v]) => ({ key, label: label(key), nodes: v.nodes, clusters: v.clusters.length, clusterNames: v.clusters.slice(0, 20) }))
        .sort((a, b) => b.nodes - a.nodes || a.label.localeCompare(b.label));
    versions = { os: list(os, (d) => images.get(d) ?? d), kubernetes: list(kube, (v) => v) };
  }

  // Most sites of a large fleet have no cluster: leaving the empty counts out keeps the answer small.
  const out = (a: Acc) => ({ hosts: a.hosts, ...(withClusters && a.clusters.total > 0 ? { clusters: a.clusters } : {}) });
  const sites: FleetSite[] = [...accs.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, a]) => {
      const d = defined.get(name);
      return {
        name,
        defined: !!d,
        ...(d?.displayName ? { displayName: d.displayName } : {}),
        ...(d?.region ? { region: d.region } : {}),
        ...(d?.latitude !== undefined && d.longitude !== undefined ? { latitude: d.latitude, longitude: d.longitude } : {}),
        health: siteHealth({ hostsInService: a.inService, hostsOnline: a.online, clustersFailing: a.failing, clustersUpgrading: a.clusters.upgrading }),
        ...out(a),
        ...(a.lastChange ? { lastChange: a.lastChange } : {}),
      };
    });
  return { sites, unassigned: out(unassigned), ...(versions ? { versions } : {}) };
}
