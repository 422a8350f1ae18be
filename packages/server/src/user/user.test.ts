import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

// Tokens die with their user, and the last enabled admin can never be locked out through the API.
describe.each(DIALECTS)('users and API tokens on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect);
  });
  afterAll(() => t?.close());

  const mkUser = async (name: string, role: string, extra: Record<string, unknown> = {}) => {
    const r = await t.api('POST', '/api/v1/users', { metadata: { name }, spec: { role, ...extra } });
    expect(r.status).toBe(201);
    return r.body;
  };
  const mkToken = async (name: string, user: string): Promise<string> => {
    const r = await t.api('POST', '/api/v1/apitokens', { metadata: { name }, spec: { user } });
    expect(r.status).toBe(201);
    return r.body.status.token;
  };
  const tokenNames = async () => (await t.api('GET', '/api/v1/apitokens')).body.items.map((i: any) => i.metadata.name);

  it('deleting a user deletes its tokens: re-creating the name as admin gives the old token nothing', async () => {
    await mkUser('bob', 'viewer');
    const old = await mkToken('bob-laptop', 'bob');
    await mkToken('bob-ci', 'bob');
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: old })).body.user).toBe('bob');
    expect(await tokenNames()).toEqual(expect.arrayContaining(['bob-laptop', 'bob-ci']));

    expect((await t.api('DELETE', '/api/v1/users/bob')).status).toBe(200);
    expect(await tokenNames()).not.toEqual(expect.arrayContaining(['bob-laptop']));
    expect(await tokenNames()).not.toContain('bob-ci');
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: old })).status).toBe(401);

    // The attack: an admin re-creates "bob", now with role admin; the old secret must stay dead.
    await mkUser('bob', 'admin');
    const again = await t.api('GET', '/api/v1/whoami', undefined, { token: old });
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe('Unauthenticated');
    expect((await t.api('GET', '/api/v1/users', undefined, { token: old })).status).toBe(401);
    // The new bob's own tokens work, and the audit log shows the deletion.
    const fresh = await mkToken('bob-new', 'bob');
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: fresh })).body).toMatchObject({ user: 'bob', role: 'admin' });
    expect((await t.api('DELETE', '/api/v1/users/bob')).status).toBe(200);
  });

  it('refuses to disable, demote or delete the last enabled admin; nothing changes and the admin keeps working', async () => {
    const before = (await t.api('GET', '/api/v1/users/admin')).body;
    const merge = { contentType: 'application/merge-patch+json' };
    for (const spec of [{ disabled: true }, { role: 'operator' }, { role: 'viewer', disabled: true }]) {
      const r = await t.api('PATCH', '/api/v1/users/admin', { spec }, merge);
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('LastAdmin');
      const put = await t.api('PUT', '/api/v1/users/admin', { metadata: { name: 'admin' }, spec: { ...before.spec, ...spec } });
      expect(put.status).toBe(409);
      expect(put.body.error.code).toBe('LastAdmin');
    }
    const del = await t.api('DELETE', '/api/v1/users/admin');
    expect(del.status).toBe(409);
    expect(del.body.error.code).toBe('LastAdmin');
    // A disabled admin is no way back in: it does not count.
    await mkUser('frank', 'admin', { disabled: true });
    expect((await t.api('PATCH', '/api/v1/users/admin', { spec: { role: 'viewer' } }, merge)).body.error.code).toBe('LastAdmin');
    const after = (await t.api('GET', '/api/v1/users/admin')).body;
    expect(after.spec).toEqual(before.spec);
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    expect((await t.api('GET', '/api/v1/whoami')).body).toMatchObject({ user: 'admin', role: 'admin' });
    expect((await t.api('DELETE', '/api/v1/users/frank')).status).toBe(200);
  });

  it('with two admins one may go; the remaining one is then the last', async () => {
    await mkUser('carol', 'admin');
    const carol = await mkToken('carol-1', 'carol');
    expect((await t.api('PATCH', '/api/v1/users/admin', { spec: { disabled: true } }, { token: carol })).status).toBe(200);
    expect((await t.api('GET', '/api/v1/whoami')).status).toBe(401); // admin is disabled now
    for (const spec of [{ role: 'viewer' }, { disabled: true }]) {
      const r = await t.api('PATCH', '/api/v1/users/carol', { spec }, { token: carol });
      expect(r.status).toBe(409);
      expect(r.body.error.code).toBe('LastAdmin');
    }
    expect((await t.api('DELETE', '/api/v1/users/carol', undefined, { token: carol })).body.error.code).toBe('LastAdmin');
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: carol })).body).toMatchObject({ user: 'carol', role: 'admin' });
    // Re-enable admin; then carol may be deleted, and her token goes with her.
    expect((await t.api('PATCH', '/api/v1/users/admin', { spec: { disabled: false } }, { token: carol })).status).toBe(200);
    expect((await t.api('DELETE', '/api/v1/users/carol')).status).toBe(200);
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: carol })).status).toBe(401);
    expect((await t.api('GET', '/api/v1/whoami')).body).toMatchObject({ user: 'admin', role: 'admin' });
  });

  it('two concurrent demotions of the only two admins leave one admin', async () => {
    await mkUser('gina', 'admin');
    const gina = await mkToken('gina-1', 'gina');
    // Each demotes itself, so both requests are authorized whatever the order.
    const results = await Promise.all([
      t.api('PATCH', '/api/v1/users/admin', { spec: { role: 'operator' } }),
      t.api('PATCH', '/api/v1/users/gina', { spec: { role: 'operator' } }, { token: gina }),
    ]);
    const codes = results.map((r) => r.status).sort();
    expect(codes).toEqual([200, 409]);
    const admins = (await t.api('GET', '/api/v1/users')).body.items.filter((u: any) => u.spec.role === 'admin' && !u.spec.disabled);
    expect(admins).toHaveLength(1);
  });
});
