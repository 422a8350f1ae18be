import { z } from 'zod';
import { Labels, Name } from './meta.js';

/** Top-level key of the cloud-config that holds the agent config; cloud-init ignores keys it does not know. */
export const CLOUD_CONFIG_KEY = 'edgeplane';
export const CLOUD_CONFIG_HEADER = '#cloud-config';
/** NoCloud seed: cloud-init finds it by this volume id. */
export const SEED_VOLUME_ID = 'cidata';

const Ipv4 = z.ipv4();
const Cidr = z.cidrv4();
const HostOrIp = z
  .string()
  .min(1)
  .max(253)
  .regex(/^[A-Za-z0-9.:-]+$/, 'must be a host name or IP address');
const Pem = z.string().regex(/-----BEGIN CERTIFICATE-----[\s\S]+-----END CERTIFICATE-----/, 'must be a PEM certificate');

export const InstallerNetwork = z.discriminatedUnion('mode', [
  z.object({ mode: z.literal('dhcp') }).strict(),
  z
    .object({
      mode: z.literal('static'),
      /** Interface name or a netplan match; defaults to the first ethernet (`en*`/`eth*`). */
      interface: z.string().max(64).optional(),
      address: Cidr,
      gateway: Ipv4,
      dns: z.array(Ipv4).max(8).default([]),
    })
    .strict(),
]);
export type InstallerNetwork = z.infer<typeof InstallerNetwork>;

/**
 * Body of POST /api/v1/registrationtokens/<name>/installer. The token secret is stored hashed, so the
 * server cannot read it back: the caller either passes it (`tokenSecret`, checked against the token) or
 * asks the server to rotate the token (`rotate: true`: a fresh secret replaces the old one, which then
 * stops registering new devices; devices already registered are never affected).
 */
export const InstallerRequest = z
  .object({
    tokenSecret: z.string().min(1).max(256).optional(),
    rotate: z.boolean().default(false),
    /** Control plane URL baked into the user-data; default: the URL this request was sent to. */
    server: z.url({ protocol: /^https?$/ }).optional(),
    site: Name.optional(),
    labels: Labels.optional(),
    network: InstallerNetwork.optional(),
    ntp: z.array(HostOrIp).max(8).optional(),
    /** CA certificate(s) the device must trust for the server (private PKI). */
    caPem: Pem.max(65536).optional(),
    /** meta-data local-hostname of the seed; default edgeplane-<token name>. */
    hostname: Name.optional(),
  })
  .strict()
  .refine((r) => !(r.tokenSecret && r.rotate), { message: 'give tokenSecret or rotate, not both', path: ['rotate'] })
  .refine((r) => r.tokenSecret || r.rotate, { message: 'the token secret is shown only once: pass tokenSecret, or rotate: true', path: ['tokenSecret'] });
export type InstallerRequest = z.input<typeof InstallerRequest>;

/** The agent part of the cloud-config: a subset of the agent's own config file. */
export const CloudConfigAgent = z
  .object({
    server: z.url({ protocol: /^https?$/ }),
    /** PEM file of extra CAs the agent trusts for an https server (besides Node's default store). */
    caFile: z.string().min(1).max(4096).optional(),
    token: z.string().min(1).max(256).optional(),
    pairingKey: z.string().min(1).max(256).optional(),
    site: Name.optional(),
    labels: Labels.optional(),
  })
  .strict();
export type CloudConfigAgent = z.infer<typeof CloudConfigAgent>;

/**
 * `install:` of the user-data, read by the installer ISO's live system (`edgeplane image build
 * --installer`) before it writes the disk; the installed device ignores it. See docs/install.md.
 */
export const InstallSpec = z
  .object({
    /**
     * The disk to install to, as a device path: /dev/sda, /dev/nvme0n1, or a stable name such as
     * /dev/disk/by-id/... (what a technician reads off the label). Default: the largest non-removable disk.
     */
    device: z
      .string()
      .max(256)
      .regex(/^\/dev\/[A-Za-z0-9._:@+/-]+$/, 'must be a device path under /dev, e.g. /dev/nvme0n1 or /dev/disk/by-id/...')
      .refine((d) => !d.split('/').includes('..'), 'must not contain ".."')
      .optional(),
    /**
     * Keep the data partition of the Edgeplane install already on that disk (agent identity and
     * state, Kubernetes state); default false: the install erases it like everything else.
     */
    keepData: z.boolean().default(false),
  })
  .strict();
export type InstallSpec = z.infer<typeof InstallSpec>;

/**
 * The user-data the installer writes: a cloud-config document (validated on write and on read).
 * Standard cloud-init modules do the OS part (ntp, ca_certs); cloud-init ignores `edgeplane`,
 * which the agent reads. Unknown keys are allowed: an operator may add their own modules.
 */
export const CloudConfig = z
  .object({
    [CLOUD_CONFIG_KEY]: CloudConfigAgent,
    hostname: Name.optional(),
    ntp: z.object({ enabled: z.boolean(), servers: z.array(HostOrIp) }).optional(),
    ca_certs: z.object({ trusted: z.array(Pem) }).optional(),
    /** The installer ISO's part (InstallSpec); cloud-init ignores it. */
    install: InstallSpec.optional(),
  })
  .passthrough();
export type CloudConfig = z.infer<typeof CloudConfig>;

/** Netplan v2 network-config written next to user-data for a static address. */
export function networkConfigFor(network: InstallerNetwork | undefined): Record<string, unknown> | undefined {
  if (network?.mode !== 'static') return undefined;
  const match = network.interface ? { name: network.interface } : { name: 'e*' };
  return {
    version: 2,
    ethernets: {
      primary: {
        match,
        dhcp4: false,
        addresses: [network.address],
        // 0.0.0.0/0, not netplan's `default`: Debian 12's cloud-init (22.4) refuses "default" as an
        // address and drops the whole network config.
        routes: [{ to: '0.0.0.0/0', via: network.gateway }],
        ...(network.dns.length ? { nameservers: { addresses: network.dns } } : {}),
      },
    },
  };
}
