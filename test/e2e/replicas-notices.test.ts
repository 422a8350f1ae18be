import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WATCH_PROTOCOL } from '@edgeplane/protocol';
import { type RunningServer, startServer } from '@edgeplane/server';
import pg from 'pg';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import WebSocket from 'ws';
import { connect, register, TestDevice, waitFor } from '../support/device.js';
import { type TestServer, testServer } from '../support/server.js';

/**
 * Two replicas on one PostgreSQL database. A write through A reaches B's watchers and the agents
 * connected to B (over LISTEN/NOTIFY); heartbeats send no notice; a replica that lost its listening
 * connection tells its watchers to re-list and keeps receiving once it is back.
 */
describe('change notices between replicas on PostgreSQL', () => {
  let a: TestServer;
  let b: RunningServer;
  let dirB: string;
  let db: pg.Client;
  beforeAll(async () => {
    a = await testServer('postgres');
    dirB = mkdtempSync(join(tmpdir(), 'edgeplane-replica-b-'));
    b = await startServer({ host: '127.0.0.1', port: 0, dataDir: dirB, databaseUrl: a.store.databaseUrl, logger: pino({ level: 'silent' }) });
    db = new pg.Client({ connectionString: a.store.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await b?.close();
    await a?.close();
    rmSync(dirB, { recursive: true, force: true });
  });

  const openWatch = (url: string, kinds: string) =>
    new Promise<{ ws: WebSocket; messages: any[] }>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/api/v1/watch?kinds=${kinds}`, [WATCH_PROTOCOL, `bearer.${a.admin}`]);
      const messages: any[] = [];
      ws.on('message', (d) => {
        const m = JSON.parse(d.toString());
        messages.push(m);
        if (m.type === 'READY') resolve({ ws, messages });
      });
      ws.on('error', reject);
    });

  it("a write through A reaches B's watchers and B's agents; heartbeats send no notice", async () => {
    const watch = await openWatch(b.url, 'sites,edgehosts');
    expect((await a.api('POST', '/api/v1/sites', { metadata: { name: 'north' }, spec: {} })).status).toBe(201);
    await waitFor(() => watch.messages.some((m) => m.type === 'ADDED' && m.kind === 'Site' && m.object.metadata.name === 'north'), 2000);
    expect((await a.api('DELETE', '/api/v1/sites/north')).status).toBeLessThan(300);
    await waitFor(() => watch.messages.some((m) => m.type === 'DELETED' && m.kind === 'Site' && m.object.metadata.name === 'north'), 2000);

    const token = (await a.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const device = await TestDevice.create();
    const host = (await register(a.url, await device.registerBody(token))).body.hostName;
    const ch = await connect(b.url, await device.connectToken(host));
    ch.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    const first = await waitFor(() => ch.messages.find((m) => m.type === 'spec'));

    await waitFor(async () => (await a.api('GET', `/api/v1/edgehosts/${host}`)).body.status.connectivity === 'online');

    // Heartbeats: nothing on the replicas' channel between two marker changes.
    const listener = new pg.Client({ connectionString: a.store.databaseUrl });
    listener.on('error', () => {});
    await listener.connect();
    const heard: string[] = [];
    listener.on('notification', (n) => heard.push(n.payload ?? ''));
    await listener.query('LISTEN edgeplane_changes');
    try {
      expect((await a.api('POST', '/api/v1/sites', { metadata: { name: 'marker-1' }, spec: {} })).status).toBe(201);
      await waitFor(() => heard.some((p) => p.includes('"marker-1"')));
      const from = heard.length;
      for (let seq = 1; seq <= 5; seq++) ch.ws.send(JSON.stringify({ type: 'heartbeat', seq }));
      expect((await a.api('POST', '/api/v1/sites', { metadata: { name: 'marker-2' }, spec: {} })).status).toBe(201);
      await waitFor(() => heard.some((p) => p.includes('"marker-2"')));
      expect(heard.slice(from).filter((p) => !p.includes('"marker-2"'))).toEqual([]);
    } finally {
      await listener.end();
    }

    // A spec change through A: B's agent gets the new spec within 2 s.
    const patched = await a.api('PATCH', `/api/v1/edgehosts/${host}`, { spec: { displayName: 'moved' } }, { contentType: 'application/merge-patch+json' });
    expect(patched.status).toBe(200);
    const pushed = await waitFor(() => ch.messages.find((m) => m.type === 'spec' && m.generation > first.generation), 2000);
    expect(pushed.generation).toBe(patched.body.metadata.generation);
    await waitFor(() => watch.messages.some((m) => m.kind === 'EdgeHost' && m.object.metadata.name === host && m.object.spec.displayName === 'moved'), 2000);

    // A rejection through A closes the channel held by B.
    const closed = new Promise<number>((r) => ch.ws.on('close', (code) => r(code)));
    expect((await a.api('POST', `/api/v1/edgehosts/${host}/reject`)).status).toBeLessThan(300);
    expect(await closed).toBe(4403);
    watch.ws.close();
  });

  it('a replica that lost its listening connection tells watchers to re-list and hears changes again', async () => {
    const watch = await openWatch(b.url, 'sites');
    // What a network failure does: the database ends the replicas' listening sessions.
    await db.query(`select pg_terminate_backend(pid) from pg_stat_activity where query = 'LISTEN edgeplane_changes' and pid <> pg_backend_pid()`);
    await waitFor(() => watch.messages.some((m) => m.type === 'RESYNC'), 10_000);
    expect((await a.api('POST', '/api/v1/sites', { metadata: { name: 'after' }, spec: {} })).status).toBe(201);
    await waitFor(() => watch.messages.some((m) => m.type === 'ADDED' && m.object.metadata.name === 'after'), 2000);
    watch.ws.close();
  });
});

/**
 * A replica commits a change before it sends the change's notice, so one killed in between (kill -9)
 * leaves a committed spec that no notice announces: a host spec the controllers wrote just before
 * their lease holder died. The surviving replicas resync their agents when its lease runs out.
 */
describe('a replica that died between a commit and its notice', () => {
  let t: TestServer;
  let db: pg.Client;
  beforeAll(async () => {
    t = await testServer('postgres', { offlineAfterSeconds: 3 });
    db = new pg.Client({ connectionString: t.store.databaseUrl });
    await db.connect();
  });
  afterAll(async () => {
    await db?.end();
    await t?.close();
  });

  it('the survivors send its agents the spec it committed once its lease ran out, not before', async () => {
    const token = (await t.api('POST', '/api/v1/registrationtokens', { metadata: { name: 'auto' }, spec: { autoApprove: true } })).body.status.token;
    const device = await TestDevice.create();
    const host = (await register(t.url, await device.registerBody(token))).body.hostName;
    const ch = await connect(t.url, await device.connectToken(host));
    ch.ws.send(JSON.stringify({ type: 'hello', protocolVersion: 1, agentVersion: 'test-1' }));
    const first = await waitFor(() => ch.messages.find((m) => m.type === 'spec'));
    // The agent stays connected (heartbeats well within offline-after) for as long as the test runs.
    let seq = 0;
    const heartbeats = setInterval(() => ch.ws.readyState === ch.ws.OPEN && ch.ws.send(JSON.stringify({ type: 'heartbeat', seq: ++seq })), 500);
    onTestFinished(() => clearInterval(heartbeats));
    // Another replica, live now, commits a new spec for the host and dies before announcing it.
    const now = Date.now();
    await db.query('insert into replicas (id, started_at, expires_at, url) values ($1, $2, $3, $4)', [
      'ghost',
      new Date(now).toISOString(),
      new Date(now + 2500).toISOString(),
      'http://127.0.0.1:9',
    ]);
    const row = (await db.query('select spec, generation from edge_hosts where name = $1', [host])).rows[0];
    await db.query('update edge_hosts set spec = $1, generation = generation + 1 where name = $2', [
      JSON.stringify({ ...JSON.parse(row.spec), displayName: 'committed by a replica that died' }),
      host,
    ]);
    // No notice: nothing reaches the agent while the other replica's lease lasts.
    await new Promise((r) => setTimeout(r, 1500));
    expect(ch.messages.filter((m) => m.type === 'spec' && m.generation > first.generation)).toEqual([]);
    // Its lease runs out: the next sweep (every third of offline-after) resyncs this replica's agents.
    const pushed = await waitFor(() => ch.messages.find((m) => m.type === 'spec' && m.generation > first.generation), 5000);
    expect(pushed.generation).toBe(Number(row.generation) + 1);
    expect(Date.now() - now).toBeGreaterThanOrEqual(2500);
    ch.ws.close();
  });
});
