import { EdgeplaneError, INT32_MAX } from '@edgeplane/protocol';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import { can } from '../http/authz.js';
import { findByName } from '../resource/resource.repository.js';
import type { Db } from '../store/db.js';
import { getRevision, getRevisions } from './cluster-profile.service.js';
import type { ImageResolver } from './oci-resolver.js';

/** GET /api/v1/clusterprofiles/<name>/revisions[/<n>]: the immutable revisions of a profile. */
export async function clusterProfileRoutes(app: FastifyInstance, deps: { db: Db }): Promise<void> {
  installAuth(app, deps.db);
  app.get<{ Params: { name: string } }>('/api/v1/clusterprofiles/:name/revisions', async (req) => {
    requirePermission(req, 'clusterprofiles:get');
    const items = await getRevisions(deps.db, req.params.name);
    return { apiVersion: 'edgeplane.io/v1', kind: 'ClusterProfileRevisionList', items, metadata: {} };
  });
  app.get<{ Params: { name: string; revision: string } }>('/api/v1/clusterprofiles/:name/revisions/:revision', async (req) => {
    requirePermission(req, 'clusterprofiles:get');
    const n = Number(req.params.revision);
    // Bounded like the integer column it is compared with, so both stores answer alike.
    if (!Number.isInteger(n) || n < 1 || n > INT32_MAX)
      throw new EdgeplaneError('ValidationFailed', `revision must be an integer from 1 to ${INT32_MAX}`, {
        issues: [{ path: 'revision', message: `expected an integer from 1 to ${INT32_MAX}` }],
      });
    return getRevision(deps.db, req.params.name, n);
  });
}

const PROFILE_WRITE = /^\/api\/v1\/clusterprofiles(?:\/([^/?]+))?(?:\?.*)?$/;

/**
 * Resolves the OS image digest of a profile write before the generic API opens its store
 * transaction, so a slow or unreachable registry never holds the store (on SQLite: the whole
 * server) for the length of a network timeout. The write itself resolves again from the short
 * cache (failures are cached briefly too), and reports any failure with its code; errors here are ignored.
 */
export function prefetchProfileDigests(db: Db, images: ImageResolver) {
  return async (req: FastifyRequest): Promise<void> => {
    if (!['POST', 'PUT', 'PATCH'].includes(req.method)) return;
    const m = req.url.match(PROFILE_WRITE);
    if (!m || !req.caller) return;
    if (!can(req.caller.role, `clusterprofiles:${req.method === 'POST' ? 'create' : 'update'}`)) return;
    if ((req.method === 'POST') !== (m[1] === undefined)) return;
    type Ref = { image?: unknown; insecure?: unknown };
    const body = req.body as { spec?: { layers?: { os?: Ref; kubernetes?: { artifact?: Ref } } } } | undefined;
    let os = body?.spec?.layers?.os;
    let artifact = body?.spec?.layers?.kubernetes?.artifact;
    if (req.method === 'PATCH' && m[1]) {
      const row = await findByName(db, 'cluster_profiles', decodeURIComponent(m[1])).catch(() => undefined);
      const stored = row ? (JSON.parse(row.spec).layers as { os?: Ref; kubernetes?: { artifact?: Ref } } | undefined) : undefined;
      os = { ...stored?.os, ...os };
      artifact = { ...stored?.kubernetes?.artifact, ...artifact };
    }
    // The OS image and the distribution artifact (agent mode) are resolved alike.
    for (const ref of [os, artifact])
      if (typeof ref?.image === 'string') await images.resolveImage(ref.image, { insecure: ref.insecure === true }).catch(() => undefined);
  };
}
