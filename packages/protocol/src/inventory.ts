import { z } from 'zod';

/**
 * Bounds of an inventory. The arrays match what the Linux agent clips to (a Kubernetes node has a
 * veth per pod, IPVS puts every service address on kube-ipvs0); the serialized size bounds the whole
 * (a realistic node with 110 pods is about 12 KiB). Pairing, which needs no credential, allows less
 * (PAIRING_INVENTORY_MAX_BYTES).
 */
export const INVENTORY_LIMITS = { disks: 256, nics: 256, addressesPerNic: 64, maxBytes: 64 * 1024 } as const;

const utf8 = new TextEncoder();
/** Size of a value as JSON, in UTF-8 bytes: what the store keeps of it. (TextEncoder: the console runs this too.) */
export function jsonBytes(value: unknown): number {
  return utf8.encode(JSON.stringify(value) ?? '').length;
}

/** Hardware and OS facts an agent reports at registration and in `hello`. */
export const Inventory = z
  .object({
    hostname: z.string().max(253).default(''),
    machineId: z.string().max(128).default(''),
    dmi: z
      .object({
        productUuid: z.string().max(128).optional(),
        vendor: z.string().max(256).optional(),
        productName: z.string().max(256).optional(),
        serial: z.string().max(256).optional(),
      })
      .default({}),
    cpu: z.object({
      model: z.string().max(256).default(''),
      cores: z.number().int().nonnegative(),
      arch: z.string().max(32).default(''),
    }),
    memoryBytes: z.number().int().nonnegative(),
    disks: z
      .array(
        z.object({
          name: z.string().max(64),
          sizeBytes: z.number().int().nonnegative(),
          model: z.string().max(256).optional(),
          rotational: z.boolean().optional(),
        }),
      )
      .max(INVENTORY_LIMITS.disks)
      .default([]),
    nics: z
      .array(
        z.object({
          name: z.string().max(64),
          mac: z.string().max(64).default(''),
          /** Addresses with prefix length (an IPv6 CIDR is at most 43 characters). */
          addresses: z.array(z.string().max(64)).max(INVENTORY_LIMITS.addressesPerNic).default([]),
        }),
      )
      .max(INVENTORY_LIMITS.nics)
      .default([]),
    os: z
      .object({ name: z.string().max(256).default(''), version: z.string().max(128).default(''), kernel: z.string().max(256).default('') })
      .default({ name: '', version: '', kernel: '' }),
    /**
     * Who manages the host's OS: `managed` = Edgeplane's A/B slots (root-a/root-b), the agent installs
     * OS images; `unmanaged` = the host keeps its own OS (agent mode: Ubuntu, Debian, RHEL-like with
     * systemd), the agent installs no OS images and takes the Kubernetes distribution from an artifact.
     * Absent (an older agent): managed.
     */
    osMode: z.enum(['managed', 'unmanaged']).optional(),
    /** True when the inventory comes from a simulated device (see docs/architecture.md). */
    simulated: z.boolean().optional(),
  })
  .refine((inv) => jsonBytes(inv) <= INVENTORY_LIMITS.maxBytes, { message: `must be at most ${INVENTORY_LIMITS.maxBytes} bytes as JSON` });
export type Inventory = z.infer<typeof Inventory>;
export type OsMode = NonNullable<Inventory['osMode']>;

/** The OS mode an inventory reports; an inventory without one (an older agent) is a managed OS. */
export function osModeOf(inventory: { osMode?: OsMode } | undefined): OsMode {
  return inventory?.osMode ?? 'managed';
}
