import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { can } from '../http/authz.js';
import { findByName } from '../resource/resource.repository.js';
import type { Db } from '../store/db.js';
import type { ResourceTableName } from '../store/schema.js';
import { appendAudit } from './audit.service.js';

/** What a successful call tells its rule. `answer` is the parsed JSON answer (undefined for YAML, ISO). */
interface Call {
  req: FastifyRequest;
  reply: FastifyReply;
  name?: string;
  answer: () => Answer | undefined;
  /** The resource's spec as it was before a PUT/PATCH (see SPEC_DIFF). */
  before?: Record<string, unknown>;
}
type Answer = { metadata?: { name?: string }; spec?: Record<string, unknown>; status?: Record<string, unknown> } & Record<string, unknown>;
/** The entry a call makes; `target` defaults to `<plural>/<name>`. Undefined: nothing to record. */
type Entry = { action: string; target?: string; details?: Record<string, unknown> };
type Rule = string | ((call: Call) => Entry | undefined);

/** Top-level spec keys whose value differs (values themselves are never recorded: they may hold secrets). */
function changedKeys(before: Record<string, unknown> | undefined, after: Record<string, unknown> | undefined): string[] {
  const a = before ?? {};
  const b = after ?? {};
  return [...new Set([...Object.keys(a), ...Object.keys(b)])].filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k])).sort();
}

/** For users, the role and permissions the change left them with (from the answer, which never holds secrets). */
function userDetails(action: string): Rule {
  return (c) => {
    const spec = c.answer()?.spec as { role?: string; permissions?: string[]; disabled?: boolean } | undefined;
    return { action, details: spec ? { userRole: spec.role, permissions: spec.permissions ?? [], disabled: spec.disabled ?? false } : {} };
  };
}

/** A spec write: which keys changed; putting a host on the deny-list (or off it) is its own action. */
function specUpdate(kind: string): Rule {
  return (c) => {
    const after = c.answer()?.spec;
    const changed = changedKeys(c.before, after);
    if (kind === 'edgehost' && changed.includes('denied'))
      return { action: after?.denied === true ? 'edgehost.deny' : 'edgehost.undeny', details: { changed } };
    return { action: `${kind}.update`, details: { changed } };
  };
}

/** The revision a profile write pinned, and its digest. */
const profileWrite =
  (action: string): Rule =>
  (c) => {
    const s = c.answer()?.status;
    return { action, details: { revision: s?.latestRevision, osImageDigest: s?.osImageDigest } };
  };

/**
 * Calls that go to the audit log: `<METHOD> <plural>[/<verb>]` of the /api/v1 path (generic API and
 * resource-specific routes alike) -> the action, or a rule that names it and its details. Remote
 * sessions record their own start and end (in their transaction), so they are not listed here.
 */
const AUDITED: Record<string, Rule> = {
  'POST registrationtokens': 'registrationtoken.create',
  'POST registrationtokens/revoke': 'registrationtoken.revoke',
  'DELETE registrationtokens': 'registrationtoken.delete',
  // The installer issues a new secret only on {"rotate": true}; an installer for a secret the caller already has is no event.
  'POST registrationtokens/installer': (c) =>
    c.reply.getHeader('x-edgeplane-token-rotated') === 'true' ? { action: 'registrationtoken.rotate', details: { format: formatOf(c.req) } } : undefined,
  'POST apitokens': 'apitoken.create',
  'DELETE apitokens': 'apitoken.revoke',
  // A pre-registration, or a deny-list entry for a device UID not seen yet.
  'POST edgehosts': (c) => ({ action: c.answer()?.spec?.denied === true ? 'edgehost.deny' : 'edgehost.preregister' }),
  'PUT edgehosts': specUpdate('edgehost'),
  'PATCH edgehosts': specUpdate('edgehost'),
  'POST edgehosts/approve': 'edgehost.approve',
  'POST edgehosts/reject': 'edgehost.reject',
  // The key the host is now bound to: its fingerprint, from the answer.
  'POST edgehosts/approve-key': (c) => ({
    action: 'edgehost.approve-key',
    details: { keyFingerprint: c.answer()?.status?.keyFingerprint },
  }),
  'POST edgehosts/reject-key': 'edgehost.reject-key',
  'POST edgehosts/reset': 'edgehost.reset',
  'POST edgehosts/retry': 'edgehost.retry',
  // A forced delete of a cluster node is accepted (202) and finishes once the node left its cluster.
  'DELETE edgehosts': (c) =>
    c.reply.statusCode === 202
      ? { action: 'edgehost.delete', details: { force: true, removal: 'accepted' } }
      : { action: 'edgehost.delete', ...((c.req.query as { force?: string } | undefined)?.force === 'true' ? { details: { force: true } } : {}) },
  'POST pairings/claim': (c) => {
    const a = c.answer() as { hostName?: string; deviceUid?: string; project?: string; site?: string } | undefined;
    return { action: 'pairing.claim', target: `edgehosts/${a?.hostName ?? '?'}`, details: { deviceUid: a?.deviceUid, project: a?.project, site: a?.site } };
  },
  // Users carry roles and extra permissions (hosts:remote-shell): who granted what is security-relevant.
  'POST users': userDetails('user.create'),
  'PUT users': userDetails('user.update'),
  'PATCH users': userDetails('user.update'),
  'DELETE users': 'user.delete',
  'POST clusters': 'cluster.create',
  'PUT clusters': specUpdate('cluster'),
  'PATCH clusters': specUpdate('cluster'),
  'DELETE clusters': 'cluster.delete',
  'POST clusters/pause': 'cluster.pause',
  'POST clusters/resume': 'cluster.resume',
  'POST clusters/cancel': 'cluster.cancel',
  'POST clusters/retry': 'cluster.retry',
  // The admin kubeconfig holds cluster credentials: every read is recorded.
  'GET clusters/kubeconfig': 'cluster.kubeconfig',
  'POST clusterprofiles': profileWrite('clusterprofile.create'),
  'PUT clusterprofiles': profileWrite('clusterprofile.update'),
  'PATCH clusterprofiles': profileWrite('clusterprofile.update'),
  'DELETE clusterprofiles': 'clusterprofile.delete',
  'POST rollouts': 'rollout.create',
  'DELETE rollouts': 'rollout.delete',
  'POST rollouts/pause': 'rollout.pause',
  'POST rollouts/resume': 'rollout.resume',
  'POST rollouts/abort': 'rollout.abort',
  'POST rollouts/approve': 'rollout.approve',
};

