import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

// Projects group resources (they are not tenants): a resource names an existing project, and a
// project that still holds resources cannot be deleted.
describe.each(DIALECTS)('project references on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect);
  });
  afterAll(() => t?.close());

  it('refuses a resource in a project that does not exist; nothing is created', async () => {
    const attempts: [string, unknown][] = [
      ['edgehosts', { metadata: { name: 'h1', project: 'does-not-exist' }, spec: { deviceUid: 'SERIAL-00000001' } }],
      ['registrationtokens', { metadata: { name: 'rt1', project: 'does-not-exist' }, spec: {} }],
      ['users', { metadata: { name: 'u1', project: 'does-not-exist' }, spec: { role: 'viewer' } }],
      ['projects', { metadata: { name: 'p1', project: 'does-not-exist' }, spec: {} }],
    ];
    for (const [plural, body] of attempts) {
      const r = await t.api('POST', `/api/v1/${plural}`, body);
      expect(r.status, plural).toBe(422);
      expect(r.body.error).toMatchObject({ code: 'ProjectNotFound', details: { project: 'does-not-exist' } });
      const name = (body as { metadata: { name: string } }).metadata.name;
      expect((await t.api('GET', `/api/v1/${plural}/${name}`)).status).toBe(404);
    }
    // The pre-registered device UID is still free: the refused create left nothing behind.
    expect((await t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'h1' }, spec: { deviceUid: 'SERIAL-00000001' } })).status).toBe(201);
  });

  it('refuses to delete a project that holds resources, and deletes it once empty', async () => {
    expect((await t.api('POST', '/api/v1/projects', { metadata: { name: 'shop' }, spec: {} })).status).toBe(201);
    expect((await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'shop-rt', project: 'shop' }, spec: {} })).status).toBe(201);
    expect((await t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'shop-h', project: 'shop' }, spec: { deviceUid: 'SERIAL-00000002' } })).status).toBe(
      201,
    );
    const del = await t.api('DELETE', '/api/v1/projects/shop');
    expect(del.status).toBe(409);
    expect(del.body.error).toMatchObject({ code: 'ProjectNotEmpty', details: { project: 'shop', resources: { registration_tokens: 1, edge_hosts: 1 } } });
    expect((await t.api('GET', '/api/v1/projects/shop')).status).toBe(200);
    await t.api('DELETE', '/api/v1/registrationtokens/shop-rt');
    expect((await t.api('DELETE', '/api/v1/projects/shop')).body.error.code).toBe('ProjectNotEmpty');
    await t.api('DELETE', '/api/v1/edgehosts/shop-h');
    expect((await t.api('DELETE', '/api/v1/projects/shop')).status).toBe(200);
    // default always exists and cannot go.
    expect((await t.api('DELETE', '/api/v1/projects/default')).status).toBe(409);
    expect((await t.api('GET', '/api/v1/projects/default')).status).toBe(200);
  });

  it('a create racing the deletion of its project never leaves a resource in a deleted project', async () => {
    for (let i = 0; i < 8; i++) {
      const p = `race${i}`;
      expect((await t.api('POST', '/api/v1/projects', { metadata: { name: p }, spec: {} })).status).toBe(201);
      const [created, deleted] = await Promise.all([
        t.api('POST', '/api/v1/registrationtokens', { metadata: { name: `${p}-rt`, project: p }, spec: {} }),
        t.api('DELETE', `/api/v1/projects/${p}`),
      ]);
      // Exactly one wins: the token exists in an existing project, or the project is gone with no token.
      expect([created.status, deleted.status].sort(), JSON.stringify([created.body, deleted.body])).toSatisfy(
        (s: number[]) => (s[0] === 200 && s[1] === 422) || (s[0] === 201 && s[1] === 409),
      );
      const projectExists = (await t.api('GET', `/api/v1/projects/${p}`)).status === 200;
      const tokenExists = (await t.api('GET', `/api/v1/registrationtokens/${p}-rt`)).status === 200;
      expect(tokenExists ? projectExists : true).toBe(true);
    }
  });
});
