import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DIALECTS } from '../../../../test/support/db.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';
import { FakeNode } from '../cluster/cluster-test-fleet.js';

const A = `sha256:${'a'.repeat(64)}`;
const B = `sha256:${'b'.repeat(64)}`;
const MERGE = { contentType: 'application/merge-patch+json' };
const EVIL = ['/bin/sh', '-c', 'id >&2; head -1 /etc/shadow >&2; exit 1'];

/** Digest-pinned images resolve without a registry request. */
const profile = (name: string, healthChecks: unknown[], description?: string) => ({
  metadata: { name },
  spec: { ...(description ? { description } : {}), layers: { os: { image: `127.0.0.1:1/edge/gw@${A}`, insecure: true } }, healthChecks },
});
const osSpec = (digest: string, healthChecks?: unknown[]) => ({ image: `127.0.0.1:1/edge/os@${digest}`, digest, ...(healthChecks ? { healthChecks } : {}) });

// Command health checks and hand-written OS images run code on devices: they need hosts:remote-shell.
describe.each(DIALECTS)('command health checks and spec.os need the remote-shell permission on %s', (dialect) => {
  let t: TestServer;
  let olga: string; // operator without the permission
  let otto: string; // operator with hosts:remote-shell
  const nodes: FakeNode[] = [];
  const as = (token: string) => ({ token });
  const audit = async (action: string) => (await t.api('GET', `/api/v1/audit?action=${action}`)).body.items;

  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 5, heartbeatIntervalSeconds: 1 });
    for (const [name, permissions] of [
      ['olga', []],
      ['otto', ['hosts:remote-shell']],
    ] as const) {
      expect((await t.api('POST', '/api/v1/users', { metadata: { name }, spec: { role: 'operator', permissions } })).status).toBe(201);
    }
    olga = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'olga-1' }, spec: { user: 'olga' } })).body.status.token;
    otto = (await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'otto-1' }, spec: { user: 'otto' } })).body.status.token;
    const pre = await t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'gw' }, spec: { deviceUid: 'GW-SERIAL-0001', os: osSpec(A) } });
    expect(pre.status).toBe(201);
  });
  afterAll(async () => {
    for (const n of nodes) n.close();
    await t?.close();
  });

  it('an operator without the permission cannot PATCH, PUT or pre-register a command check or an OS image; nothing changes', async () => {
    const before = (await t.api('GET', '/api/v1/edgehosts/gw')).body;
    const attempts = [
      () => t.api('PATCH', '/api/v1/edgehosts/gw', { spec: { os: osSpec(B, [{ name: 'x', type: 'command', command: EVIL }]) } }, { ...MERGE, token: olga }),
      // Same image, only a command check added.
      () => t.api('PATCH', '/api/v1/edgehosts/gw', { spec: { os: osSpec(A, [{ name: 'x', type: 'command', command: EVIL }]) } }, { ...MERGE, token: olga }),
      // Another image, no command: an image is code the device boots.
      () => t.api('PATCH', '/api/v1/edgehosts/gw', { spec: { os: osSpec(B) } }, { ...MERGE, token: olga }),
      () => t.api('PUT', '/api/v1/edgehosts/gw', { metadata: { name: 'gw' }, spec: { ...before.spec, os: osSpec(B) } }, as(olga)),
    ];
    for (const attempt of attempts) {
      const r = await attempt();
      expect(r.status, JSON.stringify(r.body)).toBe(403);
      expect(r.body.error).toMatchObject({ code: 'Forbidden', details: { permission: 'hosts:remote-shell' } });
    }
    const pre = await t.api('POST', '/api/v1/edgehosts', { metadata: { name: 'gw2' }, spec: { deviceUid: 'GW-SERIAL-0002', os: osSpec(B) } }, as(olga));
    expect(pre.status).toBe(403);
    expect((await t.api('GET', '/api/v1/edgehosts/gw2')).status).toBe(404);
    const after = (await t.api('GET', '/api/v1/edgehosts/gw')).body;
    expect(after.spec).toEqual(before.spec);
    expect(after.metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    // Only the admin's pre-registration (with spec.os) is in the audit log.
    expect((await audit('edgehost.os.set')).map((e: { actor: string }) => e.actor)).toEqual(['admin']);
    // Edits that leave spec.os as it is stay operator work.
    const label = await t.api(
      'PATCH',
      '/api/v1/edgehosts/gw',
      { metadata: { labels: { shop: '12' } }, spec: { displayName: 'Gateway' } },
      { ...MERGE, token: olga },
    );
    expect(label.status).toBe(200);
    expect(label.body.spec.os).toEqual(before.spec.os);
  });

  it('an operator with the permission (and an admin) may; the write is audited with the argv', async () => {
    const r = await t.api(
      'PATCH',
      '/api/v1/edgehosts/gw',
      { spec: { os: osSpec(B, [{ name: 'disk', type: 'command', command: ['test', '-d', '/var'] }]) } },
      { ...MERGE, token: otto },
    );
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.spec.os.digest).toBe(B);
    const entries = await audit('edgehost.os.set');
    expect(entries).toHaveLength(2);
    expect(entries[1]).toMatchObject({
      actor: 'otto',
      target: 'edgehosts/gw',
      details: { role: 'operator', digest: B, commandChecks: [{ name: 'disk', command: ['test', '-d', '/var'] }] },
    });
    expect((await t.api('PATCH', '/api/v1/edgehosts/gw', { spec: { os: osSpec(A) } }, MERGE)).status).toBe(200);
    expect(await audit('edgehost.os.set')).toHaveLength(3);
    // Removing the grant takes effect at once.
    await t.api('PATCH', '/api/v1/users/otto', { spec: { permissions: [] } }, MERGE);
    expect((await t.api('PATCH', '/api/v1/edgehosts/gw', { spec: { os: osSpec(B) } }, { ...MERGE, token: otto })).status).toBe(403);
    await t.api('PATCH', '/api/v1/users/otto', { spec: { permissions: ['hosts:remote-shell'] } }, MERGE);
  });

  it('a profile with a command check needs the permission: refused means no profile and no revision', async () => {
    const create = await t.api('POST', '/api/v1/clusterprofiles', profile('evil', [{ name: 'x', type: 'command', command: EVIL }]), as(olga));
    expect(create.status, JSON.stringify(create.body)).toBe(403);
    expect(create.body.error.details.permission).toBe('hosts:remote-shell');
    expect((await t.api('GET', '/api/v1/clusterprofiles/evil')).status).toBe(404);
    expect((await t.api('GET', '/api/v1/clusterprofiles/evil/revisions')).status).toBe(404);

    // http checks are fine for operators.
    const web = [{ name: 'web', type: 'http', url: 'http://127.0.0.1:10248/healthz' }];
    expect((await t.api('POST', '/api/v1/clusterprofiles', profile('gw-os', web), as(olga))).status).toBe(201);
    const withCommand = [...web, { name: 'x', type: 'command', command: EVIL }];
    const put = await t.api('PUT', '/api/v1/clusterprofiles/gw-os', profile('gw-os', withCommand), as(olga));
    expect(put.status).toBe(403);
    const patch = await t.api('PATCH', '/api/v1/clusterprofiles/gw-os', { spec: { healthChecks: withCommand } }, { ...MERGE, token: olga });
    expect(patch.status).toBe(403);
    const revs = async () => (await t.api('GET', '/api/v1/clusterprofiles/gw-os/revisions')).body.items.length;
    expect(await revs()).toBe(1);
    expect((await t.api('GET', '/api/v1/clusterprofiles/gw-os')).body.status.latestRevision).toBe(1);

    // otto may; the new revision is audited with the argv.
    const ok = await t.api(
      'PUT',
      '/api/v1/clusterprofiles/gw-os',
      profile('gw-os', [{ name: 'disk', type: 'command', command: ['test', '-d', '/var'] }]),
      as(otto),
    );
    expect(ok.status, JSON.stringify(ok.body)).toBe(200);
    expect(await revs()).toBe(2);
    const entries = await audit('clusterprofile.commands');
    expect(entries.at(-1)).toMatchObject({
      actor: 'otto',
      target: 'clusterprofiles/gw-os',
      details: { revision: 2, commandChecks: [{ name: 'disk', command: ['test', '-d', '/var'] }] },
    });
    // olga may edit other fields while the command checks stay as they are, but not change the argv.
    const desc = await t.api(
      'PUT',
      '/api/v1/clusterprofiles/gw-os',
      profile('gw-os', [{ name: 'disk', type: 'command', command: ['test', '-d', '/var'] }], 'described'),
      as(olga),
    );
    expect(desc.status, JSON.stringify(desc.body)).toBe(200);
    const argv = await t.api('PUT', '/api/v1/clusterprofiles/gw-os', profile('gw-os', [{ name: 'disk', type: 'command', command: EVIL }]), as(olga));
    expect(argv.status).toBe(403);
    expect(await revs()).toBe(3);
  });

  it('a command check cannot take variables, which cluster creators fill in: refused for everyone, nothing written', async () => {
    const withVar = profile('var-cmd', [{ name: 'app', type: 'command', command: ['sh', '-c', '${var.check}'] }]);
    for (const token of [t.admin, otto, olga]) {
      const r = await t.api('POST', '/api/v1/clusterprofiles', withVar, as(token));
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('ValidationFailed');
    }
    expect((await t.api('GET', '/api/v1/clusterprofiles/var-cmd')).status).toBe(404);
  });

  it('assigning a host OS profile (spec.osProfile) stays an operator action', async () => {
    const auto = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const n = await FakeNode.create(t, auto);
    nodes.push(n);
    const r = await t.api('PATCH', `/api/v1/edgehosts/${n.name}`, { spec: { osProfile: { name: 'gw-os' } } }, { ...MERGE, token: olga });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    expect(r.body.spec.os.healthChecks[0].command).toEqual(['test', '-d', '/var']);
  });
});
