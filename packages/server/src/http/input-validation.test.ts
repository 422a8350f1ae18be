import { join } from 'node:path';
import { AGENT_PAIRINGS_PATH } from '@edgeplane/protocol';
import SQLite from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DIALECTS } from '../../../../test/support/db.js';
import { connect, register, TestDevice, waitFor } from '../../../../test/support/device.js';
import { type TestServer, testServer } from '../../../../test/support/server.js';

const PLURALS = [
  'edgehosts',
  'registrationtokens',
  'projects',
  'users',
  'apitokens',
  'events',
  'clusterprofiles',
  'clusters',
  'remotesessions',
  'sites',
  'rollouts',
];

/** Every object of every kind (volatile host fields left out) and the whole audit log. */
async function dump(t: TestServer): Promise<unknown> {
  const out: Record<string, unknown> = {};
  for (const plural of PLURALS) {
    const r = await t.api('GET', `/api/v1/${plural}`);
    expect(r.status).toBe(200);
    out[plural] = r.body.items.map((o: any) =>
      plural === 'edgehosts' ? { name: o.metadata.name, generation: o.metadata.generation, spec: o.spec, state: o.status.state } : o,
    );
  }
  out.audit = (await t.api('GET', '/api/v1/audit')).body.items;
  return out;
}

