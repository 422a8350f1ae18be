import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '@edgeplane/server';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cli } from '../support/cli-process.js';
import { DIALECTS } from '../support/db.js';
import { register, TestDevice } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

describe.each(DIALECTS)('audit log on %s', (dialect) => {
  let ts: TestServer;
  let dir: string;

  beforeAll(async () => {
    ts = await testServer(dialect);
    dir = mkdtempSync(join(tmpdir(), 'edgeplane-audit-'));
  });
  afterAll(async () => {
    await ts?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records token create/revoke and host approve, chains every entry, and names the first edited one', async () => {
    const tok = await ts.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'shop' }, spec: {} });
    expect(tok.status).toBe(201);
    const dev = await TestDevice.create();
    const reg = await register(ts.url, await dev.registerBody(tok.body.status.token));
    expect(reg.status).toBe(200);
    expect((await ts.api('POST', `/api/v1/edgehosts/${reg.body.hostName}/approve`)).status).toBe(200);
    expect((await ts.api('POST', '/api/v1/registrationtokens/shop/revoke')).status).toBe(200);
    expect((await ts.api('POST', '/api/v1/apitokens', { metadata: { name: 'ci' }, spec: { user: 'admin' } })).status).toBe(201);
    expect((await ts.api('POST', '/api/v1/users', { metadata: { name: 'olga' }, spec: { role: 'operator' } })).status).toBe(201);
    const grant = { spec: { permissions: ['hosts:remote-shell'] } };
    expect((await ts.api('PATCH', '/api/v1/users/olga', grant, { contentType: 'application/merge-patch+json' })).status).toBe(200);
    // A refused call is not audited as done.
    expect((await ts.api('POST', '/api/v1/registrationtokens/nope/revoke')).status).toBe(404);

    const list = await ts.api('GET', '/api/v1/audit');
    expect(list.body.items.map((e: { action: string; target: string }) => `${e.action} ${e.target}`)).toEqual([
      'registrationtoken.create registrationtokens/shop',
      `edgehost.approve edgehosts/${reg.body.hostName}`,
      'registrationtoken.revoke registrationtokens/shop',
      'apitoken.create apitokens/ci',
      'user.create users/olga',
      'user.update users/olga',
    ]);
    expect(list.body.items[5].details).toMatchObject({ userRole: 'operator', permissions: ['hosts:remote-shell'] });
    const [first, second] = list.body.items;
    expect(first).toMatchObject({ seq: 1, actor: 'admin', prevHash: '0'.repeat(64) });
    expect(second.prevHash).toBe(first.hash);
    // No secret goes to the audit log.
    expect(JSON.stringify(list.body)).not.toContain(tok.body.status.token);

    const page = await ts.api('GET', '/api/v1/audit?limit=2');
    expect(page.body.items).toHaveLength(2);
    const next = await ts.api('GET', `/api/v1/audit?limit=2&continue=${page.body.metadata.continue}`);
    expect(next.body.items.map((e: { seq: number }) => e.seq)).toEqual([3, 4]);
    expect(next.body.metadata.continue).toBe('4');
    expect((await ts.api('GET', '/api/v1/audit?limit=zero')).status).toBe(400);

    expect((await ts.api('GET', '/api/v1/audit/verify')).body).toMatchObject({ ok: true, entries: 6 });
    const env = { EDGEPLANE_CONFIG: join(dir, 'cli.yaml'), EDGEPLANE_SERVER: ts.url, EDGEPLANE_TOKEN: ts.admin };
    const ok = await cli(['audit', 'verify'], env);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/audit chain OK: 6 entries/);

    // Someone with database access rewrites history: who did entry 2.
    const store = openStore({ dataDir: ts.store.dataDir, databaseUrl: ts.store.databaseUrl });
    try {
      await store.db.updateTable('audit_log').set({ actor: 'mallory' }).where('seq', '=', 2).execute();
    } finally {
      await store.close();
    }
    expect((await ts.api('GET', '/api/v1/audit/verify')).body).toMatchObject({ ok: false, firstBadSeq: 2 });
    const bad = await cli(['audit', 'verify'], env);
    expect(bad.code).toBe(1);
    expect(bad.out).toMatch(/BROKEN at entry 2 .*mallory/);
  });

  it('is not readable by viewers', async () => {
    await ts.api('POST', '/api/v1/users', { metadata: { name: 'vic' }, spec: { role: 'viewer' } });
    const t = await ts.api('POST', '/api/v1/apitokens', { metadata: { name: 'vic-t' }, spec: { user: 'vic' } });
    const r = await ts.api('GET', '/api/v1/audit', undefined, { token: t.body.status.token });
    expect(r.status).toBe(403);
  });
});
