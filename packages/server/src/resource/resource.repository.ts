import { type Kysely, sql, type Transaction } from 'kysely';
import type { Executor } from '../store/db.js';
import { jsonText } from '../store/json-field.js';
import type { ResourceColumns, ResourceTableName } from '../store/schema.js';
import type { FieldRequirement, FieldSource } from './field-selector.js';

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

/** Where a page starts: strictly after this row in the list order. */
export interface PageCursor {
  name: string;
  /** The row's value of the leading order column, when the list has one (events: their time). */
  key?: string;
}

export interface PageQuery {
  after?: PageCursor;
  limit: number;
  /** A column sorted before `name` (events by `event_time`); the cursor then carries its value. */
  orderBy?: string;
  fields?: FieldRequirement[];
}

function fieldExpr(db: Executor, source: FieldSource) {
  return 'column' in source ? sql.ref(source.column) : jsonText(db, source.json, source.path);
}

/** Rows in list order (`orderBy`, then name), strictly after `after`, matching every field requirement, at most `limit`. */
export async function listPage(db: Executor, table: ResourceTableName, q: PageQuery): Promise<ResourceRow[]> {
  let query = g(db).selectFrom(T(table)).selectAll();
  if (q.orderBy) query = query.orderBy(q.orderBy as 'name');
  query = query.orderBy('name').limit(q.limit);
  const { after, orderBy } = q;
  if (after && orderBy && after.key !== undefined) {
    const key = after.key;
    query = query.where((eb) => eb.or([eb(orderBy as 'name', '>', key), eb.and([eb(orderBy as 'name', '=', key), eb('name', '>', after.name)])]));
  } else if (after) query = query.where('name', '>', after.name);
  for (const f of q.fields ?? []) {
    const expr = fieldExpr(db, f.source);
    // Kubernetes semantics: an absent field reads as "", so `f=` matches it and `f!=v` includes it.
    if (f.op === '=') query = f.value === '' ? query.where((eb) => eb.or([eb(expr, 'is', null), eb(expr, '=', '')])) : query.where(expr, '=', f.value);
    else if (f.value === '') query = query.where((eb) => eb.and([eb(expr, 'is not', null), eb(expr, '<>', '')]));
    else query = query.where((eb) => eb.or([eb(expr, 'is', null), eb(expr, '<>', f.value)]));
  }
  return query.execute() as Promise<ResourceRow[]>;
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
