import { type ClusterSpec, EdgeplaneError } from '@edgeplane/protocol';
import { listClusterRows } from '../cluster/cluster.repository.js';
import { clusterOf } from '../cluster/host-claims.js';
import { listClusterVms } from '../cluster/virtualized/cluster-vm.repository.js';
import type { Executor } from '../store/db.js';

/** The columns of an edge_hosts row the membership needs (a ResourceRow has them). */
type HostLike = { name: string; annotations: string; state?: unknown };

/** What a host is to the clusters: a node of one, the node of one VM, or an appliance running VMs. */
export type Membership =
  | { kind: 'node'; cluster: string }
  | { kind: 'vm'; cluster: string; vm: string }
  | { kind: 'appliance'; clusters: { cluster: string; vms: string[] }[] };

/** Undefined when no cluster depends on the host: it may be deleted or rejected on its own. */
export async function hostMembership(db: Executor, host: HostLike): Promise<Membership | undefined> {
  const vms = await listClusterVms(db);
  const vm = vms.find((v) => v.host === host.name);
  if (vm) return { kind: 'vm', cluster: vm.cluster, vm: vm.vm };
  const owner = clusterOf(host);
  if (owner || host.state === 'in-use') return { kind: 'node', cluster: owner ?? '?' };
  const onAppliance = new Map<string, string[]>();
  for (const v of vms) if (v.appliance === host.name) onAppliance.set(v.cluster, [...(onAppliance.get(v.cluster) ?? []), v.vm]);
  // A virtualized cluster created a moment ago has no VM records yet; it depends on its appliance all the same.
  for (const c of await listClusterRows(db)) {
    const spec = JSON.parse(c.spec) as ClusterSpec;
    if (spec.type === 'virtualized' && spec.appliance === host.name && !onAppliance.has(c.name))
      onAppliance.set(
        c.name,
        (spec.vms ?? []).map((v) => v.name),
      );
  }
  if (onAppliance.size === 0) return undefined;
  return { kind: 'appliance', clusters: [...onAppliance].map(([cluster, names]) => ({ cluster, vms: names })) };
}

/** Names the clusters of an appliance with their VMs: `store-42 (VMs w1, w2), store-43 (VM cp)`. */
export function applianceClusters(m: Extract<Membership, { kind: 'appliance' }>): string {
  return m.clusters.map((c) => `"${c.cluster}" (VM${c.vms.length === 1 ? '' : 's'} ${c.vms.join(', ') || 'none yet'})`).join(', ');
}

/** Refuses deleting or rejecting a host a cluster depends on (HostInCluster), naming the cluster and the way out. */
export async function refuseIfClusterMember(db: Executor, host: HostLike, verb: 'delete' | 'reject'): Promise<void> {
  const m = await hostMembership(db, host);
  if (!m) return;
  const force =
    verb === 'delete' ? `, or delete it with force (edgeplane delete host ${host.name} --force), which drains it and takes it out of the cluster first` : '';
  if (m.kind === 'node')
    throw new EdgeplaneError('HostInCluster', `host "${host.name}" is a node of cluster "${m.cluster}"; remove it from spec.nodes first${force}`, {
      host: host.name,
      cluster: m.cluster,
    });
  if (m.kind === 'vm')
    throw new EdgeplaneError(
      'HostInCluster',
      `host "${host.name}" is the node of VM "${m.vm}" of virtualized cluster "${m.cluster}"; remove the VM from spec.vms first${force}`,
      { host: host.name, cluster: m.cluster, vm: m.vm },
    );
  throw new EdgeplaneError(
    'HostInCluster',
    `host "${host.name}" is the appliance of cluster(s) ${applianceClusters(m)}; delete those clusters (or remove their VMs from spec.vms) first`,
    { host: host.name, clusters: m.clusters.map((c) => c.cluster), vms: m.clusters.flatMap((c) => c.vms.map((vm) => `${c.cluster}/${vm}`)) },
  );
}
