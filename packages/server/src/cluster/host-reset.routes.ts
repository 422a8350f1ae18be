import { EdgeplaneError } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import type { ConnectionHub } from '../agent/connection-hub.js';
import { recordEvent } from '../event/event.service.js';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import type { Db } from '../store/db.js';
import { findHosts, writeHost } from './cluster.repository.js';
import { clusterOf, MANAGED_SPEC_KEYS, reportedFailedImages } from './host-claims.js';

/**
 * POST /api/v1/edgehosts/<name>/reset: wipes what the managers set up on a host that belongs to no
 * cluster (managed spec keys cleared, generation bumped; the agent resets its Kubernetes node and
 * returns its managers to idle). Identity and registration are kept; the host stays in the pool.
 * Refused with HostInCluster while a cluster owns it (remove it from the cluster instead).
 * Also POST /api/v1/edgehosts/<name>/retry (below).
 */
export async function hostResetRoutes(app: FastifyInstance, deps: { db: Db; hub: ConnectionHub }): Promise<void> {
  installAuth(app, deps.db);
  app.post<{ Params: { name: string } }>('/api/v1/edgehosts/:name/reset', async (req) => {
    const caller = requirePermission(req, 'edgehosts:update');
    const name = req.params.name;
    const generation = await deps.db.transaction().execute(async (trx) => {
      const [h] = await findHosts(trx, [name]);
      if (!h) throw new EdgeplaneError('NotFound', `edge host "${name}" not found`, { kind: 'EdgeHost', name });
      const owner = clusterOf(h);
      if (owner || h.state === 'in-use')
        throw new EdgeplaneError('HostInCluster', `host "${name}" belongs to cluster "${owner ?? '?'}"; remove it from the cluster instead`, {
          host: name,
          cluster: owner,
        });
      const spec = JSON.parse(h.spec) as Record<string, unknown>;
      for (const k of MANAGED_SPEC_KEYS) delete spec[k];
      // A host OS profile would only render spec.os again: the reset ends the assignment too.
      delete spec.osProfile;
      // A reset host starts clean: an image that fell back here is tried again when next desired.
      const bumpOsRetry = reportedFailedImages(h.status).length > 0;
      if (!(await writeHost(trx, name, Number(h.resource_version), { spec: JSON.stringify(spec), bumpGeneration: true, bumpOsRetry })))
        throw new EdgeplaneError('Conflict', `host "${name}" changed meanwhile; retry`, { host: name });
      await recordEvent(trx, {
        involvedObject: { kind: 'EdgeHost', name },
        type: 'Normal',
        reason: 'HostReset',
        message: `reset by ${caller.user}: managed state wiped, identity and registration kept`,
        source: 'server',
      });
      return Number(h.generation) + 1;
    });
    await deps.hub.pushSpec(name);
    req.log.info({ host: name, user: caller.user }, 'host reset');
    return { apiVersion: 'edgeplane.io/v1', kind: 'HostReset', host: name, generation };
  });

  /**
   * POST /api/v1/edgehosts/<name>/retry: the host tries again the OS images whose trial boot fell
   * back there (status.agent.managers.os.failedImages): os_retry goes up, so the attempt its agent
   * is sent differs from the one that failed. One request, one more attempt: nothing loops. Cluster
   * nodes included (that is where a failed image usually is). NoFailedImage when there is none.
   */
  app.post<{ Params: { name: string } }>('/api/v1/edgehosts/:name/retry', async (req) => {
    const caller = requirePermission(req, 'edgehosts:update');
    const name = req.params.name;
    const { generation, digests } = await deps.db.transaction().execute(async (trx) => {
      const [h] = await findHosts(trx, [name]);
      if (!h) throw new EdgeplaneError('NotFound', `edge host "${name}" not found`, { kind: 'EdgeHost', name });
      const failed = reportedFailedImages(h.status);
      if (failed.length === 0)
        throw new EdgeplaneError('NoFailedImage', `host "${name}" has no OS image whose trial boot fell back; there is nothing to retry`, { host: name });
      if (!(await writeHost(trx, name, Number(h.resource_version), { bumpGeneration: true, bumpOsRetry: true })))
        throw new EdgeplaneError('Conflict', `host "${name}" changed meanwhile; retry`, { host: name });
      const list = failed.map((f) => f.digest);
      await recordEvent(trx, {
        involvedObject: { kind: 'EdgeHost', name },
        type: 'Normal',
        reason: 'ImageRetryRequested',
        message: `${caller.user} asked the host to try ${list.join(', ')} again`,
        source: 'server',
      });
      return { generation: Number(h.generation) + 1, digests: list };
    });
    await deps.hub.pushSpec(name);
    req.log.info({ host: name, user: caller.user, digests }, 'host OS image retry');
    return { apiVersion: 'edgeplane.io/v1', kind: 'HostRetry', host: name, generation, images: digests };
  });
}
