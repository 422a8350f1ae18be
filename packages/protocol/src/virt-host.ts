import { z } from 'zod';
import { Name } from './meta.js';
import { StatusIdentifier, StatusText } from './status-limits.js';
import { PositiveInt32 } from './text.js';

/**
 * The appliance side of Virtualized Edge: the libvirt inventory an appliance's agent reports and the
 * `virt` key of its host spec. Imports nothing from host-spec.ts (which includes these).
 */

/** The capability an appliance's agent reports when it manages a libvirt connection. */
export const LIBVIRT_CAPABILITY = 'libvirt';

/** libvirt object names (networks, pools): what `virsh` accepts without quoting trouble. */
export const LibvirtName = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" and "-"');

// ---- appliance inventory (reported by the agent's virt manager) ----

export const DomainState = z.enum(['running', 'paused', 'shut off', 'crashed', 'pmsuspended', 'in shutdown', 'blocked', 'unknown']);
export const LibvirtDomainInfo = z.object({
  name: StatusIdentifier,
  uuid: StatusIdentifier.optional(),
  state: StatusIdentifier,
  vcpus: z.number().int().optional(),
  memoryMiB: z.number().int().optional(),
});
export type LibvirtDomainInfo = z.infer<typeof LibvirtDomainInfo>;

export const LibvirtInventory = z.object({
  uri: z.string().max(1024),
  cpus: z.number().int().nonnegative(),
  memoryMiB: z.number().int().nonnegative(),
  networks: z
    .array(z.object({ name: StatusIdentifier, active: z.boolean() }))
    .max(256)
    .default([]),
  pools: z
    .array(z.object({ name: StatusIdentifier, active: z.boolean(), capacityBytes: z.number(), availableBytes: z.number() }))
    .max(256)
    .default([]),
  domains: z.array(LibvirtDomainInfo).max(1024).default([]),
  /** vCPUs and memory of the defined domains (what is allocated, before overcommit). */
  allocated: z.object({ vcpus: z.number().int(), memoryMiB: z.number().int() }).optional(),
  /** One line for tables (allocated/total, free disk): "vcpu 6/16 mem 1536/3072MiB disk-free 190GiB". */
  free: StatusIdentifier.optional(),
  /** True when the connection is libvirt's test driver (a simulation of a hypervisor). */
  simulated: z.boolean().optional(),
});
export type LibvirtInventory = z.infer<typeof LibvirtInventory>;

// ---- host spec key `virt` (the appliance) ----

export const VirtVmSpec = z.object({
  /** libvirt domain name: ep-<cluster>-<vm>. */
  domain: z.string().min(1).max(200),
  /** Domain UUID = the VM's DMI product_uuid = its device UID (pre-registered by the server). */
  uuid: z.string().uuid(),
  cluster: Name,
  vm: Name,
  /** The node's EdgeHost name, the VM's hostname. */
  hostName: Name,
  vcpus: PositiveInt32,
  memoryMiB: PositiveInt32,
  diskGiB: PositiveInt32,
  network: LibvirtName,
  storagePool: LibvirtName,
  /** The profile's OS image the disk is backed by. */
  image: z.object({ image: z.string(), digest: z.string(), insecure: z.boolean().optional() }),
  /** NoCloud seed files. user-data carries the per-cluster registration token (filled in when the spec is sent). */
  seed: z.object({ userData: z.string().max(65536), metaData: z.string().max(4096) }),
});
export type VirtVmSpec = z.infer<typeof VirtVmSpec>;

export const VirtSpec = z.object({ vms: z.array(VirtVmSpec).max(256) });
export type VirtSpec = z.infer<typeof VirtSpec>;

export const VirtDomainStatus = z.object({
  domain: StatusIdentifier,
  cluster: StatusIdentifier.optional(),
  vm: StatusIdentifier.optional(),
  state: StatusIdentifier,
  vcpus: z.number().int().optional(),
  memoryMiB: z.number().int().optional(),
  /** The domain XML as libvirt holds it (virsh dumpxml --inactive). */
  xml: z.string().max(65536).optional(),
});
export type VirtDomainStatus = z.infer<typeof VirtDomainStatus>;

/** AgentStatus.managers.virt (host-spec.ts adds the manager error). */
export const VirtStatusBase = z.object({
  phase: z.enum(['Idle', 'Converging', 'Ready', 'Failed']),
  libvirt: LibvirtInventory.optional(),
  /** Edgeplane's own domains (ep-*): a VirtSpec holds at most 256 VMs; leftovers being removed may add some. */
  domains: z.array(VirtDomainStatus).max(512).default([]),
  message: StatusText.optional(),
});
