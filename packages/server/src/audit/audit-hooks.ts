import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Db } from '../store/db.js';
import { appendAudit } from './audit.service.js';

/** Generic API calls that go to the audit log: `<method> <plural>[/<verb>]` -> action name. */
const AUDITED: Record<string, string> = {
  'POST registrationtokens': 'registrationtoken.create',
  'POST registrationtokens/revoke': 'registrationtoken.revoke',
  'DELETE registrationtokens': 'registrationtoken.delete',
  'POST apitokens': 'apitoken.create',
  'DELETE apitokens': 'apitoken.revoke',
  'POST edgehosts/approve': 'edgehost.approve',
  'POST edgehosts/reject': 'edgehost.reject',
  'DELETE edgehosts': 'edgehost.delete',
  // Users carry roles and extra permissions (hosts:remote-shell): who granted what is security-relevant.
  'POST users': 'user.create',
  'PUT users': 'user.update',
  'PATCH users': 'user.update',
  'DELETE users': 'user.delete',
};

/** For users, the role and permissions the change left them with (from the answer, which never holds secrets). */
function resultDetails(action: string, payload: unknown): Record<string, unknown> {
  if (!action.startsWith('user.') || typeof payload !== 'string') return {};
  try {
    const spec = (JSON.parse(payload) as { spec?: { role?: string; permissions?: string[]; disabled?: boolean } }).spec;
    return spec ? { userRole: spec.role, permissions: spec.permissions ?? [], disabled: spec.disabled ?? false } : {};
  } catch {
    return {};
  }
}

function auditKey(req: FastifyRequest): { action: string; target: string } | undefined {
  const p = (req.params ?? {}) as { plural?: string; name?: string; verb?: string };
  if (!p.plural) return undefined;
  const action = AUDITED[`${req.method} ${p.plural}${p.verb ? `/${p.verb}` : ''}`];
  if (!action) return undefined;
  const name = p.name ?? (req.body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
  return { action, target: `${p.plural}/${typeof name === 'string' ? name : '?'}` };
}

/**
 * Records successful security-relevant calls of the generic resource API (token create/revoke, host
 * approve/reject/delete). Runs in onSend, before the answer leaves, so a client that reads the audit
 * log right after its call finds the entry. Secrets are never recorded: only the target name.
 */
export function installAuditHooks(app: FastifyInstance, db: Db): void {
  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode >= 300 || !req.caller) return payload;
    const key = auditKey(req);
    if (!key) return payload;
    try {
      const details = { role: req.caller.role, ...resultDetails(key.action, payload) };
      await appendAudit(db, { actor: req.caller.user, action: key.action, target: key.target, details });
    } catch (err) {
      req.log.error({ err, action: key.action }, 'cannot write audit entry');
    }
    return payload;
  });
}
