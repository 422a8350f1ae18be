import { z } from 'zod';
import { Digest, HostSpec, OsStatus, Slot } from './host-spec.js';
import { Inventory } from './inventory.js';
import { Condition, Name, resourceInputSchema, resourceSchema, Timestamp } from './meta.js';
import { PositiveInt32 } from './text.js';

/** `pre-registered`: created by an operator by device UID, waiting for that device to register with its pairing key. */
export const HostState = z.enum(['pending-approval', 'ready', 'in-use', 'rejected', 'pre-registered']);
export type HostState = z.infer<typeof HostState>;
export const Connectivity = z.enum(['online', 'offline', 'unknown']);
export type Connectivity = z.infer<typeof Connectivity>;

/**
 * A host OS profile assignment: a ClusterProfile (usually one with only an OS layer) whose OS image
 * this host runs, for hosts outside any cluster. Without `revision` the server pins the profile's
 * latest revision when it is assigned and writes that number here; moving on is an explicit update.
 */
export const HostOsProfileRef = z.object({ name: Name, revision: PositiveInt32.optional() }).strict();
export type HostOsProfileRef = z.infer<typeof HostOsProfileRef>;

/**
 * Desired state of a host. `site`, `displayName` and `osProfile` are the user's; `os`, `kubernetes` and `addons`
 * are rendered by the cluster controller (see host-spec.ts) and sent to the agent.
 */
export const EdgeHostSpec = z
  .object({
    site: Name.optional(),
    displayName: z.string().max(256).optional(),
    /** Set when pre-registering a host by device UID (POST /api/v1/edgehosts); fixed afterwards. */
    deviceUid: z
      .string()
      .min(8)
      .max(128)
      .regex(/^[A-Za-z0-9-]+$/, 'must be letters, digits and "-"')
      .optional(),
    /** Deny-list: a denied device UID may not register, pair or connect; the host stays as the record. */
    denied: z.boolean().optional(),
    /** Standalone hosts only: the server renders `os` from this profile revision (see HostOsProfileRef). */
    osProfile: HostOsProfileRef.optional(),
  })
  .extend(HostSpec.shape)
  .strict();
export type EdgeHostSpec = z.infer<typeof EdgeHostSpec>;

/**
 * The host's OS rollout, derived when the host is read: what spec.os asks for (and from which
 * osProfile revision) against what the agent's os manager reports. `upToDate` once the booted,
 * committed image is the desired digest; after a fallback `phase` is FellBack and `message` says why.
 */
export const HostOsRolloutStatus = z.object({
  profile: Name.optional(),
  revision: z.number().int().positive().optional(),
  image: z.string(),
  desiredDigest: Digest,
  /** Digest of the image the host booted, as its agent last reported. */
  digest: Digest.optional(),
  bootedSlot: Slot.optional(),
  activeSlot: Slot.optional(),
  phase: OsStatus.shape.phase.optional(),
  upToDate: z.boolean(),
  message: z.string().optional(),
});
export type HostOsRolloutStatus = z.infer<typeof HostOsRolloutStatus>;

/**
 * The identity a host is bound to: `tpm` (a non-exportable P-256 key in the device's TPM 2.0; the
 * endorsement key's public key and, when the TPM has one, its certificate, PEM) or `file` (an Ed25519
 * key in the agent's data dir). `ekFingerprint`: sha256 (hex) of the EK public key's DER.
 */
export const HostIdentity = z.object({
  kind: z.enum(['tpm', 'file']),
  ekPublicKey: z.string().optional(),
  ekCertificate: z.string().optional(),
  ekFingerprint: z.string().optional(),
});
export type HostIdentity = z.infer<typeof HostIdentity>;

export const EdgeHostStatus = z.object({
  state: HostState,
  connectivity: Connectivity,
  lastSeen: Timestamp.optional(),
  deviceUid: z.string(),
  /** sha256 of the device's public key, hex; the identity the host is bound to. */
  keyFingerprint: z.string(),
  /** Set when another key claimed this device UID; approval binds the host to it. */
  pendingKeyFingerprint: z.string().optional(),
  /** Where the bound device key lives (tpm: in the device's TPM 2.0, with its endorsement key), as the agent registered it. */
  identity: HostIdentity.optional(),
  /** Where the pending key lives, as the device that presented it said. */
  pendingIdentity: HostIdentity.optional(),
  registrationToken: z.string().optional(),
  /** Absent while the host is pre-registered and its device has not registered yet. */
  registeredAt: Timestamp.optional(),
  /** One-time pairing key of a pre-registered host: only in the answer to the create request; stored hashed. */
  pairingKey: z.string().optional(),
  /** How the device got its identity: a token, a pre-registration pairing key, or a claimed pairing code. */
  registeredVia: z.enum(['token', 'pairing-key', 'pairing']).optional(),
  agentVersion: z.string().optional(),
  observedGeneration: z.number().int().optional(),
  inventory: Inventory.optional(),
  /** Present while spec.os is set; see HostOsRolloutStatus. */
  os: HostOsRolloutStatus.optional(),
  conditions: z.array(Condition).default([]),
});
export type EdgeHostStatus = z.infer<typeof EdgeHostStatus>;

export const EdgeHost = resourceSchema('EdgeHost', EdgeHostSpec, EdgeHostStatus);
export type EdgeHost = z.infer<typeof EdgeHost>;
export const EdgeHostInput = resourceInputSchema('EdgeHost', EdgeHostSpec);

/**
 * Body of `POST /api/v1/edgehosts/<name>/approve-key`: the pending key the operator checked
 * (`status.pendingKeyFingerprint`, or at least its first 16 hex characters). A key that changed
 * since is not bound: another device may have registered the same UID meanwhile.
 */
export const ApproveKeyRequest = z
  .object({
    fingerprint: z.string().regex(/^[0-9a-f]{16,64}$/, 'must be the first 16 to 64 lower-case hex characters of status.pendingKeyFingerprint'),
  })
  .strict();
export type ApproveKeyRequest = z.infer<typeof ApproveKeyRequest>;
