import { WATCH_PROTOCOL } from '@edgeplane/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DIALECTS } from '../support/db.js';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

interface Watch {
  ws: WebSocket;
  messages: any[];
}

function openWatch(t: TestServer, query: string, token = t.admin, viaProtocol = false): Promise<Watch> {
  return new Promise((resolve, reject) => {
    const url = `${t.url.replace(/^http/, 'ws')}/api/v1/watch${query}`;
    const ws = viaProtocol ? new WebSocket(url, [WATCH_PROTOCOL, `bearer.${token}`]) : new WebSocket(url, { headers: { authorization: `Bearer ${token}` } });
    const messages: any[] = [];
    ws.on('message', (d) => {
      const m = JSON.parse(d.toString());
      messages.push(m);
      if (m.type === 'READY') resolve({ ws, messages });
    });
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body: JSON.parse(body || '{}') })));
    });
    ws.on('error', reject);
  });
}

describe.each(DIALECTS)('watch endpoint on %s', (dialect) => {
  let t: TestServer;
  beforeAll(async () => {
    t = await testServer(dialect, { offlineAfterSeconds: 2, heartbeatIntervalSeconds: 1 });
  });
  afterAll(() => t?.close());

  it('streams ADDED, MODIFIED and DELETED with resource versions for the chosen kinds', async () => {
    const w = await openWatch(t, '?kinds=registrationtokens');
    expect(w.messages[0]).toEqual({ type: 'READY', kinds: ['RegistrationToken'] });
    const created = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'w1' }, spec: {} });
    expect(created.status).toBe(201);
    await t.api('POST', '/api/v1/registrationtokens/w1/revoke');
    await t.api('DELETE', '/api/v1/registrationtokens/w1');
    await t.api('POST', '/api/v1/projects', { metadata: { name: 'not-watched' }, spec: {} });
    const changes = await waitFor(() => (w.messages.length >= 4 ? w.messages.slice(1) : undefined));
    expect(changes.map((m) => [m.type, m.kind, m.object.metadata.name])).toEqual([
      ['ADDED', 'RegistrationToken', 'w1'],
      ['MODIFIED', 'RegistrationToken', 'w1'],
      ['DELETED', 'RegistrationToken', 'w1'],
    ]);
    expect(Number(changes[1].object.metadata.resourceVersion)).toBeGreaterThan(Number(changes[0].object.metadata.resourceVersion));
    // The secret is shown once to the creator, never to watchers.
    expect(created.body.status.token).toBeTruthy();
    expect(JSON.stringify(changes)).not.toContain(created.body.status.token);
    w.ws.close();
  });

  it('reports a registering host, its connection, events and going offline (browser-style token)', async () => {
    const w = await openWatch(t, '?kinds=edgehosts,events', t.admin, true);
    expect(w.ws.protocol).toBe(WATCH_PROTOCOL);
    await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } });
    const tok = await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto2' }, spec: { autoApprove: true } });
    const dev = await TestDevice.create();
    const reg = await register(t.url, await dev.registerBody(tok.body.status.token));
    expect(reg.status).toBe(200);
    const host = reg.body.hostName;
    const hostMsgs = () => w.messages.filter((m) => m.kind === 'EdgeHost' && m.object.metadata.name === host);
    await waitFor(() => hostMsgs().some((m) => m.type === 'ADDED'));
    await waitFor(() => w.messages.some((m) => m.kind === 'Event' && m.object.spec.involvedObject.name === host));
    const ch = await connect(t.url, await dev.connectToken(host));
    await waitFor(() => hostMsgs().some((m) => m.object.status.connectivity === 'online'));
    ch.ws.close();
    await waitFor(() => hostMsgs().at(-1)?.object.status.connectivity === 'offline');
    w.ws.close();
  });

  it('refuses a missing or bad token, an unknown kind and a kind the role may not list', async () => {
    await expect(openWatch(t, '', 'ept_nope')).rejects.toMatchObject({ status: 401, body: { error: { code: 'Unauthenticated' } } });
    await expect(openWatch(t, '?kinds=nonsense')).rejects.toMatchObject({ status: 404, body: { error: { code: 'UnknownKind' } } });
  });

  it('whoami tells the role and what it may do; the summary counts hosts', async () => {
    await t.api('POST', '/api/v1/users', { metadata: { name: 'viv' }, spec: { role: 'viewer' } });
    const tok = await t.api('POST', '/api/v1/apitokens', { metadata: { name: 'viv-1' }, spec: { user: 'viv' } });
    const admin = await t.api('GET', '/api/v1/whoami');
    expect(admin.body).toMatchObject({ user: 'admin', role: 'admin' });
    expect(admin.body.permissions).toEqual(expect.arrayContaining(['edgehosts:approve', 'users:create']));
    const viewer = await t.api('GET', '/api/v1/whoami', undefined, { token: tok.body.status.token });
    expect(viewer.body).toMatchObject({ user: 'viv', role: 'viewer' });
    expect(viewer.body.permissions).toContain('edgehosts:list');
    expect(viewer.body.permissions.filter((p: string) => !/:(list|get)$/.test(p))).toEqual([]);
    expect((await t.api('GET', '/api/v1/whoami', undefined, { token: 'ept_bad' })).status).toBe(401);
    const summary = await t.api('GET', '/api/v1/summary', undefined, { token: tok.body.status.token });
    expect(summary.status).toBe(200);
    expect(summary.body.hosts.total).toBe(1); // the host registered above
    expect(summary.body.hosts.byState.ready).toBe(1);
    expect(summary.body.recentEvents.length).toBeGreaterThan(0);
    // A viewer may watch what it may list.
    const w = await openWatch(t, '?kinds=edgehosts', tok.body.status.token);
    w.ws.close();
  });

  it('tells a client that stops reading to RESYNC instead of buffering every change', async () => {
    const w = await openWatch(t, '?kinds=projects');
    // Stop reading: the server's socket buffer fills and the watcher's bounded queue overflows.
    (w.ws as unknown as { _socket: { pause(): void; resume(): void } })._socket.pause();
    // 100 changes of ~240 KB: more than the watcher's byte limit plus what the socket and kernel hold.
    const big = 'x'.repeat(60_000);
    const annotations = { a: big, b: big, c: big, d: big };
    for (let i = 0; i < 100; i++) {
      await t.api('POST', '/api/v1/projects', { metadata: { name: `p${i}`, annotations }, spec: {} });
    }
    (w.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const resync = await waitFor(() => w.messages.find((m) => m.type === 'RESYNC'));
    expect(resync.kinds).toEqual(['Project']);
    expect(resync.dropped).toBeGreaterThan(0);
    const delivered = w.messages.filter((m) => m.type === 'ADDED').length;
    expect(delivered).toBeLessThan(100);
    w.ws.close();
  });
});
