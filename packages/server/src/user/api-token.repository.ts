import type { Executor } from '../store/db.js';

/** The token with this hash and the user it was issued to; a user re-created under the same name has another uid and does not match. */
export async function findApiTokenWithUser(db: Executor, tokenHash: string) {
  return db
    .selectFrom('api_tokens')
    .innerJoin('users', (j) => j.onRef('users.uid', '=', 'api_tokens.user_uid').onRef('users.name', '=', 'api_tokens.user_name'))
    .select([
      'api_tokens.name as tokenName',
      'api_tokens.expires_at as expiresAt',
      'api_tokens.last_used_at as lastUsedAt',
      'users.name as userName',
      'users.uid as userUid',
      'users.spec as userSpec',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

export async function setApiTokenLastUsed(db: Executor, name: string, at: string) {
  await db.updateTable('api_tokens').set({ last_used_at: at }).where('name', '=', name).execute();
}

/** Deletes every API token of a user (by name and by uid) and returns the deleted rows. */
export async function deleteApiTokensOfUser(db: Executor, user: { name: string; uid: string }) {
  const rows = await db
    .selectFrom('api_tokens')
    .selectAll()
    .where((w) => w.or([w('user_name', '=', user.name), w('user_uid', '=', user.uid)]))
    .execute();
  if (rows.length)
    await db
      .deleteFrom('api_tokens')
      .where(
        'name',
        'in',
        rows.map((r) => r.name),
      )
      .execute();
  return rows;
}
