import { EdgeplaneError, findKind } from '@edgeplane/protocol';
import type { ResourceRow } from '../resource/resource.repository.js';
import { ResourceService } from '../resource/resource.service.js';
import { hashSecret, newSecret, secretPrefix } from '../resource/secrets.js';
import type { Executor } from '../store/db.js';
import { findTokenByHash } from './registration-token.repository.js';

type TokenState = 'active' | 'revoked' | 'expired' | 'exhausted';

function tokenState(row: ResourceRow, nowMs = Date.now()): TokenState {
  if (row.revoked_at) return 'revoked';
  if (row.expires_at && Date.parse(row.expires_at as string) <= nowMs) return 'expired';
  if (row.max_uses !== null && Number(row.uses) >= Number(row.max_uses)) return 'exhausted';
  return 'active';
}

export const registrationTokens = new ResourceService(findKind('RegistrationToken')!, 'registration_tokens', {
  status: (row) => ({
    prefix: JSON.parse(row.status).prefix,
    state: tokenState(row),
    uses: Number(row.uses),
    ...(row.last_used_at ? { lastUsedAt: row.last_used_at } : {}),
    ...(row.revoked_at ? { revokedAt: row.revoked_at } : {}),
  }),
  async prepareCreate(_db, input) {
    const token = newSecret('eprt');
    return {
      columns: {
        token_hash: hashSecret(token),
        uses: 0,
        max_uses: input.spec.maxUses ?? null,
        expires_at: input.spec.expiresAt ?? null,
        revoked_at: null,
        last_used_at: null,
      },
      status: { prefix: secretPrefix(token) },
      shownOnce: { token },
    };
  },
  async prepareUpdate(_db, _row, spec) {
    return { max_uses: spec.maxUses ?? null, expires_at: spec.expiresAt ?? null };
  },
  actions: {
    async revoke(db, row) {
      if (row.revoked_at) return; // revoking twice is a no-op, not an error: scripts retry
      await registrationTokens.touch(db, row.name, { revoked_at: new Date().toISOString() });
    },
  },
});

export interface UsableToken {
  name: string;
  row: ResourceRow;
  spec: { autoApprove: boolean; labels: Record<string, string>; site?: string };
}

/**
 * Finds the token a device presented and checks it is usable. `needUse` is false for a device that
 * re-registers with the key it already holds: that takes no new use, so a used-up token still lets a
 * known device recover its identity.
 */
export async function checkRegistrationToken(db: Executor, secret: string, needUse: boolean): Promise<UsableToken> {
  const row = (await findTokenByHash(db, hashSecret(secret))) as ResourceRow | undefined;
  if (!row) throw new EdgeplaneError('RegistrationTokenInvalid', 'the registration token is not valid');
  const state = tokenState(row);
  if (state === 'revoked') throw new EdgeplaneError('RegistrationTokenRevoked', `registration token "${row.name}" was revoked`);
  if (state === 'expired') throw new EdgeplaneError('RegistrationTokenExpired', `registration token "${row.name}" expired at ${row.expires_at}`);
  if (state === 'exhausted' && needUse)
    throw new EdgeplaneError('RegistrationTokenExhausted', `registration token "${row.name}" has been used ${row.uses} of ${row.max_uses} times`);
  return { name: row.name, row, spec: JSON.parse(row.spec) };
}
