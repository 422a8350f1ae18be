import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { DIALECTS, type TestStore, testStore } from '../../../../test/support/db.js';
import { hashSecret } from '../resource/secrets.js';
import { openStore, type Store } from '../store/db.js';
import { migrateToLatest } from '../store/migrations.js';
import { authenticate } from './api-token.service.js';

const row = (name: string, spec: unknown) => {
  const t = new Date().toISOString();
  return {
    name,
    uid: randomUUID(),
    project: 'default',
    labels: '{}',
    annotations: '{}',
    generation: 1,
    resource_version: 1,
    created_at: t,
    updated_at: t,
    spec: JSON.stringify(spec),
    status: '{}',
  };
};

// A store from before tokens were bound to user uids: migration 0009 binds each token to its user
// and removes tokens whose user is gone (they could only come back with a re-created user).
describe.each(DIALECTS)('migration 0009_token_user_uid on %s', (dialect) => {
  let ts: TestStore;
  let store: Store;
  afterEach(async () => {
    await store?.close();
    await ts?.cleanup();
  });

  it('backfills user_uid, drops orphaned tokens, and the tokens authenticate as before', async () => {
    ts = await testStore(dialect);
    store = openStore({ dataDir: ts.dataDir, databaseUrl: ts.databaseUrl });
    await migrateToLatest(store.db);
    // Back to the schema before 0009.
    await sql`drop index api_tokens_user_uid`.execute(store.db);
    await sql`alter table api_tokens drop column user_uid`.execute(store.db);
    await sql`delete from edgeplane_migrations where name = '0009_token_user_uid'`.execute(store.db);
    await store.db
      .insertInto('users')
      .values(row('alice', { role: 'operator' }))
      .execute();
    const insertToken = (name: string, user: string, secret: string) =>
      sql`insert into api_tokens (name, uid, project, labels, annotations, generation, resource_version, created_at, updated_at, spec, status, token_hash, user_name)
          values (${name}, ${randomUUID()}, 'default', '{}', '{}', 1, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z', '{}', '{}', ${hashSecret(secret)}, ${user})`.execute(
        store.db,
      );
    await insertToken('alice-1', 'alice', 'ept_alice');
    await insertToken('ghost-1', 'ghost', 'ept_ghost');

    await migrateToLatest(store.db);
    const tokens = await store.db.selectFrom('api_tokens').select(['name', 'user_uid']).orderBy('name').execute();
    const alice = await store.db.selectFrom('users').select('uid').where('name', '=', 'alice').executeTakeFirstOrThrow();
    expect(tokens).toEqual([{ name: 'alice-1', user_uid: alice.uid }]);
    expect(await authenticate(store.db, 'ept_alice')).toMatchObject({ user: 'alice', role: 'operator' });
    // A user named like the orphan's old owner gets nothing.
    await store.db
      .insertInto('users')
      .values(row('ghost', { role: 'admin' }))
      .execute();
    await expect(authenticate(store.db, 'ept_ghost')).rejects.toMatchObject({ code: 'Unauthenticated' });
  });
});
