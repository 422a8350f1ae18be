import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { openStore, type Store } from '@edgeplane/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { type TestServer, testServer } from '../support/server.js';

// `edgeplane server admin-token --reset` run as its own process against the store of a running
// server whose admins are locked out (a store from before the last-admin rule, or edited by hand).
describe.each(DIALECTS)('edgeplane server admin-token --reset on %s', (dialect) => {
  let t: TestServer;
  let store: Store;
  beforeAll(async () => {
    t = await testServer(dialect);
    store = openStore({ dataDir: t.store.dataDir, databaseUrl: t.store.databaseUrl, poolSize: 1 });
  });
  afterAll(async () => {
    await store?.close();
    await t?.close();
  });

  const reset = () => {
    const args = ['server', 'admin-token', '--reset', '--data-dir', t.store.dataDir];
    if (t.store.databaseUrl) args.push('--database-url', t.store.databaseUrl);
    return cli(args);
  };
  const whoami = (token: string) => t.api('GET', '/api/v1/whoami', undefined, { token });

  it('re-enables a disabled, demoted admin and prints a working token written 0600', async () => {
    await store.db
      .updateTable('users')
      .set({ spec: JSON.stringify({ role: 'viewer', disabled: true }) })
      .where('name', '=', 'admin')
      .execute();
    expect((await whoami(t.admin)).status).toBe(401);

    const r = await reset();
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain('again (was disabled, role viewer)');
    const token = r.stdout.match(/(ept_\S+)/)?.[1];
    expect(token).toBeDefined();
    const file = join(t.store.dataDir, 'admin-token');
    expect(readFileSync(file, 'utf8').trim()).toBe(token);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect((await whoami(token!)).body).toMatchObject({ user: 'admin', role: 'admin' });
    expect((await t.api('GET', '/api/v1/users/admin', undefined, { token })).body.spec).toMatchObject({ role: 'admin', disabled: false });

    const audit = (await t.api('GET', '/api/v1/audit?action=admin.recover', undefined, { token })).body.items;
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ target: 'users/admin', details: { created: false, previousRole: 'viewer', wasDisabled: true } });
    expect((await t.api('GET', '/api/v1/audit/verify', undefined, { token })).body.ok).toBe(true);
  });

  it('re-creates a deleted admin; tokens of the deleted admin stay dead', async () => {
    const before = await reset();
    const old = before.stdout.match(/(ept_\S+)/)![1];
    await store.db.deleteFrom('users').where('name', '=', 'admin').execute();
    expect((await whoami(old)).status).toBe(401);
    const r = await reset();
    expect(r.code, r.out).toBe(0);
    expect(r.stdout).toContain('was missing and has been created');
    const token = r.stdout.match(/(ept_\S+)/)![1];
    expect((await whoami(token)).body).toMatchObject({ user: 'admin', role: 'admin' });
    // The new admin is another user (another uid): the old admin's token does not come back.
    expect((await whoami(old)).status).toBe(401);
  });

  it('refuses to run without --reset and changes nothing', async () => {
    const users = await store.db.selectFrom('users').selectAll().execute();
    const tokens = await store.db.selectFrom('api_tokens').select('name').execute();
    const r = await cli(['server', 'admin-token', '--data-dir', t.store.dataDir]);
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('--reset');
    expect(await store.db.selectFrom('users').selectAll().execute()).toEqual(users);
    expect(await store.db.selectFrom('api_tokens').select('name').execute()).toEqual(tokens);
  });
});
