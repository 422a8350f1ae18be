import type { Executor } from '../store/db.js';

/** Names of the users whose spec says role admin and not disabled (users are few: read in full). */
export async function enabledAdmins(db: Executor): Promise<string[]> {
  const rows = await db.selectFrom('users').select(['name', 'spec']).execute();
  return rows
    .filter((r) => {
      const spec = JSON.parse(r.spec) as { role?: string; disabled?: boolean };
      return spec.role === 'admin' && spec.disabled !== true;
    })
    .map((r) => r.name);
}

/**
 * Takes write locks on the named user rows for the rest of the transaction (a no-op update: works on
 * both dialects, unlike SELECT ... FOR UPDATE) and returns which of them are still enabled admins
 * once the locks are held. On PostgreSQL a concurrent transaction holding one of the rows makes this
 * wait for it; SQLite runs one write transaction at a time anyway.
 */
export async function lockUsers(db: Executor, names: string[]): Promise<string[]> {
  if (!names.length) return [];
  await db
    .updateTable('users')
    .set((eb) => ({ resource_version: eb.ref('resource_version') }))
    .where('name', 'in', [...names].sort())
    .execute();
  return (await enabledAdmins(db)).filter((n) => names.includes(n));
}
