import { z } from 'zod';
import { NodeRole } from './host-spec.js';
import { Labels, Name } from './meta.js';
import { LibvirtName } from './virt-host.js';

/**
 * Virtualized Edge (DESIGN.md "Two edge solutions"): an appliance runs libvirt; the cluster's nodes
 * are VMs on it. This file holds the cluster's VM list (virt-host.ts: the appliance's side).
 */

export const ClusterVm = z
  .object({
    /** VM name within the cluster; the node (EdgeHost) is named <cluster>-<name>. */
    name: Name,
    role: NodeRole,
    vcpus: z.number().int().min(1).max(256),
    memoryMiB: z
      .number()
      .int()
      .min(256)
      .max(4 * 1024 * 1024),
    diskGiB: z.number().int().min(1).max(65536),
    network: LibvirtName,
    storagePool: LibvirtName,
    /** Labels the VM's node gets (placement of workloads on it). */
    labels: Labels.default({}),
  })
  .strict();
export type ClusterVm = z.infer<typeof ClusterVm>;

export const VirtualizedClusterFields = {
  /** Host name of the appliance (an EdgeHost reporting the libvirt capability). */
  appliance: Name.optional(),
  vms: z.array(ClusterVm).max(64).optional(),
  /** How far the VMs' vCPUs (and memory) may exceed the appliance's: vCPUs <= cpus x cpu, memory <= memory x memory. */
  overcommit: z
    .object({ cpu: z.number().min(1).max(32).default(4), memory: z.number().min(1).max(4).default(1) })
    .strict()
    .optional(),
};

/** Label on the per-cluster registration token and on every VM host (value: the cluster). */
export const VM_CLUSTER_LABEL = 'edgeplane.io/vm-cluster';

/** One VM as GET /api/v1/clusters/<name>/vms lists it: what was asked, what the appliance reports, and its node. */
export const VmView = z.object({
  name: z.string(),
  role: NodeRole,
  /** The VM's node (EdgeHost); empty until the server recorded the VM. */
  host: z.string(),
  domain: z.string(),
  appliance: z.string(),
  vcpus: z.number().int(),
  memoryMiB: z.number().int(),
  diskGiB: z.number().int(),
  network: z.string(),
  storagePool: z.string(),
  /** libvirt domain state as the appliance reports it (absent until the domain exists). */
  state: z.string().optional(),
  /** The node's state (pre-registered until the VM's agent registered) and connectivity. */
  hostState: z.string().optional(),
  connectivity: z.string().optional(),
});
export type VmView = z.infer<typeof VmView>;

export const VmList = z.object({ apiVersion: z.literal('edgeplane.io/v1'), kind: z.literal('VmList'), cluster: z.string(), items: z.array(VmView) });
export type VmList = z.infer<typeof VmList>;

export const DomainXmlView = z.object({
  apiVersion: z.literal('edgeplane.io/v1'),
  kind: z.literal('DomainXml'),
  cluster: z.string(),
  vm: z.string(),
  domain: z.string(),
  xml: z.string(),
});
