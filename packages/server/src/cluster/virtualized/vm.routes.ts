import { type ClusterSpec, EdgeplaneError, type VirtStatus, type VmList, type VmView } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { installAuth, requirePermission } from '../../http/auth-hook.js';
import type { Db } from '../../store/db.js';
import { findHosts } from '../cluster.repository.js';
import { clusters } from '../cluster.service.js';
import { listClusterVms } from './cluster-vm.repository.js';
import { isVirtualized, vmDomainName } from './virtualized.js';

type VmViewWithXml = VmView & { xml?: string };

async function vmViews(db: Db, name: string): Promise<VmViewWithXml[]> {
  const cluster = await clusters.get(db, name);
  const spec = cluster.spec as ClusterSpec;
  if (!isVirtualized(spec)) throw new EdgeplaneError('InvalidState', `cluster "${name}" is not virtualized; it has no VMs`, { cluster: name });
  const rows = new Map((await listClusterVms(db, name)).map((r) => [r.vm, r]));
  const [appliance] = await findHosts(db, [spec.appliance!]);
  const domains = (JSON.parse(appliance?.status ?? '{}') as { agent?: { managers?: { virt?: VirtStatus } } }).agent?.managers?.virt?.domains ?? [];
  const hosts = new Map(
    (
      await findHosts(
        db,
        [...rows.values()].map((r) => r.host),
      )
    ).map((h) => [h.name, h]),
  );
  return (spec.vms ?? []).map((vm) => {
    const domain = vmDomainName(name, vm.name);
    const d = domains.find((x) => x.domain === domain);
    const row = rows.get(vm.name);
    const h = row ? hosts.get(row.host) : undefined;
    return {
      name: vm.name,
      role: vm.role,
      host: row?.host ?? '',
      domain,
      appliance: spec.appliance!,
      vcpus: d?.vcpus ?? vm.vcpus,
      memoryMiB: d?.memoryMiB ?? vm.memoryMiB,
      diskGiB: vm.diskGiB,
      network: vm.network,
      storagePool: vm.storagePool,
      ...(d ? { state: d.state } : {}),
      ...(h ? { hostState: h.state, connectivity: h.connectivity } : {}),
      ...(d?.xml ? { xml: d.xml } : {}),
    };
  });
}

/**
 * GET /api/v1/clusters/<name>/vms: the VMs of a virtualized cluster.
 * GET /api/v1/clusters/<name>/vms/<vm>/domain.xml: the VM's domain XML as libvirt on the appliance holds it.
 */
export async function vmRoutes(app: FastifyInstance, deps: { db: Db }): Promise<void> {
  installAuth(app, deps.db);
  app.get<{ Params: { name: string } }>('/api/v1/clusters/:name/vms', async (req) => {
    requirePermission(req, 'clusters:get');
    const items = (await vmViews(deps.db, req.params.name)).map(({ xml: _xml, ...v }) => v);
    const list: VmList = { apiVersion: 'edgeplane.io/v1', kind: 'VmList', cluster: req.params.name, items };
    return list;
  });
  app.get<{ Params: { name: string; vm: string } }>('/api/v1/clusters/:name/vms/:vm/domain.xml', async (req, reply) => {
    requirePermission(req, 'clusters:get');
    const vm = (await vmViews(deps.db, req.params.name)).find((v) => v.name === req.params.vm);
    if (!vm) throw new EdgeplaneError('NotFound', `cluster "${req.params.name}" has no VM "${req.params.vm}"`, { vm: req.params.vm });
    if (!vm.xml)
      throw new EdgeplaneError('InvalidState', `the appliance has not reported domain ${vm.domain} yet (is its agent connected?)`, { domain: vm.domain });
    // XML for curl and virsh users; JSON for API clients that ask for it (the CLI).
    const accept = req.headers.accept ?? '';
    if (accept.includes('application/json') && !accept.includes('xml'))
      return { apiVersion: 'edgeplane.io/v1', kind: 'DomainXml', cluster: req.params.name, vm: vm.name, domain: vm.domain, xml: vm.xml };
    return reply.type('application/xml').send(vm.xml);
  });
}
