import { z } from 'zod';
import { Name } from './meta.js';

/**
 * Day-2 changes of a cluster (docs/architecture.md "Cluster upgrades"). The controller compares each
 * node's current host spec with the newly rendered one and classifies the change; the class decides
 * how the node is taken through it.
 */
export const ChangeClass = z.enum(['repave', 'reboot', 'service-restart', 'config-reload', 'no-op']);
export type ChangeClass = z.infer<typeof ChangeClass>;

/** Disruptive classes take the node down: cordon, drain, one at a time within the strategy. */
export const DISRUPTIVE_CLASSES: readonly ChangeClass[] = ['repave', 'reboot'];

export const UpgradeStrategy = z
  .object({
    /** Worker nodes disrupted at the same time (control-plane nodes always go one at a time). */
    maxUnavailable: z.number().int().min(1).max(1000).default(1),
    /** How long a drain may take before the node goes down anyway. */
    drainTimeoutSeconds: z.number().int().min(1).max(86_400).default(120),
    /** How long a node may take from its reboot to passing the health gate. */
    healthTimeoutSeconds: z.number().int().min(5).max(86_400).default(900),
  })
  .strict();
export type UpgradeStrategy = z.infer<typeof UpgradeStrategy>;

export const NodePlan = z.object({
  host: Name,
  role: z.enum(['control-plane', 'worker']),
  change: ChangeClass,
  /** What differs, e.g. "os.digest", "kubernetes.version". */
  reasons: z.array(z.string()),
});
export type NodePlan = z.infer<typeof NodePlan>;

/** What an upgrade would do (dry run) or is doing: per node, in the order nodes are taken. */
export const UpgradePlan = z.object({
  fromRevision: z.number().int().optional(),
  toRevision: z.number().int(),
  nodes: z.array(NodePlan),
});
export type UpgradePlan = z.infer<typeof UpgradePlan>;

export const UpgradeState = z.enum(['Staging', 'Rolling', 'Paused', 'Failed', 'Cancelled', 'Succeeded']);
export type UpgradeState = z.infer<typeof UpgradeState>;

export const NodeUpgradePhase = z.enum(['Pending', 'Staged', 'Draining', 'Rebooting', 'Verifying', 'Done', 'FellBack', 'Failed', 'Skipped']);

/**
 * When the control plane recorded each step of a node (ISO times): its new image written to the
 * passive slot (`staged`), its window opened with the new spec (`started`), first seen cordoned or
 * draining, rebooting, on trial (new image, reboot or configuration answering), and committed
 * (`done`) or fallen back / failed. A step passed between two status reports has no time.
 */
export const NodeUpgradeTimes = z
  .object({
    staged: z.string(),
    started: z.string(),
    draining: z.string(),
    rebooting: z.string(),
    verifying: z.string(),
    done: z.string(),
    failed: z.string(),
  })
  .partial();
export type NodeUpgradeTimes = z.infer<typeof NodeUpgradeTimes>;

/** Cluster.status.upgrade: the latest upgrade with per-node progress. */
export const UpgradeStatus = z.object({
  id: z.number().int(),
  state: UpgradeState,
  fromRevision: z.number().int().optional(),
  toRevision: z.number().int(),
  /** The cluster generation this upgrade converges to. */
  generation: z.number().int(),
  message: z.string().optional(),
  /** The node that stopped the upgrade. */
  failedNode: z.string().optional(),
  nodes: z.array(NodePlan.extend({ phase: NodeUpgradePhase, message: z.string().optional(), times: NodeUpgradeTimes.optional() })),
  /** When the upgrade was planned. */
  startedAt: z.string().optional(),
});
export type UpgradeStatus = z.infer<typeof UpgradeStatus>;

export const CLUSTER_ACTIONS = ['pause', 'resume', 'cancel', 'retry'] as const;
export type ClusterAction = (typeof CLUSTER_ACTIONS)[number];

/** JSON with sorted keys and without undefined values. */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v && typeof v === 'object')
    return `{${Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`)
      .join(',')}}`;
  return JSON.stringify(v);
}

/**
 * A short fingerprint of a Kubernetes host spec without its join token (FNV-1a, 2 x 32 bit; change
 * detection, not security). The kubernetes manager reports the one it last applied, so the upgrade's
 * health gate knows a node runs the new configuration, not just that it is Ready.
 */
export function kubernetesSpecDigest(spec: Record<string, unknown>): string {
  // Neither the join secret nor a certificate upload request is configuration the node runs.
  const { token: _token, uploadCerts: _uploadCerts, ...rest } = spec;
  const text = canonicalJson(rest);
  let h1 = 0x811c9dc5;
  let h2 = 0x01000193;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 0x01000193) >>> 0;
    h2 = Math.imul(h2 ^ c, 0x811c9dc5) >>> 0;
  }
  return `${h1.toString(16).padStart(8, '0')}${h2.toString(16).padStart(8, '0')}`;
}