/** PUT/PATCH of these read the spec first, so the entry can say which keys the write changed. */
const SPEC_DIFF: Record<string, ResourceTableName> = { edgehosts: 'edge_hosts', clusters: 'clusters' };

function formatOf(req: FastifyRequest): string {
  const f = (req.query as { format?: unknown } | undefined)?.format;
  return typeof f === 'string' ? f : 'user-data';
}

/** `<plural>`, `<name>`, `<verb>` from the matched route's pattern: `/api/v1/:plural/:name/:verb`, `/api/v1/clusters/:name/kubeconfig`... */
function routeParts(req: FastifyRequest): { plural: string; name?: string; verb?: string } | undefined {
  const pattern = req.routeOptions.url;
  if (!pattern?.startsWith('/api/v1/')) return undefined;
  const params = (req.params ?? {}) as Record<string, string | undefined>;
  const segs = pattern
    .slice('/api/v1/'.length)
    .split('/')
    .map((s) => (s.startsWith(':') ? params[s.slice(1)] : s));
  if (segs.length > 3 || segs.some((s) => s === undefined)) return undefined;
  const [plural, name, verb] = segs as string[];
  return { plural, name, verb };
}

function ruleFor(req: FastifyRequest) {
  const parts = routeParts(req);
  if (!parts) return undefined;
  const rule = AUDITED[`${req.method} ${parts.plural}${parts.verb ? `/${parts.verb}` : ''}`];
  return rule ? { rule, ...parts } : undefined;
}

function parseAnswer(payload: unknown): Answer | undefined {
  if (typeof payload !== 'string' || !payload.startsWith('{')) return undefined;
  try {
    return JSON.parse(payload) as Answer;
  } catch {
    return undefined;
  }
}

/**
 * Records successful security-relevant API calls (the AUDITED table). Runs in onSend, before the
 * answer leaves, so a client that reads the audit log right after its call finds the entry; a
 * refused or failed call (status 300 and up) records nothing. Secrets are never recorded: only the
 * target, and details picked field by field (never an answer or a spec value as a whole).
 */
export function installAuditHooks(app: FastifyInstance, db: Db): void {
  // Per server instance: specs read before a write, for the request that writes.
  const before = new WeakMap<FastifyRequest, Record<string, unknown>>();

  app.addHook('preHandler', async (req) => {
    if (req.method !== 'PUT' && req.method !== 'PATCH') return;
    const parts = routeParts(req);
    const table = parts && !parts.verb && parts.name ? SPEC_DIFF[parts.plural] : undefined;
    if (!table || !req.caller || !can(req.caller.role, `${parts!.plural}:update`)) return;
    // Read outside the write's transaction: a concurrent write in between may show up in this diff.
    const row = await findByName(db, table, parts!.name!).catch(() => undefined);
    if (row) before.set(req, JSON.parse(row.spec) as Record<string, unknown>);
  });

  app.addHook('onSend', async (req, reply, payload) => {
    if (reply.statusCode >= 300 || !req.caller) return payload;
    const found = ruleFor(req);
    if (!found) return payload;
    try {
      let parsed: Answer | undefined | null = null;
      const answer = () => {
        if (parsed === null) parsed = parseAnswer(payload);
        return parsed;
      };
      const entry: Entry | undefined =
        typeof found.rule === 'string' ? { action: found.rule } : found.rule({ req, reply, name: found.name, answer, before: before.get(req) });
      if (!entry) return payload;
      const name = found.name ?? answer()?.metadata?.name ?? (req.body as { metadata?: { name?: unknown } } | undefined)?.metadata?.name;
      const target = entry.target ?? `${found.plural}/${typeof name === 'string' ? name : '?'}`;
      await appendAudit(db, { actor: req.caller.user, action: entry.action, target, details: { role: req.caller.role, ...entry.details } });
    } catch (err) {
      req.log.error({ err, route: req.routeOptions.url }, 'cannot write audit entry');
    }
    return payload;
  });
}
