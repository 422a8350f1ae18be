import type { Executor } from '../../store/db.js';
import type { ClusterVmTable } from '../../store/schema.js';

export type ClusterVmRow = ClusterVmTable;

export async function listClusterVms(db: Executor, cluster?: string): Promise<ClusterVmRow[]> {
  let q = db.selectFrom('cluster_vms').selectAll();
  if (cluster) q = q.where('cluster', '=', cluster);
  return (await q.orderBy('cluster').orderBy('vm').execute()).map((r) => ({ ...r, vcpus: Number(r.vcpus), memory_mib: Number(r.memory_mib) }));
}

export async function listVmsOnAppliance(db: Executor, appliance: string): Promise<ClusterVmRow[]> {
  return (await db.selectFrom('cluster_vms').selectAll().where('appliance', '=', appliance).orderBy('cluster').orderBy('vm').execute()).map((r) => ({
    ...r,
    vcpus: Number(r.vcpus),
    memory_mib: Number(r.memory_mib),
  }));
}

export async function insertClusterVm(db: Executor, row: ClusterVmRow): Promise<void> {
  await db.insertInto('cluster_vms').values(row).execute();
}

export async function updateClusterVmSize(db: Executor, cluster: string, vm: string, vcpus: number, memoryMiB: number): Promise<void> {
  await db.updateTable('cluster_vms').set({ vcpus, memory_mib: memoryMiB }).where('cluster', '=', cluster).where('vm', '=', vm).execute();
}

export async function deleteClusterVms(db: Executor, cluster: string, vms?: string[]): Promise<void> {
  let q = db.deleteFrom('cluster_vms').where('cluster', '=', cluster);
  if (vms) {
    if (vms.length === 0) return;
    q = q.where('vm', 'in', vms);
  }
  await q.execute();
}
