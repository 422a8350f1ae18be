import { readFileSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

const token = (name: string, spec: Record<string, unknown> = {}, labels: Record<string, string> = {}) => ({
  apiVersion: 'edgeplane.io/v1',
  kind: 'RegistrationToken',
  metadata: { name, labels },
  spec,
});

describe.each(DIALECTS)('resource API on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect, { bodyLimitBytes: 64 * 1024 });
  });
  afterAll(async () => t?.close());

  it('bootstraps admin, a 0600 token file and the default project once', async () => {
    expect(t.admin).toMatch(/^ept_/);
    expect(readFileSync(t.server.adminTokenFile, 'utf8').trim()).toBe(t.admin);
    expect(statSync(t.server.adminTokenFile).mode & 0o777).toBe(0o600);
    const p = await t.api('GET', '/api/v1/projects/default');
    expect(p.status).toBe(200);
    expect(p.body.kind).toBe('Project');
    await t.restart();
    expect(t.server.adminToken).toBeUndefined();
    expect((await t.api('GET', '/api/v1/users')).body.items.map((u: any) => u.metadata.name)).toEqual(['admin']);
  });

  it('serves health, readiness, metrics and OpenAPI', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    const ready = await (await fetch(`${t.url}/readyz`)).json();
    expect(ready.store).toBe(dialect);
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toContain('edgeplane_agents_connected');
    const oa = await (await fetch(`${t.url}/api/v1/openapi.json`)).json();
    expect(oa.paths['/api/v1/registrationtokens']).toBeDefined();
  });

  it('creates a token showing the secret once, stores it hashed, lists, patches and deletes', async () => {
    const c = await t.api('POST', '/api/v1/registrationtokens', token('crud', { autoApprove: true, maxUses: 5 }, { env: 'lab' }));
    expect(c.status).toBe(201);
    expect(c.body.status.token).toMatch(/^eprt_/);
    const g = await t.api('GET', '/api/v1/registrationtokens/crud');
    expect(g.body.status.token).toBeUndefined();
    expect(g.body.status).toMatchObject({ state: 'active', uses: 0 });
    expect(JSON.stringify(g.body)).not.toContain(c.body.status.token);
    const p = await t.api(
      'PATCH',
      '/api/v1/registrationtokens/crud',
      { spec: { maxUses: 7 }, metadata: { labels: { tier: 'gold' } } },
      { contentType: 'application/merge-patch+json' },
    );
    expect(p.status).toBe(200);
    expect(p.body.spec.maxUses).toBe(7);
    expect(p.body.metadata.labels).toEqual({ env: 'lab', tier: 'gold' });
    expect(p.body.metadata.generation).toBe(2);
    const r = await t.api('POST', '/api/v1/registrationtokens/crud/revoke');
    expect(r.body.status.state).toBe('revoked');
    const d = await t.api('DELETE', '/api/v1/registrationtokens/crud');
    expect(d.status).toBe(200);
    expect((await t.api('GET', '/api/v1/registrationtokens/crud')).body.error.code).toBe('NotFound');
  });

  it('pages lists with limit/continue and filters by label selector', async () => {
    for (let i = 0; i < 7; i++) await t.api('POST', '/api/v1/registrationtokens', token(`page-${i}`, {}, { parity: i % 2 ? 'odd' : 'even' }));
    const names: string[] = [];
    let cont: string | undefined;
    do {
      const r = await t.api('GET', `/api/v1/registrationtokens?labelSelector=parity&limit=3${cont ? `&continue=${cont}` : ''}`);
      expect(r.body.kind).toBe('RegistrationTokenList');
      expect(r.body.items.length).toBeLessThanOrEqual(3);
      names.push(...r.body.items.map((i: any) => i.metadata.name));
      cont = r.body.metadata.continue;
    } while (cont);
    expect(names).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `page-${i}`));
    const odd = await t.api('GET', '/api/v1/registrationtokens?labelSelector=parity%3Dodd');
    expect(odd.body.items.map((i: any) => i.metadata.name)).toEqual(['page-1', 'page-3', 'page-5']);
    expect((await t.api('GET', '/api/v1/registrationtokens?labelSelector=parity%3D(')).body.error.code).toBe('InvalidLabelSelector');
    expect((await t.api('GET', '/api/v1/registrationtokens?continue=garbage')).body.error.code).toBe('InvalidContinueToken');
  });

  it('refuses a stale resourceVersion with Conflict', async () => {
    const c = await t.api('POST', '/api/v1/registrationtokens', token('occ'));
    const rv = c.body.metadata.resourceVersion;
    const ok = await t.api('PUT', '/api/v1/registrationtokens/occ', { ...token('occ', { maxUses: 2 }), metadata: { name: 'occ', resourceVersion: rv } });
    expect(ok.status).toBe(200);
    const stale = await t.api('PUT', '/api/v1/registrationtokens/occ', { ...token('occ', { maxUses: 3 }), metadata: { name: 'occ', resourceVersion: rv } });
    expect(stale.status).toBe(409);
    expect(stale.body.error.code).toBe('Conflict');
    expect((await t.api('GET', '/api/v1/registrationtokens/occ')).body.spec.maxUses).toBe(2);
  });

  it('answers bad input with a 4xx, a stable code, and writes nothing', async () => {
    const count = async () => (await t.api('GET', '/api/v1/registrationtokens?limit=1000')).body.items.length;
    const before = await count();
    const cases: [Promise<{ status: number; body: any }>, number, string][] = [
      [t.api('POST', '/api/v1/registrationtokens', undefined, { raw: '{"metadata": {' }), 400, 'MalformedJson'],
      [t.api('POST', '/api/v1/registrationtokens', token('bad', { maxUses: -1 })), 400, 'ValidationFailed'],
      [t.api('POST', '/api/v1/registrationtokens', { ...token('bad'), surprise: true }), 400, 'ValidationFailed'],
      [t.api('POST', '/api/v1/registrationtokens', token('Bad_Name')), 400, 'ValidationFailed'],
      [t.api('POST', '/api/v1/registrationtokens', token('big', { description: 'x'.repeat(100_000) })), 413, 'BodyTooLarge'],
      [t.api('POST', '/api/v1/registrationtokens', undefined, { raw: 'name=x', contentType: 'text/plain' }), 415, 'UnsupportedMediaType'],
      [t.api('GET', '/api/v1/widgets'), 404, 'UnknownKind'],
      // EdgeHosts are creatable by device UID (pre-registration); Events never are.
      [t.api('POST', '/api/v1/events', { metadata: { name: 'x' }, spec: {} }), 405, 'MethodNotAllowed'],
      [t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'x' }, spec: {} }), 400, 'ValidationFailed'],
      [t.api('GET', '/api/v1/projects', undefined, { token: 'ept_nope' }), 401, 'Unauthenticated'],
    ];
    for (const [p, status, code] of cases) {
      const r = await p;
      expect({ status: r.status, code: r.body?.error?.code }).toEqual({ status, code });
      expect(r.body.error.message.length).toBeGreaterThan(5);
    }
    const dup = await t.api('POST', '/api/v1/registrationtokens', token('dup'));
    expect(dup.status).toBe(201);
    expect((await t.api('POST', '/api/v1/registrationtokens', token('dup'))).body.error.code).toBe('AlreadyExists');
    expect(await count()).toBe(before + 1);
  });

  it('enforces roles: viewers read, operators run the fleet but not users', async () => {
    for (const [name, role] of [
      ['vera', 'viewer'],
      ['otto', 'operator'],
    ]) {
      expect((await t.api('POST', '/api/v1/users', { metadata: { name }, spec: { role } })).status).toBe(201);
    }
    const viewer = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'vera-1' }, spec: { user: 'vera' } })).body.status.token;
    const operator = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'otto-1' }, spec: { user: 'otto' } })).body.status.token;
    expect((await t.api('GET', '/api/v1/registrationtokens', undefined, { token: viewer })).status).toBe(200);
    const v = await t.api('POST', '/api/v1/registrationtokens', token('by-viewer'), { token: viewer });
    expect([v.status, v.body.error.code]).toEqual([403, 'Forbidden']);
    expect((await t.api('POST', '/api/v1/edgehosts/any/approve', undefined, { token: viewer })).body.error.code).toBe('Forbidden');
    expect((await t.api('POST', '/api/v1/registrationtokens', token('by-operator'), { token: operator })).status).toBe(201);
    expect((await t.api('POST', '/api/v1/edgehosts/none/approve', undefined, { token: operator })).body.error.code).toBe('NotFound');
    const u = await t.api('POST', '/api/v1/users', { metadata: { name: 'mallory' }, spec: { role: 'admin' } }, { token: operator });
    expect([u.status, u.body.error.code]).toEqual([403, 'Forbidden']);
    expect((await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'otto-2' }, spec: { user: 'admin' } }, { token: operator })).status).toBe(403);
  });
});
