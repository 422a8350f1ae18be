import { randomUUID } from 'node:crypto';
import { CLUSTER_ANNOTATION, type ClusterSpec, VM_CLUSTER_LABEL } from '@edgeplane/protocol';
import { edgeHosts } from '../../edgehost/edgehost.service.js';
import { recordEvent } from '../../event/event.service.js';
import { registrationTokens } from '../../registration-token/registration-token.service.js';
import type { RequestContext } from '../../resource/context.js';
import { deleteRow, findByName } from '../../resource/resource.repository.js';
import type { Executor } from '../../store/db.js';
import { findHosts, writeHost } from '../cluster.repository.js';
import { clusterOf } from '../host-claims.js';
import { deleteClusterVms, insertClusterVm, listClusterVms } from './cluster-vm.repository.js';
import { vmHostName, vmTokenName } from './virtualized.js';

/**
 * The per-cluster registration token: only the pre-registered VM device UIDs may use it
 * (preRegisteredOnly), and the VMs it admits are approved at once (autoApprove) and labelled with
 * the cluster, so a VM's agent is bound to its cluster and role without manual approval. Returns
 * the token secret when it was created now (the caller seals it), else undefined.
 */
export async function ensureVmToken(db: Executor, cluster: string, ctx: RequestContext): Promise<string | undefined> {
  if (await findByName(db, 'registration_tokens', vmTokenName(cluster))) return undefined;
  const token = await registrationTokens.create(
    db,
    {
      apiVersion: 'edgeplane.io/v1',
      kind: 'RegistrationToken',
      metadata: { name: vmTokenName(cluster), labels: { [VM_CLUSTER_LABEL]: cluster } },
      spec: {
        description: `VMs of virtualized cluster ${cluster} (created by the virt controller; deleted with the cluster)`,
        autoApprove: true,
        preRegisteredOnly: true,
        labels: { [VM_CLUSTER_LABEL]: cluster },
      },
    },
    ctx,
  );
  return (token.status as { token?: string }).token;
}

/**
 * Records each new VM of the cluster (cluster_vms) and pre-registers its host by the VM's device
 * UID (the domain UUID, which the guest reports as DMI product_uuid), already annotated as the
 * cluster's member. Removed VMs lose their record and their host. Runs in one transaction.
 */
export async function syncVmRecords(db: Executor, cluster: string, spec: ClusterSpec, ctx: RequestContext): Promise<{ added: string[]; removed: string[] }> {
  const existing = new Map((await listClusterVms(db, cluster)).map((v) => [v.vm, v]));
  const wanted = new Map((spec.vms ?? []).map((v) => [v.name, v]));
  const added: string[] = [];
  // VMs are at their appliance's site (the cluster's site when the appliance has none).
  const [applianceRow] = await findHosts(db, spec.appliance ? [spec.appliance] : []);
  const site = (applianceRow ? (JSON.parse(applianceRow.spec) as { site?: string }).site : undefined) ?? spec.site;
  for (const vm of spec.vms ?? []) {
    if (existing.has(vm.name)) continue;
    const host = vmHostName(cluster, vm.name);
    const uuid = randomUUID();
    await edgeHosts.create(
      db,
      {
        apiVersion: 'edgeplane.io/v1',
        kind: 'EdgeHost',
        metadata: {
          name: host,
          labels: { [VM_CLUSTER_LABEL]: cluster },
          annotations: { [CLUSTER_ANNOTATION]: cluster },
        },
        spec: { deviceUid: uuid, displayName: `VM ${vm.name} of ${cluster} on ${spec.appliance}`, ...(site ? { site } : {}) },
      },
      ctx,
    );
    await insertClusterVm(db, {
      cluster,
      vm: vm.name,
      host,
      uuid,
      appliance: spec.appliance!,
      vcpus: vm.vcpus,
      memory_mib: vm.memoryMiB,
      created_at: new Date().toISOString(),
    });
    added.push(vm.name);
  }
  // A VM that registered (auto-approved: ready) is a cluster member: in-use, like a native node.
  for (const h of await findHosts(
    db,
    [...existing.values()].map((v) => v.host),
  ))
    if (h.state === 'ready' && clusterOf(h) === cluster) await writeHost(db, h.name, Number(h.resource_version), { state: 'in-use' });
  const removed = [...existing.keys()].filter((v) => !wanted.has(v));
  for (const vm of removed) await deleteVmHost(db, existing.get(vm)!.host, ctx);
  await deleteClusterVms(db, cluster, removed);
  if (added.length || removed.length)
    await recordEvent(db, {
      involvedObject: { kind: 'Cluster', name: cluster },
      type: 'Normal',
      reason: 'VmsChanged',
      message: [added.length ? `VM(s) ${added.join(', ')} added` : '', removed.length ? `VM(s) ${removed.join(', ')} removed` : ''].filter(Boolean).join('; '),
      source: 'controller/virt',
    });
  return { added, removed };
}

async function deleteVmHost(db: Executor, host: string, ctx?: RequestContext): Promise<void> {
  if (await deleteRow(db, 'edge_hosts', host)) ctx?.hosts?.hostChanged(host, 'deleted');
}

/** Deleting a virtualized cluster: its VM hosts, VM records and registration token go. */
export async function releaseVirtualized(db: Executor, cluster: string, ctx?: RequestContext): Promise<void> {
  for (const vm of await listClusterVms(db, cluster)) await deleteVmHost(db, vm.host, ctx);
  await deleteClusterVms(db, cluster);
  await deleteRow(db, 'registration_tokens', vmTokenName(cluster));
}
