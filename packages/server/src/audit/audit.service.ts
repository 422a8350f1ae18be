import { createHash } from 'node:crypto';
import { AUDIT_GENESIS_HASH, type AuditEntry, type AuditVerifyResult, auditHash, EdgeplaneError, INT32_MAX, verifyAuditChain } from '@edgeplane/protocol';
import type { Db, Executor } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { storeScope } from '../store/store-scope.js';
import { type AuditRow, findAuditRow, insertAuditRow, lastAuditRow, listAuditRows, lockAuditChain } from './audit.repository.js';

export const sha256Hex = (text: string): string => createHash('sha256').update(text).digest('hex');

export interface AuditRecord {
  actor: string;
  action: string;
  target: string;
  reason?: string | null;
  details?: Record<string, unknown>;
}

export function toEntry(row: AuditRow): AuditEntry {
  return {
    seq: Number(row.seq),
    time: row.time,
    actor: row.actor,
    action: row.action,
    target: row.target,
    reason: row.reason,
    details: JSON.parse(row.details),
    prevHash: row.prev_hash,
    hash: row.hash,
  };
}

/** Appends one entry inside the transaction `trx`. */
async function appendIn(trx: Executor, rec: AuditRecord): Promise<AuditEntry> {
  await lockAuditChain(trx);
  const last = await lastAuditRow(trx);
  const base = {
    seq: last ? Number(last.seq) + 1 : 1,
    time: new Date().toISOString(),
    actor: rec.actor,
    action: rec.action,
    target: rec.target,
    reason: rec.reason ?? null,
    // Round-trip through JSON so the hash covers exactly what is stored and read back.
    details: JSON.parse(JSON.stringify(rec.details ?? {})) as Record<string, unknown>,
  };
  const prevHash = last?.hash ?? AUDIT_GENESIS_HASH;
  const hash = auditHash(sha256Hex, prevHash, base);
  await insertAuditRow(trx, { ...base, details: JSON.stringify(base.details), prev_hash: prevHash, hash });
  return { ...base, prevHash, hash };
}

/**
 * Appends one entry to the hash-chained audit log and returns it. Given a transaction, the entry is
 * written in it and commits or rolls back with the caller's other writes (a resource and the entry
 * that records it are one unit). Given the database, it runs in a transaction of its own.
 */
export function appendAudit(db: Executor, rec: AuditRecord): Promise<AuditEntry> {
  // Not through `chain`: on SQLite the caller's transaction holds the only connection, which an
  // earlier queued append would wait for. The advisory lock (PostgreSQL) orders it with the others.
  if (db.isTransaction) return appendIn(db, rec);
  const run = async (): Promise<AuditEntry> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await db.transaction().execute((trx) => appendIn(trx, rec));
      } catch (err) {
        if (attempt < 5 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  };
  // Appends to one store from this process go one at a time (the store's scope holds the queue); across
  // replicas the seq primary key makes a racing append fail, and it retries on top of the new last entry.
  const scope = storeScope(db);
  if (!scope) return run();
  const p = scope.auditChain.then(run, run);
  scope.auditChain = p.catch(() => {});
  return p;
}

export async function listAudit(db: Db, q: { after?: number; limit?: number; actor?: string; action?: string; target?: string }) {
  const limit = Math.min(Math.max(q.limit ?? 500, 1), 1000);
  // seq is an integer column: a larger continue token is refused the same way on both stores.
  if ((q.after ?? 0) > INT32_MAX)
    throw new EdgeplaneError('ValidationFailed', 'invalid audit query: continue is not a token from a previous page', {
      issues: [{ path: 'continue', message: 'expected a continue token from a previous page' }],
    });
  const rows = await listAuditRows(db, q.after ?? 0, limit + 1, q);
  const items = rows.slice(0, limit).map(toEntry);
  return { items, continue: rows.length > limit ? String(items[items.length - 1].seq) : undefined };
}

/** Recomputes the whole chain, page by page, from the first entry. */
export async function verifyAudit(db: Db): Promise<AuditVerifyResult> {
  let prev = AUDIT_GENESIS_HASH;
  let after = 0;
  let count = 0;
  for (;;) {
    const rows = await listAuditRows(db, after, 1000);
    const r = verifyAuditChain(sha256Hex, rows.map(toEntry), prev, after + 1);
    count += rows.length;
    if (!r.ok) return { ...r, entries: count };
    if (rows.length < 1000) return { ok: true, entries: count, lastHash: r.lastHash };
    prev = r.lastHash!;
    after = Number(rows[rows.length - 1].seq);
  }
}

export { findAuditRow };
