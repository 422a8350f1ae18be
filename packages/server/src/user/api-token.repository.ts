import type { Executor } from '../store/db.js';

export async function findApiTokenWithUser(db: Executor, tokenHash: string) {
  return db
    .selectFrom('api_tokens')
    .innerJoin('users', 'users.name', 'api_tokens.user_name')
    .select([
      'api_tokens.name as tokenName',
      'api_tokens.expires_at as expiresAt',
      'api_tokens.last_used_at as lastUsedAt',
      'users.name as userName',
      'users.spec as userSpec',
    ])
    .where('api_tokens.token_hash', '=', tokenHash)
    .executeTakeFirst();
}

export async function setApiTokenLastUsed(db: Executor, name: string, at: string) {
  await db.updateTable('api_tokens').set({ last_used_at: at }).where('name', '=', name).execute();
}
