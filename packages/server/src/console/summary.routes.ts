import type { FastifyInstance } from 'fastify';
import { events } from '../event/event.service.js';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import { can } from '../http/authz.js';
import type { ResourceRow } from '../resource/resource.repository.js';
import type { Db } from '../store/db.js';

export const SUMMARY_PATH = '/api/v1/summary';

/**
 * GET /api/v1/summary: what the console's overview shows, counted in SQL so it stays one cheap request
 * with 10,000 hosts (listing them all would not be). Later kinds (clusters by phase) add fields here.
 */
export async function summaryRoutes(app: FastifyInstance, deps: { db: Db }): Promise<void> {
  installAuth(app, deps.db);
  app.get(SUMMARY_PATH, async (req) => {
    requirePermission(req, 'edgehosts:list');
    const byState = await deps.db
      .selectFrom('edge_hosts')
      .select(['state', 'connectivity', (eb) => eb.fn.countAll<number>().as('n')])
      .groupBy(['state', 'connectivity'])
      .execute();
    const hosts = { total: 0, byState: {} as Record<string, number>, byConnectivity: {} as Record<string, number> };
    for (const r of byState) {
      const n = Number(r.n);
      hosts.total += n;
      hosts.byState[r.state] = (hosts.byState[r.state] ?? 0) + n;
      hosts.byConnectivity[r.connectivity] = (hosts.byConnectivity[r.connectivity] ?? 0) + n;
    }
    let recentEvents: unknown[] = [];
    try {
      requirePermission(req, 'events:list');
      const rows = await deps.db.selectFrom('events').selectAll().orderBy('event_time', 'desc').orderBy('name', 'desc').limit(20).execute();
      recentEvents = rows.map((r) => events.toObject(r as unknown as ResourceRow));
    } catch {
      // A role without events:list still sees the counts.
    }
    // Clusters are few (one per site at most); their phase lives in the status JSON.
    let clusters: { total: number; byPhase: Record<string, number> } | undefined;
    if (can(req.caller!.role, 'clusters:list')) {
      clusters = { total: 0, byPhase: {} };
      for (const r of await deps.db.selectFrom('clusters').select('status').execute()) {
        const phase = String((JSON.parse(r.status) as { phase?: string }).phase ?? 'Pending');
        clusters.total++;
        clusters.byPhase[phase] = (clusters.byPhase[phase] ?? 0) + 1;
      }
    }
    return { hosts, clusters, recentEvents };
  });
}
