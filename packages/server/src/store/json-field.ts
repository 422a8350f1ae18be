import { type Kysely, PostgresAdapter, type RawBuilder, sql, type Transaction } from 'kysely';

// biome-ignore lint/suspicious/noExplicitAny: used by migrations (untyped) and repositories alike.
type AnyExecutor = Kysely<any> | Transaction<any>;

export function isPostgres(db: AnyExecutor): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

const SAFE = /^[a-z_][a-zA-Z0-9_]*$/;

/**
 * The text at `path` inside a JSON text column (spec, status), as SQL. The column and path are
 * written into the statement, not bound: an expression index (migration 0013) is only used when a
 * query repeats its expression literally. Both come from the server's own field tables, never from
 * a request; they are checked anyway.
 */
export function jsonText(db: AnyExecutor, column: string, path: readonly string[]): RawBuilder<string | null> {
  if (!SAFE.test(column) || path.length === 0 || !path.every((p) => SAFE.test(p))) throw new Error(`unsafe JSON field ${column}.${path.join('.')}`);
  if (isPostgres(db)) return sql<string | null>`(${sql.raw(`${column}::jsonb #>> '{${path.join(',')}}'`)})`;
  return sql<string | null>`${sql.raw(`json_extract(${column}, '$.${path.join('.')}')`)}`;
}
