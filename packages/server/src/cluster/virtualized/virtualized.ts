import { type ClusterNode, type ClusterSpec, type ClusterVm, EdgeplaneError, LIBVIRT_CAPABILITY, type LibvirtInventory } from '@edgeplane/protocol';
import type { Executor } from '../../store/db.js';
import { findHosts, type HostRow, listClusterRows } from '../cluster.repository.js';

/** The node (EdgeHost) name of a VM, which is also the guest's hostname. */
export const vmHostName = (cluster: string, vm: string) => `${cluster}-${vm}`.slice(0, 63).replace(/-+$/, '');
/** libvirt domain name of a VM (the agent's virt manager owns domains with the `ep-` prefix). */
export const vmDomainName = (cluster: string, vm: string) => `ep-${cluster}-${vm}`;
/** Per-cluster registration token every VM of the cluster registers with. */
export const vmTokenName = (cluster: string) => `vm-${cluster}`.slice(0, 63).replace(/-+$/, '');
export const VM_TOKEN_SECRET = 'vm-registration-token';

export const isVirtualized = (spec: Pick<ClusterSpec, 'type'>) => spec.type === 'virtualized';

/** The cluster's nodes: `spec.nodes` for native clusters, one node per VM for virtualized ones. */
export function clusterNodes(cluster: string, spec: ClusterSpec): ClusterNode[] {
  if (!isVirtualized(spec)) return spec.nodes;
  return (spec.vms ?? []).map((vm) => ({
    host: vmHostName(cluster, vm.name),
    role: vm.role,
    ...(Object.keys(vm.labels ?? {}).length ? { labels: vm.labels } : {}),
  }));
}

/** The spec the node-level machinery (controller, status) works with: VMs turned into nodes. */
export function effectiveSpec(cluster: string, spec: ClusterSpec): ClusterSpec {
  return isVirtualized(spec) ? { ...spec, nodes: clusterNodes(cluster, spec) } : spec;
}

interface AgentStatusLike {
  agent?: { capabilities?: string[]; managers?: { virt?: { libvirt?: LibvirtInventory } } };
}

/** The libvirt inventory an appliance reported, if it is one. */
export function applianceInventory(host: { status: string }): LibvirtInventory | undefined {
  const s = JSON.parse(host.status) as AgentStatusLike;
  if (!s.agent?.capabilities?.includes(LIBVIRT_CAPABILITY)) return undefined;
  return s.agent.managers?.virt?.libvirt;
}

const GiB = 1024 ** 3;

/** Whether a URL's host is a loopback name or address (localhost, 127.0.0.0/8, ::1). */
export function isLoopbackUrl(url: string): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.replace(/^\[|\]$/g, '').toLowerCase();
  } catch {
    return false;
  }
  return host === 'localhost' || host.endsWith('.localhost') || /^127\.\d+\.\d+\.\d+$/.test(host) || host === '::1';
}

/**
 * Checks a virtualized cluster against its appliance before anything is written: VM names unique,
 * the appliance exists, is an appliance and is online, every network and pool exists, and the VMs
 * of all clusters on the appliance fit its CPUs and memory (times the overcommit ratio) and the new
 * disks fit each pool's free space.
 */
