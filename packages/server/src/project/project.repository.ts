import type { Kysely } from 'kysely';
import type { Executor } from '../store/db.js';
import type { ResourceTableName } from '../store/schema.js';

/** Every table of resource kinds: the compiler insists a new one is listed, so project deletion counts it too. */
const RESOURCE_TABLES = {
  projects: true,
  users: true,
  api_tokens: true,
  registration_tokens: true,
  edge_hosts: true,
  cluster_profiles: true,
  clusters: true,
  events: true,
  remote_sessions: true,
  audit_log: false,
  sites: true,
  rollouts: true,
} satisfies Record<ResourceTableName, boolean>;

/**
 * Whether the project exists, holding its row's write lock for the rest of the transaction (a no-op
 * update, portable to both dialects). A resource created in a project and the project's deletion
 * then run one after the other, so neither sees the store before the other committed: no resource
 * is ever left behind in a deleted project.
 */
export async function lockProject(db: Executor, name: string): Promise<boolean> {
  const r = await db
    .updateTable('projects')
    .set((eb) => ({ resource_version: eb.ref('resource_version') }))
    .where('name', '=', name)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

/** How many resources of each table name `project` in metadata.project (tables holding none left out). */
export async function countInProject(db: Executor, project: string): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (const [table, holds] of Object.entries(RESOURCE_TABLES)) {
    if (!holds) continue;
    const row = await (db as unknown as Kysely<Record<string, { project: string }>>)
      .selectFrom(table)
      .select((eb) => eb.fn.countAll<number>().as('n'))
      .where('project', '=', project)
      .executeTakeFirstOrThrow();
    if (Number(row.n) > 0) counts[table] = Number(row.n);
  }
  return counts;
}
