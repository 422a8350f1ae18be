import type { Executor } from '../store/db.js';

export async function findHostByDeviceUid(db: Executor, deviceUid: string) {
  return db.selectFrom('edge_hosts').selectAll().where('device_uid', '=', deviceUid).executeTakeFirst();
}

export async function findHostKeys(db: Executor, name: string) {
  const row = await db
    .selectFrom('edge_hosts')
    .select(['name', 'public_key', 'pending_public_key', 'state', 'spec'])
    .where('name', '=', name)
    .executeTakeFirst();
  if (!row) return undefined;
  const { spec, ...keys } = row;
  return { ...keys, denied: (JSON.parse(spec) as { denied?: boolean }).denied === true };
}

/** findHostKeys for many hosts at once, with each spec's generation (a resync of every agent a replica holds). */
export async function findHostsKeys(db: Executor, names: string[]) {
  if (names.length === 0) return [];
  const rows = await db
    .selectFrom('edge_hosts')
    .select(['name', 'public_key', 'pending_public_key', 'state', 'spec', 'generation'])
    .where('name', 'in', names)
    .execute();
  return rows.map((row) => ({ ...row, generation: Number(row.generation), denied: (JSON.parse(row.spec) as { denied?: boolean }).denied === true }));
}

/**
 * Connectivity changes are rare and shown to users, so they bump resource_version. Returns the hosts
 * whose connectivity really changed (both SQLite and PostgreSQL support RETURNING).
 */
export async function setConnectivity(db: Executor, names: string[], connectivity: 'online' | 'offline', at: string): Promise<string[]> {
  if (names.length === 0) return [];
  const rows = await db
    .updateTable('edge_hosts')
    .set((eb) => ({ connectivity, last_seen: at, resource_version: eb('resource_version', '+', 1) }))
    .where('name', 'in', names)
    .where('connectivity', '!=', connectivity)
    .returning('name')
    .execute();
  return rows.map((r) => r.name);
}

/** Batched last-seen flush: no resource_version bump, it is a heartbeat, not a change. */
export async function setLastSeen(db: Executor, names: string[], at: string): Promise<void> {
  if (names.length === 0) return;
  await db.updateTable('edge_hosts').set({ last_seen: at }).where('name', 'in', names).execute();
}

/** At start-up no agent is connected to this process yet. */
export async function markAllOffline(db: Executor): Promise<number> {
  const r = await db
    .updateTable('edge_hosts')
    .set((eb) => ({ connectivity: 'offline', resource_version: eb('resource_version', '+', 1) }))
    .where('connectivity', '=', 'online')
    .executeTakeFirst();
  return Number(r.numUpdatedRows);
}

/** Hosts carrying annotation `key` (annotations are a JSON object in text: the quoted key is matched). */
export async function listHostsWithAnnotation(db: Executor, key: string) {
  return db
    .selectFrom('edge_hosts')
    .selectAll()
    .where('annotations', 'like', `%${JSON.stringify(key)}:%`)
    .orderBy('name')
    .execute();
}
