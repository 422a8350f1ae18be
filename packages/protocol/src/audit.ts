import { z } from 'zod';
import { Timestamp } from './meta.js';

/**
 * Audit log: append-only, each entry chained to the previous one by hash, so an edited, removed or
 * reordered entry is detectable by anyone holding the log (`edgeplane audit verify`).
 * hash = sha256(prevHash + canonicalJson(entry without prevHash/hash)), hex. The first entry's prevHash
 * is AUDIT_GENESIS_HASH. The sha256 function is passed in so this package stays free of Node built-ins
 * (the browser console imports it).
 */
export const AUDIT_GENESIS_HASH = '0'.repeat(64);

export const AuditEntry = z.object({
  seq: z.number().int().positive(),
  time: Timestamp,
  actor: z.string(),
  action: z.string(),
  target: z.string(),
  reason: z.string().nullable(),
  details: z.record(z.string(), z.unknown()),
  prevHash: z.string().regex(/^[0-9a-f]{64}$/),
  hash: z.string().regex(/^[0-9a-f]{64}$/),
});
export type AuditEntry = z.infer<typeof AuditEntry>;

export const AuditList = z.object({
  apiVersion: z.string(),
  kind: z.literal('AuditEntryList'),
  items: z.array(AuditEntry),
  metadata: z.object({ continue: z.string().optional() }),
});
export type AuditList = z.infer<typeof AuditList>;

export const AuditVerifyResult = z.object({
  ok: z.boolean(),
  entries: z.number().int().nonnegative(),
  /** The first entry whose hash or link does not match, when not ok. */
  firstBadSeq: z.number().int().optional(),
  problem: z.string().optional(),
  lastHash: z.string().optional(),
});
export type AuditVerifyResult = z.infer<typeof AuditVerifyResult>;

/** JSON with object keys sorted at every level, no whitespace: one byte sequence per value. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value ?? null);
  if (Array.isArray(value)) return `[${value.map((v) => canonicalJson(v === undefined ? null : v)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(obj[k])}`).join(',')}}`;
}

/** Hex sha256 of a UTF-8 string, e.g. `(s) => createHash('sha256').update(s).digest('hex')` in Node. */
export type Sha256Hex = (text: string) => string;

export function auditHash(sha256: Sha256Hex, prevHash: string, entry: Omit<AuditEntry, 'prevHash' | 'hash'>): string {
  const { seq, time, actor, action, target, reason, details } = entry;
  return sha256(prevHash + canonicalJson({ seq, time, actor, action, target, reason, details }));
}

/**
 * Checks a run of entries in seq order. `prevHash` is the hash before the first entry (genesis when the
 * run starts at seq 1), so a long log can be verified page by page.
 */
export function verifyAuditChain(sha256: Sha256Hex, entries: AuditEntry[], prevHash = AUDIT_GENESIS_HASH, expectSeq = 1): AuditVerifyResult {
  let prev = prevHash;
  let seq = expectSeq;
  for (const e of entries) {
    if (e.seq !== seq)
      return { ok: false, entries: entries.length, firstBadSeq: e.seq, problem: `expected seq ${seq}, found ${e.seq} (entry missing or reordered)` };
    if (e.prevHash !== prev) return { ok: false, entries: entries.length, firstBadSeq: e.seq, problem: 'prevHash does not match the previous entry' };
    if (auditHash(sha256, e.prevHash, e) !== e.hash)
      return { ok: false, entries: entries.length, firstBadSeq: e.seq, problem: 'hash does not match the entry contents (edited)' };
    prev = e.hash;
    seq++;
  }
  return { ok: true, entries: entries.length, lastHash: prev };
}
