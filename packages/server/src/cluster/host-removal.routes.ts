import { EdgeplaneError } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import type { ConnectionHub } from '../agent/connection-hub.js';
import { edgeHosts } from '../edgehost/edgehost.service.js';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import type { HostChange, RequestContext } from '../resource/context.js';
import type { Db } from '../store/db.js';
import { ChangeBatch } from '../watch/change-bus.js';
import { requestHostRemoval } from './host-removal.js';

function forceFlag(value: string | undefined): boolean {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  throw new EdgeplaneError('ValidationFailed', `force must be true or false, not "${value}"`, {
    issues: [{ path: 'force', message: 'expected true or false' }],
  });
}

/**
 * DELETE /api/v1/edgehosts/<name>[?force=true]. Without force it is the generic delete (refused
 * with HostInCluster while a cluster depends on the host, edgehost.service.ts). With force, a host a
 * cluster depends on leaves it first (host-removal.ts): the answer is 202 with the steps, and the
 * host is deleted once it left. A host no cluster depends on is deleted at once either way (200).
 * Its own route because the generic API has no delete options; it runs the write like the generic
 * API does (one transaction; agents and watchers told after commit).
 */
export async function hostRemovalRoutes(app: FastifyInstance, deps: { db: Db; hub: ConnectionHub }): Promise<void> {
  installAuth(app, deps.db);
  app.delete<{ Params: { name: string }; Querystring: { force?: string } }>('/api/v1/edgehosts/:name', async (req, reply) => {
    const caller = requirePermission(req, 'edgehosts:delete');
    const force = forceFlag(req.query.force);
    const notices: [string, HostChange][] = [];
    const changes = new ChangeBatch();
    const ctx: RequestContext = { user: caller.user, role: caller.role, log: req.log, hosts: { hostChanged: (n, c) => notices.push([n, c]) }, changes };
    const result = await deps.db.transaction().execute(async (trx) => {
      if (force) {
        const removal = await requestHostRemoval(trx, await edgeHosts.getRow(trx, req.params.name), ctx);
        if (removal) return { status: 202, body: removal };
      }
      return { status: 200, body: await edgeHosts.delete(trx, req.params.name, ctx) };
    });
    for (const [n, c] of notices) deps.hub.hostChanged(n, c);
    changes.publishTo(deps.hub.changes);
    if (result.status === 202) req.log.info({ host: req.params.name, user: caller.user }, 'host removal from its cluster requested');
    return reply.status(result.status).send(result.body);
  });
}
