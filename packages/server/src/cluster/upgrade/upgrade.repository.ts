import type { ChangeClass, HostSpec, NodeRole, UpgradeState } from '@edgeplane/protocol';
import type { Executor } from '../../store/db.js';

export interface PlannedNode {
  host: string;
  role: NodeRole;
  change: ChangeClass;
  reasons: string[];
  /** The node's managed host spec before the upgrade: what a failed node is put back on. */
  from?: HostSpec;
}

export interface UpgradeRow {
  cluster: string;
  id: number;
  generation: number;
  fromRevision?: number;
  toRevision: number;
  state: UpgradeState;
  nodes: PlannedNode[];
  failedHost?: string;
  message?: string;
  createdAt: string;
}

type Raw = Awaited<ReturnType<typeof rawLatest>>;

async function rawLatest(db: Executor, cluster: string) {
  return db.selectFrom('cluster_upgrades').selectAll().where('cluster', '=', cluster).orderBy('id', 'desc').limit(1).executeTakeFirst();
}

function toRow(r: NonNullable<Raw>): UpgradeRow {
  return {
    cluster: r.cluster,
    id: Number(r.id),
    generation: Number(r.generation),
    ...(r.from_revision != null ? { fromRevision: Number(r.from_revision) } : {}),
    toRevision: Number(r.to_revision),
    state: r.state as UpgradeState,
    nodes: JSON.parse(r.plan) as PlannedNode[],
    ...(r.failed_host ? { failedHost: r.failed_host } : {}),
    ...(r.message ? { message: r.message } : {}),
    createdAt: r.created_at,
  };
}

export async function latestUpgrade(db: Executor, cluster: string): Promise<UpgradeRow | undefined> {
  const r = await rawLatest(db, cluster);
  return r ? toRow(r) : undefined;
}

export async function insertUpgrade(db: Executor, u: Omit<UpgradeRow, 'id' | 'createdAt'>): Promise<UpgradeRow> {
  const id = ((await latestUpgrade(db, u.cluster))?.id ?? 0) + 1;
  const now = new Date().toISOString();
  // The primary key (cluster, id) makes a concurrent second insert fail instead of planning twice.
  await db
    .insertInto('cluster_upgrades')
    .values({
      cluster: u.cluster,
      id,
      generation: u.generation,
      from_revision: u.fromRevision ?? null,
      to_revision: u.toRevision,
      state: u.state,
      plan: JSON.stringify(u.nodes),
      failed_host: u.failedHost ?? null,
      message: u.message ?? null,
      created_at: now,
      updated_at: now,
    })
    .execute();
  return { ...u, id, createdAt: now };
}

/** Moves an upgrade to `state` only from one of `from` (false when it was elsewhere). */
export async function setUpgradeState(
  db: Executor,
  cluster: string,
  id: number,
  from: UpgradeState[],
  state: UpgradeState,
  extra: { failedHost?: string | null; message?: string | null } = {},
): Promise<boolean> {
  const r = await db
    .updateTable('cluster_upgrades')
    .set({
      state,
      ...(extra.failedHost !== undefined ? { failed_host: extra.failedHost } : {}),
      ...(extra.message !== undefined ? { message: extra.message } : {}),
      updated_at: new Date().toISOString(),
    })
    .where('cluster', '=', cluster)
    .where('id', '=', id)
    .where('state', 'in', from)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** Per-node steps of one upgrade, from cluster_steps ('u<id>:<host>:<step>' -> created_at). */
export async function upgradeSteps(db: Executor, cluster: string, id: number): Promise<Map<string, string>> {
  const rows = await db.selectFrom('cluster_steps').select(['step', 'created_at']).where('cluster', '=', cluster).where('step', 'like', `u${id}:%`).execute();
  return new Map(rows.map((r) => [r.step, r.created_at]));
}

export async function deleteSteps(db: Executor, cluster: string, steps: string[]): Promise<void> {
  if (steps.length) await db.deleteFrom('cluster_steps').where('cluster', '=', cluster).where('step', 'in', steps).execute();
}
