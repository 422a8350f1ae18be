import type { Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';

/** Records a connect token id until `expiresAt` (epoch seconds); false when the id was recorded before. */
export async function insertConnectTokenUse(db: Executor, jti: string, expiresAt: number): Promise<boolean> {
  try {
    await db.insertInto('connect_token_uses').values({ jti, expires_at: expiresAt }).execute();
    return true;
  } catch (err) {
    if (isUniqueViolation(err)) return false;
    throw err;
  }
}

/** Forgets ids whose tokens expired before `before` (epoch seconds): they can no longer be presented. */
export async function deleteExpiredConnectTokenUses(db: Executor, before: number): Promise<void> {
  await db.deleteFrom('connect_token_uses').where('expires_at', '<', before).execute();
}
