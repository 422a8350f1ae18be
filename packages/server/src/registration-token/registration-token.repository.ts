import type { Executor } from '../store/db.js';

export async function findTokenByHash(db: Executor, tokenHash: string) {
  return db.selectFrom('registration_tokens').selectAll().where('token_hash', '=', tokenHash).executeTakeFirst();
}

/** Takes one use of the token if it has one left; false when it is used up (atomic on both dialects). */
export async function takeTokenUse(db: Executor, name: string, at: string): Promise<boolean> {
  const r = await db
    .updateTable('registration_tokens')
    .set((eb) => ({ uses: eb('uses', '+', 1), last_used_at: at }))
    .where('name', '=', name)
    .where((eb) => eb.or([eb('max_uses', 'is', null), eb('uses', '<', eb.ref('max_uses'))]))
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}
