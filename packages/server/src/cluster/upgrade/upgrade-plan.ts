import type { ClusterSpec, NodePlan } from '@edgeplane/protocol';
import type { Executor } from '../../store/db.js';
import { findHosts, listSteps } from '../cluster.repository.js';
import { checkRevisionChange, validateCluster } from '../cluster.service.js';
import { clusterOf } from '../host-claims.js';
import { hostAddress, renderHostSpec } from '../render.js';
import { effectiveSpec } from '../virtualized/virtualized.js';
import { baseSpec, classify } from './classify.js';
import { quorumGuard } from './quorum.js';
import { managedSpec } from './upgrade.engine.js';

export interface PlanResult {
  apiVersion: 'edgeplane.io/v1';
  kind: 'UpgradePlan';
  cluster: string;
  fromRevision?: number;
  toRevision: number;
  /** Nodes in the order the upgrade takes them (control-plane first). */
  nodes: (NodePlan & { joins?: boolean })[];
  /** Hosts leaving the cluster: drained, removed from Kubernetes (and etcd), reset to `ready`. */
  removed: string[];
}

/**
 * The dry run of a cluster change: validates `next` like an update would, renders each node's new
 * host spec and classifies it against what the node was given (docs/architecture.md "Cluster upgrades").
 */
export async function planClusterChange(db: Executor, row: { name: string; spec: string; status: string }, asked: ClusterSpec): Promise<PlanResult> {
  // A virtualized cluster's nodes are its VMs (hosts named after them): plan those like native nodes.
  const current = effectiveSpec(row.name, JSON.parse(row.spec) as ClusterSpec);
  const next = effectiveSpec(row.name, asked);
  const status = JSON.parse(row.status) as { controlPlaneEndpoint?: string; profileRevision?: number };
  quorumGuard(current.nodes, next.nodes);
  const { profile } = await validateCluster(db, row.name, asked);
  await checkRevisionChange(db, JSON.parse(row.spec) as ClusterSpec, asked, profile);
  const steps = await listSteps(db, row.name);
  const initHost = steps.get('init') ?? next.nodes.find((n) => n.role === 'control-plane')!.host;
  const hosts = new Map(
    (
      await findHosts(
        db,
        next.nodes.map((n) => n.host),
      )
    ).map((h) => [h.name, h]),
  );
  const initRow = hosts.get(initHost);
  const endpoint = next.controlPlaneEndpoint ?? status.controlPlaneEndpoint ?? (initRow ? `https://${hostAddress(initRow)}:6443` : `https://${initHost}:6443`);
  const nodes = next.nodes.map((n) => {
    const h = hosts.get(n.host);
    const member = h && clusterOf(h) === row.name;
    const target = renderHostSpec({ cluster: row.name, spec: next, profile, node: n, init: n.host === initHost, controlPlaneEndpoint: endpoint });
    if (!member) return { host: n.host, role: n.role, change: 'repave' as const, reasons: ['joins the cluster at this revision'], joins: true };
    return { host: n.host, role: n.role, ...classify(baseSpec(managedSpec(h)), target) };
  });
  nodes.sort((a, b) => Number(a.role === 'worker') - Number(b.role === 'worker'));
  return {
    apiVersion: 'edgeplane.io/v1',
    kind: 'UpgradePlan',
    cluster: row.name,
    ...(status.profileRevision !== undefined ? { fromRevision: status.profileRevision } : {}),
    toRevision: next.profile.revision,
    nodes,
    removed: current.nodes.filter((n) => !next.nodes.some((x) => x.host === n.host)).map((n) => n.host),
  };
}
