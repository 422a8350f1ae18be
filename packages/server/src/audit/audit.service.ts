import { createHash } from 'node:crypto';
import { AUDIT_GENESIS_HASH, type AuditEntry, type AuditVerifyResult, auditHash, verifyAuditChain } from '@edgeplane/protocol';
import type { Db } from '../store/db.js';
import { isUniqueViolation } from '../store/db.js';
import { type AuditRow, findAuditRow, insertAuditRow, lastAuditRow, listAuditRows } from './audit.repository.js';

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

// Appends in this process go one at a time; across replicas the seq primary key makes a racing
// append fail, and it retries on top of the new last entry.
let chain: Promise<unknown> = Promise.resolve();

/** Appends one entry to the hash-chained audit log and returns it. */
export function appendAudit(db: Db, rec: AuditRecord): Promise<AuditEntry> {
  const run = async (): Promise<AuditEntry> => {
    for (let attempt = 0; ; attempt++) {
      try {
        return await db.transaction().execute(async (trx) => {
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
        });
      } catch (err) {
        if (attempt < 5 && isUniqueViolation(err)) continue;
        throw err;
      }
    }
  };
  const p = chain.then(run, run);
  chain = p.catch(() => {});
  return p;
}

export async function listAudit(db: Db, q: { after?: number; limit?: number; actor?: string; action?: string; target?: string }) {
  const limit = Math.min(Math.max(q.limit ?? 500, 1), 1000);
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
