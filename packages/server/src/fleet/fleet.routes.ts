import { FLEET_SUMMARY_PATH } from '@edgeplane/protocol';
import type { FastifyInstance } from 'fastify';
import { installAuth, requirePermission } from '../http/auth-hook.js';
import { can } from '../http/authz.js';
import type { Db } from '../store/db.js';
import { fleetSummary } from './fleet.service.js';

/**
 * GET /api/v1/fleet/summary (read-only): every site's health and counts and the versions cluster
 * nodes run, for the console's site map, fleet health grid and version breakdown. One request for
 * 10,000 sites instead of listing sites, hosts and clusters. Permission-checked like those lists:
 * sites and hosts must be listable; clusters are counted only for a caller who may list them.
 */
export async function fleetRoutes(app: FastifyInstance, deps: { db: Db }): Promise<void> {
  installAuth(app, deps.db);
  app.get(FLEET_SUMMARY_PATH, async (req) => {
    requirePermission(req, 'sites:list');
    const caller = requirePermission(req, 'edgehosts:list');
    return fleetSummary(deps.db, can(caller.role, 'clusters:list'));
  });
}
