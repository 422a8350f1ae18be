import { API_VERSION, EdgeplaneError, findKind } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { ConnectionHub } from '../agent/connection-hub.js';
import { appendAudit } from '../audit/audit.service.js';
import { clusters } from '../cluster/cluster.service.js';
import { clusterProfiles } from '../cluster-profile/cluster-profile.service.js';
import { edgeHosts } from '../edgehost/edgehost.service.js';
import { events } from '../event/event.service.js';
import { projects } from '../project/project.service.js';
import { registrationTokens } from '../registration-token/registration-token.service.js';
import { remoteSessions } from '../remote-session/remote-session.service.js';
import type { AuditSink, HostChange, ImageDigests, RequestContext } from '../resource/context.js';
import type { ListQuery, Resource, ResourceService } from '../resource/resource.service.js';
import { rollouts } from '../rollout/rollout.service.js';
import { sites } from '../site/site.service.js';
import type { Db } from '../store/db.js';
import { apiTokens } from '../user/api-token.service.js';
import { users } from '../user/user.service.js';
import { ChangeBatch } from '../watch/change-bus.js';
import { installAuth } from './auth-hook.js';
import { authorize } from './authz.js';

/** Every kind served by the generic API; a new kind adds its service here. */
export const SERVICES: ResourceService[] = [
  edgeHosts,
  registrationTokens,
  projects,
  users,
  apiTokens,
  events,
  clusterProfiles,
  clusters,
  remoteSessions,
  sites,
  rollouts,
];

function serviceFor(plural: string): ResourceService {
  const info = findKind(plural);
  const svc = info && SERVICES.find((s) => s.info.kind === info.kind);
  if (!svc || svc.info.plural !== plural) {
    throw new EdgeplaneError('UnknownKind', `unknown resource type "${plural}"`, { known: SERVICES.map((s) => s.info.plural) });
  }
  return svc;
}

function parseListQuery(q: Record<string, string | undefined>): ListQuery {
  const out: ListQuery = { labelSelector: q.labelSelector, fieldSelector: q.fieldSelector, continue: q.continue };
  if (q.limit !== undefined) {
    const n = Number(q.limit);
    if (!Number.isInteger(n) || n < 1)
      throw new EdgeplaneError('ValidationFailed', 'limit must be a positive integer', { issues: [{ path: 'limit', message: 'expected a positive integer' }] });
    out.limit = n;
  }
  return out;
}

/** The generic resource API: /api/v1/<plural>[/<name>[/<verb>]]. */
export async function apiRoutes(
  app: FastifyInstance,
  deps: { db: Db; hub: ConnectionHub; images?: ImageDigests; vmServerUrl?: () => string | undefined },
): Promise<void> {
  const { db, hub } = deps;

  installAuth(app, db, ['/api/v1/openapi.json']);

  const ctx = (req: FastifyRequest): RequestContext => ({
    user: req.caller!.user,
    role: req.caller!.role,
    log: req.log,
    images: deps.images,
    vmServerUrl: deps.vmServerUrl?.(),
  });
  /** Runs a write and tells live connections (agents, watchers) about changes only after it committed. */
  async function withNotices<T>(req: FastifyRequest, fn: (c: RequestContext) => Promise<T>): Promise<T> {
    const notices: [string, HostChange][] = [];
    const changes = new ChangeBatch();
    const audits: Parameters<AuditSink['record']>[0][] = [];
    const result = await fn({ ...ctx(req), hosts: { hostChanged: (n, c) => notices.push([n, c]) }, changes, audit: { record: (e) => audits.push(e) } });
    for (const [n, c] of notices) hub.hostChanged(n, c);
    changes.publishTo(hub.changes);
    // After commit: an entry never describes a write that rolled back.
    for (const e of audits)
      await appendAudit(db, { actor: req.caller!.user, ...e, details: { role: req.caller!.role, ...e.details } }).catch((err) =>
        req.log.error({ err, action: e.action }, 'cannot write audit entry'),
      );
    return result;
  }
  // lastSeen is written in batches; a host connected to this process shows the live value.
  const live = (svc: ResourceService, obj: Resource): Resource => {
    if (svc !== edgeHosts) return obj;
    const seen = hub.lastSeen(obj.metadata.name);
    return seen ? { ...obj, status: { ...obj.status, lastSeen: seen.toISOString() } } : obj;
  };
  const check = (req: FastifyRequest, svc: ResourceService, verb: string) => authorize(req.caller!.role, `${svc.info.plural}:${verb}`);

  type P = { plural: string; name: string; verb: string };
  app.get<{ Params: P; Querystring: Record<string, string> }>('/api/v1/:plural', async (req) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'list');
    const page = await svc.list(db, parseListQuery(req.query));
    return {
      apiVersion: API_VERSION,
      kind: `${svc.info.kind}List`,
      items: page.items.map((o) => live(svc, o)),
      metadata: page.continue ? { continue: page.continue } : {},
    };
  });
  app.post<{ Params: P }>('/api/v1/:plural', async (req, reply) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'create');
    // In a transaction: a kind's create hook may write other rows too (revisions, host claims).
    const obj = await withNotices(req, (c) => db.transaction().execute((trx) => svc.create(trx, req.body, c)));
    return reply.status(201).send(obj);
  });
  app.get<{ Params: P }>('/api/v1/:plural/:name', async (req) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'get');
    return live(svc, await svc.get(db, req.params.name));
  });
  app.put<{ Params: P }>('/api/v1/:plural/:name', async (req) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'update');
    return withNotices(req, (c) => db.transaction().execute((trx) => svc.replace(trx, req.params.name, req.body, c)));
  });
  app.patch<{ Params: P }>('/api/v1/:plural/:name', async (req) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'update');
    return withNotices(req, (c) => db.transaction().execute((trx) => svc.patch(trx, req.params.name, req.body, c)));
  });
  app.delete<{ Params: P }>('/api/v1/:plural/:name', async (req) => {
    const svc = serviceFor(req.params.plural);
    check(req, svc, 'delete');
    return withNotices(req, (c) => db.transaction().execute((trx) => svc.delete(trx, req.params.name, c)));
  });
  app.post<{ Params: P }>('/api/v1/:plural/:name/:verb', async (req) => {
    const svc = serviceFor(req.params.plural);
    // An unknown verb is NotFound for every role, before the role check: `*:*` must not make
    // `valueOf` or `constructor` an allowed action.
    svc.requireAction(req.params.verb);
    check(req, svc, req.params.verb);
    return withNotices(req, (c) => db.transaction().execute((trx) => svc.action(trx, req.params.name, req.params.verb, c, req.body)));
  });
}
