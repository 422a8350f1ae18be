import { EdgeplaneError, type Role } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../store/db.js';
import { authenticate } from '../user/api-token.service.js';
import { authorize } from './authz.js';

declare module 'fastify' {
  interface FastifyRequest {
    caller?: { user: string; role: Role };
  }
}

/** Requires a valid bearer API token on every route of `scope` (except `public` paths). */
export function installAuth(scope: FastifyInstance, db: Db, publicPaths: string[] = []): void {
  scope.addHook('onRequest', async (req) => {
    if (publicPaths.includes(req.url.split('?')[0])) return;
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) throw new EdgeplaneError('Unauthenticated', 'missing Authorization: Bearer <API token>');
    req.caller = await authenticate(db, auth.slice(7).trim());
  });
}

/** Throws Forbidden unless the caller's role grants `<plural>:<verb>` (see authz.ts). */
export function requirePermission(req: FastifyRequest, permission: string): { user: string; role: Role } {
  if (!req.caller) throw new EdgeplaneError('Unauthenticated', 'not authenticated');
  authorize(req.caller.role, permission);
  return req.caller;
}
