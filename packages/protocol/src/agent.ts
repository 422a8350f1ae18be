import { z } from 'zod';
import { HostState } from './edgehost.js';
import { HostSpec, ManagersStatus } from './host-spec.js';
import { Inventory } from './inventory.js';
import { Condition, Labels, Name, Timestamp } from './meta.js';
import { SessionAgentMessages, SessionServerMessages } from './remote-session.js';
import { StatusIdentifier, StatusText } from './status-limits.js';
import { noControlChars, PlainString, refuseControlChars } from './text.js';

export { PROTOCOL_VERSION, PROTOCOL_VERSION_HEADER, protocolMajor } from './protocol-version.js';

export const AGENT_REGISTER_PATH = '/agent/v1/register';
export const AGENT_CONNECT_PATH = '/agent/v1/connect';
/** JWT audiences, so a registration proof cannot be used as a connect token and vice versa. */
export const REGISTER_AUDIENCE = 'edgeplane-register';
export const CONNECT_AUDIENCE = 'edgeplane-connect';
/** Longest lifetime (exp - iat) the server accepts for a device-signed token. */
export const DEVICE_TOKEN_MAX_LIFETIME_SECONDS = 300;
/** Allowed clock skew between device and server. */
export const DEVICE_TOKEN_CLOCK_SKEW_SECONDS = 60;

/** A file-held device key: Ed25519 as a JWK (RFC 8037); tokens are signed EdDSA. */
export const Ed25519PublicKey = z
  .object({ kty: z.literal('OKP'), crv: z.literal('Ed25519'), x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url Ed25519 public key') })
  .strip();
/** A TPM-held device key: ECDSA P-256 as a JWK (RFC 7518 6.2); tokens are signed ES256. TPM 2.0 has no Ed25519. */
export const P256PublicKey = z
  .object({
    kty: z.literal('EC'),
    crv: z.literal('P-256'),
    x: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url P-256 coordinate'),
    y: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'must be a base64url P-256 coordinate'),
  })
  .strip();
export type P256PublicKey = z.infer<typeof P256PublicKey>;
/** The device's public key: Ed25519 (identity: file) or P-256 (identity: tpm). */
export const DevicePublicKey = z.discriminatedUnion('kty', [Ed25519PublicKey, P256PublicKey]);
export type DevicePublicKey = z.infer<typeof DevicePublicKey>;

/** The JWS algorithm a device key signs with: ES256 for P-256 (TPM), EdDSA for Ed25519 (file). */
export function deviceKeyAlgorithm(key: DevicePublicKey): 'ES256' | 'EdDSA' {
  return key.kty === 'EC' ? 'ES256' : 'EdDSA';
}

/** The key as the server stores and compares it: only its defining members, in a fixed order. */
export function canonicalDeviceKey(key: DevicePublicKey): string {
  return key.kty === 'EC' ? JSON.stringify({ kty: 'EC', crv: 'P-256', x: key.x, y: key.y }) : JSON.stringify({ kty: 'OKP', crv: 'Ed25519', x: key.x });
}

/** What a key fingerprint (sha256, hex) is taken over: x for Ed25519, x and y for P-256. */
export function deviceKeyFingerprintInput(key: { x: string; y?: string }): string {
  return key.y === undefined ? key.x : `${key.x}.${key.y}`;
}

/** PEM text of bounded size (an EK public key or certificate), checked for its armour only. */
const Pem = (label: string, max: number) =>
  z
    .string()
    .max(max)
    .regex(new RegExp(`^-----BEGIN ${label}-----\\r?\\n[A-Za-z0-9+/=\\r\\n]+-----END ${label}-----\\r?\\n?$`), `must be a PEM ${label}`);

/**
 * What TpmActivationRequired carries (error details): a credential (tpm2_makecredential's output file,
 * base64) for the TPM's endorsement key and the device key's Name, and the server's sealed challenge
 * that binds it to this key and EK for a few minutes. Only the TPM holding both can recover the secret.
 */
export const TpmActivationChallenge = z.object({ credential: z.string(), challenge: z.string(), expiresAt: z.string() });
export type TpmActivationChallenge = z.infer<typeof TpmActivationChallenge>;
/** The device's answer: the challenge as received and the recovered secret (base64). */
export const TpmActivationAnswer = z
  .object({
    challenge: z.string().min(1).max(2048),
    secret: z
      .string()
      .max(64)
      .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
  })
  .strict();
export type TpmActivationAnswer = z.infer<typeof TpmActivationAnswer>;

/**
 * Where the device key lives, as the agent reports it at registration. `tpm`: created inside the
 * device's TPM 2.0 and not exportable (key: P-256, ES256); the TPM's endorsement key (public key, and
 * its certificate when the TPM carries one) says which TPM. `file`: an Ed25519 key in the agent's data
 * dir. Absent means `file` (agents before TPM support).
 */
export const DeviceIdentityClaim = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('file') }).strict(),
  z
    .object({
      kind: z.literal('tpm'),
      ekPublicKey: Pem('PUBLIC KEY', 2048),
      ekCertificate: Pem('CERTIFICATE', 8192).optional(),
      /** The key's TPM2B_PUBLIC (base64) as the TPM made it: the server checks its attributes and makes a credential for its Name. */
      keyPublic: z
        .string()
        .max(1024)
        .regex(/^[A-Za-z0-9+/]+={0,2}$/, 'must be base64'),
      /** The answer to TpmActivationRequired: its sealed challenge and the secret the TPM recovered from the credential. */
      activation: TpmActivationAnswer.optional(),
    })
    .strict(),
]);
export type DeviceIdentityClaim = z.infer<typeof DeviceIdentityClaim>;

