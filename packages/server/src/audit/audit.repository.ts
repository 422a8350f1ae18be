import { PostgresAdapter, sql } from 'kysely';
import type { Executor } from '../store/db.js';
import type { AuditLogTable } from '../store/schema.js';

export type AuditRow = AuditLogTable;

/** Advisory lock key of the audit chain (an arbitrary constant: "EPAU" in ASCII). */
const AUDIT_LOCK_KEY = 0x45504155;

/**
 * Makes appends to the chain one at a time until the caller's transaction ends, across connections
 * and replicas (PostgreSQL advisory lock). SQLite needs none: its writers are serialized already.
 * Call it in a transaction, before reading the last row.
 */
export async function lockAuditChain(trx: Executor): Promise<void> {
  if (trx.getExecutor().adapter instanceof PostgresAdapter) await sql`select pg_advisory_xact_lock(${AUDIT_LOCK_KEY})`.execute(trx);
}

export async function lastAuditRow(db: Executor): Promise<AuditRow | undefined> {
  return db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').limit(1).executeTakeFirst();
}

export async function insertAuditRow(db: Executor, row: AuditRow): Promise<void> {
  await db.insertInto('audit_log').values(row).execute();
}

/** Rows with seq > after, in seq order. */
export async function listAuditRows(
  db: Executor,
  after: number,
  limit: number,
  filter: { actor?: string; action?: string; target?: string } = {},
): Promise<AuditRow[]> {
  let q = db.selectFrom('audit_log').selectAll().where('seq', '>', after).orderBy('seq').limit(limit);
  if (filter.actor) q = q.where('actor', '=', filter.actor);
  if (filter.action) q = q.where('action', '=', filter.action);
  if (filter.target) q = q.where('target', '=', filter.target);
  return q.execute();
}

export async function findAuditRow(db: Executor, seq: number): Promise<AuditRow | undefined> {
  return db.selectFrom('audit_log').selectAll().where('seq', '=', seq).executeTakeFirst();
}
