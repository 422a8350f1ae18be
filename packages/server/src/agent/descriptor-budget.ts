import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** What the process may open, and how many of those agent channels may take. */
export interface DescriptorBudget {
  /** The soft open-file limit the server runs under (after raising it, where it could). */
  limit: number;
  /** Descriptors kept for everything else: the store, the API and /metrics, recordings, logs. */
  reserve: number;
  /** Agent channels this server accepts at once; more are refused with a retryable answer. */
  maxAgentChannels: number;
  /** Why the soft limit could not be raised to the hard limit, if it could not. */
  notRaised?: string;
}

/** The soft and hard `Max open files` of this process (Linux /proc); undefined elsewhere. */
export function readOpenFileLimits(text = safeRead('/proc/self/limits')): { soft: number; hard: number } | undefined {
  const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text ?? '');
  if (!m) return undefined;
  const n = (v: string) => (v === 'unlimited' ? Number.POSITIVE_INFINITY : Number(v));
  return { soft: n(m[1]), hard: n(m[2]) };
}

function safeRead(file: string): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * The reserve for a soft limit: a tenth, at least 200 (SQLite's database, WAL and shared-memory
 * files, a PostgreSQL pool and its listen connection, API and metrics scrapes, recordings, logs).
 * One process that ran out of descriptors lost its store ("unable to open database file") and its
 * /metrics at once; agents beyond the cap are better sent to another replica.
 */
export function planDescriptorBudget(soft: number, notRaised?: string): DescriptorBudget {
  const limit = Number.isFinite(soft) ? soft : 1_048_576;
  const reserve = Math.max(200, Math.ceil(limit / 10));
  return { limit, reserve, maxAgentChannels: Math.max(0, limit - reserve), ...(notRaised ? { notRaised } : {}) };
}

/**
 * Raises the soft open-file limit to the hard limit and plans the budget. Node has no setrlimit;
 * prlimit(1) from util-linux sets it on this process (allowed for the process's own user up to the
 * hard limit). Without /proc or prlimit the current limit stands and `notRaised` says why.
 */
export function descriptorBudget(): DescriptorBudget {
  const before = readOpenFileLimits();
  if (!before) return planDescriptorBudget(Number.POSITIVE_INFINITY, 'open-file limits unknown (no /proc/self/limits)');
  if (before.soft >= before.hard) return planDescriptorBudget(before.soft);
  const hard = Number.isFinite(before.hard) ? String(before.hard) : 'unlimited';
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${hard}:${hard}`], { encoding: 'utf8' });
  const after = readOpenFileLimits() ?? before;
  if (after.soft > before.soft) return planDescriptorBudget(after.soft);
  const why = r.error ? r.error.message : (r.stderr || `prlimit exited ${r.status}`).trim();
  return planDescriptorBudget(before.soft, `soft open-file limit ${before.soft} not raised to ${hard}: ${why}`);
}