export const RegisterRequest = z
  .object({
    /** Exactly one of token, pairingKey (pre-registered host) and pairing (claimed pairing session). */
    token: z.string().min(1).max(256).optional(),
    /** One-time key of a host an operator pre-registered by device UID. */
    pairingKey: z.string().min(1).max(256).optional(),
    /** A pairing session an operator claimed (see pairing.ts). */
    pairing: z
      .object({ id: z.string().min(1).max(64), secret: z.string().min(1).max(256) })
      .strict()
      .optional(),
    /** DMI product_uuid, else /etc/machine-id. */
    deviceUid: z
      .string()
      .min(8)
      .max(128)
      .regex(/^[A-Za-z0-9-]+$/, 'must be letters, digits and "-"'),
    publicKey: DevicePublicKey,
    /** Where the key lives; tpm requires a P-256 key, file (the default) an Ed25519 key. */
    identity: DeviceIdentityClaim.optional(),
    /** JWT (EdDSA, or ES256 for a TPM key) signed by the device key: sub = deviceUid, aud = edgeplane-register, short-lived. Proves key possession. */
    proof: z.string().min(1).max(4096),
    inventory: Inventory,
    agentVersion: z.string().max(64),
    site: Name.optional(),
    labels: Labels.optional(),
  })
  .strict()
  .refine((r) => [r.token, r.pairingKey, r.pairing].filter((x) => x !== undefined).length === 1, {
    message: 'give exactly one of token, pairingKey and pairing',
    path: ['token'],
  })
  .refine((r) => (r.identity?.kind === 'tpm') === (r.publicKey.kty === 'EC'), {
    message: 'a tpm identity signs with a P-256 key (ES256), a file identity with an Ed25519 key (EdDSA)',
    path: ['identity'],
  })
  .superRefine(refuseControlChars);
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const RegisterResponse = z.object({
  hostName: Name,
  uid: z.string(),
  state: HostState,
  connectPath: z.string(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

/** A condition an agent reports about itself, bounded like the rest of its status (see STATUS_LIMITS). */
const AgentCondition = Condition.extend({ type: StatusIdentifier, reason: StatusIdentifier.optional(), message: StatusText.optional() });

/** Status an agent reports about itself; grows with the managers of later issues. */
export const AgentStatus = z
  .object({
    conditions: z.array(AgentCondition).max(64).optional(),
    managers: ManagersStatus.optional(),
    /** What this host can do beyond being a node, e.g. `libvirt` (an appliance for virtualized clusters). */
    capabilities: z.array(z.string().max(64)).max(32).optional(),
  })
  .strip();
export type AgentStatus = z.infer<typeof AgentStatus>;

/** Desired host spec sent to the agent: one key per manager (os, kubernetes, addons; virt, troubleshoot later). */
export const DesiredHostSpec = HostSpec;
export type DesiredHostSpec = z.infer<typeof DesiredHostSpec>;

// ---- agent -> server ----
// Inventory and version go to columns and lists; status is JSON the server stores as it came.
export const HelloMessage = z.object({
  type: z.literal('hello'),
  protocolVersion: z.number().int(),
  agentVersion: PlainString.max(64),
  observedGeneration: z.number().int().nonnegative().optional(),
  inventory: noControlChars(Inventory).optional(),
  status: AgentStatus.optional(),
});
export const HeartbeatMessage = z.object({ type: z.literal('heartbeat'), seq: z.number().int().nonnegative().optional() });
export const StatusMessage = z.object({
  type: z.literal('status'),
  observedGeneration: z.number().int().nonnegative().optional(),
  status: AgentStatus,
  /** The inventory again, only when it changed since the hello (e.g. an address DHCP gave later). */
  inventory: noControlChars(Inventory).optional(),
});
export const AgentEventMessage = z
  .object({
    type: z.literal('event'),
    /** Agent-side id so a re-sent queued event is stored once. */
    id: z.string().min(1).max(64),
    eventType: z.enum(['Normal', 'Warning']),
    reason: z.string().min(1).max(128),
    message: z.string().max(4096),
    timestamp: Timestamp,
  })
  .superRefine(refuseControlChars);
export const AgentMessage = z.discriminatedUnion('type', [HelloMessage, HeartbeatMessage, StatusMessage, AgentEventMessage, ...SessionAgentMessages]);
export type AgentMessage = z.infer<typeof AgentMessage>;

// ---- server -> agent ----
export const WelcomeMessage = z.object({
  type: z.literal('welcome'),
  protocolVersion: z.number().int(),
  serverVersion: z.string(),
  hostName: Name,
  state: HostState,
  /** The agent sends a heartbeat this often; the server marks it offline after its --offline-after. */
  heartbeatIntervalSeconds: z.number().positive(),
});
export const SpecMessage = z.object({ type: z.literal('spec'), generation: z.number().int().nonnegative(), spec: DesiredHostSpec });
export const StateMessage = z.object({ type: z.literal('state'), state: HostState });
export const PingMessage = z.object({ type: z.literal('ping'), ts: z.number() });
export const ServerErrorMessage = z.object({ type: z.literal('error'), code: z.string(), message: z.string() });
export const ServerMessage = z.discriminatedUnion('type', [
  WelcomeMessage,
  SpecMessage,
  StateMessage,
  PingMessage,
  ServerErrorMessage,
  ...SessionServerMessages,
]);
export type ServerMessage = z.infer<typeof ServerMessage>;

/** WebSocket close codes the server uses (4000-4999 is the application range). */
export const CLOSE_CODES = {
  invalidMessage: 4400,
  unauthorized: 4401,
  rejected: 4403,
  /** Another connection of the same host replaced this one. */
  replaced: 4409,
  /**
   * The replica is draining (graceful shutdown): connect again at once, with jitter and without
   * registering; the load balancer sends the agent to another replica. Like HTTP 307, temporary.
   */
  reconnectElsewhere: 4307,
  /** The server is shutting down (older servers; reconnect with backoff). */
  shuttingDown: 4503,
} as const;
