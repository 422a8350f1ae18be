import { z } from 'zod';
import { Labels, Name } from './meta.js';
import { STATUS_LIMITS, StatusIdentifier, StatusText } from './status-limits.js';
import { VirtSpec, VirtStatusBase } from './virt-host.js';

/**
 * What the cluster controller renders per host and the agent's managers converge to. One key per
 * manager, run in this order: os -> kubernetes -> addons (-> virt -> troubleshoot in later work).
 * It lives in EdgeHost.spec (managed fields), is sent to the agent in `spec` messages, and is
 * persisted by the agent for offline autonomy.
 */
export const Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'must be sha256:<64 hex>');

/**
 * A profile-declared check run by the os manager after a trial boot of a new image (besides "the
 * booted slot holds the desired digest" and "the Kubernetes node is Ready"). A failing check makes
 * the trial boot unhealthy: the node reboots back into its previous slot (FellBack).
 *  - http:    GET `url` from the node; healthy on a 2xx answer (e.g. http://127.0.0.1:10248/healthz).
 *  - command: run `command` (argv, no shell) on the node; healthy on exit 0.
 * Each attempt gets `timeoutSeconds`; a check is tried `retries` times (3 s apart) before it fails.
 */
export const HealthCheck = z
  .object({
    name: Name,
    type: z.enum(['http', 'command']),
    url: z.string().url().max(2048).optional(),
    command: z.array(z.string().max(4096)).min(1).max(64).optional(),
    timeoutSeconds: z.number().int().min(1).max(300).default(10),
    retries: z.number().int().min(1).max(20).default(3),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.type === 'http' && !c.url) ctx.addIssue({ code: 'custom', path: ['url'], message: 'an http health check needs a url' });
    if (c.type === 'http' && c.url && !/^https?:\/\//.test(c.url))
      ctx.addIssue({ code: 'custom', path: ['url'], message: 'must be an http:// or https:// URL' });
    if (c.type === 'command' && !c.command) ctx.addIssue({ code: 'custom', path: ['command'], message: 'a command health check needs a command (argv array)' });
    // A command runs as root on every node; variables are filled in by whoever creates a cluster or
    // assigns the profile, who need not hold the permission to run commands. So no variables here.
    for (const [i, arg] of (c.command ?? []).entries())
      if (arg.includes('${var.'))
        ctx.addIssue({
          code: 'custom',
          path: ['command', i],
          message:
            'a command health check cannot use ${var.*} variables (cluster creators would choose what runs as root); write the value, or use an http check',
        });
  });
export type HealthCheck = z.infer<typeof HealthCheck>;

/** Health checks of one spec: at most 20, names unique. */
export const HealthChecks = z
  .array(HealthCheck)
  .max(20)
  .superRefine((checks, ctx) => {
    if (new Set(checks.map((c) => c.name)).size !== checks.length) ctx.addIssue({ code: 'custom', message: 'health check names must be unique' });
  });

export const OsSpec = z.object({
  /** Image reference as written in the profile, e.g. registry.local:5000/edge/os:1.2. */
  image: z.string().min(1).max(512),
  /** Manifest digest the image is pinned to; the agent refuses anything else. */
  digest: Digest,
  /** Plain-HTTP registry (a lab or air-gapped mirror on the LAN). */
  insecure: z.boolean().optional(),
  /**
   * false = stage only: download and write the image into the passive slot, no slot switch, no
   * reboot (the rolling upgrade stages every node before the first drain). Absent = true.
   */
  activate: z.boolean().optional(),
  /** The profile's health checks, run after a trial boot of this image (travel with the image switch). */
  healthChecks: HealthChecks.optional(),
  /**
   * An operator's request to try again (set by the server when a spec is sent: `retry host`, `reset
   * host`, joining a cluster). The os manager does not try an image again whose trial boot fell back
   * under the same attempt (osAttempt: digest, health checks and this value).
   */
  retry: z.string().max(64).optional(),
});
export type OsSpec = z.infer<typeof OsSpec>;

/** The image of an os spec pinned by its digest, for messages: `image@digest`, once (a profile may pin the reference already). */
export function osImageRef(os: Pick<OsSpec, 'image' | 'digest'>): string {
  return os.image.endsWith(`@${os.digest}`) ? os.image : `${os.image}@${os.digest}`;
}

/**
 * The identity of one attempt at an image: its digest, the health checks its trial boot must pass
 * and the operator's retry value. An image that fell back is tried again only under another attempt
 * (a fixed health check, a retry), never because the same spec was sent again. Agent and server
 * compute it alike; 32-bit FNV-1a over the stable JSON (not a security boundary, just a change marker).
 */
