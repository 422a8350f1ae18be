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

/** Forgets sessions long past their expiry; codes are short, so old ones must free the code space. */
export async function deleteExpiredPairings(db: Executor, before: string): Promise<number> {
  const r = await db.deleteFrom('pairings').where('expires_at', '<', before).where('state', '!=', 'claimed').executeTakeFirst();
  return Number(r.numDeletedRows);
}