/** A request without credentials (agent endpoints), or with the admin token (`auth`). */
async function raw(t: TestServer, method: string, path: string, body?: unknown, auth = false): Promise<{ status: number; body: any }> {
  const headers: Record<string, string> = {};
  if (auth) headers.authorization = `Bearer ${t.admin}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${t.url}${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function expectError(r: { status: number; body: any }, status: number, code: string, path?: string) {
  expect({ status: r.status, code: r.body?.error?.code }, JSON.stringify(r.body)).toEqual({ status, code });
  expect(typeof r.body.error.message).toBe('string');
  if (path !== undefined) expect(r.body.error.details.issues.map((i: { path: string }) => i.path)).toContain(path);
}

describe.each(DIALECTS)('input validation on %s', (dialect) => {
  let t: TestServer;
  let fleetSecret: string;
  beforeAll(async () => {
    t = await testServer(dialect);
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'fleet' }, spec: { autoApprove: true } });
    expect(tok.status).toBe(201);
    fleetSecret = tok.body.status.token;
  });
  afterAll(async () => t?.close());

  it('refuses control characters in names of URLs, actions and sub-resources, for every kind, changing nothing', async () => {
    const before = await dump(t);
    for (const bad of ['%00', 'a%00b', '%01', 'x%1b', '%7f', 'a%09b', 'a%0a']) {
      for (const plural of PLURALS) {
        expectError(await t.api('GET', `/api/v1/${plural}/${bad}`), 400, 'ValidationFailed', 'name');
        expectError(
          await t.api('PATCH', `/api/v1/${plural}/${bad}`, { metadata: { labels: { a: 'b' } } }, { contentType: 'application/merge-patch+json' }),
          400,
          'ValidationFailed',
          'name',
        );
        expectError(await t.api('DELETE', `/api/v1/${plural}/${bad}`), 400, 'ValidationFailed', 'name');
      }
      expectError(await t.api('POST', `/api/v1/registrationtokens/${bad}/revoke`), 400, 'ValidationFailed', 'name');
      expectError(await t.api('POST', `/api/v1/registrationtokens/fleet/re${bad}voke`), 400, 'ValidationFailed', 'verb');
      expectError(await t.api('GET', `/api/v1/clusterprofiles/${bad}/revisions`), 400, 'ValidationFailed', 'name');
      expectError(await t.api('GET', `/api/v1/clusterprofiles/p/revisions/1${bad}`), 400, 'ValidationFailed', 'revision');
      expectError(await t.api('POST', `/api/v1/edgehosts/${bad}/sessions`, { kind: 'shell', reason: 'check the disk' }), 400, 'ValidationFailed', 'name');
      expectError(await t.api('POST', `/api/v1/remotesessions/rs-${bad}/terminate`), 400, 'ValidationFailed', 'id');
      expectError(await t.api('GET', `/api/v1/remotesessions/rs-${bad}/recording`), 400, 'ValidationFailed', 'id');
      expectError(await t.api('POST', `/api/v1/pairings/${bad}/claim`, {}), 400, 'ValidationFailed', 'code');
    }
    expect(await dump(t)).toEqual(before);
  });

  it('refuses control characters in every query value, and forged continue tokens', async () => {
    const before = await dump(t);
    for (const q of [
      'labelSelector=a%00',
      'labelSelector=env%3D%00',
      'fieldSelector=status.state%3D%00',
      'continue=%00',
      'limit=1%00',
      'x%00=1',
      'labelSelector=a%0Ab',
    ]) {
      expectError(await t.api('GET', `/api/v1/edgehosts?${q}`), 400, 'ValidationFailed');
    }
    for (const q of ['target=%00', 'target=edgehosts%2Fa%00', 'actor=%00', 'action=session.%01', 'continue=1%00']) {
      expectError(await t.api('GET', `/api/v1/audit?${q}`), 400, 'ValidationFailed');
    }
    // A continue token is base64 JSON: a NUL inside it never reaches the store either.
    const forged = Buffer.from(JSON.stringify({ after: 'a\u0000b' })).toString('base64url');
    expectError(await t.api('GET', `/api/v1/edgehosts?continue=${forged}`), 400, 'InvalidContinueToken');
    expectError(await t.api('GET', '/api/v1/audit?continue=99999999999999999999'), 400, 'ValidationFailed', 'continue');
    expect(await dump(t)).toEqual(before);
  });

  it('refuses control characters on the unauthenticated agent endpoints', async () => {
    const before = await dump(t);
    for (const bad of ['%00', 'a%00b', '%1f']) {
      expectError(await raw(t, 'GET', `${AGENT_PAIRINGS_PATH}/${bad}`), 400, 'ValidationFailed', 'id');
      expectError(await raw(t, 'GET', `${AGENT_PAIRINGS_PATH}/pp-1?waitSeconds=${bad}`), 400, 'ValidationFailed', 'waitSeconds');
    }
    const dev = await TestDevice.create();
    const start = await dev.pairingStartBody();
    expectError(await raw(t, 'POST', AGENT_PAIRINGS_PATH, { ...start, agentVersion: 'a\u0000b' }), 400, 'ValidationFailed', 'agentVersion');
    expectError(
      await raw(t, 'POST', AGENT_PAIRINGS_PATH, { ...start, agentVersion: '1', inventory: { ...dev.inventory(), hostname: 'h\u0000' } }),
      400,
      'ValidationFailed',
      'inventory.hostname',
    );
    expectError(await register(t.url, await dev.registerBody(fleetSecret, { agentVersion: 'v\u0000' })), 400, 'ValidationFailed', 'agentVersion');
    expectError(
      await register(t.url, await dev.registerBody(fleetSecret, { inventory: { ...dev.inventory(), os: { name: 'x\u001b[31m', version: '1', kernel: '6' } } })),
      400,
      'ValidationFailed',
      'inventory.os.name',
    );
    expect(await dump(t)).toEqual(before);
  });

  it('refuses control characters in free text of bodies; tab, newline and CR stay allowed', async () => {
    const before = await dump(t);
    const tok = (name: string, extra: Record<string, unknown>) => ({ metadata: { name, ...extra }, spec: {} });
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', tok('t1', { annotations: { note: 'x\u0000y' } })),
      400,
      'ValidationFailed',
      'metadata.annotations.note',
    );
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', tok('t1', { annotations: { 'a\u0001': 'v' } })),
      400,
      'ValidationFailed',
      'metadata.annotations.a\u0001',
    );
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 't1' }, spec: { description: 'bell\u0007' } }),
      400,
      'ValidationFailed',
      'spec.description',
    );
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 't1' }, spec: { description: 'del\u007f' } }),
      400,
      'ValidationFailed',
      'spec.description',
    );
    expectError(
      await t.api('PATCH', '/api/v1/registrationtokens/fleet', { spec: { description: 'a\u0000' } }, { contentType: 'application/merge-patch+json' }),
      400,
      'ValidationFailed',
      'spec.description',
    );
    expectError(
      await t.api('POST', '/api/v1/projects', { metadata: { name: 'p1', labels: { a: '\u0000' } }, spec: {} }),
      400,
      'ValidationFailed',
      'metadata.labels.a',
    );
    expectError(await t.api('POST', '/api/v1/edgehosts/nohost/sessions', { kind: 'shell', reason: 'fix\u0000it' }), 400, 'ValidationFailed', 'reason');
    expectError(await t.api('POST', '/api/v1/pairings/ABCDEFGH/claim', { labels: { a: 'b\u0000' } }), 400, 'ValidationFailed', 'labels.a');
    // A lone surrogate has no UTF-8 form: PostgreSQL refuses it, SQLite would store U+FFFD. Both answer 400.
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 't1' }, spec: { description: 'half\ud800' } }),
      400,
      'ValidationFailed',
      'spec.description',
    );
    expectError(
      await t.api('POST', '/api/v1/projects', { metadata: { name: 'p1', labels: { '\udfff\ud800': 'v' } }, spec: {} }),
      400,
      'ValidationFailed',
      'metadata.labels.\udfff\ud800',
    );
    expect(await dump(t)).toEqual(before);
    const ok = await t.api('POST', '/api/v1/registrationtokens', {
      metadata: { name: 'text-ok', annotations: { note: 'line 1\r\nline\t2' } },
      spec: { description: 'a\nb \ud83d\ude00' },
    });
    expect(ok.status).toBe(201);
    expect(ok.body.metadata.annotations.note).toBe('line 1\r\nline\t2');
    expect(ok.body.spec.description).toBe('a\nb \u{1f600}');
    await t.api('DELETE', '/api/v1/registrationtokens/text-ok');
  });

  it('bounds integers and timestamps so both stores give the same 400', async () => {
    await t.api('POST', '/api/v1/clusterprofiles', { metadata: { name: 'p' }, spec: { layers: {} } });
    const before = await dump(t);
    for (const rev of ['999999999999999999999999', '2147483648', '0', '-1', '1.5'])
      expectError(await t.api('GET', `/api/v1/clusterprofiles/p/revisions/${rev}`), 400, 'ValidationFailed', 'revision');
    const cluster = (revision: number) => ({
      metadata: { name: 'c1' },
      spec: { profile: { name: 'p', revision }, nodes: [{ host: 'h1', role: 'control-plane' }] },
    });
    expectError(await t.api('POST', '/api/v1/clusters', cluster(99999999999)), 400, 'ValidationFailed', 'spec.profile.revision');
    expectError(await t.api('POST', '/api/v1/clusters', cluster(2 ** 31)), 400, 'ValidationFailed', 'spec.profile.revision');
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'big' }, spec: { maxUses: 2 ** 31 } }),
      400,
      'ValidationFailed',
      'spec.maxUses',
    );
    expectError(
      await t.api('PATCH', '/api/v1/registrationtokens/fleet', { spec: { maxUses: 1e20 } }, { contentType: 'application/merge-patch+json' }),
      400,
      'ValidationFailed',
      'spec.maxUses',
    );
    const longTime = '2030-01-01T00:00:00.123456789012345678901234567890+00:00';
    expectError(
      await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'at1' }, spec: { user: 'admin', expiresAt: longTime } }),
      400,
      'ValidationFailed',
      'spec.expiresAt',
    );
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'rt1' }, spec: { expiresAt: longTime } }),
      400,
      'ValidationFailed',
      'spec.expiresAt',
    );
    expectError(
      await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'rt1', generation: 2 ** 40 }, spec: {} }),
      400,
      'ValidationFailed',
      'metadata.generation',
    );
    expect(await dump(t)).toEqual(before);
    // The bounds themselves are accepted.
    const edge = await t.api('POST', '/api/v1/registrationtokens', {
      metadata: { name: 'edge' },
      spec: { maxUses: 2 ** 31 - 1, expiresAt: '2030-01-01T00:00:00.123456+02:00' },
    });
    expect(edge.status).toBe(201);
    expect((await t.api('GET', '/api/v1/clusterprofiles/p/revisions/2147483647')).body.error.code).toBe('NotFound');
    await t.api('DELETE', '/api/v1/registrationtokens/edge');
  });

  it('refuses bodies nested deeper than the stores take, at any size, changing nothing', async () => {
    // `chain(k)` nests k objects; a profile's CNI values sit 5 levels down (body, spec, layers, network, values).
    const chain = (k: number): unknown => (k === 1 ? { a: 1 } : { a: chain(k - 1) });
    const profile = (name: string, k: number) => ({
      metadata: { name },
      spec: {
        layers: {
          os: { image: `127.0.0.1:9/edge/os:1.0@sha256:${'ab'.repeat(32)}` },
          kubernetes: { distribution: 'k3s', version: 'v1.30.2+k3s1' },
          network: { cni: 'flannel', values: { deep: chain(k) } },
        },
      },
    });
    const deepPath = `spec.layers.network.values.deep${'.a'.repeat(95)}`;
    await t.api('POST', '/api/v1/clusterprofiles', profile('nest', 1));
    const before = await dump(t);
    // One level past the limit, and deep enough that SQLite's JSON functions would refuse the row.
    expectError(await t.api('POST', '/api/v1/clusterprofiles', profile('deep', 96)), 400, 'ValidationFailed', deepPath);
    expectError(await t.api('POST', '/api/v1/clusterprofiles', profile('deep', 1000)), 400, 'ValidationFailed', deepPath);
    expectError(await t.api('PUT', '/api/v1/clusterprofiles/nest', profile('nest', 96)), 400, 'ValidationFailed', deepPath);
    expectError(
      await t.api('PATCH', '/api/v1/clusterprofiles/nest', profile('nest', 96), { contentType: 'application/merge-patch+json' }),
      400,
      'ValidationFailed',
      deepPath,
    );
    // Thousands of levels as text (too deep for the client's own JSON.stringify): a 400, never a 500 or a crash.
    const text = (open: string, close: string) =>
      `{"metadata":{"name":"deep-host"},"spec":{"deviceUid":"deep-device-0001","x":${open.repeat(20_000)}1${close.repeat(20_000)}}}`;
    expectError(await t.api('POST', '/api/v1/edgehosts', undefined, { raw: text('[', ']') }), 400, 'ValidationFailed');
    expectError(await t.api('POST', '/api/v1/edgehosts', undefined, { raw: text('{"a":', '}') }), 400, 'ValidationFailed');
    // Unauthenticated endpoints too: the registration of a device with a deep inventory.
    const dev = await TestDevice.create();
    const body = await dev.registerBody(fleetSecret, { inventory: { ...dev.inventory(), extra: chain(200) } as never });
    expectError(await register(t.url, body), 400, 'ValidationFailed');
    expect(await dump(t)).toEqual(before);
    // The limit itself is accepted and reads back whole on both stores.
    const atLimit = await t.api('PUT', '/api/v1/clusterprofiles/nest', profile('nest', 95));
    expect(atLimit.status, JSON.stringify(atLimit.body)).toBe(200);
    const read = await t.api('GET', '/api/v1/clusterprofiles/nest');
    expect(read.body.spec.layers.network.values.deep).toEqual(chain(95));
    await t.api('DELETE', '/api/v1/clusterprofiles/nest');
  });

  it('finds actions among own properties only: prototype names are NotFound, write nothing and notify no watcher', async () => {
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/api/v1/watch?kinds=registrationtokens`, { headers: { authorization: `Bearer ${t.admin}` } });
    const messages: any[] = [];
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    await waitFor(() => messages[0]?.type === 'READY');
    const before = await dump(t);
    for (const verb of ['valueOf', 'hasOwnProperty', '__proto__', 'constructor', 'toString', 'isPrototypeOf', '__defineGetter__'])
      for (const path of [`/api/v1/registrationtokens/fleet/${verb}`, `/api/v1/edgehosts/nohost/${verb}`, `/api/v1/registrationtokens/nope/${verb}`]) {
        const r = await t.api('POST', path);
        expectError(r, 404, 'NotFound');
        expect(r.body.error.message).toContain('has no action');
      }
    expect(await dump(t)).toEqual(before);
    // A real change afterwards is the first thing the watcher sees.
    await t.api('PATCH', '/api/v1/registrationtokens/fleet', { metadata: { labels: { seen: 'yes' } } }, { contentType: 'application/merge-patch+json' });
    await waitFor(() => messages.length >= 2);
    expect(messages.slice(1).map((m) => [m.type, m.object.metadata.name, m.object.metadata.labels])).toEqual([['MODIFIED', 'fleet', { seen: 'yes' }]]);
    ws.close();
  });

  it("answers Fastify's own request errors in the documented shape", async () => {
    const before = await dump(t);
    for (const r of [
      await t.api('GET', '/api/v1/projects/%ff'),
      await raw(t, 'GET', `${AGENT_PAIRINGS_PATH}/%ff`),
      await t.api('DELETE', '/api/v1/users/%e0%a4'),
    ]) {
      expectError(r, 400, 'ValidationFailed', 'url');
      expect(Object.keys(r.body)).toEqual(['error']);
    }
    const long = await t.api('GET', `/api/v1/projects/${'a'.repeat(150)}`);
    expectError(long, 414, 'UriTooLong');
    expect(long.body.error.details).toEqual({ fastifyCode: 'FST_ERR_MAX_PARAM_LENGTH' });
    expect(await dump(t)).toEqual(before);
  });

  /** A registered device whose agent channel is open and welcomed. */
  async function helloAgent() {
    const dev = await TestDevice.create();
    const reg = await register(t.url, await dev.registerBody(fleetSecret));
    expect(reg.status).toBeLessThan(300);
    const host: string = reg.body.hostName;
    const { ws, messages } = await connect(t.url, await dev.connectToken(host));
    ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    await waitFor(() => messages.some((m) => m.type === 'welcome'));
    return { dev, host, ws, messages };
  }

  it('refuses an agent event with control characters over the channel and stores nothing', async () => {
    const { host, ws, messages } = await helloAgent();
    try {
      const event = { type: 'event', eventType: 'Warning', timestamp: new Date().toISOString() };
      const events = async () =>
        (await t.api('GET', `/api/v1/events?fieldSelector=involvedObject.name%3D${host}`)).body.items.filter((e: any) => e.spec.reason.startsWith('Probe'));
      ws.send(JSON.stringify({ ...event, id: 'e\u00001', reason: 'ProbeId', message: 'ok' }));
      ws.send(JSON.stringify({ ...event, id: 'e2', reason: 'ProbeMessage', message: 'disk\u0000full' }));
      ws.send(JSON.stringify({ ...event, id: 'e3', reason: 'ProbeGood', message: 'multi\nline\ttext' }));
      const errors = await waitFor(() => {
        const e = messages.filter((m) => m.type === 'error');
        return e.length >= 2 ? e : undefined;
      });
      expect(errors.map((e) => e.code)).toEqual(['ValidationFailed', 'ValidationFailed']);
      const stored = await waitFor(async () => {
        const e = await events();
        return e.length ? e : undefined;
      });
      expect(stored.map((e: any) => [e.spec.reason, e.spec.message])).toEqual([['ProbeGood', 'multi\nline\ttext']]);
    } finally {
      ws.close();
    }
  });

  it('refuses an agent message nested deeper than the limit over the channel and keeps the host as it was', async () => {
    const { dev, host, ws, messages } = await helloAgent();
    try {
      const stored = async () => (await t.api('GET', `/api/v1/edgehosts/${host}`)).body.status;
      const before = await stored();
      const deep = `{"type":"status","status":{"capabilities":["libvirt"],"x":${'['.repeat(5000)}${']'.repeat(5000)}},"inventory":${JSON.stringify({ ...dev.inventory(), hostname: 'deep' })}}`;
      ws.send(deep);
      const error = await waitFor(() => messages.find((m) => m.type === 'error'));
      expect(error.code).toBe('ValidationFailed');
      expect(error.message).toContain('status.x');
      // The channel stays usable: a well-formed status after it is stored, and the deep one never was.
      ws.send(JSON.stringify({ type: 'status', status: { capabilities: ['probe'] } }));
      const after = await waitFor(async () => {
        const s = await stored();
        return s.agent?.capabilities?.includes('probe') ? s : undefined;
      });
      expect(after.agent.capabilities).toEqual(['probe']);
      expect(after.inventory).toEqual(before.inventory);
    } finally {
      ws.close();
    }
  });

  it('writes a remote session and its session.start audit entry in one transaction', async () => {
    const dev = await TestDevice.create();
    const reg = await register(t.url, await dev.registerBody(fleetSecret));
    const host = reg.body.hostName;
    const { ws, messages } = await connect(t.url, await dev.connectToken(host));
    try {
      ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
      await waitFor(() => messages.some((m) => m.type === 'welcome'));
      await waitFor(async () => (await t.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');
      // Make the audit write fail after the session row is inserted, as a store error would.
      await storeExec(
        t,
        dialect === 'sqlite'
          ? "CREATE TRIGGER refuse_start BEFORE INSERT ON audit_log WHEN NEW.action = 'session.start' BEGIN SELECT RAISE(ABORT, 'refused by test'); END"
          : "ALTER TABLE audit_log ADD CONSTRAINT refuse_start CHECK (action <> 'session.start')",
      );
      const before = await dump(t);
      const failed = await t.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'shell', reason: 'look at the disk' });
      expectError(failed, 500, 'Internal');
      expect(await dump(t)).toEqual(before);
      await storeExec(t, dialect === 'sqlite' ? 'DROP TRIGGER refuse_start' : 'ALTER TABLE audit_log DROP CONSTRAINT refuse_start');
      const ok = await t.api('POST', `/api/v1/edgehosts/${host}/sessions`, { kind: 'shell', reason: 'look at the disk' });
      expect(ok.status).toBe(201);
      const audit = (await t.api('GET', '/api/v1/audit?action=session.start')).body.items;
      expect(audit.map((a: any) => a.details.session)).toEqual([ok.body.metadata.name]);
      expect((await t.api('GET', '/api/v1/audit/verify')).body.ok).toBe(true);
      await t.api('POST', `/api/v1/remotesessions/${ok.body.metadata.name}/terminate`);
    } finally {
      ws.close();
    }
  });
});

/** Runs one statement on the test server's store, outside the server (test setup only). */
async function storeExec(t: TestServer, statement: string): Promise<void> {
  if (t.store.dialect === 'sqlite') {
    const db = new SQLite(join(t.store.dataDir, 'edgeplane.db'));
    try {
      db.exec(statement);
    } finally {
      db.close();
    }
    return;
  }
  const c = new pg.Client({ connectionString: t.store.databaseUrl });
  await c.connect();
  try {
    await c.query(statement);
  } finally {
    await c.end();
  }
}