export function osAttempt(os: Pick<OsSpec, 'digest' | 'healthChecks' | 'retry'>): string {
  const text = stable({ digest: os.digest, healthChecks: os.healthChecks ?? [], retry: os.retry ?? '' });
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

function stable(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stable).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${JSON.stringify(k)}:${stable(x)}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

export const Distribution = z.enum(['k3s', 'rke2', 'kubeadm']);
export type Distribution = z.infer<typeof Distribution>;
export const NodeRole = z.enum(['control-plane', 'worker']);
export type NodeRole = z.infer<typeof NodeRole>;

export const Taint = z.object({
  key: z.string().min(1).max(253),
  value: z.string().max(63).optional(),
  effect: z.enum(['NoSchedule', 'PreferNoSchedule', 'NoExecute']),
});
export type Taint = z.infer<typeof Taint>;

export const KubernetesSpec = z.object({
  distribution: Distribution,
  version: z.string().min(1).max(64),
  cluster: Name,
  /** Node name in Kubernetes (the host name). */
  nodeName: Name,
  role: NodeRole,
  /** True for the one control-plane node that initializes the cluster. */
  init: z.boolean(),
  /** https://<endpoint>:<port>: the VIP or first control-plane node, put into certificates and kubeconfig. */
  controlPlaneEndpoint: z.string().min(1).max(256),
  /** Join target for non-init nodes; empty for the init node. */
  server: z.string().max(256).optional(),
  /** Cluster join secret: set by the server for the init node (so it is known up front) and for joiners. */
  token: z.string().max(512).optional(),
  podCidr: z.string().max(64),
  serviceCidr: z.string().max(64),
  nodeLabels: Labels.default({}),
  nodeTaints: z.array(Taint).default([]),
  controlPlaneSchedulable: z.boolean().default(true),
  network: z.object({ cni: z.string().max(64), version: z.string().max(64).optional(), values: z.record(z.string(), z.unknown()).default({}) }).optional(),
  /** Distribution configuration values from the profile, merged into the written config. */
  config: z.record(z.string(), z.unknown()).default({}),
  /**
   * Hosts with an unmanaged OS: the artifact the agent installs the distribution from (pinned by
   * digest). Absent: the OS image carries the distribution's binaries.
   */
  artifact: z.object({ image: z.string().min(1).max(512), digest: Digest, insecure: z.boolean().optional() }).optional(),
  /**
   * kubeadm init node only: a request to upload the control-plane certificates again (they expire
   * 2 h after an upload; a control-plane join needs them). The node runs the upload once per value.
   * Filled in when the spec is sent (like token), never stored.
   */
  uploadCerts: z.string().max(64).optional(),
});
export type KubernetesSpec = z.infer<typeof KubernetesSpec>;

export const Addon = z.object({
  name: Name,
  /** Inline multi-document YAML, applied with server-side apply. */
  manifest: z.string().max(1_000_000).optional(),
  chart: z
    .object({
      repo: z.string().max(512),
      name: z.string().max(253),
      version: z.string().max(64),
      namespace: z.string().max(63).default('default'),
      values: z.record(z.string(), z.unknown()).default({}),
    })
    .optional(),
});
export type Addon = z.infer<typeof Addon>;

export const AddonsSpec = z.object({ items: z.array(Addon).max(100) });
export type AddonsSpec = z.infer<typeof AddonsSpec>;

/**
 * A maintenance window the cluster controller opens on one node during a rolling upgrade. The
 * node's own agent executes it through its cluster's API (edge sites have no inbound path, so the
 * server cannot reach a cluster API): cordon, then drain (evictions respect PodDisruptionBudgets;
 * after `timeoutSeconds` the drain gives up and the node goes down anyway, reported as a warning).
 * Absent = the node is uncordoned. Runs before the os manager's slot switch.
 */
export const MaintenanceSpec = z.object({
  cordon: z.boolean(),
  drain: z.object({ timeoutSeconds: z.number().int().min(1).max(86_400) }).optional(),
  /** Reboot once for this id (a change whose binaries only take effect on a clean boot). */
  rebootId: z.string().max(128).optional(),
});
export type MaintenanceSpec = z.infer<typeof MaintenanceSpec>;

/** The managed part of EdgeHost.spec. Absent keys mean "that manager has nothing to do". */
export const HostSpec = z.object({
  maintenance: MaintenanceSpec.optional(),
  os: OsSpec.optional(),
  kubernetes: KubernetesSpec.optional(),
  addons: AddonsSpec.optional(),
  /** Appliances only: the VMs of virtualized clusters on this host's libvirt (see virt-host.ts). */
  virt: VirtSpec.optional(),
});
export type HostSpec = z.infer<typeof HostSpec>;

// ---- what managers report back (AgentStatus.managers.<name>) ----

export const ManagerError = z.object({
  phase: z.enum(['prepare', 'apply', 'health']),
  component: StatusIdentifier,
  retryable: z.boolean(),
  message: StatusText,
});
export type ManagerError = z.infer<typeof ManagerError>;

export const Slot = z.enum(['A', 'B', 'recovery']);
export type Slot = z.infer<typeof Slot>;

export const OsStatus = z.object({
  phase: z.enum(['Idle', 'Downloading', 'Writing', 'Staged', 'Rebooting', 'Verifying', 'Committed', 'FellBack', 'Failed']),
  bootedSlot: Slot,
  /** Slot the boot loader boots by default (the last committed one). */
  activeSlot: Slot,
  /** Digest of the image in the booted slot, if any. */
  digest: Digest.optional(),
  slots: z
    .record(z.string().max(16), z.object({ digest: Digest.optional(), image: z.string().max(512).optional() }))
    .refine((r) => Object.keys(r).length <= 8, 'at most 8 slots')
    .default({}),
  /** Download progress while Downloading. */
  progress: z
    .object({
      bytes: z.number(),
      total: z.number(),
      /** A delta update: slot image bytes taken from the slots the device already has instead of downloaded. */
      reused: z.number().optional(),
    })
    .optional(),
  /** Why the last boot of a new slot fell back, or why the update failed. */
  message: StatusText.optional(),
  error: ManagerError.optional(),
  /**
   * Images whose trial boot fell back on this host, newest first: not tried again under the same
   * attempt (osAttempt) until an operator asks (`edgeplane retry host`, reset, a revision with other
   * health checks). An entry goes when that image commits or is tried again.
   */
  failedImages: z
    .array(z.object({ digest: z.string().max(80), attempt: z.string().max(16), slot: Slot, reason: StatusText, at: z.string().max(40) }))
    .max(8)
    .optional(),
});
export type OsStatus = z.infer<typeof OsStatus>;

/**
 * The os manager runs `digest` committed: booted from the slot the boot loader boots by default
 * (activeSlot) and past its health checks. A trial boot of the image is not: it boots the other slot
 * once (activeSlot still the old one) and can still fall back.
 */
export function osCommittedOn(os: Pick<OsStatus, 'digest' | 'bootedSlot' | 'activeSlot' | 'phase'> | undefined, digest: string | undefined): boolean {
  return !!os && !!digest && os.digest === digest && os.activeSlot === os.bootedSlot && os.phase !== 'Verifying';
}

export const KubernetesStatus = z.object({
  phase: z.enum(['Pending', 'Configuring', 'Starting', 'Ready', 'NotReady', 'Failed']),
  distribution: Distribution.optional(),
  version: StatusIdentifier.optional(),
  nodeName: StatusIdentifier.optional(),
  ready: z.boolean(),
  /** kubernetesSpecDigest of the spec this status answers (the configuration the node runs). */
  specDigest: z.string().max(32).optional(),
  /** Init node only: admin kubeconfig. A secret: the server moves it into encrypted storage and never shows it in host status. */
  kubeconfig: z.string().max(STATUS_LIMITS.kubeconfig).optional(),
  message: StatusText.optional(),
  error: ManagerError.optional(),
});
export type KubernetesStatus = z.infer<typeof KubernetesStatus>;

export const AddonsStatus = z.object({
  phase: z.enum(['Pending', 'Applied', 'Failed']),
  applied: z
    .array(z.object({ name: StatusIdentifier, objects: z.number().int() }))
    .max(256)
    .default([]),
  message: StatusText.optional(),
  error: ManagerError.optional(),
});
export type AddonsStatus = z.infer<typeof AddonsStatus>;

export const VirtStatus = VirtStatusBase.extend({ error: ManagerError.optional() });
export type VirtStatus = z.infer<typeof VirtStatus>;

export const MaintenanceStatus = z.object({
  phase: z.enum(['None', 'Cordoned', 'Draining', 'Drained', 'Rebooting', 'Failed']),
  cordoned: z.boolean(),
  /** Pods evicted by the last drain; whether it ended by timeout. */
  evicted: z.number().int().optional(),
  drainTimedOut: z.boolean().optional(),
  /** Last reboot id done (MaintenanceSpec.rebootId). */
  rebootId: StatusIdentifier.optional(),
  message: StatusText.optional(),
  error: ManagerError.optional(),
});
export type MaintenanceStatus = z.infer<typeof MaintenanceStatus>;

export const ManagersStatus = z.object({
  maintenance: MaintenanceStatus.optional(),
  os: OsStatus.optional(),
  kubernetes: KubernetesStatus.optional(),
  addons: AddonsStatus.optional(),
  virt: VirtStatus.optional(),
});
export type ManagersStatus = z.infer<typeof ManagersStatus>;
