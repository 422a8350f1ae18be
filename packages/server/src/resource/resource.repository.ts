import type { Kysely, Transaction } from 'kysely';
import type { Executor } from '../store/db.js';
import type { ResourceColumns, ResourceTableName } from '../store/schema.js';

/**
 * Generic SQL for the columns all resource tables share. Each resource's own repository adds the
 * queries on its extra columns. The table is chosen at run time, so the typed Kysely instance is
 * narrowed to one "any resource table" shape here, and only here.
 */
export type ResourceRow = ResourceColumns & Record<string, unknown>;
type Generic = { r: ResourceRow };
const g = (db: Executor) => db as unknown as Kysely<Generic> | Transaction<Generic>;
const T = (table: ResourceTableName) => table as unknown as 'r';

export async function findByName(db: Executor, table: ResourceTableName, name: string): Promise<ResourceRow | undefined> {
  return g(db).selectFrom(T(table)).selectAll().where('name', '=', name).executeTakeFirst() as Promise<ResourceRow | undefined>;
}

export async function findBy(db: Executor, table: ResourceTableName, column: string, value: string): Promise<ResourceRow | undefined> {
  return g(db)
    .selectFrom(T(table))
    .selectAll()
    .where(column as 'name', '=', value)
    .executeTakeFirst() as Promise<ResourceRow | undefined>;
}

/** Rows ordered by name, strictly after `after`, at most `limit`. */
export async function listPage(
  db: Executor,
  table: ResourceTableName,
  after: string | undefined,
  limit: number,
  where?: Record<string, string>,
): Promise<ResourceRow[]> {
  let q = g(db).selectFrom(T(table)).selectAll().orderBy('name').limit(limit);
  if (after !== undefined) q = q.where('name', '>', after);
  for (const [col, value] of Object.entries(where ?? {})) q = q.where(col as 'name', '=', value);
  return q.execute() as Promise<ResourceRow[]>;
}

export async function insertRow(db: Executor, table: ResourceTableName, row: ResourceRow): Promise<void> {
  await g(db).insertInto(T(table)).values(row).execute();
}

/**
 * Updates a row and bumps its resource_version. When `expectedVersion` is given, the update only
 * happens if the stored version still matches (optimistic concurrency); returns false otherwise.
 */
export async function updateRow(
  db: Executor,
  table: ResourceTableName,
  name: string,
  values: Partial<ResourceRow>,
  expectedVersion?: number,
): Promise<boolean> {
  let q = g(db)
    .updateTable(T(table))
    .set((eb) => ({ ...values, resource_version: eb('resource_version', '+', 1) }))
    .where('name', '=', name);
  if (expectedVersion !== undefined) q = q.where('resource_version', '=', expectedVersion);
  const r = await q.executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function deleteRow(db: Executor, table: ResourceTableName, name: string): Promise<boolean> {
  const r = await g(db).deleteFrom(T(table)).where('name', '=', name).executeTakeFirst();
  return Number(r.numDeletedRows) > 0;
}

export async function countRows(db: Executor, table: ResourceTableName): Promise<number> {
  const r = await g(db)
    .selectFrom(T(table))
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .executeTakeFirstOrThrow();
  return Number(r.n);
}
