import { API_VERSION, EdgeplaneError, parseOrThrow } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { installAuth } from '../http/auth-hook.js';
import type { Db } from '../store/db.js';
import { listAudit, verifyAudit } from './audit.service.js';

const ListQuery = z
  .object({
    limit: z.coerce.number().int().min(1).max(1000).optional(),
    continue: z.string().regex(/^\d+$/, 'expected a continue token from a previous page').optional(),
    actor: z.string().max(128).optional(),
    action: z.string().max(64).optional(),
    target: z.string().max(256).optional(),
  })
  .strict();

/** The audit log is for admins and operators; viewers see the fleet, not who did what on it. */
function requireAuditReader(req: FastifyRequest): void {
  if (!req.caller) throw new EdgeplaneError('Unauthenticated', 'not authenticated');
  if (req.caller.role === 'viewer')
    throw new EdgeplaneError('Forbidden', 'role "viewer" may not read the audit log', { permission: 'audit:list', role: 'viewer' });
}

/** GET /api/v1/audit (pages in seq order) and GET /api/v1/audit/verify (recompute the hash chain). */
export async function auditRoutes(app: FastifyInstance, deps: { db: Db }): Promise<void> {
  installAuth(app, deps.db);
  app.get<{ Querystring: Record<string, string> }>('/api/v1/audit', async (req) => {
    requireAuditReader(req);
    const q = parseOrThrow(ListQuery, req.query, 'audit query');
    const page = await listAudit(deps.db, { ...q, after: q.continue ? Number(q.continue) : 0 });
    return { apiVersion: API_VERSION, kind: 'AuditEntryList', items: page.items, metadata: page.continue ? { continue: page.continue } : {} };
  });
  app.get('/api/v1/audit/verify', async (req) => {
    requireAuditReader(req);
    return verifyAudit(deps.db);
  });
}
