import type { Executor } from '../store/db.js';
import { announceWrite } from '../watch/change-bus.js';

// ---- steps: one row per step taken; the primary key makes each step happen once ----

/** Records a step; false when it was already recorded (by this or an earlier run). */
export async function insertStep(db: Executor, cluster: string, step: string, host: string | null = null): Promise<boolean> {
  const r = await db
    .insertInto('cluster_steps')
    .values({ cluster, step, host, created_at: new Date().toISOString() })
    .onConflict((oc) => oc.columns(['cluster', 'step']).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0) > 0;
}

export async function listSteps(db: Executor, cluster: string): Promise<Map<string, string | null>> {
  const rows = await db.selectFrom('cluster_steps').select(['step', 'host']).where('cluster', '=', cluster).execute();
  return new Map(rows.map((r) => [r.step, r.host]));
}

// ---- secrets: ciphertext only; sealing is the caller's (SecretBox) ----

export async function findSecret(db: Executor, cluster: string, name: string): Promise<string | undefined> {
  const r = await db.selectFrom('cluster_secrets').select('ciphertext').where('cluster', '=', cluster).where('name', '=', name).executeTakeFirst();
  return r?.ciphertext;
}

/** Inserts unless present; returns what is stored afterwards (the first writer wins). */
export async function insertSecretIfAbsent(db: Executor, cluster: string, name: string, ciphertext: string): Promise<string> {
  await db
    .insertInto('cluster_secrets')
    .values({ cluster, name, ciphertext, updated_at: new Date().toISOString() })
    .onConflict((oc) => oc.columns(['cluster', 'name']).doNothing())
    .execute();
  return (await findSecret(db, cluster, name))!;
}

export async function upsertSecret(db: Executor, cluster: string, name: string, ciphertext: string): Promise<void> {
  const updated_at = new Date().toISOString();
  await db
    .insertInto('cluster_secrets')
    .values({ cluster, name, ciphertext, updated_at })
    .onConflict((oc) => oc.columns(['cluster', 'name']).doUpdateSet({ ciphertext, updated_at }))
    .execute();
}

export async function deleteClusterRecords(db: Executor, cluster: string): Promise<void> {
  await db.deleteFrom('cluster_secrets').where('cluster', '=', cluster).execute();
  await db.deleteFrom('cluster_steps').where('cluster', '=', cluster).execute();
  await db.deleteFrom('cluster_upgrades').where('cluster', '=', cluster).execute();
}

// ---- hosts as the controller sees them ----

export async function findHosts(db: Executor, names: string[]) {
  if (names.length === 0) return [];
  return db.selectFrom('edge_hosts').selectAll().where('name', 'in', names).execute();
}

export type HostRow = Awaited<ReturnType<typeof findHosts>>[number];

/**
 * Writes a host's spec, annotations and state, only if the row is still at `resourceVersion`
 * (someone else changed it in between: the caller re-reads and retries on its next pass).
 */
export async function writeHost(
  db: Executor,
  name: string,
  resourceVersion: number,
  values: { spec?: string; annotations?: string; state?: string; bumpGeneration?: boolean; bumpOsRetry?: boolean },
): Promise<boolean> {
  const { bumpGeneration, bumpOsRetry, ...cols } = values;
  const r = await db
    .updateTable('edge_hosts')
    .set((eb) => ({
      ...cols,
      ...(bumpGeneration ? { generation: eb('generation', '+', 1) } : {}),
      // See bumpOsRetry.
      ...(bumpOsRetry ? { os_retry: eb('os_retry', '+', 1) } : {}),
      resource_version: eb('resource_version', '+', 1),
      updated_at: new Date().toISOString(),
    }))
    .where('name', '=', name)
    .where('resource_version', '=', resourceVersion)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/**
 * An operator's request that the host try OS images again (retry, reset, joining a cluster): the
 * counter goes into spec.os.retry when the spec is sent, and generation bumps so the agent takes it.
 */
export async function bumpOsRetry(db: Executor, name: string): Promise<void> {
  await db
    .updateTable('edge_hosts')
    .set((eb) => ({
      os_retry: eb('os_retry', '+', 1),
      generation: eb('generation', '+', 1),
      resource_version: eb('resource_version', '+', 1),
      updated_at: new Date().toISOString(),
    }))
    .where('name', '=', name)
    .execute();
}

export async function listClusterRows(db: Executor) {
  return db.selectFrom('clusters').selectAll().orderBy('name').execute();
}

/** Status writes by the controller: no generation bump, it is an observation. */
export async function writeClusterStatus(db: Executor, name: string, status: string): Promise<void> {
  await db
    .updateTable('clusters')
    .set((eb) => ({ status, resource_version: eb('resource_version', '+', 1), updated_at: new Date().toISOString() }))
    .where('name', '=', name)
    .execute();
  // Watchers (the console) see phase and node changes live; read back after the caller commits.
  announceWrite(db, { kind: 'Cluster', name, type: 'MODIFIED' });
}
