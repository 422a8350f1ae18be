import { CLUSTER_ACTIONS, type ClusterAction, ClusterInput, ClusterSpec, EdgeplaneError, type UpgradeState } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { recordEvent } from '../../event/event.service.js';
import { installAuth, requirePermission } from '../../http/auth-hook.js';
import { findByName } from '../../resource/resource.repository.js';
import type { Db } from '../../store/db.js';
import type { ClusterController } from '../cluster.controller.js';
import { bumpOsRetry } from '../cluster.repository.js';
import { ACTIVE_STATES, key, WINDOW_STEPS } from './upgrade.engine.js';
import { deleteSteps, latestUpgrade, setUpgradeState, upgradeSteps } from './upgrade.repository.js';
import { planClusterChange } from './upgrade-plan.js';

const PAST: Record<ClusterAction, { reason: string; verb: string }> = {
  pause: { reason: 'UpgradePaused', verb: 'paused' },
  resume: { reason: 'UpgradeResumed', verb: 'resumed' },
  cancel: { reason: 'UpgradeCancelled', verb: 'cancelled' },
  retry: { reason: 'UpgradeRetried', verb: 'retried' },
};

function validation(err: { issues: { path: PropertyKey[]; message: string }[] }): EdgeplaneError {
  const issues = err.issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
  return new EdgeplaneError('ValidationFailed', `invalid cluster: ${issues.map((i) => `${i.path}: ${i.message}`).join('; ')}`, { issues });
}

/**
 * Day-2 cluster endpoints: POST /api/v1/clusters/<name>/plan (dry run of a changed cluster: what
 * each node would go through) and POST /api/v1/clusters/<name>/{pause,resume,cancel,retry} for its
 * upgrade. Every action is a guarded state change of the upgrade row (refused with InvalidState
 * from any other state), recorded as an event, and nudges the controller.
 */
export async function upgradeRoutes(app: FastifyInstance, deps: { db: Db; controller?: ClusterController }): Promise<void> {
  installAuth(app, deps.db);
  const cluster = async (name: string) => {
    const row = await findByName(deps.db, 'clusters', name);
    if (!row) throw new EdgeplaneError('NotFound', `cluster "${name}" not found`, { kind: 'Cluster', name });
    return row;
  };

  app.post<{ Params: { name: string } }>('/api/v1/clusters/:name/plan', async (req) => {
    requirePermission(req, 'clusters:get');
    const row = await cluster(req.params.name);
    const body = (req.body ?? {}) as Record<string, unknown>;
    // A full manifest (as for apply) or just its spec.
    const parsed =
      body.spec !== undefined ? ClusterInput.safeParse({ metadata: { name: req.params.name }, ...body }) : { success: true as const, data: undefined };
    if (!parsed.success) throw validation(parsed.error);
    const spec = ClusterSpec.safeParse(body.spec ?? body);
    if (!spec.success) throw validation(spec.error);
    return planClusterChange(deps.db, row, spec.data);
  });

  for (const action of CLUSTER_ACTIONS) {
    app.post<{ Params: { name: string } }>(`/api/v1/clusters/:name/${action}`, async (req) => {
      const caller = requirePermission(req, 'clusters:update');
      const row = await cluster(req.params.name);
      const result = await deps.db.transaction().execute(async (trx) => {
        const u = await latestUpgrade(trx, row.name);
        if (!u) throw new EdgeplaneError('InvalidState', `cluster "${row.name}" has no upgrade to ${action}`, { cluster: row.name });
        const staged = async () => {
          const steps = await upgradeSteps(trx, row.name, u.id);
          return u.nodes.every((n) => n.change !== 'repave' || steps.has(key(u, n.host, 'staged'))) ? 'Rolling' : 'Staging';
        };
        const moves: Record<ClusterAction, { from: UpgradeState[]; to: () => Promise<UpgradeState> }> = {
          pause: { from: ['Staging', 'Rolling'], to: async () => 'Paused' },
          resume: { from: ['Paused'], to: staged },
          cancel: { from: ACTIVE_STATES, to: async () => 'Cancelled' },
          retry: { from: ['Failed'], to: staged },
        };
        const move = moves[action as ClusterAction];
        const to = await move.to();
        if (action === 'retry' && u.failedHost) {
          const host = u.failedHost;
          await deleteSteps(
            trx,
            row.name,
            ['started', ...WINDOW_STEPS].map((s) => key(u, host, s)),
          );
          // The node remembers the image that fell back (OsStatus.failedImages): a retry is a new attempt at it.
          await bumpOsRetry(trx, u.failedHost);
        }
        const ok = await setUpgradeState(trx, row.name, u.id, move.from, to, action === 'retry' ? { failedHost: null, message: null } : {});
        if (!ok)
          throw new EdgeplaneError('InvalidState', `upgrade ${u.id} of cluster "${row.name}" is ${u.state}; cannot ${action} it`, {
            cluster: row.name,
            state: u.state,
          });
        await recordEvent(trx, {
          involvedObject: { kind: 'Cluster', name: row.name },
          type: 'Normal',
          reason: PAST[action].reason,
          message: `${caller.user} ${PAST[action].verb} upgrade ${u.id} (to revision ${u.toRevision})`,
          source: 'server',
        });
        return { id: u.id, state: to };
      });
      req.log.info({ cluster: row.name, action, upgrade: result.id, user: caller.user }, 'cluster upgrade action');
      deps.controller?.nudge();
      return { apiVersion: 'edgeplane.io/v1', kind: 'UpgradeAction', cluster: row.name, action, upgrade: result.id, state: result.state };
    });
  }
}
