import { EdgeplaneError, findKind } from '@edgeplane/protocol';
import { appendAudit } from '../audit/audit.service.js';
import { ResourceService } from '../resource/resource.service.js';
import type { Db, Executor } from '../store/db.js';

/**
 * RemoteSession objects: created only by POST /api/v1/edgehosts/<name>/sessions (remote-session.routes.ts),
 * which checks permission and reason; listed and read through the generic API. Their status is written
 * by the session broker as the session goes pending -> active -> ended|refused.
 */
export const remoteSessions = new ResourceService(findKind('RemoteSession')!, 'remote_sessions', {
  async prepareUpdate(_db, row) {
    // A session record is evidence: its spec is what was asked for, and only the broker writes status.
    throw new EdgeplaneError('MethodNotAllowed', `remote session "${row.name}" cannot be changed; terminate it or open a new one`);
  },
  async beforeDelete(_db, row) {
    if (row.phase === 'pending' || row.phase === 'active')
      throw new EdgeplaneError('InvalidState', `remote session "${row.name}" is still ${row.phase}; terminate it first`);
  },
  actions: {
    // The live terminate is served by remote-session.routes.ts; reaching this means the route was bypassed.
    async terminate(_db, row) {
      if (row.phase === 'pending' || row.phase === 'active')
        throw new EdgeplaneError('InvalidState', `remote session "${row.name}" is not served by this server`);
    },
  },
});

export async function setSessionStatus(db: Executor, id: string, phase: string, status: Record<string, unknown>): Promise<void> {
  await db
    .updateTable('remote_sessions')
    .set({ phase, status: JSON.stringify(status), updated_at: new Date().toISOString() })
    .where('name', '=', id)
    .execute();
}

/** The replica serving a session (null for sessions of servers before replicas; undefined if there is no such session). */
export async function sessionReplica(db: Executor, id: string): Promise<string | null | undefined> {
  const row = await db.selectFrom('remote_sessions').select('replica').where('name', '=', id).executeTakeFirst();
  return row ? (row.replica ?? null) : undefined;
}

/**
 * Sessions a previous run of the server left pending or active: their agents' processes are gone
 * with the channel. With replicas (`shared`), only those of no live replica: a session another replica
 * serves goes on.
 */
export async function endOrphanedSessions(db: Executor, shared = false, endReason = 'server-restarted'): Promise<number> {
  const now = new Date().toISOString();
  const rows = await db
    .selectFrom('remote_sessions')
    .select(['name', 'status'])
    .where('phase', 'in', ['pending', 'active'])
    .$if(shared, (q) =>
      q.where((eb) => eb.or([eb('replica', 'is', null), eb('replica', 'not in', eb.selectFrom('replicas').select('id').where('expires_at', '>', now))])),
    )
    .execute();
  for (const r of rows) {
    const status = { ...JSON.parse(r.status), phase: 'ended', endReason, endedAt: new Date().toISOString() };
    await setSessionStatus(db, r.name, 'ended', status);
  }
  return rows.length;
}

/** Stores a session's final status and appends `session.end` (who, host, reason, bytes, how it ended) to the audit log. */
export async function recordSessionEnd(
  db: Db,
  s: {
    id: string;
    host: string;
    user: string;
    createdAt: number;
    bytesIn: number;
    bytesOut: number;
    status: Record<string, unknown>;
    req: { kind: string; reason: string };
  },
  phase: string,
  e: { reason: string; message?: string; code?: number | null },
): Promise<void> {
  // One transaction: the final status and the `session.end` entry that explains it go together.
  await db.transaction().execute(async (trx) => {
    await setSessionStatus(trx, s.id, phase, s.status);
    await appendAudit(trx, {
      actor: s.user,
      action: 'session.end',
      target: `edgehosts/${s.host}`,
      reason: s.req.reason,
      details: {
        session: s.id,
        kind: s.req.kind,
        phase,
        endReason: e.reason,
        ...(e.message ? { message: e.message } : {}),
        exitCode: e.code ?? null,
        bytesIn: s.bytesIn,
        bytesOut: s.bytesOut,
        durationSeconds: Math.round((Date.now() - s.createdAt) / 100) / 10,
      },
    });
  });
}
