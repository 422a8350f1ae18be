import type { Whoami } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { installAuth } from '../http/auth-hook.js';
import { can, canRunCommands } from '../http/authz.js';
import type { ResourceService } from '../resource/resource.service.js';
import type { Db } from '../store/db.js';

export const WHOAMI_PATH = '/api/v1/whoami';

const BASE_VERBS = ['list', 'get', 'create', 'update', 'delete'];
/** Verbs of routes beside the generic API that check `<plural>:<verb>` too. */
const EXTRA_VERBS: Record<string, string[]> = { registrationtokens: ['installer'], clusters: ['kubeconfig'] };

/** GET /api/v1/whoami: the caller and every `<plural>:<verb>` its role allows, so UIs hide what would be refused. */
export async function whoamiRoutes(app: FastifyInstance, deps: { db: Db; services: () => ResourceService[] }): Promise<void> {
  installAuth(app, deps.db);
  app.get(WHOAMI_PATH, async (req): Promise<Whoami> => {
    const { user, role } = req.caller!;
    const permissions: string[] = [];
    for (const svc of deps.services()) {
      for (const verb of [...BASE_VERBS, ...svc.info.verbs, ...(EXTRA_VERBS[svc.info.plural] ?? [])]) {
        const p = `${svc.info.plural}:${verb}`;
        if (can(role, p)) permissions.push(p);
      }
    }
    // The audit log is not a resource kind; its rule lives in audit/audit.routes.ts (admins and operators).
    if (role !== 'viewer') permissions.push('audit:list');
    // Running commands on devices (shells, command health checks, a hand-written spec.os): admins
    // always, operators granted hosts:remote-shell (authz.ts canRunCommands decides).
    if (await canRunCommands(deps.db, { user, role })) permissions.push('edgehosts:remote-shell');
    return { user, role, permissions };
  });
}
