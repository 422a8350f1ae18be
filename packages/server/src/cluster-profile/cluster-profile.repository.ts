import type { Executor } from '../store/db.js';
import type { ClusterProfileRevisionTable } from '../store/schema.js';

export type RevisionRow = ClusterProfileRevisionTable;

export async function latestRevisionNumber(db: Executor, profile: string): Promise<number> {
  const r = await db
    .selectFrom('cluster_profile_revisions')
    .select((eb) => eb.fn.max<number>('revision').as('n'))
    .where('profile', '=', profile)
    .executeTakeFirst();
  return Number(r?.n ?? 0);
}

export async function insertRevision(db: Executor, row: RevisionRow): Promise<void> {
  await db.insertInto('cluster_profile_revisions').values(row).execute();
}

export async function findRevision(db: Executor, profile: string, revision: number): Promise<RevisionRow | undefined> {
  return db.selectFrom('cluster_profile_revisions').selectAll().where('profile', '=', profile).where('revision', '=', revision).executeTakeFirst();
}

export async function listRevisions(db: Executor, profile: string): Promise<RevisionRow[]> {
  return db.selectFrom('cluster_profile_revisions').selectAll().where('profile', '=', profile).orderBy('revision').execute();
}

export async function deleteRevisions(db: Executor, profile: string): Promise<void> {
  await db.deleteFrom('cluster_profile_revisions').where('profile', '=', profile).execute();
}

/** Clusters whose spec names this profile (JSON in text: filtered in code; clusters are few). */
export async function clustersUsingProfile(db: Executor, profile: string): Promise<string[]> {
  const rows = await db.selectFrom('clusters').select(['name', 'spec']).execute();
  return rows.filter((r) => (JSON.parse(r.spec) as { profile?: { name?: string } }).profile?.name === profile).map((r) => r.name);
}
