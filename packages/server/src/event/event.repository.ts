import type { Insertable } from 'kysely';
import type { Executor } from '../store/db.js';
import type { EventTable, ResourceTableName } from '../store/schema.js';

export async function insertEvents(db: Executor, rows: Insertable<EventTable>[]): Promise<void> {
  await db.insertInto('events').values(rows).execute();
}

/** Deletes events recorded (server clock) before `before`; returns how many. */
export async function deleteEventsBefore(db: Executor, before: string): Promise<number> {
  const r = await db.deleteFrom('events').where('created_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Objects with more than `max` events, at most `limit` of them per call. */
export async function objectsWithMoreEvents(db: Executor, max: number, limit = 100): Promise<{ kind: string; name: string }[]> {
  const rows = await db
    .selectFrom('events')
    .select(['involved_kind as kind', 'involved_name as name'])
    .groupBy(['involved_kind', 'involved_name'])
    .having((eb) => eb.fn.countAll(), '>', max)
    .limit(limit)
    .execute();
  return rows;
}

/**
 * Keeps the newest `keep` events of one object (by recording time; ties at the cut may keep a few
 * more) and deletes the rest; returns how many went.
 */
export async function deleteOldestEventsOf(db: Executor, kind: string, name: string, keep: number): Promise<number> {
  const cut = await db
    .selectFrom('events')
    .select('created_at')
    .where('involved_kind', '=', kind)
    .where('involved_name', '=', name)
    .orderBy('created_at', 'desc')
    .limit(1)
    .offset(keep - 1)
    .executeTakeFirst();
  if (!cut) return 0;
  const r = await db
    .deleteFrom('events')
    .where('involved_kind', '=', kind)
    .where('involved_name', '=', name)
    .where('created_at', '<', cut.created_at)
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** uid of each named row of a resource table that exists (names not found are left out). */
export async function uidsByName(db: Executor, table: ResourceTableName, names: string[]): Promise<{ name: string; uid: string }[]> {
  if (names.length === 0) return [];
  return db.selectFrom(table).select(['name', 'uid']).where('name', 'in', names).execute();
}
