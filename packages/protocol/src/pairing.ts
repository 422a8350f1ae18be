import { z } from 'zod';
import { DevicePublicKey } from './agent.js';
import { Inventory, jsonBytes } from './inventory.js';
import { Labels, Name, Timestamp } from './meta.js';
import { refuseControlChars } from './text.js';

export const AGENT_PAIRINGS_PATH = '/agent/v1/pairings';
/** Console page an operator opens (from the QR) to claim a code: `<server>/claim?code=CODE`. */
export const CLAIM_PATH = '/claim';
/** No 0/O, 1/I: a code read off a screen and typed on a phone must survive look-alikes. */
export const PAIRING_CODE_ALPHABET = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';
export const PAIRING_CODE_LENGTH = 8;
export const PAIRING_TTL_SECONDS = 15 * 60;
/** Longest long-poll the server holds a GET /agent/v1/pairings/<id>?waitSeconds=N. */
export const PAIRING_MAX_WAIT_SECONDS = 30;
/**
 * Starting a pairing needs no credential, so what it stores is small: the inventory (shown to the
 * operator who claims the code) at most 16 KiB as JSON, the whole request body at most 32 KiB. A
 * device pairs at first boot, before any pod adds interfaces, so its inventory is a few hundred bytes.
 */
export const PAIRING_INVENTORY_MAX_BYTES = 16 * 1024;
export const PAIRING_START_MAX_BODY_BYTES = 32 * 1024;

export const PairingCode = z
  .string()
  .transform((s) => s.toUpperCase().replace(/[\s-]/g, ''))
  .pipe(z.string().regex(new RegExp(`^[${PAIRING_CODE_ALPHABET}]{${PAIRING_CODE_LENGTH}}$`), 'must be 8 characters from the pairing alphabet'));

export function claimUrl(server: string, code: string): string {
  return `${server.replace(/\/+$/, '')}${CLAIM_PATH}?code=${encodeURIComponent(code)}`;
}

const DeviceUid = z
  .string()
  .min(8)
  .max(128)
  .regex(/^[A-Za-z0-9-]+$/, 'must be letters, digits and "-"');

/** Agent without a token asks for a pairing session. No auth: the proof binds the session to the device key. */
export const PairingStartRequest = z
  .object({
    deviceUid: DeviceUid,
    publicKey: DevicePublicKey,
    /** JWT signed by the device key, as for registration (aud edgeplane-register, sub deviceUid). */
    proof: z.string().min(1).max(4096),
    inventory: Inventory.refine((inv) => jsonBytes(inv) <= PAIRING_INVENTORY_MAX_BYTES, {
      message: `must be at most ${PAIRING_INVENTORY_MAX_BYTES} bytes as JSON to start a pairing`,
    }),
    agentVersion: z.string().max(64),
  })
  .strict()
  .superRefine(refuseControlChars);
export type PairingStartRequest = z.infer<typeof PairingStartRequest>;

export const PairingStartResponse = z.object({
  id: z.string(),
  code: z.string(),
  expiresAt: Timestamp,
  /** Bearer secret for polling and for completing registration; only the device holds it. */
  pollSecret: z.string(),
});
export type PairingStartResponse = z.infer<typeof PairingStartResponse>;

export const PairingState = z.enum(['pending', 'claimed', 'completed', 'expired']);
export type PairingState = z.infer<typeof PairingState>;

export const PairingPollResponse = z.object({
  id: z.string(),
  state: PairingState,
  expiresAt: Timestamp,
  project: Name.optional(),
});
export type PairingPollResponse = z.infer<typeof PairingPollResponse>;

/** Operator claims a code: where the host goes and how it is labelled. */
export const PairingClaimRequest = z
  .object({
    project: Name.optional(),
    site: Name.optional(),
    labels: Labels.optional(),
  })
  .strict()
  .superRefine(refuseControlChars);
export type PairingClaimRequest = z.infer<typeof PairingClaimRequest>;

export const PairingClaimResponse = z.object({
  code: z.string(),
  state: PairingState,
  deviceUid: z.string(),
  hostName: Name,
  project: Name,
  site: Name.optional(),
  labels: Labels,
  claimedBy: z.string(),
  inventory: Inventory.optional(),
});
export type PairingClaimResponse = z.infer<typeof PairingClaimResponse>;

/** What RegisterRequest.pairing carries: the claimed session and its poll secret. */
export const PairingCredential = z.object({ id: z.string().min(1).max(64), secret: z.string().min(1).max(256) }).strict();
export type PairingCredential = z.infer<typeof PairingCredential>;
