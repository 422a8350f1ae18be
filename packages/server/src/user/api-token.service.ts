import { EdgeplaneError, findKind, type Role } from '@edgeplane/protocol';
import { findByName } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import { hashSecret, newSecret, secretPrefix } from '../resource/secrets.js';
import type { Executor } from '../store/db.js';
import { findApiTokenWithUser, setApiTokenLastUsed } from './api-token.repository.js';

export const apiTokens = new ResourceService(findKind('ApiToken')!, 'api_tokens', {
  status: (row) => ({ prefix: JSON.parse(row.status).prefix, ...(row.last_used_at ? { lastUsedAt: row.last_used_at } : {}) }),
  async prepareCreate(db, input) {
    const user = String(input.spec.user);
    const userRow = await findByName(db, 'users', user);
    if (!userRow) {
      throw new EdgeplaneError('ValidationFailed', `spec.user: user "${user}" does not exist`, { issues: [{ path: 'spec.user', message: 'no such user' }] });
    }
    const token = newSecret('ept');
    return {
      columns: {
        token_hash: hashSecret(token),
        user_name: user,
        user_uid: userRow.uid,
        expires_at: (input.spec.expiresAt as string | undefined) ?? null,
        last_used_at: null,
      },
      status: { prefix: secretPrefix(token) },
      shownOnce: { token },
    };
  },
  async prepareUpdate(_db, row, spec) {
    if (spec.user !== row.user_name)
      throw new EdgeplaneError('ValidationFailed', 'spec.user of an API token cannot change', { issues: [{ path: 'spec.user', message: 'immutable' }] });
    return { expires_at: (spec.expiresAt as string | undefined) ?? null };
  },
});

/** Writes last-used at most this often per token, so authenticated reads do not each write. */
const LAST_USED_RESOLUTION_MS = 60_000;

/** Who an API token speaks for. */
export interface Credential {
  user: string;
  role: Role;
  /** The user's uid: a user re-created under the same name is another user. */
  userUid: string;
  /** The API token's name (for closing its watches when it goes). */
  tokenName: string;
}

/**
 * Resolves a token hash to its user and role, or throws Unauthenticated: unknown or deleted token,
 * token of a deleted (even if re-created) user, expired token, disabled user.
 */
export async function credentialOf(db: Executor, tokenHash: string, nowMs = Date.now()): Promise<Credential & { lastUsedAt: string | null }> {
  const found = await findApiTokenWithUser(db, tokenHash);
  if (!found) throw new EdgeplaneError('Unauthenticated', 'the API token is not valid');
  if (found.expiresAt && Date.parse(found.expiresAt) <= nowMs) throw new EdgeplaneError('Unauthenticated', 'the API token has expired');
  const spec = JSON.parse(found.userSpec) as { role: Role; disabled?: boolean };
  if (spec.disabled) throw new EdgeplaneError('Unauthenticated', `user "${found.userName}" is disabled`);
  return { user: found.userName, role: spec.role, userUid: found.userUid, tokenName: found.tokenName, lastUsedAt: found.lastUsedAt };
}

/** Resolves a bearer secret to its user and role, or throws Unauthenticated. */
export async function authenticate(db: Executor, secret: string): Promise<Credential> {
  const nowMs = Date.now();
  const { lastUsedAt, ...cred } = await credentialOf(db, hashSecret(secret), nowMs);
  if (!lastUsedAt || nowMs - Date.parse(lastUsedAt) > LAST_USED_RESOLUTION_MS) {
    await setApiTokenLastUsed(db, cred.tokenName, new Date(nowMs).toISOString());
  }
  return cred;
}
