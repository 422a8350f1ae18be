import { ROLLOUT_DONE } from '@edgeplane/protocol';
import type { Executor } from '../store/db.js';
import { announceWrite } from '../watch/change-bus.js';

/** Rollouts that may still act, oldest first (creation order decides who gets a contested cluster). */
export async function listUnfinishedRollouts(db: Executor) {
  return db
    .selectFrom('rollouts')
    .selectAll()
    .where('phase', 'not in', [...ROLLOUT_DONE])
    .orderBy('created_at')
    .orderBy('name')
    .execute();
}
export type RolloutRow = Awaited<ReturnType<typeof listUnfinishedRollouts>>[number];

/** Writes status (and the phase column) only if nobody wrote the row since it was read. */
export async function writeRolloutStatus(db: Executor, name: string, expectedVersion: number, status: { phase?: string }): Promise<boolean> {
  const r = await db
    .updateTable('rollouts')
    .set((eb) => ({
      status: JSON.stringify(status),
      phase: status.phase ?? 'Pending',
      resource_version: eb('resource_version', '+', 1),
      updated_at: new Date().toISOString(),
    }))
    .where('name', '=', name)
    .where('resource_version', '=', expectedVersion)
    .executeTakeFirst();
  const ok = Number(r.numUpdatedRows) > 0;
  if (ok) announceWrite(db, { kind: 'Rollout', name, type: 'MODIFIED' });
  return ok;
}

export async function listClusters(db: Executor) {
  return db.selectFrom('clusters').select(['name', 'labels', 'annotations', 'spec', 'status', 'generation', 'resource_version']).orderBy('name').execute();
}
export type RolloutClusterRow = Awaited<ReturnType<typeof listClusters>>[number];

export async function listSites(db: Executor) {
  return db.selectFrom('sites').select(['name', 'labels', 'spec']).execute();
}

/** `spec.site` of the given hosts (a cluster without its own site takes its first node's). */
export async function hostSites(db: Executor, names: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (let i = 0; i < names.length; i += 500) {
    const rows = await db
      .selectFrom('edge_hosts')
      .select(['name', 'spec'])
      .where('name', 'in', names.slice(i, i + 500))
      .execute();
    for (const r of rows) {
      const site = (JSON.parse(r.spec) as { site?: string }).site;
      if (site) out.set(r.name, site);
    }
  }
  return out;
}

/**
 * Writes a cluster's spec and annotations, bumping generation when the spec changed, only if the
 * row is still at `expectedVersion`. The cluster controller picks the change up on its next pass.
 */
export async function writeClusterSpec(db: Executor, name: string, expectedVersion: number, values: { spec?: string; annotations?: string }): Promise<boolean> {
  const r = await db
    .updateTable('clusters')
    .set((eb) => ({
      ...values,
      ...(values.spec !== undefined ? { generation: eb('generation', '+', 1) } : {}),
      resource_version: eb('resource_version', '+', 1),
      updated_at: new Date().toISOString(),
    }))
    .where('name', '=', name)
    .where('resource_version', '=', expectedVersion)
    .executeTakeFirst();
  const ok = Number(r.numUpdatedRows) > 0;
  if (ok) announceWrite(db, { kind: 'Cluster', name, type: 'MODIFIED' });
  return ok;
}
