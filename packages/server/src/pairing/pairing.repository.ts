import type { Executor } from '../store/db.js';
import type { PairingTable } from '../store/schema.js';

export type PairingRow = PairingTable;

export async function insertPairing(db: Executor, row: PairingRow): Promise<void> {
  await db.insertInto('pairings').values(row).execute();
}

export async function findPairingById(db: Executor, id: string): Promise<PairingRow | undefined> {
  return db.selectFrom('pairings').selectAll().where('id', '=', id).executeTakeFirst();
}

export async function findPairingByCode(db: Executor, code: string): Promise<PairingRow | undefined> {
  return db.selectFrom('pairings').selectAll().where('code', '=', code).executeTakeFirst();
}

/** Moves a pairing from one state to the next only if it is still in `from` (single-use, race-safe). */
export async function transitionPairing(db: Executor, id: string, from: string, values: Partial<PairingRow>): Promise<boolean> {
  const r = await db.updateTable('pairings').set(values).where('id', '=', id).where('state', '=', from).executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Pending sessions that have not expired at `now` (all, or those opened from one source address), and the first of their expiries. */
export async function countOpenPairings(db: Executor, now: string, sourceIp?: string): Promise<{ count: number; firstExpiry?: string }> {
  let q = db
    .selectFrom('pairings')
    .select((eb) => [eb.fn.countAll().as('n'), eb.fn.min('expires_at').as('first')])
    .where('state', '=', 'pending')
    .where('expires_at', '>', now);
  if (sourceIp !== undefined) q = q.where('source_ip', '=', sourceIp);
  const r = await q.executeTakeFirstOrThrow();
  return { count: Number(r.n), firstExpiry: (r.first as string | null) ?? undefined };
}

/**
 * Deletes sessions nobody can use any more: pending ones past their expiry (their codes go back to
 * the pool), and claimed or completed ones whose registration window closed before `usedBefore`.
 */
export async function deleteDeadPairings(db: Executor, now: string, usedBefore: string): Promise<number> {
  const r = await db
    .deleteFrom('pairings')
    .where((eb) => eb.or([eb.and([eb('state', '=', 'pending'), eb('expires_at', '<=', now)]), eb('expires_at', '<', usedBefore)]))
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
