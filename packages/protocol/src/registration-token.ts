import { z } from 'zod';
import { Labels, Name, resourceInputSchema, resourceSchema, Timestamp } from './meta.js';
import { PositiveInt32 } from './text.js';

export const RegistrationTokenSpec = z
  .object({
    description: z.string().max(1024).optional(),
    expiresAt: Timestamp.optional(),
    maxUses: PositiveInt32.optional(),
    autoApprove: z.boolean().default(false),
    /** Copied onto every host that registers with this token. */
    labels: Labels.default({}),
    site: Name.optional(),
    /** Only devices whose UID an operator pre-registered (EdgeHost in state pre-registered) may use this token. */
    preRegisteredOnly: z.boolean().optional(),
    /** Only devices whose key lives in a TPM 2.0 (`identity: tpm`) may use this token; others are refused (TpmIdentityRequired). */
    requireTpm: z.boolean().optional(),
  })
  .strict();
export type RegistrationTokenSpec = z.infer<typeof RegistrationTokenSpec>;

export const RegistrationTokenStatus = z.object({
  /** The secret. Present only in the answer to the create request; stored hashed. */
  token: z.string().optional(),
  /** First characters of the secret, to recognize it in lists. */
  prefix: z.string(),
  state: z.enum(['active', 'revoked', 'expired', 'exhausted']),
  uses: z.number().int().nonnegative(),
  lastUsedAt: Timestamp.optional(),
  revokedAt: Timestamp.optional(),
});
export type RegistrationTokenStatus = z.infer<typeof RegistrationTokenStatus>;

export const RegistrationToken = resourceSchema('RegistrationToken', RegistrationTokenSpec, RegistrationTokenStatus);
export type RegistrationToken = z.infer<typeof RegistrationToken>;
export const RegistrationTokenInput = resourceInputSchema('RegistrationToken', RegistrationTokenSpec);
