import type { Executor } from '../store/db.js';

/**
 * Replica leases (table `replicas`) and the connectivity columns of `edge_hosts` the connection hub
 * writes under them. A host is online through one replica (`edge_hosts.replica`); only that replica
 * takes it offline, and any replica takes offline the hosts of a replica whose lease ran out.
 */

/** Inserts or renews this replica's lease (and the address its peers reach it at, once known). */
export async function renewReplica(db: Executor, id: string, startedAt: string, expiresAt: string, url?: string): Promise<void> {
  await db
    .insertInto('replicas')
    .values({ id, started_at: startedAt, expires_at: expiresAt, url: url ?? null })
    .onConflict((oc) => oc.column('id').doUpdateSet(url ? { expires_at: expiresAt, url } : { expires_at: expiresAt }))
    .execute();
}

/** The replicas whose lease is live at `now`. */
export async function liveReplicaIds(db: Executor, now: string): Promise<string[]> {
  return (await db.selectFrom('replicas').select('id').where('expires_at', '>', now).execute()).map((r) => r.id);
}

/** The address of a replica whose lease is live at `now`; undefined for a dead or unknown one. */
export async function liveReplicaUrl(db: Executor, id: string, now: string): Promise<string | undefined> {
  const row = await db.selectFrom('replicas').select('url').where('id', '=', id).where('expires_at', '>', now).executeTakeFirst();
  return row?.url ?? undefined;
}

/** The live replica holding `host`'s agent channel, if any: its id and address. */
export async function hostReplica(db: Executor, host: string, now: string): Promise<{ id: string; url: string } | undefined> {
  const row = await db
    .selectFrom('edge_hosts')
    .innerJoin('replicas', 'replicas.id', 'edge_hosts.replica')
    .select(['replicas.id', 'replicas.url'])
    .where('edge_hosts.name', '=', host)
    .where('edge_hosts.connectivity', '=', 'online')
    .where('replicas.expires_at', '>', now)
    .executeTakeFirst();
  return row?.url ? { id: row.id, url: row.url } : undefined;
}

/**
 * Ends this replica's lease at `expiresAt` (a clean stop: a short grace for the agents it handed off)
 * and forgets leases that ran out long ago.
 */
export async function retireReplica(db: Executor, id: string, expiresAt: string, forgetBefore: string): Promise<void> {
  await db.updateTable('replicas').set({ expires_at: expiresAt }).where('id', '=', id).where('expires_at', '>', expiresAt).execute();
  await db.deleteFrom('replicas').where('expires_at', '<', forgetBefore).execute();
}

/**
 * Marks hosts online through `replica`. Returns the hosts that were offline (a real transition, which
 * gets an event); a host already online through another replica (its agent moved) is taken over
 * without a new version, since nothing an API reader sees changed.
 */
export async function setOnlineVia(db: Executor, names: string[], replica: string, at: string): Promise<string[]> {
  if (names.length === 0) return [];
  const changed = await db
    .updateTable('edge_hosts')
    .set((eb) => ({ connectivity: 'online', replica, last_seen: at, resource_version: eb('resource_version', '+', 1) }))
    .where('name', 'in', names)
    .where('connectivity', '!=', 'online')
    .returning('name')
    .execute();
  await db
    .updateTable('edge_hosts')
    .set({ replica, last_seen: at })
    .where('name', 'in', names)
    .where((eb) => eb.or([eb('replica', 'is', null), eb('replica', '!=', replica)]))
    .execute();
  return changed.map((r) => r.name);
}

/** Marks hosts offline, but only those still online through `replica`: an agent that moved on stays online. */
export async function setOfflineVia(db: Executor, names: string[], replica: string, at: string): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db
    .updateTable('edge_hosts')
    .set((eb) => ({ connectivity: 'offline', replica: null, last_seen: at, resource_version: eb('resource_version', '+', 1) }))
    .where('name', 'in', names)
    .where('connectivity', '=', 'online')
    .where('replica', '=', replica)
    .returning('name')
    .execute();
  return rows.map((r) => r.name);
}

/** Marks offline every host online through no live replica (its replica's lease ran out, or none is named). */
export async function setOfflineOfDeadReplicas(db: Executor, now: string, limit = 500): Promise<string[]> {
  const live = db.selectFrom('replicas').select('id').where('expires_at', '>', now);
  const stale = await db
    .selectFrom('edge_hosts')
    .select('name')
    .where('connectivity', '=', 'online')
    .where((eb) => eb.or([eb('replica', 'is', null), eb('replica', 'not in', live)]))
    .limit(limit)
    .execute();
  if (stale.length === 0) return [];
  const rows = await db
    .updateTable('edge_hosts')
    .set((eb) => ({ connectivity: 'offline', replica: null, resource_version: eb('resource_version', '+', 1) }))
    .where(
      'name',
      'in',
      stale.map((r) => r.name),
    )
    .where('connectivity', '=', 'online')
    .where((eb) => eb.or([eb('replica', 'is', null), eb('replica', 'not in', live)]))
    .returning('name')
    .execute();
  return rows.map((r) => r.name);
}
