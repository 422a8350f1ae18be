import type { Executor } from '../store/db.js';

/** The controller lease rows (table `controller_leases`). Times are ISO strings from the replicas' clocks. */

/**
 * Takes lease `name` for `holder` if nobody holds it or its holder let it expire; returns the new
 * epoch, or undefined when another holder's lease is still running.
 */
export async function acquireLease(db: Executor, name: string, holder: string, now: string, expiresAt: string): Promise<number | undefined> {
  const created = await db
    .insertInto('controller_leases')
    .values({ name, holder, epoch: 1, expires_at: expiresAt })
    .onConflict((oc) => oc.column('name').doNothing())
    .returning('epoch')
    .executeTakeFirst();
  if (created) return Number(created.epoch);
  const taken = await db
    .updateTable('controller_leases')
    .set((eb) => ({ holder, epoch: eb('epoch', '+', 1), expires_at: expiresAt }))
    .where('name', '=', name)
    .where('expires_at', '<', now)
    .returning('epoch')
    .executeTakeFirst();
  return taken ? Number(taken.epoch) : undefined;
}

/** Extends the lease if `holder` still holds it at `epoch`; false when it was lost (expired and taken). */
export async function renewLease(db: Executor, name: string, holder: string, epoch: number, expiresAt: string): Promise<boolean> {
  const r = await db
    .updateTable('controller_leases')
    .set({ expires_at: expiresAt })
    .where('name', '=', name)
    .where('holder', '=', holder)
    .where('epoch', '=', epoch)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Ends the lease now (a clean stop), so another replica takes it on its next try instead of after the TTL. */
export async function releaseLease(db: Executor, name: string, holder: string, epoch: number, now: string): Promise<void> {
  await db.updateTable('controller_leases').set({ expires_at: now }).where('name', '=', name).where('holder', '=', holder).where('epoch', '=', epoch).execute();
}

export async function readLease(db: Executor, name: string) {
  return db.selectFrom('controller_leases').selectAll().where('name', '=', name).executeTakeFirst();
}