export async function validateVirtualized(
  db: Executor,
  name: string,
  spec: ClusterSpec,
  existingVms: Set<string> = new Set(),
  vmServerUrl?: string,
): Promise<HostRow> {
  if (spec.nodes.length)
    throw new EdgeplaneError('ValidationFailed', 'a virtualized cluster lists spec.vms, not spec.nodes', {
      issues: [{ path: 'spec.nodes', message: 'must be empty when spec.type is virtualized' }],
    });
  if (!spec.appliance)
    throw new EdgeplaneError('ValidationFailed', 'a virtualized cluster needs spec.appliance', { issues: [{ path: 'spec.appliance', message: 'required' }] });
  const vms = spec.vms ?? [];
  if (!vms.length)
    throw new EdgeplaneError('ValidationFailed', 'a virtualized cluster needs spec.vms', { issues: [{ path: 'spec.vms', message: 'at least one VM' }] });
  checkVmNames(vms);

  const [appliance] = await findHosts(db, [spec.appliance]);
  if (!appliance) throw new EdgeplaneError('ApplianceNotFound', `appliance "${spec.appliance}" is not an edge host`, { appliance: spec.appliance });
  const inv = applianceInventory(appliance);
  if (!inv)
    throw new EdgeplaneError('NotAnAppliance', `host "${spec.appliance}" does not report the ${LIBVIRT_CAPABILITY} capability`, { appliance: spec.appliance });
  if (appliance.connectivity !== 'online')
    throw new EdgeplaneError('ApplianceOffline', `appliance "${spec.appliance}" is ${appliance.connectivity}; its agent must be connected`, {
      appliance: spec.appliance,
    });

  // A real appliance's guests cannot reach the server's loopback; simulated guests run beside the server.
  if (vmServerUrl && !inv.simulated && isLoopbackUrl(vmServerUrl))
    throw new EdgeplaneError(
      'VmServerUrlLoopback',
      `the VMs on "${spec.appliance}" would be told to reach the server at ${vmServerUrl}, a loopback address no guest can reach; start the server with --public-url <URL the VMs can reach>`,
      { appliance: spec.appliance, serverUrl: vmServerUrl },
    );

  const networks = inv.networks.map((n) => n.name);
  const pools = inv.pools.map((p) => p.name);
  for (const vm of vms) {
    if (!networks.includes(vm.network))
      throw new EdgeplaneError('VmNetworkNotFound', `VM "${vm.name}": appliance "${spec.appliance}" has no libvirt network "${vm.network}"`, {
        vm: vm.name,
        network: vm.network,
        networks,
      });
    if (!pools.includes(vm.storagePool))
      throw new EdgeplaneError('VmStoragePoolNotFound', `VM "${vm.name}": appliance "${spec.appliance}" has no storage pool "${vm.storagePool}"`, {
        vm: vm.name,
        storagePool: vm.storagePool,
        pools,
      });
  }

  // Capacity: this cluster's VMs plus those of the other clusters on the same appliance.
  const others: ClusterVm[] = [];
  for (const row of await listClusterRows(db)) {
    if (row.name === name) continue;
    const s = JSON.parse(row.spec) as ClusterSpec;
    if (isVirtualized(s) && s.appliance === spec.appliance) others.push(...(s.vms ?? []));
  }
  const over = { cpu: spec.overcommit?.cpu ?? 4, memory: spec.overcommit?.memory ?? 1 };
  // Domains Edgeplane does not manage (no `ep-` prefix) take their share of the appliance too.
  const foreign = inv.domains.filter((d) => !d.name.startsWith('ep-')).map((d) => ({ vcpus: d.vcpus ?? 0, memoryMiB: d.memoryMiB ?? 0 }));
  const all = [...others, ...vms, ...foreign];
  const vcpus = all.reduce((n, v) => n + v.vcpus, 0);
  const memoryMiB = all.reduce((n, v) => n + v.memoryMiB, 0);
  const cpuLimit = Math.floor(inv.cpus * over.cpu);
  const memLimit = Math.floor(inv.memoryMiB * over.memory);
  if (vcpus > cpuLimit)
    throw new EdgeplaneError(
      'ApplianceCapacityExceeded',
      `the VMs on "${spec.appliance}" would need ${vcpus} vCPUs; it has ${inv.cpus} CPUs x overcommit ${over.cpu} = ${cpuLimit}`,
      { resource: 'vcpus', needed: vcpus, limit: cpuLimit },
    );
  if (memoryMiB > memLimit)
    throw new EdgeplaneError(
      'ApplianceCapacityExceeded',
      `the VMs on "${spec.appliance}" would need ${memoryMiB} MiB of memory; it has ${inv.memoryMiB} MiB x overcommit ${over.memory} = ${memLimit} MiB`,
      { resource: 'memory', neededMiB: memoryMiB, limitMiB: memLimit },
    );
  // New disks (VMs not created yet) must fit each pool's free space.
  const perPool = new Map<string, number>();
  for (const vm of vms) if (!existingVms.has(vm.name)) perPool.set(vm.storagePool, (perPool.get(vm.storagePool) ?? 0) + vm.diskGiB);
  for (const [pool, gib] of perPool) {
    const free = inv.pools.find((p) => p.name === pool)!.availableBytes;
    if (gib * GiB > free)
      throw new EdgeplaneError('ApplianceCapacityExceeded', `the new disks in pool "${pool}" need ${gib} GiB; it has ${(free / GiB).toFixed(1)} GiB free`, {
        resource: 'storage',
        storagePool: pool,
        neededGiB: gib,
        freeGiB: Math.floor(free / GiB),
      });
  }
  return appliance;
}

export function checkVmNames(vms: ClusterVm[]): void {
  const seen = new Set<string>();
  for (const vm of vms) {
    if (seen.has(vm.name)) throw new EdgeplaneError('DuplicateVmName', `VM name "${vm.name}" appears more than once in spec.vms`, { vm: vm.name });
    seen.add(vm.name);
  }
}

/**
 * What an update may not change: the cluster type, the appliance of a virtualized cluster, and the
 * disk, network and pool of an existing VM (its domain and volume are made once; remove the VM and
 * add a new one instead). vCPUs, memory and labels may change.
 */
export function checkVirtualizedUpdate(prev: ClusterSpec, next: ClusterSpec): void {
  if ((prev.type ?? 'native') !== (next.type ?? 'native'))
    throw new EdgeplaneError('InvalidState', `spec.type cannot change (${prev.type ?? 'native'} -> ${next.type}); create a new cluster`, {});
  if (!isVirtualized(next)) return;
  if (prev.appliance !== next.appliance)
    throw new EdgeplaneError('InvalidState', `spec.appliance cannot change (${prev.appliance} -> ${next.appliance}); VMs do not move between appliances`, {});
  for (const vm of next.vms ?? []) {
    const before = prev.vms?.find((v) => v.name === vm.name);
    if (!before) continue;
    for (const k of ['diskGiB', 'network', 'storagePool', 'role'] as const)
      if (before[k] !== vm[k])
        throw new EdgeplaneError('InvalidState', `VM "${vm.name}": ${k} cannot change on an existing VM; remove it and add a new one`, {
          vm: vm.name,
          field: k,
        });
  }
}
