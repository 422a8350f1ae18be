import { z } from 'zod';
import { Name, resourceInputSchema, resourceSchema, Timestamp } from './meta.js';

/** Roles, most to least powerful. See docs/architecture.md for what each may do. */
export const Role = z.enum(['admin', 'operator', 'viewer']);
export type Role = z.infer<typeof Role>;

export const UserSpec = z
  .object({
    role: Role,
    displayName: z.string().max(256).optional(),
    email: z.string().email().optional(),
    disabled: z.boolean().default(false),
    /** Extra permissions beyond the role, e.g. `hosts:remote-shell` for an operator. */
    permissions: z.array(z.string().min(1).max(128)).max(64).optional(),
  })
  .strict();
export const UserStatus = z.object({});
export const User = resourceSchema('User', UserSpec, UserStatus);
export type User = z.infer<typeof User>;
export const UserInput = resourceInputSchema('User', UserSpec);

export const ApiTokenSpec = z
  .object({
    user: Name,
    description: z.string().max(1024).optional(),
    expiresAt: Timestamp.optional(),
  })
  .strict();
export const ApiTokenStatus = z.object({
  /** The secret. Present only in the answer to the create request; stored hashed. */
  token: z.string().optional(),
  prefix: z.string(),
  lastUsedAt: Timestamp.optional(),
});
export const ApiToken = resourceSchema('ApiToken', ApiTokenSpec, ApiTokenStatus);
export type ApiToken = z.infer<typeof ApiToken>;
export const ApiTokenInput = resourceInputSchema('ApiToken', ApiTokenSpec);
